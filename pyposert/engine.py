"""``pyposert.Engine``: one photo + a driving pose -> the photographed person in that pose.

    engine = pyposert.Engine("nram")                          # an installed model, a .plan, a bare .onnx or a TensorRT engine
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
  Missing joint: a negative, NaN or infinite x or y, or a confidence below ``min_confidence``
  (0.05). A pose needs at least the neck and both hips (ValueError otherwise); see
  :mod:`pyposert.poses`.
- the driving pose lives in the driving frame's pixels: give that frame's size as
  ``target_size`` / ``pose_size`` = (h, w); without it the pose is taken to be in the photo's
  pixel frame.

Inside: the photo is cropped around its person (:mod:`pyposert.framing`; ``framing=False``:
the whole photo) and the crop letterboxed (aspect kept) into the model frame H x W; keypoints
follow the same maps (``Frame.to_crop``, ``ops.Letterbox``); heatmaps are rasterised by pyposert's kernel with the
model's convention (from the bundle manifest; for a bare ONNX file DESIGN.md's default:
Gaussian, sigma = 6 * H / 256); the network runs on the chosen backend; the output is mapped
back and pasted into the photo (outside the crop the photo is untouched). Everything that depends only on the photo is computed once in :class:`Source`.

Fashion image completion models (bundle task "completion", :mod:`pyposert.completion`) run
through :meth:`Engine.complete` instead: erase one garment of a photo (its box, or any mask)
and get ``samples`` plausible completions, reproducible per ``seed``:

    engine = pyposert.Engine("models/completion.plan")
    result = engine.complete(photo_bgr, parsing, photo_pose, "top", seed=0, samples=4)
    result.images[k], result.parsings[k]                      # uint8 [h, w, 3] BGR, uint8 [h, w]

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

from . import completion, ops
from .framing import Frame, frame_person, full_frame
from .backends import (COMPLETION_INPUTS, HEATMAP_INPUTS, OUTPUT_NAME, Backend, DeviceFrames, HeatmapSpec, ModelFile,
                       TensorSpec, open_backend)
from .bundle import CompletionSpec
from .errors import PlanError
from .estimators import MEDIAPIPE_INSTALL_HINT
from .poses import (DEFAULT_MIN_CONFIDENCE, NUM_JOINTS, REQUIRED_JOINTS, PersonChoice, PoseLike, check_minimum,
                    check_person, parse_pose)

__all__ = ["Completion", "Engine", "ModelSpec", "NoPoseEstimator", "Source", "MIN_IMAGE_SIDE", "TASKS"]

MIN_IMAGE_SIDE = 8
OUTPUT_SIZES = ("source", "model")
TASKS = ("pose_transfer", "completion")  # what a model does; which Engine method runs it
_TASK_METHODS = {"pose_transfer": "run() / source()", "completion": "complete()"}

PoseEstimator = Callable[[np.ndarray], Any]


@dataclass(frozen=True)
class ModelSpec:
    """What the network expects: model frame ``height`` x ``width`` (pixels), the heatmap
    convention, and the I/O contract ("heatmaps": 36 heatmap channels are computed here;
    "keypoints": (x, y) model-pixel keypoints go in, the engine rasterises; "completion":
    the six inputs of :mod:`pyposert.completion`, with ``completion`` giving the crop size,
    latent width and erase-region growth)."""

    height: int
    width: int
    heatmap: HeatmapSpec
    contract: str
    joints: int = NUM_JOINTS
    completion: Optional[CompletionSpec] = None


@dataclass(frozen=True)
class Completion:
    """What :meth:`Engine.complete` returns: ``samples`` completions of one photo, in sample
    order (sample k of a seed is the same whatever ``samples`` is).

    Attributes:
        images: list of uint8 [h, w, 3] BGR, the photo with its erase region completed; every
            pixel outside ``region`` is exactly the input photo's. With
            ``output_size="model"``: uint8 [H, W, 3] BGR in the model frame (letterbox bars
            included), as the network made it (no compositing).
        parsings: list of uint8 [h, w] class maps (classes 0..7 of
            :data:`pyposert.completion.PARSING_CLASSES`): the completed parsing, equal to the
            input parsing outside ``region``; [H, W] model frame for ``output_size="model"``.
        region: uint8 [h, w] (or [H, W] for "model"), 1 where the photo was erased, else 0.
        seed: the seed of the noise (sample k used row k of ``completion.noise(seed, ...)``).
        garment: name of the erased garment ("hat", "top", "bottom", "shoes"), or None when
            a mask was given without one.
    """

    images: list
    parsings: list
    region: np.ndarray
    seed: int
    garment: Optional[str]


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
def _load_model(path: Union[str, os.PathLike], trusted_keys: Any = None) -> ModelFile:
    """What ``path`` is: a bundle (read and validated), or a bare .onnx (checked when a
    backend reads it). A path that does not exist may name an installed model ("nram":
    ``$POSERT_MODELS``, then the package's; :func:`pyposert.resources.find_model`). Paths
    that are not regular files (folders, named pipes, devices) are refused before anything
    is read from them. With ``trusted_keys`` (or the environment's POSERT_TRUSTED_KEYS) only
    a bundle signed by one of them is accepted."""
    from . import bundle  # the bundle reader: never executes code from the file
    from .safety import open_regular
    from .signing import TRUSTED_KEYS_ENV, parse_trusted_keys, trusted_keys_from_env

    keys = trusted_keys_from_env() if trusted_keys is None else parse_trusted_keys(trusted_keys)

    from .resources import find_model

    p = Path(path)
    if not os.path.lexists(p):
        p = find_model(p)  # an installed model's name, or FileNotFoundError saying where it looked
    with open_regular(p) as f:
        head = f.read(4)
    if p.suffix.lower() == ".onnx":
        if keys is not None:
            raise PlanError(f"{p} is a bare ONNX file, which cannot be signed; signed bundles are required "
                            f"({TRUSTED_KEYS_ENV} or trusted_keys=)")
        return ModelFile(p, "onnx")
    # Bundles are zip archives. Anything zip-like is read as one, so a truncated or damaged
    # bundle reports what is wrong with it (PlanError) instead of being mistaken for
    # something else.
    if head in (b"PK\x03\x04", b"PK\x05\x06") or (p.suffix.lower() == ".plan" and not head):
        return ModelFile(p, "bundle", bundle.read_bundle(p, keys))
    # A bare TensorRT engine is native code with nothing to check it against: pyposert
    # deserialises engines only from bundles whose hashes check.
    raise PlanError(f"{p} is neither a pyposert bundle nor an ONNX model (a .plan bundle or an .onnx file). A bare "
                    f"TensorRT engine is not loaded on its own: it is native code, so pyposert loads engines only "
                    f"from a .plan bundle whose hashes check (python -m export CHECKPOINT --tensorrt)")


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


def _model_task(model: ModelFile, backend: Backend, where: str) -> str:
    """The model's task: the bundle manifest's (checked against the graph's inputs), or for a
    bare file the graph's inputs (the completion set -> "completion")."""
    graph_completion = set(backend.input_spec) == set(COMPLETION_INPUTS)
    if model.bundle is None:
        return "completion" if graph_completion else "pose_transfer"
    task = model.bundle.task
    if (task == "completion") != graph_completion:
        raise PlanError(f"{where}: the manifest's task is {task!r} but the network's inputs are "
                        f"{sorted(backend.input_spec)}" + ("" if graph_completion else
                                                           f" (a completion network takes {list(COMPLETION_INPUTS)})"))
    return task


def _fixed_dims(backend: Backend, name: str, rank: int, where: str) -> tuple[int, ...]:
    """The non-batch dimensions of input ``name``, all fixed (PlanError otherwise)."""
    spec = backend.input_spec[name]
    dims = spec.shape[1:]
    if len(spec.shape) != rank or any(d is None for d in dims):
        raise PlanError(f"{where}: {spec.describe()} must have rank {rank} with fixed dimensions after the batch axis "
                        f"to run without a bundle manifest")
    return tuple(int(d) for d in dims)  # type: ignore[arg-type]


def _completion_model_spec(model: ModelFile, backend: Backend, where: str) -> ModelSpec:
    """The completion ModelSpec: from the manifest (nothing guessed), or for a bare file from
    the graph (H, W of masked_image, S of garment_crops, Z of noise) with DESIGN.md's Gaussian
    (sigma = 6 * H / 256) and completion.DEFAULT_MARGIN / DEFAULT_PAD."""
    if model.kind == "bundle":
        height, width, heatmap = _bundle_spec(model)
        comp = model.bundle.completion_spec
    else:
        _, height, width = _fixed_dims(backend, "masked_image", 4, where)
        _, size, size_x = _fixed_dims(backend, "garment_crops", 4, where)
        if size != size_x:
            raise PlanError(f"{where}: garment_crops must be square [B, 12, S, S], got "
                            f"{backend.input_spec['garment_crops'].describe()}")
        _, latent = _fixed_dims(backend, "noise", 3, where)
        heatmap = HeatmapSpec("gaussian", 6.0 * height / 256.0, 4.0)  # DESIGN.md's convention
        comp = CompletionSpec(size, latent, completion.DEFAULT_MARGIN, completion.DEFAULT_PAD)
    return ModelSpec(height, width, heatmap, "completion", completion=comp)


def _check_completion_shapes(backend: Backend, spec: ModelSpec, where: str) -> None:
    """A completion network's tensors must agree with the spec (PlanError naming both)."""
    h, w, k = spec.height, spec.width, spec.joints
    comp = spec.completion
    assert comp is not None
    size, classes = comp.crop_size, completion.NUM_CLASSES
    expected = {"masked_image": (3, h, w), "masked_parsing": (classes, h, w), "erase_mask": (1, h, w),
                "pose_heatmaps": (k, h, w), "garment_crops": (completion.CROP_CHANNELS, size, size),
                "noise": (2, comp.latent), "parsing": (classes, h, w), OUTPUT_NAME: (3, h, w)}
    tensors = list(backend.input_spec.values()) + [backend.output_spec[n] for n in completion.COMPLETION_OUTPUTS]
    for tensor in tensors:
        want = expected[tensor.name]
        got = tensor.shape[1:]
        if len(got) != len(want) or any(g is not None and g != e for g, e in zip(got, want)):
            raise PlanError(f"{where}: {tensor.describe()} does not match the model spec "
                            f"[B, {', '.join(map(str, want))}] (H x W = {h} x {w}, crop size {size}, "
                            f"latent {comp.latent})")


def _check_count(value: Any, name: str) -> int:
    """An integer >= 1 (not a bool), or ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_mask(mask: Any, size: tuple[int, int]) -> np.ndarray:
    """A user erase mask: bool or integer [h, w] of the photo's size, nonzero = erase, not
    empty. Returns uint8 [h, w] 0/1."""
    if isinstance(mask, np.ndarray) and mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if isinstance(mask, np.ndarray) and not (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.integer)):
        raise ValueError(f"mask must be uint8 or bool [h, w] (nonzero = erase), got dtype {mask.dtype}")
    completion.region_box(mask, size)  # shape and emptiness, with their messages
    return (mask != 0).astype(np.uint8)


def _model_box(box: "completion.Box", lb: ops.Letterbox) -> "completion.Box":
    """A photo box -> the model-frame box covering it. Pixel edges map as e * scale + box
    offset (Letterbox.to_model's pixel-centre map, on edges); the start is floored and the end
    ceiled so every model pixel the photo box touches is erased; clipped to the letterbox's
    content box and never empty (a thin box still erases one model pixel)."""
    sx, sy = lb.scale
    y_lo, y_hi = lb.box_y, lb.box_y + lb.box_height
    x_lo, x_hi = lb.box_x, lb.box_x + lb.box_width
    y0 = min(max(int(np.floor(box.y0 * sy + lb.box_y)), y_lo), y_hi - 1)
    x0 = min(max(int(np.floor(box.x0 * sx + lb.box_x)), x_lo), x_hi - 1)
    y1 = min(max(int(np.ceil(box.y1 * sy + lb.box_y)), y0 + 1), y_hi)
    x1 = min(max(int(np.ceil(box.x1 * sx + lb.box_x)), x0 + 1), x_hi)
    return completion.Box(y0, x0, y1, x1)


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


class NoPoseEstimator(ValueError):
    """A pose had to be estimated from an image, and no pose estimator is installed or given.
    The command line turns it into its own advice (``--source-pose FILE``)."""


# ------------------------------------------------------------------ Engine
class Engine:
    """Pose transfer (:meth:`run`, :meth:`source`) or fashion image completion
    (:meth:`complete`) on one model, with the best backend this machine has. Which one the
    model does is its :attr:`task`.

    Args:
        path: a ``.plan`` bundle, a bare ``.onnx`` (heatmap or completion contract; size from
            the graph, heatmaps Gaussian with sigma = 6 * H / 256; a completion graph's crop
            size and latent width from its garment_crops / noise inputs, the erase-region
            growth completion.DEFAULT_MARGIN / DEFAULT_PAD), or the name of an installed model
            ("nram", "completion": found in ``$POSERT_MODELS``, then among the package's models;
            see :mod:`pyposert.resources`). A bare TensorRT engine file is refused: engines are
            native code and load only from bundles whose hashes check.
        backend: "auto" (TensorRT -> torch on CUDA -> ONNX Runtime) | "tensorrt" | "torch" |
            "onnxruntime".
        device: None (backend's choice) | "cpu" | "cuda" | "cuda:N".
        threads: CPU intra-op threads (None: the physical cores).
        min_confidence: joints with a lower confidence are missing (default 0.05).
        pose_estimator: callable image_bgr -> pose ((18, 3) (x, y, confidence) pixels) or
            None (nobody found), used when ``source_pose`` is not given (default: MediaPipe,
            when the ``pyposert[pose]`` extra is installed; made on first use).
        trusted_keys: Ed25519 public keys (hex strings or 32-byte values); when given, or when
            the environment variable POSERT_TRUSTED_KEYS holds some, only a bundle signed by
            one of them loads (:mod:`pyposert.signing`).
        person: which person of the photo when the pose estimator reports several
            ("largest" | "center" | index; :func:`pyposert.poses.select_person`). MediaPipe's
            legacy pose solution reports one.
        framing: the default of the ``framing`` argument of :meth:`run`, :meth:`source` and
            :meth:`complete` (True: the network sees a crop of the photo around the person,
            :mod:`pyposert.framing`; False: the whole photo, letterboxed).
        required_joints: joints every pose must have (default: neck and both hips,
            :data:`pyposert.poses.REQUIRED_JOINTS`); ``()`` accepts any pose, e.g. for an
            upper-body model.

    Safe to use from several threads at once: each thread gets its own input buffers, the
    backends release the GIL (or serialise on their one GPU context), results are identical.

    Raises:
        FileNotFoundError, PlanError (unusable file), BackendUnavailable (backend missing).
    """

    def __init__(self, path: Union[str, os.PathLike], backend: str = "auto", device: Optional[str] = None,
                 threads: Optional[int] = None, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 pose_estimator: Optional[PoseEstimator] = None, trusted_keys: Any = None, framing: bool = True,
                 person: PersonChoice = "largest", required_joints: Sequence[int] = REQUIRED_JOINTS) -> None:
        self.framing = bool(framing)
        self.person = check_person(person)
        self.min_confidence = float(min_confidence)
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence!r}")
        joints = tuple(required_joints)
        if not all(isinstance(j, (int, np.integer)) and not isinstance(j, bool) and 0 <= j < NUM_JOINTS
                   for j in joints):
            raise ValueError(f"required_joints must be COCO-18 joint indices 0..17, got {required_joints!r}")
        self.required_joints: tuple[int, ...] = tuple(int(j) for j in joints)
        self._model = _load_model(path, trusted_keys)
        self._backend = open_backend(self._model, backend, device, threads)
        where = self._model.path.name
        self._task = _model_task(self._model, self._backend, where)
        if self._task == "completion":
            self.spec = _completion_model_spec(self._model, self._backend, where)
            _check_completion_shapes(self._backend, self.spec, where)
            first = "masked_image"
        else:
            if self._model.kind == "bundle":
                height, width, heatmap = _bundle_spec(self._model)
            else:
                height, width = _graph_size(self._backend, self._model.path)
                heatmap = HeatmapSpec("gaussian", 6.0 * height / 256.0, 4.0)  # DESIGN.md's convention
            contract = "heatmaps" if set(self._backend.input_spec) == set(HEATMAP_INPUTS) else "keypoints"
            self.spec = ModelSpec(height, width, heatmap, contract)
            _check_shapes(self._backend, self.spec, where)
            first = "source_image"
        batch = self._backend.input_spec[first].shape[0]
        self.max_batch: int = batch or int(getattr(self._backend, "max_batch", 0) or 1 << 16)
        # The device-frame path (load_source / render) is pose transfer only.
        self._on_device = (self._task == "pose_transfer" and self._backend.device != "cpu"
                           and isinstance(self._backend, DeviceFrames))
        # The default estimator is made on first need (a MediaPipe graph costs time and memory
        # that callers passing source poses never use), owned and closed by the Engine, and
        # called under a lock: MediaPipe graphs are not thread-safe.
        self._estimator: Optional[PoseEstimator] = pose_estimator
        self._estimator_tried = pose_estimator is not None
        self._owns_estimator = False
        self._estimator_lock = threading.Lock()
        self._closed = False

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

    @property
    def task(self) -> str:
        """What the model does: "pose_transfer" (:meth:`run`, :meth:`source`) or "completion"
        (:meth:`complete`)."""
        return self._task

    def __repr__(self) -> str:
        task = "" if self._task == "pose_transfer" else f", task={self._task!r}"
        return (f"Engine({str(self._model.path)!r}, backend={self.backend!r}, device={self.device!r}, "
                f"size={self.spec.height}x{self.spec.width}{task})")

    def _require_task(self, task: str, method: str) -> None:
        """ValueError naming the method this model supports when ``method`` is not for it."""
        if self._task != task:
            raise ValueError(f"{method} needs a {task} model; {self._model.path.name} is a {self._task} model: "
                             f"use Engine.{_TASK_METHODS[self._task]}")

    def _check_open(self) -> None:
        """RuntimeError after :meth:`close` (instead of a failure deep inside a backend)."""
        if self._closed:
            raise RuntimeError(f"this Engine ({self._model.path.name}) is closed: Engine.close() released its "
                               f"model; create a new Engine to run it again")

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def close(self) -> None:
        """Release the backend (sessions, GPU memory) and the default pose estimator. Calling
        it again does nothing; running the Engine (or a Source made by it) afterwards raises
        RuntimeError."""
        if self._closed:
            return
        self._closed = True
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
            target_size: Optional[tuple[int, int]] = None, output_size: str = "source",
            framing: Optional[bool] = None) -> np.ndarray:
        """Render the person of ``image`` in ``pose``.

        Args:
            image: uint8 [h, w, 3] BGR photo of the person (h, w >= 8).
            pose: target pose, (18, 2|3) (x, y[, confidence]) pixels of the driving frame, or
                OpenPose JSON.
            source_pose: the photo's pose, (x, y) pixels of ``image`` (or OpenPose JSON);
                None: estimated with the pose estimator (ValueError when it finds nobody).
            target_size: (h, w) of the driving frame ``pose`` belongs to; None: ``image``'s.
                The frame is letterboxed onto the photo (aspect kept); to put a driver's
                skeleton where the photo's person stands, at their size, normalise it first
                (:mod:`pyposert.normalize`; :func:`pyposert.retarget.retarget` does).
            output_size: "source" (uint8 [h, w, 3]) or "model" (uint8 [H, W, 3]).
            framing: crop the photo around its person for the network and paste the result
                back (:mod:`pyposert.framing`; outside the crop the photo is untouched);
                False: the whole photo, letterboxed; None: the engine's default (True).

        Returns:
            uint8 [h, w, 3] BGR (or [H, W, 3]).

        For a video, use :meth:`source` once and :meth:`Source.run` per frame.
        ValueError on a completion model (use :meth:`complete`).
        """
        self._check_open()
        self._require_task("pose_transfer", "Engine.run()")
        return self.source(image, source_pose, framing=framing).run(pose, pose_size=target_size,
                                                                    output_size=output_size)

    def source(self, image: np.ndarray, source_pose: Optional[PoseLike] = None, *,
               framing: Optional[bool] = None) -> "Source":
        """Prepare a photo once: letterboxed model input, source keypoints in model pixels,
        and the source half of the heatmaps. Returns a :class:`Source` to run poses on.

        image: uint8 [h, w, 3] BGR; source_pose: its pose in its pixels, (x, y) first; None:
        the pose estimator's (ValueError "no person found in the source photo" when it finds
        nobody or every joint is missing; ValueError when there is no estimator). ValueError on
        a completion model (use :meth:`complete`). framing: as in :meth:`run`.
        """
        self._check_open()
        self._require_task("pose_transfer", "Engine.source()")
        image = check_image(image)
        if source_pose is None:
            keypoints = self._estimate_source_pose(image)
        else:
            keypoints = check_minimum(parse_pose(source_pose, min_confidence=self.min_confidence, name="source_pose"),
                                      "source_pose", self.required_joints)
        return Source(self, image, keypoints, self.framing if framing is None else bool(framing))

    def _estimate_source_pose(self, image: np.ndarray) -> np.ndarray:
        """The photo's pose from the pose estimator: float32 (18, 2) (x, y) pixels, missing -1.
        ValueError when there is no estimator or it finds nobody."""
        with self._estimator_lock:
            if not self._estimator_tried:
                self._estimator = default_estimator(static_image_mode=True)
                self._estimator_tried, self._owns_estimator = True, self._estimator is not None
            if self._estimator is None:
                raise NoPoseEstimator(
                    "source_pose is required: no pose estimator is installed to find the photo's pose (pass "
                    "source_pose=, give Engine(..., pose_estimator=f), or " + MEDIAPIPE_INSTALL_HINT + ")")
            raw = self._estimator(image)
        keypoints = None if raw is None else parse_pose(raw, min_confidence=self.min_confidence,
                                                        name="estimated source_pose", person=self.person,
                                                        image_size=image.shape[:2])
        if keypoints is None or (keypoints < 0).all():
            h, w = image.shape[:2]
            raise ValueError(f"no person found in the source photo ({h} x {w}; the pose estimator detected nobody); "
                             f"pass its keypoints yourself: --source-pose FILE on the command line, source_pose= "
                             f"in Python")
        return check_minimum(keypoints, "the photo's estimated pose (pass its keypoints instead)", self.required_joints)

    # ---------------------------------------------------------------- completion
    def complete(self, image: np.ndarray, parsing: np.ndarray, pose: PoseLike, garment: Optional[str] = "top", *,
                 mask: Optional[np.ndarray] = None, seed: int = 0, samples: int = 1,
                 output_size: str = "source", framing: Optional[bool] = None) -> Completion:
        """Erase one garment of a photo (or a masked region) and complete it, ``samples`` times.

        Args:
            image: uint8 [h, w, 3] BGR photo of the person (h, w >= 8).
            parsing: integer [h, w] class map of the photo, classes 0..7
                (:data:`pyposert.completion.PARSING_CLASSES`).
            pose: the person's pose in the photo's pixels: (18, 2|3) (x, y[, confidence]) or
                OpenPose JSON (anything :func:`pyposert.poses.parse_pose` accepts); at least
                one joint present.
            garment: "hat" | "top" | "bottom" | "shoes": its box in ``parsing``, grown by the
                model's margin and pad, is erased (ValueError when the parsing has none). With
                ``mask`` it may be None; when given it only decides which garment crop is left
                out (the one to be replaced).
            mask: uint8 or bool [h, w], nonzero = erase: the region to complete instead of the
                garment's box.
            seed: integer >= 0; sample k uses row k of ``completion.noise(seed, samples, Z)``,
                so it is the same for every ``samples`` > k, on every machine and backend.
            samples: how many completions (integer >= 1); run in batches of ``max_batch``.
            output_size: "source" (photo size, composited: outside the region every pixel is
                the photo's) or "model" (model frame H x W, as the network made it).
            framing: the network sees a crop of the photo around the person (and the erase
                region), :mod:`pyposert.framing`; False: the whole photo, letterboxed; None:
                the engine's default (True).

        Returns:
            :class:`Completion` (images, parsings, region, seed, garment).

        Raises:
            ValueError: bad image, parsing, pose, garment, mask, seed, samples or
                output_size (the engine stays usable), or a pose-transfer model (use
                :meth:`run`).
        """
        self._check_open()
        self._require_task("completion", "Engine.complete()")
        spec = self.spec
        comp = spec.completion
        assert comp is not None
        unletterbox = _check_output_size(output_size)
        samples = _check_count(samples, "samples")
        noise = completion.noise(seed, samples, comp.latent)  # validates seed
        image = check_image(image)
        h, w = int(image.shape[0]), int(image.shape[1])
        labels = completion.check_parsing(parsing, (h, w))
        if garment is None and mask is None:
            raise ValueError(f"give the garment to erase (one of {completion.GARMENTS}) or a mask of the region")
        cls = None if garment is None else completion.garment_class(garment)
        keypoints = parse_pose(pose, min_confidence=self.min_confidence, name="pose")
        if (keypoints < 0).all():
            raise ValueError("pose has no joint present (every joint missing); the completion network needs the "
                             "person's pose in the photo's pixels")
        if mask is None:
            box = completion.garment_box(labels, cls, comp.margin, comp.pad)
            region = completion.box_mask(box, h, w)
        else:
            region = _check_mask(mask, (h, w))
            box = completion.region_box(region, (h, w))
        # Garment crops come from the whole photo (full resolution, whatever the framing).
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        crops = completion.garment_crops(rgb, labels, comp.crop_size, exclude=cls)

        # Framing: the network sees a crop around the person that holds the erase region; the
        # results are put back below (outside the region every pixel stays the photo's).
        use_frame = self.framing if framing is None else bool(framing)
        frame = (frame_person(keypoints, (h, w), (spec.height, spec.width),
                              include=(box.x0, box.y0, box.x1 - 1, box.y1 - 1))
                 if use_frame else full_frame((h, w)))
        photo, photo_labels, photo_region = image, labels, region
        if not frame.is_whole:
            image = np.ascontiguousarray(frame.cut(image))
            labels = np.ascontiguousarray(frame.cut(labels))
            region = np.zeros((frame.height, frame.width), np.uint8)  # nothing is erased in the padding
            rows, cols, crows, ccols = frame.inside
            region[crows, ccols] = photo_region[rows, cols]
            keypoints = frame.to_crop(keypoints)
            box = completion.Box(box.y0 - frame.y0, box.x0 - frame.x0, box.y1 - frame.y0, box.x1 - frame.x0)
            h, w = frame.height, frame.width

        # Model-frame inputs (one photo; repeated over the batch below).
        height, width = spec.height, spec.width
        lb = ops.letterbox(h, w, height, width)
        erase = np.zeros((height, width), np.uint8)
        model_region = None if mask is None else completion.letterbox_labels(region, lb)
        if model_region is None or not model_region.any():  # a box, or a mask too thin to survive resampling
            erase[_model_box(box, lb).slices()] = 1
        else:
            erase = model_region
        keep = (1 - erase).astype(np.float32)
        model_image, _ = ops.to_model_input(image, height, width)
        onehot = completion.one_hot(completion.letterbox_labels(labels, lb))
        kp = _to_model(lb, keypoints)
        maps = ops.heatmaps(kp[None], height, width, mode=spec.heatmap.mode, sigma=spec.heatmap.sigma,
                            radius=spec.heatmap.radius)
        one = {"masked_image": model_image * keep, "masked_parsing": onehot * keep,
               "erase_mask": erase.astype(np.float32)[None], "pose_heatmaps": maps[0], "garment_crops": crops}

        images: list[np.ndarray] = []
        parsings: list[np.ndarray] = []
        inside = region.astype(bool)
        inputs = self._backend.input_spec
        for start in range(0, samples, self.max_batch):
            rows = noise[start:start + self.max_batch]
            n = len(rows)
            feeds = {name: np.ascontiguousarray(np.repeat(value[None], n, axis=0), dtype=inputs[name].dtype)
                     for name, value in one.items()}
            feeds["noise"] = np.ascontiguousarray(rows, dtype=inputs["noise"].dtype)
            out = self._backend.run(feeds)  # this thread's buffers: consumed before the next run
            for b in range(n):
                picture = ops.from_model_output(np.ascontiguousarray(out[OUTPUT_NAME][b]), lb,
                                                unletterbox=unletterbox)
                classes = np.ascontiguousarray(out["parsing"][b].argmax(axis=0).astype(np.uint8))
                if unletterbox:
                    np.copyto(picture, image, where=~inside[:, :, None])  # outside the region: the photo, exactly
                    classes = np.where(inside, completion.letterbox_labels(classes, lb, unletterbox=True), labels)
                    if not frame.is_whole:  # the crop's result back into the photo
                        rows, cols, crows, ccols = frame.inside
                        full, full_classes = photo.copy(), photo_labels.copy()
                        full[rows, cols] = picture[crows, ccols]
                        full_classes[rows, cols] = classes[crows, ccols]
                        picture, classes = full, full_classes
                images.append(picture)
                parsings.append(np.ascontiguousarray(classes, dtype=np.uint8))
        name = None if cls is None else completion.PARSING_CLASSES[cls]
        return Completion(images, parsings, photo_region if unletterbox else erase.astype(np.uint8), int(seed), name)

    # ---------------------------------------------------------------- internals for Source
    def _target(self, pose: PoseLike, box: ops.Letterbox, pose_size: Optional[tuple[int, int]],
                frame: Optional[Frame] = None) -> np.ndarray:
        """A driving pose -> float32 (18, 2) (x, y) model pixels of the (cropped) photo.

        pose_size None: the pose is in photo pixels. Else it is in a (h, w) driving frame,
        which is letterboxed straight into the model frame when the network sees the whole
        photo (``frame`` None or whole), and onto the photo, then through ``frame``, when it
        sees a crop."""
        keypoints = check_minimum(parse_pose(pose, min_confidence=self.min_confidence, name="pose"), "pose",
                                  self.required_joints)
        whole = frame is None or frame.is_whole
        if pose_size is not None:
            h, w = _check_size(pose_size, "pose_size")
            if whole:
                box = ops.letterbox(h, w, self.spec.height, self.spec.width)
            else:
                keypoints = ops.letterbox(h, w, frame.image_height, frame.image_width).to_model(keypoints)
        if not whole:
            keypoints = frame.to_crop(keypoints)
        return _to_model(box, keypoints)


class Source:
    """A prepared photo: everything that depends only on it, cached; poses run per frame.

    Attributes:
        frame: the :class:`~pyposert.framing.Frame` the network sees (the whole photo when
            framing is off).
        box: the frame's Letterbox into the model frame.
        keypoints: float32 (18, 2) source keypoints (x, y) in model pixels, missing -1.
        photo_keypoints: float32 (18, 2) source keypoints (x, y) in photo pixels, missing -1.
        image_size: the photo's (h, w).

    Photo pixels map to model pixels by ``box.to_model(frame.to_crop(kp))`` and back by
    ``frame.to_image(box.to_image(kp))`` (:meth:`to_model`, :meth:`to_photo`): exactly as the
    pixels are cut and resampled.

    Per frame only the target heatmaps are rasterised, into a preallocated [B, 36, H, W]
    buffer whose source half was filled once (one buffer per thread and batch size, so
    several threads may run the same Source at once).
    """

    def __init__(self, engine: Engine, image: np.ndarray, keypoints: np.ndarray, framing: bool = True) -> None:
        spec = engine.spec
        self._engine = engine
        self._spec = spec
        self.image_size = (int(image.shape[0]), int(image.shape[1]))
        self.photo_keypoints = np.asarray(keypoints, np.float32).copy()
        self.frame = (frame_person(keypoints, self.image_size, (spec.height, spec.width)) if framing
                      else full_frame(self.image_size))
        # The photo is kept for pasting results back (a copy: the caller may reuse its buffer).
        self._photo = None if self.frame.is_whole else np.array(image, copy=True)
        image = image if self.frame.is_whole else self.frame.cut(image)
        self.box = ops.letterbox(image.shape[0], image.shape[1], spec.height, spec.width)
        self.keypoints = _to_model(self.box, self.frame.to_crop(keypoints))
        self._local = threading.local()
        self._device_source: Any = None
        if engine._on_device:
            self._device_source = engine._backend.load_source(np.ascontiguousarray(image), self.box, self.keypoints,
                                                              spec.heatmap)
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
        target = self._engine._target(pose, self.box, pose_size, self.frame)
        return self._render(target[None], unletterbox)[0]

    def run_batch(self, poses: Sequence[PoseLike], *, pose_size: Optional[tuple[int, int]] = None,
                  output_size: str = "source") -> list[np.ndarray]:
        """Several target poses in batched network calls, in order. poses: a sequence of
        poses (or an array [B, 18, 2|3]).

        On ONNX Runtime (CPU) the frames are bitwise those of separate :meth:`run` calls. On
        the GPU backends they agree within rounding, not bitwise: cuDNN, cuBLAS and TensorRT
        pick kernels per batch size and so sum in another order (a mean difference well
        under one level of 255, a few levels on single pixels in fp16)."""
        unletterbox = _check_output_size(output_size)
        if isinstance(poses, (dict, str, os.PathLike)):
            raise ValueError("run_batch takes a sequence of poses (a list, or an array [B, 18, 2|3]); "
                             "for one pose use run()")
        items = list(poses)
        if not items:
            raise ValueError("poses must hold at least one pose")
        targets = np.stack([self._engine._target(p, self.box, pose_size, self.frame) for p in items])
        results: list[np.ndarray] = []
        step = self._engine.max_batch
        for start in range(0, len(targets), step):
            results.extend(self._render(targets[start:start + step], unletterbox))
        return results

    def to_model(self, keypoints: np.ndarray) -> np.ndarray:
        """[..., 2|3] (x, y) photo pixels -> float32 model pixels (through the frame and the
        letterbox, exactly as the pixels go); missing joints stay -1."""
        return self.box.to_model(self.frame.to_crop(keypoints))

    def to_photo(self, keypoints: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_model`: [..., 2|3] (x, y) model pixels -> float32 photo pixels."""
        return self.frame.to_image(self.box.to_image(keypoints))

    # ---------------------------------------------------------------- rendering
    def _render(self, targets: np.ndarray, unletterbox: bool) -> list[np.ndarray]:
        """targets: float32 [B, 18, 2] (x, y) model pixels -> B uint8 HWC BGR images (the
        photo with the crop's result pasted in, or the model frame)."""
        self._engine._check_open()
        backend = self._engine._backend
        if self._device_source is not None:
            images = backend.render(self._device_source, targets, unletterbox=unletterbox)
        else:
            feeds = self._feeds(targets)
            out = backend.run(feeds)[OUTPUT_NAME]
            images = [ops.from_model_output(out[b], self.box, unletterbox=unletterbox) for b in range(len(targets))]
        if unletterbox and self._photo is not None:
            images = [self.frame.paste(self._photo, crop) for crop in images]
        return images

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
