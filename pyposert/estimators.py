"""Pose estimators: an image -> COCO-18 keypoints, for photos without a pose file and for
driving videos / cameras.

    est = MediaPipePoseEstimator()          # needs the optional extra: pip install "pyposert[pose]"
    keypoints = est(frame_bgr)              # float32 (18, 3) (x, y, confidence) pixels, or None

The MediaPipe extra is optional and isolated: mediapipe 0.10.21 is the last release whose
wheel ships the BlazePose model (``pose_landmark_full.tflite``, so it runs offline), and it
needs numpy < 2, which the rest of pyposert's environment (torch, onnxruntime) does not use.
Install it in a separate virtual environment.

The landmark conversion (:func:`blazepose_to_coco18`) is pure numpy and always available.

Contract of every estimator: ``estimator(image_bgr)`` with image_bgr numpy uint8 [h, w, 3]
BGR returns float32 (18, 3) (x, y, confidence) in pixels of that image, x first, COCO-18
order (see :data:`pyposert.poses.JOINT_NAMES`), a missing joint (-1, -1, 0); or None when no
person is found. Pixel centres are at integer coordinates (pyposert's convention).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Callable, Iterator, Optional

import numpy as np

from .poses import BLAZEPOSE_TO_COCO18, NUM_JOINTS

__all__ = ["BLAZEPOSE_TO_COCO18", "BLAZEPOSE_NUM_LANDMARKS", "MEDIAPIPE_INSTALL_HINT", "MediaPipePoseEstimator",
           "NoPoseEstimator", "PoseEstimator", "blazepose_to_coco18", "default_estimator", "mediapipe_available"]

PoseEstimator = Callable[[np.ndarray], Any]  # image_bgr -> (18, 3) (x, y, confidence) pixels, or None

BLAZEPOSE_NUM_LANDMARKS = 33
NECK = 1
MISSING = -1.0

# COCO-18 joint j is BlazePose landmark BLAZEPOSE_TO_COCO18[j] (pyposert.poses, which maps
# every keypoint format); the neck (j = 1) has no BlazePose landmark and is the mid-point of the
# shoulders (None there). "Left"/"right" are the person's own in both formats.
_R_SHOULDER, _L_SHOULDER = 2, 5  # COCO-18 indices the neck is built from

MEDIAPIPE_INSTALL_HINT = ('pip install "pyposert[runtime,pose]" in its own virtual environment (MediaPipe 0.10.21 '
                          'needs numpy<2)')


def blazepose_to_coco18(landmarks: Any, image_size: tuple[int, int], min_visibility: float = 0.5) -> np.ndarray:
    """BlazePose's 33 normalised landmarks -> COCO-18 pixels.

    Args:
        landmarks: array-like (33, 2|3|4): normalised (x, y[, z][, visibility]) -- x = column /
            width, y = row / height, 0 and 1 at the image's outer edges (MediaPipe's frame).
            z is ignored; without a visibility column every landmark counts as visible (1.0).
        image_size: (h, w) of the image the landmarks were estimated on, pixels.
        min_visibility: landmarks with a lower visibility are missing.

    Returns:
        float32 (18, 3) (x, y, confidence) pixels of that image, COCO-18 order, confidence =
        visibility; missing (-1, -1, 0) for a low visibility or a landmark outside the image.
        The neck is the mid-point of the two shoulders, present only when both are, with the
        lower of their confidences.

    Raises:
        ValueError: wrong shape, non-finite x / y, bad image_size (naming what was expected and
            what was given).
    """
    try:
        lm = np.asarray(landmarks, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"landmarks: expected ({BLAZEPOSE_NUM_LANDMARKS}, 2|3|4) numbers, got "
                         f"{type(landmarks).__name__}") from None
    if lm.ndim != 2 or lm.shape[0] != BLAZEPOSE_NUM_LANDMARKS or lm.shape[1] not in (2, 3, 4):
        raise ValueError(f"landmarks: expected ({BLAZEPOSE_NUM_LANDMARKS}, 2|3|4) normalised (x, y[, z][, visibility]) "
                         f"BlazePose landmarks, got shape {tuple(lm.shape)}")
    size = tuple(image_size) if isinstance(image_size, (tuple, list)) else ()
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                                 for v in size):
        raise ValueError(f"image_size must be (h, w) positive integers, got {image_size!r}")
    h, w = int(size[0]), int(size[1])
    if not np.isfinite(lm[:, :2]).all():
        bad = sorted({int(i) for i in np.argwhere(~np.isfinite(lm[:, :2]))[:, 0]})
        raise ValueError(f"landmarks: NaN or infinite x / y at BlazePose landmarks {bad}")

    visibility = lm[:, 3] if lm.shape[1] == 4 else np.ones(BLAZEPOSE_NUM_LANDMARKS)
    visibility = np.nan_to_num(visibility, nan=0.0)  # an unknown visibility is not a visible joint
    nx, ny = lm[:, 0], lm[:, 1]
    # MediaPipe normalises by the outer edges (0 = left edge of pixel 0); pyposert puts pixel
    # centres at integers, so the edge is at -0.5. Landmarks beyond the edges are guesses
    # about an unseen body part: missing. Within the outer half pixel, clamp to the edge centre
    # (a negative coordinate would read as "missing" downstream).
    inside = (nx >= 0.0) & (nx <= 1.0) & (ny >= 0.0) & (ny <= 1.0)
    px = np.clip(nx * w - 0.5, 0.0, w - 1.0)
    py = np.clip(ny * h - 0.5, 0.0, h - 1.0)
    present = inside & (visibility >= min_visibility)

    out = np.full((NUM_JOINTS, 3), (MISSING, MISSING, 0.0), dtype=np.float32)
    for joint, index in enumerate(BLAZEPOSE_TO_COCO18):
        if index is not None and present[index]:
            out[joint] = (px[index], py[index], visibility[index])
    right, left = BLAZEPOSE_TO_COCO18[_R_SHOULDER], BLAZEPOSE_TO_COCO18[_L_SHOULDER]
    if present[right] and present[left]:
        out[NECK] = ((px[right] + px[left]) / 2, (py[right] + py[left]) / 2, min(visibility[right], visibility[left]))
    return out


def mediapipe_available() -> bool:
    """True when ``import mediapipe`` works here (the ``pyposert[pose]`` extra is installed)."""
    try:
        _import_mediapipe()
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what MediaPipe's C++ side (glog, TensorFlow Lite: "Created TensorFlow Lite
    XNNPACK delegate", "All log messages before absl::InitializeLog()...") writes straight to
    file descriptor 2 while it loads and builds its graph; none of it is meant for users.
    Python exceptions are unaffected (they are raised, not printed, inside)."""
    # Environment switches first: they cover what the C++ loggers honour.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded, captured): nothing to redirect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import_mediapipe() -> Any:
    try:
        with _quiet_native_stderr():
            import mediapipe as mp

            return mp.solutions.pose  # the legacy solutions API (removed from later releases)
    except Exception as exc:  # noqa: BLE001 - a mediapipe built for numpy 1 fails in odd ways under numpy 2
        raise ImportError(f"the MediaPipe pose estimator needs mediapipe: {MEDIAPIPE_INSTALL_HINT} "
                          f"({type(exc).__name__}: {exc})") from exc


class MediaPipePoseEstimator:
    """BlazePose (MediaPipe's legacy ``solutions.pose`` API, ``model_complexity=1``: the
    ``pose_landmark_full`` model) as a pyposert pose estimator.

    Args:
        static_image_mode: True for unrelated photos (detect the person in every image);
            False for video frames (track between frames: faster and steadier). Use one
            estimator per video stream in tracking mode.
        min_visibility: landmarks with a lower visibility are missing joints.
        min_detection_confidence, min_tracking_confidence: MediaPipe's thresholds.

    ``estimator(image_bgr)``: image_bgr numpy uint8 [h, w, 3] BGR -> float32 (18, 3)
    (x, y, confidence) pixels of that image (COCO-18, missing (-1, -1, 0)), or None when no
    person is found. Not thread-safe (one MediaPipe graph); ``close()`` releases it.

    Raises:
        ImportError (at construction) when mediapipe is not installed, saying how to get it.
    """

    def __init__(self, static_image_mode: bool = False, *, min_visibility: float = 0.5,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5) -> None:
        mp_pose = _import_mediapipe()
        self.static_image_mode = bool(static_image_mode)
        self.min_visibility = float(min_visibility)
        with _quiet_native_stderr():
            self._pose: Any = mp_pose.Pose(static_image_mode=self.static_image_mode, model_complexity=1,
                                           smooth_landmarks=not self.static_image_mode, enable_segmentation=False,
                                           min_detection_confidence=min_detection_confidence,
                                           min_tracking_confidence=min_tracking_confidence)
        self._first_call = True  # TFLite announces its delegate on the first inference

    def __call__(self, image_bgr: np.ndarray) -> Optional[np.ndarray]:
        if self._pose is None:
            raise ValueError("this MediaPipePoseEstimator is closed")
        if not (isinstance(image_bgr, np.ndarray) and image_bgr.dtype == np.uint8 and image_bgr.ndim == 3
                and image_bgr.shape[2] == 3 and image_bgr.shape[0] > 0 and image_bgr.shape[1] > 0):
            got = (f"{image_bgr.dtype} {image_bgr.shape}" if isinstance(image_bgr, np.ndarray)
                   else type(image_bgr).__name__)
            raise ValueError(f"image must be a numpy uint8 [h, w, 3] BGR array, got {got}")
        h, w = int(image_bgr.shape[0]), int(image_bgr.shape[1])
        rgb = np.ascontiguousarray(image_bgr[..., ::-1])  # MediaPipe wants packed RGB
        if self._first_call:
            with _quiet_native_stderr():
                result = self._pose.process(rgb)
            self._first_call = False
        else:
            result = self._pose.process(rgb)
        if result.pose_landmarks is None:
            return None
        landmarks = np.array([(p.x, p.y, p.z, p.visibility) for p in result.pose_landmarks.landmark], np.float64)
        keypoints = blazepose_to_coco18(landmarks, (h, w), self.min_visibility)
        if (keypoints[:, 2] <= 0).all():
            return None  # detected, but nothing visible inside the image: nobody to use
        return keypoints

    def close(self) -> None:
        """Release the MediaPipe graph (idempotent)."""
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def __enter__(self) -> "MediaPipePoseEstimator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"MediaPipePoseEstimator(static_image_mode={self.static_image_mode}, "
                f"min_visibility={self.min_visibility})")


def default_estimator(static_image_mode: bool = False) -> Optional[PoseEstimator]:
    """The MediaPipe pose estimator of the ``pyposert[pose]`` extra, or None when mediapipe
    cannot be imported here.

    Returns a new :class:`MediaPipePoseEstimator` -- ``f(image_bgr) -> (18, 3) (x, y,
    confidence) pixels | None`` -- in ``static_image_mode`` (True: unrelated photos; False:
    the frames of one video, tracked). The caller owns it (``close()``).
    """
    try:
        return MediaPipePoseEstimator(static_image_mode=static_image_mode)
    except ImportError:
        return None


class NoPoseEstimator(ValueError):
    """A pose had to be estimated from an image, and no pose estimator is installed or given.
    The command line turns it into its own advice (``--source-pose FILE``)."""
