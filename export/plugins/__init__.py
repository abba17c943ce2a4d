"""pyposert's TensorRT plugins: ahead-of-time ``tensorrt.plugin`` definitions whose kernels are
PTX compiled from the ``*_aot.cu`` files beside them (so engines embed their kernels and need
no plugin library, and no Python, at run time).

Layout (like TensorRT's own plugin/<name>/): one folder per plugin with the kernel
(``<name>_aot.cu``), the TensorRT definition (``plugin.py``: register / autotune / aot_impl)
and a README (inputs, outputs, shapes, attributes).

    pose_heatmap/     pyposert::PoseHeatmap     keypoints [B,18,2] x2 -> float32 [B,36,H,W]
    fused_attention/  pyposert::FusedAttention  q [B,N,Dk], k [B,N,Dk], v [B,N,Dv] -> [B,N,Dv]
    warp/             pyposert::Warp            image [B,C,Hs,Ws], keypoints [B,18,2] x2 -> [B,C,H,W], [B,1,H,W]

This module needs neither TensorRT nor a GPU: it finds nvcc and compiles (and caches) the
PTX. :func:`register_plugins` imports the definitions, which needs TensorRT >= 10.9
(``tensorrt.plugin`` with ``aot_impl``); call it before parsing an ONNX graph that uses them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pyposert.errors import BackendUnavailable

__all__ = [
    "CSRC",
    "PLUGINS",
    "PluginSource",
    "compile_all",
    "compile_ptx",
    "default_cache_dir",
    "find_nvcc",
    "float_bits",
    "plugin_ptx",
    "register_plugins",
]

HERE = Path(__file__).resolve().parent
CSRC = HERE.parent.parent / "csrc"  # the shared kernels (attention_kernel.cuh, heatmaps_kernel.cuh) and headers


@dataclass(frozen=True)
class PluginSource:
    """One plugin: its TensorRT id, folder, kernel source and the PTX entry points it defines."""

    plugin_id: str
    folder: str
    source: str
    kernels: tuple[str, ...]

    @property
    def path(self) -> Path:
        return HERE / self.folder / self.source


PLUGINS: dict[str, PluginSource] = {
    "pyposert::PoseHeatmap": PluginSource("pyposert::PoseHeatmap", "pose_heatmap", "pose_heatmap_aot.cu",
                                          ("pyposert_pose_heatmap_f32",)),
    "pyposert::FusedAttention": PluginSource(
        "pyposert::FusedAttention", "fused_attention", "fused_attention_aot.cu",
        tuple(f"pyposert_fused_attention_{t}_{tile}" for t in ("f32", "f16") for tile in ("bd32", "bd64", "narrow"))),
    "pyposert::Warp": PluginSource("pyposert::Warp", "warp", "warp_aot.cu", ("pyposert_warp_f32", "pyposert_warp_f16")),
}

NVCC_FLAGS: tuple[str, ...] = ("-std=c++17", "-O3")


def find_nvcc() -> Path:
    """nvcc from $CUDA_HOME/bin, $CUDA_PATH/bin or PATH; BackendUnavailable if none."""
    for env in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(env)
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return Path(root) / "bin" / "nvcc"
    found = shutil.which("nvcc")
    if found:
        return Path(found)
    raise BackendUnavailable(
        "nvcc (the CUDA toolkit compiler) was not found on PATH, $CUDA_HOME or $CUDA_PATH: it compiles the "
        "TensorRT plugin kernels to PTX at export time. Install the CUDA toolkit "
        "(https://developer.nvidia.com/cuda-downloads) and put its bin/ on PATH.")


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/pyposert/ptx (or ~/.cache/pyposert/ptx)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pyposert" / "ptx"


def _nvcc_version(nvcc: Path) -> str:
    result = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip().splitlines()[-1] if result.returncode == 0 and result.stdout.strip() else "unknown"


def compile_ptx(plugin: PluginSource, arch: str = "compute_75", cache_dir: Path | None = None,
                nvcc: Path | None = None) -> str:
    """PTX text of ``plugin``'s kernels for virtual architecture ``arch`` (e.g. "compute_90").

    The result is cached under ``cache_dir`` keyed by the SHA-256 of the source, the csrc
    headers, the nvcc version, ``arch`` and the flags, so a re-export compiles nothing.
    PTX is JIT-compiled by the driver for the GPU it runs on (any compute capability >= arch);
    the driver must know the PTX ISA version this nvcc emits.

    Raises BackendUnavailable without nvcc, RuntimeError with nvcc's output if it fails.
    """
    if not arch.startswith("compute_"):
        raise ValueError(f"arch must be a virtual architecture such as 'compute_90', got {arch!r}")
    nvcc = nvcc or find_nvcc()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = hashlib.sha256()
    headers = sorted([*CSRC.glob("*.h"), *CSRC.glob("*.cuh")])  # the kernels live in the .cuh files
    for part in (plugin.path.read_bytes(), *(h.read_bytes() for h in headers),
                 _nvcc_version(nvcc).encode(), arch.encode(), " ".join(NVCC_FLAGS).encode()):
        key.update(hashlib.sha256(part).digest())
    cached = cache / f"{plugin.folder}-{arch}-{key.hexdigest()[:24]}.ptx"
    if cached.is_file():
        return cached.read_text()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    cmd = [str(nvcc), "--ptx", f"-arch={arch}", *NVCC_FLAGS, f"-I{CSRC}", str(plugin.path), "-o", str(tmp)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"nvcc failed to compile {plugin.path} to PTX ({' '.join(cmd)}):\n"
                           f"{result.stdout}{result.stderr}")
    ptx = tmp.read_text()
    missing = [k for k in plugin.kernels if f".entry {k}(" not in ptx]
    if missing:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"PTX of {plugin.path} lacks the entry points {missing}")
    os.replace(tmp, cached)  # atomic: concurrent exports never read a half-written file
    return ptx


def compile_all(arch: str = "compute_75", cache_dir: Path | None = None) -> dict[str, str]:
    """{plugin id: PTX} for every plugin."""
    nvcc = find_nvcc()
    return {pid: compile_ptx(p, arch, cache_dir, nvcc) for pid, p in PLUGINS.items()}


_ptx: dict[str, str] = {}  # {plugin id: PTX} handed over by register_plugins


def plugin_ptx(plugin_id: str) -> str:
    """The PTX the plugin ``plugin_id`` embeds in the engines built next (its aot_impl asks)."""
    if plugin_id not in _ptx:
        raise RuntimeError(f"{plugin_id} has no PTX: call export.plugins.register_plugins(ptx) first")
    return _ptx[plugin_id]


def float_bits(value: float) -> int:
    """The IEEE-754 float32 bit pattern of ``value`` as a signed int32 (AOT kernels take int32
    scalars only, so float attributes travel this way and the kernel reads __int_as_float)."""
    return struct.unpack("<i", struct.pack("<f", float(value)))[0]


def register_plugins(ptx: dict[str, str]) -> None:
    """Register the plugins with TensorRT's plugin registry (via ``tensorrt.plugin``), handing
    each its PTX. Idempotent per process; needs TensorRT >= 10.9."""
    _ptx.update({pid: ptx[pid] for pid in PLUGINS})
    from .fused_attention import plugin as _fused_attention  # noqa: F401 - importing registers
    from .pose_heatmap import plugin as _pose_heatmap  # noqa: F401
    from .warp import plugin as _warp  # noqa: F401
