"""The Docker recipes, as far as they can be tested without a Docker engine: the lock file,
hadolint and the README's docker commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dockerd import readme_docker_commands

from clis import ROOT
DOCKERFILES = sorted((ROOT / "docker").glob("*/Dockerfile*"))
STACK_DOCKERFILES = sorted((ROOT / "deploy" / "swarm").glob("**/Dockerfile"))
ENTRYPOINT = ROOT / "docker" / "serve" / "entrypoint.py"
MODEL_STORE = "/home/model-server/model-store"
MOUNT_TARGETS = {"serve": MODEL_STORE, "aiges": "/home/aiges/models",
                 "triton": "/home/model-server/model-repository"}
PORTS = {"serve": "-p8080:8080", "aiges": "-p8888:8888", "triton": "-p8000:8000"}
PY39_DIFFERS = {"torch", "torchvision", "pillow", "pytest", "onnxruntime"}  # no Python 3.9 wheels at the lock's versions


def pins(path: Path) -> list:
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out.append((re.sub(r"[-_.]+", "-", name).lower(), version.strip()))
    return out


def test_the_lock_file_pins_each_package_once():
    found = pins(ROOT / "requirements" / "constraints.txt")
    names = [name for name, _ in found]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    locked = dict(found)
    for other in (ROOT / "requirements").glob("*.txt"):  # no second pin that differs
        for name, version in pins(other):
            assert locked.get(name) == version, (other.name, name, version)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfile_installs_from_the_lock_file_and_lints_clean(dockerfile):
    text = dockerfile.read_text()
    if dockerfile.parent.name == "serve":  # the project's own install script and lock
        assert "COPY requirements/ requirements/" in text and "scripts/install.sh" in text
        assert "pip install" not in text
    else:  # the loader's Python 3.9: every pip call takes the 3.9 pins (checked below)
        calls = re.findall(r"pip (?:install|wheel)[^&]*", text)
        assert calls or dockerfile.name != "Dockerfile"
        assert all("-c docker/aiges/constraints-py39.txt" in c for c in calls)
    assert_builds_here_and_lints_clean(dockerfile)


@pytest.mark.parametrize("dockerfile", STACK_DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_swarm_stacks_dockerfiles_lint_clean(dockerfile):
    """On the serving image (models) or the same Debian base (balancer, Prometheus)."""
    text = dockerfile.read_text()
    on_serving = bool(re.search(r"^ARG SERVING_IMAGE=mmocr-serve:(cpu|triton)$", text, re.M))
    assert on_serving != ("ARG BASE=debian:bookworm-slim" in text)
    assert_builds_here_and_lints_clean(dockerfile)


def assert_builds_here_and_lints_clean(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    # BuildKit's built-in frontend: a "# syntax" line would pull one from a registry
    assert "# syntax" not in text
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert all(b.startswith("${") or b in re.findall(r"AS (\w+)", text) for b in bases), bases
    lint = subprocess.run([str(Path(sys.executable).parent / "hadolint"), str(dockerfile)],
                          cwd=ROOT, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize("dockerfile", [p for p in DOCKERFILES if "serve" in p.parts],
                         ids=lambda p: p.name)
def test_serving_image_layout(dockerfile):
    text = dockerfile.read_text()
    assert text.count("FROM ") >= 2, "multi-stage: compilers stay in the build stage"
    assert re.search(r"^USER 1000", text, re.M), "runs as a non-root user"
    assert "EXPOSE 8080 8081 8082" in text
    assert f"mkdir -p {MODEL_STORE}" in text
    assert "COPY --chown=model-server config.properties" in text
    assert 'HEALTHCHECK' in text and '"healthcheck"' in text
    assert 'ENTRYPOINT ["python3.11", "/usr/local/bin/mmocr-serve-entrypoint"]' in text
    assert "ARG BASE=debian:bookworm-slim" in text and "python3.11-dev" in text
    assert "--mount=type=cache" in text and "--mount=type=secret,id=pip-cert" in text
    # the Triton target: its ports, its health check, its supervisor as the entrypoint
    triton = text.split("AS triton", 1)[1].split("\nFROM ", 1)[0]
    assert "EXPOSE 8000 8001 8002" in triton and "/v2/health/ready" in triton
    assert re.search(r"^USER 1000", triton, re.M) and "libpython3.11" in triton
    assert '"-m", "mmocr_serve_tools.triton"' in triton


def test_readme_docker_commands_match_the_images():
    commands = readme_docker_commands()
    builds = [c for c in commands if c[1] == "build"]
    runs = [c for c in commands if c[1] == "run"]
    assert builds and runs
    tags = {}
    for cmd in builds:
        dockerfile = ROOT / cmd[cmd.index("-f") + 1]
        assert dockerfile in DOCKERFILES and cmd[-1] == "."
        target = cmd[cmd.index("--target") + 1] if "--target" in cmd else None
        tags[cmd[cmd.index("-t") + 1]] = target or dockerfile.parent.name
    for cmd in runs:
        image = next((a for a in reversed(cmd) if a in tags), None)
        assert image, f"runs an image no command builds: {cmd}"
        kind = tags[image]
        mounts = [a for a in cmd if a.startswith("type=bind")]
        assert mounts and all(f"target={MOUNT_TARGETS[kind]}" in m for m in mounts)
        assert PORTS[kind] in cmd


def test_aiges_pins_differ_from_the_lock_only_where_python_39_forces_it():
    locked = dict(pins(ROOT / "requirements" / "constraints.txt"))
    py39 = dict(pins(ROOT / "docker" / "aiges" / "constraints-py39.txt"))
    assert set(py39) <= set(locked), set(py39) - set(locked)
    assert {name for name in py39 if py39[name] != locked[name]} == PY39_DIFFERS


def test_aiges_toml_configures_wrapper_and_xtest_reads_its_answer():
    import tomllib

    from mmocr_serve.aiges_service import RESPONSE_KEY

    aiges = tomllib.loads((ROOT / "docker" / "aiges" / "aiges.toml").read_text())
    wrapper = aiges["wrapper"]
    assert all(isinstance(v, str) for v in wrapper.values())  # the loader passes strings
    assert {"det_config", "det_checkpoint", "recog_config", "recog_checkpoint"} <= set(wrapper)
    assert all(v.startswith(MOUNT_TARGETS["aiges"]) for k, v in wrapper.items()
               if k.endswith("_checkpoint"))
    xtest = tomllib.loads((ROOT / "docker" / "aiges" / "xtest.toml").read_text())
    assert xtest["data"]["payload"] == "data"
    assert xtest["downstream"]["output"] == RESPONSE_KEY
    assert xtest["xtest"]["taddrs"].endswith(f":{aiges['aiges']['httpPort']}")


def test_entrypoint_runs_any_other_command_as_given(tmp_path):
    ran = subprocess.run([sys.executable, str(ENTRYPOINT), "sh", "-c", "echo hello; exit 3"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert (ran.returncode, ran.stdout) == (3, "hello\n")


def test_the_local_base_image_names_no_mirror_of_its_own():
    """scripts/docker-base.sh takes its Debian mirrors from apt's sources or the caller."""
    text = (ROOT / "scripts" / "docker-base.sh").read_text()
    assert not re.search(r"\w+://", text), re.findall(r"\S+://\S+", text)
    assert "apt-get indextargets" in text and "DEBIAN_MIRROR" in text
