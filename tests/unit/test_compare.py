"""``mmocr_serve_tools.compare``: boxes in order or paired by overlap, the one-box allowance
for a flipped threshold pixel, and the share of texts that must be equal."""

import dataclasses

from mmocr_serve_tools.compare import BF16, EXACT, box_iou, compare


def boxes(count: int, score: float = 0.8) -> list:
    """``count`` boxes 20 px apart on one line, each ``[x1, y1, ..., x4, y4, score]``."""
    return [[20 * i, 0, 20 * i + 15, 0, 20 * i + 15, 10, 20 * i, 10, score] for i in range(count)]


def ocr(items: list, texts: list) -> dict:
    return {"result": [{"box": b[:-1], "box_score": b[-1], "text": t, "text_score": 0.99}
                       for b, t in zip(items, texts)]}


def test_box_iou():
    a = [0, 0, 10, 0, 10, 10, 0, 10]
    assert box_iou(a, a) == 1.0
    assert box_iou(a, [5, 0, 15, 0, 15, 10, 5, 10]) == 50 / 150
    assert box_iou(a, [20, 0, 30, 0, 30, 10, 20, 10]) == 0.0


def test_exact_compares_in_order_and_paired_tolerances_pair_by_overlap():
    expected = {"boundary_result": boxes(5)}
    swapped = {"boundary_result": [expected["boundary_result"][i] for i in (1, 0, 2, 3, 4)]}
    assert compare(expected, expected, EXACT).ok
    in_order = compare(expected, swapped, EXACT)
    assert not in_order.ok and "coordinates differ by 20" in in_order.problems[0]
    paired = compare(expected, swapped, BF16)
    assert paired.ok and paired.min_iou == 1.0, paired.problems
    moved = {"boundary_result": [[x + 8 if k < 8 and k % 2 == 0 else x for k, x in enumerate(b)]
                                 for b in boxes(5)]}  # IoU 7 / 23
    far = compare(expected, moved, BF16)
    assert not far.ok and "0 of 5 boxes pair up at IoU 0.5 or more" in far.problems[0]
    many = {"boundary_result": boxes(100)}
    one_more = {"boundary_result": boxes(101)}
    assert compare(many, one_more, BF16).ok  # 100 of 101 pair
    three_fewer = {"boundary_result": boxes(97)}
    assert not compare(many, three_fewer, BF16).ok


def test_one_box_in_a_hundred_may_differ_by_a_flipped_pixel():
    expected = {"boundary_result": boxes(200)}
    served = {"boundary_result": [list(b) for b in boxes(200)]}
    served["boundary_result"][7][-1] += 0.005
    assert compare(expected, served).ok  # 1 of 200
    served["boundary_result"][9][-1] += 0.005
    assert compare(expected, served).ok  # 2 of 200
    served["boundary_result"][11][-1] += 0.005
    three = compare(expected, served)
    assert not three.ok and "in 3 of 200 boxes" in three.problems[0]
    one = {"boundary_result": [list(b) for b in boxes(200)]}
    one["boundary_result"][7][-1] += 0.02  # beyond the allowance
    assert not compare(expected, one).ok
    small = {"boundary_result": boxes(3)}
    flipped = {"boundary_result": [list(b) for b in boxes(3)]}
    flipped["boundary_result"][0][-1] += 0.005
    assert compare(small, flipped).ok  # one box per answer at least
    assert not compare(small, flipped, dataclasses.replace(EXACT, flip_score=0)).ok


def test_texts_must_be_equal_on_the_tolerances_share_of_boxes():
    items = boxes(20)
    expected = ocr(items, [f"w{i}" for i in range(20)])
    one_off = ocr(items, ["x"] + [f"w{i}" for i in range(1, 20)])
    exact = compare(expected, one_off)
    assert not exact.ok and exact.texts_equal == 19
    assert "box 0: text 'x' served, 'w0' expected" in exact.problems
    assert compare(expected, one_off, BF16).ok  # 19 of 20
    two_off = ocr(items, ["x", "y", "z"] + [f"w{i}" for i in range(3, 20)])
    assert not compare(expected, two_off, BF16).ok


def test_a_missing_field_is_named():
    for expected in ({"boundary_result": boxes(1)}, ocr(boxes(1), ["a"]), {"text": "a", "score": 1}):
        diff = compare(expected, {"code": 500, "type": "InferenceError"})
        assert not diff.ok and "InferenceError" in diff.problems[0]
