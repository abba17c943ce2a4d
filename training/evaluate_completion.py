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
IoU of the erased garment's class, diversity: mean pairwise L1 between the K samples of one
input (0 = no diversity; samples only), and the **checkerboard** measure (:func:`checkerboard`:
RMS grey levels of the detail that repeats exactly on the generator's 8 x 8 up-sampling grid)
over the pixels the completion must paint (:func:`pyposert.completion.generated_region`: the
garment in the truth or in the output), next to the truth's own value on the same pixels
(``checker_truth``).

Photo conditioning (:func:`colour_tracking`, ``python -m training.evaluate_completion photos``):
Spearman rank correlation, over photos, between the completed garment's mean colour and the
visible garments' mean colour, per CIELAB channel -- on the photos as they are, and with the
visible garments recoloured (the completion must follow when they change).

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
from training.evaluate_real import mean_lab, real_photos
from training.metrics import ssim
from training.models.completion import CompletionModel

__all__ = ["evaluate_model", "mean_fill", "score_region", "empty_scores", "evaluate_completion_checkpoint",
           "add_evaluate_arguments", "run_from_args", "checkerboard", "spearman", "garment_colours",
           "colour_tracking", "evaluate_photos", "frozen_samples"]

ROWS = ("reconstruction", "samples", "mean_fill")
COLUMNS = (("ssim", "region SSIM"), ("l1", "region L1"), ("parsing_acc", "parsing acc."),
           ("garment_iou", "garment IoU"), ("diversity", "diversity (pairwise L1)"),
           ("checker", "checkerboard"), ("checker_truth", "checkerboard of the truth"))


CHECKER_PERIOD = 8  # 2**n_down of the rt generators: deconvolution artefacts repeat on this grid (and its divisors)


def checkerboard(image: np.ndarray, mask: np.ndarray, period: int = CHECKER_PERIOD) -> float:
    """The grid artefact of transposed convolutions, in grey levels: the RMS of the mean
    ``period`` x ``period`` tile of the image's detail inside ``mask``.

    image: uint8 [H, W, C] in the model frame (the tile's phase is the frame's); mask: bool
    [H, W]. Detail = the image minus its ``period`` x ``period`` box average (which removes
    shading and keeps every pattern finer than the grid). Averaging the detail over all mask
    pixels of the same phase (y mod period, x mod period) keeps only what repeats exactly on
    the up-sampling grid: a deconvolution checkerboard survives whole, while texture leaves
    only sampling noise (its variance / pixels per phase), which is estimated from the spread
    within each phase and taken away, so texture without the grid scores about 0; compare with
    the truth's value on the same pixels. Pixels within period / 2 of the mask's edge are left out (the box
    average there mixes in outside pixels). NaN when some phase has no pixel."""
    x = image.astype(np.float32).mean(-1) if image.ndim == 3 else image.astype(np.float32)
    detail = x - cv2.blur(x, (period, period), borderType=cv2.BORDER_REFLECT)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((period + 1, period + 1), np.uint8)).astype(bool)
    h, w = inner.shape
    ys, xs = np.nonzero(inner)
    if len(ys) == 0:
        return float("nan")
    phase = (ys % period) * period + xs % period
    count = np.bincount(phase, minlength=period * period)
    if (count == 0).any():
        return float("nan")
    values = detail[ys, xs].astype(np.float64)
    tile = np.bincount(phase, weights=values, minlength=period * period) / count
    spread = np.bincount(phase, weights=values ** 2, minlength=period * period) / count - tile ** 2
    # E[tile^2] = pattern^2 + spread / count: take away what texture alone leaves in the tile.
    k = period * period
    power = np.mean((tile - tile.mean()) ** 2) - np.mean(spread / np.maximum(count - 1, 1)) * (1.0 - 1.0 / k)
    return float(np.sqrt(max(power, 0.0)))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D samples (ties get their mean rank); NaN when
    either is constant or there are fewer than 3 values."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")

    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=np.float64)
        for value in np.unique(v):  # ties: mean rank
            tie = v == value
            r[tie] = r[tie].mean()
        return r

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


LAB_CHANNELS = ("L", "a", "b")


def garment_colours(image_bgr: np.ndarray, completed: np.ndarray, labels: np.ndarray, region: np.ndarray,
                    garment: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(the completed garment's mean Lab, the visible garments' mean Lab) of one completion
    (image_bgr: uint8 [H, W, 3] BGR; completed, labels: uint8 [H, W] classes; region: bool [H, W]):
    pixels of class ``garment`` in ``completed`` inside ``region``; pixels of the other garment
    classes in ``labels`` (the photo's parsing) outside it. None where there are none."""
    others = [c for c in C.GARMENT_CLASSES if c != garment]
    return (mean_lab(image_bgr, region & (completed == garment)),
            mean_lab(image_bgr, ~region & np.isin(labels, others)))


def colour_tracking(completed: np.ndarray, visible: np.ndarray) -> dict[str, float]:
    """How the completed colours follow the visible ones, over rows of ``completed`` and
    ``visible`` ([N, 3] Lab): per channel the Spearman rank correlation ("L", "a", "b", and
    their mean "mean") and the least-squares slope of completed on visible ("slope_L", ...,
    "slope": their mean; 1 = the completion moves as much as the visible garments, 0 = it
    ignores them -- a rank correlation alone also rewards tiny, consistent shifts)."""
    rho: dict[str, float] = {ch: spearman(completed[:, k], visible[:, k]) for k, ch in enumerate(LAB_CHANNELS)}
    values = [rho[ch] for ch in LAB_CHANNELS]
    rho["mean"] = float(np.nanmean(values)) if not all(np.isnan(v) for v in values) else float("nan")
    slopes = []
    for k, ch in enumerate(LAB_CHANNELS):
        v = visible[:, k] - visible[:, k].mean()
        slope = float((v * (completed[:, k] - completed[:, k].mean())).sum() / (v * v).sum()) if (v * v).sum() > 0 \
            else float("nan")
        rho[f"slope_{ch}"] = slope
        slopes.append(slope)
    rho["slope"] = float(np.nanmean(slopes)) if not all(np.isnan(v) for v in slopes) else float("nan")
    return rho


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
        painted = C.generated_region(region, par, parsing, garment)
        for key, picture in (("checker", img), ("checker_truth", truth)):
            value = checkerboard(picture, painted)
            if not np.isnan(value):
                acc[key].append(value)
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
def paste_back(image: np.ndarray, completed: np.ndarray, truth: np.ndarray, parsing: np.ndarray, region: np.ndarray,
               garment: int) -> tuple[np.ndarray, np.ndarray]:
    """What ``Engine.complete`` composites: the photo (``truth``, ``parsing``) wherever
    :func:`pyposert.completion.generated_region` does not keep the completion."""
    kept = C.generated_region(region, completed, parsing, garment)
    return np.where(kept[:, :, None], image, truth), np.where(kept, completed, parsing).astype(np.uint8)


def evaluate_model(model: CompletionModel, ds: CompletionSamples, count: int, samples: int = 4,
                   grid_rows: int = 0, keep_photo: bool = True) -> dict[str, Any]:
    """Scores (see the module docstring) over inputs 0..count-1 of ``ds``; with ``keep_photo``
    the outputs are composited as ``Engine.complete`` composites them (:func:`paste_back`),
    else the whole box is the network's. Returns
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
        g = int(s["garment"])
        outs = [_u8(images[k]) for k in range(samples)]
        preds = [probs[k].argmax(0).numpy().astype(np.uint8) for k in range(samples)]
        if keep_photo:
            outs, preds = (list(x) for x in zip(*(paste_back(o, p, truth, parsing, region, g) for o, p in zip(outs, preds))))
        # reconstruction: z = the posterior means of the true garment, decoders as in sample()
        z_s = model.shape.posterior(t["garment_mask"])[0]
        z_a = model.texture.posterior(t["garment_crop"])[0]
        post_probs, post_image = model.complete(t["masked_image"], t["masked_parsing"], t["erase_mask"], heat, z_s, z_a,
                                                  t["garment_crops"])
        post = _u8(post_image[0])
        post_parsing = post_probs[0].argmax(0).numpy().astype(np.uint8)
        if keep_photo:
            post, post_parsing = paste_back(post, post_parsing, truth, parsing, region, g)
        fill, fill_parsing = mean_fill(truth, parsing, region)
        if keep_photo:  # the baseline keeps the photo as the model does: only the garment's pixels are filled
            fill, fill_parsing = paste_back(fill, fill_parsing, truth, parsing, region, g)
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


def frozen_samples(path: str | Path, crop_size: int, margin: float = C.DEFAULT_MARGIN,
                   pad: int = C.DEFAULT_PAD) -> list[dict[str, Any]]:
    """The frozen held-out inputs (models/heldout-completion.npz) as samples for
    :func:`evaluate_model` (it indexes them like a CompletionSamples)."""
    from training.data.completion import build_sample

    d = np.load(path)
    return [build_sample(d["image"][i], d["parsing"][i], d["keypoints"][i], int(d["garment"][i]), crop_size, margin, pad)
            for i in range(len(d["image"]))]


def evaluate_completion_checkpoint(checkpoint: str, count: int = 200, samples: int = 4, out: str | None = None,
                                   grid_rows: int = 8, keep_photo: bool = True) -> dict[str, Any]:
    ck = load_completion_checkpoint(checkpoint)
    model = ck.build_model()
    cfg = model.config
    data = ck.config.data
    ds = CompletionSamples(cfg.height, cfg.width, cfg.crop_size, "eval", ck.config.train.seed, data.background,
                           margin=cfg.margin, pad=cfg.pad, poses_dir=data.poses_dir or None)
    res = evaluate_model(model, ds, count, samples, grid_rows, keep_photo)
    folder = Path(out) if out else ck.folder / "report"
    folder.mkdir(parents=True, exist_ok=True)
    grid = res.pop("grid", None)
    if grid is not None:
        cv2.imwrite(str(folder / "grid.png"), grid)
    res.update(checkpoint=str(ck.folder), step=ck.step, keep_photo=keep_photo,
               split=f"synthetic eval ({cfg.height}x{cfg.width}, {count} inputs)")
    (folder / "metrics.json").write_text(json.dumps(res, indent=1) + "\n")
    kept = ", the photo kept where the garment is not" if keep_photo else ", the whole box the network's"
    text = (f"# Completion {ck.config.size}, step {ck.step}\n\n{res['split']}, scores inside the erase region{kept}.\n\n"
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
    ap.add_argument("--raw", action="store_true",
                    help="score the network's whole box, without keeping the photo's pixels that are not the garment's")


def run_from_args(args: argparse.Namespace) -> int:
    if args.count < 1 or args.samples < 1:
        raise ValueError(f"--count and --samples must be >= 1, got {args.count}, {args.samples}")
    evaluate_completion_checkpoint(args.checkpoint, args.count, args.samples, args.out, keep_photo=not args.raw)
    return 0



# ------------------------------------------------------------------ photos: does the completion answer them?
# Colours the visible garments are moved to (CIELAB, L 0..100) for the intervention test:
# navy, red, yellow, green, off-white, near-black.
RECOLOURS: tuple[tuple[float, float, float], ...] = ((30, 5, -35), (50, 60, 40), (85, -5, 70), (55, -45, 30),
                                                     (92, 0, 5), (18, 0, 0))


def recolour(image_bgr: np.ndarray, mask: np.ndarray, lab: tuple[float, float, float]) -> np.ndarray:
    """``image_bgr`` (uint8 [H, W, 3]) with the pixels under ``mask`` moved in CIELAB so that
    their mean is ``lab``; shading and pattern (deviations from the mean) are kept."""
    x = cv2.cvtColor(image_bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)
    x[mask] += np.asarray(lab, np.float32) - x[mask].mean(0)
    out = np.clip(cv2.cvtColor(x, cv2.COLOR_LAB2BGR) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.where(mask[:, :, None], out, image_bgr)


def _model_size(image: np.ndarray, keypoints: np.ndarray, height: int, width: int,
                labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A photo of the model's aspect, resized to the model frame (its pose and labels with it)."""
    h, w = image.shape[:2]
    if abs(h * width - w * height) > max(h, w):
        raise ValueError(f"photo {w} x {h} is not of the model's aspect {width} x {height}")
    kp = keypoints.copy()
    ok = (kp >= 0).all(1)
    kp[ok] = (kp[ok] + 0.5) * np.array([width / w, height / h], np.float32) - 0.5
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    lab = None if labels is None else cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
    return small, kp, lab


def evaluate_photos(completion_model: str, parser_model: str | None, photos: list[tuple[str, np.ndarray, Any]],
                    parsings: dict[str, np.ndarray] | None = None, garments: tuple[str, ...] = ("top", "bottom"),
                    samples: int = 2, keep_photo: bool = True, recolours: tuple[tuple[float, float, float], ...] = RECOLOURS,
                    backend: str = "onnxruntime") -> dict[str, Any]:
    """Photo conditioning of a completion bundle on photos (name, uint8 BGR [h, w, 3] of the
    model's aspect, pose), each resized to the model frame and completed whole (no framing).

    Each photo is parsed by ``parser_model`` (or taken from ``parsings`` by name). For every
    garment of ``garments`` it wears, the garment is completed (seed 0, ``samples`` samples)
    on the photo as it is and with its visible garments recoloured to each of ``recolours``.
    Rows: (photo, garment, recolour index or -1, the visible garments' mean Lab, the completed
    garment's mean Lab over the samples, the photo's own garment's mean Lab for -1).

    Returns {"rows", "photos": colour_tracking over the photos as they are, "photos_truth":
    the same for the photos' own garments (how much real outfits go together), "recoloured":
    over every row (does the completion follow when the visible garments change),
    "checker" / "checker_photo": the checkerboard measure of the painted pixels and of the
    photo on the same pixels, "grid": uint8 BGR picture}.
    """
    from pyposert import Engine
    from pyposert.poses import parse_pose

    rows: list[dict[str, Any]] = []
    checker, checker_photo = [], []
    grid_rows: list[np.ndarray] = []
    with Engine(completion_model, backend=backend) as engine:
        height, width = engine.spec.height, engine.spec.width
        parser = Engine(parser_model, backend=backend) if parser_model else None
        try:
            for name, image, pose in photos:
                keypoints = parse_pose(pose, name=f"{name} pose")
                given = None if parsings is None else parsings.get(name)
                small, kp, labels = _model_size(image, keypoints, height, width, given)
                if labels is None:
                    if parser is None:
                        raise ValueError(f"{name}: no parsing given and no parser model")
                    labels = parser.parse(small, kp, framing=False)
                for garment in garments:
                    cls = C.garment_class(garment)
                    if (labels == cls).sum() < 12:
                        continue
                    others = np.isin(labels, [c for c in C.GARMENT_CLASSES if c != cls])
                    variants = [(-1, small)] + [(k, recolour(small, others, lab)) for k, lab in enumerate(recolours)]
                    cells = [small, C.colorize_parsing(labels)]
                    for k, photo in variants:
                        out = engine.complete(photo, labels, kp, garment, seed=0, samples=samples,
                                              output_size="source" if keep_photo else "model", framing=False)
                        region = out.region.astype(bool)
                        done = [garment_colours(im, par, labels, region, cls)
                                for im, par in zip(out.images, out.parsings)]
                        painted = [c for c, _ in done if c is not None]
                        visible = mean_lab(photo, ~region & others)
                        if painted and visible is not None:
                            rows.append({"photo": name, "garment": garment, "recolour": k, "visible": visible.tolist(),
                                         "completed": np.mean(painted, 0).tolist(),
                                         "truth": (mean_lab(small, labels == cls).tolist() if k < 0 else None)})
                        if k < 0:
                            for im, par in zip(out.images, out.parsings):
                                mask = C.generated_region(region, par, labels, cls)
                                value, ref = checkerboard(im, mask), checkerboard(photo, mask)
                                if not np.isnan(value):
                                    checker.append(value)
                                    checker_photo.append(ref)
                            erased = np.where(region[:, :, None], np.uint8(128), photo)
                            cells += [erased, *out.images]
                        elif k < 3:
                            cells.append(out.images[0])
                    if garment == garments[0]:
                        sep = np.full((height, 2, 3), 255, np.uint8)
                        grid_rows.append(np.concatenate([x for c in cells for x in (c, sep)][:-1], 1))
        finally:
            if parser is not None:
                parser.close()
    result: dict[str, Any] = {"rows": rows, "samples": samples, "keep_photo": keep_photo,
                              "checker": float(np.mean(checker)) if checker else float("nan"),
                              "checker_photo": float(np.mean(checker_photo)) if checker_photo else float("nan")}
    natural = [r for r in rows if r["recolour"] < 0]
    if natural:
        result["photos"] = colour_tracking(np.array([r["completed"] for r in natural]),
                                           np.array([r["visible"] for r in natural]))
        result["photos_truth"] = colour_tracking(np.array([r["truth"] for r in natural]),
                                                 np.array([r["visible"] for r in natural]))
        result["recoloured"] = colour_tracking(np.array([r["completed"] for r in rows]),
                                               np.array([r["visible"] for r in rows]))
        result["count"] = {"photos": len(natural), "recoloured": len(rows)}
    if grid_rows:
        widest = max(r.shape[1] for r in grid_rows)
        grid_rows = [np.pad(r, ((0, 0), (0, widest - r.shape[1]), (0, 0)), constant_values=255) for r in grid_rows]
        gap = np.full((2, widest, 3), 255, np.uint8)
        result["grid"] = np.concatenate([x for r in grid_rows for x in (r, gap)][:-1], 0)
    return result


def compare_grid(before: str, after: str, heldout: str | Path, rows: int = 6, samples: int = 2,
                 backend: str = "onnxruntime") -> np.ndarray:
    """uint8 BGR picture, one held-out input per row: truth | erased | ``samples`` completions
    of ``before`` | ``samples`` of ``after`` (seed i for input i, through Engine.complete on
    the model-size photo, the photo kept where the garment is not)."""
    from pyposert import Engine

    d = np.load(heldout)
    lines = []
    with Engine(before, backend=backend) as a, Engine(after, backend=backend) as b:
        for i in range(rows):
            truth = np.ascontiguousarray(d["image"][i][:, :, ::-1])
            parsing, g = d["parsing"][i], int(d["garment"][i])
            garment = C.GARMENTS[C.GARMENT_CLASSES.index(g)]
            cells = [truth, np.where(C.box_mask(C.garment_box(parsing, g), *parsing.shape)[:, :, None] > 0,
                                     np.uint8(128), truth)]
            for engine in (a, b):
                cells += engine.complete(truth, parsing, d["keypoints"][i], garment, seed=i, samples=samples,
                                         framing=False).images
            sep = np.full((truth.shape[0], 2, 3), 255, np.uint8)
            lines.append(np.concatenate([x for c in cells for x in (c, sep)][:-1], 1))
    gap = np.full((2, lines[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([x for r in lines for x in (r, gap)][:-1], 0)


def main(argv: list[str] | None = None) -> int:
    """``python -m training.evaluate_completion photos --model M [--parser P] [--real DIR] --out DIR``
    and ``python -m training.evaluate_completion compare --before A --after B --out GRID.png``."""
    ap = argparse.ArgumentParser(prog="python -m training.evaluate_completion")
    sub = ap.add_subparsers(dest="cmd", required=True)
    ph = sub.add_parser("photos", help="photo conditioning on real photos and the demo person")
    ph.add_argument("--model", required=True, help="completion bundle")
    ph.add_argument("--parser", help="parser bundle (default: the photos' own parsing files are required)")
    ph.add_argument("--real", default="../shared/data/real", help="real-photo folder (photos/, poses/)")
    ph.add_argument("--samples", type=int, default=2)
    ph.add_argument("--raw", action="store_true", help="the network's whole box (no photo kept inside it)")
    ph.add_argument("--out", required=True, help="report folder: photos.json, photos.png")
    cp = sub.add_parser("compare", help="held-out completions of two bundles side by side")
    cp.add_argument("--before", required=True)
    cp.add_argument("--after", required=True)
    cp.add_argument("--heldout", default="models/heldout-completion.npz")
    cp.add_argument("--rows", type=int, default=6)
    cp.add_argument("--out", required=True, help="picture to write")
    args = ap.parse_args(argv)
    if args.cmd == "compare":
        cv2.imwrite(args.out, compare_grid(args.before, args.after, args.heldout, args.rows))
        print(f"wrote {args.out}")
        return 0
    demo = Path(__file__).resolve().parents[1] / "pyposert" / "data" / "demo"
    photos = real_photos(args.real) + [("demo_person", cv2.imread(str(demo / "person.png"), cv2.IMREAD_COLOR),
                                        str(demo / "person_pose.json"))]
    res = evaluate_photos(args.model, args.parser, photos, samples=args.samples, keep_photo=not args.raw)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = res.pop("grid", None)
    if grid is not None:
        cv2.imwrite(str(out / "photos.png"), grid)
    (out / "photos.json").write_text(json.dumps(res, indent=1) + "\n")
    summary = {k: res[k] for k in ("photos", "photos_truth", "recoloured", "count", "checker", "checker_photo") if k in res}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
