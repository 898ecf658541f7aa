"""The Docker Swarm stack (deploy/swarm/), deployed on a one-node swarm with the commands
of docs/scaling.md: replicas behind HAProxy, found by DNS, scaled, updated, killed and
removed, while clients keep sending requests through the balancer.

The swarm is made here when the engine is in none, and left again only then. The images
are the serving image the Docker tests built (every layer cached) and three small ones
on top of it and of the same Debian base.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from answers import assert_reads, assert_same
from conftest import RECOG_CONFIG
from dockerd import (base_image, build, build_serving_image, docker, document_commands,
                     get_in_container, running_engine)
from polling import wait_until

from mmocr_serve_tools.loadgen import LoadResult, drive
from mmocr_serve_tools.server import free_port


DOC = "docs/scaling.md"
STACK = "mmocrtest"
SERVICE = f"{STACK}_mmocr"
ARCHIVES = ("ocr.mar", "crnn.mar")
# docs/scaling.md's image tags -> this run's, passed to the stack file's variables
IMAGES = {"mmocr-serve-models:latest": ("MMOCR_IMAGE", "mmocr-serve-models:test"),
          "mmocr-serve-lb:latest": ("LB_IMAGE", "mmocr-serve-lb:test"),
          "mmocr-serve-prometheus:latest": ("PROMETHEUS_IMAGE", "mmocr-serve-prometheus:test")}
TRITON_IMAGES = ("mmocr-serve:triton", "mmocr-serve-triton-models:latest")
START_S = 300  # the stack's health check start period: a replica is up within it
CLIENTS = 4
LB_STATS = "http://lb:8404/stats;csv"  # the balancer's view of the replicas, on the stack network


def doc_commands(verb: str) -> list:
    return document_commands([DOC], (verb,))


@pytest.fixture(scope="module")
def engine(workdir):
    """dockerd in a one-node swarm (``dockerd.running_engine``)."""
    with running_engine(workdir / "dockerd", swarm=True) as started:
        yield started


@pytest.fixture(scope="module")
def images(engine, model_store, workdir) -> dict:
    """docs/scaling.md's ``docker build`` commands with this run's tags; the models image
    bakes the trained end-to-end archive and the recognizer."""
    serving = build_serving_image()
    context = workdir / "swarm-models"
    context.mkdir(exist_ok=True)
    for name in ARCHIVES:
        (context / name).write_bytes((model_store / name).read_bytes())
    base = base_image("debian:bookworm-slim", "bookworm")
    env = {}
    for command in doc_commands("build"):
        tag = command[command.index("-t") + 1]
        if tag == serving or tag in TRITON_IMAGES:  # the Triton stack's: test_swarm_triton.py
            continue
        variable, ours = IMAGES[tag]
        command = [ours if arg == tag else arg for arg in command]
        if command[-1] == "checkpoints":  # the models image: its context is the model store
            command[-1] = str(context)
            extra = ["--build-arg", f"SERVING_IMAGE={serving}"]
        else:
            extra = ["--build-arg", f"BASE={base}"] if base else []
        took = build(command, extra)
        print(f"\n{ours}: built in {took:.0f} s")
        env[variable] = ours
    assert set(env) == {variable for variable, _ in IMAGES.values()}, env
    return env


@pytest.fixture(scope="module")
def stack(images, workdir):
    """The stack deployed with docs/scaling.md's command, on a free port of 127.0.0.1;
    yields the balancer's URL once every replica is healthy and the balancer answers."""
    (deploy,) = [c for c in doc_commands("stack deploy") if "deploy/swarm/stack.yml" in c]
    port = free_port()
    env = dict(images, MMOCR_PORT=str(port))
    docker(*[STACK if arg == "mmocr" else arg for arg in deploy[1:]], timeout=180, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_replicas(2, url)
        yield url
    finally:
        print(tasks())
        remove_stack()


def remove_stack() -> None:
    """docs/scaling.md's ``docker stack rm``, run again while it reports the stack's network
    in use: the engine removes the network right after the services, and fails to while
    their tasks are still stopping (moby/moby#31068); a later run removes it."""
    outputs = []

    def removed() -> bool:
        done = docker("stack", "rm", STACK, timeout=120, check=False)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0 or "in use by task" in outputs[-1], outputs[-1]
        return done.returncode == 0

    wait_until(removed, 120, "docker stack rm", every_s=2, state=lambda: outputs[-1])


def replicas(health: str = "healthy") -> list:
    """IDs of the service's containers in this health state."""
    return docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={SERVICE}",
                  "--filter", f"health={health}").stdout.split()


def lb_servers_up() -> int:
    """Replicas the balancer counts as up, from its stats page, read on the stack's network."""
    return sum(1 for line in in_network(LB_STATS).splitlines()
               if line.startswith("mmocr,mmocr") and ",UP," in line)


def in_network(url: str) -> str:
    """GET ``url`` from inside one replica, that is, on the stack's own network."""
    return get_in_container(replicas()[0], url).stdout


def wait_for_replicas(count: int, url: str) -> None:
    """``count`` healthy replicas, every one of them up in the balancer, and an answer."""
    wait_until(lambda: len(replicas()) == count, START_S + 120, f"{count} healthy replicas",
               state=tasks)
    wait_until(lambda: lb_servers_up() == count, 60, f"{count} replicas up in the balancer",
               state=lambda: in_network(LB_STATS))
    wait_until(lambda: pings(url), 30, "the balancer's /ping", state=tasks)


def tasks() -> str:
    """The service's tasks, their states and errors (``docker service ps``)."""
    return docker("service", "ps", "--no-trunc", SERVICE, check=False).stdout[-3000:]


def pings(url: str) -> bool:
    try:
        return requests.get(f"{url}/ping", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def requests_answered(container: str) -> float:
    """The replica's own ``mmocr_requests_total``, all models, from its metrics endpoint."""
    text = get_in_container(container, "http://127.0.0.1:8082/metrics").stdout
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("mmocr_requests_total{"))


def prometheus(query: str) -> list:
    return prometheus_query(STACK, query)


def prometheus_query(stack: str, query: str) -> list:
    """An instant query on ``stack``'s Prometheus (``promtool``, in its own container)."""
    (container,) = docker("ps", "-q", "--filter",
                          f"label=com.docker.swarm.service.name={stack}_prometheus").stdout.split()
    done = docker("exec", container, "promtool", "query", "instant", "-o", "json",
                  "http://127.0.0.1:9090", query, timeout=60)
    return json.loads(done.stdout)


class Load:
    """Closed-loop clients through the balancer, from start until stop."""

    def __init__(self, url: str, body: bytes):
        self.stop_event = threading.Event()
        self.result = LoadResult(concurrency=CLIENTS)
        self.pool = ThreadPoolExecutor(1)
        self.future = self.pool.submit(drive, url, [body], CLIENTS, 3600,
                                       stop=self.stop_event, result=self.result)

    def stop(self) -> LoadResult:
        self.stop_event.set()
        self.future.result(timeout=300)
        self.pool.shutdown()
        return self.result


@pytest.fixture(scope="module")
def word(image_files) -> bytes:
    return image_files["word.png"].read_bytes()


def test_answers_through_the_balancer_equal_in_process_mmocr(stack, image_files, rendered,
                                                             readtext, reference_model,
                                                             recog_checkpoint):
    from mmocr.apis import model_inference

    from mmocr_serve.results import Recognition

    page = image_files["scene.jpg"]
    expected = readtext(page)
    assert_reads(rendered["scene.jpg"], expected)
    served = requests.post(f"{stack}/predictions/ocr", data=page.read_bytes(), timeout=120)
    assert served.status_code == 200, served.text
    assert_same(expected, served.json())

    word = image_files["word.png"]
    expected = Recognition.from_mmocr(
        model_inference(reference_model(RECOG_CONFIG, recog_checkpoint), str(word))).to_dict()
    assert expected["text"] == rendered["word.png"]
    served = requests.post(f"{stack}/predictions/crnn", data=word.read_bytes(), timeout=120)
    assert served.status_code == 200, served.text
    assert_same(expected, served.json())


def test_replicas_size_their_threads_by_the_stacks_cpu_limit(stack):
    for container in replicas():
        limit = docker("inspect", "--format", "{{.HostConfig.NanoCpus}}", container).stdout
        assert int(limit) == 2 * 10**9, limit  # the stack's limit, cpus "2": a CPU quota

        def started() -> list:
            return [line for line in docker("logs", container).stdout.splitlines()
                    if "model ready" in line]

        # a replica is healthy once /ping is, which can be before its last model is loaded
        wait_until(lambda: len(started()) == len(ARCHIVES), 120, "every model's start-up line",
                   state=lambda: "\n".join(started()))
        ready = started()
        threads = [int(line.split("(", 1)[1].split(" torch threads")[0]) for line in ready]
        assert sum(threads) <= 2, ready  # every worker's threads within the 2 CPUs
        assert all("OMP_WAIT_POLICY=PASSIVE" in line for line in ready), ready


def report(capsys, line: str) -> None:
    """A measured count, shown on the terminal even when the test passes."""
    with capsys.disabled():
        print(f"\n[swarm] {line}")


def test_three_replicas_share_the_requests_and_prometheus_finds_them(stack, word, capsys):
    docker("service", "scale", "--detach", f"{SERVICE}=3", timeout=60)
    wait_for_replicas(3, stack)
    before = {c: requests_answered(c) for c in replicas()}
    for _ in range(30):
        answer = requests.post(f"{stack}/predictions/crnn", data=word, timeout=120)
        assert answer.status_code == 200, answer.text
    # the handler sends its counters once a second
    wait_until(lambda: sum(requests_answered(c) for c in before) - sum(before.values()) >= 30,
               30, "30 requests counted by the replicas")
    answered = {c: requests_answered(c) - n for c, n in before.items()}
    report(capsys, f"30 requests through the balancer, per replica: {sorted(answered.values())}")
    assert all(n > 0 for n in answered.values()), answered

    # the handler's counters and TorchServe's own, from every replica
    for metric in ("mmocr_requests_total", "ts_inference_requests_total"):
        query = f'sum by (instance) ({metric}{{job="mmocr"}}) > 0'
        wait_until(lambda: len(prometheus(query)) == 3, 60,
                   f"Prometheus: {metric} from all 3 replicas", state=lambda: prometheus(query))
    up = prometheus('up{job="mmocr"} == 1')
    assert len(up) == 3, up

    docker("service", "scale", "--detach", f"{SERVICE}=2", timeout=60)
    wait_for_replicas(2, stack)


def test_a_rolling_update_under_load_fails_no_request(stack, word, capsys):
    old = set(replicas())
    load = Load(f"{stack}/predictions/crnn", word)
    try:
        time.sleep(3)
        docker("service", "update", "--force", "--detach=false", SERVICE, timeout=1200)
    finally:
        result = load.stop()
    state = docker("service", "inspect", "--format", "{{.UpdateStatus.State}}", SERVICE)
    report(capsys, f"rolling update under {CLIENTS} clients: {sum(result.statuses.values())} "
                   f"requests, {result.errors} failed ({result.statuses})")
    assert state.stdout.strip() == "completed", state.stdout
    assert result.ok > 0 and result.errors == 0, result.statuses
    new = set(replicas())
    assert len(new) == 2 and not old & new, (old, new)


def test_a_killed_replica_is_replaced_and_few_requests_fail(stack, word, capsys):
    old = set(replicas())
    victim = sorted(old)[0]
    load = Load(f"{stack}/predictions/crnn", word)
    try:
        time.sleep(5)
        in_flight = load.result.in_flight  # on every replica: a bound on the victim's
        docker("kill", victim)
        began = time.monotonic()
        wait_until(lambda: len(set(replicas()) - {victim}) == 2, START_S,
                   "the service back to 2 healthy replicas")
        back_s = time.monotonic() - began
        time.sleep(3)
    finally:
        result = load.stop()
    report(capsys, f"docker kill of one replica under {CLIENTS} clients: {result.errors} of "
                   f"{sum(result.statuses.values())} requests failed ({result.statuses}); "
                   f"{in_flight} in flight (all replicas) when it died; "
                   f"back to 2 replicas in {back_s:.0f} s")
    assert result.ok > 0
    assert result.errors <= in_flight, result.statuses
    assert pings(stack)
    answer = requests.post(f"{stack}/predictions/crnn", data=word, timeout=120)
    assert answer.status_code == 200, answer.text


def test_stack_rm_removes_everything_it_made(stack):
    label = f"label=com.docker.stack.namespace={STACK}"

    def left() -> dict:
        return {kind: docker(*command, "--filter", label).stdout.split()
                for kind, command in (("services", ("service", "ls", "-q")),
                                      ("containers", ("ps", "-aq")),
                                      ("networks", ("network", "ls", "-q")),
                                      ("configs", ("config", "ls", "-q")),
                                      ("secrets", ("secret", "ls", "-q")))}
    made = left()
    assert made["services"] and made["containers"] and made["networks"], made
    remove_stack()
    wait_until(lambda: not any(left().values()), 120, "docker stack rm removing everything",
               state=lambda: str(left()))
