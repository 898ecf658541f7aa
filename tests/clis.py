"""The project's command lines, whose exit code and output the tests read: run as a user
runs them (a fresh interpreter), or the converter's ``main`` in this process, which spares
each call the seconds that importing torch and mmocr takes."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONVERTER = ROOT / "tools" / "deployment" / "mmocr2torchserve.py"
CHECKER = ROOT / "tools" / "deployment" / "test_torchserve.py"


def run_cli(tool: Path, *args, cwd=None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(tool), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


def convert(*args, cwd=None) -> subprocess.CompletedProcess:
    """``mmocr2torchserve.py ARGS...``, its ``main`` called here: the same exit code, what it
    prints (not the log lines of the stack, which pytest captures), and the files it writes."""
    argv = list(map(str, args))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd or Path.cwd()), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = tool_module(CONVERTER).main(argv)
        except SystemExit as exit:  # argparse refusing the arguments
            code = exit.code
    return subprocess.CompletedProcess([str(CONVERTER), *argv], code, out.getvalue(), err.getvalue())


def tool_module(path: Path):
    """A tool script imported as a module (once), under its file's name."""
    name = path.stem
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
        spec.loader.exec_module(module)
    return sys.modules[name]


def check(*args) -> subprocess.CompletedProcess:
    """``test_torchserve.py ARGS...``"""
    return run_cli(CHECKER, *args)


EVALUATE = ROOT / "tools" / "evaluate_demo_models.py"
TRAIN = ROOT / "tools" / "train_demo_models.py"
# evaluate_demo_models.py's last line, and the floors of its figures (on every kind of page
# and on clean ones)
FIGURES = (r"recognizer word accuracy ([\d.]+); detector hmean ([\d.]+); "
           r"end-to-end word accuracy ([\d.]+)")
FLOORS = (0.92, 0.92, 0.88)
