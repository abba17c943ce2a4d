"""One view of every array the ops accept: numpy (CPU) or CUDA memory from any producer.

CUDA arrays are read through ``__cuda_array_interface__`` (torch, cupy, numba, ...) or,
failing that, DLPack (``__dlpack__`` / ``__dlpack_device__``, e.g. JAX). CPU objects that are
not numpy arrays but speak DLPack (a CPU torch tensor) are viewed with ``np.from_dlpack``
without a copy. Nothing here imports torch or cupy; producers are recognised by module name.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

# DLPack device types (dlpack.h).
_DL_CPU = 1
_DL_CUDA = 2
_DL_CUDA_MANAGED = 13

_TYPESTR_TO_DTYPE = {"<f4": "float32", "<f2": "float16", "|u1": "uint8", "<u1": "uint8"}
_DLPACK_TO_DTYPE = {(2, 32): "float32", (2, 16): "float16", (1, 8): "uint8"}
_ITEMSIZE = {"float32": 4, "float16": 2, "uint8": 1}


@dataclass(slots=True)
class ArrayInfo:
    """What the ops need to know about an argument, wherever its memory lives.

    ``strides`` are in bytes, as numpy reports them. ``device`` is ``"cpu"`` or ``"cuda"``.
    ``owner`` is the original object (kept alive while its address is in use).
    """

    name: str
    owner: Any
    device: str
    device_id: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: str  # "float32" | "float16" | "uint8" | numpy's name for anything else
    data: int  # address of element 0
    numpy: Optional[np.ndarray] = None  # the CPU view, when device == "cpu"
    keepalive: Any = None  # e.g. a DLPack capsule that must outlive the call
    contiguous: Optional[bool] = None  # known up front for numpy arrays

    @property
    def c_contiguous(self) -> bool:
        """Row-major and packed. Empty arrays are contiguous; strides of size-1 axes are
        ignored (numpy and torch leave them arbitrary)."""
        if self.contiguous is not None:
            return self.contiguous
        if any(s == 0 for s in self.shape):
            return True
        expected = _c_strides(self.shape, _ITEMSIZE.get(self.dtype, 0))
        return all(n == 1 or s == e for n, s, e in zip(self.shape, self.strides, expected))

    def describe(self) -> str:
        dims = ", ".join(str(s) for s in self.shape)
        where = "cpu" if self.device == "cpu" else f"cuda:{self.device_id}"
        return f"[{dims}] {self.dtype} on {where}"


def _c_strides(shape: Sequence[int], itemsize: int) -> tuple[int, ...]:
    strides = []
    step = itemsize
    for size in reversed(shape):
        strides.append(step)
        step *= max(int(size), 1)
    return tuple(reversed(strides))


def _producer(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def array_info(obj: Any, name: str) -> ArrayInfo:
    """Describe ``obj`` or raise ValueError saying what was expected and what was given."""
    if isinstance(obj, np.ndarray):
        return _numpy_info(obj, name, owner=obj)
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is not None:
        return _cai_info(obj, cai, name)
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        device_type, device_id = obj.__dlpack_device__()
        if int(device_type) == _DL_CPU:
            return _numpy_info(np.from_dlpack(obj), name, owner=obj)
        if int(device_type) in (_DL_CUDA, _DL_CUDA_MANAGED):
            return _dlpack_cuda_info(obj, name, int(device_id))
        raise ValueError(f"{name}: expected a CPU or CUDA array, got a DLPack device type {device_type}")
    raise ValueError(
        f"{name}: expected a numpy array or a CUDA array (__cuda_array_interface__ or DLPack), "
        f"got {type(obj).__name__}"
    )


# dtype -> name without going through str(dtype), which costs microseconds per call.
_NUMPY_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16", np.dtype(np.uint8): "uint8"}


def _numpy_info(arr: np.ndarray, name: str, owner: Any) -> ArrayInfo:
    # The CPU kernels take the ndarray itself; `data` (the address) is not needed there.
    return ArrayInfo(name, owner, "cpu", -1, arr.shape, arr.strides, _NUMPY_NAMES.get(arr.dtype) or str(arr.dtype),
                     0, numpy=arr, contiguous=arr.flags.c_contiguous)


def _cai_info(obj: Any, cai: dict, name: str) -> ArrayInfo:
    shape = tuple(int(s) for s in cai["shape"])
    typestr = str(cai["typestr"])
    dtype = _TYPESTR_TO_DTYPE.get(typestr, typestr)
    itemsize = int(typestr[2:]) if typestr[2:].isdigit() else 0
    strides = cai.get("strides")
    strides = _c_strides(shape, itemsize) if strides is None else tuple(int(s) for s in strides)
    data = int(cai["data"][0]) if cai.get("data") else 0
    return ArrayInfo(name, obj, "cuda", _device_of_cuda_object(obj), shape, strides, dtype, data)


def _dlpack_cuda_info(obj: Any, name: str, device_id: int) -> ArrayInfo:
    from . import _C

    capsule = obj.__dlpack__()
    d = _C.dlpack_describe(capsule)
    dtype = _DLPACK_TO_DTYPE.get((d["type_code"], d["bits"]), f"dlpack({d['type_code']},{d['bits']})")
    itemsize = d["bits"] // 8
    shape = tuple(int(s) for s in d["shape"])
    strides = d["strides"]
    strides = _c_strides(shape, itemsize) if strides is None else tuple(int(s) * itemsize for s in strides)
    return ArrayInfo(name, obj, "cuda", device_id, shape, strides, dtype, int(d["data"]), keepalive=capsule)


def _device_of_cuda_object(obj: Any) -> int:
    device = getattr(obj, "device", None)
    index = getattr(device, "index", None)  # torch.device
    if isinstance(index, int):
        return index
    device_id = getattr(device, "id", None)  # cupy.cuda.Device
    return int(device_id) if isinstance(device_id, int) else 0


def stream_handle(stream: Any, like: ArrayInfo) -> int:
    """The cudaStream_t (as int) to launch on.

    ``stream`` may be an int handle, a torch.cuda.Stream (``.cuda_stream``), a cupy Stream
    (``.ptr``), or None: then the current stream of the array's producer (torch or cupy,
    if that module is already imported), else the legacy default stream (0).
    """
    if stream is not None:
        for attr in ("cuda_stream", "ptr", "handle"):
            value = getattr(stream, attr, None)
            if isinstance(value, int):
                return value
        if isinstance(stream, int):
            return stream
        raise ValueError(f"stream: expected an int handle, a torch or cupy stream, got {type(stream).__name__}")
    producer = _producer(like.owner)
    if producer == "torch" and "torch" in sys.modules:
        torch = sys.modules["torch"]
        return int(torch.cuda.current_stream(like.device_id).cuda_stream)
    if producer == "cupy" and "cupy" in sys.modules:
        return int(sys.modules["cupy"].cuda.get_current_stream().ptr)
    return 0


def empty_like_producer(like: ArrayInfo, shape: tuple[int, ...], dtype: str, name: str) -> Any:
    """Allocate a CUDA output with the producer of ``like`` (torch or cupy)."""
    producer = _producer(like.owner)
    if producer == "torch":
        torch = sys.modules["torch"]
        return torch.empty(shape, dtype=getattr(torch, dtype), device=like.owner.device)
    if producer == "cupy":
        cupy = sys.modules["cupy"]
        with cupy.cuda.Device(like.device_id):
            return cupy.empty(shape, dtype=dtype)
    raise ValueError(
        f"{name}: cannot allocate CUDA memory for arrays from {producer!r}; pass out= "
        f"(a C-contiguous {dtype} CUDA array of shape {list(shape)})"
    )
