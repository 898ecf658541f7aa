"""A CPU worker's memory mode: "reuse" serves large tensors from the heap it keeps, instead
of fresh mappings that every pass page-faults and zero-fills again."""

import subprocess
import sys

import pytest

from mmocr_serve.errors import ModelLoadError
from mmocr_serve.runtime import set_cpu_memory

from clis import ROOT

# Prints where a freshly allocated 100 MB tensor lives: "[heap]" or an anonymous mapping.
WHERE = """
import sys
import torch
from mmocr_serve.runtime import set_cpu_memory
applied = set_cpu_memory(sys.argv[1])
tensor = torch.ones(100 * 2**20, dtype=torch.uint8)
address = tensor.data_ptr()
for line in open("/proc/self/maps"):
    fields = line.split()
    start, end = (int(x, 16) for x in fields[0].split("-"))
    if start <= address < end:
        print(applied, fields[5] if len(fields) > 5 else "anonymous")
"""


@pytest.mark.parametrize("mode,applied,where", [("reuse", True, "[heap]"),
                                                ("release", False, "anonymous")])
def test_large_tensors_come_from_the_kept_heap_only_with_reuse(mode, applied, where):
    out = subprocess.run([sys.executable, "-c", WHERE, mode], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=True).stdout.split()
    assert out == [str(applied), where]


def test_an_unknown_memory_mode_is_named():
    with pytest.raises(ModelLoadError, match="cpu_memory must be one of reuse, release"):
        set_cpu_memory("hoard")
