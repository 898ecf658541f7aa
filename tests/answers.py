"""Assertions on answers: what a rendered image holds first, then equality within the
tolerances of ``mmocr_serve_tools.compare``. Two empty answers are never compared."""

from __future__ import annotations

from mmocr_serve_tools import synth
from mmocr_serve_tools.compare import compare


def has_content(answer: dict) -> bool:
    """Boxes for a detector, non-empty texts for a recognizer or end-to-end OCR."""
    if "boundary_result" in answer:
        return bool(answer["boundary_result"])
    if "result" in answer:
        return bool(answer["result"]) and all(item["text"] for item in answer["result"])
    return bool(answer.get("text"))


def assert_same(expected: dict, served: dict) -> None:
    """``served`` equals ``expected``; refuses an ``expected`` with nothing in it."""
    assert has_content(expected), f"nothing to compare: the expected answer is empty: {expected}"
    diff = compare(expected, served)
    assert diff.ok, diff.problems


def assert_detects(page: synth.Page, answer: dict) -> None:
    """A box of its own on every rendered word (IoU 0.5 or more), so at least as many boxes
    as words."""
    boxes = answer["boundary_result"]
    match = synth.matched_boxes(page.words, [b[:-1] for b in boxes])
    missed = [w.text for w, j in zip(page.words, match) if j is None]
    assert not missed, f"no box on {missed} ({len(boxes)} boxes for {len(page.words)} words)"


def assert_reads(page: synth.Page, answer: dict) -> None:
    """End-to-end OCR read nine in ten of the rendered words or more exactly, each in a box
    of its own on it: the demo pair misses some words end to end (demo/models/README.md),
    so a page of 20 words may hold one miss."""
    items = answer["result"]
    read = synth.words_read(page.words, items)
    wrong = [w.text for w, ok in zip(page.words, read) if not ok]
    assert read and len(wrong) <= len(read) // 10, \
        f"not read: {wrong}; read: {[i['text'] for i in items]}"
