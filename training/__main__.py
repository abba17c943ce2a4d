"""``python -m training {train,evaluate} ...`` (also under ``torchrun -m training train``).

    python -m training train --model nram --size rt [--config FILE] [--steps N] [--batch-size B]
                             [--out runs/nram_rt] [--resume] [--seed S]
                             [--data synthetic|deepfashion:PATH|market:PATH] [--vgg-weights PATH]
                             [--eval-every N]
    python -m training evaluate --checkpoint runs/nram_rt [--count 200] [--out report/]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from training import evaluate, train

    ap = argparse.ArgumentParser(prog="python -m training", description="pyposert training tools.")
    sub = ap.add_subparsers(dest="command", required=True)
    train.add_train_arguments(sub.add_parser("train", help="train a generator (torchrun-ready)"))
    evaluate.add_evaluate_arguments(sub.add_parser("evaluate", help="score a checkpoint, write a report"))
    args = ap.parse_args(argv)
    try:
        if args.command == "train":
            return train.run_from_args(args)
        return evaluate.run_from_args(args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        # User errors (bad config, missing file, existing run): one clear line, no traceback.
        if os.environ.get("POSERT_DEBUG"):
            raise
        print(f"error: {e}  (POSERT_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
