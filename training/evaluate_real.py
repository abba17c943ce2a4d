"""Score pose transfer on real photos: ``python -m training evaluate-real [--real DIR]
[--model models/nram.plan ...] [--frames 8] [--out report/real]``.

Mirror-pair protocol: there is no photo of a real person in a second pose, but the mirror
image of a photo is one. For every real photo, the target pose is the photo's own pose
mirrored (x -> w - 1 - x, left and right joints swapped) and the ground truth is the mirrored
photo. Real inputs: the studio photos in ``DIR/photos`` with ``DIR/poses`` and, with
``--frames N``, N frames of the street video ``DIR/video/street.avi`` cropped around the
tracked person (``DIR/video/poses``), all with OpenPose COCO-18 keypoints (``DIR/README.md``).

Scores, per method, averaged over the pairs:
- SSIM of the whole image, and inside the target body box (the mirrored keypoints' box,
  grown by 10% of its size, 15% more above the head);
- L1 in [-1, 1] units (PATN's l1_score), whole image;
- dE: the colour shift, CIE76 distance between the mean Lab colours of output and truth
  inside the body box (does the person keep their colours?);
- where the person left (the source person's region minus the target's, both from the warp's
  coverage of the photo on its own skeleton, :func:`person_region`): L1 to the truth there
  (``l1_left``), and ``flat_left``, the share of those pixels where the output is a plain fill
  (local standard deviation under 2 grey levels in a 7 x 7 window) and the truth is not: a
  model that paints the background it cannot see as a flat colour scores high.
Methods: ``copy`` (the photo itself), ``warp`` (pyposert.ops.warp of the photo to the target
skeleton, composited by its coverage over the photo with the person inpainted away: the op
and a classical fill, no network), and every
``--model`` through ``pyposert.Engine``. Writes ``real.json``, ``real.md`` and a gallery
``real_gallery.png`` (source | target skeleton | each method | truth).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pyposert import Engine, ops
from pyposert.poses import parse_pose
from training.evaluate import make_grid, pose_cell
from training.metrics import l1_score, ssim

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared" / "data" / "real"
# COCO-18 left/right pairs, swapped by mirroring.
MIRROR_PAIRS = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17))
CELL = (256, 176)  # gallery cell (h, w)


@dataclass(frozen=True)
class RealPair:
    name: str
    photo: np.ndarray  # uint8 [h, w, 3] BGR
    pose: np.ndarray  # float32 [18, 2] (x, y) pixels of photo, missing (-1, -1)
    target: np.ndarray  # the mirrored pose
    truth: np.ndarray  # the mirrored photo


def mirror_pose(pose: np.ndarray, width: int) -> np.ndarray:
    """(x, y) -> (w - 1 - x, y) with left and right joints swapped; missing stays missing."""
    out = pose.copy()
    present = (pose >= 0).all(-1)
    out[present, 0] = width - 1 - pose[present, 0]
    for a, b in MIRROR_PAIRS:
        out[[a, b]] = out[[b, a]]
    return out


def make_pair(name: str, photo: np.ndarray, pose: np.ndarray) -> RealPair:
    return RealPair(name, photo, pose, mirror_pose(pose, photo.shape[1]), np.ascontiguousarray(photo[:, ::-1]))


def body_box(pose: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the present joints, grown by 10% of the box (15% more above), clipped."""
    kp = pose[(pose >= 0).all(-1)]
    x0, y0 = kp.min(0)
    x1, y1 = kp.max(0)
    size = max(x1 - x0, y1 - y0, 8.0)
    x0, x1 = x0 - 0.1 * size, x1 + 0.1 * size
    y0, y1 = y0 - 0.25 * size, y1 + 0.1 * size
    return (max(0, int(x0)), max(0, int(y0)), min(width, int(np.ceil(x1)) + 1), min(height, int(np.ceil(y1)) + 1))


def real_photos(real: str | Path) -> list[tuple[str, np.ndarray, Path]]:
    """(name, uint8 [h, w, 3] BGR photo, pose file) of every ``photos/*.jpg`` of the real-photo
    folder that has a ``poses/<name>_keypoints.json``, in name order."""
    real = Path(real)
    photos = []
    for path in sorted((real / "photos").glob("*.jpg")):
        pose_file = real / "poses" / f"{path.stem}_keypoints.json"
        photo = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if photo is not None and pose_file.is_file():
            photos.append((path.stem, photo, pose_file))
    return photos


def load_photos(real: Path) -> list[RealPair]:
    return [make_pair(name, photo, parse_pose(pose_file)) for name, photo, pose_file in real_photos(real)]


def load_video_frames(real: Path, count: int) -> list[RealPair]:
    """`count` frames spread over the street video, each cropped around the tracked person
    (body box grown to the model's 256:176 aspect, inside the frame)."""
    video = real / "video" / "street.avi"
    if count <= 0 or not video.is_file():
        return []
    poses = sorted((real / "video" / "poses").glob("street_*_keypoints.json"))
    cap = cv2.VideoCapture(str(video))
    frames = []
    ok, frame = cap.read()
    while ok:
        frames.append(frame)
        ok, frame = cap.read()
    cap.release()
    pairs = []
    for i in np.linspace(0, min(len(frames), len(poses)) - 1, count).round().astype(int):
        pose = parse_pose(poses[i])
        if ((pose >= 0).all(-1)).sum() < 8:
            continue
        h, w = frames[i].shape[:2]
        x0, y0, x1, y1 = body_box(pose, h, w)
        cy, bh = (y0 + y1) / 2, (y1 - y0) * 1.1
        bw = bh * CELL[1] / CELL[0]
        cx = (x0 + x1) / 2
        left, top = int(max(0, cx - bw / 2)), int(max(0, cy - bh / 2))
        right, bottom = int(min(w, cx + bw / 2)), int(min(h, cy + bh / 2))
        crop = np.ascontiguousarray(frames[i][top:bottom, left:right])
        shifted = pose.copy()
        present = (pose >= 0).all(-1)
        shifted[present] -= np.array([left, top], np.float32)
        shifted[present] = np.maximum(shifted[present], 0.0)
        pairs.append(make_pair(f"street_{i:03d}", crop, shifted))
    return pairs


def to_model(photo: np.ndarray) -> np.ndarray:
    """uint8 [h, w, 3] BGR -> float32 [1, 3, h, w] in [-1, 1] (channel order kept)."""
    return (photo.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None].copy()


def person_region(photo: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """uint8 [h, w] mask (255 = person) of the photo's person for ``pose`` in its pixels: where
    the warp of the photo onto that skeleton has coverage, grown by 2% of the photo's size."""
    h, w = photo.shape[:2]
    _, cover = ops.warp(to_model(photo), pose[None], pose[None], h, w)
    mask = (cover[0, 0] > 0.05).astype(np.uint8) * 255
    grow = max(3, round(0.02 * max(h, w)))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))


def background_plate(photo: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """The photo with its person removed by a classical fill: the person's region
    (:func:`person_region`) filled by OpenCV's Telea inpainting."""
    grow = max(3, round(0.02 * max(photo.shape[:2])))
    return cv2.inpaint(photo, person_region(photo, pose), grow, cv2.INPAINT_TELEA)


def warp_only(pair: RealPair) -> np.ndarray:
    """ops.warp of the photo to the target skeleton, composited by its coverage over the photo's
    background plate (the person removed)."""
    h, w = pair.photo.shape[:2]
    warped, cover = ops.warp(to_model(pair.photo), pair.pose[None], pair.target[None], h, w)
    plate = to_model(background_plate(pair.photo, pair.pose))[0]
    mixed = cover[0] * warped[0] + (1.0 - cover[0]) * plate
    return np.clip((mixed.transpose(1, 2, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def mean_lab(image_bgr: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray | None:
    """Mean CIELAB colour (L 0..100, a, b) of uint8 [h, w, 3] BGR pixels, all of them or those
    under ``mask`` (bool [h, w]); None when the mask is empty."""
    lab = cv2.cvtColor(image_bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)
    if mask is None:
        return lab.reshape(-1, 3).mean(0)
    return lab[mask].mean(0) if mask.any() else None


FLAT_WINDOW, FLAT_STD = 7, 2.0  # a "plain fill": local std of the grey levels under 2 in 7 x 7


def _flat(image: np.ndarray) -> np.ndarray:
    """bool [h, w]: pixels whose 7 x 7 neighbourhood is a plain fill (grey-level std < 2)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    mean = cv2.blur(grey, (FLAT_WINDOW, FLAT_WINDOW))
    var = cv2.blur(grey * grey, (FLAT_WINDOW, FLAT_WINDOW)) - mean * mean
    return var < FLAT_STD * FLAT_STD


def left_region(pair: RealPair) -> np.ndarray:
    """bool [h, w]: where the person was in the photo and is not in the target (the truth)."""
    return (person_region(pair.photo, pair.pose) > 0) & (person_region(pair.truth, pair.target) == 0)


def score(output: np.ndarray, pair: RealPair, left: np.ndarray | None = None) -> dict[str, float]:
    """The scores of the module docstring; ``left`` (:func:`left_region`) is computed when not given."""
    h, w = pair.truth.shape[:2]
    x0, y0, x1, y1 = body_box(pair.target, h, w)
    rgb_out, rgb_truth = output[..., ::-1], pair.truth[..., ::-1]
    box_out, box_truth = output[y0:y1, x0:x1], pair.truth[y0:y1, x0:x1]
    left = left_region(pair) if left is None else left
    textured = left & ~_flat(pair.truth)
    diff = np.abs(output.astype(np.float32) - pair.truth.astype(np.float32)) / 127.5
    return {
        "ssim": ssim(np.ascontiguousarray(rgb_out), np.ascontiguousarray(rgb_truth)),
        "ssim_body": ssim(np.ascontiguousarray(box_out[..., ::-1]), np.ascontiguousarray(box_truth[..., ::-1])),
        "l1": l1_score(output, pair.truth),
        "dE": float(np.linalg.norm(mean_lab(box_out) - mean_lab(box_truth))),
        "l1_left": float(diff[left].mean()) if left.any() else 0.0,
        "flat_left": float(_flat(output)[textured].mean()) if textured.any() else 0.0,
    }


def cell(image_bgr: np.ndarray) -> np.ndarray:
    """uint8 RGB [256, 176, 3]: the image scaled to fit, on white."""
    h, w = image_bgr.shape[:2]
    s = min(CELL[0] / h, CELL[1] / w)
    small = cv2.resize(image_bgr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.full((*CELL, 3), 255, np.uint8)
    top, left = (CELL[0] - small.shape[0]) // 2, (CELL[1] - small.shape[1]) // 2
    out[top:top + small.shape[0], left:left + small.shape[1]] = small[..., ::-1]
    return out


def evaluate_real(real: Path, models: Sequence[Path], frames: int, out: Path) -> dict:
    pairs = load_photos(real) + load_video_frames(real, frames)
    if not pairs:
        raise FileNotFoundError(f"no real photos with poses under {real} (expected photos/*.jpg and poses/)")
    methods: dict[str, object] = {"copy": None, "warp": None}
    for model in models:
        methods[Path(model).stem] = Engine(model)
    scores: dict[str, list[dict[str, float]]] = {name: [] for name in methods}
    rows = []
    for pair in tqdm(pairs, desc="real pairs", unit="pair"):
        h, w = pair.photo.shape[:2]
        row = [cell(pair.photo), pose_cell(cell_pose(pair.target, h, w), *CELL)]
        left = left_region(pair)
        for name, engine in methods.items():
            if name == "copy":
                output = pair.photo
            elif name == "warp":
                output = warp_only(pair)
            else:
                output = engine.run(pair.photo, pair.target, pair.pose)
            scores[name].append(score(output, pair, left))
            row.append(cell(output))
        row.append(cell(pair.truth))
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "real_gallery.png"), make_grid(rows)[..., ::-1])
    summary = {"pairs": [p.name for p in pairs], "columns": ["source", "target", *methods, "truth"],
               "methods": {name: {k: float(np.mean([s[k] for s in rows_])) for k in rows_[0]}
                           for name, rows_ in scores.items()},
               "per_pair": {name: rows_ for name, rows_ in scores.items()}}
    (out / "real.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    lines = [f"Mirror pairs on {len(pairs)} real photos ({', '.join(p.name for p in pairs)}).", "",
             "| method | SSIM | SSIM (body box) | L1 | dE76 (body box) | L1 where the person left | plain fill there |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in summary["methods"].items():
        lines.append(f"| {name} | {m['ssim']:.3f} | {m['ssim_body']:.3f} | {m['l1']:.3f} | {m['dE']:.1f} | "
                     f"{m['l1_left']:.3f} | {100 * m['flat_left']:.1f}% |")
    (out / "real.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return summary


def cell_pose(pose: np.ndarray, h: int, w: int) -> np.ndarray:
    """A pose of an [h, w] image mapped into the gallery cell (as cell() places the image)."""
    s = min(CELL[0] / h, CELL[1] / w)
    top, left = (CELL[0] - round(h * s)) // 2, (CELL[1] - round(w * s)) // 2
    out = pose.copy()
    present = (pose >= 0).all(-1)
    out[present] = pose[present] * s + np.array([left, top], np.float32)
    return out


def add_evaluate_real_arguments(ap: argparse.ArgumentParser) -> None:
    from pyposert._cli_args import count

    ap.add_argument("--real", type=Path, default=DEFAULT_REAL,
                    help="folder with photos/, poses/ and video/ (default: ../shared/data/real beside the checkout)")
    ap.add_argument("--model", type=Path, action="append", default=None,
                    help="a model bundle to score (repeatable; default models/nram.plan)")
    ap.add_argument("--frames", type=count(0), default=8, help="street-video frames to add as real photos (default 8; 0: none)")
    ap.add_argument("--out", type=Path, default=Path("report/real"), help="output folder (default report/real)")


def run_from_args(args: argparse.Namespace) -> int:
    models = args.model if args.model else [REPO / "models" / "nram.plan"]
    summary = evaluate_real(args.real, models, args.frames, args.out)
    print((args.out / "real.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {args.out / 'real.json'} and {args.out / 'real_gallery.png'} ({len(summary['pairs'])} pairs)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.evaluate_real", description=__doc__.splitlines()[0])
    add_evaluate_real_arguments(ap)
    return run_from_args(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
