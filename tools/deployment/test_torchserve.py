"""Check that a served MMOCR model answers as in-process inference does.

    python tools/deployment/test_torchserve.py IMAGE [IMAGE|FOLDER ...] CONFIG CHECKPOINT MODEL_NAME
    python tools/deployment/test_torchserve.py ... --server triton --inference-addr 127.0.0.1:8000

Exit codes: 0 every image matches; 1 a mismatch; 2 the server could not be reached or
answered an error (its message is shown).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from mmocr_serve_tools.compare import PRECISION_TOLERANCES  # noqa: E402
from mmocr_serve_tools.deployment_check import EXIT_SERVER, SERVERS, CheckSpec, run_check  # noqa: E402
from mmocr_serve.errors import ServeError  # noqa: E402

DEFAULT_ADDR = {"torchserve": "127.0.0.1:8080", "triton": "127.0.0.1:8000"}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    parser.add_argument("config", help="the config the archive was built from")
    parser.add_argument("checkpoint", help="the checkpoint to run in-process")
    parser.add_argument("model_name", help="the served model's name")
    parser.add_argument("--server", choices=SERVERS, default="torchserve",
                        help="torchserve: POST /predictions/NAME; triton: POST "
                        "/v2/models/NAME/infer (a repository entry written with --format triton)")
    parser.add_argument("--inference-addr", default=None,
                        help="host:port or URL (default: 127.0.0.1:8080 for TorchServe, "
                        "127.0.0.1:8000 for Triton)")
    parser.add_argument("--device", default=None,
                        help="in-process device (default: cuda:0 where a GPU exists, else cpu)")
    parser.add_argument("--score-thr", type=float, default=0.0,
                        help="ignore boxes scoring below this on both sides")
    parser.add_argument("--cpu-precision", choices=sorted(PRECISION_TOLERANCES), default="fp32",
                        help="the archive's --cpu-precision: bf16 answers are compared with "
                        "float32 in-process inference within bf16's measured tolerance "
                        "(boxes paired by overlap; docs/batching.md)")
    parser.add_argument("--coord-tol", type=float, default=None,
                        help="pixels (default: 0.001, for fp32)")
    parser.add_argument("--score-tol", type=float, default=None,
                        help="(default: 0.0001 for fp32, 0.1 for bf16)")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--token", help="bearer token for a server with token authorisation")
    auth.add_argument("--key-file", help="TorchServe's key_file.json (its inference key is used)")
    parser.add_argument("--out-dir", help="write one side-by-side PNG per image here")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--recog-config", help="end-to-end archives: the recognizer's config "
                        "(CONFIG and CHECKPOINT are then the detector's)")
    parser.add_argument("--recog-checkpoint", help="end-to-end archives: the recognizer's checkpoint")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow a checkpoint that needs arbitrary unpickling")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    tolerance = PRECISION_TOLERANCES[args.cpu_precision]
    given = {"coord": args.coord_tol, "score": args.score_tol}
    tolerance = dataclasses.replace(tolerance, **{k: v for k, v in given.items() if v is not None})
    spec = CheckSpec(images=args.images, config=args.config, checkpoint=args.checkpoint,
                     model_name=args.model_name, server=args.server,
                     inference_addr=args.inference_addr or DEFAULT_ADDR[args.server],
                     device=args.device, score_thr=args.score_thr, tolerance=tolerance,
                     token=args.token, key_file=args.key_file,
                     out_dir=args.out_dir, timeout_s=args.timeout,
                     trust_checkpoint=args.trust_checkpoint, recog_config=args.recog_config,
                     recog_checkpoint=args.recog_checkpoint)
    try:
        return run_check(spec)
    except (ServeError, FileNotFoundError) as err:
        print(f"test_torchserve: error: {getattr(err, 'message', err)}", file=sys.stderr)
        return EXIT_SERVER


if __name__ == "__main__":
    sys.exit(main())
