"""``pyposert.Engine``: one photo + a driving pose -> the photographed person in that pose.

    engine = pyposert.Engine("models/nram.plan")              # or a bare .onnx, or a TensorRT engine
    frame = engine.run(photo_bgr, driver_pose, source_pose=photo_pose)   # uint8 HWC BGR

    src = engine.source(photo_bgr, photo_pose)                # once per photo (cached work)
    for pose in driver_poses:                                 # per frame: only the target half
        frame = src.run(pose, pose_size=(frame_h, frame_w))

Contracts (every public method):
- images: numpy uint8 [h, w, 3] BGR (OpenCV order), any size >= 8 x 8; output uint8 [h, w, 3]
  BGR at the photo's size (``output_size="source"``) or the model's (``"model"``, letterbox
  bars included).
- poses: COCO-18, (18, 2) (x, y) or (18, 3) (x, y, confidence) pixels of the image they
  belong to -- x first --, or OpenPose JSON (COCO-18 or BODY_25); see :mod:`pyposert.poses`.
  Missing joint: negative coordinates or confidence below ``min_confidence`` (0.05). NaN or
  infinite coordinates are an error.
- the driving pose lives in the driving frame's pixels: give that frame's size as
  ``target_size`` / ``pose_size`` = (h, w); without it the pose is taken to be in the photo's
  pixel frame.

Inside: the photo is letterboxed (aspect kept) into the model frame H x W; keypoints follow
the same map (``ops.Letterbox``); heatmaps are rasterised by pyposert's kernel with the
model's convention (from the bundle manifest; for a bare ONNX file DESIGN.md's default:
Gaussian, sigma = 6 * H / 256); the network runs on the chosen backend; the output is mapped
back. Everything that depends only on the photo is computed once in :class:`Source`.

Errors are typed and leave the engine usable: ValueError for bad images and poses,
:class:`~pyposert.errors.PlanError` for unusable model files,
:class:`~pyposert.errors.BackendUnavailable` when the requested backend cannot run here.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from . import ops
from .backends import (HEATMAP_INPUTS, OUTPUT_NAME, Backend, DeviceFrames, HeatmapSpec, ModelFile, TensorSpec,
                       open_backend)
from .errors import PlanError
from .estimators import MEDIAPIPE_INSTALL_HINT
from .poses import DEFAULT_MIN_CONFIDENCE, NUM_JOINTS, PoseLike, parse_pose

__all__ = ["Engine", "ModelSpec", "Source", "MIN_IMAGE_SIDE"]

MIN_IMAGE_SIDE = 8
OUTPUT_SIZES = ("source", "model")

PoseEstimator = Callable[[np.ndarray], Any]


@dataclass(frozen=True)
class ModelSpec:
    """What the network expects: model frame ``height`` x ``width`` (pixels), the heatmap
    convention, and the I/O contract ("heatmaps": 36 heatmap channels are computed here;
    "keypoints": (x, y) model-pixel keypoints go in, the engine rasterises)."""

    height: int
    width: int
    heatmap: HeatmapSpec
    contract: str
    joints: int = NUM_JOINTS


# ------------------------------------------------------------------ input checks
def check_image(image: Any, name: str = "image") -> np.ndarray:
    """Validate a photo/frame: numpy uint8 [h, w, 3] BGR, h and w >= 8. Returns it with
    packed pixels (a copy only when the pixels were strided)."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy uint8 [h, w, 3] BGR array, got {type(image).__name__}")
    if image.size == 0:
        raise ValueError(f"{name} is empty (shape {image.shape}): was the file or frame read correctly?")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ValueError(f"{name} is grey (shape {image.shape}); expected [h, w, 3] BGR: convert with "
                         f"cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)")
    if image.ndim == 3 and image.shape[2] == 4:
        raise ValueError(f"{name} has 4 channels (RGBA/BGRA, shape {image.shape}); expected [h, w, 3] BGR: "
                         f"convert with cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be [h, w, 3] BGR, got shape {image.shape}")
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            hint = "16-bit: scale with (image >> 8).astype(np.uint8)"
        elif np.issubdtype(image.dtype, np.floating):
            hint = "floating point: scale to 0..255, then .astype(np.uint8)"
        else:
            hint = "cast it with .astype(np.uint8)"
        raise ValueError(f"{name} must be uint8, got {image.dtype} ({hint})")
    h, w = image.shape[:2]
    if h < MIN_IMAGE_SIDE or w < MIN_IMAGE_SIDE:
        raise ValueError(f"{name} is {h} x {w} pixels; at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} is needed")
    if image.strides[1:] != (3, 1) or image.strides[0] < 3 * w:
        # The kernels read packed pixels with forward rows (padded rows, i.e. crops, are
        # fine); flipped or channel-strided views are copied once.
        image = np.ascontiguousarray(image)
    return image


def _check_size(size: Any, name: str) -> tuple[int, int]:
    """(height, width) of positive integers, or ValueError."""
    values = tuple(size) if isinstance(size, (tuple, list, np.ndarray)) else ()
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be (height, width) integers, got {size!r}")
    h, w = int(values[0]), int(values[1])
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive (height, width), got {size!r}")
    return h, w


def _check_output_size(output_size: str) -> bool:
    """True when the result goes back to the photo's size (un-letterboxed)."""
    if output_size not in OUTPUT_SIZES:
        raise ValueError(f"output_size must be one of {OUTPUT_SIZES}, got {output_size!r}")
    return output_size == "source"


def _to_model(box: ops.Letterbox, keypoints: np.ndarray) -> np.ndarray:
    """(18, 2) (x, y) image pixels, missing -1 -> (18, 2) float32 model pixels, missing -1
    (present joints at the edge are clamped to 0 by Letterbox.to_model)."""
    return box.to_model(keypoints).astype(np.float32, copy=False)


# ------------------------------------------------------------------ model files
def _load_model(path: Union[str, os.PathLike]) -> ModelFile:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"model file not found: {p}")
    if p.is_dir():
        raise PlanError(f"{p} is a directory; expected a .plan bundle, an .onnx file or a TensorRT engine")
    if p.suffix.lower() == ".onnx":
        return ModelFile(p, "onnx")
    from . import bundle  # the bundle reader: never executes code from the file

    with open(p, "rb") as f:
        head = f.read(4)
    # Bundles are zip archives. Anything zip-like is read as one, so a truncated or damaged
    # bundle reports what is wrong with it (PlanError) instead of being mistaken for a raw
    # TensorRT engine (which trtexec also likes to name *.plan).
    if head in (b"PK\x03\x04", b"PK\x05\x06") or (p.suffix.lower() == ".plan" and not head):
        return ModelFile(p, "bundle", bundle.read_bundle(p))
    return ModelFile(p, "raw")


def _bundle_spec(model: ModelFile) -> tuple[int, int, HeatmapSpec]:
    """(H, W, heatmap convention) from the bundle's manifest: nothing is guessed. The reader
    has validated the conventions (coco18, x before y, RGB, [-1, 1]); a Gaussian must also
    have a positive sigma for the kernel to draw it."""
    spec = model.bundle.input_spec
    hm = spec.heatmap
    if hm.mode == "gaussian" and not hm.sigma > 0:
        raise PlanError(f"{model.path.name}: the manifest's Gaussian heatmaps need sigma > 0, got {hm.sigma}")
    return int(spec.height), int(spec.width), HeatmapSpec(hm.mode, float(hm.sigma), float(hm.radius))


def _graph_size(backend: Backend, path: Path) -> tuple[int, int]:
    shape = backend.input_spec["source_image"].shape
    if len(shape) != 4 or shape[2] is None or shape[3] is None:
        raise PlanError(f"{path.name}: source_image must be [B, 3, H, W] with a fixed H and W to run without a "
                        f"bundle manifest, got {backend.input_spec['source_image'].describe()}")
    return int(shape[2]), int(shape[3])


def _check_shapes(backend: Backend, spec: ModelSpec, where: str) -> None:
    """The network's tensors must agree with the manifest (PlanError naming both)."""
    h, w, k = spec.height, spec.width, spec.joints
    expected = {"source_image": (3, h, w), "pose_heatmaps": (2 * k, h, w), "source_keypoints": (k, 2),
                "target_keypoints": (k, 2)}
    tensors: list[TensorSpec] = list(backend.input_spec.values()) + [backend.output_spec[OUTPUT_NAME]]
    for tensor in tensors:
        want = expected.get(tensor.name, (3, h, w))
        got = tensor.shape[1:]
        if len(got) != len(want) or any(g is not None and g != e for g, e in zip(got, want)):
            raise PlanError(f"{where}: {tensor.describe()} does not match the model spec "
                            f"[B, {', '.join(map(str, want))}] (H x W = {h} x {w})")


def default_estimator(static_image_mode: bool = False) -> Optional[PoseEstimator]:
    """The MediaPipe pose estimator of the ``pyposert[pose]`` extra, or None when mediapipe
    cannot be imported here (see :mod:`pyposert.estimators`).

    Returns a new :class:`~pyposert.estimators.MediaPipePoseEstimator` -- ``f(image_bgr) ->
    (18, 3) (x, y, confidence) pixels | None`` -- in ``static_image_mode`` (True: unrelated
    photos; False: the frames of one video, tracked). The caller owns it (``close()``).
    """
    from .estimators import MediaPipePoseEstimator  # numpy only until mediapipe is imported

    try:
        return MediaPipePoseEstimator(static_image_mode=static_image_mode)
    except ImportError:
        return None


NO_POSE_ESTIMATOR = ("no pose estimator is installed: install the MediaPipe extra -- " + MEDIAPIPE_INSTALL_HINT)


# ------------------------------------------------------------------ Engine
class Engine:
    """Pose transfer on one model, with the best backend this machine has.

    Args:
        path: a ``.plan`` bundle, a bare ``.onnx`` (heatmap contract; size from the graph,
            heatmaps Gaussian with sigma = 6 * H / 256), or a raw TensorRT engine file
            (TensorRT backend only).
        backend: "auto" (TensorRT -> torch on CUDA -> ONNX Runtime) | "tensorrt" | "torch" |
            "onnxruntime".
        device: None (backend's choice) | "cpu" | "cuda" | "cuda:N".
        threads: CPU intra-op threads (None: the physical cores).
        min_confidence: joints with a lower confidence are missing (default 0.05).
        pose_estimator: callable image_bgr -> pose ((18, 3) (x, y, confidence) pixels) or
            None (nobody found), used when ``source_pose`` is not given (default: MediaPipe,
            when the ``pyposert[pose]`` extra is installed; made on first use).

    Safe to use from several threads at once: each thread gets its own input buffers, the
    backends release the GIL (or serialise on their one GPU context), results are identical.

    Raises:
        FileNotFoundError, PlanError (unusable file), BackendUnavailable (backend missing).
    """

    def __init__(self, path: Union[str, os.PathLike], backend: str = "auto", device: Optional[str] = None,
                 threads: Optional[int] = None, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 pose_estimator: Optional[PoseEstimator] = None) -> None:
        self.min_confidence = float(min_confidence)
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence!r}")
        self._model = _load_model(path)
        self._backend = open_backend(self._model, backend, device, threads)
        where = self._model.path.name
        if self._model.kind == "bundle":
            height, width, heatmap = _bundle_spec(self._model)
        else:
            height, width = _graph_size(self._backend, self._model.path)
            heatmap = HeatmapSpec("gaussian", 6.0 * height / 256.0, 4.0)  # DESIGN.md's convention
        contract = "heatmaps" if set(self._backend.input_spec) == set(HEATMAP_INPUTS) else "keypoints"
        self.spec = ModelSpec(height, width, heatmap, contract)
        _check_shapes(self._backend, self.spec, where)
        batch = self._backend.input_spec["source_image"].shape[0]
        self.max_batch: int = batch or int(getattr(self._backend, "max_batch", 0) or 1 << 16)
        self._on_device = self._backend.device != "cpu" and isinstance(self._backend, DeviceFrames)
        # The default estimator is made on first need (a MediaPipe graph costs time and memory
        # that callers passing source poses never use), owned and closed by the Engine, and
        # called under a lock: MediaPipe graphs are not thread-safe.
        self._estimator: Optional[PoseEstimator] = pose_estimator
        self._estimator_tried = pose_estimator is not None
        self._owns_estimator = False
        self._estimator_lock = threading.Lock()

    # ---------------------------------------------------------------- properties
    @property
    def backend(self) -> str:
        """Name of the backend in use: "tensorrt" | "torch" | "onnxruntime"."""
        return self._backend.name

    @property
    def device(self) -> str:
        """Where the network runs: "cpu" or "cuda:N"."""
        return self._backend.device

    @property
    def size(self) -> tuple[int, int]:
        """Model frame (height, width) in pixels."""
        return self.spec.height, self.spec.width

    @property
    def manifest(self) -> Optional[dict]:
        """The bundle's manifest (None for bare files)."""
        return None if self._model.bundle is None else self._model.bundle.manifest

    def __repr__(self) -> str:
        return (f"Engine({str(self._model.path)!r}, backend={self.backend!r}, device={self.device!r}, "
                f"size={self.spec.height}x{self.spec.width})")

    def close(self) -> None:
        """Release the backend (sessions, GPU memory) and the default pose estimator."""
        self._backend.close()
        with self._estimator_lock:
            if self._owns_estimator and self._estimator is not None:
                getattr(self._estimator, "close", lambda: None)()
                self._estimator, self._estimator_tried, self._owns_estimator = None, False, False

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------------- front door
    def run(self, image: np.ndarray, pose: PoseLike, source_pose: Optional[PoseLike] = None, *,
            target_size: Optional[tuple[int, int]] = None, output_size: str = "source") -> np.ndarray:
        """Render the person of ``image`` in ``pose``.

        Args:
            image: uint8 [h, w, 3] BGR photo of the person (h, w >= 8).
            pose: target pose, (18, 2|3) (x, y[, confidence]) pixels of the driving frame, or
                OpenPose JSON.
            source_pose: the photo's pose, (x, y) pixels of ``image`` (or OpenPose JSON);
                None: estimated with the pose estimator (ValueError when it finds nobody).
            target_size: (h, w) of the driving frame ``pose`` belongs to; None: ``image``'s.
            output_size: "source" (uint8 [h, w, 3]) or "model" (uint8 [H, W, 3]).

        Returns:
            uint8 [h, w, 3] BGR (or [H, W, 3]).

        For a video, use :meth:`source` once and :meth:`Source.run` per frame.
        """
        return self.source(image, source_pose).run(pose, pose_size=target_size, output_size=output_size)

    def source(self, image: np.ndarray, source_pose: Optional[PoseLike] = None) -> "Source":
        """Prepare a photo once: letterboxed model input, source keypoints in model pixels,
        and the source half of the heatmaps. Returns a :class:`Source` to run poses on.

        image: uint8 [h, w, 3] BGR; source_pose: its pose in its pixels, (x, y) first; None:
        the pose estimator's (ValueError "no person found in the source photo" when it finds
        nobody or every joint is missing; ValueError when there is no estimator).
        """
        image = check_image(image)
        if source_pose is None:
            keypoints = self._estimate_source_pose(image)
        else:
            keypoints = parse_pose(source_pose, min_confidence=self.min_confidence, name="source_pose")
        return Source(self, image, keypoints)

    def _estimate_source_pose(self, image: np.ndarray) -> np.ndarray:
        """The photo's pose from the pose estimator: float32 (18, 2) (x, y) pixels, missing -1.
        ValueError when there is no estimator or it finds nobody."""
        with self._estimator_lock:
            if not self._estimator_tried:
                self._estimator = default_estimator(static_image_mode=True)
                self._estimator_tried, self._owns_estimator = True, self._estimator is not None
            if self._estimator is None:
                raise ValueError(
                    "source_pose is required: pass the photo's keypoints as source_pose= ((18, 2) (x, y) or "
                    "(18, 3) (x, y, confidence) pixels, or an OpenPose JSON dict; --source-pose on the command "
                    "line), or give Engine(..., pose_estimator=f) with f(image_bgr) -> (18, 3) keypoints | None; "
                    "or " + NO_POSE_ESTIMATOR)
            raw = self._estimator(image)
        keypoints = None if raw is None else parse_pose(raw, min_confidence=self.min_confidence,
                                                        name="estimated source_pose")
        if keypoints is None or (keypoints < 0).all():
            h, w = image.shape[:2]
            raise ValueError(f"no person found in the source photo ({h} x {w}; the pose estimator detected nobody); "
                             f"pass its keypoints yourself: --source-pose FILE on the command line, source_pose= "
                             f"in Python")
        return keypoints

    # ---------------------------------------------------------------- internals for Source
    def _target(self, pose: PoseLike, box: ops.Letterbox, pose_size: Optional[tuple[int, int]]) -> np.ndarray:
        keypoints = parse_pose(pose, min_confidence=self.min_confidence, name="pose")
        if pose_size is not None:
            h, w = _check_size(pose_size, "pose_size")
            box = ops.letterbox(h, w, self.spec.height, self.spec.width)
        return _to_model(box, keypoints)


class Source:
    """A prepared photo: everything that depends only on it, cached; poses run per frame.

    Attributes:
        box: the photo's Letterbox into the model frame.
        keypoints: float32 (18, 2) source keypoints (x, y) in model pixels, missing -1.
        image_size: the photo's (h, w).

    Per frame only the target heatmaps are rasterised, into a preallocated [B, 36, H, W]
    buffer whose source half was filled once (one buffer per thread and batch size, so
    several threads may run the same Source at once).
    """

    def __init__(self, engine: Engine, image: np.ndarray, keypoints: np.ndarray) -> None:
        spec = engine.spec
        self._engine = engine
        self._spec = spec
        self.image_size = (int(image.shape[0]), int(image.shape[1]))
        self.box = ops.letterbox(image.shape[0], image.shape[1], spec.height, spec.width)
        self.keypoints = _to_model(self.box, keypoints)
        self._local = threading.local()
        self._device_source: Any = None
        if engine._on_device:
            self._device_source = engine._backend.load_source(image, self.box, self.keypoints, spec.heatmap)
            return
        inputs = engine._backend.input_spec
        # Buffers take the network's input dtype (float32, or float16 for a half-precision
        # graph): the kernels write either, so no conversion pass is needed.
        model_input, _ = ops.to_model_input(image, spec.height, spec.width, dtype=inputs["source_image"].dtype)
        self._model_input = model_input[None]  # [1, 3, H, W] RGB in [-1, 1]
        self._source_maps = None
        if spec.contract == "heatmaps":
            self._pose_dtype = inputs["pose_heatmaps"].dtype
            self._source_maps = ops.heatmaps(self.keypoints[None], spec.height, spec.width, mode=spec.heatmap.mode,
                                             sigma=spec.heatmap.sigma, radius=spec.heatmap.radius,
                                             dtype=self._pose_dtype)

    def run(self, pose: PoseLike, *, pose_size: Optional[tuple[int, int]] = None,
            output_size: str = "source") -> np.ndarray:
        """One target pose -> uint8 [h, w, 3] BGR (photo size) or [H, W, 3] (model size).

        pose: (18, 2|3) (x, y[, confidence]) pixels of the driving frame (size ``pose_size``
        = (h, w); None: the photo's pixel frame), or OpenPose JSON.
        """
        unletterbox = _check_output_size(output_size)
        target = self._engine._target(pose, self.box, pose_size)
        return self._render(target[None], unletterbox)[0]

    def run_batch(self, poses: Sequence[PoseLike], *, pose_size: Optional[tuple[int, int]] = None,
                  output_size: str = "source") -> list[np.ndarray]:
        """Several target poses in batched network calls; same results as separate :meth:`run`
        calls, in order. poses: a sequence of poses (or an array [B, 18, 2|3])."""
        unletterbox = _check_output_size(output_size)
        if isinstance(poses, (dict, str, os.PathLike)):
            raise ValueError("run_batch takes a sequence of poses (a list, or an array [B, 18, 2|3]); "
                             "for one pose use run()")
        items = list(poses)
        if not items:
            raise ValueError("poses must hold at least one pose")
        targets = np.stack([self._engine._target(p, self.box, pose_size) for p in items])
        results: list[np.ndarray] = []
        step = self._engine.max_batch
        for start in range(0, len(targets), step):
            results.extend(self._render(targets[start:start + step], unletterbox))
        return results

    # ---------------------------------------------------------------- rendering
    def _render(self, targets: np.ndarray, unletterbox: bool) -> list[np.ndarray]:
        """targets: float32 [B, 18, 2] (x, y) model pixels -> B uint8 HWC BGR images."""
        backend = self._engine._backend
        if self._device_source is not None:
            return backend.render(self._device_source, targets, unletterbox=unletterbox)
        feeds = self._feeds(targets)
        images = backend.run(feeds)[OUTPUT_NAME]
        return [ops.from_model_output(images[b], self.box, unletterbox=unletterbox) for b in range(len(targets))]

    def _feeds(self, targets: np.ndarray) -> dict[str, np.ndarray]:
        spec = self._spec
        batch = len(targets)
        buffers = self._buffers(batch)
        if spec.contract == "keypoints":
            return {"source_image": buffers["source_image"], "source_keypoints": buffers["source_keypoints"],
                    "target_keypoints": np.ascontiguousarray(targets, dtype=np.float32)}
        pose = buffers["pose_heatmaps"]
        k = spec.joints
        for b in range(batch):  # [1, 18, H, W] target half of sample b: contiguous, written in place
            ops.heatmaps(targets[b:b + 1], spec.height, spec.width, mode=spec.heatmap.mode, sigma=spec.heatmap.sigma,
                         radius=spec.heatmap.radius, dtype=pose.dtype, out=pose[b:b + 1, k:])
        return {"source_image": buffers["source_image"], "pose_heatmaps": pose}

    def _buffers(self, batch: int) -> dict[str, np.ndarray]:
        """This thread's input buffers for ``batch``; source parts filled once."""
        cache = getattr(self._local, "buffers", None)
        if cache is None:
            cache = self._local.buffers = {}
        buffers = cache.get(batch)
        if buffers is not None:
            return buffers
        spec = self._spec
        k = spec.joints
        # The model input is only read: batch 1 shares the cached one across threads.
        image = self._model_input if batch == 1 else np.repeat(self._model_input, batch, axis=0)
        buffers = {"source_image": image}
        if spec.contract == "heatmaps":
            pose = np.empty((batch, 2 * k, spec.height, spec.width), dtype=self._pose_dtype)
            pose[:, :k] = self._source_maps
            buffers["pose_heatmaps"] = pose
        else:
            buffers["source_keypoints"] = np.repeat(self.keypoints[None], batch, axis=0)
        if len(cache) >= 4:
            cache.pop(next(iter(cache)))
        cache[batch] = buffers
        return buffers
