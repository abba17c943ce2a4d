"""Backends: one protocol, chosen from a priority list (like onnxruntime's providers).

Every backend looks alike from the Engine's side (:class:`Backend`): ``name``, ``device``,
``input_spec`` / ``output_spec`` (name -> :class:`TensorSpec`) and ``run(feeds) -> outputs``
on host numpy arrays. GPU backends also offer a :class:`DeviceAdapter` (their memory, copies,
``execute`` and CUDA graphs), over which :class:`DeviceFrames` keeps the whole frame on the
device (upload, letterbox, heatmaps, warp, network, back to uint8 in one CUDA graph; see
:mod:`pyposert.backends.device_frames`).

The model I/O contracts (heatmaps, keypoints, completion) are defined in :mod:`pyposert.model`,
which resolves a :class:`~pyposert.model.ModelContract` once per opened model; backends bind
tensors by name and need not know it, except to reject a network that follows none.

Priority for ``backend="auto"``: TensorRT (GPU) -> torch on CUDA -> ONNX Runtime (CPU).
Nothing here imports torch, tensorrt or onnxruntime at module import time.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable, Optional, Protocol

import numpy as np

from ..errors import BackendUnavailable
from ..model import (COMPLETION_INPUTS, COMPLETION_OUTPUTS, HEATMAP_INPUTS, KEYPOINT_INPUTS, OUTPUT_NAME, HeatmapSpec,
                     ModelFile, TensorSpec, contract_kind)
from .device_frames import DeviceAdapter, DeviceFrames, open_device_frames

__all__ = [
    "AUTO_ORDER",
    "BACKEND_NAMES",
    "COMPLETION_INPUTS",
    "COMPLETION_OUTPUTS",
    "HEATMAP_INPUTS",
    "KEYPOINT_INPUTS",
    "OUTPUT_NAME",
    "Backend",
    "DeviceAdapter",
    "DeviceFrames",
    "HeatmapSpec",
    "ModelFile",
    "TensorSpec",
    "backends_report",
    "contract_kind",
    "open_backend",
    "open_device_frames",
    "parse_device",
]

BACKEND_NAMES = ("auto", "tensorrt", "torch", "onnxruntime")
# "torch" in the automatic order means torch on a CUDA device; CPU torch is for parity checks
# and is only used when asked for by name.
AUTO_ORDER = ("tensorrt", "torch", "onnxruntime")


class Backend(Protocol):
    """What the Engine needs from a backend.

    ``run`` takes C-contiguous numpy arrays named as in ``input_spec`` (all with one batch
    size B) and returns numpy arrays named as in ``output_spec``. The returned arrays may be
    buffers the backend reuses on its next ``run`` from the same thread: copy to keep them.
    ``run`` is safe to call from several threads at once. ``device_adapter()`` is the
    backend's side of :class:`DeviceFrames` on a GPU, or None.
    """

    name: str
    device: str  # "cpu" or "cuda:N"
    input_spec: dict[str, TensorSpec]
    output_spec: dict[str, TensorSpec]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def device_adapter(self) -> Optional[DeviceAdapter]: ...

    def close(self) -> None: ...


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
