"""Checks a deployment: the served answer for each image against in-process inference."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from .compare import EXACT, Comparison, Tolerance, compare

EXIT_MATCH, EXIT_MISMATCH, EXIT_SERVER = 0, 1, 2
SERVERS = ("torchserve", "triton")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class CheckSpec:
    """What ``tools/deployment/test_torchserve.py`` was asked to check."""

    images: Sequence[str]  # files or folders
    config: str
    checkpoint: str
    model_name: str
    inference_addr: str = "127.0.0.1:8080"
    device: Optional[str] = None  # None: cuda:0 where a GPU exists, else cpu
    score_thr: float = 0.0
    tolerance: Tolerance = EXACT
    token: Optional[str] = None
    key_file: Optional[str] = None
    out_dir: Optional[str] = None
    timeout_s: float = 120.0
    trust_checkpoint: bool = False
    recog_config: Optional[str] = None  # end-to-end archives: compared with MMOCR.readtext
    recog_checkpoint: Optional[str] = None
    server: str = "torchserve"  # or "triton": SERVERS


class ServerError(Exception):
    """The server could not be reached, or answered with an error."""


def expand_images(paths: Sequence[str]) -> List[Path]:
    found: List[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            found.append(item)
        else:
            raise FileNotFoundError(f"no such image or folder: {item}")
    if not found:
        raise FileNotFoundError(f"no images in {', '.join(map(str, paths))}")
    return found


def bearer_token(spec: CheckSpec) -> Optional[str]:
    """The token given, or the inference key from TorchServe's ``key_file.json``."""
    if spec.token:
        return spec.token
    if spec.key_file:
        return json.loads(Path(spec.key_file).read_text())["inference"]["key"]
    return None


def query_server(spec: CheckSpec, image: Path, token: Optional[str]) -> dict:
    """POST one image; returns its JSON answer.

    Raises:
        ServerError: unreachable, an HTTP error (its message shown), or not JSON.
    """
    from .triton import answer_of, infer_request

    addr = spec.inference_addr if "://" in spec.inference_addr else f"http://{spec.inference_addr}"
    if spec.server == "triton":
        request = urllib.request.Request(f"{addr}/v2/models/{spec.model_name}/infer",
                                         data=infer_request(image.read_bytes()), method="POST",
                                         headers={"Content-Type": "application/json"})
    else:
        request = urllib.request.Request(f"{addr}/predictions/{spec.model_name}",
                                         data=image.read_bytes(), method="POST",
                                         headers={"Content-Type": "application/octet-stream"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=spec.timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        raise ServerError(f"{image.name}: HTTP {err.code}: {err.read().decode(errors='replace')}")
    except (urllib.error.URLError, OSError) as err:
        raise ServerError(f"cannot reach {addr}: {getattr(err, 'reason', err)}")
    try:
        return answer_of(body) if spec.server == "triton" else json.loads(body)
    except (ValueError, KeyError, IndexError, TypeError):
        raise ServerError(f"{image.name}: the answer is not JSON: {body[:200]!r}")


def above_threshold(result: dict, score_thr: float) -> dict:
    if "boundary_result" in result:
        return {"boundary_result": [b for b in result["boundary_result"] if b[-1] >= score_thr]}
    if "result" in result:
        return {"result": [i for i in result["result"] if i["box_score"] >= score_thr]}
    return result


def run_check(spec: CheckSpec, report=print) -> int:
    """Compare every image; print one table. Returns the exit code (0, 1 or 2)."""
    from mmocr_serve.decode import decode_image
    from .visualize import draw_comparison

    images = expand_images(spec.images)
    token = bearer_token(spec)
    reference, flag = in_process_reference(spec)
    rows: List[Tuple[str, Comparison]] = []
    for image in images:
        try:
            served = query_server(spec, image, token)
        except ServerError as err:
            report(f"server error: {err}")
            return EXIT_SERVER
        expected = above_threshold(reference(image), spec.score_thr)
        served = above_threshold(served, spec.score_thr)
        rows.append((image.name, compare(expected, served, spec.tolerance)))
        if spec.out_dir:
            picture = decode_image(image.read_bytes(), flag=flag, max_pixels=2**40)
            draw_comparison(picture, expected, served, Path(spec.out_dir) / f"{image.name}.png")
    report(format_table(rows))
    return EXIT_MATCH if all(c.ok for _, c in rows) else EXIT_MISMATCH


def in_process_reference(spec: CheckSpec):
    """(image path -> expected wire-format dict, the decode flag for drawing).

    One model: ``mmocr.apis.model_inference``. A detector and a recognizer: MMOCR 0.6.3's
    own ``MMOCR.readtext``.
    """
    from mmocr.apis import model_inference

    from mmocr_serve.adapter import resolved_test_pipeline
    from mmocr_serve.loading import load_model
    from mmocr_serve.results import DetectionResult, Recognition

    device = spec.device or default_device()
    if spec.recog_config:
        return readtext_reference(spec.config, spec.checkpoint, spec.recog_config,
                                  spec.recog_checkpoint, device), "color"
    model = load_model(spec.config, spec.checkpoint, device=device, trust=spec.trust_checkpoint)

    def reference(image: Path) -> dict:
        raw = model_inference(model, str(image))
        typed = DetectionResult if "boundary_result" in raw else Recognition
        return typed.from_mmocr(raw).to_dict()

    return reference, resolved_test_pipeline(model.cfg)[0].get("color_type", "color")


def readtext_reference(det_config: str, det_checkpoint: str, recog_config: str,
                       recog_checkpoint: str, device: str = "cpu"):
    """image path -> MMOCR 0.6.3's own ``readtext`` answer, in the wire format."""
    from mmocr.utils.ocr import MMOCR

    from mmocr_serve.loading import resolve_config_path

    # The names only pass MMOCR's check; the configs and checkpoints given are used.
    ocr = MMOCR(det="DB_r18", recog="CRNN", device=device,
                det_config=str(resolve_config_path(det_config)), det_ckpt=str(det_checkpoint),
                recog_config=str(resolve_config_path(recog_config)),
                recog_ckpt=str(recog_checkpoint))
    return lambda image: {"result": ocr.readtext(str(image), details=True)[0]["result"]}


def default_device() -> str:
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def format_table(rows: List[Tuple[str, Comparison]]) -> str:
    head = ("image", "boxes served/expected", "max coord diff", "text equal", "max score diff",
            "result")
    lines = [head]
    for name, c in rows:
        has_boxes = c.kind in ("det", "ocr")
        boxes = f"{c.count_served}/{c.count_expected}" if has_boxes else "-"
        text = "-" if c.kind == "det" else ("yes" if c.text_equal else "NO")
        coord = f"{c.max_coord_diff:.3g}" if has_boxes else "-"
        verdict = "match" if c.ok else "MISMATCH: " + "; ".join(c.problems)
        lines.append((name, boxes, coord, text, f"{c.max_score_diff:.3g}", verdict))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head) - 1)]
    out = []
    for line in lines:
        cells = [str(v).ljust(w) for v, w in zip(line, widths)] + [str(line[-1])]
        out.append("  ".join(cells))
    matched = sum(c.ok for _, c in rows)
    out.append(f"{matched} of {len(rows)} images match")
    return "\n".join(out)
