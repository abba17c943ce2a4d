"""``python -m training {train,evaluate} ...`` (also under ``torchrun -m training train``).

    python -m training train --model nram --size rt [--config FILE] [--steps N] [--batch-size B]
                             [--out runs/nram_rt] [--resume] [--seed S]
                             [--data synthetic|deepfashion:PATH|market:PATH] [--vgg-weights PATH]
                             [--eval-every N]
    python -m training evaluate --checkpoint runs/nram_rt [--count 200] [--out report/]
    python -m training train-completion --size rt [--config FILE] [--steps N] [--out runs/completion_rt] [--resume]
    python -m training evaluate-completion --checkpoint runs/completion_rt [--count 200] [--samples 4]
    python -m training evaluate-real [--real DIR] [--model models/nram.plan ...] [--frames 8] [--out report/real]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from training import evaluate, evaluate_completion, evaluate_real, train, train_completion

    ap = argparse.ArgumentParser(prog="python -m training", description="pyposert training tools.")
    sub = ap.add_subparsers(dest="command", required=True)
    train.add_train_arguments(sub.add_parser("train", help="train a generator (torchrun-ready)"))
    evaluate.add_evaluate_arguments(sub.add_parser("evaluate", help="score a checkpoint, write a report"))
    train_completion.add_train_arguments(sub.add_parser("train-completion", help="train the fashion-completion model"))
    evaluate_completion.add_evaluate_arguments(
        sub.add_parser("evaluate-completion", help="score a completion checkpoint, write a report"))
    evaluate_real.add_evaluate_real_arguments(
        sub.add_parser("evaluate-real", help="score models on real photos (mirror pairs) against copy and warp-only"))
    args = ap.parse_args(argv)
    commands = {"train": train.run_from_args, "evaluate": evaluate.run_from_args,
                "train-completion": train_completion.run_from_args,
                "evaluate-completion": evaluate_completion.run_from_args,
                "evaluate-real": evaluate_real.run_from_args}
    try:
        return commands[args.command](args)
    except (ValueError, OSError) as e:
        # User errors (bad config, missing or unreadable file, existing run, damaged checkpoint):
        # one clear line, no traceback.
        if os.environ.get("POSERT_DEBUG"):
            raise
        message = "; ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
        print(f"error: {message}  (POSERT_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
