"""``pyposert.Engine``: one photo + a driving pose -> the photographed person in that pose.

    engine = pyposert.Engine("nram")                          # an installed model, a .plan bundle or a bare .onnx
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

Inside (:class:`Source`, docs/ARCHITECTURE.md): the photo is cropped around its person and
letterboxed into the model frame, the network's inputs are made by the model contract
(:mod:`pyposert.model`), and the output is pasted back into the photo.

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
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import completion
from .backends import DeviceFrames, open_backend, open_device_frames
from .completion import Completion
from .estimators import MEDIAPIPE_INSTALL_HINT, NoPoseEstimator, PoseEstimator, default_estimator
from .model import TASK_METHODS, TASKS, ModelContract, ModelSpec, load_model, resolve_contract
from .poses import (DEFAULT_MIN_CONFIDENCE, NUM_JOINTS, REQUIRED_JOINTS, PersonChoice, PoseLike, check_minimum,
                    check_person, parse_pose)
from .source import MIN_IMAGE_SIDE, Source, check_image, check_output_size

__all__ = ["Completion", "Engine", "ModelSpec", "NoPoseEstimator", "Source", "MIN_IMAGE_SIDE", "TASKS", "check_image",
           "default_estimator"]


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
        self._model = load_model(path, trusted_keys)
        self._backend = open_backend(self._model, backend, device, threads)
        self.spec: ModelContract = resolve_contract(self._model, self._backend)
        self.max_batch: int = self.spec.max_batch(getattr(self._backend, "max_batch", None))
        # The whole frame on the GPU when the backend offers it and the pipeline makes every
        # input of this network; else Source makes the feeds on the host.
        self._frames = open_device_frames(self._backend, self.spec)
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
        return self.spec.task

    def __repr__(self) -> str:
        task = "" if self.task == "pose_transfer" else f", task={self.task!r}"
        return (f"Engine({str(self._model.path)!r}, backend={self.backend!r}, device={self.device!r}, "
                f"size={self.spec.height}x{self.spec.width}{task})")

    def _require_task(self, task: str, method: str) -> None:
        """ValueError naming the method this model supports when ``method`` is not for it."""
        if self.task != task:
            raise ValueError(f"{method} needs a {task} model; {self._model.path.name} is a {self.task} model: "
                             f"use Engine.{TASK_METHODS[self.task]}")

    def check_open(self) -> None:
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
        if self._frames is not None:
            self._frames.close()  # its graphs and buffers before the backend's stream and context
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
        self.check_open()
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
        self.check_open()
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
        self.check_open()
        self._require_task("completion", "Engine.complete()")
        comp = self.spec.completion
        assert comp is not None
        unletterbox = check_output_size(output_size)
        samples = completion.check_count(samples, "samples")
        noise = completion.noise(seed, samples, comp.latent)  # validates seed
        image = check_image(image)
        labels = completion.check_parsing(parsing, (int(image.shape[0]), int(image.shape[1])))
        if garment is None and mask is None:
            raise ValueError(f"give the garment to erase (one of {completion.GARMENTS}) or a mask of the region")
        cls = None if garment is None else completion.garment_class(garment)
        keypoints = parse_pose(pose, min_confidence=self.min_confidence, name="pose")
        if (keypoints < 0).all():
            raise ValueError("pose has no joint present (every joint missing); the completion network needs the "
                             "person's pose in the photo's pixels")
        return completion.complete_photo(self.run_network, self.spec, self.max_batch, image, labels, keypoints, cls,
                                         mask, noise, int(seed), unletterbox,
                                         self.framing if framing is None else bool(framing))

    def parse(self, image: np.ndarray, pose: PoseLike, *, framing: Optional[bool] = None) -> np.ndarray:
        """The 8-class parsing map of a photo (a parser model, task "parsing"): what
        :meth:`complete` takes as ``parsing`` when none was made by hand.

        Args:
            image: uint8 [h, w, 3] BGR photo of the person.
            pose: the person's pose in the photo's pixels (as :meth:`complete`).
            framing: parse a crop around the person (None: the engine's default, True).

        Returns:
            uint8 [h, w], classes 0..7 of :data:`pyposert.completion.PARSING_CLASSES`.
        """
        self.check_open()
        self._require_task("parsing", "Engine.parse()")
        image = check_image(image)
        keypoints = parse_pose(pose, min_confidence=self.min_confidence, name="pose")
        if (keypoints < 0).all():
            raise ValueError("pose has no joint present (every joint missing); the parser needs the person's pose "
                             "in the photo's pixels")
        return completion.parse_photo(self.run_network, self.spec, image, keypoints,
                                      self.framing if framing is None else bool(framing))

    # ---------------------------------------------------------------- seams for Source and bench
    @property
    def device_frames(self) -> Optional[DeviceFrames]:
        """The backend's device-frame path (:class:`~pyposert.backends.DeviceFrames`: the
        whole frame stays on the GPU), or None when frames go through :meth:`run_network`."""
        return self._frames

    def run_network(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The network alone on host arrays: ``feeds`` named as in :attr:`spec` ``.inputs``
        (C-contiguous, their dtypes, one batch size B <= :attr:`max_batch`) -> outputs by
        name, [B, ...]. The arrays returned may be reused by this thread's next call."""
        self.check_open()
        return self._backend.run(feeds)
