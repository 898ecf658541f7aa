"""A real TorchServe worker: the OpenMP wait policy libgomp loaded with, and batch-1 latency
with a busy process on every core."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

AFFINITY = len(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def crnn_b1_store(workdir) -> Path:
    """The demo CRNN at batch size 1: one request per forward pass."""
    from conftest import RECOG_CHECKPOINT, RECOG_CONFIG
    from mmocr_serve_tools.archive import ArchiveSpec, build_archive

    store = workdir / "crnn-b1-store"
    build_archive(ArchiveSpec.flat(config=RECOG_CONFIG, checkpoint=str(RECOG_CHECKPOINT),
                              output_folder=str(store), model_name="crnn_b1", batch_size=1))
    return store


def serve_crnn_b1(store: Path, workdir: Path, env: dict):
    from mmocr_serve_tools.server import TorchServeProcess

    return TorchServeProcess(model_store=store, models=["crnn_b1=crnn_b1.mar"], workdir=workdir,
                             env=env)


@pytest.mark.parametrize("env, policy, spins, threads", [
    ({"OMP_WAIT_POLICY": None}, "PASSIVE", "0", " torch threads ("),
    ({"OMP_WAIT_POLICY": "ACTIVE", "MMOCR_SERVE_CPU_THREADS": "1"}, "ACTIVE", "30000000000",
     "1 torch threads (MMOCR_SERVE_CPU_THREADS)"),
], ids=["default", "overridden"])
def test_the_worker_runs_with_the_policy_libgomp_loaded_with(crnn_b1_store, workdir, env,
                                                             policy, spins, threads):
    """libgomp itself prints the settings it loaded with (OMP_DISPLAY_ENV=VERBOSE): with
    TorchServe started without the variable, waiting threads spin 0 times (its default,
    unset, is 300000); a value the user set is kept."""
    server = serve_crnn_b1(crnn_b1_store, workdir / f"omp-{policy}",
                           {**env, "OMP_DISPLAY_ENV": "VERBOSE"})
    with server:
        log = (server.workdir / "logs" / "model_log.log").read_text()
    assert f"OMP_WAIT_POLICY = '{policy}'" in log, log[-3000:]
    assert f"GOMP_SPINCOUNT = '{spins}'" in log, log[-3000:]
    ready = [line for line in log.splitlines() if "model ready on cpu" in line]
    assert ready and threads in ready[0] and f"OMP_WAIT_POLICY={policy}" in ready[0], ready


def test_busy_neighbours_on_every_core_leave_batch_1_latency_within_3x(crnn_b1_store, workdir,
                                                                     image_files):
    """A pathology check, not a timing floor: with OpenMP threads that spin, one busy
    process per core slowed this archive several times (benchmarks/cpu-shared.md)."""
    from mmocr_serve_tools.loadgen import cpu_burners, drive

    body = image_files["word.png"].read_bytes()
    with serve_crnn_b1(crnn_b1_store, workdir / "burners", {}) as server:
        url = f"{server.inference_url}/predictions/crnn_b1"
        drive(url, [body], 1, duration_s=60, max_requests=5)  # warm-up
        quiet = drive(url, [body], 1, duration_s=120, max_requests=20)
        with cpu_burners(AFFINITY):
            loaded = drive(url, [body], 1, duration_s=600, max_requests=20)
    assert quiet.ok == loaded.ok == 20, (quiet.statuses, loaded.statuses)
    ratio = loaded.percentile(50) / quiet.percentile(50)
    print(f"\ncrnn_b1 p50: quiet {quiet.percentile(50):.1f} ms, {AFFINITY} burners "
          f"{loaded.percentile(50):.1f} ms (x{ratio:.2f})")
    assert ratio <= 3, f"x{ratio:.2f}: quiet {quiet.summary()}, loaded {loaded.summary()}"
