"""The serving image's entrypoint against a real TorchServe: it serves, stops cleanly on
SIGTERM, and exits with TorchServe when TorchServe dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from clis import ROOT

ENTRYPOINT = ROOT / "docker" / "serve" / "entrypoint.py"


def test_entrypoint_serves_and_stops_cleanly_on_sigterm(model_store, workdir):
    work = workdir / "entrypoint-term"
    proc, server, env = start_entrypoint(model_store, work, "serve", "--disable-token-auth")
    try:
        health = subprocess.run([sys.executable, str(ENTRYPOINT), "healthcheck"], cwd=work,
                                env=dict(env, INFERENCE_PORT=str(server.ports["inference"])))
        assert health.returncode == 0
        java = frontend_pid(work)
        assert requests.get(f"{server.inference_url}/ping", timeout=5).json()["status"] == "Healthy"
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        took = time.monotonic() - began
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 0, (work / "entrypoint.out").read_text()[-2000:]
    assert took < 30
    assert not alive(java)
    assert "TorchServe stopped" in (work / "entrypoint.out").read_text()


def test_entrypoint_exits_with_torchserve_when_it_dies(model_store, workdir):
    work = workdir / "entrypoint-kill"
    proc, server, _ = start_entrypoint(model_store, work)
    try:
        os.kill(frontend_pid(work), signal.SIGKILL)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            try:  # the frontend's workers, if any outlived it
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert code == 128 + signal.SIGKILL


def start_entrypoint(model_store: Path, workdir: Path, *args: str):
    from mmocr_serve_tools.server import TorchServeProcess

    layout = TorchServeProcess(model_store=model_store, models=["crnn=crnn.mar"], workdir=workdir)
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    config = workdir / "config.properties"
    config.write_text(layout.config_text())
    env = entrypoint_env(workdir, config, model_store)
    proc = subprocess.Popen([sys.executable, str(ENTRYPOINT), *args], cwd=workdir, env=env,
                            stdout=open(workdir / "entrypoint.out", "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    layout.proc = proc
    deadline = time.monotonic() + 240
    while not layout.models_ready():
        assert proc.poll() is None, (workdir / "entrypoint.out").read_text()[-3000:]
        assert time.monotonic() < deadline, "TorchServe not ready"
        time.sleep(1)
    return proc, layout, env


def frontend_pid(workdir: Path) -> int:
    return int((workdir / "tmp" / ".model_server.pid").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def entrypoint_env(workdir: Path, config: Path, model_store: Path) -> dict:
    return dict(os.environ, MODEL_STORE=str(model_store), TS_CONFIG=str(config),
                MODELS="crnn=crnn.mar", TMPDIR=str(workdir / "tmp"),
                LOG_LOCATION=str(workdir / "logs"), METRICS_LOCATION=str(workdir / "logs"),
                PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
