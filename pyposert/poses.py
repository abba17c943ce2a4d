"""Keypoint input for the Engine: arrays and pose JSON -> one COCO-18 (18, 2) array.

Accepted keypoint formats (arrays of (x, y[, confidence]) rows, or flat JSON lists of
(x, y, confidence) triplets), all mapped to COCO-18:

| format | joints | JSON numbers | neck |
|---|---|---|---|
| COCO-17 (COCO, MMPose, Detectron2, YOLO-pose, ...) | 17 | 51 | mid-shoulders |
| OpenPose COCO-18 | 18 | 54 | its own (mid-shoulders when missing) |
| OpenPose BODY_25 | 25 | 75 | its own (mid-shoulders when missing) |
| MediaPipe BlazePose-33, pixels | 33 | 99 (132 with z) | mid-shoulders |

JSON layouts: OpenPose ``{"people": [{"pose_keypoints_2d": [...]}, ...]}``, one person
``{"pose_keypoints_2d": [...]}`` or ``{"keypoints": [...]}``, a list of such people (COCO
results, MMPose), or a COCO file ``{"annotations": [...]}``. With several people, ``person``
chooses: "largest" (the biggest keypoint box, the default), "center" (nearest the image
centre) or an index (:func:`select_person`).

Contract of everything returned here: float32 ``(18, 2)``, **(x, y)** pixels (x = column,
y = row) of the image the pose belongs to, COCO-18 / OpenPose order (0 nose, 1 neck,
2-4 right shoulder/elbow/wrist, 5-7 left, 8-10 right hip/knee/ankle, 11-13 left, 14 r-eye,
15 l-eye, 16 r-ear, 17 l-ear). A missing joint is exactly ``(-1, -1)``.

**The missing-joint convention** (the same in ``pyposert.ops``, the Engine, pose files and
the command line): a joint is missing when its x or y is negative, NaN or infinite, or its
confidence (when given) is below ``min_confidence`` or NaN. Missing joints get no heatmap.

Also here, for the runtime and for training alike: the skeleton (:data:`SKELETON_LIMBS`,
:func:`draw_skeleton`) and the PATN / PoNA annotation CSV reader (:func:`read_annotation_csv`).

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
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = [
    "ANNOTATION_HEADER",
    "BLAZEPOSE_TO_COCO18",
    "BODY25_TO_COCO18",
    "COCO17_TO_COCO18",
    "FORMATS",
    "PersonChoice",
    "check_person",
    "parse_people",
    "select_person",
    "track_person",
    "REQUIRED_JOINTS",
    "check_minimum",
    "has_minimum",
    "DEFAULT_MIN_CONFIDENCE",
    "JOINT_NAMES",
    "NUM_JOINTS",
    "PoseLike",
    "parse_openpose",
    "parse_pose",
    "SKELETON_LIMBS",
    "draw_skeleton",
    "parse_annotation_lines",
    "read_annotation_csv",
]

NUM_JOINTS = 18
MISSING = -1.0
DEFAULT_MIN_CONFIDENCE = 0.05

JOINT_NAMES: tuple[str, ...] = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)

# The COCO-18 skeleton: its 17 bones as (joint, joint) index pairs, in the order of the limb
# table of REFERENCE_MODELS.md (whose body mask adds six more bands, training.data.poses.LIMBS).
SKELETON_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

# Neck, right hip, left hip: without them the model cannot place or scale the body.
REQUIRED_JOINTS: tuple[int, ...] = (1, 8, 11)

# COCO-18 joint j is BODY_25 joint BODY25_TO_COCO18[j]. BODY_25 inserts MidHip at 8 (so every
# later joint shifts by one) and appends six foot points (19-24), which COCO-18 has no place for.
BODY25_TO_COCO18: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

# COCO-18 joint j is COCO-17 joint COCO17_TO_COCO18[j]; COCO-17 has no neck (None: the
# mid-point of the shoulders). COCO-17: 0 nose, 1/2 left/right eye, 3/4 ears, 5/6 shoulders,
# 7/8 elbows, 9/10 wrists, 11/12 hips, 13/14 knees, 15/16 ankles (left first, the person's own).
COCO17_TO_COCO18: tuple[Optional[int], ...] = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)

# COCO-18 joint j is BlazePose landmark BLAZEPOSE_TO_COCO18[j] (mediapipe.solutions.pose
# .PoseLandmark: 0 nose, 2 left_eye, 5 right_eye, 7 left_ear, 8 right_ear, 11/12 left/right
# shoulder, 13/14 elbow, 15/16 wrist, 23/24 hip, 25/26 knee, 27/28 ankle); neck: mid-shoulders.
BLAZEPOSE_TO_COCO18: tuple[Optional[int], ...] = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)

# Format name -> (joints, map to COCO-18 or None for COCO-18 itself).
FORMATS: dict[str, tuple[int, Optional[tuple[Optional[int], ...]]]] = {
    "COCO-17": (17, COCO17_TO_COCO18),
    "COCO-18": (NUM_JOINTS, None),
    "BODY_25": (25, BODY25_TO_COCO18),
    "MediaPipe-33": (33, BLAZEPOSE_TO_COCO18),
}
_BY_JOINTS = {joints: name for name, (joints, _) in FORMATS.items()}
_NECK, _R_SHOULDER, _L_SHOULDER = 1, 2, 5
_FORMATS_TEXT = ("(17, 2|3) COCO-17, (18, 2) (x, y) or (18, 3) (x, y, confidence) COCO-18, (25, 2|3) BODY_25 or "
                 "(33, 2|3|4) MediaPipe-33 (x, y[, z][, visibility]) pixels")
_JSON_TEXT = ("51 numbers (COCO-17: 17 x (x, y, confidence)), 54 numbers (COCO-18), 75 numbers (BODY_25) or "
              "99 numbers (MediaPipe-33; 132 with z)")

PoseLike = Union[np.ndarray, Mapping[str, Any], str, os.PathLike, list, tuple]
PersonChoice = Union[str, int]  # "largest" | "center" | index
PERSON_CHOICES = ("largest", "center")


def parse_pose(pose: PoseLike, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE, name: str = "pose",
               person: PersonChoice = "largest", image_size: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Any accepted pose -> float32 (18, 2) (x, y) pixels, COCO-18, missing joints (-1, -1).

    Args:
        pose: one of
            - an array-like of one person's keypoints in pixels, any format of the module's
              table: (17|18|25, 2|3) (x, y[, confidence]) or (33, 2|3|4) (x, y[, z][, visibility]);
            - an array-like [P, K, 2|3] of several people (``person`` chooses one);
            - a pose JSON dict or list (OpenPose ``{"people": [{"pose_keypoints_2d": [...]}]}``,
              ``{"keypoints": [...]}``, a list of people, COCO ``{"annotations": [...]}``), flat
              (x, y, confidence) lists of a format of the table;
            - a path (str / PathLike ending in .json) to such a file.
        min_confidence: joints whose confidence is below it are missing (OpenPose writes
            undetected joints as (0, 0, 0); COCO's visibility 0 = not labelled).
        name: how error messages call the argument ("pose", "source_pose", ...).
        person: which person when there are several: "largest" | "center" | index (0-based,
            in file order); see :func:`select_person`.
        image_size: (h, w) of the image the pose belongs to ("center" uses its centre; None:
            the centre of all people's keypoints).

    The neck, which COCO-17 and MediaPipe do not have, is the mid-point of the shoulders
    (present when both are); so is a missing COCO-18 / BODY_25 neck.

    Raises:
        ValueError: a keypoint count or layout of no known format (the message lists the
            formats), non-numeric values, a JSON without people, a person index beyond the
            people there. (NaN and infinite coordinates are missing joints.)
    """
    people = parse_people(pose, min_confidence=min_confidence, name=name)
    if not people:
        raise ValueError(f"{name}: the pose JSON has no person ('people' is empty): nobody was detected")
    return people[select_person(people, person, image_size=image_size, name=name)]


def parse_openpose(data: Mapping[str, Any], *, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                   name: str = "pose", person: PersonChoice = "largest",
                   image_size: Optional[tuple[int, int]] = None) -> np.ndarray:
    """OpenPose (or other pose) JSON dict -> float32 (18, 2) (x, y) pixels; see :func:`parse_pose`."""
    if not isinstance(data, (Mapping, list)):
        raise ValueError(f"{name}: OpenPose JSON must be an object, got {type(data).__name__}")
    return parse_pose(data, min_confidence=min_confidence, name=name, person=person, image_size=image_size)


def parse_people(pose: PoseLike, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 name: str = "pose") -> list[np.ndarray]:
    """Every person of a pose input (see :func:`parse_pose`) -> list of float32 (18, 2) (x, y)
    pixels, COCO-18, missing (-1, -1), in input order; [] for a JSON with no people."""
    threshold = float(min_confidence)
    if not math.isfinite(threshold):
        raise ValueError(f"min_confidence must be finite, got {min_confidence!r}")
    if isinstance(pose, (str, os.PathLike)):
        pose = _read_json(pose, name)
    entries = _json_people(pose, name)
    if entries is not None:
        return [_from_entry(entry, threshold, f"{name} person {i}" if len(entries) > 1 else name)
                for i, entry in enumerate(entries)]
    arr = _numeric(pose, name)
    if arr.ndim == 3:  # [P, K, C]: several people
        return [_from_array(a, threshold, f"{name} person {i}") for i, a in enumerate(arr)]
    return [_from_array(arr, threshold, name)]


def _json_people(data: Any, name: str) -> Optional[list]:
    """The person entries of a pose JSON (dict or list of dicts), or None when ``data`` is not
    JSON-shaped (an array-like of numbers)."""
    if isinstance(data, Mapping):
        for key in ("people", "annotations"):
            if key in data:
                people = data[key]
                if not isinstance(people, list):
                    raise ValueError(f"{name}: '{key}' must be a list, got {type(people).__name__}")
                return people
        return [data]
    if isinstance(data, (list, tuple)) and data and all(isinstance(e, Mapping) for e in data):
        return list(data)
    return None


_KEYPOINT_KEYS = ("pose_keypoints_2d", "keypoints")


def _from_entry(entry: Any, min_confidence: float, name: str) -> np.ndarray:
    """One person of a pose JSON -> (18, 2)."""
    key = next((k for k in _KEYPOINT_KEYS if isinstance(entry, Mapping) and k in entry), None)
    if key is None:
        raise ValueError(f"{name}: expected an OpenPose JSON with 'people': [{{'pose_keypoints_2d': [...]}}] (or a "
                         f"person {{'keypoints': [...]}}), got keys "
                         f"{sorted(map(str, entry)) if isinstance(entry, Mapping) else type(entry).__name__}")
    flat = entry[key]
    if not isinstance(flat, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        raise ValueError(f"{name}: '{key}' must be a flat list of numbers (x, y, confidence, ...)")
    n = len(flat)
    if n == 132:  # MediaPipe (x, y, z, visibility)
        rows = np.asarray(flat, dtype=np.float64).reshape(33, 4)
    elif n % 3 == 0 and n // 3 in _BY_JOINTS:
        rows = np.asarray(flat, dtype=np.float64).reshape(-1, 3)
    else:
        raise ValueError(f"{name}: '{key}' must hold {_JSON_TEXT}, got {n} numbers, which fit none of these formats")
    return _from_array(rows, min_confidence, name)


def _numeric(pose: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(pose, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {_FORMATS_TEXT}, got {type(pose).__name__}") from None


def _read_json(path: Union[str, os.PathLike], name: str) -> Any:
    p = Path(path)
    if p.suffix.lower() != ".json":
        raise ValueError(f"{name}: a pose given as a path must be an OpenPose .json file, got {str(p)!r}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}: {p} is not valid JSON: {exc}") from None


def _from_array(pose: Any, min_confidence: float, name: str) -> np.ndarray:
    """One person's keypoints of any format of the table -> float32 (18, 2) COCO-18. NaN and
    infinite coordinates, and a NaN or low confidence, are missing joints (the convention of
    the module docstring)."""
    kp = _numeric(pose, name)
    fmt = _BY_JOINTS.get(kp.shape[0]) if kp.ndim == 2 else None
    columns = (2, 3, 4) if fmt == "MediaPipe-33" else (2, 3)
    if fmt is None or kp.shape[1] not in columns:
        raise ValueError(f"{name}: expected {_FORMATS_TEXT}; got shape {tuple(kp.shape)}, which is none of these "
                         f"formats")
    if kp.shape[1] == 4:  # MediaPipe (x, y, z, visibility): z is not used
        kp = kp[:, [0, 1, 3]]
    xy = kp[:, :2]
    missing = ~np.isfinite(xy).all(axis=1) | (np.nan_to_num(xy, nan=-1.0) < 0).any(axis=1)
    if kp.shape[1] == 3:
        missing |= ~(kp[:, 2] >= min_confidence)  # NaN confidence: missing too
    if fmt == "MediaPipe-33" and not missing.all() and xy[~missing].max() <= 1.0:
        raise ValueError(f"{name}: these MediaPipe-33 landmarks look normalised (every x, y within 0..1); pyposert "
                         f"takes pixels: convert them with pyposert.estimators.blazepose_to_coco18(landmarks, (h, w))")
    xy = np.where(missing[:, None], MISSING, xy)
    with np.errstate(over="ignore"):
        xy32 = xy.astype(np.float32)
    xy32[~np.isfinite(xy32).all(axis=1)] = MISSING  # beyond the float32 range: as infinite, missing
    mapping = FORMATS[fmt][1]
    if mapping is None:
        out = xy32
    else:
        out = np.full((NUM_JOINTS, 2), MISSING, np.float32)
        for joint, index in enumerate(mapping):
            if index is not None:
                out[joint] = xy32[index]
    return _synthesise_neck(out)


def _synthesise_neck(kp: np.ndarray) -> np.ndarray:
    """A missing neck becomes the mid-point of the shoulders when both are present (in place)."""
    if (kp[_NECK] < 0).any() and (kp[_R_SHOULDER] >= 0).all() and (kp[_L_SHOULDER] >= 0).all():
        kp[_NECK] = (kp[_R_SHOULDER] + kp[_L_SHOULDER]) / 2
    return kp


# ------------------------------------------------------------------ several people
def _box(kp: np.ndarray) -> Optional[tuple[float, float, float, float]]:
    """(x0, y0, x1, y1) of the present joints of (18, 2), or None when fewer than 2."""
    present = (kp >= 0).all(axis=1)
    if present.sum() < 2:
        return None
    pts = kp[present]
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def check_person(person: Any) -> PersonChoice:
    """"largest" | "center" | an integer index >= 0 (also given as a digit string, as on the
    command line); ValueError otherwise."""
    if isinstance(person, str):
        text = person.strip().lower()
        if text in PERSON_CHOICES:
            return text
        if text.isdigit():
            return int(text)
    elif isinstance(person, (int, np.integer)) and not isinstance(person, bool) and person >= 0:
        return int(person)
    raise ValueError(f"person must be 'largest', 'center' or an index >= 0, got {person!r}")


def select_person(people: Sequence[np.ndarray], person: PersonChoice = "largest", *,
                  image_size: Optional[tuple[int, int]] = None, name: str = "pose") -> int:
    """Index of the chosen person among ``people`` (each float32 (18, 2) (x, y) pixels).

    person: "largest": the biggest keypoint box (area, at least 2 joints); "center": the
    person whose box centre is nearest the centre of the image (``image_size`` = (h, w)) or,
    without it, of all people's joints together; an integer: that index (ValueError when
    there are fewer people).
    """
    choice = check_person(person)
    if not people:
        raise ValueError(f"{name}: nobody to choose from (no people)")
    if isinstance(choice, int):
        if choice >= len(people):
            raise ValueError(f"{name}: person {choice} requested, the pose JSON has {len(people)} "
                             f"(indices 0..{len(people) - 1})")
        return choice
    boxes = [_box(p) for p in people]
    if all(b is None for b in boxes):
        return 0
    if choice == "largest":
        areas = [-1.0 if b is None else (b[2] - b[0] + 1) * (b[3] - b[1] + 1) for b in boxes]
        return int(np.argmax(areas))
    if image_size is not None:
        cx, cy = (image_size[1] - 1) / 2.0, (image_size[0] - 1) / 2.0
    else:
        pts = np.concatenate([p[(p >= 0).all(axis=1)] for p in people])
        cx, cy = (pts[:, 0].min() + pts[:, 0].max()) / 2.0, (pts[:, 1].min() + pts[:, 1].max()) / 2.0
    dist = [np.inf if b is None else math.hypot((b[0] + b[2]) / 2 - cx, (b[1] + b[3]) / 2 - cy) for b in boxes]
    return int(np.argmin(dist))


def track_person(people: Sequence[np.ndarray], previous: np.ndarray) -> int:
    """Index of the person nearest to ``previous`` (float32 (18, 2), the last frame's choice):
    the smallest mean distance over the joints both have, in units of ``previous``'s box
    diagonal; people sharing no joint with it compare by box centre. Keeps one person across
    the frames of a video whatever order the estimator lists people in."""
    if not people:
        raise ValueError("nobody to track (no people)")
    prev_box = _box(previous)
    if prev_box is None:
        return select_person(people, "largest")
    scale = max(math.hypot(prev_box[2] - prev_box[0], prev_box[3] - prev_box[1]), 1.0)
    prev_present = (previous >= 0).all(axis=1)
    pcx, pcy = (prev_box[0] + prev_box[2]) / 2, (prev_box[1] + prev_box[3]) / 2
    costs = []
    for p in people:
        both = prev_present & (p >= 0).all(axis=1)
        if both.sum() >= 2:
            costs.append(float(np.linalg.norm(p[both] - previous[both], axis=1).mean()) / scale)
            continue
        b = _box(p)
        # Without shared joints the centre distance is a weaker cue: penalised so that any
        # person matched on joints wins over it.
        costs.append(np.inf if b is None else 10.0 + math.hypot((b[0] + b[2]) / 2 - pcx, (b[1] + b[3]) / 2 - pcy) / scale)
    return int(np.argmin(costs))


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


# ------------------------------------------------------------------ drawing
Colour = tuple[int, int, int]


def draw_skeleton(keypoints: Optional[np.ndarray], canvas: Union[np.ndarray, tuple[int, int]], *,
                  limb_colour: Union[Colour, Sequence[Colour]] = (0, 200, 255),
                  joint_colour: Union[Colour, Sequence[Colour], None] = (255, 255, 255),
                  thickness: Optional[int] = None, joint_radius: Optional[int] = None,
                  limbs: Sequence[tuple[int, int]] = SKELETON_LIMBS) -> np.ndarray:
    """Draw a COCO-18 skeleton (anti-aliased limbs, then filled joint dots) and return the canvas.

    keypoints: float ``(18, 2)`` **(x, y)** pixels of the canvas; a joint is missing when a
        coordinate is negative, NaN or infinite; a limb is drawn when both its ends are present.
        None draws nothing. Points are rounded to the nearest pixel.
    canvas: uint8 ``[h, w, 3]``, drawn on in place; or ``(h, w)`` for a new black one.
    limb_colour / joint_colour: one colour, or one per limb / per joint, in the canvas's channel
        order (the defaults, orange limbs and white joints, are BGR as in the runtime's frames);
        ``joint_colour=None`` draws no joints.
    thickness: of the limbs, default ``max(1, round(min(h, w) / 100))``; joint_radius: default
        ``thickness + 1``.
    limbs: the (joint, joint) pairs to draw, in order (default :data:`SKELETON_LIMBS`).
    """
    import cv2

    if not isinstance(canvas, np.ndarray):
        canvas = np.zeros((*canvas, 3), np.uint8)
    if keypoints is None:
        return canvas
    h, w = canvas.shape[:2]
    thick = max(1, round(min(h, w) / 100)) if thickness is None else thickness
    radius = thick + 1 if joint_radius is None else joint_radius
    kp = np.asarray(keypoints, np.float64)
    present = np.isfinite(kp).all(-1) & (kp >= 0).all(-1)
    points = [(round(x), round(y)) if ok else None for (x, y), ok in zip(kp.tolist(), present)]
    for i, (a, b) in enumerate(limbs):
        if present[a] and present[b]:
            colour = limb_colour if isinstance(limb_colour[0], int) else limb_colour[i]
            cv2.line(canvas, points[a], points[b], colour, thick, cv2.LINE_AA)
    if joint_colour is not None:
        for j in np.flatnonzero(present):
            colour = joint_colour if isinstance(joint_colour[0], int) else joint_colour[j]
            cv2.circle(canvas, points[j], radius, colour, -1, cv2.LINE_AA)
    return canvas


# ------------------------------------------------------------------ annotation CSVs (PATN / PoNA)
ANNOTATION_HEADER = "name:keypoints_y:keypoints_x"


def _parse_int_list(text: str, where: str, what: str) -> list[int]:
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"{where}: expected {what} as '[v0, ..., v17]', got {text[:60]!r}")
    body = text[1:-1].strip()
    items = [t.strip() for t in body.split(",")] if body else []
    if len(items) != NUM_JOINTS:
        raise ValueError(f"{where}: expected {NUM_JOINTS} integers in {what}, got {len(items)}")
    values: list[int] = []
    for k, item in enumerate(items):
        try:
            v = int(item)
        except ValueError:
            raise ValueError(f"{where}: {what}[{k}] is not an integer: {item!r}") from None
        if v < -1:
            raise ValueError(f"{where}: {what}[{k}] = {v}; expected -1 (missing) or >= 0")
        values.append(v)
    return values


def parse_annotation_lines(lines: Iterable[str], source: str = "<string>") -> tuple[list[str], np.ndarray]:
    """Parse the PATN annotation format (see :func:`read_annotation_csv`) from text lines.

    ``source`` names the origin in error messages. Line numbers in errors are 1-based and count
    the header. Returns ``(names, keypoints float32 [N, 18, 2] (x, y))``; N may be 0.
    """
    it = iter(lines)
    try:
        header = next(it)
    except StopIteration:
        raise ValueError(f"{source}: empty file, expected header {ANNOTATION_HEADER!r}") from None
    if header.strip().lstrip("\ufeff") != ANNOTATION_HEADER:
        raise ValueError(f"{source}:1: expected header {ANNOTATION_HEADER!r}, got {header.strip()[:80]!r}")
    names: list[str] = []
    rows: list[np.ndarray] = []
    for lineno, line in enumerate(it, start=2):
        line = line.strip()
        if not line:
            continue  # trailing blank lines are harmless
        where = f"{source}:{lineno}"
        # The image name never contains ':'; split from the right so ' [..]: [..]' stays intact.
        parts = line.rsplit(":", 2)
        if len(parts) != 3:
            raise ValueError(f"{where}: expected 'name: [18 y values]: [18 x values]', got {line[:80]!r}")
        name = parts[0].strip()
        if not name:
            raise ValueError(f"{where}: empty image name")
        ys = _parse_int_list(parts[1], where, "keypoints_y")
        xs = _parse_int_list(parts[2], where, "keypoints_x")
        kp = np.stack([np.asarray(xs, np.float32), np.asarray(ys, np.float32)], axis=-1)  # (x, y)
        # A joint is missing if either coordinate is -1; make both -1 so callers need one test.
        kp[(kp < 0).any(axis=-1)] = MISSING
        names.append(name)
        rows.append(kp)
    keypoints = np.stack(rows) if rows else np.zeros((0, NUM_JOINTS, 2), np.float32)
    return names, keypoints.astype(np.float32, copy=False)


def read_annotation_csv(path: Union[str, os.PathLike]) -> tuple[list[str], np.ndarray]:
    """Read a PATN / PoNA keypoint annotation CSV.

    Format: header ``name:keypoints_y:keypoints_x``, then one row per image
    ``image.jpg: [y0, ..., y17]: [x0, ..., x17]`` (colon-separated, 18 integers each, **row (y)
    first**, -1 = missing, COCO-18 order).

    Returns ``(names, keypoints)``: names ``list[str]`` of length N >= 1 and keypoints float32
    ``[N, 18, 2]`` in **(x, y)** pixel order, missing = -1 (both coordinates).
    Raises ValueError naming the file, the 1-based line number, and what was expected / found,
    and for a file without poses.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        names, keypoints = parse_annotation_lines(f, source=str(path))
    if not names:
        raise ValueError(f"{path}: no poses (only a header)")
    return names, keypoints
