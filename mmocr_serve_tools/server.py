"""Start and stop a real TorchServe on loopback ports (for tests, the demo and benchmarks);
``ServerProcess`` is what it shares with Triton's (``mmocr_serve_tools.triton``).

Each instance gets its own ports, working directory and temp directory (TorchServe keeps
its pid file in the temp directory), so it never collides with a server the user runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.properties"


def torchserve_executable() -> str:
    """The ``torchserve`` of this interpreter's environment, activated or not."""
    beside = Path(sys.executable).parent / "torchserve"
    return str(beside) if beside.exists() else (shutil.which("torchserve") or "torchserve")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A server in a process group of its own, its output in ``workdir/LOG_NAME``."""

    NAME = "the server"
    LOG_NAME = "server.out"
    LOG_FILES: Sequence[str] = ()  # further logs under workdir, for ``tail``
    proc: Optional[subprocess.Popen] = None
    workdir: Path
    metrics_url: str

    def launch(self):
        raise NotImplementedError

    def models_ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout_s: float = 300):
        """Start the server and wait until every model is ready; stop it again if they are
        not (it is not left running behind a failed start)."""
        self.launch()
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self


    def spawn(self, cmd: List[str], env: Dict[str, str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.workdir / self.LOG_NAME, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout_s: float) -> None:
        """Poll ``models_ready()`` until it holds; fail with the log's tail if the server
        exits or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.NAME} exited with {self.proc.returncode}:\n"
                                   f"{self.tail()}")
            if self.models_ready():
                return
            time.sleep(1)
        raise RuntimeError(f"{self.NAME} not ready after {timeout_s} s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        text = ""
        for name in (self.LOG_NAME, *self.LOG_FILES):
            path = self.workdir / name
            if path.exists():
                text += f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def stop(self, timeout_s: float = 60) -> Optional[int]:
        """SIGTERM the server's process group; SIGKILL it if it lingers. Returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        try:  # workers are in the same session; make sure none is left
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()
        return self.proc.returncode

    def metrics(self, prefix: str = "mmocr_") -> Dict[tuple, float]:
        """The metrics port's Prometheus samples named ``prefix*`` (see ``read_metrics``)."""
        return read_metrics(self.metrics_url, prefix)

    def settled_metrics(self, quiet_s: float = 1.5, timeout_s: float = 30) -> Dict[tuple, float]:
        """``metrics()`` once two reads ``quiet_s`` apart agree: the workers report their
        counters once a second (``mmocr_serve.metrics``), so a read just after a request
        may not hold it yet."""
        deadline = time.monotonic() + timeout_s
        last = self.metrics()
        while True:
            time.sleep(quiet_s)
            now = self.metrics()
            if now == last or time.monotonic() > deadline:
                return now
            last = now

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class TorchServeProcess(ServerProcess):
    """A TorchServe started from ``config.properties`` with loopback ports of its own."""

    NAME = "TorchServe"
    LOG_NAME = "torchserve.out"
    LOG_FILES = ("logs/model_log.log", "logs/ts_log.log")

    model_store: Path
    models: Sequence[str]  # e.g. ["dbnet=dbnet.mar"]
    workdir: Path
    overrides: Optional[Dict[str, str]] = None
    base_config: Path = REPO_CONFIG
    keep_hosts: bool = False  # bind where base_config says (only the ports change)
    env: Optional[Dict[str, Optional[str]]] = None  # for TorchServe and its workers; None unsets

    def __post_init__(self):
        self.workdir = Path(self.workdir)
        self.ports = {name: free_port() for name in ("inference", "management", "metrics",
                                                     "grpc_inference", "grpc_management")}
        self.inference_url = f"http://127.0.0.1:{self.ports['inference']}"
        self.management_url = f"http://127.0.0.1:{self.ports['management']}"
        self.metrics_url = f"http://127.0.0.1:{self.ports['metrics']}"
        self.bind_urls = {name: getattr(self, f"{name}_url")
                          for name in ("inference", "management", "metrics")}
        self.proc: Optional[subprocess.Popen] = None

    def config_text(self) -> str:
        props = {}
        for line in self.base_config.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                props[key.strip()] = value.strip()
        if self.keep_hosts:
            for name in self.bind_urls:
                host = props[f"{name}_address"].rsplit(":", 1)[0]
                self.bind_urls[name] = f"{host}:{self.ports[name]}"
        props.update({
            **{f"{name}_address": url for name, url in self.bind_urls.items()},
            "grpc_inference_port": str(self.ports["grpc_inference"]),
            "grpc_management_port": str(self.ports["grpc_management"]),
            # names the workers' Unix sockets (/tmp/.ts.sock.PORT): unique per server
            "initial_worker_port": str(free_port()),
        })
        props.update(self.overrides or {})
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def launch(self) -> "TorchServeProcess":
        """Start TorchServe without waiting for its models."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "tmp").mkdir(exist_ok=True)
        config = self.workdir / "config.properties"
        config.write_text(self.config_text())
        cmd = [torchserve_executable(), "--start", "--foreground", "--ncs",
               "--model-store", str(self.model_store), "--ts-config", str(config),
               "--models", *self.models]
        env = dict(os.environ, TMPDIR=str(self.workdir / "tmp"),
                   LOG_LOCATION=str(self.workdir / "logs"),
                   METRICS_LOCATION=str(self.workdir / "logs"))
        self.spawn(cmd, with_overrides(env, self.env))
        return self

    def models_ready(self) -> bool:
        """True when ``/ping`` is healthy and every model has a READY worker (``start``)."""
        import json

        try:
            with urllib.request.urlopen(self.inference_url + "/ping", timeout=2) as resp:
                if json.load(resp).get("status") != "Healthy":
                    return False
            with urllib.request.urlopen(self.management_url + "/models", timeout=2) as resp:
                names = [m["modelName"] for m in json.load(resp)["models"]]
            if len(names) < len(self.models):
                return False
            for name in names:
                with urllib.request.urlopen(f"{self.management_url}/models/{name}", timeout=2) as resp:
                    workers = json.load(resp)[0]["workers"]
                if not any(w["status"] == "READY" for w in workers):
                    return False
            return True
        except (OSError, ValueError, KeyError, urllib.error.URLError):
            return False

    def worker_pids(self, model: str) -> List[int]:
        import json

        with urllib.request.urlopen(f"{self.management_url}/models/{model}", timeout=5) as resp:
            return [w["pid"] for w in json.load(resp)[0]["workers"]]


def with_overrides(env: Dict[str, str], overrides: Optional[Dict[str, Optional[str]]]
                   ) -> Dict[str, str]:
    """``env`` with ``overrides`` applied, a None value unsetting its variable."""
    env = dict(env)
    for key, value in (overrides or {}).items():
        env.pop(key, None) if value is None else env.__setitem__(key, value)
    return env


def read_metrics(metrics_url: str, prefix: str = "mmocr_") -> Dict[tuple, float]:
    """``GET /metrics`` -> ``{(name, ((label, value), ...)): sample}`` for names starting
    with ``prefix``, labels sorted (Prometheus text format)."""
    import re

    with urllib.request.urlopen(metrics_url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    samples = {}
    for line in text.splitlines():
        found = re.match(r"^([A-Za-z_:][\w:]*)(?:\{(.*?),?\})? (\S+)$", line)
        if found and found.group(1).startswith(prefix):
            labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', found.group(2) or "")))
            samples[(found.group(1), labels)] = float(found.group(3))
    return samples


def metric_sum(samples: Dict[tuple, float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(value for (sample, have), value in samples.items()
               if sample == name and set(labels.items()) <= set(have))
