"""Save a checkpoint with RANDOM weights for a config (for trying the server without weights)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

from mmocr_serve.errors import ServeError  # noqa: E402
from mmocr_serve.loading import save_random_checkpoint  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", help="config file, or a path under mmocr's shipped configs")
    parser.add_argument("output", help="checkpoint file to write (.pth)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        path = save_random_checkpoint(args.config, args.output, seed=args.seed)
    except ServeError as err:
        print(f"make_random_checkpoint: error: {err.message}", file=sys.stderr)
        return 1
    print(f"wrote {path}: RANDOM weights (seed {args.seed}); results will be meaningless")
    return 0


if __name__ == "__main__":
    sys.exit(main())
