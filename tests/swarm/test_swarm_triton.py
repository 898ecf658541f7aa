"""The Triton stack (deploy/swarm/stack-triton.yml), deployed with docs/scaling.md's commands
on a one-node swarm: two Triton replicas behind the same HAProxy, found by DNS, their
answers equal in-process MMOCR's, and Prometheus scraping Triton's and our counters from
both. The swarm is made here when the engine is in none, and left again only then."""

from __future__ import annotations

import shutil

import pytest

from answers import assert_reads, assert_same
from dockerd import base_image, build, docker, document_commands, running_engine
from polling import wait_until
from test_swarm import prometheus_query
from triton_client import Published, infer, ready

from mmocr_serve_tools.server import free_port

DOC = "docs/scaling.md"
STACK = "mmocrtriton"
SERVICE = f"{STACK}_mmocr"
ENTRIES = ("ocr", "crnn")
# docs/scaling.md's image tags -> this run's, passed to the stack file's variables
IMAGES = {"mmocr-serve-triton-models:latest": ("MMOCR_IMAGE", "mmocr-serve-triton-models:test"),
          "mmocr-serve-lb:latest": ("LB_IMAGE", "mmocr-serve-lb:test"),
          "mmocr-serve-prometheus:latest": ("PROMETHEUS_IMAGE", "mmocr-serve-prometheus:test")}
TRITON_TAG = "mmocr-serve:triton"


@pytest.fixture(scope="module")
def engine(workdir):
    """dockerd in a one-node swarm (``dockerd.running_engine``)."""
    with running_engine(workdir / "dockerd", swarm=True) as started:
        yield started


@pytest.fixture(scope="module")
def images(engine, triton_repo, workdir) -> dict:
    """docs/scaling.md's Triton, balancer and Prometheus builds, with this run's tags; the
    models image bakes the end-to-end entry and the recognizer's."""
    context = workdir / "swarm-triton-repo"
    shutil.rmtree(context, ignore_errors=True)
    for name in ENTRIES:
        shutil.copytree(triton_repo / name, context / name)
    base = base_image("debian:bookworm-slim", "bookworm")
    on_base = ["--build-arg", f"BASE={base}"] if base else []
    env = {}
    for command in document_commands([DOC], ("build",)):
        tag = command[command.index("-t") + 1]
        if tag == TRITON_TAG:
            build(command, on_base)
        elif tag in IMAGES:
            variable, ours = IMAGES[tag]
            command = [ours if arg == tag else arg for arg in command]
            if command[-1] == "model-repository":
                command[-1] = str(context)
                extra = ["--build-arg", f"SERVING_IMAGE={TRITON_TAG}"]
            else:
                extra = on_base
            build(command, extra)
            env[variable] = ours
    assert set(env) == {variable for variable, _ in IMAGES.values()}, env
    return env


@pytest.fixture(scope="module")
def stack(images):
    (deploy,) = [c for c in document_commands([DOC], ("stack deploy",)) if "stack-triton.yml" in
                 " ".join(c)]
    port = free_port()
    docker(*[STACK if arg == "mmocr" else arg for arg in deploy[1:]], timeout=180,
           env=dict(images, MMOCR_PORT=str(port)))
    balancer = Published(port)
    try:
        wait_until(lambda: len(healthy()) == 2, 420, "2 healthy Triton replicas",
                   state=lambda: docker("service", "ps", "--no-trunc", SERVICE,
                                        check=False).stdout[-2000:])
        wait_until(lambda: ready(balancer), 60, "the balancer's /v2/health/ready")
        yield balancer
    finally:
        wait_until(lambda: docker("stack", "rm", STACK, check=False).returncode == 0, 120,
                   "docker stack rm", every_s=2)


def healthy() -> list:
    return docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={SERVICE}",
                  "--filter", "health=healthy").stdout.split()


def test_answers_through_the_balancer_and_prometheus_scrapes_both_replicas(
        stack, image_files, rendered, readtext):
    page = image_files["scene.jpg"]
    expected = readtext(page)
    assert_reads(rendered["scene.jpg"], expected)
    for _ in range(4):  # least connections, one at a time: both replicas answer some
        assert_same(expected, infer(stack, "ocr", page.read_bytes()))
    word = image_files["word.png"].read_bytes()
    for _ in range(6):
        assert infer(stack, "crnn", word)["text"] == rendered["word.png"]
    for metric in ("nv_inference_count", "mmocr_requests_total"):
        query = f'sum by (instance) ({metric}{{job="mmocr"}}) > 0'
        wait_until(lambda: len(prometheus_query(STACK, query)) == 2, 90,
                   f"Prometheus: {metric} from both replicas",
                   state=lambda: prometheus_query(STACK, query))
