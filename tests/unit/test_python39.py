"""The runtime code the handler imports stays valid Python 3.9 (the AIGES loader's)."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

from clis import ROOT
RUNTIME = sorted((ROOT / "mmocr_serve").glob("*.py")) + [
    ROOT / "mmocr_handler.py", ROOT / "wrapper.py", ROOT / "triton_model.py",
    ROOT / "docker" / "serve" / "entrypoint.py"]


def find_python39():
    """A working Python 3.9 interpreter (a pyenv shim may exist without one), or None."""
    candidates = sorted(Path.home().glob(".pyenv/versions/3.9*/bin/python3.9"))
    for candidate in [*map(str, candidates), shutil.which("python3.9")]:
        if candidate and subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return candidate
    return None


PYTHON39 = find_python39()


@pytest.mark.parametrize("path", RUNTIME, ids=lambda p: p.name)
def test_parses_as_python_39(path):
    ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))


@pytest.mark.parametrize("path", RUNTIME, ids=lambda p: p.name)
def test_pep604_hints_are_postponed(path):
    """``X | Y`` in annotations needs ``from __future__ import annotations`` before 3.10."""
    source = path.read_text()
    tree = ast.parse(source)
    uses_union = any(isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)
                     for ann in ast.walk(tree) if isinstance(ann, (ast.arg, ast.AnnAssign,
                                                                   ast.FunctionDef))
                     for node in ast.walk(getattr(ann, "annotation", None)
                                          or getattr(ann, "returns", None) or ast.Pass()))
    if uses_union:
        assert "from __future__ import annotations" in source


@pytest.mark.skipif(PYTHON39 is None, reason="no python3.9 on this machine")
def test_compiles_with_a_real_python_39(tmp_path):
    script = ("import sys, py_compile\n"
              "for n, path in enumerate(sys.argv[2:]):\n"
              "    py_compile.compile(path, cfile=f'{sys.argv[1]}/{n}.pyc', doraise=True)")
    run = subprocess.run([PYTHON39, "-c", script, str(tmp_path), *map(str, RUNTIME)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
