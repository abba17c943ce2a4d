"""TensorRT backend (NVIDIA GPUs): the lowest-latency path. Written to the documented TensorRT
11.x Python API and cuda-python's ``cuda.bindings.runtime``; UNTESTED in this repository (no
GPU or TensorRT on its CI machines): its tests skip with the reason, and nothing here ever
fakes a result. Where TensorRT, cuda-python, a CUDA device or pyposert's CUDA kernels are
missing, opening it raises BackendUnavailable saying which.

Whole frames stay on the GPU through :mod:`pyposert.backends.device_frames`, the pipeline
every GPU backend shares; this module supplies only its adapter (:meth:`TensorRTBackend.device_adapter`):
cudaMalloc'd memory, copies on the private stream, ``execute_async_v3`` on buffers bound by
address, and stream capture into CUDA graphs. A graph replays the binding it was captured
under, so one captured before the context was bound to other buffers (another batch size, or
:meth:`TensorRTBackend.run`) is stale and captured again. Keypoint-contract engines rasterise
their heatmaps inside the engine (the PoseHeatmap plugin); heatmap-contract engines take them
from pyposert's CUDA kernel.

Every contract (completion too) runs through the host path, ``run(feeds)``: every tensor is
bound by name, so nothing there knows the contract.

One execution context and one private non-default stream per backend (per Engine); a lock
serialises callers, since a context runs one inference at a time. pyposert.ops runs on
device memory through :class:`DeviceArray`, a cudaMalloc'd buffer exposing
``__cuda_array_interface__``.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np

from ..errors import BackendUnavailable, PlanError
from ..model import CONTRACTS
from . import ModelFile, TensorSpec, contract_kind, module_installed, parse_device

__all__ = ["DeviceArray", "TensorRTBackend", "availability", "open_backend", "pinned_empty"]

INSTALL_HINT = ("On a machine with an NVIDIA GPU: pip install tensorrt-cu12 (CUDA 12) or tensorrt-cu13 "
                "(their -libs packages fetch NVIDIA's libraries from NVIDIA's own package index at install time, so PyPI "
                "alone is not enough); the GPU runtime also needs cuda-python (pip install pyposert[gpu])")


# ------------------------------------------------------------------ imports and checks
def _import_tensorrt() -> Any:
    if not module_installed("tensorrt"):
        raise BackendUnavailable(f"TensorRT is not installed. {INSTALL_HINT}")
    try:
        import tensorrt as trt
    except Exception as exc:  # installed but its libraries (libnvinfer) do not load
        raise BackendUnavailable(f"TensorRT is installed but does not load: {type(exc).__name__}: {exc}") from None
    return trt


def _import_cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]  # older cuda-python layout
        except ImportError:
            raise BackendUnavailable("cuda-python is not installed: pip install cuda-python (pyposert[gpu]); "
                                     "the TensorRT backend uses it for streams, memory and CUDA graphs") from None
    return cudart


def _check(cudart: Any, result: Any, what: str) -> Any:
    """cuda-python returns (cudaError_t, *values): raise on error, return the value(s)."""
    err, values = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        _, text = cudart.cudaGetErrorString(err)
        raise RuntimeError(f"{what} failed: {text.decode() if isinstance(text, bytes) else text} ({err})")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _device_properties(cudart: Any, index: int) -> tuple[str, int, int]:
    count = _check(cudart, cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
    if index >= count:
        raise BackendUnavailable(f"CUDA device {index} requested, {count} present")
    prop = _check(cudart, cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
    return name, int(prop.major), int(prop.minor)


def availability() -> tuple[str, bool, str]:
    """("tensorrt", available, reason) for backends_report()."""
    try:
        trt = _import_tensorrt()
        cudart = _import_cudart()
        _, _, reason = _usable_device(cudart, 0)
    except BackendUnavailable as exc:
        return "tensorrt", False, str(exc)
    except RuntimeError as exc:
        return "tensorrt", False, f"no usable CUDA device: {exc}"
    return "tensorrt", True, f"TensorRT {trt.__version__} on {reason}"


def _usable_device(cudart: Any, index: int) -> tuple[int, int, str]:
    """(major, minor, description) of device ``index``, or BackendUnavailable."""
    from .. import build_info

    try:
        name, major, minor = _device_properties(cudart, index)
    except RuntimeError as exc:
        raise BackendUnavailable(f"no usable CUDA device: {exc}") from None
    info = build_info()
    if not info["cuda_compiled"]:
        raise BackendUnavailable("pyposert was built without its CUDA kernels (no nvcc at build time, or "
                                 "POSERT_WITH_CUDA=OFF): the GPU pre/post-processing needs them; rebuild with nvcc")
    if not info["cuda_available"]:
        raise BackendUnavailable(f"pyposert's CUDA kernels cannot run: {info['cuda']['reason']}")
    return major, minor, f"{name} (sm_{major}{minor})"


# ------------------------------------------------------------------ opening
def open_backend(model: ModelFile, *, device: Optional[str] = None, threads: Optional[int] = None,
                 strict: bool = True) -> "TensorRTBackend":
    """Open the bundle's TensorRT engine for this GPU and TensorRT version. Engines are native
    code: they are deserialised only from a bundle, after the manifest's SHA-256 of the engine
    checks (a bare engine file is refused when the model is loaded).

    Raises BackendUnavailable when this machine cannot run TensorRT (or, with ``strict``
    False, when the bundle has no engine for this GPU); PlanError when the engine bytes are
    unusable (or, with ``strict``, when no engine in the bundle matches this GPU/TensorRT).
    """
    kind, index = parse_device(device)
    if kind == "cpu":
        raise BackendUnavailable("TensorRT runs on a CUDA device, device='cpu' was requested")
    trt = _import_tensorrt()
    cudart = _import_cudart()
    major, minor, _ = _usable_device(cudart, index)
    if model.kind == "bundle":
        if not model.payload_names("tensorrt"):
            raise BackendUnavailable(f"the bundle {model.path.name} has no TensorRT engine; build one for this GPU "
                                     f"with the export tools (export/), or use backend='onnxruntime'")
        try:
            name = model.bundle.tensorrt_engine_for(f"{major}.{minor}", trt.__version__)
        except PlanError as exc:
            if strict:
                raise
            raise BackendUnavailable(str(exc)) from None
        data, where = model.read_payload(name), f"{model.path.name}:{name}"  # hash-checked
    elif model.kind == "onnx":
        raise BackendUnavailable(f"{model.path.name} is a bare ONNX model; TensorRT runs engines: build one with "
                                 f"the export tools (export/) into a .plan bundle")
    else:
        raise PlanError(f"{model.path} is not a .plan bundle; TensorRT engines are loaded only from bundles whose "
                        f"hashes check")
    return TensorRTBackend(data, device_index=index, where=where, trt=trt, cudart=cudart)


# ------------------------------------------------------------------ memory
class DeviceArray:
    """C-contiguous device memory from cudaMalloc, visible to pyposert.ops (and any consumer
    of ``__cuda_array_interface__`` v3). Views share the parent's memory and keep it alive."""

    def __init__(self, cudart: Any, shape: Sequence[int], dtype: Any, *, _ptr: int = 0, _parent: Any = None) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self._cudart = cudart
        self._parent = _parent
        if _parent is None:
            ptr = _check(cudart, cudart.cudaMalloc(max(self.nbytes, 1)), f"cudaMalloc({self.nbytes} bytes)")
            self.ptr = int(ptr)
            self._finalizer = weakref.finalize(self, cudart.cudaFree, self.ptr)
        else:
            self.ptr = int(_ptr)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False), "version": 3,
                "strides": None, "stream": None}

    def view(self, start: Sequence[int], shape: Sequence[int]) -> "DeviceArray":
        """A contiguous sub-block: ``start`` indexes the leading axes, ``shape`` is the view's
        shape (its trailing axes must equal this array's, so the block is contiguous)."""
        strides = np.cumprod((1,) + self.shape[:0:-1])[::-1] * self.dtype.itemsize
        offset = int(sum(int(i) * int(s) for i, s in zip(start, strides)))
        return DeviceArray(self._cudart, shape, self.dtype, _ptr=self.ptr + offset, _parent=self)


def pinned_empty(cudart: Any, shape: Sequence[int], dtype: Any) -> np.ndarray:
    """A numpy array in page-locked host memory (cudaMallocHost), so async copies really are
    asynchronous and capturable; freed when the last view of it goes."""
    dt = np.dtype(dtype)
    nbytes = max(int(np.prod(shape, dtype=np.int64)) * dt.itemsize, 1)
    ptr = int(_check(cudart, cudart.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes} bytes)"))
    raw = (ctypes.c_byte * nbytes).from_address(ptr)
    weakref.finalize(raw, cudart.cudaFreeHost, ptr)
    return np.frombuffer(raw, dtype=dt, count=int(np.prod(shape, dtype=np.int64))).reshape(shape)


# ------------------------------------------------------------------ backend
class TensorRTBackend:
    """A deserialised TensorRT engine behind the Backend protocol; :meth:`device_adapter`
    lets :mod:`pyposert.backends.device_frames` keep whole frames on the GPU."""

    name = "tensorrt"

    def __init__(self, engine_bytes: bytes, *, device_index: int = 0, where: str = "engine", trt: Any = None,
                 cudart: Any = None) -> None:
        trt = trt or _import_tensorrt()
        cudart = cudart or _import_cudart()
        self._trt, self._cudart = trt, cudart
        self.device = f"cuda:{device_index}"
        self._device_index = device_index
        _check(cudart, cudart.cudaSetDevice(device_index), "cudaSetDevice")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        if hasattr(self._runtime, "engine_host_code_allowed"):
            # TensorRT's default, said out loud: host code embedded in an engine (the lean runtime
            # of version-compatible engines) is never loaded.
            self._runtime.engine_host_code_allowed = False
        engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if engine is None:
            raise PlanError(f"TensorRT {trt.__version__} cannot deserialise {where} (see its log above): corrupt, "
                            f"built by another TensorRT version or for another GPU, or needing a plugin that is "
                            f"not registered")
        self._engine = engine
        self._context = engine.create_execution_context()
        if self._context is None:
            raise RuntimeError(f"TensorRT could not create an execution context for {where} (out of GPU memory?)")
        self._stream = _check(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._stream_handle = int(self._stream)
        self.input_spec: dict[str, TensorSpec] = {}
        self.output_spec: dict[str, TensorSpec] = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name
            shape = tuple(None if int(d) < 0 else int(d) for d in engine.get_tensor_shape(name))
            spec = TensorSpec(name, shape, dtype)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.input_spec[name] = spec
            else:
                self.output_spec[name] = spec
        self.contract = contract_kind(list(self.input_spec.values()), list(self.output_spec.values()), where)
        # The batch axis is shared by every input: read it off the contract's first input.
        first = self.input_spec[CONTRACTS[self.contract][0][0]]
        self.max_batch = first.shape[0] or int(engine.get_tensor_profile_shape(first.name, 0)[2][0])
        self._lock = threading.Lock()
        self._host: Optional[tuple[int, dict[str, DeviceArray], dict[str, np.ndarray]]] = None  # run()'s buffers
        self._binding: tuple[Any, ...] = ()  # (name, address, shape) of every tensor the context is bound to
        self._epoch = 0  # counts rebindings: a graph captured under an older binding is stale

    # ------------------------------------------------------------------ helpers
    def _copy(self, dst: int, src: int, nbytes: int, kind: str) -> None:
        cudart = self._cudart
        kinds = {"h2d": cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
                 "d2h": cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                 "d2d": cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice}
        _check(cudart, cudart.cudaMemcpyAsync(dst, src, nbytes, kinds[kind], self._stream), "cudaMemcpyAsync")

    def _enter(self) -> None:
        """Make this backend's GPU current on the calling thread (the current device is
        per host thread, and pyposert's kernels launch on the current device)."""
        _check(self._cudart, self._cudart.cudaSetDevice(self._device_index), "cudaSetDevice")

    def _sync(self) -> None:
        _check(self._cudart, self._cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def _shape(self, spec: TensorSpec, batch: int) -> tuple[int, ...]:
        shape = (batch,) + tuple(spec.shape[1:])
        if any(d is None for d in shape):
            raise PlanError(f"TensorRT engine tensor {spec.describe()}: only the batch axis may be dynamic")
        return shape  # type: ignore[return-value]

    def _bind(self, tensors: Mapping[str, DeviceArray]) -> None:
        """Bind every input and output of the engine to a device array (input shapes from
        them); nothing to do when the context is bound so already. A graph captured before a
        rebinding replays the old shapes and addresses: it is stale (:meth:`_TensorRTDevice.is_current`)."""
        binding = tuple((name, array.ptr, array.shape) for name, array in sorted(tensors.items()))
        if binding == self._binding:
            return
        names = set(self.input_spec) | set(self.output_spec)
        if set(tensors) != names:
            raise ValueError(f"the TensorRT engine needs a buffer for each of {sorted(names)}, got {sorted(tensors)}")
        self._binding = ()  # half-bound until every call below succeeded
        self._epoch += 1
        for name in self.input_spec:
            shape = tensors[name].shape
            if not self._context.set_input_shape(name, shape):
                raise ValueError(f"TensorRT rejected the shape {shape} for {name} (batch sizes 1..{self.max_batch})")
        for name, array in tensors.items():
            if not self._context.set_tensor_address(name, array.ptr):
                raise RuntimeError(f"TensorRT rejected the address of {name}")
        self._binding = binding

    def _execute(self) -> None:
        if not self._context.execute_async_v3(self._stream_handle):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")

    def _capture(self, enqueue: Callable[[], None]) -> Any:
        """Capture ``enqueue`` on the private stream into an executable CUDA graph."""
        cudart = self._cudart
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        _check(cudart, cudart.cudaStreamBeginCapture(self._stream, mode), "cudaStreamBeginCapture")
        try:
            enqueue()
        except BaseException:
            cudart.cudaStreamEndCapture(self._stream)  # leave the stream usable
            raise
        graph = _check(cudart, cudart.cudaStreamEndCapture(self._stream), "cudaStreamEndCapture")
        try:
            return _check(cudart, cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        finally:
            cudart.cudaGraphDestroy(graph)

    # ------------------------------------------------------------------ Backend protocol
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Host arrays in (copied through pinned buffers), host arrays out (copies)."""
        if set(feeds) != set(self.input_spec):
            raise ValueError(f"feeds must be exactly {sorted(self.input_spec)}, got {sorted(feeds)}")
        batches = {int(np.shape(a)[0]) for a in feeds.values()}
        if len(batches) != 1:
            raise ValueError(f"all feeds must have one batch size, got {sorted(batches)}")
        batch = batches.pop()
        if batch < 1 or batch > self.max_batch:
            raise ValueError(f"batch size must be in [1, {self.max_batch}] for this engine, got {batch}")
        with self._lock:
            self._enter()
            device, host = self._host_buffers(batch)
            for name, array in feeds.items():
                np.copyto(host[name], array, casting="same_kind")
                self._copy(device[name].ptr, host[name].ctypes.data, device[name].nbytes, "h2d")
            self._bind(device)
            self._execute()
            for name in self.output_spec:
                self._copy(host[name].ctypes.data, device[name].ptr, device[name].nbytes, "d2h")
            self._sync()
            return {name: host[name].copy() for name in self.output_spec}

    def _host_buffers(self, batch: int) -> tuple[dict[str, DeviceArray], dict[str, np.ndarray]]:
        """Device and pinned buffers of every tensor for :meth:`run`, one batch size at a time."""
        if self._host is None or self._host[0] != batch:
            self._host = None  # the old buffers go first: GPU memory stays bounded
            specs = {**self.input_spec, **self.output_spec}
            device = {n: DeviceArray(self._cudart, self._shape(s, batch), s.dtype) for n, s in specs.items()}
            host = {n: pinned_empty(self._cudart, self._shape(s, batch), s.dtype) for n, s in specs.items()}
            self._host = (batch, device, host)
        return self._host[1], self._host[2]

    def device_adapter(self) -> "_TensorRTDevice":
        """This engine's side of the device-frame pipeline (:mod:`pyposert.backends.device_frames`)."""
        return _TensorRTDevice(self)

    def close(self) -> None:
        """Free buffers, context and stream (close the device frames first: their graphs)."""
        with self._lock:
            self._host = None
            self._binding = ()
            if self._stream is not None:
                self._cudart.cudaStreamDestroy(self._stream)
                self._stream = None
            self._context = None


@dataclass(frozen=True)
class _Graph:
    """An instantiated CUDA graph and the binding epoch it was captured under."""

    graph_exec: Any
    epoch: int


class _TensorRTDevice:
    """The TensorRT backend's :class:`~pyposert.backends.device_frames.DeviceAdapter`:
    cudaMalloc'd memory, copies on the backend's private stream, ``execute_async_v3`` on
    buffers bound by address, stream capture into an executable CUDA graph."""

    def __init__(self, backend: TensorRTBackend) -> None:
        self._backend = backend
        self._cudart = backend._cudart
        self.stream = backend._stream_handle

    @contextmanager
    def session(self) -> Iterator[None]:
        with self._backend._lock:
            self._backend._enter()
            yield

    def tensor_dtype(self, name: str) -> str:
        backend = self._backend
        return (backend.input_spec.get(name) or backend.output_spec[name]).dtype

    def allocate(self, shape: Sequence[int], dtype: str) -> DeviceArray:
        return DeviceArray(self._cudart, shape, dtype)

    def pinned(self, shape: Sequence[int], dtype: str) -> np.ndarray:
        return pinned_empty(self._cudart, shape, dtype)

    def copy(self, dst: Any, src: Any) -> None:
        if dst.nbytes != src.nbytes:
            raise ValueError(f"copy of {src.nbytes} bytes into {dst.nbytes}")
        if isinstance(src, np.ndarray):
            self._backend._copy(dst.ptr, src.ctypes.data, dst.nbytes, "h2d")
        elif isinstance(dst, np.ndarray):
            self._backend._copy(dst.ctypes.data, src.ptr, dst.nbytes, "d2h")
        else:
            self._backend._copy(dst.ptr, src.ptr, dst.nbytes, "d2d")

    def view(self, array: DeviceArray, start: Sequence[int], shape: Sequence[int]) -> DeviceArray:
        return array.view(start, shape)

    def execute(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        self._backend._bind({**inputs, **outputs})
        self._backend._execute()

    def capture(self, enqueue: Callable[[], None]) -> _Graph:
        graph_exec = self._backend._capture(enqueue)
        return _Graph(graph_exec, self._backend._epoch)

    def replay(self, graph: _Graph) -> None:
        cudart = self._cudart
        _check(cudart, cudart.cudaGraphLaunch(graph.graph_exec, self._backend._stream), "cudaGraphLaunch")

    def is_current(self, graph: _Graph) -> bool:
        return graph.epoch == self._backend._epoch

    def release(self, graph: _Graph) -> None:
        self._cudart.cudaGraphExecDestroy(graph.graph_exec)

    def synchronize(self) -> None:
        self._backend._sync()
