"""A closed-loop HTTP load generator: N clients, each sending its next request when the
last one is answered (for the benchmark and the soak run; loopback servers only); and
busy neighbour processes, for measuring a server on a shared CPU."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import statistics
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence
from urllib.parse import urlsplit


# The CPU flags that tell the project's two machine kinds apart (AVX2 only, or AVX-512
# with VNNI, BF16 and AMX).
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def log(message: str) -> None:
    """A progress line tagged with the running tool (benchmark or soak) and the time."""
    print(f"[{Path(sys.argv[0]).stem} {time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine_description() -> dict:
    """The machine a benchmark ran on: the CPU's model name and the flags that decide which
    kernels oneDNN runs (the two CPU kinds of docs/benchmarks.md), cores, memory, GPU."""
    import torch

    from mmocr_serve.runtime import cpu_flags

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    flags = cpu_flags()
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cpu_flags": [f for f in CPU_FLAGS if f in flags],
            "cores": len(os.sched_getaffinity(0)), "memory_gib": round(mem_kb / 2**20),
            "gpu": gpu, "torch": torch.__version__, "python": platform.python_version()}


def alternating_medians(runs: Dict[str, Callable[[], object]], rounds: int, calls: int,
                        warmup: int = 1) -> Dict[str, float]:
    """Median ms of a call of each of ``runs``, after ``warmup`` calls each: ``rounds``
    windows of ``calls`` calls each, the runs taking turns (forwards, then backwards) so that
    a drifting machine favours none."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: Dict[str, List[float]] = {label: [] for label in runs}
    order = list(runs.items())
    for turn in range(rounds):
        for label, run in order if turn % 2 == 0 else reversed(order):
            for _ in range(calls):
                began = time.perf_counter()
                run()
                times[label].append((time.perf_counter() - began) * 1000)
    return {label: round(statistics.median(values), 2) for label, values in times.items()}


def machine_line(machine: dict) -> str:
    """A benchmark report's machine, from ``machine_description()``."""
    return (f"Machine: {machine['cpu']} ({', '.join(machine['cpu_flags'])}), "
            f"{machine['cores']} cores, torch {machine['torch']}.")


def write_report(out_dir: Path, name: str, report: dict, markdown: str) -> None:
    """``out_dir/NAME.json`` and ``NAME.md``, and the markdown printed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out_dir / f"{name}.md").write_text(markdown)
    print(markdown)


@dataclass
class LoadResult:
    """What one load run saw: latencies of the answered requests and every status."""

    concurrency: int
    elapsed_s: float = 0.0
    latencies_ms: List[float] = field(default_factory=list)  # 2xx answers only
    statuses: Dict[str, int] = field(default_factory=dict)  # "200", "503", "error: ..." -> count
    window_rates: List[float] = field(default_factory=list)  # images/s of each combined window
    in_flight: int = 0  # requests sent and not yet answered, while the run goes on

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) - self.ok

    @property
    def throughput(self) -> float:
        """Answered (2xx) requests per second."""
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    @classmethod
    def combined(cls, results: Sequence["LoadResult"]) -> "LoadResult":
        """Several windows of one setting as one: their time, answers and statuses added."""
        total = cls(concurrency=results[0].concurrency,
                    window_rates=[result.throughput for result in results])
        for result in results:
            total.elapsed_s += result.elapsed_s
            total.latencies_ms += result.latencies_ms
            for status, count in result.statuses.items():
                total.statuses[status] = total.statuses.get(status, 0) + count
        return total

    def percentile(self, pct: float) -> float:
        """The ``pct``-th percentile latency in ms (nearest rank); NaN with no answers."""
        if not self.latencies_ms:
            return float("nan")
        ranked = sorted(self.latencies_ms)
        return ranked[min(len(ranked) - 1, max(0, int(round(pct / 100 * len(ranked))) - 1))]

    def summary(self) -> dict:
        return {"concurrency": self.concurrency, "requests": sum(self.statuses.values()),
                "errors": self.errors, "images_per_s": round(self.throughput, 3),
                "p50_ms": round(self.percentile(50), 1), "p90_ms": round(self.percentile(90), 1),
                "p99_ms": round(self.percentile(99), 1), "statuses": dict(self.statuses),
                "window_images_per_s": [round(rate, 3) for rate in self.window_rates]}


def drive(url: str, bodies: Sequence[bytes], concurrency: int, duration_s: float,
          max_requests: Optional[int] = None, timeout_s: float = 120,
          stop: Optional[threading.Event] = None,
          result: Optional[LoadResult] = None,
          headers: Optional[Dict[str, str]] = None) -> LoadResult:
    """POST ``bodies`` (cycled) to ``url`` from ``concurrency`` clients for ``duration_s``,
    or until ``stop`` is set. ``result``, when given, is filled as the run goes on.
    ``headers``: the requests' headers (default: an octet-stream body).

    Each client keeps one HTTP/1.1 connection open, as a production client would.
    """
    target = urlsplit(url)
    if target.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the load generator drives loopback servers only, not {url}")
    if result is None:
        result = LoadResult(concurrency=concurrency)
    headers = headers or {"Content-Type": "application/octet-stream"}
    lock = threading.Lock()
    counter = itertools.count()
    deadline = time.monotonic() + duration_s

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout_s)
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            number = next(counter)
            if max_requests is not None and number >= max_requests:
                break
            body = bodies[(number + offset) % len(bodies)]
            with lock:
                result.in_flight += 1
            start = time.perf_counter()
            try:
                conn.request("POST", target.path + (f"?{target.query}" if target.query else ""),
                             body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = str(response.status)
            except (OSError, http.client.HTTPException) as err:
                status = f"error: {type(err).__name__}"
                conn.close()
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout_s)
            took_ms = (time.perf_counter() - start) * 1000
            with lock:
                result.in_flight -= 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status.startswith("2"):
                    result.latencies_ms.append(took_ms)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.elapsed_s = time.monotonic() - began
    return result


# A busy loop that ends itself after argv[1] seconds, should its parent never stop it.
_BURN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end: pass"


@contextlib.contextmanager
def cpu_burners(count: int, max_s: float = 900) -> Iterator[List[subprocess.Popen]]:
    """``count`` busy neighbour processes (one Python busy loop each, scheduled wherever
    the kernel puts them) while the block runs; each ends by itself after ``max_s``."""
    burners = [subprocess.Popen([sys.executable, "-c", _BURN, str(max_s)]) for _ in range(count)]
    try:
        time.sleep(0.5 if burners else 0)  # let them reach the run queue
        yield burners
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
