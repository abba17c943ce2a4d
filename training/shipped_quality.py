"""Quality of the shipped bundles on a fixed held-out synthetic set, through the product path.

    python -m training.shipped_quality make-set            # models/heldout-rt.npz (committed)
    python -m training.shipped_quality score models/nram.plan models/pona.plan models/pg2.plan \
        --write models/quality.json

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
            out = engine.run(src_bgr, heldout["target_pose"][i], heldout["source_pose"][i], output_size="model")
            acc.add(out[..., ::-1], heldout["target_image"][i], heldout["target_mask"][i])
    return acc.summary()


def score_copy_source(heldout: dict[str, np.ndarray]) -> dict[str, float]:
    acc = MetricAccumulator()
    for s, t, m in zip(heldout["source_image"], heldout["target_image"], heldout["target_mask"]):
        acc.add(s, t, m)
    return acc.summary()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.shipped_quality", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-set", help="render the frozen held-out set")
    mk.add_argument("--out", type=Path, default=DEFAULT_SET)
    sc = sub.add_parser("score", help="score bundles on the held-out set")
    sc.add_argument("bundles", nargs="+", type=Path)
    sc.add_argument("--set", type=Path, default=DEFAULT_SET)
    sc.add_argument("--write", type=Path, help="write the scores as JSON (the regression test's reference)")
    args = ap.parse_args(argv)
    if args.cmd == "make-set":
        print(f"wrote {make_heldout_set(args.out)}")
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
