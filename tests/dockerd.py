"""A Docker engine for the image tests: installed when missing, started when not running,
stopped again when these tests started it. Every command has a deadline; a failure names
the command and its output."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Iterator, List, Optional

from clis import ROOT
DOCKER = "/usr/bin/docker"  # Debian's client: BuildKit with DOCKER_BUILDKIT=1, no buildx
CERT_SECRET = "pip-cert"
SERVING_TAG = "mmocr-serve:cpu"


def run(cmd: List[str], timeout: float, check: bool = True,
        **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd``; on a non-zero exit (with ``check``) or a time-out, fail naming both."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"")[-3000:]
        raise AssertionError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}\n{out!r}") from None
    if check and done.returncode != 0:
        raise AssertionError(f"exit {done.returncode}: {' '.join(cmd)}\n"
                             f"{(done.stdout + done.stderr)[-4000:]}")
    return done


def docker(*args: str, timeout: float = 120, check: bool = True,
           env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Debian's docker client, from the repository root, with ``env`` added to ours."""
    return run([DOCKER, *args], timeout, check, cwd=ROOT,
               env=dict(os.environ, DOCKER_BUILDKIT="1", **(env or {})))


def ensure_packages() -> None:
    """Debian's docker.io (dockerd, its BuildKit-capable client) and debootstrap."""
    missing = [pkg for pkg, path in (("docker.io", "/usr/sbin/dockerd"),
                                     ("debootstrap", "/usr/sbin/debootstrap"))
               if not Path(path).exists()]
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-q"], 600, env=env)
        run(["apt-get", "install", "-y", "-q", *missing], 900, env=env)


class Engine:
    """dockerd, started here unless one already answers."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.proc: Optional[subprocess.Popen] = None

    def answers(self) -> bool:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
        return info.returncode == 0

    def start(self) -> "Engine":
        ensure_packages()
        if self.answers():
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "dockerd.log", "wb")
        self.proc = subprocess.Popen(["/usr/sbin/dockerd"], stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("dockerd did not start:\n"
                                     + (self.workdir / "dockerd.log").read_text()[-3000:])
            time.sleep(1)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def running_engine(workdir: Path, swarm: bool = False) -> Iterator[Engine]:
    """dockerd while the block runs (started here unless one answers, and stopped again
    then); with ``swarm``, in a one-node swarm, made here when the engine is in none and
    left again then."""
    started = Engine(workdir).start()
    made = False
    try:
        if swarm:
            state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
            assert state in ("active", "inactive"), f"the engine's swarm is {state}"
            made = state == "inactive"
            if made:
                docker("swarm", "init", "--advertise-addr", "127.0.0.1", timeout=120)
        yield started
    finally:
        if made:
            docker("swarm", "leave", "--force", timeout=120, check=False)
        started.stop()


def base_image(public: str, suite: str) -> Optional[str]:
    """``None`` where the public base image is here or can be pulled, else the tag of a
    local image of the same Debian release, made by ``scripts/docker-base.sh``."""
    if docker("image", "inspect", public, check=False).returncode == 0:
        return None
    if docker("pull", public, timeout=120, check=False).returncode == 0:
        return None
    local = f"mmocr-serve-base:{suite}"
    run(["bash", str(ROOT / "scripts" / "docker-base.sh"), suite, local], 900)
    return local


def pip_cert() -> Optional[str]:
    """The CA bundle pip's configuration names (``pip config list``), if any."""
    import sys

    listed = run([sys.executable, "-m", "pip", "config", "list"], 60, check=False).stdout
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".cert") and value.strip("'\""):
            return value.strip("'\"")
    return None


def build(command: List[str], extra: List[str], timeout: float = 3000) -> float:
    """Run a documented ``docker build`` command with ``extra`` arguments before its
    context (its last argument); returns the seconds it took."""
    assert command[:2] == ["docker", "build"], command
    cert = pip_cert()
    secret = ["--secret", f"id={CERT_SECRET},src={cert}"] if cert else []
    began = time.monotonic()
    docker(*command[1:-1], *extra, *secret, "--progress=plain", command[-1], timeout=timeout)
    took = time.monotonic() - began
    # The image this tag named before is now dangling: several GB a rebuild, piling up on
    # a machine that builds again and again. The build cache (the mmcv-full wheel) stays.
    docker("image", "prune", "--force", timeout=300)
    return took


def get_in_container(container: str, url: str, check: bool = True
                     ) -> subprocess.CompletedProcess:
    """GET ``url`` from inside ``container`` (its loopback, its networks) with the image's
    Python; the body is the command's stdout."""
    code = (f"import urllib.request; "
            f"print(urllib.request.urlopen({url!r}, timeout=5).read().decode())")
    return docker("exec", container, "python3.11", "-c", code, timeout=60, check=check)


def image_size_mb(tag: str) -> float:
    return int(docker("image", "inspect", tag, "--format", "{{.Size}}").stdout) / 1e6


def document_commands(names: List[str], verbs: tuple) -> List[List[str]]:
    """The ``docker VERB ...`` commands written in the documents ``names``, as argv lists
    (continuation lines joined, ``$(realpath X)`` as X, a leading ``DOCKER_BUILDKIT=1``
    dropped)."""
    commands = []
    for name in names:
        text = (ROOT / name).read_text().replace("\\\n", " ")
        text = re.sub(r"\$\(realpath ([^)]*)\)", r"\1", text)  # a shell substitution, one word
        for line in text.splitlines():
            line = line.strip().removeprefix("DOCKER_BUILDKIT=1 ")
            if line.startswith(tuple(f"docker {verb}" for verb in verbs)):
                commands.append(shlex.split(line))
    return commands


def readme_docker_commands() -> List[List[str]]:
    """The ``docker build``, ``run`` and ``stop`` commands of the README and the AIGES page."""
    return document_commands(["README.md", "docs/aiges.md"], ("build", "run", "stop"))


def readme_command(verb: str, tag: str) -> List[str]:
    found = [c for c in readme_docker_commands() if c[1] == verb and tag in c]
    assert len(found) == 1, found
    return found[0]


def build_serving_image() -> str:
    """The serving image, built with the README's command (every layer cached after the
    first build on a machine), on a local Debian base where none can be pulled."""
    command = readme_command("build", SERVING_TAG)
    base = base_image("debian:bookworm-slim", "bookworm")
    extra = ["--build-arg", f"BASE={base}"] if base else []
    first = build(command, extra)
    again = build(command, extra)  # every layer cached
    print(f"\nserving image: {image_size_mb(SERVING_TAG):.0f} MB; build {first:.0f} s, "
          f"rebuilt with every layer cached {again:.0f} s (base {base or 'debian:bookworm-slim'})")
    return SERVING_TAG
