"""A fault injected into a real recognizer's forward pass, in-process or inside a served
archive: MMOCR's ``BaseRecognizer.forward`` raises when its pass reads a marked word.

The pass runs in full first, so the fault follows the image wherever the engine puts it:
a batch holding it fails, the same image alone fails, every other image reads its word.
A served archive gets the fault through a handler that subclasses the real one and
installs it before the models load (``faulty_archive``).
"""

from __future__ import annotations

import functools
import json
import zipfile
from pathlib import Path

MESSAGE = "injected fault: this pass read the marked word"
HANDLER = '''
import json
import os

from faults import install
from mmocr_handler import MMOCRHandler


class FaultyHandler(MMOCRHandler):
    """The real handler, its recognizer's forward failing on the marked word."""

    def initialize(self, context):
        with open(os.path.join(context.system_properties["model_dir"], "faults.json")) as f:
            install(json.load(f)["word"])
        super().initialize(context)
'''


def install(word: str) -> None:
    """Every MMOCR recognizer's forward raises when one of its results reads ``word``."""
    from mmocr.models.textrecog.recognizer.base import BaseRecognizer

    original = getattr(BaseRecognizer.forward, "__without_fault__", BaseRecognizer.forward)

    @functools.wraps(original)
    def forward(self, *args, **kwargs):
        results = original(self, *args, **kwargs)
        if not kwargs.get("return_loss", True) and any(r.get("text") == word for r in results):
            raise RuntimeError(MESSAGE)
        return results

    forward.__without_fault__ = original
    BaseRecognizer.forward = forward


def remove() -> None:
    from mmocr.models.textrecog.recognizer.base import BaseRecognizer

    BaseRecognizer.forward = getattr(BaseRecognizer.forward, "__without_fault__",
                                     BaseRecognizer.forward)


def faulty_archive(archive: Path, dest: Path, word: str) -> Path:
    """A copy of ``archive``, served as ``dest``'s stem, whose handler installs the fault."""
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "MAR-INF/MANIFEST.json":
                manifest = json.loads(data)
                manifest["model"].update(handler="faulty_handler.py", modelName=dest.stem)
                data = json.dumps(manifest).encode()
            out.writestr(item, data)
        out.writestr("faulty_handler.py", HANDLER)
        out.write(Path(__file__), "faults.py")
        out.writestr("faults.json", json.dumps({"word": word}))
    return dest
