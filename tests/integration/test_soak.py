"""A short soak run (the 30-minute one of docs/reliability.md, bounded for CI): no errors,
no worker memory growth above 10%."""

import json
import subprocess
import sys

import pytest

from clis import ROOT


@pytest.mark.slow
def test_short_soak_holds(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "soak.py"), "--duration", "50",
                          "--warmup", "25", "--window", "5", "--out-dir", str(tmp_path),
                          "--workdir", str(tmp_path / "work")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "soak-crnn.json").read_text())
    assert report["errors"] == 0 and report["requests"] > 100
    assert len(report["windows"]) >= 6
    assert all(g <= 0.10 for g in report["rss_growth"].values())
