"""Score a completion checkpoint: ``python -m training evaluate-completion --checkpoint RUN
[--count 200] [--samples 4] [--out DIR]``.

On held-out inputs (identities and real poses never seen in training, one garment erased)
three rows, all scored inside the erase region (the box) only -- outside it the output is the
input by construction:

- **reconstruction**: z of each stage from its encoder of the *true* erased garment (Es on its
  mask, Ea on its crop; the posterior means) -- how well the decoders rebuild the garment
  from its latent code, the VAE's reconstruction score;
- **samples**: the exported sampling path (:meth:`CompletionModel.sample`: z from the
  compatibility priors of the visible garments, noise ``pyposert.completion.noise(i, K, Z)``),
  K completions per input -- what ``Engine.complete`` returns. The renderer draws garment
  colours independently, so a sample's colours are not the truth's: its L1 measures
  plausibility less than its structure (SSIM, parsing) does;
- **mean fill** (baseline): the box filled with the mean colour of the visible pixels and the
  parsing with the most common visible class -- a network that learned nothing.

Scores: region SSIM (Gaussian window, sigma 1.5, on the uint8 RGB box crop, grown to 11 x 11
when smaller), region L1 (mean |generated - truth| in [-1, 1]), parsing accuracy in the box,
IoU of the erased garment's class, and diversity: mean pairwise L1 between the K samples of one
input (0 = no diversity; samples only).

Writes OUT/metrics.md, OUT/metrics.json and OUT/grid.png (rows: truth | erased |
reconstruction | K samples | parsing of sample 1 | true parsing).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pyposert import completion as C
from training.completion_run import load_completion_checkpoint, pose_heatmaps
from training.data.completion import CompletionSamples
from training.metrics import ssim
from training.models.completion import CompletionModel

__all__ = ["evaluate_model", "mean_fill", "score_region", "empty_scores", "evaluate_completion_checkpoint", "add_evaluate_arguments", "run_from_args"]

ROWS = ("reconstruction", "samples", "mean_fill")
COLUMNS = (("ssim", "region SSIM"), ("l1", "region L1"), ("parsing_acc", "parsing acc."),
           ("garment_iou", "garment IoU"), ("diversity", "diversity (pairwise L1)"))


def _u8(x: torch.Tensor) -> np.ndarray:
    """[3, H, W] in [-1, 1] -> uint8 [H, W, 3] RGB (the runtime's rounding)."""
    return np.clip(np.floor((x.detach().float().numpy().transpose(1, 2, 0) + 1.0) * 127.5 + 0.5), 0, 255).astype(np.uint8)


SSIM_MIN_SIDE = 11  # the Gaussian window's taps: a smaller box is grown (about its centre) to this


def _grow_to(lo: int, hi: int, size: int) -> tuple[int, int]:
    need = SSIM_MIN_SIDE - (hi - lo)
    if need <= 0:
        return lo, hi
    lo = max(0, min(lo - need // 2, size - SSIM_MIN_SIDE))
    return lo, min(lo + SSIM_MIN_SIDE, size)


def _region_ssim(a: np.ndarray, b: np.ndarray, box: np.ndarray) -> float:
    """SSIM of the box crops (a box under 11 pixels on a side is grown to 11 about its centre)."""
    y0, x0, y1, x1 = (int(v) for v in box)
    y0, y1 = _grow_to(y0, y1, a.shape[0])
    x0, x1 = _grow_to(x0, x1, a.shape[1])
    return float(ssim(np.ascontiguousarray(a[y0:y1, x0:x1]), np.ascontiguousarray(b[y0:y1, x0:x1])))


def mean_fill(truth: np.ndarray, parsing: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: ``region`` (bool [H, W]) filled with the mean colour of the visible pixels
    of ``truth`` (uint8 [H, W, 3]) and with the most common visible class of ``parsing``."""
    visible = ~region
    fill, fill_parsing = truth.copy(), parsing.copy()
    fill[region] = truth[visible].mean(0).round().astype(np.uint8) if visible.any() else 128
    fill_parsing[region] = np.bincount(parsing[visible], minlength=C.NUM_CLASSES).argmax() if visible.any() else 0
    return fill, fill_parsing


def score_region(acc: dict[str, list[float]], images: list[np.ndarray], parsings: list[np.ndarray], truth: np.ndarray,
                 parsing: np.ndarray, region: np.ndarray, box: Any, garment: int) -> None:
    """Append the scores of K completions of one input to ``acc`` (lists keyed by COLUMNS):
    images uint8 [H, W, 3] (same channel order as ``truth``), parsings uint8 [H, W], region
    bool [H, W], box (y0, x0, y1, x1), garment its class."""
    truth_n = truth.astype(np.float32) / 127.5 - 1.0
    for img, par in zip(images, parsings):
        acc["ssim"].append(_region_ssim(img, truth, box))
        acc["l1"].append(float(np.abs(img.astype(np.float32) / 127.5 - 1.0 - truth_n)[region].mean()))
        acc["parsing_acc"].append(float((par[region] == parsing[region]).mean()))
        pg, tg = par[region] == garment, parsing[region] == garment
        acc["garment_iou"].append(float((pg & tg).sum() / max((pg | tg).sum(), 1)))
    if len(images) > 1:
        pair = [float(np.abs(images[p].astype(np.float32) - images[q].astype(np.float32))[region].mean() / 127.5)
                for p in range(len(images)) for q in range(p + 1, len(images))]
        acc["diversity"].append(float(np.mean(pair)))


def empty_scores() -> dict[str, list[float]]:
    return {c: [] for c, _ in COLUMNS}


def _batch(s: dict[str, Any], keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.asarray(s[k]))[None] for k in keys}


@torch.no_grad()
def evaluate_model(model: CompletionModel, ds: CompletionSamples, count: int, samples: int = 4,
                   grid_rows: int = 0) -> dict[str, Any]:
    """Scores (see the module docstring) over inputs 0..count-1 of ``ds``. Returns
    {"reconstruction": {...}, "samples": {...}, "mean_fill": {...}, "count", "samples_per_input"}
    and, with ``grid_rows`` > 0, "grid": uint8 BGR image of the first rows."""
    was_training = model.training
    model.eval()
    cfg = model.config
    acc = {k: empty_scores() for k in ROWS}
    rows: list[np.ndarray] = []
    for i in range(count):
        s = ds[i]
        box = s["box"]
        y0, x0, y1, x1 = (int(v) for v in box)
        region = s["erase_mask"][0] > 0
        truth, parsing = s["image"], s["parsing"]
        t = _batch(s, ("masked_image", "masked_parsing", "erase_mask", "garment_crops", "keypoints", "garment_mask",
                       "garment_crop"))
        heat = pose_heatmaps(t["keypoints"], cfg)
        rep = lambda x: x.expand(samples, *x.shape[1:])  # noqa: E731 - one input, K noise rows
        noise = torch.from_numpy(C.noise(i, samples, cfg.latent))
        probs, images = model.sample(rep(t["masked_image"]), rep(t["masked_parsing"]), rep(t["erase_mask"]), rep(heat),
                                     rep(t["garment_crops"]), noise)
        outs = [_u8(images[k]) for k in range(samples)]
        preds = [probs[k].argmax(0).numpy().astype(np.uint8) for k in range(samples)]
        # reconstruction: z = the posterior means of the true garment, decoders as in sample()
        z_s = model.shape.posterior(t["garment_mask"])[0]
        z_a = model.texture.posterior(t["garment_crop"])[0]
        post_probs, post_image = model.complete(t["masked_image"], t["masked_parsing"], t["erase_mask"], heat, z_s, z_a)
        post = _u8(post_image[0])
        post_parsing = post_probs[0].argmax(0).numpy().astype(np.uint8)
        fill, fill_parsing = mean_fill(truth, parsing, region)
        g = int(s["garment"])
        score = lambda name, imgs, parses: score_region(acc[name], imgs, parses, truth, parsing, region, box, g)  # noqa: E731
        score("reconstruction", [post], [post_parsing])
        score("samples", outs, preds)
        score("mean_fill", [fill], [fill_parsing])
        if i < grid_rows:
            erased = truth.copy()
            erased[y0:y1, x0:x1] = 128
            cells = [truth, erased, post, *outs, C.colorize_parsing(preds[0])[:, :, ::-1], C.colorize_parsing(parsing)[:, :, ::-1]]
            sep = np.full((truth.shape[0], 2, 3), 255, np.uint8)
            rows.append(np.concatenate([x for c in cells for x in (c, sep)][:-1], 1))
    if was_training:
        model.train()
    result: dict[str, Any] = {k: {c: float(np.mean(v[c])) for c, _ in COLUMNS if v[c]} for k, v in acc.items()}
    result.update(count=count, samples_per_input=samples)
    if rows:
        gap = np.full((2, rows[0].shape[1], 3), 255, np.uint8)
        grid = np.concatenate([x for r in rows for x in (r, gap)][:-1], 0)
        result["grid"] = cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)
    return result


def markdown_table(result: dict[str, Any]) -> str:
    names = {"reconstruction": "reconstruction (z from the true garment)",
             "samples": f"samples (z from the compatibility prior, {result['samples_per_input']} per input)",
             "mean_fill": "mean fill (baseline)"}
    lines = ["| | " + " | ".join(h for _, h in COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for key, label in names.items():
        row = result[key]
        lines.append(f"| {label} | " + " | ".join(f"{row[c]:.4f}" if c in row else "" for c, _ in COLUMNS) + " |")
    return "\n".join(lines)


def evaluate_completion_checkpoint(checkpoint: str, count: int = 200, samples: int = 4, out: str | None = None,
                                   grid_rows: int = 8) -> dict[str, Any]:
    ck = load_completion_checkpoint(checkpoint)
    model = ck.build_model()
    cfg = model.config
    data = ck.config.data
    ds = CompletionSamples(cfg.height, cfg.width, cfg.crop_size, "eval", ck.config.train.seed, data.background,
                           margin=cfg.margin, pad=cfg.pad, poses_dir=data.poses_dir or None)
    res = evaluate_model(model, ds, count, samples, grid_rows)
    folder = Path(out) if out else ck.folder / "report"
    folder.mkdir(parents=True, exist_ok=True)
    grid = res.pop("grid", None)
    if grid is not None:
        cv2.imwrite(str(folder / "grid.png"), grid)
    res.update(checkpoint=str(ck.folder), step=ck.step, split=f"synthetic eval ({cfg.height}x{cfg.width}, {count} inputs)")
    (folder / "metrics.json").write_text(json.dumps(res, indent=1) + "\n")
    text = (f"# Completion {ck.config.size}, step {ck.step}\n\n{res['split']}, scores inside the erase region.\n\n"
            + markdown_table(res) + "\n\nGrid (grid.png): truth | erased | reconstruction | samples | parsing of sample 1 | true parsing.\n")
    (folder / "metrics.md").write_text(text)
    print(text)
    return res


def add_evaluate_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--checkpoint", required=True, help="completion run folder")
    from pyposert._cli_args import count

    ap.add_argument("--count", type=count(1), default=200, help="held-out inputs to score, >= 1")
    ap.add_argument("--samples", type=count(1), default=4, help="completions per input (diversity needs >= 2)")
    ap.add_argument("--out", help="report folder (default CHECKPOINT/report)")


def run_from_args(args: argparse.Namespace) -> int:
    if args.count < 1 or args.samples < 1:
        raise ValueError(f"--count and --samples must be >= 1, got {args.count}, {args.samples}")
    evaluate_completion_checkpoint(args.checkpoint, args.count, args.samples, args.out)
    return 0

