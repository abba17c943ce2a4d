"""pyposert: real-time human pose transfer.

Give it one photo of a person and a driving pose (from a video, a webcam, or keypoint
files); it renders the photographed person in the driver's pose. This package is the thin
runtime: native kernels (``pyposert.ops``) and ``pyposert.Engine(path).run(image, pose)``
over TensorRT, torch or ONNX Runtime. Fashion image completion models (erase a garment,
generate plausible completions) run through ``Engine(path).complete(image, parsing, pose,
garment)`` (:mod:`pyposert.completion`). It imports without torch and without a GPU.
"""

from __future__ import annotations

from typing import Any

try:
    from . import _C
except ImportError as exc:  # pragma: no cover - only when the package was not built
    raise ImportError(
        "pyposert's native module pyposert._C is missing: install the package "
        "(`pip install .` or `make test`, which builds it) instead of importing the source tree"
    ) from exc

from . import ops
from .engine import Completion, Engine, Source
from .errors import BackendUnavailable, PlanError

__version__: str = _C.build_info()["version"]

__all__ = ["BackendUnavailable", "Completion", "Engine", "PlanError", "Source", "__version__", "build_info",
           "cuda_available", "ops", "set_num_threads"]


def cuda_available() -> bool:
    """True when pyposert was compiled with CUDA and a CUDA device can be used now."""
    return bool(_C.build_info()["cuda_compiled"]) and int(_C.cuda_status()["device_count"]) > 0


def build_info() -> dict[str, Any]:
    """What was compiled and what is usable on this machine.

    Keys: version, cuda_compiled, cuda_architectures, cuda_compiler_version, openmp,
    cpu_threads, compiler; the CPU kernels' instruction set: simd_supported (the best this
    CPU has: "baseline", "avx2" or "avx512"), simd (the one in use), simd_forced (set by the
    environment variable POSERT_SIMD), simd_error (why POSERT_SIMD cannot be honoured, or
    None); and ``cuda``: device_count, runtime_version, driver_version, compute_capability,
    device_name, reason (why no device is usable; empty if one is).
    """
    info = dict(_C.build_info())
    info["cuda"] = dict(_C.cuda_status())
    info["cuda_available"] = cuda_available()
    return info


def set_num_threads(n: int) -> None:
    """Threads used by the CPU kernels (0 = all cores, the default)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    _C.set_num_threads(n)
