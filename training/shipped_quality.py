"""Quality of the shipped bundles on a fixed held-out synthetic set, through the product path.

    python -m training.shipped_quality make-set            # models/heldout-rt.npz (committed)
    python -m training.shipped_quality score models/nram.plan models/pona.plan models/pg2.plan \
        --write models/quality.json
    python -m training.shipped_quality score-real models/nram.plan --write models/quality-real.json
    python -m training.shipped_quality make-completion-set # models/heldout-completion.npz (committed)
    python -m training.shipped_quality score-completion models/completion.plan \
        --write models/quality-completion.json

The held-out set is frozen into a file (not re-rendered) so the regression test
(tests/test_shipped_models.py) needs neither the shared pose files nor a renderer that might
change: 48 'eval' pairs (identities and real poses never trained on), studio backdrops, 128 x 88.

Scoring runs each bundle through ``pyposert.Engine`` (ONNX Runtime on the CPU): uint8 BGR photo
and keypoints in, uint8 BGR out, exactly what a user gets, then the papers' metrics
(:mod:`training.metrics`; SSIM, mask-SSIM, PSNR, L1). The copy-the-source baseline is scored
on the same pairs. No torch is needed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from training.metrics import MetricAccumulator

DEFAULT_SET = Path("models/heldout-rt.npz")
SET_SEED = 20261130
SET_COUNT = 48


def make_heldout_set(path: Path = DEFAULT_SET, count: int = SET_COUNT, seed: int = SET_SEED,
                     height: int = 128, width: int = 88) -> Path:
    """Render ``count`` held-out pairs into ``path`` (npz, no pickle): source_image,
    target_image uint8 [N, H, W, 3] RGB; source_pose, target_pose float32 [N, 18, 2] (x, y)
    pixels, missing -1; target_mask uint8 [N, H, W]."""
    from training.data.synthetic import SyntheticPairs

    pairs = SyntheticPairs(height, width, split="eval", seed=seed, background="plain")
    items = [pairs.pair(i) for i in range(count)]
    arrays = {k: np.stack([p[k] for p in items]) for k in
              ("source_image", "target_image", "source_pose", "target_pose", "target_mask")}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def load_heldout_set(path: Path = DEFAULT_SET) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def score_bundle(bundle: Path, heldout: dict[str, np.ndarray], backend: str = "onnxruntime") -> dict[str, float]:
    """Mean metrics of ``bundle`` on the held-out pairs via pyposert.Engine (model-size output)."""
    from pyposert import Engine

    acc = MetricAccumulator()
    with Engine(bundle, backend=backend) as engine:
        for i in range(len(heldout["source_image"])):
            src_bgr = np.ascontiguousarray(heldout["source_image"][i][..., ::-1])
            # framing=False: the held-out photos are model-size and framed like the training data,
            # and the metrics compare the model frame with the target as it was rendered.
            out = engine.run(src_bgr, heldout["target_pose"][i], heldout["source_pose"][i], output_size="model",
                             framing=False)
            acc.add(out[..., ::-1], heldout["target_image"][i], heldout["target_mask"][i])
    return acc.summary()


def score_copy_source(heldout: dict[str, np.ndarray]) -> dict[str, float]:
    acc = MetricAccumulator()
    for s, t, m in zip(heldout["source_image"], heldout["target_image"], heldout["target_mask"]):
        acc.add(s, t, m)
    return acc.summary()


REAL_FRAMES = 8  # street-video frames beside the studio photos (training.evaluate_real)


def score_real(bundles: Sequence[Path], real: Path | None = None, frames: int = REAL_FRAMES,
               out: Path | None = None) -> dict[str, Any]:
    """Mirror-pair scores (training.evaluate_real: SSIM, body-box SSIM, L1, dE76, where the
    person left) of ``bundles`` and of the copy / warp-only baselines on the real photos and
    ``frames`` street-video frames. Returns {"pairs", "frames", "methods": {name: scores}}."""
    import tempfile

    from training.evaluate_real import DEFAULT_REAL, evaluate_real

    with tempfile.TemporaryDirectory() as tmp:
        summary = evaluate_real(real or DEFAULT_REAL, list(bundles), frames, out or Path(tmp))
    return {"pairs": summary["pairs"], "frames": frames, "methods": summary["methods"]}


COMPLETION_SET = Path("models/heldout-completion.npz")
COMPLETION_SAMPLES = 4  # completions per input (diversity)


def make_completion_set(path: Path = COMPLETION_SET, count: int = 32, seed: int = SET_SEED) -> Path:
    """Freeze ``count`` held-out completion inputs at 128 x 88 into ``path`` (npz, no pickle):
    image uint8 [N, H, W, 3] RGB, parsing uint8 [N, H, W], keypoints float32 [N, 18, 2] (x, y)
    pixels (missing -1), garment int64 [N] (class of the garment to erase)."""
    from training.data.completion import CompletionSamples

    ds = CompletionSamples(128, 88, 64, "eval", seed, "plain")
    items = [ds[i] for i in range(count)]
    arrays = {k: np.stack([np.asarray(p[k]) for p in items]) for k in ("image", "parsing", "keypoints", "garment")}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def score_completion(bundle: Path | None, heldout: dict[str, np.ndarray], backend: str = "onnxruntime") -> dict[str, float]:
    """Region scores (training.evaluate_completion's "samples" row: SSIM, L1, parsing accuracy,
    garment IoU, diversity) of ``bundle`` on the frozen inputs through ``Engine.complete``
    (seed i for input i, 4 samples, model-size output); with ``bundle`` None, of the mean-fill
    baseline (no diversity)."""
    from pyposert import Engine
    from pyposert import completion as C
    from training.evaluate_completion import COLUMNS, empty_scores, mean_fill, score_region

    acc = empty_scores()
    engine = Engine(bundle, backend=backend) if bundle is not None else None
    try:
        for i in range(len(heldout["image"])):
            truth, parsing, g = heldout["image"][i], heldout["parsing"][i], int(heldout["garment"][i])
            garment = C.GARMENTS[C.GARMENT_CLASSES.index(g)]
            box = C.garment_box(parsing, g)
            region = C.box_mask(box, *parsing.shape).astype(bool)
            if engine is None:
                fill, fill_parsing = mean_fill(truth, parsing, region)
                images, parsings = [fill], [fill_parsing]
            else:
                out = engine.complete(np.ascontiguousarray(truth[..., ::-1]), parsing, heldout["keypoints"][i], garment,
                                      seed=i, samples=COMPLETION_SAMPLES, output_size="model",
                                      framing=False)  # model frame of the whole (model-size) photo
                images, parsings = [im[..., ::-1] for im in out.images], out.parsings
            score_region(acc, images, parsings, truth, parsing, region, (box.y0, box.x0, box.y1, box.x1), g)
    finally:
        if engine is not None:
            engine.close()
    return {c: float(np.mean(acc[c])) for c, _ in COLUMNS if acc[c]}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.shipped_quality", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-set", help="render the frozen held-out set")
    mk.add_argument("--out", type=Path, default=DEFAULT_SET)
    sc = sub.add_parser("score", help="score bundles on the held-out set")
    sc.add_argument("bundles", nargs="+", type=Path)
    sc.add_argument("--set", type=Path, default=DEFAULT_SET)
    sc.add_argument("--write", type=Path, help="write the scores as JSON (the regression test's reference)")
    sr = sub.add_parser("score-real", help="score bundles on the real photos (mirror pairs) with the baselines")
    sr.add_argument("bundles", nargs="+", type=Path)
    sr.add_argument("--real", type=Path, help="real photos folder (default: ../shared/data/real)")
    sr.add_argument("--write", type=Path, help="write the scores as JSON (the regression test's reference)")
    mc = sub.add_parser("make-completion-set", help="freeze the held-out completion inputs")
    mc.add_argument("--out", type=Path, default=COMPLETION_SET)
    scc = sub.add_parser("score-completion", help="score a completion bundle (and the mean-fill baseline)")
    scc.add_argument("bundle", type=Path)
    scc.add_argument("--set", type=Path, default=COMPLETION_SET)
    scc.add_argument("--write", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "make-set":
        print(f"wrote {make_heldout_set(args.out)}")
        return 0
    if args.cmd == "make-completion-set":
        print(f"wrote {make_completion_set(args.out)}")
        return 0
    if args.cmd == "score-real":
        res = {"backend": "onnxruntime", **score_real(args.bundles, args.real)}
        for name, row in res["methods"].items():
            print(f"{name:<12} " + "  ".join(f"{k} {v:.4f}" for k, v in row.items()))
        if args.write:
            args.write.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
            print(f"wrote {args.write}")
        return 0
    if args.cmd == "score-completion":
        held = load_heldout_set(args.set)
        res = {"set": str(args.set), "inputs": int(len(held["image"])), "samples": COMPLETION_SAMPLES,
               "backend": "onnxruntime", "mean_fill": score_completion(None, held),
               "models": {args.bundle.stem: {"bundle": str(args.bundle), **score_completion(args.bundle, held)}}}
        for name, row in [("mean fill", res["mean_fill"])] + list(res["models"].items()):
            print(f"{name:<12} " + "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "bundle"))
        if args.write:
            args.write.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
            print(f"wrote {args.write}")
        return 0
    heldout = load_heldout_set(args.set)
    result: dict[str, Any] = {"set": str(args.set), "pairs": int(len(heldout["source_image"])),
                              "backend": "onnxruntime", "copy_source": score_copy_source(heldout), "models": {}}
    for b in args.bundles:
        result["models"][b.stem] = {"bundle": str(b), **score_bundle(b, heldout)}
    for name, row in [("copy source", result["copy_source"])] + list(result["models"].items()):
        print(f"{name:<12} SSIM {row['ssim']:.4f}  mask-SSIM {row['mask_ssim']:.4f}  PSNR {row['psnr']:.2f}  "
              f"L1 {row['l1']:.4f}")
    if args.write:
        args.write.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
