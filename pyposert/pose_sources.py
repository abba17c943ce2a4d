"""Driving pose sources: video files and cameras, OpenPose JSON folders, annotation CSVs, and
synthetic motion between real poses -- one interface, all producing COCO-18.

Every source is iterable and yields :class:`PoseFrame`: ``keypoints`` is float32 ``(18, 2)``
**(x, y)** pixels of the driving frame (x = column first), a missing joint ``(-1, -1)``, or
``None`` when no person was found. ``frame_size`` = (h, w) of the frame the pose lives in
(None: unknown -- the engine then takes the pose to be in the photo's pixel frame).

Two stages, so a live camera can drop stale frames *before* paying for pose estimation:
``frames()`` yields captured frames (cheap; keypoints may still be unset) and
``pose(frame)`` completes one (the estimator for video; identity for the file sources).
``iter(source)`` is both stages in a row.

No torch and no ``training`` imports: this is runtime code.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np

from .poses import (DEFAULT_MIN_CONFIDENCE, REQUIRED_JOINTS, PersonChoice, check_person, parse_people,
                    read_annotation_csv, select_person, track_person)

__all__ = ["PoseFrame", "PoseSource", "VideoPoseSource", "OpenPoseJsonSource", "AnnotationCsvSource",
           "SyntheticMotionSource", "read_annotation_csv", "default_poses_csv", "annotation_frame",
           "open_driving"]

Estimator = Callable[[np.ndarray], Any]
_UNSET: Any = object()  # keypoints not estimated yet (VideoPoseSource.frames)


@dataclass(frozen=True)
class PoseFrame:
    """One driving frame.

    index: 0-based frame number; time_s: its timestamp in seconds (capture clock for cameras,
    index / fps for files); keypoints: float32 (18, 2) (x, y) pixels of the driving frame,
    missing (-1, -1), or None (no person); frame_bgr: uint8 [h, w, 3] BGR or None (pose-only
    sources); frame_size: (h, w) or None (unknown).
    """

    index: int
    time_s: float
    keypoints: Optional[np.ndarray]
    frame_bgr: Optional[np.ndarray] = None
    frame_size: Optional[tuple[int, int]] = None


class PoseSource:
    """Base class. Attributes: ``fps`` (frames per second the source plays at), ``live``
    (True for cameras: frames keep coming whether or not they are consumed), ``frame_count``
    (None if unknown), ``normalize`` (whether :func:`pyposert.retarget.retarget` maps its
    poses onto the photo's person by default: True for videos, cameras and OpenPose folders,
    whose skeletons live in some other camera's pixels; False for the annotation CSVs and
    synthetic motion, which are already framed like the model's photos)."""

    fps: float = 25.0
    live: bool = False
    frame_count: Optional[int] = None
    normalize: bool = False

    def frames(self) -> Iterator[PoseFrame]:
        raise NotImplementedError

    def pose(self, frame: PoseFrame) -> PoseFrame:
        """Complete a captured frame (pose estimation); identity when the pose is known."""
        return frame

    def close(self) -> None:
        """Release devices and files (idempotent)."""

    def __iter__(self) -> Iterator[PoseFrame]:
        try:
            for frame in self.frames():
                yield self.pose(frame)
        finally:
            self.close()


class _PersonTracker:
    """Chooses one person per frame: ``person`` ("largest" | "center" | index) on the first
    frame that has anyone, then the person nearest the previous frame's choice (indices and
    sizes change from frame to frame; the person does not)."""

    def __init__(self, person: PersonChoice, frame_size: Optional[tuple[int, int]]) -> None:
        self.person = check_person(person)
        self.frame_size = frame_size
        self.previous: Optional[np.ndarray] = None

    def __call__(self, people: list[np.ndarray], name: str) -> Optional[np.ndarray]:
        people = [p for p in people if (p >= 0).any()]
        if not people:
            return None
        if self.previous is None:
            chosen = people[select_person(people, self.person, image_size=self.frame_size, name=name)]
        else:
            chosen = people[track_person(people, self.previous)]
        self.previous = chosen
        return chosen


# ------------------------------------------------------------------ video and cameras
class VideoPoseSource(PoseSource):
    """Frames from a video file (path) or a camera (integer index) via cv2.VideoCapture; the pose
    of each frame from ``estimator(image_bgr) -> (18, 3) (x, y, confidence) | (18, 2) | None``.

    estimator None: MediaPipe in tracking mode when the ``pyposert[pose]`` extra is installed
    (see :func:`pyposert.engine.default_estimator`; owned and closed by this source). Without
    one: ValueError saying how to get it. Unopenable camera ("no camera N") / unreadable
    video: OSError naming it (checked before the estimator is looked for).

    person: which person drives when the estimator reports several (an array [P, 18, 2|3] or
    a list of poses): "largest" | "center" | index on the first frame with anyone, then the
    one nearest the previous frame's (tracking). MediaPipe's legacy pose solution reports at
    most one person, its own choice; other estimators may report all.
    """

    normalize = True

    def __init__(self, path_or_camera_index: Union[str, os.PathLike, int], estimator: Optional[Estimator] = None,
                 *, min_confidence: float = DEFAULT_MIN_CONFIDENCE, person: PersonChoice = "largest") -> None:
        import cv2

        self._estimator: Optional[Estimator] = None
        self._owns_estimator = False
        self._min_confidence = min_confidence
        self.live = isinstance(path_or_camera_index, int) and not isinstance(path_or_camera_index, bool)
        self.name = f"camera {path_or_camera_index}" if self.live else str(path_or_camera_index)
        self._cap: Any = None
        if not self.live:
            p = Path(path_or_camera_index)  # type: ignore[arg-type]
            if not p.is_file():
                raise FileNotFoundError(f"driving video not found: {p}")
        self._cap = cv2.VideoCapture(path_or_camera_index if self.live else str(path_or_camera_index))
        if not self._cap.isOpened():
            self.close()
            if self.live:
                raise OSError(f"no camera {path_or_camera_index} (OpenCV could not open it: not connected, busy, or "
                              f"no permission to use it)")
            raise OSError(f"cannot open {self.name} (not a video OpenCV can decode)")
        if estimator is None:
            from .engine import NoPoseEstimator, default_estimator
            from .estimators import MEDIAPIPE_INSTALL_HINT

            estimator = default_estimator(static_image_mode=False)  # one video stream: track between frames
            if estimator is None:
                self.close()
                raise NoPoseEstimator("a video or camera needs a pose estimator, and none is installed ("
                                      f"{MEDIAPIPE_INSTALL_HINT}; or pass estimator=f with f(image_bgr) -> (18, 3) "
                                      "keypoints or None; or drive from pose files instead)")
            self._owns_estimator = True
        self._estimator = estimator
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if math.isfinite(fps) and 0 < fps < 1000 else 30.0
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 and not self.live else None
        size = (int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0), int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0))
        self._tracker = _PersonTracker(person, size if min(size) > 0 else None)

    def frames(self) -> Iterator[PoseFrame]:
        import time

        start = time.perf_counter()
        index = 0
        while self._cap is not None:
            ok, image = self._cap.read()
            if not ok or image is None:
                if index == 0 and not self.live:
                    raise OSError(f"cannot read any frame from {self.name}")
                break
            t = time.perf_counter() - start if self.live else index / self.fps
            yield PoseFrame(index, t, _UNSET, image, (int(image.shape[0]), int(image.shape[1])))
            index += 1

    def pose(self, frame: PoseFrame) -> PoseFrame:
        if frame.keypoints is not _UNSET:
            return frame
        if self._estimator is None:
            raise ValueError(f"{self.name}: this source is closed (its pose estimator was released)")
        raw = self._estimator(frame.frame_bgr)
        name = f"{self.name} frame {frame.index} pose"
        people = [] if raw is None else parse_people(raw, min_confidence=self._min_confidence, name=name)
        return replace(frame, keypoints=self._tracker(people, name))  # None: nobody there

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self._owns_estimator and self._estimator is not None:
            getattr(self._estimator, "close", lambda: None)()
            self._estimator = None


# ------------------------------------------------------------------ OpenPose JSON folders
_FRAME_NUMBER = re.compile(r"(\d+)")


def _natural_key(path: Path) -> tuple:
    """Sort 'x_2_keypoints.json' before 'x_10_keypoints.json' (OpenPose pads, others don't)."""
    return tuple(int(t) if t.isdigit() else t for t in _FRAME_NUMBER.split(path.name))


class OpenPoseJsonSource(PoseSource):
    """One OpenPose ``*_keypoints.json`` per frame in ``folder`` (natural sort order), any
    format :func:`pyposert.poses.parse_people` reads (COCO-18, BODY_25, COCO-17, ...). A file
    with ``people: []`` is a frame without a person. With several people, ``person``
    ("largest" | "center" | index) chooses on the first frame that has anyone; later frames
    take the person nearest the previous frame's (OpenPose's order changes between frames).

    frame_size: (h, w) of the video the keypoints were estimated on (OpenPose does not store
    it); None: unknown. Raises ValueError for a missing/empty folder (at construction) and for
    a malformed file (while iterating, naming the file).
    """

    normalize = True

    def __init__(self, folder: Union[str, os.PathLike], frame_size: Optional[tuple[int, int]] = None,
                 fps: float = 25.0, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 person: PersonChoice = "largest") -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"OpenPose folder not found (or not a folder): {self.folder}")
        self.files = sorted(self.folder.glob("*_keypoints.json"), key=_natural_key)
        if not self.files:
            raise ValueError(f"no OpenPose '*_keypoints.json' files in {self.folder}")
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        self.fps = float(fps)
        self.frame_size = frame_size
        self.frame_count = len(self.files)
        self._min_confidence = min_confidence
        self._person = check_person(person)

    def frames(self) -> Iterator[PoseFrame]:
        tracker = _PersonTracker(self._person, self.frame_size)  # a new pass starts a new track
        for index, path in enumerate(self.files):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"{path}: not valid JSON: {exc}") from None
            people = parse_people(data, min_confidence=self._min_confidence, name=str(path))
            yield PoseFrame(index, index / self.fps, tracker(people, str(path)), None, self.frame_size)


# ------------------------------------------------------------------ annotation CSVs (PATN / PoNA)
# The reader is pyposert.poses.read_annotation_csv (re-exported here).
def annotation_frame(path: Union[str, os.PathLike]) -> tuple[tuple[int, int], float]:
    """The pixel frame of an annotation CSV: ((h, w), x_offset).

    DeepFashion ("fasion") CSVs are in a 256 x 256 frame whose centre crop, 256 x 176, is the
    image: x moves left by 40. Market-1501 CSVs are in the 128 x 64 image itself.
    """
    name = Path(path).name.lower()
    if "market" in name:
        return (128, 64), 0.0
    return (256, 176), 40.0


def _to_frame(poses: np.ndarray, frame_size: tuple[int, int], x_offset: float) -> np.ndarray:
    """Shift x by -x_offset; joints outside the frame (or missing) become (-1, -1)."""
    h, w = frame_size
    out = poses.copy()
    out[..., 0] -= x_offset
    present = (poses >= 0).all(-1) & (out[..., 0] >= 0) & (out[..., 0] < w) & (out[..., 1] >= 0) & (out[..., 1] < h)
    out[~present] = -1.0
    return out


class AnnotationCsvSource(PoseSource):
    """Each row of a PATN/PoNA annotation CSV is one frame (y first in the file, (x, y) out).

    frame_size: (h, w) of the frame the poses are in after ``x_offset`` is subtracted from x
    (see :func:`annotation_frame`; None: inferred from the file name). A row with no joint
    is a frame without a person.
    """

    def __init__(self, path: Union[str, os.PathLike], frame_size: Optional[tuple[int, int]] = None,
                 fps: float = 25.0, *, x_offset: Optional[float] = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"annotation CSV not found: {self.path}")
        default_size, default_offset = annotation_frame(self.path)
        self.frame_size = tuple(frame_size) if frame_size is not None else default_size  # type: ignore[assignment]
        offset = (default_offset if frame_size is None else 0.0) if x_offset is None else float(x_offset)
        self.names, raw = read_annotation_csv(self.path)
        self.poses = _to_frame(raw, self.frame_size, offset)  # type: ignore[arg-type]
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        self.fps = float(fps)
        self.frame_count = len(self.poses)

    def frames(self) -> Iterator[PoseFrame]:
        for index, kp in enumerate(self.poses):
            keypoints = None if (kp < 0).all() else kp.copy()
            yield PoseFrame(index, index / self.fps, keypoints, None, self.frame_size)  # type: ignore[arg-type]


# ------------------------------------------------------------------ synthetic motion
def default_poses_csv() -> Path:
    """Real human poses to move through: ``$POSERT_POSES_DIR/fasion-annotation-test.csv`` when
    that variable is set (the full DeepFashion test annotations), else the compact set that
    ships with pyposert (:func:`pyposert.resources.driving_poses_csv`, 40 poses)."""
    folder = os.environ.get("POSERT_POSES_DIR")
    if folder:
        return Path(folder) / "fasion-annotation-test.csv"
    from .resources import driving_poses_csv

    return driving_poses_csv()


class SyntheticMotionSource(PoseSource):
    """Smooth motion through real poses, for demos and tests (no video needed).

    ``frames`` poses at ``fps``: key poses drawn (seeded) from ``poses_csv`` among those with
    >= ``min_joints`` joints in the frame, the neck and both hips among them, one key pose per ``seconds_per_pose``, eased
    (smoothstep) in between. A joint is interpolated only where both key poses have it; else
    it is missing on that segment.
    """

    def __init__(self, poses_csv: Optional[Union[str, os.PathLike]] = None, frames: int = 100, fps: float = 25.0,
                 seed: int = 0, *, seconds_per_pose: float = 1.0, min_joints: int = 14) -> None:
        path = Path(poses_csv) if poses_csv is not None else default_poses_csv()
        if not path.is_file():
            raise ValueError(f"pose CSV not found: {path} (no such file; set POSERT_POSES_DIR to a folder with "
                             f"fasion-annotation-test.csv, or unset it to use the poses that ship with pyposert)")
        if frames < 1 or not fps > 0 or not seconds_per_pose > 0:
            raise ValueError(f"need frames >= 1, fps > 0, seconds_per_pose > 0; got {frames}, {fps}, "
                             f"{seconds_per_pose}")
        self.frame_size, offset = annotation_frame(path)
        _, raw = read_annotation_csv(path)
        poses = _to_frame(raw, self.frame_size, offset)
        usable = ((poses >= 0).all(-1).sum(-1) >= min_joints) & (poses[:, list(REQUIRED_JOINTS)] >= 0).all((-1, -2))
        good = poses[usable]
        if len(good) < 2:
            raise ValueError(f"{path}: fewer than 2 poses with >= {min_joints} joints in the frame")
        self.fps, self.frame_count = float(fps), int(frames)
        step = max(1, int(round(seconds_per_pose * fps)))
        keys = good[np.random.default_rng(seed).integers(0, len(good), size=frames // step + 2)]
        self.poses = np.stack([self._at(keys, i / step) for i in range(frames)]).astype(np.float32)

    @staticmethod
    def _at(keys: np.ndarray, u: float) -> np.ndarray:
        k = int(u)
        s = u - k
        s = s * s * (3.0 - 2.0 * s)  # smoothstep: zero velocity at key poses, no kinks
        a, b = keys[k], keys[k + 1]
        both = (a >= 0).all(-1) & (b >= 0).all(-1)
        out = np.full_like(a, -1.0)
        out[both] = (1.0 - s) * a[both] + s * b[both]
        return out

    def frames(self) -> Iterator[PoseFrame]:
        for index, kp in enumerate(self.poses):
            yield PoseFrame(index, index / self.fps, kp.copy(), None, self.frame_size)  # type: ignore[arg-type]


# ------------------------------------------------------------------ one front door (CLI)
def open_driving(spec: str, estimator: Optional[Estimator] = None, *, fps: Optional[float] = None,
                 frame_size: Optional[tuple[int, int]] = None, person: PersonChoice = "largest") -> PoseSource:
    """``--driving`` value -> a source: an integer (camera index), a folder (OpenPose JSON),
    a ``.csv`` (annotation CSV), ``synthetic[:N]`` (N frames of motion through real poses), else a
    video file. ``person`` chooses among several people (videos, cameras, OpenPose folders)."""
    if spec.isdigit():
        return VideoPoseSource(int(spec), estimator, person=person)
    if spec == "synthetic" or spec.startswith("synthetic:"):
        count = spec.split(":", 1)[1] if ":" in spec else "100"
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"synthetic:N needs a whole number of frames N >= 1, got {spec!r}")
        return SyntheticMotionSource(frames=int(count), fps=fps or 25.0)
    p = Path(spec)
    if not p.exists():  # before any estimator question: a typo should say what it is
        raise FileNotFoundError(f"driving input not found: {spec} (no such file or folder; expected a video, a camera "
                                f"index, a folder of OpenPose JSON, a pose .csv, or synthetic:N)")
    if p.is_dir():
        return OpenPoseJsonSource(p, frame_size, fps or 25.0, person=person)
    if p.suffix.lower() == ".csv":
        return AnnotationCsvSource(p, frame_size, fps or 25.0)
    return VideoPoseSource(p, estimator, person=person)
