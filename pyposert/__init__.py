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

def _missing_native_module() -> ImportError:
    """The one-line error for a pyposert without its compiled ``_C``. The usual cause: Python
    was started inside a source checkout, whose unbuilt ``pyposert/`` folder shadows the
    installed package (the current folder comes first on sys.path)."""
    import os
    import sys
    from importlib.machinery import EXTENSION_SUFFIXES

    here = os.path.dirname(os.path.abspath(__file__))
    installed = None
    for entry in sys.path:
        candidate = os.path.join(os.path.abspath(entry or os.curdir), "pyposert")
        if candidate != here and any(os.path.isfile(os.path.join(candidate, "_C" + s)) for s in EXTENSION_SUFFIXES):
            installed = candidate
            break
    if installed is not None:
        return ImportError(f"pyposert: Python imported the unbuilt source folder {here} instead of the installed "
                           f"pyposert ({installed}): run Python from another folder than {os.path.dirname(here)}")
    return ImportError(f"pyposert: the compiled module pyposert._C is missing in {here}: install pyposert "
                       f"(`pip install .[runtime]`, or `make demo` / `make test` in the checkout, which build it)")


try:
    from . import _C
except ImportError:  # pragma: no cover - only when the package was not built
    import glob as _glob
    import os as _os

    if _glob.glob(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "_C.*[!i]")):
        raise  # it is there but does not load: the original error says why
    raise _missing_native_module() from None

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
