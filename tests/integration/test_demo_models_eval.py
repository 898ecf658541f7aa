"""The demo models' held-out evaluation, in-process and served, against its floors; the
training script on a tiny run."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from clis import EVALUATE, FIGURES, FLOORS, TRAIN


def test_held_out_accuracy_meets_the_floors_in_process_and_served():
    # a smaller set than the default run of the model card's figures: about 40% of its
    # recognizer and detector pages; one end-to-end page of each kind, since MMOCR's readtext
    # (the reference) recognizes a page's crops one model_inference call at a time
    result = subprocess.run([sys.executable, str(EVALUATE), "--recog-pages", "16",
                             "--det-pages", "12", "--e2e-pages", "1"],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
    *_, clean_line, last = result.stdout.strip().splitlines()
    for line in (re.fullmatch("clean black-on-white pages: " + FIGURES, clean_line),
                 re.fullmatch(FIGURES, last)):
        assert line, result.stdout[-2000:]
        recognizer, detector, end_to_end = map(float, line.groups())
        assert recognizer >= FLOORS[0] and detector >= FLOORS[1], line.group(0)
        assert end_to_end >= FLOORS[2], line.group(0)
    assert result.returncode == 0, result.stdout[-2000:]
    served = re.findall(r"end-to-end served .*, (.*): \d+ read exactly: ([\d.]+); answers equal "
                        r"readtext's on (\d+) of (\d+) pages", result.stdout)
    in_process = dict(re.findall(r"end-to-end in-process \(MMOCR.readtext\), (.*): .*: "
                                 r"([\d.]+)\n", result.stdout))
    assert len(served) == 2, result.stdout
    for name, figure, equal, pages in served:
        assert equal == pages and in_process[name] == figure, result.stdout


@pytest.mark.slow
def test_training_script_trains_both_models_a_few_iterations(tmp_path):
    result = subprocess.run([sys.executable, str(TRAIN), "--det-iters", "2", "--recog-iters", "2",
                             "--det-pages", "3", "--recog-pages", "2",
                             "--data-dir", str(tmp_path / "data"),
                             "--work-dir", str(tmp_path / "work"),
                             "--output-dir", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[det] iter 2/2  loss " in result.stdout and "[recog] iter 2/2  loss " in result.stdout
    for name in ("dbnet_demo.pth", "crnn_demo.pth"):
        assert (tmp_path / "out" / name).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out", "work"]
