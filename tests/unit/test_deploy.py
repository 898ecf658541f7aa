"""The Kubernetes manifests under deploy/kubernetes/: valid against the Kubernetes schemas, and
to the image as the image is built."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from dockerd import document_commands

from clis import ROOT
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
STACK = ROOT / "deploy" / "swarm" / "stack.yml"


def resources() -> dict:
    found = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def test_manifests_validate_against_the_kubernetes_schemas():
    tool = Path(sys.executable).parent / "kubernetes-validate"
    for version in ("1.30.0", "1.37.0"):
        run = subprocess.run([str(tool), "-k", version, "--strict", "--quiet",
                              *map(str, MANIFESTS)], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


def test_deployment_probes_gpu_and_model_store():
    found = resources()
    pod = found[("Deployment", "mmocr-serve")]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/ping"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    # the worker's threads follow the CPU limit; waiting OpenMP threads sleep
    assert container["resources"]["limits"]["cpu"] == container["resources"]["requests"]["cpu"]
    assert {"name": "OMP_WAIT_POLICY", "value": "PASSIVE"} in container["env"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["model-store"] == "/home/model-server/model-store"
    assert pod["securityContext"]["runAsNonRoot"] is True
    hpa = found[("HorizontalPodAutoscaler", "mmocr-serve")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "mmocr-serve"
    service = found[("Service", "mmocr-serve")]["spec"]
    assert [p["port"] for p in service["ports"]] == [8080]  # management is not exposed


def test_pod_config_is_the_projects_config_but_for_metrics():
    def props(text: str) -> dict:
        return dict(line.split("=", 1) for line in text.splitlines()
                    if line.strip() and not line.startswith("#"))

    pod = props(resources()[("ConfigMap", "mmocr-serve-config")]["data"]["config.properties"])
    ours = props((ROOT / "config.properties").read_text())
    changed = {k for k in set(pod) | set(ours) if pod.get(k) != ours.get(k)}
    assert changed == {"metrics_address"}
    assert pod["management_address"] == "http://127.0.0.1:8081"


def test_kubernetes_and_swarm_say_the_same_things():
    pod = resources()[("Deployment", "mmocr-serve")]["spec"]
    container = pod["template"]["spec"]["containers"][0]
    mmocr = yaml.safe_load(STACK.read_text())["services"]["mmocr"]
    assert container["resources"]["limits"]["cpu"] == mmocr["deploy"]["resources"]["limits"]["cpus"]
    assert {"name": "OMP_WAIT_POLICY", "value": "PASSIVE"} in container["env"]
    assert mmocr["environment"]["OMP_WAIT_POLICY"] == "PASSIVE"
    assert {"name": "MMOCR_SERVE_CPU_THREADS", "value": "1"} in container["env"]
    assert mmocr["environment"]["MMOCR_SERVE_CPU_THREADS"] == "1"
    # the same start-up budget: 300 s before a replica counts as failed
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == int(
        mmocr["healthcheck"]["start_period"].rstrip("s"))
    # updates: a new replica is ready before an old one goes, one at a time
    assert pod["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    update = mmocr["deploy"]["update_config"]
    assert (update["parallelism"], update["order"], update["failure_action"]) == (
        1, "start-first", "rollback")


def test_swarm_stack_wiring():
    services = yaml.safe_load(STACK.read_text())["services"]
    mmocr, lb = services["mmocr"], services["lb"]
    # the image's own health check (docker/serve/Dockerfile), its start period at least
    dockerfile = (ROOT / "docker" / "serve" / "Dockerfile").read_text()
    image_check = re.search(r'CMD (\[.*"healthcheck"\])', dockerfile).group(1)
    assert mmocr["healthcheck"]["test"] == ["CMD", *yaml.safe_load(image_check)]
    assert int(mmocr["healthcheck"]["start_period"].rstrip("s")) >= 180
    assert mmocr["deploy"]["endpoint_mode"] == "dnsrr" and "ports" not in mmocr
    # only the balancer publishes, only inference, without the routing mesh
    assert [(p["target"], p["mode"]) for p in lb["ports"]] == [(8080, "host")]
    assert not any("ports" in s for name, s in services.items() if name != "lb")
    assert {tuple(s["networks"]) for s in services.values()} == {("mmocr",)}
    cfg = (ROOT / "deploy" / "swarm" / "lb" / "haproxy.cfg").read_text()
    assert 'server-template mmocr 16 "tasks.mmocr:${MMOCR_BACKEND_PORT}"' in cfg
    assert 'option httpchk GET "${MMOCR_HEALTH_PATH}"' in cfg and "balance leastconn" in cfg
    assert "nameserver dockerdns 127.0.0.11:53" in cfg
    # TorchServe's port and health path by default (the balancer's image)
    lb_image = (ROOT / "deploy" / "swarm" / "lb" / "Dockerfile").read_text()
    assert "ENV MMOCR_BACKEND_PORT=8080 MMOCR_HEALTH_PATH=/ping" in lb_image
    # docs/scaling.md builds every image the stack runs by default
    built = {c[c.index("-t") + 1] for c in document_commands(["docs/scaling.md"], ("build",))}
    defaults = {re.fullmatch(r"\$\{\w+:-(.+)\}", s["image"]).group(1) for s in services.values()}
    assert defaults <= built, defaults - built
    scrape = yaml.safe_load((ROOT / "deploy" / "swarm" / "prometheus" / "prometheus.yml")
                            .read_text())["scrape_configs"]
    assert {"names": ["tasks.mmocr"], "type": "A", "port": 8082, "refresh_interval": "5s"} in [
        sd for job in scrape for sd in job["dns_sd_configs"]]


def test_the_triton_stack_is_the_torchserve_stack_on_triton():
    """deploy/swarm/stack-triton.yml: the same services, limits, updates and network; the
    Triton image's health check; the balancer on Triton's port and readiness path; the
    metrics on the port the stack's Prometheus scrapes."""
    torchserve = yaml.safe_load(STACK.read_text())["services"]
    triton = yaml.safe_load((ROOT / "deploy" / "swarm" / "stack-triton.yml").read_text())["services"]
    assert set(triton) == set(torchserve)
    mmocr = triton["mmocr"]
    assert mmocr["deploy"] == torchserve["mmocr"]["deploy"]
    assert mmocr["environment"]["MMOCR_SERVE_CPU_THREADS"] == "1"
    dockerfile = (ROOT / "docker" / "serve" / "Dockerfile").read_text()
    image_check = re.search(r'CMD (\["python3.11", "-c", .*/v2/health/ready.*\])', dockerfile).group(1)
    assert mmocr["healthcheck"]["test"] == ["CMD", *yaml.safe_load(image_check)]
    assert mmocr["command"] == ["--metrics-port=8082"]
    assert triton["lb"]["environment"] == {"MMOCR_BACKEND_PORT": "8000",
                                           "MMOCR_HEALTH_PATH": "/v2/health/ready"}
    assert triton["lb"]["ports"] == torchserve["lb"]["ports"]
    assert triton["prometheus"] == torchserve["prometheus"]
    built = {c[c.index("-t") + 1] for c in document_commands(["docs/scaling.md"], ("build",))}
    defaults = {re.fullmatch(r"\$\{\w+:-(.+)\}", s["image"]).group(1) for s in triton.values()}
    assert defaults <= built, defaults - built


def test_the_kserve_inference_service_fits_kserves_api():
    """deploy/kserve/inferenceservice.yaml: every field one of KServe's v1beta1 API (the
    kserve SDK's types), its containers and volumes valid Kubernetes; the Triton image's
    health path and our runtime settings, as the Swarm stack has them."""
    from kserve_schema import problems

    service = yaml.safe_load((ROOT / "deploy" / "kserve" / "inferenceservice.yaml").read_text())
    assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1",
                                                        "InferenceService")
    assert problems(service, "V1beta1InferenceService") == []
    assert problems({"spec": {"predictor": {"replicas": 2}}}, "V1beta1InferenceService")  # can fail
    assert problems({"spec": {"predictor": {"containers": [{"image": 1}]}}},
                    "V1beta1InferenceService")
    (container,) = service["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container"  # the name KServe routes to
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    swarm = yaml.safe_load((ROOT / "deploy" / "swarm" / "stack-triton.yml").read_text())["services"]
    assert {"name": "MMOCR_SERVE_CPU_THREADS", "value": "1"} in container["env"]
    assert container["resources"]["limits"]["cpu"] == swarm["mmocr"]["deploy"]["resources"]["limits"]["cpus"]
    assert container["securityContext"]["runAsUser"] == 1000
