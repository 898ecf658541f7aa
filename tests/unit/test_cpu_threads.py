"""A CPU worker's torch threads and OpenMP wait policy: the count from the CPUs it may
really use (affinity mask, cgroup quota, workers), and the policy in force before torch
loads. The cgroup trees here are real files in the kernel's layout; the quota that
``docker run --cpus 1`` sets is read inside the container (test_docker_images.py)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path


from mmocr_serve.runtime import RuntimeOptions, ThreadChoice, cgroup_cpu_quota

AFFINITY = len(os.sched_getaffinity(0))


def proc_tree(tmp_path: Path, mounts: list, memberships: list) -> Path:
    """A ``/proc/self`` with the given mountinfo lines and cgroup memberships."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "mountinfo").write_text("".join(line + "\n" for line in mounts))
    (proc / "cgroup").write_text("".join(line + "\n" for line in memberships))
    return proc


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_cgroup_v1_quota_inside_a_container(tmp_path):
    """Docker on a v1 host: the cpu mount's root is the container's own cgroup, which
    /proc/self/cgroup names by its host path."""
    mount = tmp_path / "sys" / "cpu"
    write(mount / "cpu.cfs_quota_us", "150000")
    write(mount / "cpu.cfs_period_us", "100000")
    proc = proc_tree(tmp_path, [
        "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw",
        f"32 31 0:29 /docker/abc {mount} rw,nosuid - cgroup cgroup rw,cpu,cpuacct",
        f"33 31 0:30 /docker/abc {tmp_path / 'sys' / 'memory'} rw - cgroup cgroup rw,memory",
    ], ["5:memory:/docker/abc", "4:cpu,cpuacct:/docker/abc", "0::/"])
    assert cgroup_cpu_quota(proc) == 1.5
    write(mount / "cpu.cfs_quota_us", "-1")
    assert cgroup_cpu_quota(proc) is None


def test_cgroup_v2_takes_the_smallest_quota_up_to_the_root(tmp_path):
    """Kubernetes on v2: the pod's limit sits above the container's (which has none)."""
    mount = tmp_path / "cg"
    write(mount / "kubepods" / "pod1" / "c1" / "cpu.max", "max 100000")
    write(mount / "kubepods" / "pod1" / "cpu.max", "250000 100000")
    write(mount / "kubepods" / "cpu.max", "800000 100000")
    proc = proc_tree(tmp_path, [f"30 1 0:26 / {mount} rw - cgroup2 cgroup2 rw"],
                     ["0::/kubepods/pod1/c1"])
    assert cgroup_cpu_quota(proc) == 2.5
    write(mount / "kubepods" / "pod1" / "cpu.max", "max 100000")
    assert cgroup_cpu_quota(proc) == 8.0


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert cgroup_cpu_quota(tmp_path / "absent") is None
    assert cgroup_cpu_quota(proc_tree(tmp_path, [], [])) is None


def test_thread_count_follows_quota_workers_and_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("MMOCR_SERVE_CPU_THREADS", raising=False)
    mount = tmp_path / "cg"
    write(mount / "cpu.max", "100000 100000")
    proc = proc_tree(tmp_path, [f"30 1 0:26 / {mount} rw - cgroup2 cgroup2 rw"], ["0::/"])
    quota = RuntimeOptions().threads(proc)
    if AFFINITY > 1:
        assert quota == ThreadChoice(1, "quota: cgroup CPU quota 1")
    assert str(quota).startswith("1 torch threads (")
    write(mount / "cpu.max", "max 100000")
    assert RuntimeOptions().threads(proc) == ThreadChoice(AFFINITY, f"affinity: {AFFINITY} cores")
    shared = RuntimeOptions(workers=AFFINITY + 1).threads(proc)
    assert shared.count == 1 and shared.source.startswith("workers: ")
    assert RuntimeOptions(cpu_threads=3).threads(proc) == ThreadChoice(3, "cpu_threads")
    monkeypatch.setenv("MMOCR_SERVE_CPU_THREADS", "5")
    assert RuntimeOptions(cpu_threads=3).threads(proc) == ThreadChoice(5, "MMOCR_SERVE_CPU_THREADS")


def test_every_archive_sets_the_wait_policy_before_torch_loads(model_store):
    """TorchServe puts the model directory on the worker's PYTHONPATH; its sitecustomize
    runs at interpreter start, before the worker's own ``import torch``."""
    with zipfile.ZipFile(model_store / "crnn.mar") as zf:
        site = zf.read("sitecustomize.py").decode()
    assert "sleep_while_waiting()" in site
    import ts.protocol.otf_message_handler as handler_protocol  # what the worker imports first

    assert "import torch" in Path(handler_protocol.__file__).read_text()


