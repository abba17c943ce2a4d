"""COCO-18 keypoint conventions of training (the body-mask limb table, flips, subjects and splits,
normalisation), the pairs CSV reader and the bank of real poses. The joint names, the skeleton
and the annotation CSV reader are :mod:`pyposert.poses`'s, re-exported here.

Coordinate contract (as everywhere in pyposert): keypoints are float arrays ``[..., 18, 2]`` in
**(x, y)** order (x = column, y = row), in pixels of the image they belong to; a missing joint is
``-1`` (readers also treat any negative value or NaN as missing). The annotation CSVs of the
PATN / Deformable-GAN lineage store **(y, x)** (row first); the readers here swap to (x, y).

The pose bank keeps poses in a *normalised* frame so poses from differently sized datasets can
be placed in any output frame without distorting their aspect ratio (see :class:`PoseBank`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

# COCO-18 facts shared with the runtime live in pyposert.poses; they stay importable from here.
from pyposert.poses import (  # noqa: F401
    ANNOTATION_HEADER, JOINT_NAMES, MISSING, NUM_JOINTS, SKELETON_LIMBS, parse_annotation_lines, read_annotation_csv)

# --------------------------------------------------------------------------------------------
# COCO-18 constants
# --------------------------------------------------------------------------------------------

JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

# Joint indices by name, for readable code elsewhere.
NOSE, NECK = 0, 1
R_SHOULDER, R_ELBOW, R_WRIST = 2, 3, 4
L_SHOULDER, L_ELBOW, L_WRIST = 5, 6, 7
R_HIP, R_KNEE, R_ANKLE = 8, 9, 10
L_HIP, L_KNEE, L_ANKLE = 11, 12, 13
R_EYE, L_EYE, R_EAR, L_EAR = 14, 15, 16, 17

# Horizontal flip swaps the person's left and right: joint j of the flipped pose is joint
# FLIP_PERMUTATION[j] of the original (the permutation is its own inverse).
FLIP_PERMUTATION: tuple[int, ...] = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)

# Limb table of REFERENCE_MODELS.md (0-based joint pairs), used by the PG2 body mask: the
# skeleton's 17 bones, then six bands that close the head and the torso.
LIMBS: tuple[tuple[int, int], ...] = SKELETON_LIMBS + ((1, 16), (1, 17), (8, 11), (11, 5), (8, 2), (16, 17))

# Frame (H, W) the annotation coordinates live in, keyed by the file-name / image-name prefix.
# DeepFashion: the shipped CSVs (Deformable-GAN lineage) are in the original 256 x 256 image
# (median neck x = 129, 1/4 of the rows have x >= 176); the 256 x 176 images PATN / PoNA train
# on are its centre crop, i.e. x_176 = x - DEEPFASHION_CROP_X. The centred normalisation below
# makes that automatic: PoseBank.pixels(i, (256, 176)) lands on the crop.
FRAME_SIZES: dict[str, tuple[int, int]] = {"fasion": (256, 256), "market": (128, 64)}
DEEPFASHION_CROP_X = 40

PAIRS_HEADER = "from,to"


def present_mask(keypoints: np.ndarray) -> np.ndarray:
    """Which joints are present.

    keypoints: float ``[..., 18, C>=2]``, (x, y[, conf]) pixels; missing = negative or NaN in x or y.
    Returns bool ``[..., 18]``.
    """
    xy = np.asarray(keypoints)[..., :2]
    with np.errstate(invalid="ignore"):
        return np.all(np.isfinite(xy) & (xy >= 0), axis=-1)


def flip_horizontal(keypoints: np.ndarray, width: int) -> np.ndarray:
    """Mirror keypoints of an image ``width`` pixels wide, swapping left/right joint channels.

    keypoints: float ``[..., 18, C>=2]`` in (x, y[, extra...]) pixels, missing = negative/NaN.
    Present joints get x -> width - 1 - x (pixel centres mirror onto pixel centres), missing
    joints are left unchanged, then the joint axis is permuted by :data:`FLIP_PERMUTATION`
    so that e.g. the mirrored right wrist becomes the left wrist. Returns a new float32 array
    of the same shape. Flipping twice returns the input.
    """
    kp = np.array(keypoints, dtype=np.float32, copy=True)
    if kp.ndim < 2 or kp.shape[-2] != NUM_JOINTS or kp.shape[-1] < 2:
        raise ValueError(f"keypoints must have shape [..., 18, >=2], got {kp.shape}")
    present = present_mask(kp)
    kp[..., 0] = np.where(present, (width - 1) - kp[..., 0], kp[..., 0])
    return kp[..., list(FLIP_PERMUTATION), :]


def flip_normalised(keypoints: np.ndarray) -> np.ndarray:
    """Mirror poses in the centred normalised frame of :class:`PoseBank` (x -> -x, NaN stays).

    keypoints: float ``[..., 18, 2]`` normalised (x, y), missing = NaN. Returns float32 copy
    with left/right channels swapped (:data:`FLIP_PERMUTATION`).
    """
    kp = np.array(keypoints, dtype=np.float32, copy=True)
    kp[..., 0] = -kp[..., 0]
    return kp[..., list(FLIP_PERMUTATION), :]


# --------------------------------------------------------------------------------------------
# CSV readers (the annotation CSV reader is pyposert.poses.read_annotation_csv, imported above)
# --------------------------------------------------------------------------------------------


def read_pairs_csv(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Read a pairs CSV: header ``from,to``, then ``source_name,target_name`` per line.

    Returns a list of (from, to) name tuples. Raises ValueError (file, line, problem) on a bad
    header or a row without exactly two non-empty names.
    """
    path = Path(path)
    pairs: list[tuple[str, str]] = []
    with open(path, encoding="utf-8") as f:
        header = f.readline()
        if header.strip().lstrip("\ufeff") != PAIRS_HEADER:
            raise ValueError(f"{path}:1: expected header {PAIRS_HEADER!r}, got {header.strip()[:80]!r}")
        for lineno, line in enumerate(f, start=2):
            line = line.strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 2 or not parts[0] or not parts[1]:
                raise ValueError(f"{path}:{lineno}: expected 'from_name,to_name', got {line[:80]!r}")
            pairs.append((parts[0], parts[1]))
    return pairs


# --------------------------------------------------------------------------------------------
# Names -> subject, dataset, held-out split
# --------------------------------------------------------------------------------------------


def dataset_of(name: str) -> str | None:
    """Dataset key of an image or file name ('fasion' / 'market'), or None when unknown."""
    base = Path(name).name.lower()
    for key in FRAME_SIZES:
        if base.startswith(key):
            return key
    return None


def subject_of(name: str, dataset: str | None = None) -> str:
    """Identity key of an annotated image: all images of one real person share it.

    DeepFashion ``fasionWOMENDressesid0000553705_4full.jpg`` -> ``fasionWOMENDressesid0000553705``;
    Market-1501 ``0224_c6s1_055726_02.jpg`` -> ``market:0224``. Market junk (-1) and distractor
    (0000) images are not one person, so each is its own subject.
    """
    stem = Path(name).stem
    dataset = dataset if dataset is not None else dataset_of(name)
    if dataset == "fasion" or stem.startswith("fasion"):
        return stem.rsplit("_", 1)[0] if "_" in stem else stem
    pid = stem.split("_", 1)[0]
    if pid in ("-1", "0000") or not pid:
        return f"market:{stem}"
    return f"market:{pid}"


def is_heldout(subject: str, fraction: float = 0.1) -> bool:
    """Deterministic held-out assignment of a subject (stable across runs and machines).

    Uses BLAKE2b of the subject key (Python's ``hash`` is salted per process), so the same
    person's poses always land on the same side of the train / eval split.
    """
    h = int.from_bytes(hashlib.blake2b(subject.encode("utf-8"), digest_size=8).digest(), "little")
    return (h % 1_000_000) < int(round(fraction * 1_000_000))


# --------------------------------------------------------------------------------------------
# Pose bank
# --------------------------------------------------------------------------------------------


def normalise(keypoints: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Pixel keypoints of an H x W frame -> centred normalised coordinates.

    keypoints: float ``[..., 18, 2]`` (x, y) pixels, missing = negative/NaN.
    Returns float32 same shape, (x, y) with ``x_n = (x - (W-1)/2) / H``, ``y_n = (y - (H-1)/2) / H``
    (both divided by the frame HEIGHT, so aspect ratio is kept), missing = NaN.
    """
    h, w = frame_hw
    kp = np.asarray(keypoints, np.float32)[..., :2]
    out = np.empty_like(kp)
    out[..., 0] = (kp[..., 0] - (w - 1) / 2.0) / h
    out[..., 1] = (kp[..., 1] - (h - 1) / 2.0) / h
    out[~present_mask(kp)] = np.nan
    return out


def denormalise(keypoints_n: np.ndarray, frame_hw: tuple[int, int], scale: float = 1.0,
                shift_xy: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Centred normalised (x, y) -> pixel (x, y) of an H x W frame, NaN preserved.

    ``x = x_n * H * scale + (W-1)/2 + shift_x``, ``y = y_n * H * scale + (H-1)/2 + shift_y``.
    The result may lie outside the frame (negative too); use :func:`to_reported` to turn it
    into contract keypoints (missing / outside = -1). Returns float32 ``[..., 18, 2]``.
    """
    h, w = frame_hw
    kp = np.asarray(keypoints_n, np.float32)
    out = np.empty_like(kp)
    out[..., 0] = kp[..., 0] * (h * scale) + (w - 1) / 2.0 + shift_xy[0]
    out[..., 1] = kp[..., 1] * (h * scale) + (h - 1) / 2.0 + shift_xy[1]
    return out


def to_reported(keypoints_xy: np.ndarray, present: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Contract keypoints: (x, y) pixels, -1 for joints not present or outside the frame.

    keypoints_xy: float ``[..., 18, 2]`` (x, y) pixels (may be outside the frame / NaN);
    present: bool ``[..., 18]``. A joint is inside when -0.5 <= x < W - 0.5 and likewise y
    (its pixel is in the image). Returns float32 ``[..., 18, 2]``.
    """
    h, w = frame_hw
    kp = np.asarray(keypoints_xy, np.float32)
    with np.errstate(invalid="ignore"):
        inside = (np.isfinite(kp).all(-1) & (kp[..., 0] >= -0.5) & (kp[..., 0] < w - 0.5)
                  & (kp[..., 1] >= -0.5) & (kp[..., 1] < h - 0.5))
    keep = inside & np.asarray(present, bool)
    # Joints in the half-pixel border round to -0.x: clamp so "present" never reads as negative.
    out = np.where(keep[..., None], np.maximum(kp, 0.0), np.float32(MISSING)).astype(np.float32)
    return out


@dataclass(frozen=True)
class PoseBank:
    """Real poses in centred normalised coordinates.

    Attributes:
        names: image names, length N (unique per dataset).
        subjects: person key per pose (see :func:`subject_of`), length N.
        datasets: dataset key per pose ('fasion' | 'market' | other), length N.
        keypoints: float32 ``[N, 18, 2]`` normalised **(x, y)**: ``x_n = (x - (W-1)/2) / H``,
            ``y_n = (y - (H-1)/2) / H`` with (H, W) the annotation frame (:data:`FRAME_SIZES`:
            DeepFashion 256 x 256 uncropped, Market 128 x 64); the frame centre is (0, 0),
            y spans [-0.5, 0.5]. Missing = NaN.
        present: bool ``[N, 18]``.
    """

    names: tuple[str, ...]
    subjects: tuple[str, ...]
    datasets: tuple[str, ...]
    keypoints: np.ndarray
    present: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices: np.ndarray | Sequence[int]) -> "PoseBank":
        idx = np.asarray(indices, dtype=np.int64)
        return PoseBank(
            names=tuple(self.names[i] for i in idx),
            subjects=tuple(self.subjects[i] for i in idx),
            datasets=tuple(self.datasets[i] for i in idx),
            keypoints=self.keypoints[idx],
            present=self.present[idx],
        )

    def heldout_mask(self, fraction: float = 0.1) -> np.ndarray:
        """bool ``[N]``: poses whose subject is held out for evaluation (:func:`is_heldout`)."""
        cache: dict[str, bool] = {}
        out = np.empty(len(self), bool)
        for i, s in enumerate(self.subjects):
            if s not in cache:
                cache[s] = is_heldout(s, fraction)
            out[i] = cache[s]
        return out

    def split(self, split: str, fraction: float = 0.1) -> "PoseBank":
        """Poses of the 'train' or 'eval' split; subjects never straddle the two."""
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        held = self.heldout_mask(fraction)
        return self.subset(np.flatnonzero(held if split == "eval" else ~held))

    def pixels(self, i: int, frame_hw: tuple[int, int]) -> np.ndarray:
        """Pose i placed in an H x W frame as contract keypoints float32 [18, 2] (x, y), -1 missing."""
        kp = denormalise(self.keypoints[i], frame_hw)
        return to_reported(kp, self.present[i], frame_hw)


def default_poses_dir() -> Path:
    """``$POSERT_POSES_DIR`` if set, else ``<repo>/../shared/data/poses``."""
    env = os.environ.get("POSERT_POSES_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "poses"


def load_pose_bank(
    poses_dir: str | os.PathLike[str] | None = None,
    *,
    files: Sequence[str] | None = None,
    frame_hw: tuple[int, int] | None = None,
    min_joints: int = 8,
    required: Sequence[int] = (NECK, R_SHOULDER, L_SHOULDER),
) -> PoseBank:
    """Load real poses from the annotation CSVs in ``poses_dir``, normalised and filtered.

    Args:
        poses_dir: folder with ``*-annotation-*.csv``; default :func:`default_poses_dir`.
        files: file names inside ``poses_dir`` to read (default: every ``*annotation*.csv``).
        frame_hw: annotation frame (H, W) for files whose name does not start with a known
            dataset prefix (``fasion`` -> 256 x 256, ``market`` -> 128 x 64; see FRAME_SIZES).
        min_joints: drop rows with fewer present joints (all -1 rows, tiny fragments).
        required: joints every kept row must have (neck and both shoulders by default: they
            give the renderer the body's scale and orientation).

    A name appearing in several files of one dataset is kept once. Results are cached per
    arguments (the bank is immutable). Raises FileNotFoundError if nothing is found.
    """
    d = Path(poses_dir) if poses_dir is not None else default_poses_dir()
    return _load_pose_bank_cached(str(d.resolve()), tuple(files) if files is not None else None,
                                  frame_hw, int(min_joints), tuple(int(j) for j in required))


@lru_cache(maxsize=8)
def _load_pose_bank_cached(d: str, files: tuple[str, ...] | None, frame_hw: tuple[int, int] | None,
                           min_joints: int, required: tuple[int, ...]) -> PoseBank:
    folder = Path(d)
    paths = [folder / f for f in files] if files is not None else sorted(folder.glob("*annotation*.csv"))
    if not paths:
        raise FileNotFoundError(f"no annotation CSVs in {folder} (set POSERT_POSES_DIR?)")
    names: list[str] = []
    subjects: list[str] = []
    datasets: list[str] = []
    kps: list[np.ndarray] = []
    seen: set[tuple[str, str]] = set()
    for path in paths:
        ds = dataset_of(path.name)
        hw = FRAME_SIZES.get(ds, frame_hw) if ds is not None else frame_hw
        if hw is None:
            raise ValueError(f"{path}: unknown dataset prefix; pass frame_hw=(H, W)")
        file_names, kp = read_annotation_csv(path)
        kpn = normalise(kp, hw)
        pres = present_mask(kp)
        keep = pres.sum(-1) >= min_joints
        for j in required:
            keep &= pres[:, j]
        ds_key = ds or "other"
        for i in np.flatnonzero(keep):
            key = (ds_key, file_names[i])
            if key in seen:
                continue
            seen.add(key)
            names.append(file_names[i])
            subjects.append(subject_of(file_names[i], ds))
            datasets.append(ds_key)
            kps.append(kpn[i])
    keypoints = np.stack(kps).astype(np.float32) if kps else np.zeros((0, NUM_JOINTS, 2), np.float32)
    keypoints.setflags(write=False)
    present = np.isfinite(keypoints).all(-1)
    present.setflags(write=False)
    return PoseBank(tuple(names), tuple(subjects), tuple(datasets), keypoints, present)
