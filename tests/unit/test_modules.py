"""The packages' modules (the runtime, ``mmocr_serve``, and the tools, ``mmocr_serve_tools``):
each imports on its own, and none imports a module that imports it back (lazy imports inside
functions included)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from clis import ROOT
PACKAGE = ROOT / "mmocr_serve"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
TOOLS = sorted(p.stem for p in (ROOT / "mmocr_serve_tools").glob("*.py") if p.stem != "__init__")


def imported_modules(name: str) -> set:
    """The runtime modules that ``name`` imports anywhere in its source."""
    found = set()
    for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("mmocr_serve."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("mmocr_serve."))
    return found & set(MODULES)


def test_no_module_imports_a_module_that_imports_it_back():
    graph = {name: imported_modules(name) for name in MODULES}
    assert graph["engine"] >= {"loading", "tasks", "runtime"}  # the walk sees imports

    def reaches(start: str, target: str, seen: set) -> bool:
        for nxt in graph[start] - seen:
            if nxt == target or reaches(nxt, target, seen | {nxt}):
                return True
        return False

    cycles = [name for name in MODULES if reaches(name, name, set())]
    assert not cycles, {name: sorted(graph[name]) for name in cycles}


@pytest.mark.parametrize("name", [f"mmocr_serve.{m}" for m in MODULES]
                         + [f"mmocr_serve_tools.{m}" for m in TOOLS])
def test_each_module_imports_alone(name):
    run = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
