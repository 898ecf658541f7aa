"""Triton Inference Server from the ``nvidia-pytriton`` wheel, on a model repository.

    python -m mmocr_serve_tools.triton REPOSITORY [TRITONSERVER ARGS...]   (scripts/triton.sh)

The wheel carries ``tritonserver``, its Python backend and a backend stub for each Python
from 3.8 to 3.13. Two things make it serve this project's repository entries:

- the stub for this interpreter's Python goes where the backend looks for it
  (``backends/python/``), once;
- the stub embeds the system's ``libpython`` of that version, not this virtual
  environment, so the environment's packages are put on its path (``PYTHONPATH``).

And one thing makes it recover: the Python backend of Triton 2.51 never restarts a model's
stub process that died (killed, out of memory); the model stays "ready" and answers 500
from then on. ``supervise`` runs tritonserver as its child, and stops it and exits 1 when
a stub dies, so that whatever restarts the server (Docker, Swarm, Kubernetes, systemd)
brings the model back (docs/triton.md).

``TritonProcess`` starts the same command on free loopback ports, for tests and benchmarks.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .server import ServerProcess, free_port, with_overrides

STUB = "triton_python_backend_stub"
INPUT, OUTPUT = "IMAGE", "ANSWER"  # triton_model.py's tensors


def tritonserver_dir() -> Path:
    """The wheel's ``tritonserver`` folder (bin/, backends/, python_backend_stubs/)."""
    import pytriton

    return Path(pytriton.__file__).resolve().parent / "tritonserver"


def backend_directory() -> Path:
    """The wheel's backends, with this Python's stub in ``python/`` (copied once)."""
    root = tritonserver_dir()
    stub = root / "backends" / "python" / STUB
    if not stub.exists():
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        source = root / "python_backend_stubs" / version / STUB
        if not source.exists():
            raise RuntimeError(f"nvidia-pytriton has no Python backend stub for Python {version}")
        handle, partial = tempfile.mkstemp(dir=stub.parent, prefix=f".{STUB}.")
        os.close(handle)  # a copy of this process's own: two launches at once never share one
        shutil.copy2(source, partial)
        os.replace(partial, stub)
    return root / "backends"


def server_env(base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """``base`` (default: this process's environment) with this environment's packages on
    the stub's ``PYTHONPATH``."""
    env = dict(os.environ if base is None else base)
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
                           *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def server_command(repository: Path, args: Sequence[str] = ()) -> List[str]:
    """The supervised ``tritonserver`` serving ``repository`` with the prepared backends,
    then ``args``: this module's command line."""
    return [sys.executable, "-m", __name__, str(Path(repository).resolve()), *args]


def tritonserver_command(repository: Path, args: Sequence[str] = ()) -> List[str]:
    return [str(tritonserver_dir() / "bin" / "tritonserver"),
            f"--model-repository={Path(repository).resolve()}",
            f"--backend-directory={backend_directory()}", *args]


def children(pid: int) -> List[Tuple[int, str, List[bytes]]]:
    """``(pid, state, argv)`` of each child process of ``pid`` (state ``Z``: it died and
    was not reaped; its argv is then empty)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            state, ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if int(ppid) == pid:
            found.append((int(proc.name), state, argv))
    return found


def stub_states(server_pid: int) -> List[Tuple[int, str, str]]:
    """``(pid, model.py, state)`` of each Python backend stub that ``server_pid`` started;
    a child that died unreaped (``Z``) counts as one (tritonserver starts nothing else)."""
    return [(pid, argv[1].decode(errors="replace") if len(argv) > 1 else "a model", state)
            for pid, state, argv in children(server_pid)
            if state == "Z" or argv[0].endswith(STUB.encode())]


def supervise(cmd: List[str], env: Dict[str, str], poll_s: float = 0.5, grace_polls: int = 4,
              states: Callable[[int], List[Tuple[int, str, str]]] = stub_states) -> int:
    """Run tritonserver; return its exit status, or 1 after stopping it when a stub died:
    for ``grace_polls`` polls in a row, a model has fewer live stubs than it had (Triton
    reaped a dead one and goes on answering 500), or a stub is a zombie (Triton waits on it
    forever while loading). At load, the stub that completes a model's config exits
    normally before the model's own starts: hence the grace. SIGTERM and SIGINT are passed
    on to tritonserver, after which stubs end as asked. Models are taken to stay loaded
    (Triton's default model control mode, ``none``)."""
    server = subprocess.Popen(cmd, env=env)
    stopping = []

    def stop(signum, frame) -> None:
        stopping.append(signum)
        server.send_signal(signum)

    handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _watch(server, stopping, poll_s, grace_polls, states)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _watch(server: subprocess.Popen, stopping: list, poll_s: float, grace_polls: int,
           states: Callable[[int], List[Tuple[int, str, str]]]) -> int:
    most: Dict[str, int] = {}
    short = 0
    while server.poll() is None:
        time.sleep(poll_s)
        found = states(server.pid)
        live = Counter(model for _, model, state in found if state != "Z")
        lost = sorted({model for _, model, state in found if state == "Z"}
                      | {model for model, count in most.items() if live[model] < count})
        for model, count in live.items():
            most[model] = max(count, most.get(model, 0))
        short = short + 1 if lost and not stopping and server.poll() is None else 0
        if short >= grace_polls:
            print(f"mmocr-serve: the Python backend stub of {', '.join(lost)} died and Triton "
                  "does not restart it; stopping tritonserver (exit 1) so that the server is "
                  "restarted", file=sys.stderr, flush=True)
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            return 1
    return server.returncode


@dataclass
class TritonProcess(ServerProcess):
    """``tritonserver`` on ``repository`` with loopback ports of its own."""

    NAME = "tritonserver"
    LOG_NAME = "tritonserver.out"

    repository: Path
    workdir: Path
    models: Sequence[str] = ()  # ready() waits for these; default: the repository's entries
    args: Sequence[str] = ()  # more tritonserver options
    env: Optional[Dict[str, Optional[str]]] = None  # for the server and its stubs; None unsets

    def __post_init__(self):
        self.workdir = Path(self.workdir)
        self.ports = {name: free_port() for name in ("http", "grpc", "metrics")}
        self.http_url = f"http://127.0.0.1:{self.ports['http']}"
        self.grpc_addr = f"127.0.0.1:{self.ports['grpc']}"
        self.metrics_url = f"http://127.0.0.1:{self.ports['metrics']}"
        self.models = list(self.models) or sorted(
            p.name for p in Path(self.repository).iterdir() if (p / "config.pbtxt").exists())
        self.proc = None

    def launch(self) -> "TritonProcess":
        ports = [f"--http-port={self.ports['http']}", f"--grpc-port={self.ports['grpc']}",
                 f"--metrics-port={self.ports['metrics']}", "--http-address=127.0.0.1",
                 "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1"]
        env = server_env()  # and this package, for the supervisor (python -m)
        env["PYTHONPATH"] += os.pathsep + str(Path(__file__).resolve().parents[1])
        self.spawn(server_command(self.repository, [*ports, *self.args]),
                   with_overrides(env, self.env))
        return self

    def models_ready(self) -> bool:
        return all(self.status(f"/v2/models/{name}/ready") == 200 for name in self.models)

    def status(self, path: str) -> Optional[int]:
        """The HTTP status of ``GET path``, or None when the server does not answer."""
        try:
            with urllib.request.urlopen(self.http_url + path, timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return None

    def model_stats(self, name: str) -> dict:
        """``/v2/models/NAME/stats``: Triton's own counts (inference_count, execution_count)."""
        with urllib.request.urlopen(f"{self.http_url}/v2/models/{name}/stats", timeout=10) as resp:
            return json.load(resp)["model_stats"][0]


def infer_request(image: bytes, parameters: Optional[dict] = None) -> bytes:
    """A JSON body for ``POST /v2/models/NAME/infer`` (the KServe v2 protocol): the image
    as base64 text in ``IMAGE``, the options as request parameters."""
    request = {"inputs": [{"name": INPUT, "shape": [1, 1], "datatype": "BYTES",
                           "data": [base64.b64encode(image).decode("ascii")]}]}
    if parameters:
        request["parameters"] = parameters
    return json.dumps(request).encode()


def binary_infer_request(image: bytes) -> Tuple[bytes, Dict[str, str]]:
    """The body and headers of ``POST /v2/models/NAME/infer`` with the image as raw bytes
    (Triton's binary tensor extension, which tritonclient uses): a JSON header, then the
    BYTES element as a 4-byte little-endian length and the bytes. The answer comes as JSON."""
    header = json.dumps({
        "inputs": [{"name": INPUT, "shape": [1, 1], "datatype": "BYTES",
                    "parameters": {"binary_data_size": 4 + len(image)}}],
        "outputs": [{"name": OUTPUT, "parameters": {"binary_data": False}}]}).encode()
    return (header + struct.pack("<I", len(image)) + image,
            {"Content-Type": "application/octet-stream",
             "Inference-Header-Content-Length": str(len(header))})


def answer_of(body: bytes) -> dict:
    """The wire-format answer in a KServe v2 JSON response; an error response's own JSON
    error body (``{"error": "<our JSON>"}``), or Triton's message as ``{"message": ...}``."""
    response = json.loads(body)
    if "error" in response:
        try:
            return json.loads(response["error"])
        except ValueError:
            return {"message": response["error"]}
    return json.loads(response["outputs"][0]["data"][0])


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[2].strip())
        return 0 if argv else 2
    return supervise(tritonserver_command(Path(argv[0]), argv[1:]), server_env())


if __name__ == "__main__":
    sys.exit(main())
