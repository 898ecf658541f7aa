"""The benchmark's bookkeeping, without a server: its order of settings, and that the
committed results are what the tool renders from their json, the one place of their figures."""

import json
import sys

import pytest

from clis import ROOT
sys.path.insert(0, str(ROOT / "tools"))

import benchmark  # noqa: E402
import benchmark_servers  # noqa: E402

COMMITTED = ("cpu", "cpu-variants", "cpu-ocr")  # benchmarks/NAME.{json,md,png}


def test_rounds_alternate_so_steady_drift_favours_no_setting():
    orders = [benchmark.round_order((1, 4, 8), turn) for turn in range(4)]
    assert orders == [[1, 4, 8], [8, 4, 1], [1, 4, 8], [8, 4, 1]]
    # over two rounds every setting's window positions add up alike, so a machine that
    # gets steadily faster or slower adds the same to each
    slots = {b: sum(order.index(b) + 3 * turn for turn, order in enumerate(orders[:2]))
             for b in (1, 4, 8)}
    assert len(set(slots.values())) == 1, slots


def test_committed_results_render_from_their_json():
    for name in COMMITTED:
        report = json.loads((ROOT / "benchmarks" / f"{name}.json").read_text())
        assert benchmark.markdown(report) == (ROOT / "benchmarks" / f"{name}.md").read_text()


def test_the_docs_link_the_results_and_repeat_no_figure():
    """The tables in benchmarks/ are the one source: the docs link them, quoting none."""
    text = (ROOT / "docs" / "benchmarks.md").read_text() + (ROOT / "docs" / "batching.md").read_text()
    assert "benchmarks/cpu-variants.md" in text
    for name in COMMITTED:
        table = (ROOT / "benchmarks" / f"{name}.md").read_text()
        rates = {cell.strip() for line in table.splitlines() if line.startswith("| ")
                 for cell in line.split("|")[4:5] if "." in cell}  # the images/s column
        for doc in ("README.md", "docs/benchmarks.md", "docs/batching.md"):
            assert not rates & set((ROOT / doc).read_text().split()), (doc, name)


def test_each_committed_run_passes_the_handler_share_floor():
    for name in COMMITTED:
        report = json.loads((ROOT / "benchmarks" / f"{name}.json").read_text())
        lines = [line for line in benchmark.floors(report) if "handler's own share" in line]
        assert lines and all(line.startswith("PASS") for line in lines), lines


def test_the_end_to_end_row_compares_with_readtext_on_a_page_of_20_lines():
    report = json.loads((ROOT / "benchmarks" / "cpu-ocr.json").read_text())
    data = report["models"]["ocr"]
    assert data["in_process_p50_ms"] > 0 and data["served"]
    assert "MMOCR.readtext, one page per call" in benchmark.markdown(report)
    assert benchmark.MODELS["ocr"][1] == "demo/benchmark_page.jpg"


def test_the_shared_cpu_run_renders_from_its_json_and_holds_its_floors():
    """benchmarks/cpu-shared.md (tools/benchmark.py --shared): every archive and setting
    quiet, beside busy neighbours and under docker run --cpus, from one run."""
    report = json.loads((ROOT / "benchmarks" / "cpu-shared.json").read_text())
    assert benchmark.shared_markdown(report) == (ROOT / "benchmarks" / "cpu-shared.md").read_text()
    conditions = {(r["where"], r["condition"]) for r in report["rows"]}
    assert {("host", "quiet"), ("host", "1 burner"), ("container", "--cpus 1"),
            ("container", "--cpus 2")} <= conditions
    verdicts = [line for line in benchmark.shared_floors(report)
                if line.startswith(("PASS", "FAIL"))]
    assert len(verdicts) == 1 + len(benchmark.SHARED_MODELS), verdicts
    assert all(line.startswith("PASS") for line in verdicts), verdicts


@pytest.mark.parametrize("name", ["servers", "servers-spin"])
def test_the_servers_runs_render_from_their_json_with_their_verdicts(name):
    """benchmarks/servers*.md (tools/benchmark_servers.py): Triton, TorchServe and in-process
    for every setting and client count of one run, and a verdict for each floor; one run
    with this project's OpenMP wait policy, one with libgomp's own."""
    report = json.loads((ROOT / "benchmarks" / f"{name}.json").read_text())
    assert benchmark_servers.markdown(report) == (ROOT / "benchmarks" / f"{name}.md").read_text()
    assert (report.get("omp_wait_policy", "PASSIVE") == "") == name.endswith("-spin")
    settings = {(r["setting"], r["server"], r["concurrency"]) for r in report["rows"]}
    assert settings == {(s, server, c) for s in benchmark_servers.SETTINGS
                        for server in benchmark_servers.SERVERS
                        for c in report["config"]["concurrency"]}
    assert report["floors"] == benchmark_servers.floors(report)
    assert len(report["floors"]) == 1 + len(benchmark_servers.SETTINGS) * len(
        report["config"]["concurrency"])
    assert all(r["errors"] == 0 for r in report["rows"]), report["rows"]
