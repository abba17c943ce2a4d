"""Skeleton normalisation: put each driving pose onto the photo's person.

A driver's skeleton lives in the driver's own pixels: a 1280 x 720 street video gives a
person 300 px tall somewhere in the frame, and the photo's person may be 200 px tall at the
left of a 176 x 256 picture. Used as is, the network draws a small figure in the wrong place.
:class:`SkeletonNormalizer` maps every driving pose into the photo's pixels so that the figure
stands where the photographed person stands and has their size:

    norm = SkeletonNormalizer(photo_pose, (h, w))       # photo_pose: (18, 2) (x, y) photo px
    for pose in driver_poses:                           # (18, 2) (x, y) driver px, missing -1
        target = norm(pose)                             # (18, 2) (x, y) photo px, or None

How (after Everybody Dance Now's global pose normalisation, Chan et al. 2019, with one photo
as the target): the driver's apparent size changes as they walk towards or away from the
camera; the figure must keep the photo person's size and stand on their feet.

- a frame's size relative to the photo's person is its standing height (the neck -> hip ->
  knee -> ankle bone lengths plus the head; bone *lengths*, so bending a knee, swinging an
  arm or turning does not change it) over the photo person's; where a leg is missing, the
  median over the bones both skeletons have of driver / photo bone length.
- ``size="height"`` (the default): the scale follows that measured size through a robust
  (Theil-Sen) line over the last ``window`` frames, evaluated now: a foreshortened limb in one
  frame does not make the figure pulse, and a driver who keeps growing is followed without
  lag. It holds when the camera moves, pans or zooms.
- ``size="feet"`` (EDN proper, for a static camera): the size is a linear function of how
  high the feet are in the frame (y of the lower ankle), fitted by least squares over the
  sequence from the reference frame on (the first frame with at least 3 shared bones); the
  slope is held towards 0 until the feet have moved by a good fraction of the body, so a
  driver at one distance gets one scale for the whole sequence, whatever they do. With a
  moving camera the feet's height stops meaning distance: the street video of the tests
  pans down 120 px in its first 10 frames, and against each frame's head-to-feet height this
  mode's scale is off by 6 % on average (up to 15 % too large), ``"height"``'s by 2-3 %.
- place: the driver's anchor (the mid-point of the hips horizontally, the lower ankle
  vertically) goes onto the photo person's. Where either skeleton lacks ankles the anchor is
  the hips, else the neck (a portrait, a webcam's upper body).
- optionally (``keep_bone_lengths=True``) the skeleton is rebuilt from the neck outwards with
  the photo person's bone lengths and only the driver's joint angles (bone directions).

Coordinates are (x, y) pixels, x first; a missing joint is (-1, -1) in and out.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .poses import NUM_JOINTS

__all__ = ["BONES", "SIZE_MODES", "SkeletonNormalizer", "bone_lengths"]

SIZE_MODES = ("height", "feet")

# COCO-18 bones as (parent, child), from the neck (1) outwards: the tree that
# keep_bone_lengths walks, and the bones whose lengths give the size.
BONES: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7),            # arms
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),      # torso and legs
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),              # head
)
_NECK, _R_HIP, _L_HIP, _R_ANKLE, _L_ANKLE = 1, 8, 11, 10, 13
MIN_SHARED_BONES = 3
# The slope of size against feet height is trusted once the feet's heights seen so far spread
# over this fraction of the photo person's height (mapped into the driver's pixels).
SLOPE_SPREAD = 0.05
# The size ratio may not change faster than this between consecutive frames (relative): a
# frame where the estimator lost a leg must not make the figure jump.
MAX_STEP = 0.08


def _present(kp: np.ndarray) -> np.ndarray:
    return np.isfinite(kp).all(axis=-1) & (kp >= 0).all(axis=-1)


def bone_lengths(keypoints: np.ndarray) -> np.ndarray:
    """float64 [len(BONES)] lengths in pixels of (18, 2) keypoints; NaN where a joint is missing."""
    kp = np.asarray(keypoints, np.float64)
    ok = _present(kp)
    out = np.full(len(BONES), np.nan)
    for i, (a, b) in enumerate(BONES):
        if ok[a] and ok[b]:
            out[i] = float(np.hypot(*(kp[b] - kp[a])))
    return out


# The neck -> hip -> knee -> ankle chain of each side (indices into BONES), plus neck -> nose:
# the sum of these lengths is a standing height that does not change when the person bends a
# joint, swings an arm or turns (no shoulder or hip width in it).
_CHAINS = ((6, 7, 8), (9, 10, 11))
_HEAD = 12


def _chain_ratio(driver: np.ndarray, photo: np.ndarray) -> Optional[float]:
    """Driver / photo height along the leg chains both skeletons have complete (mean over
    sides), head included when both have it; None when no side is complete in both."""
    sides = []
    for chain in _CHAINS:
        bones = list(chain) + ([_HEAD] if np.isfinite(driver[_HEAD]) and np.isfinite(photo[_HEAD]) else [])
        d, p = driver[bones], photo[bones]
        if np.isfinite(d).all() and np.isfinite(p).all() and p.sum() > 0:
            sides.append(float(d.sum() / p.sum()))
    return float(np.mean(sides)) if sides else None


def _theil_sen_last(values: list[float]) -> float:
    """The robust straight line through ``values`` (one per frame; Theil-Sen: the median of the
    pairwise slopes, the median intercept), evaluated at the newest frame. A median alone lags
    behind a driver who keeps growing (walking towards the camera); a least-squares line is
    dragged by one foreshortened frame; Theil-Sen is neither."""
    n = len(values)
    if n < 3:
        return float(np.median(values))
    v = np.asarray(values, np.float64)
    t = np.arange(n, dtype=np.float64)
    i, j = np.triu_indices(n, k=1)
    slope = float(np.median((v[j] - v[i]) / (j - i)))
    intercept = float(np.median(v - slope * t))
    return intercept + slope * (n - 1)


def _feet_y(kp: np.ndarray, ok: np.ndarray) -> Optional[float]:
    ankles = [kp[j, 1] for j in (_R_ANKLE, _L_ANKLE) if ok[j]]
    return float(max(ankles)) if ankles else None


def _hips_x(kp: np.ndarray, ok: np.ndarray) -> Optional[float]:
    hips = [kp[j, 0] for j in (_R_HIP, _L_HIP) if ok[j]]
    return float(np.mean(hips)) if hips else None


def _anchor(kp: np.ndarray, ok: np.ndarray, kind: str) -> Optional[tuple[float, float]]:
    """(x, y) of the anchor of ``kind`` ("feet" | "hips" | "neck"), or None when absent."""
    if kind == "feet":
        y, x = _feet_y(kp, ok), _hips_x(kp, ok)
        if y is None:
            return None
        if x is None:  # no hip: the ankles' middle
            x = float(np.mean([kp[j, 0] for j in (_R_ANKLE, _L_ANKLE) if ok[j]]))
        return x, y
    if kind == "hips":
        hips = [kp[j] for j in (_R_HIP, _L_HIP) if ok[j]]
        return (float(np.mean([h[0] for h in hips])), float(np.mean([h[1] for h in hips]))) if hips else None
    return (float(kp[_NECK, 0]), float(kp[_NECK, 1])) if ok[_NECK] else None


class SkeletonNormalizer:
    """Maps a sequence of driving poses onto the photo's person (see the module docstring).

    Args:
        photo_pose: float32 (18, 2) (x, y) photo pixels of the photographed person, missing -1
            (at least 3 bones present).
        photo_size: the photo's (h, w).
        keep_bone_lengths: rebuild each pose with the photo person's bone lengths, keeping only
            the driver's joint angles.
        size: "height" (measured per frame, robust line over ``window`` frames) or "feet" (EDN's
            linear function of the feet's height; static cameras).
        window: frames in the "height" line (default 9: under 0.4 s at 25 fps).

    Call it once per driving frame, in order: ``norm(pose)`` with pose float32 (18, 2) (x, y)
    driver pixels (missing -1) or None -> (18, 2) float32 photo pixels or None (no person, or
    no shared bone yet). :meth:`reset` starts a new sequence.

    Raises:
        ValueError: a photo pose with fewer than 3 bones (nothing to measure the size by).
    """

    def __init__(self, photo_pose: np.ndarray, photo_size: tuple[int, int], *, keep_bone_lengths: bool = False,
                 size: str = "height", window: int = 9) -> None:
        if size not in SIZE_MODES:
            raise ValueError(f"size must be one of {SIZE_MODES}, got {size!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        self.size, self.window = size, window
        self.photo = np.asarray(photo_pose, np.float32).reshape(NUM_JOINTS, 2)
        self.photo_ok = _present(self.photo)
        self.photo_bones = bone_lengths(self.photo)
        if int(np.isfinite(self.photo_bones).sum()) < MIN_SHARED_BONES:
            raise ValueError(f"the photo's pose has {int(np.isfinite(self.photo_bones).sum())} bones (pairs of joints "
                             f"both present); normalising the driver to it needs at least {MIN_SHARED_BONES}")
        self.photo_size = (int(photo_size[0]), int(photo_size[1]))
        self.keep_bone_lengths = bool(keep_bone_lengths)
        ys = self.photo[self.photo_ok, 1]
        self.photo_height = float(ys.max() - ys.min()) if ys.size else 1.0
        self.reset()

    def reset(self) -> None:
        """Forget the sequence: the next usable frame becomes the reference."""
        self.reference: Optional[int] = None  # index (call count) of the reference frame
        self._calls = 0
        self._n = 0.0
        self._sy = self._sr = self._syy = self._syr = 0.0
        self._ratio: Optional[float] = None  # last driver/photo size used
        self._recent: list[float] = []  # measured sizes of the last `window` frames ("height")
        self.last_scale: Optional[float] = None  # photo px per driver px of the last frame

    # ---------------------------------------------------------------- size model
    def _fit(self, feet: Optional[float], ratio: float) -> float:
        """Add this frame's (feet y, size ratio) and return the model's ratio at ``feet``."""
        if feet is None:  # no feet, no height: the sequence's mean size
            return self._sr / self._n if self._n else ratio
        self._n += 1.0
        self._sy += feet
        self._sr += ratio
        self._syy += feet * feet
        self._syr += feet * ratio
        mean_y, mean_r = self._sy / self._n, self._sr / self._n
        var_y = max(self._syy / self._n - mean_y * mean_y, 0.0)
        cov = self._syr / self._n - mean_y * mean_r
        # Ridge towards slope 0: until the feet have spread over SLOPE_SPREAD of the body
        # (in driver pixels), size is the sequence's mean, as for a driver at one distance.
        spread = SLOPE_SPREAD * self.photo_height * mean_r
        slope = cov / (var_y + spread * spread)
        return mean_r + slope * (feet - mean_y)

    # ---------------------------------------------------------------- per frame
    def __call__(self, pose: Optional[np.ndarray]) -> Optional[np.ndarray]:
        self._calls += 1
        if pose is None:
            return None
        drv = np.asarray(pose, np.float32).reshape(NUM_JOINTS, 2)
        ok = _present(drv)
        if not ok.any():
            return None
        lengths = bone_lengths(drv)
        ratios = lengths / self.photo_bones
        ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
        if ratios.size >= MIN_SHARED_BONES:
            if self.reference is None:
                self.reference = self._calls - 1
            chain = _chain_ratio(lengths, self.photo_bones)
            measured = chain if chain is not None else float(np.median(ratios))
            if self.size == "feet":
                ratio = self._fit(_feet_y(drv, ok), measured)
            else:
                self._recent = (self._recent + [measured])[-self.window:]
                ratio = _theil_sen_last(self._recent)
        elif self._ratio is not None:
            ratio = self._ratio  # too few bones this frame: the last size
        else:
            return None  # no reference yet
        if self._ratio is not None:  # bounded change per frame
            ratio = min(max(ratio, self._ratio * (1 - MAX_STEP)), self._ratio * (1 + MAX_STEP))
        self._ratio = ratio
        scale = 1.0 / ratio
        self.last_scale = scale
        out = self._place(drv, ok, scale)
        if self.keep_bone_lengths:
            rebuilt = self._rebuild(out, _present(out))
            out = self._place(rebuilt, _present(rebuilt), 1.0)
        return out

    def _place(self, drv: np.ndarray, ok: np.ndarray, scale: float) -> np.ndarray:
        """Scale about the driver's anchor and put it on the photo's anchor."""
        for kind in ("feet", "hips", "neck"):
            a, b = _anchor(drv, ok, kind), _anchor(self.photo, self.photo_ok, kind)
            if a is not None and b is not None:
                break
        else:  # no common anchor: the centres of the present joints
            a = tuple(drv[ok].mean(axis=0))
            b = tuple(self.photo[self.photo_ok].mean(axis=0))
        out = np.full((NUM_JOINTS, 2), -1.0, np.float32)
        mapped = (drv[ok].astype(np.float64) - a) * scale + b
        present = (mapped >= 0).all(axis=1)  # a joint pushed beyond the photo's top/left edge is missing
        rows = np.flatnonzero(ok)
        out[rows[present]] = mapped[present]
        return out

    def _rebuild(self, pose: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Bone directions of ``pose`` (photo px), lengths of the photo's person, from the neck."""
        ok = ok & _present(pose)
        out = np.full((NUM_JOINTS, 2), -1.0, np.float64)
        if not ok[_NECK]:
            return pose
        out[_NECK] = pose[_NECK]
        placed = np.zeros(NUM_JOINTS, bool)
        placed[_NECK] = True
        for i, (a, b) in enumerate(BONES):  # parents come before children in BONES
            if not ok[b]:
                continue
            length = self.photo_bones[i]
            if placed[a] and ok[a] and math.isfinite(length):
                d = pose[b].astype(np.float64) - pose[a]
                norm = float(np.hypot(*d))
                out[b] = out[a] + (d / norm * length if norm > 1e-6 else 0.0)
            elif placed[a] and ok[a]:
                out[b] = out[a] + (pose[b] - pose[a])  # the photo lacks this bone: the driver's
            else:
                out[b] = pose[b]
            placed[b] = True
        result = out.astype(np.float32)
        result[~placed] = -1.0
        return result
