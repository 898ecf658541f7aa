"""The runtime code the handler imports stays valid Python 3.9 (the AIGES loader's)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = sorted((ROOT / "mmocr_serve").glob("*.py")) + [
    ROOT / "tools" / "deployment" / "mmocr_handler.py", ROOT / "wrapper.py"]


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
