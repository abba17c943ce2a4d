"""Keypoint input for the Engine: arrays and OpenPose JSON -> one COCO-18 (18, 2) array.

Contract of everything returned here: float32 ``(18, 2)``, **(x, y)** pixels (x = column,
y = row) of the image the pose belongs to, COCO-18 / OpenPose order (0 nose, 1 neck,
2-4 right shoulder/elbow/wrist, 5-7 left, 8-10 right hip/knee/ankle, 11-13 left, 14 r-eye,
15 l-eye, 16 r-ear, 17 l-ear). A missing joint is exactly ``(-1, -1)``.

**The missing-joint convention** (the same in ``pyposert.ops``, the Engine, pose files and
the command line): a joint is missing when its x or y is negative, NaN or infinite, or its
confidence (when given) is below ``min_confidence`` or NaN. Missing joints get no heatmap.

**The minimum** (:data:`REQUIRED_JOINTS`): a usable pose has at least the neck and both hips
-- they say where the body is and how large. :func:`check_minimum` refuses a photo's pose or a
target pose without them (ValueError naming the missing joints); the retargeting loop treats
such a driving frame as a frame without a person (it keeps the last pose and counts it).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

__all__ = [
    "BODY25_TO_COCO18",
    "REQUIRED_JOINTS",
    "check_minimum",
    "has_minimum",
    "DEFAULT_MIN_CONFIDENCE",
    "JOINT_NAMES",
    "NUM_JOINTS",
    "PoseLike",
    "parse_openpose",
    "parse_pose",
]

NUM_JOINTS = 18
MISSING = -1.0
DEFAULT_MIN_CONFIDENCE = 0.05

JOINT_NAMES: tuple[str, ...] = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)

# Neck, right hip, left hip: without them the model cannot place or scale the body.
REQUIRED_JOINTS: tuple[int, ...] = (1, 8, 11)

# COCO-18 joint j is BODY_25 joint BODY25_TO_COCO18[j]. BODY_25 inserts MidHip at 8 (so every
# later joint shifts by one) and appends six foot points (19-24), which COCO-18 has no place for.
BODY25_TO_COCO18: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

# An OpenPose "pose_keypoints_2d" list is flat (x, y, confidence) triplets.
_OPENPOSE_LAYOUTS = {NUM_JOINTS * 3: ("COCO-18", None), 25 * 3: ("BODY_25", BODY25_TO_COCO18)}

PoseLike = Union[np.ndarray, Mapping[str, Any], str, os.PathLike, list, tuple]


def parse_pose(pose: PoseLike, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE, name: str = "pose") -> np.ndarray:
    """Any accepted pose -> float32 (18, 2) (x, y) pixels, missing joints (-1, -1).

    Args:
        pose: one of
            - an array-like (18, 2) of (x, y) or (18, 3) of (x, y, confidence) pixels;
            - an OpenPose JSON dict ``{"people": [{"pose_keypoints_2d": [...]}, ...]}`` (the
              first person is used) or one person ``{"pose_keypoints_2d": [...]}``, with 54
              numbers (COCO-18) or 75 (BODY_25, mapped to COCO-18; MidHip and feet dropped);
            - a path (str / PathLike ending in .json) to such an OpenPose file.
        min_confidence: joints whose confidence is below it are missing (OpenPose writes
            undetected joints as (0, 0, 0)).
        name: how error messages call the argument ("pose", "source_pose", ...).

    Raises:
        ValueError: wrong keypoint count or layout, non-numeric values, an OpenPose file
            without people. (NaN and infinite values are missing joints.)
    """
    threshold = float(min_confidence)
    if not math.isfinite(threshold):
        raise ValueError(f"min_confidence must be finite, got {min_confidence!r}")
    if isinstance(pose, (str, os.PathLike)):
        return parse_openpose(_read_json(pose, name), min_confidence=threshold, name=name)
    if isinstance(pose, Mapping):
        return parse_openpose(pose, min_confidence=threshold, name=name)
    return _from_array(pose, threshold, name)


def parse_openpose(data: Mapping[str, Any], *, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                   name: str = "pose", person: int = 0) -> np.ndarray:
    """OpenPose JSON (dict) -> float32 (18, 2) (x, y) pixels; see :func:`parse_pose`.

    ``person`` picks one entry of ``data["people"]`` (default: the first).
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{name}: OpenPose JSON must be an object, got {type(data).__name__}")
    if "people" in data:
        people = data["people"]
        if not isinstance(people, list):
            raise ValueError(f"{name}: OpenPose 'people' must be a list, got {type(people).__name__}")
        if not people:
            raise ValueError(f"{name}: the OpenPose JSON has no person ('people' is empty): nobody was detected")
        if not 0 <= person < len(people):
            raise ValueError(f"{name}: person {person} requested, the OpenPose JSON has {len(people)}")
        entry = people[person]
    else:
        entry = data
    if not isinstance(entry, Mapping) or "pose_keypoints_2d" not in entry:
        raise ValueError(f"{name}: expected an OpenPose JSON with 'people': [{{'pose_keypoints_2d': [...]}}], "
                         f"got keys {sorted(map(str, entry)) if isinstance(entry, Mapping) else type(entry).__name__}")
    flat = entry["pose_keypoints_2d"]
    if not isinstance(flat, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        raise ValueError(f"{name}: 'pose_keypoints_2d' must be a flat list of numbers (x, y, confidence, ...)")
    layout = _OPENPOSE_LAYOUTS.get(len(flat))
    if layout is None:
        raise ValueError(f"{name}: 'pose_keypoints_2d' must hold 54 numbers (COCO-18: 18 x (x, y, confidence)) "
                         f"or 75 (BODY_25), got {len(flat)}")
    triplets = np.asarray(flat, dtype=np.float64).reshape(-1, 3)
    _, mapping = layout
    if mapping is not None:
        triplets = triplets[list(mapping)]
    return _from_array(triplets, min_confidence, name)


def _read_json(path: Union[str, os.PathLike], name: str) -> Any:
    p = Path(path)
    if p.suffix.lower() != ".json":
        raise ValueError(f"{name}: a pose given as a path must be an OpenPose .json file, got {str(p)!r}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}: {p} is not valid JSON: {exc}") from None


def _from_array(pose: Any, min_confidence: float, name: str) -> np.ndarray:
    try:
        kp = np.asarray(pose, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected (18, 2) (x, y) or (18, 3) (x, y, confidence) numbers, "
                         f"got {type(pose).__name__}") from None
    if kp.ndim != 2 or kp.shape[0] != NUM_JOINTS or kp.shape[1] not in (2, 3):
        raise ValueError(f"{name}: expected (18, 2) (x, y) or (18, 3) (x, y, confidence) COCO-18 keypoints, "
                         f"got shape {tuple(kp.shape)}")
    xy = kp[:, :2]
    missing = ~np.isfinite(xy).all(axis=1) | (np.nan_to_num(xy, nan=-1.0) < 0).any(axis=1)
    if kp.shape[1] == 3:
        missing |= ~(kp[:, 2] >= min_confidence)  # NaN confidence: missing too
    xy = np.where(missing[:, None], MISSING, xy)
    with np.errstate(over="ignore"):
        out = xy.astype(np.float32)
    out[~np.isfinite(out).all(axis=1)] = MISSING  # beyond the float32 range: as infinite, missing
    return out


def has_minimum(keypoints: np.ndarray, required: Sequence[int] = REQUIRED_JOINTS) -> bool:
    """True when the (18, 2) pose (missing = negative) has every joint of ``required``."""
    return bool((keypoints[list(required)] >= 0).all())


def check_minimum(keypoints: np.ndarray, name: str = "pose", required: Sequence[int] = REQUIRED_JOINTS) -> np.ndarray:
    """``keypoints`` when it has every ``required`` joint (default: the neck and both hips);
    else ValueError saying which are missing."""
    absent = [JOINT_NAMES[j] for j in required if not (keypoints[j] >= 0).all()]
    if absent:
        present = int((keypoints >= 0).all(axis=1).sum())
        need = ("the neck and both hips" if tuple(required) == REQUIRED_JOINTS
                else ", ".join(JOINT_NAMES[j] for j in required))
        raise ValueError(f"{name}: too few joints: a pose needs at least {need}, and "
                         f"{', '.join(absent)} {'is' if len(absent) == 1 else 'are'} missing "
                         f"({present} of {NUM_JOINTS} joints present)")
    return keypoints


# A standing person, COCO-18 order, (x, y) pixels of a 256 x 176 frame: the fallback pose of
# `pyposert bench` when no real poses are at hand.
STANDING_POSE = np.array([
    [88, 40], [88, 64], [64, 64], [56, 100], [52, 134], [112, 64], [120, 100], [124, 134], [72, 134],
    [70, 180], [68, 226], [104, 134], [106, 180], [108, 226], [82, 34], [94, 34], [76, 38], [100, 38],
], np.float32)
