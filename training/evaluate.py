"""Evaluation entry point: ``python -m training evaluate --checkpoint runs/nram_rt [--count 200]``.

Runs the checkpoint's generator on held-out pairs (the synthetic 'eval' split: identities and
real poses never seen in training; or a real dataset's test pairs) and scores it with the
papers' metrics (training.metrics): SSIM, mask-SSIM, PSNR (RGB and PoNA's Y channel) and L1,
each a mean over images. The same table carries two baselines computed on the same pairs:

- copy the source: output = the source photo (what a network that ignores the pose would do);
- mean training target: output = the per-pixel mean of training target images (the best
  constant image under L2 -- a network that ignores the inputs).

Writes ``OUT/metrics.md`` (markdown table), ``OUT/metrics.json`` and ``OUT/grid.png`` (rows of
source | target skeleton | generated | ground truth). OUT defaults to ``<checkpoint>/report``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from pyposert.poses import draw_skeleton
from training.checkpoint import load_checkpoint
from training.data.datasets import build_dataset, describe, tensor_to_image
from training.data.poses import LIMBS
from training.metrics import MetricAccumulator
from training.models import ModelConfig
from training.trainer import generator_inputs

__all__ = ["generate", "evaluate_generator", "mean_target_image", "pose_cell", "make_grid",
           "evaluate_checkpoint", "main"]

METRIC_COLUMNS = (("ssim", "SSIM"), ("mask_ssim", "mask-SSIM"), ("psnr", "PSNR RGB (dB)"),
                  ("psnr_y", "PSNR Y (dB)"), ("l1", "L1"))


@torch.no_grad()
def generate(generator: nn.Module, cfg: ModelConfig, batch: dict[str, torch.Tensor],
             device: torch.device | str = "cpu") -> np.ndarray:
    """Generated images of a batch: uint8 [B, H, W, 3] RGB (generator in its current mode; a
    warp-guided one gets the batch's warp, training.trainer.generator_inputs)."""
    return tensor_to_image(generator(*generator_inputs(batch, cfg, device)))


def _loader(dataset: Dataset, count: int, batch_size: int) -> DataLoader:
    n = min(int(count), len(dataset))
    return DataLoader(Subset(dataset, range(n)), batch_size=max(1, batch_size), shuffle=False)


def evaluate_generator(generator: nn.Module, cfg: ModelConfig, dataset: Dataset, count: int,
                       batch_size: int = 8, device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean metrics of the generator on the first ``count`` pairs of ``dataset`` (eval mode).

    Returns {"ssim", "mask_ssim", "psnr", "psnr_y", "l1", "count", "psnr_inf"} (see
    training.metrics.MetricAccumulator). The generator's train/eval mode is restored.
    """
    was_training = generator.training
    generator.eval()
    acc = MetricAccumulator()
    try:
        for batch in _loader(dataset, count, batch_size):
            fake = generate(generator, cfg, batch, device)
            real = tensor_to_image(batch["target_image"])
            masks = batch["target_mask"][:, 0].to(torch.uint8).numpy()
            for g, r, m in zip(fake, real, masks):
                acc.add(g, r, m)
    finally:
        generator.train(was_training)
    return acc.summary()


def mean_target_image(dataset: Dataset, count: int, batch_size: int = 16) -> np.ndarray:
    """Per-pixel mean of the first ``count`` target images: uint8 [H, W, 3] RGB (rounded)."""
    total: torch.Tensor | None = None
    n = 0
    for batch in _loader(dataset, count, batch_size):
        x = batch["target_image"].double().sum(0)
        total = x if total is None else total + x
        n += batch["target_image"].shape[0]
    if total is None:
        raise ValueError("no training targets to average")
    return tensor_to_image((total / n).float())


def pose_cell(keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [H, W, 3] RGB grid cell: the limbs of ``keypoints`` (float [18, 2] (x, y), missing < 0),
    one hue per limb of the body-mask table, black joints, on white."""
    hues = np.uint8([[[int(180 * i / len(LIMBS)), 220, 200] for i in range(len(LIMBS))]])
    colours = cv2.cvtColor(hues, cv2.COLOR_HSV2RGB)[0].tolist()
    thickness = max(1, round(height / 64))
    return draw_skeleton(keypoints, np.full((height, width, 3), 255, np.uint8), limb_colour=colours,
                         joint_colour=(0, 0, 0), thickness=thickness, limbs=LIMBS)


def make_grid(rows: Sequence[Sequence[np.ndarray]], gap: int = 2) -> np.ndarray:
    """uint8 RGB grid of equally sized uint8 [H, W, 3] cells, ``gap`` white pixels between."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    grid = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            grid[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = cell
    return grid


def _fmt(v: float) -> str:
    return "inf" if v == float("inf") else ("n/a" if v != v else f"{v:.4f}")


def evaluate_checkpoint(checkpoint: str | os.PathLike[str], *, count: int = 200,
                        out: str | os.PathLike[str] | None = None, data: str | None = None,
                        batch_size: int = 8, mean_count: int = 200, grid_rows: int = 8,
                        pad_white: int = 0, seed: int | None = None, background: str | None = None) -> dict[str, Any]:
    """Score a checkpoint and its two baselines; write metrics.md, metrics.json and grid.png.

    data: a --data spec (default: the run's); its held-out split is used (synthetic 'eval',
    real datasets' test files). mean_count: training targets averaged for the mean baseline.
    pad_white: white columns added on each side before SSIM (40 reproduces PATN's DeepFashion
    protocol at 256 x 176). seed: the synthetic held-out set's seed (default: the run's training
    seed; give one seed to compare runs trained with different seeds on the same pairs).
    background: the synthetic backdrops ("plain" | "cluttered" | "mixed"; default: the run's),
    to compare runs trained on different backdrops on the same pairs.
    Returns the metrics dict that metrics.json holds.
    """
    ck = load_checkpoint(checkpoint, with_training_state=False)
    cfg = ck.model_config()
    generator = ck.build_generator()
    spec = data or ck.config.data.source
    kw = dict(seed=ck.config.train.seed if seed is None else int(seed), length=max(count, mean_count, 1), background=background or ck.config.data.background,
              poses_dir=ck.config.data.poses_dir or None)
    eval_ds = build_dataset(spec, "eval", cfg.height, cfg.width, **kw)
    train_ds = build_dataset(spec, "train", cfg.height, cfg.width, **kw)
    mean_img = mean_target_image(train_ds, mean_count)
    accs = {k: MetricAccumulator(pad=pad_white) for k in ("model", "copy_source", "mean_target")}
    grid: list[list[np.ndarray]] = []
    for batch in _loader(eval_ds, count, batch_size):
        fake = generate(generator, cfg, batch)
        src = tensor_to_image(batch["source_image"])
        real = tensor_to_image(batch["target_image"])
        masks = batch["target_mask"][:, 0].to(torch.uint8).numpy()
        for i in range(len(fake)):
            accs["model"].add(fake[i], real[i], masks[i])
            accs["copy_source"].add(src[i], real[i], masks[i])
            accs["mean_target"].add(mean_img, real[i], masks[i])
            if len(grid) < grid_rows:
                skel = pose_cell(batch["target_pose"][i].numpy(), cfg.height, cfg.width)
                grid.append([src[i], skel, fake[i], real[i]])
    results = {k: a.summary() for k, a in accs.items()}
    report = {
        "checkpoint": str(ck.folder), "model": ck.config.model, "size": ck.config.size, "step": ck.step,
        "data": spec, "background": kw["background"], "split": describe(eval_ds), "count": len(accs["model"]), "pad_white": pad_white,
        "mean_count": min(mean_count, len(train_ds)), "results": results,
    }
    out_dir = Path(out) if out is not None else ck.folder / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {"model": f"{ck.config.model} ({ck.config.size}, step {ck.step})", "copy_source": "copy the source",
             "mean_target": "mean training target"}
    lines = [
        f"# {ck.config.model} {ck.config.size} @ step {ck.step}",
        "",
        f"{len(accs['model'])} held-out pairs: {describe(eval_ds)}; model size {cfg.height} x {cfg.width}.",
        "SSIM: Gaussian window sigma 1.5 (11 taps), population covariance, uint8 RGB, data range of the "
        "generated image; mask-SSIM on both images times the target's body mask; PSNR peak 255 "
        "(RGB, and PoNA's Y channel); L1 in [-1, 1]. Means over images."
        + (f" SSIMs after {pad_white} white columns each side." if pad_white else ""),
        "",
        "| method | " + " | ".join(title for _, title in METRIC_COLUMNS) + " |",
        "|---|" + "---:|" * len(METRIC_COLUMNS),
    ]
    for key, res in results.items():
        lines.append(f"| {names[key]} | " + " | ".join(_fmt(res[k]) for k, _ in METRIC_COLUMNS) + " |")
    lines += ["", "Grid (grid.png): source | target skeleton | generated | ground truth.", ""]
    (out_dir / "metrics.md").write_text("\n".join(lines))
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    if grid:
        cv2.imwrite(str(out_dir / "grid.png"), cv2.cvtColor(make_grid(grid), cv2.COLOR_RGB2BGR))
    report["out"] = str(out_dir)
    return report


def add_evaluate_arguments(ap: argparse.ArgumentParser) -> None:
    from pyposert._cli_args import count

    ap.add_argument("--checkpoint", required=True, help="run folder (or its checkpoint.json)")
    ap.add_argument("--count", type=count(1), default=200, help="held-out pairs to score")
    ap.add_argument("--out", help="report folder (default <checkpoint>/report)")
    ap.add_argument("--data", help="override the run's --data spec (its held-out split is used)")
    ap.add_argument("--batch-size", type=count(1), default=8)
    ap.add_argument("--mean-count", type=count(1), default=200, help="training targets in the mean baseline")
    ap.add_argument("--grid-rows", type=count(1), default=8)
    ap.add_argument("--seed", type=count(0),
                    help="seed of the synthetic held-out set (default: the run's training seed)")
    ap.add_argument("--background", choices=("plain", "cluttered", "mixed"),
                    help="synthetic backdrops of the held-out pairs (default: the run's)")
    ap.add_argument("--pad-white", type=count(0), default=0,
                    help="white columns each side before SSIM (40 = PATN's DeepFashion protocol)")


def run_from_args(args: argparse.Namespace) -> int:
    report = evaluate_checkpoint(args.checkpoint, count=args.count, out=args.out, data=args.data,
                                 batch_size=args.batch_size, mean_count=args.mean_count,
                                 grid_rows=args.grid_rows, pad_white=args.pad_white, seed=args.seed,
                                 background=args.background)
    print(Path(report["out"], "metrics.md").read_text())
    print(f"wrote {report['out']}/metrics.md, metrics.json, grid.png", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training evaluate", description="Score a checkpoint.")
    add_evaluate_arguments(ap)
    return run_from_args(ap.parse_args(argv))
