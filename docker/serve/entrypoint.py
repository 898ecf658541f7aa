#!/usr/bin/env python3
"""Container entrypoint: TorchServe as the container's main process.

    entrypoint.py [serve] [TORCHSERVE ARGS...]   serve the model store (the default)
    entrypoint.py healthcheck                     exit 0 when /ping says Healthy
    entrypoint.py COMMAND [ARGS...]               run any other command as given

``torchserve --start`` only launches TorchServe's Java frontend and, even with
``--foreground``, neither forwards SIGTERM to it nor passes on its exit status. So this
process becomes a child subreaper, lets the launcher start the frontend, adopts it, and
waits on it: SIGTERM and SIGINT are forwarded to the frontend (whose shutdown hook stops
the workers), and this process exits when the frontend exits, with its status (0 after a
stop that was asked for). Standard library only; Python 3.9 or later.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import List, Optional

MODEL_STORE = os.environ.get("MODEL_STORE", "/home/model-server/model-store")
TS_CONFIG = os.environ.get("TS_CONFIG", "/home/model-server/config.properties")
MODELS = os.environ.get("MODELS", "all")
PR_SET_CHILD_SUBREAPER = 36


def torchserve_command(extra: List[str]) -> List[str]:
    return [shutil.which("torchserve") or "torchserve", "--start", "--ncs",
            "--model-store", MODEL_STORE, "--ts-config", TS_CONFIG, "--models", MODELS, *extra]


def become_subreaper() -> None:
    """Orphaned descendants (the frontend, once its launcher exits) become our children."""
    if os.getpid() == 1:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def frontend_pid_file() -> Path:
    return Path(tempfile.gettempdir()) / ".model_server.pid"  # where the launcher writes it


def serve(extra: List[str]) -> int:
    become_subreaper()
    pid_file = frontend_pid_file()
    pid_file.unlink(missing_ok=True)
    stop_requested = []

    def forward(signum, _frame):
        stop_requested.append(signum)
        if frontend is not None:
            os.kill(frontend, signal.SIGTERM)

    frontend: Optional[int] = None
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    launcher = subprocess.run(torchserve_command(extra), check=False)
    if launcher.returncode != 0 or not pid_file.exists():
        print(f"entrypoint: torchserve did not start (launcher exit {launcher.returncode})",
              file=sys.stderr, flush=True)
        return launcher.returncode or 1
    frontend = int(pid_file.read_text().strip())
    if stop_requested:  # a signal arrived while the launcher ran
        os.kill(frontend, signal.SIGTERM)
    return wait_for(frontend, stop_requested)


def wait_for(frontend: int, stop_requested: list) -> int:
    """Reap children until the frontend exits; its exit status becomes ours."""
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
        if pid != frontend:
            continue  # a reaped worker or launcher
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
        if stop_requested and code in (0, 128 + signal.SIGTERM):
            print("entrypoint: TorchServe stopped", flush=True)
            return 0
        print(f"entrypoint: TorchServe exited with status {code}", file=sys.stderr, flush=True)
        return code


def healthcheck() -> int:
    """GET /ping on the inference address; sends the inference key when token
    authorisation is on (key_file.json in the working directory)."""
    port = os.environ.get("INFERENCE_PORT", "8080")
    request = urllib.request.Request(f"http://127.0.0.1:{port}/ping")
    key_file = Path("key_file.json")
    if key_file.exists():
        key = json.loads(key_file.read_text())["inference"]["key"]
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return 0 if json.load(response).get("status") == "Healthy" else 1
    except (OSError, ValueError):
        return 1


def main(argv: List[str]) -> int:
    if not argv or argv[0] == "serve":
        return serve(argv[1:])
    if argv[0].startswith("-"):  # TorchServe options: serve with them
        return serve(argv)
    if argv[0] == "healthcheck":
        return healthcheck()
    os.execvp(argv[0], argv)  # any other command, as given
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
