"""Reliability and exposure, against real TorchServe servers: hostile input, a killed
worker, a corrupted archive, and the effective network configuration."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import zipfile

import pytest
import requests

from hostile import hostile_corpus
from images import encode, text_image
from mmocr_serve_tools.server import REPO_CONFIG, TorchServeProcess
from polling import wait_until


def request_limit() -> int:
    for line in REPO_CONFIG.read_text().splitlines():
        if line.startswith("max_request_size="):
            return int(line.split("=", 1)[1])
    raise AssertionError("config.properties sets no max_request_size")


CORPUS = hostile_corpus(request_limit())


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_hostile_input_fails_alone_and_the_worker_survives(torchserve, case):
    kwargs, allowed = CORPUS[case]
    url = f"{torchserve.inference_url}/predictions/dbnet"
    pids = torchserve.worker_pids("dbnet")
    response = requests.post(url, timeout=120, **kwargs)
    assert response.status_code in allowed, (response.status_code, response.text[:300])
    if case == "body over the request limit":
        pass  # TorchServe's frontend refuses it before the handler, without a JSON body
    elif response.status_code >= 400:
        body = response.json()
        assert body["code"] == response.status_code and body["message"], body
    else:
        assert isinstance(response.json()["boundary_result"], list)
    good = requests.post(url, data=encode(text_image("after", (320, 96)), "PNG"), timeout=120)
    assert good.status_code == 200, good.text
    assert torchserve.worker_pids("dbnet") == pids


def test_killed_worker_is_replaced_and_serving_resumes(model_store, workdir):
    """SIGKILL the worker under load: requests fail with a 5xx only while no worker is up,
    TorchServe starts a new one, and answers are again what they were."""
    image = encode(text_image("fault", (128, 32)), "PNG")
    with TorchServeProcess(model_store=model_store, models=["crnn=crnn.mar"],
                           workdir=workdir / "torchserve-fault") as server:
        url = f"{server.inference_url}/predictions/crnn"
        before = requests.post(url, data=image, timeout=60).json()
        old_pid, = server.worker_pids("crnn")
        statuses, stop = [], threading.Event()

        def load():
            while not stop.is_set():
                try:
                    statuses.append(requests.post(url, data=image, timeout=60).status_code)
                except requests.RequestException as err:
                    statuses.append(type(err).__name__)

        clients = [threading.Thread(target=load) for _ in range(4)]
        for client in clients:
            client.start()
        time.sleep(2)
        os.kill(old_pid, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not server.models_ready():
            time.sleep(0.5)
        time.sleep(2)
        stop.set()
        for client in clients:
            client.join()
        new_pids = server.worker_pids("crnn")
        after = requests.post(url, data=image, timeout=60)
    assert new_pids and old_pid not in new_pids
    assert after.status_code == 200 and after.json() == before
    failures = [s for s in statuses if s != 200]
    assert all(isinstance(s, int) and s >= 500 for s in failures), failures
    assert statuses[-1] == 200 and statuses.count(200) > len(failures)


def test_corrupted_checkpoint_in_an_archive_fails_with_a_clear_message(model_store, workdir):
    store = workdir / "corrupt-store"
    store.mkdir(exist_ok=True)
    with zipfile.ZipFile(model_store / "crnn.mar") as src, \
            zipfile.ZipFile(store / "broken.mar", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, b"garbage, not a checkpoint" if item.filename.endswith(".pth")
                         else data)
    server = TorchServeProcess(model_store=store, models=["broken=broken.mar"],
                               workdir=workdir / "torchserve-corrupt").launch()
    log = server.workdir / "logs" / "model_log.log"
    try:
        wait_until(lambda: "cannot load the recog model" in read(log), 120,
                   "the worker's load error in model_log.log", state=server.tail)
        assert "recog.pth" in read(log)
        assert not server.models_ready()
    finally:
        server.stop()


def read(path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def non_loopback_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.1", 9))  # no packet is sent; picks the outgoing interface
        return sock.getsockname()[0]


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_effective_configuration_is_not_exposed(model_store, workdir):
    """config.properties as shipped (hosts kept, ports changed): management and metrics on
    loopback only, model registration off, only local URLs, token authorisation as documented."""
    with TorchServeProcess(model_store=model_store, models=["crnn=crnn.mar"], keep_hosts=True,
                           workdir=workdir / "torchserve-exposure") as server:
        banner = (server.workdir / "logs" / "ts_log.log").read_text()
        outside = non_loopback_address()
        assert f"Inference address: http://0.0.0.0:{server.ports['inference']}" in banner
        assert f"Management address: http://127.0.0.1:{server.ports['management']}" in banner
        assert f"Metrics address: http://127.0.0.1:{server.ports['metrics']}" in banner
        assert "Model API enabled: false" in banner
        assert "Allowed Urls: [file://.*]" in banner
        assert reachable(outside, server.ports["inference"])
        assert not reachable(outside, server.ports["management"])
        assert not reachable(outside, server.ports["metrics"])
        register = requests.post(f"{server.management_url}/models",
                                 params={"url": "https://example.com/x.mar"}, timeout=10)
        assert register.status_code == 405
        # token authorisation off, as documented: no key file, /ping answers without a key
        assert not (server.workdir / "key_file.json").exists()
        assert requests.get(f"{server.inference_url}/ping", timeout=10).status_code == 200
