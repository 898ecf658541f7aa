"""The benchmark's bookkeeping, without a server: its order of settings, and that the
committed results and the README's table are what the tool renders from the json."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import benchmark  # noqa: E402


def test_rounds_alternate_so_steady_drift_favours_no_setting():
    orders = [benchmark.round_order((1, 4, 8), turn) for turn in range(4)]
    assert orders == [[1, 4, 8], [8, 4, 1], [1, 4, 8], [8, 4, 1]]
    # over two rounds every setting's window positions add up alike, so a machine that
    # gets steadily faster or slower adds the same to each
    slots = {b: sum(order.index(b) + 3 * turn for turn, order in enumerate(orders[:2]))
             for b in (1, 4, 8)}
    assert len(set(slots.values())) == 1, slots


def test_committed_results_render_from_their_json():
    for name in ("cpu", "cpu-dbnet-paired", "cpu-ocr"):
        report = json.loads((ROOT / "benchmarks" / f"{name}.json").read_text())
        assert benchmark.markdown(report) == (ROOT / "benchmarks" / f"{name}.md").read_text()


def test_readme_tables_are_the_committed_cpu_runs():
    readme = (ROOT / "README.md").read_text()
    for marker, name in (("benchmark", "cpu"), ("benchmark-ocr", "cpu-ocr")):
        block = readme.split(f"<!-- {marker}:start -->")[1].split(f"<!-- {marker}:end -->")[0]
        assert block.strip() == (ROOT / "benchmarks" / f"{name}.md").read_text().strip()


def test_the_end_to_end_row_compares_with_readtext_on_a_page_of_20_lines():
    report = json.loads((ROOT / "benchmarks" / "cpu-ocr.json").read_text())
    data = report["models"]["ocr"]
    assert data["in_process_p50_ms"] > 0 and data["served"]
    assert "MMOCR.readtext, one page per call" in benchmark.markdown(report)
    assert benchmark.MODELS["ocr"][1] == "demo/benchmark_page.jpg"


def test_a_new_run_says_how_its_rounds_were_ordered():
    report = json.loads((ROOT / "benchmarks" / "cpu.json").read_text())
    report["config"].pop("round_order", None)  # as runs before it, which kept one order
    assert "alternate rounds" not in benchmark.markdown(report)
    report["config"]["round_order"] = "forwards then backwards"
    assert "driven in turn (forwards then backwards in alternate rounds)" in \
        benchmark.markdown(report)
