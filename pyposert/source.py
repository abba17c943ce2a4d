"""``Source``: a prepared photo of :class:`~pyposert.engine.Engine`; poses run per frame.

    src = engine.source(photo_bgr, photo_pose)       # once per photo (cached work)
    frame = src.run(pose, pose_size=(frame_h, frame_w))

This module produces the network's inputs of pose transfer on the host (:meth:`Source.feeds`,
from the model contract of :mod:`pyposert.model`); on a GPU backend the same steps run on the
device (:class:`~pyposert.backends.device_frames.DeviceFrames`).
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from . import ops
from .framing import Frame, frame_person, full_frame
from .model import OUTPUT_NAME, WARP_INPUTS, ModelContract
from .poses import PoseLike, check_minimum, parse_pose

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["MIN_IMAGE_SIDE", "STAGES", "Source", "StageHook", "check_image", "check_output_size", "check_size",
           "target_keypoints"]

MIN_IMAGE_SIDE = 8
OUTPUT_SIZES = ("source", "model")
# The steps of one Source.run, as a StageHook sees them: "keypoints" (parse the pose, frame and
# letterbox it into model pixels), "heatmaps" (the network inputs of these poses: target
# heatmaps, keypoints, warp), "network", "output" (back to uint8 BGR, pasted into the photo).
# A GPU backend that keeps the frame on the device reports its three last steps as "engine".
STAGES = ("keypoints", "heatmaps", "network", "output")
DEVICE_STAGE = "engine"
StageHook = Callable[[str, float], None]  # (stage, seconds), called after each stage


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


def check_size(size: Any, name: str) -> tuple[int, int]:
    """(height, width) of positive integers, or ValueError."""
    values = tuple(size) if isinstance(size, (tuple, list, np.ndarray)) else ()
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be (height, width) integers, got {size!r}")
    h, w = int(values[0]), int(values[1])
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive (height, width), got {size!r}")
    return h, w


def check_output_size(output_size: str) -> bool:
    """True when the result goes back to the photo's size (un-letterboxed)."""
    if output_size not in OUTPUT_SIZES:
        raise ValueError(f"output_size must be one of {OUTPUT_SIZES}, got {output_size!r}")
    return output_size == "source"


def target_keypoints(keypoints: np.ndarray, box: ops.Letterbox, contract: ModelContract,
                     pose_size: Optional[tuple[int, int]], frame: Optional[Frame] = None) -> np.ndarray:
    """Parsed driving-pose keypoints (18, 2) (x, y) -> float32 (18, 2) model pixels of the
    (cropped) photo, missing -1.

    pose_size None: the pose is in photo pixels. Else it is in a (h, w) driving frame, which
    is letterboxed straight into the model frame when the network sees the whole photo
    (``frame`` None or whole), and onto the photo, then through ``frame``, when it sees a crop."""
    whole = frame is None or frame.is_whole
    if pose_size is not None:
        h, w = check_size(pose_size, "pose_size")
        if whole:
            box = ops.letterbox(h, w, contract.height, contract.width)
        else:
            keypoints = ops.letterbox(h, w, frame.image_height, frame.image_width).to_model(keypoints)
    if not whole:
        keypoints = frame.to_crop(keypoints)
    return box.to_model(keypoints).astype(np.float32, copy=False)


class _Clock:
    """Calls ``hook(stage, seconds)`` at each :meth:`lap`; does nothing without a hook."""

    def __init__(self, hook: Optional[StageHook]) -> None:
        self._hook = hook
        self._last = time.perf_counter() if hook is not None else 0.0

    def lap(self, stage: str) -> None:
        if self._hook is not None:
            now = time.perf_counter()
            self._hook(stage, now - self._last)
            self._last = now


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

    def __init__(self, engine: "Engine", image: np.ndarray, keypoints: np.ndarray, framing: bool = True) -> None:
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
        self.keypoints = self.box.to_model(self.frame.to_crop(keypoints)).astype(np.float32, copy=False)
        self._local = threading.local()
        self._device_source: Any = None
        frames = engine.device_frames
        if frames is not None:
            self._device_source = frames.load_source(np.ascontiguousarray(image), self.box, self.keypoints)
            return
        # Buffers take the network's input dtype (float32, or float16 for a half-precision
        # graph): the kernels write either, so no conversion pass is needed.
        model_input, _ = ops.to_model_input(image, spec.height, spec.width, dtype=spec.dtype("source_image"))
        self._model_input = model_input[None]  # [1, 3, H, W] RGB in [-1, 1]
        # The warp kernel reads float32 on the CPU: a float32 copy for half-precision graphs.
        self._warp_input = (None if not spec.has(WARP_INPUTS[0]) else
                            self._model_input.astype(np.float32, copy=False))
        self._source_maps = None
        if spec.has("pose_heatmaps"):
            self._source_maps = ops.heatmaps(self.keypoints[None], spec.height, spec.width, mode=spec.heatmap.mode,
                                             sigma=spec.heatmap.sigma, radius=spec.heatmap.radius,
                                             dtype=spec.dtype("pose_heatmaps"))

    def run(self, pose: PoseLike, *, pose_size: Optional[tuple[int, int]] = None,
            output_size: str = "source", on_stage: Optional[StageHook] = None) -> np.ndarray:
        """One target pose -> uint8 [h, w, 3] BGR (photo size) or [H, W, 3] (model size).

        pose: (18, 2|3) (x, y[, confidence]) pixels of the driving frame (size ``pose_size``
        = (h, w); None: the photo's pixel frame), or OpenPose JSON. on_stage: called with
        (stage, seconds) after each of :data:`STAGES` (or "engine" for a device frame).
        """
        unletterbox = check_output_size(output_size)
        clock = _Clock(on_stage)
        target = self._target(pose, pose_size)
        clock.lap("keypoints")
        return self._render(target[None], unletterbox, clock)[0]

    def run_batch(self, poses: Sequence[PoseLike], *, pose_size: Optional[tuple[int, int]] = None,
                  output_size: str = "source", on_stage: Optional[StageHook] = None) -> list[np.ndarray]:
        """Several target poses in batched network calls, in order. poses: a sequence of
        poses (or an array [B, 18, 2|3]); on_stage as in :meth:`run` (once per stage and
        network call).

        On ONNX Runtime (CPU) the frames are bitwise those of separate :meth:`run` calls. On
        the GPU backends they agree within rounding, not bitwise: cuDNN, cuBLAS and TensorRT
        pick kernels per batch size and so sum in another order (a mean difference well
        under one level of 255, a few levels on single pixels in fp16)."""
        unletterbox = check_output_size(output_size)
        if isinstance(poses, (dict, str, os.PathLike)):
            raise ValueError("run_batch takes a sequence of poses (a list, or an array [B, 18, 2|3]); "
                             "for one pose use run()")
        items = list(poses)
        if not items:
            raise ValueError("poses must hold at least one pose")
        clock = _Clock(on_stage)
        targets = np.stack([self._target(p, pose_size) for p in items])
        clock.lap("keypoints")
        results: list[np.ndarray] = []
        step = self._engine.max_batch
        for start in range(0, len(targets), step):
            results.extend(self._render(targets[start:start + step], unletterbox, clock))
        return results

    def to_model(self, keypoints: np.ndarray) -> np.ndarray:
        """[..., 2|3] (x, y) photo pixels -> float32 model pixels (through the frame and the
        letterbox, exactly as the pixels go); missing joints stay -1."""
        return self.box.to_model(self.frame.to_crop(keypoints))

    def to_photo(self, keypoints: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_model`: [..., 2|3] (x, y) model pixels -> float32 photo pixels."""
        return self.frame.to_image(self.box.to_image(keypoints))

    # ---------------------------------------------------------------- rendering
    def _target(self, pose: PoseLike, pose_size: Optional[tuple[int, int]]) -> np.ndarray:
        engine = self._engine
        keypoints = check_minimum(parse_pose(pose, min_confidence=engine.min_confidence, name="pose"), "pose",
                                  engine.required_joints)
        return target_keypoints(keypoints, self.box, self._spec, pose_size, self.frame)

    def _render(self, targets: np.ndarray, unletterbox: bool, clock: _Clock) -> list[np.ndarray]:
        """targets: float32 [B, 18, 2] (x, y) model pixels -> B uint8 HWC BGR images (the
        photo with the crop's result pasted in, or the model frame)."""
        self._engine.check_open()
        if self._device_source is not None:
            images = self._engine.device_frames.render(self._device_source, targets, unletterbox=unletterbox)
            clock.lap(DEVICE_STAGE)
        else:
            feeds = self.feeds(targets)
            clock.lap("heatmaps")
            out = self._engine.run_network(feeds)[OUTPUT_NAME]
            clock.lap("network")
            images = [ops.from_model_output(out[b], self.box, unletterbox=unletterbox) for b in range(len(targets))]
        if unletterbox and self._photo is not None:
            images = [self.frame.paste(self._photo, crop) for crop in images]
        if self._device_source is None:
            clock.lap("output")
        return images

    def feeds(self, targets: np.ndarray) -> dict[str, np.ndarray]:
        """The network's inputs (named as in the model contract) for float32 [B, 18, 2] (x, y)
        target keypoints in model pixels: this thread's buffers for batch B, valid until its
        next call with the same B (host backends only)."""
        spec = self._spec
        buffers = self._buffers(len(targets))
        targets = np.ascontiguousarray(targets, dtype=np.float32)
        if spec.has("pose_heatmaps"):
            pose = buffers["pose_heatmaps"]  # the target half [B, 18:36] of each sample, written in place
            ops.heatmaps(targets, spec.height, spec.width, mode=spec.heatmap.mode, sigma=spec.heatmap.sigma,
                         radius=spec.heatmap.radius, dtype=pose.dtype, out=pose, channel_offset=spec.joints)
            return buffers
        feeds = dict(buffers, target_keypoints=targets)
        if self._warp_input is not None:
            warped, coverage = (buffers[name] for name in WARP_INPUTS)
            image = buffers["source_image"]  # already [B, 3, H, W], repeated once per batch size
            if image.dtype != np.float32:  # a half-precision graph: the warp reads the float32 copy
                image = self._warp_input if len(targets) == 1 else np.repeat(self._warp_input, len(targets), axis=0)
            w32, c32 = ops.warp(image, buffers["source_keypoints"], targets, spec.height, spec.width,
                                out=warped if warped.dtype == np.float32 else None,
                                coverage=coverage if coverage.dtype == np.float32 else None)
            if w32 is not warped:  # a half-precision graph: cast once into its buffers
                np.copyto(warped, w32, casting="same_kind")
                np.copyto(coverage, c32, casting="same_kind")
        return feeds

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
        if spec.has("pose_heatmaps"):
            pose = np.empty((batch, 2 * k, spec.height, spec.width), dtype=spec.dtype("pose_heatmaps"))
            pose[:, :k] = self._source_maps
            buffers["pose_heatmaps"] = pose
        else:
            buffers["source_keypoints"] = np.repeat(self.keypoints[None], batch, axis=0)
            for name, channels in zip(WARP_INPUTS, (3, 1)):
                if spec.has(name):
                    buffers[name] = np.empty((batch, channels, spec.height, spec.width), spec.dtype(name))
        if len(cache) >= 4:
            cache.pop(next(iter(cache)))
        cache[batch] = buffers
        return buffers
