"""Backends: one protocol, chosen from a priority list (like onnxruntime's providers).

Every backend looks alike from the Engine's side (:class:`Backend`): ``name``, ``device``,
``input_spec`` / ``output_spec`` (name -> :class:`TensorSpec`) and ``run(feeds) -> outputs``
on host numpy arrays. GPU backends may also keep the whole frame on the device
(:class:`DeviceFrames`: upload, letterbox, heatmaps, network, back to uint8 in one CUDA graph).

Three model I/O contracts exist (all: batch first, float32 unless an engine says otherwise):

- heatmaps (``model.onnx``, payload kind "onnx"): ``source_image`` [B, 3, H, W] RGB in [-1, 1],
  ``pose_heatmaps`` [B, 36, H, W] (18 source channels, then 18 target) -> ``image`` [B, 3, H, W];
- keypoints (``model_pyposert.onnx`` / TensorRT engines): ``source_image`` [B, 3, H, W],
  ``source_keypoints`` and ``target_keypoints`` [B, 18, 2] (x, y) model pixels, missing -1 ->
  ``image``; the heatmaps are rasterised inside the engine;
- completion (fashion image completion, :mod:`pyposert.completion`): ``masked_image``,
  ``masked_parsing``, ``erase_mask``, ``pose_heatmaps`` [B, 18, H, W], ``garment_crops``,
  ``noise`` -> ``parsing`` [B, 8, H, W] and ``image`` [B, 3, H, W]. Host arrays only: no
  backend has a device-frame path (:class:`DeviceFrames`) for it.

Priority for ``backend="auto"``: TensorRT (GPU) -> torch on CUDA -> ONNX Runtime (CPU).
Nothing here imports torch, tensorrt or onnxruntime at module import time.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from ..completion import COMPLETION_INPUTS, COMPLETION_OUTPUTS
from ..errors import BackendUnavailable, PlanError

if TYPE_CHECKING:
    from ..ops import Letterbox

__all__ = [
    "AUTO_ORDER",
    "BACKEND_NAMES",
    "COMPLETION_INPUTS",
    "COMPLETION_OUTPUTS",
    "HEATMAP_INPUTS",
    "KEYPOINT_INPUTS",
    "OUTPUT_NAME",
    "Backend",
    "DeviceFrames",
    "HeatmapSpec",
    "ModelFile",
    "TensorSpec",
    "backends_report",
    "open_backend",
    "parse_device",
]

BACKEND_NAMES = ("auto", "tensorrt", "torch", "onnxruntime")
# "torch" in the automatic order means torch on a CUDA device; CPU torch is for parity checks
# and is only used when asked for by name.
AUTO_ORDER = ("tensorrt", "torch", "onnxruntime")

HEATMAP_INPUTS = ("source_image", "pose_heatmaps")
KEYPOINT_INPUTS = ("source_image", "source_keypoints", "target_keypoints")
OUTPUT_NAME = "image"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a backend: name, shape (None = dynamic axis), numpy dtype name."""

    name: str
    shape: tuple[Optional[int], ...]
    dtype: str = "float32"

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} [{dims}] {self.dtype}"


@dataclass(frozen=True)
class HeatmapSpec:
    """How keypoints become heatmaps (model pixels): Gaussian exp(-d^2 / (2 sigma^2)) or a
    disk of ``radius`` (value 1 inside)."""

    mode: str = "gaussian"
    sigma: float = 6.0
    radius: float = 4.0


@dataclass
class ModelFile:
    """What the Engine was given: a bundle or a bare ONNX file.

    ``kind``: "bundle" | "onnx" (a bare TensorRT engine is refused at load: engines are
    native code and load only from bundles whose hashes check). ``bundle`` is the
    ``pyposert.bundle.Bundle`` for bundles.
    """

    path: Path
    kind: str
    bundle: Any = None

    def payload_names(self, kind: str) -> list[str]:
        """Names of the bundle's payloads of ``kind`` ("onnx", "onnx-pyposert", "tensorrt",
        "torch-export"); empty for bare files."""
        if self.bundle is None:
            return []
        return list(self.bundle.payload_names(kind))

    def read_payload(self, name: str) -> bytes:
        """A payload's bytes, hash-checked by the bundle reader (PlanError when corrupt)."""
        return bytes(self.bundle.read_payload(name))


class Backend(Protocol):
    """What the Engine needs from a backend.

    ``run`` takes C-contiguous numpy arrays named as in ``input_spec`` (all with one batch
    size B) and returns numpy arrays named as in ``output_spec``. The returned arrays may be
    buffers the backend reuses on its next ``run`` from the same thread: copy to keep them.
    ``run`` is safe to call from several threads at once.
    """

    name: str
    device: str  # "cpu" or "cuda:N"
    input_spec: dict[str, TensorSpec]
    output_spec: dict[str, TensorSpec]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


@runtime_checkable
class DeviceFrames(Protocol):
    """Optional capability of GPU backends: the frame never leaves the device between steps.

    ``load_source`` uploads the uint8 HWC photo once, letterboxes it into the model input on
    the device and keeps the source keypoints (and, for heatmap models, the source half of the
    36 heatmap channels). ``render`` then runs one or more target poses: keypoints upload ->
    target heatmaps -> network -> uint8 HWC, captured in a CUDA graph after a warm-up run.
    """

    def load_source(self, image: np.ndarray, box: "Letterbox", source_keypoints: np.ndarray,
                    heatmap: HeatmapSpec) -> Any: ...

    def render(self, source: Any, target_keypoints: np.ndarray, *, unletterbox: bool) -> list[np.ndarray]: ...


def parse_device(device: Optional[str]) -> tuple[Optional[str], int]:
    """``None`` | "cpu" | "cuda" | "cuda:N" -> (None | "cpu" | "cuda", index)."""
    if device is None:
        return None, 0
    if not isinstance(device, str):
        raise ValueError(f"device must be None, 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    text = device.strip().lower()
    if text == "cpu":
        return "cpu", 0
    if text == "cuda":
        return "cuda", 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return "cuda", int(text[5:])
    raise ValueError(f"device must be None, 'cpu', 'cuda' or 'cuda:N', got {device!r}")


# ------------------------------------------------------------------ selection
_Opener = Callable[..., Backend]


def _openers() -> dict[str, _Opener]:
    # Imported lazily: each module imports its framework only when it is opened.
    from . import onnxruntime_backend, tensorrt_backend, torch_backend

    return {
        "tensorrt": tensorrt_backend.open_backend,
        "torch": torch_backend.open_backend,
        "onnxruntime": onnxruntime_backend.open_backend,
    }


def open_backend(model: ModelFile, backend: str = "auto", device: Optional[str] = None,
                 threads: Optional[int] = None) -> Backend:
    """Open the requested backend, or the first usable one of :data:`AUTO_ORDER`.

    Args:
        model: the loaded model file.
        backend: "auto" | "tensorrt" | "torch" | "onnxruntime".
        device: None (backend's choice) | "cpu" | "cuda" | "cuda:N".
        threads: CPU intra-op threads (None: the physical cores).

    Raises:
        BackendUnavailable: the named backend cannot run here (or, for "auto", none can);
            the message gives each backend's reason.
        PlanError: the model file (or the payload the backend needs) is corrupt or unusable.
    """
    if backend not in BACKEND_NAMES:
        raise ValueError(f"backend must be one of {BACKEND_NAMES}, got {backend!r}")
    kind, _ = parse_device(device)
    openers = _openers()
    if backend != "auto":
        return openers[backend](model, device=device, threads=threads, strict=True)
    reasons: list[str] = []
    for name in AUTO_ORDER:
        if kind == "cpu" and name in ("tensorrt", "torch"):
            reasons.append(f"{name}: skipped (device='cpu')")
            continue
        try:
            return openers[name](model, device=device, threads=threads, strict=False)
        except BackendUnavailable as exc:
            reasons.append(f"{name}: {exc}")
    raise BackendUnavailable("no backend can run this model here:\n  " + "\n  ".join(reasons))


# ------------------------------------------------------------------ report
def backends_report() -> list[dict[str, Any]]:
    """What this machine can run, for ``pyposert info``.

    Returns one dict per backend in priority order: ``name`` ("tensorrt" | "torch" |
    "onnxruntime"), ``available`` (bool: it can run a model here; for torch: on CUDA or, for
    parity checks, on the CPU) and ``reason`` (a sentence: version and device, or what is
    missing and how to get it). Importing a framework is the only reliable check, so this
    imports tensorrt / torch / onnxruntime when they are installed (a second or two).
    """
    from . import onnxruntime_backend, tensorrt_backend, torch_backend

    rows = [tensorrt_backend.availability(), torch_backend.availability(), onnxruntime_backend.availability()]
    return [{"name": name, "available": ok, "reason": reason} for name, ok, reason in rows]


def module_installed(name: str) -> bool:
    """True when ``import name`` would find the module (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def check_contract(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], where: str) -> str:
    """Which I/O contract a model follows: "heatmaps", "keypoints" or "completion" (by its
    input names, as a set); PlanError otherwise or when an output it needs is missing."""
    names = tuple(sorted(s.name for s in inputs))
    out_names = [s.name for s in outputs]
    if OUTPUT_NAME not in out_names:
        raise PlanError(f"{where}: expected an output named {OUTPUT_NAME!r} [B, 3, H, W], got {out_names}")
    if names == tuple(sorted(HEATMAP_INPUTS)):
        return "heatmaps"
    if names == tuple(sorted(KEYPOINT_INPUTS)):
        return "keypoints"
    if names == tuple(sorted(COMPLETION_INPUTS)):
        missing = [n for n in COMPLETION_OUTPUTS if n not in out_names]
        if missing:
            raise PlanError(f"{where}: a completion model must output {list(COMPLETION_OUTPUTS)}, "
                            f"got {out_names} (missing {missing})")
        return "completion"
    raise PlanError(
        f"{where}: inputs must be {list(HEATMAP_INPUTS)} (heatmap models), {list(KEYPOINT_INPUTS)} "
        f"(keypoint models) or {list(COMPLETION_INPUTS)} (completion models), got {[s.describe() for s in inputs]}")
