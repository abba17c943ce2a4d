"""Make the demo media shipped in ``pyposert/data/demo/`` (reproducible; run once, output committed).

    python -m training.demo_media [--out pyposert/data/demo] [--seed 7]

Writes:
- ``person.png``: a held-out synthetic person (an 'eval' identity the shipped models never
  trained on) standing in a real DeepFashion pose, 256 x 176 BGR on a studio backdrop;
- ``person_parsing.png``: its 8-class parsing map (uint8 class index per pixel,
  pyposert.completion.PARSING_CLASSES), for ``pyposert complete``;
- ``person_pose.json``: that photo's pose as OpenPose JSON (COCO-18, (x, y, confidence)
  pixels of the photo; missing joints 0, 0, 0);
- ``driving-poses.csv``: real poses of held-out DeepFashion subjects (PATN annotation format,
  y first, the 256 x 256 annotation frame) that the demo eases between as driving motion.

Only real held-out poses are used, so the demo shows neither a training identity nor a
training pose.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from training.data import poses as P
from training.data.synthetic import identity_seed, render, sample_identity

PHOTO_HW = (256, 176)
CROP_X = 40  # the 256 x 176 DeepFashion images are the centre crop of the 256 x 256 frame


def _heldout_rows(csv: Path) -> list[tuple[str, str, np.ndarray]]:
    """(raw line, name, keypoints (18, 2) (x, y) in the 256 x 176 crop, missing -1) of
    held-out subjects."""
    rows = []
    lines = csv.read_text(encoding="utf-8").splitlines()
    names, kps = P.parse_annotation_lines(lines, str(csv))
    for line, name, kp in zip((ln for ln in lines[1:] if ln.strip()), names, kps):
        if not P.is_heldout(P.subject_of(name)):
            continue
        xy = kp.astype(np.float32).copy()
        xy[:, 0] -= CROP_X
        ok = (kp >= 0).all(-1) & (xy[:, 0] >= 0) & (xy[:, 0] < PHOTO_HW[1]) & (xy[:, 1] < PHOTO_HW[0])
        xy[~ok] = -1
        rows.append((line, name, xy))
    return rows


def _frontal(kp: np.ndarray) -> bool:
    """All 18 joints present, facing the camera (the right shoulder on the image's left), and
    the wrists beside the body rather than across it (the whole outfit shows)."""
    return bool((kp >= 0).all() and kp[2, 0] < kp[5, 0] - 10 and kp[4, 0] < kp[2, 0] + 4 and kp[7, 0] > kp[5, 0] - 4)


def make(out: Path, seed: int = 7, driving_count: int = 40) -> dict[str, str]:
    csv = P.default_poses_dir() / "fasion-annotation-test.csv"
    rows = _heldout_rows(csv)
    frontal = [r for r in rows if _frontal(r[2])]
    if not frontal:
        raise RuntimeError(f"no frontal held-out pose with 18 joints in {csv}")
    rng = np.random.default_rng(seed)
    _, photo_name, photo_kp = frontal[int(rng.integers(len(frontal)))]
    ident = sample_identity(identity_seed(seed, 0, "eval"))
    r = render(ident, photo_kp, *PHOTO_HW, rng, background="plain")
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "person.png"), cv2.cvtColor(r.image, cv2.COLOR_RGB2BGR))
    # Its 8-class parsing map (class index per pixel, single-channel PNG) for `pyposert complete`.
    cv2.imwrite(str(out / "person_parsing.png"), r.parsing)
    flat: list[float] = []
    for x, y in r.keypoints:
        flat += [float(x), float(y), 1.0] if x >= 0 and y >= 0 else [0.0, 0.0, 0.0]
    (out / "person_pose.json").write_text(json.dumps(
        {"version": 1.3, "source": f"pose of {photo_name} (DeepFashion test annotations, 40 px crop)",
         "people": [{"pose_keypoints_2d": flat}]}, indent=1) + "\n", encoding="utf-8")
    # Driving: standing full bodies (>= 14 joints), spread over different subjects.
    full = [r for r in rows if (r[2] >= 0).all(-1).sum() >= 14]
    pick = rng.choice(len(full), size=min(driving_count, len(full)), replace=False)
    body = "\n".join(full[int(i)][0] for i in sorted(pick))
    (out / "driving-poses.csv").write_text("name:keypoints_y:keypoints_x\n" + body + "\n", encoding="utf-8")
    return {"photo": photo_name, "identity_seed": str(ident.seed), "driving_poses": str(len(pick))}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.demo_media", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="pyposert/data/demo")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    info = make(Path(args.out), args.seed)
    print(json.dumps(info, indent=1))
    print(f"wrote {Path(args.out).resolve()}/person.png, person_parsing.png, person_pose.json, driving-poses.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
