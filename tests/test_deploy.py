"""The Kubernetes manifests under deploy/: valid against the Kubernetes schemas, and wired
to the image as the image is built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "deploy").glob("*.yaml"))


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
