"""TensorRT backend (NVIDIA GPUs): the lowest-latency path. Written to the documented TensorRT
11.x Python API and cuda-python's ``cuda.bindings.runtime``; UNTESTED in this repository (no
GPU or TensorRT on its CI machines): its tests skip with the reason, and nothing here ever
fakes a result. Where TensorRT, cuda-python, a CUDA device or pyposert's CUDA kernels are
missing, opening it raises BackendUnavailable saying which.

One frame on the device (DeviceFrames), for the keypoint contract (``source_image``
[B, 3, H, W], ``source_keypoints`` / ``target_keypoints`` [B, 18, 2] (x, y) model pixels,
missing -1 -> ``image`` [B, 3, H, W]; heatmaps rasterised inside the engine by the
PoseHeatmap plugin) or the heatmap contract (``pose_heatmaps`` [B, 36, H, W], rasterised here
by pyposert's CUDA kernel):

    load_source (once per photo): uint8 upload -> ops.to_model_input on the device
        (letterbox + normalise) -> cached device tensors (+ source heatmaps)
    render (per frame): target keypoints (pinned host) -> device -> [target heatmaps] ->
        execute_async_v3 -> ops.from_model_output (uint8 HWC BGR, source or model size) ->
        pinned host; the whole sequence is captured in a CUDA graph after one warm-up run and
        replayed; it is recaptured when the batch size, the source size or the output size
        changes.

A completion engine (the six inputs of :mod:`pyposert.completion` -> ``parsing``, ``image``)
runs through the generic host path, ``run(feeds)``: every tensor is bound by name, so nothing
there knows the contract; its device-frame path (load_source / render) is pose transfer only.

One execution context and one private non-default stream per backend (per Engine); a lock
serialises callers, since a context runs one inference at a time. pyposert.ops runs on
device memory through :class:`DeviceArray`, a cudaMalloc'd buffer exposing
``__cuda_array_interface__``.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from .. import ops
from ..errors import BackendUnavailable, PlanError
from ..model import CONTRACTS
from . import (OUTPUT_NAME, HeatmapSpec, ModelFile, TensorSpec, contract_kind, module_installed, parse_device)

if TYPE_CHECKING:
    from ..ops import Letterbox

__all__ = ["DeviceArray", "TensorRTBackend", "availability", "open_backend", "pinned_empty"]

_MAX_FRAME_GRAPHS = 4

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
@dataclass(eq=False)
class _DeviceSource:
    box: "Letterbox"
    model_input: DeviceArray  # [3, H, W] engine dtype, RGB in [-1, 1]
    keypoints: DeviceArray  # float32 [1, 18, 2] (x, y) model pixels, missing -1
    maps: Optional[DeviceArray]  # [1, 18, H, W] source heatmaps (heatmap contract only)
    heatmap: HeatmapSpec


@dataclass(eq=False)
class _Frame:
    """A captured frame for one (batch, source box, output size)."""

    pixels: DeviceArray  # uint8 [B, h, w, 3]
    host_pixels: np.ndarray  # pinned uint8 [B, h, w, 3]
    graph_exec: Any = None


@dataclass(eq=False)
class _Slot:
    """Device and pinned buffers for one batch size, bound to the context by address."""

    batch: int
    device: dict[str, DeviceArray]
    host: dict[str, np.ndarray]
    target: DeviceArray  # float32 [B, 18, 2], the heatmap contract's keypoint scratch
    host_target: np.ndarray  # pinned float32 [B, 18, 2]
    frames: dict[Any, _Frame] = field(default_factory=dict)
    active: Any = None  # weakref to the _DeviceSource copied into the inputs


class TensorRTBackend:
    """A deserialised TensorRT engine behind the Backend protocol and DeviceFrames."""

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
        self._slots: dict[int, _Slot] = {}
        self._bound_batch: Optional[int] = None

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

    def _slot(self, batch: int) -> _Slot:
        """Buffers for ``batch``, bound to the context (rebinding drops captured graphs: a graph
        replays the shapes and addresses it was captured with)."""
        if batch < 1 or batch > self.max_batch:
            raise ValueError(f"batch size must be in [1, {self.max_batch}] for this engine, got {batch}")
        slot = self._slots.get(batch)
        if slot is None:
            cudart = self._cudart
            specs = {**self.input_spec, **self.output_spec}
            device = {n: DeviceArray(cudart, self._shape(s, batch), s.dtype) for n, s in specs.items()}
            host = {n: pinned_empty(cudart, self._shape(s, batch), s.dtype) for n, s in specs.items()}
            joints = 18
            slot = _Slot(batch, device, host, DeviceArray(cudart, (batch, joints, 2), np.float32),
                         pinned_empty(cudart, (batch, joints, 2), np.float32))
            for old in self._slots.values():
                self._drop_frames(old)
            self._slots = {batch: slot}  # one batch size at a time keeps GPU memory bounded
        if self._bound_batch != batch:
            for name, spec in self.input_spec.items():
                if not self._context.set_input_shape(name, self._shape(spec, batch)):
                    raise ValueError(f"TensorRT rejected the shape {self._shape(spec, batch)} for {name}")
            for name, array in slot.device.items():
                if not self._context.set_tensor_address(name, array.ptr):
                    raise RuntimeError(f"TensorRT rejected the address of {name}")
            self._drop_frames(slot)
            self._bound_batch = batch
        return slot

    def _drop_frames(self, slot: _Slot) -> None:
        for frame in slot.frames.values():
            if frame.graph_exec is not None:
                self._cudart.cudaGraphExecDestroy(frame.graph_exec)
        slot.frames.clear()

    def _execute(self) -> None:
        if not self._context.execute_async_v3(self._stream_handle):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")

    # ------------------------------------------------------------------ Backend protocol
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Host arrays in (copied through pinned buffers), host arrays out (copies)."""
        if set(feeds) != set(self.input_spec):
            raise ValueError(f"feeds must be exactly {sorted(self.input_spec)}, got {sorted(feeds)}")
        batches = {int(np.shape(a)[0]) for a in feeds.values()}
        if len(batches) != 1:
            raise ValueError(f"all feeds must have one batch size, got {sorted(batches)}")
        with self._lock:
            self._enter()
            slot = self._slot(batches.pop())
            slot.active = None  # the inputs no longer hold a cached source
            for name, array in feeds.items():
                np.copyto(slot.host[name], array, casting="same_kind")
                self._copy(slot.device[name].ptr, slot.host[name].ctypes.data, slot.device[name].nbytes, "h2d")
            self._execute()
            for name in self.output_spec:
                self._copy(slot.host[name].ctypes.data, slot.device[name].ptr, slot.device[name].nbytes, "d2h")
            self._sync()
            return {name: slot.host[name].copy() for name in self.output_spec}

    def close(self) -> None:
        """Free buffers, graphs, context and stream."""
        with self._lock:
            for slot in self._slots.values():
                self._drop_frames(slot)
            self._slots.clear()
            self._bound_batch = None
            if self._stream is not None:
                self._cudart.cudaStreamDestroy(self._stream)
                self._stream = None
            self._context = None

    # ------------------------------------------------------------------ DeviceFrames
    def load_source(self, image: np.ndarray, box: "Letterbox", source_keypoints: np.ndarray,
                    heatmap: HeatmapSpec) -> _DeviceSource:
        """image: uint8 [h, w, 3] BGR; source_keypoints: float32 (18, 2) (x, y) model pixels."""
        if self.contract == "completion":
            raise RuntimeError("a completion engine has no device-frame path: run it with run(feeds)")
        cudart = self._cudart
        h, w = box.height, box.width
        image = np.ascontiguousarray(image)
        kp = np.ascontiguousarray(source_keypoints, dtype=np.float32)[None]
        with self._lock:
            self._enter()
            pixels = DeviceArray(cudart, image.shape, np.uint8)
            self._copy(pixels.ptr, image.ctypes.data, image.nbytes, "h2d")
            dtype = self.input_spec["source_image"].dtype
            model_input = DeviceArray(cudart, (3, h, w), dtype)
            ops.to_model_input(pixels, h, w, dtype=dtype, out=model_input, stream=self._stream_handle)
            keypoints = DeviceArray(cudart, kp.shape, np.float32)
            self._copy(keypoints.ptr, kp.ctypes.data, kp.nbytes, "h2d")
            maps = None
            if self.contract == "heatmaps":
                pose_dtype = self.input_spec["pose_heatmaps"].dtype
                maps = DeviceArray(cudart, (1, kp.shape[1], h, w), pose_dtype)
                ops.heatmaps(keypoints, h, w, mode=heatmap.mode, sigma=heatmap.sigma, radius=heatmap.radius,
                             dtype=pose_dtype, out=maps, stream=self._stream_handle)
            self._sync()  # `image` (pageable) and `pixels` must outlive the copies
        return _DeviceSource(box, model_input, keypoints, maps, heatmap)

    def render(self, source: _DeviceSource, target_keypoints: np.ndarray, *, unletterbox: bool) -> list[np.ndarray]:
        """target_keypoints: float32 [B, 18, 2] (x, y) model pixels -> B uint8 [h, w, 3] BGR."""
        if self.contract == "completion":
            raise RuntimeError("a completion engine has no device-frame path: run it with run(feeds)")
        tgt = np.ascontiguousarray(target_keypoints, dtype=np.float32)
        with self._lock:
            self._enter()
            slot = self._slot(int(tgt.shape[0]))
            self._activate(slot, source)
            np.copyto(slot.host_target, tgt)
            box = source.box
            key = (box, bool(unletterbox), source.heatmap)
            frame = slot.frames.get(key)
            if frame is None:
                out_h, out_w = (box.src_height, box.src_width) if unletterbox else (box.height, box.width)
                shape = (slot.batch, out_h, out_w, 3)
                frame = _Frame(DeviceArray(self._cudart, shape, np.uint8), pinned_empty(self._cudart, shape, np.uint8))
                self._enqueue_frame(slot, frame, box, bool(unletterbox), source.heatmap)  # warm-up, not captured
                self._sync()
                frame.graph_exec = self._capture(lambda: self._enqueue_frame(slot, frame, box, bool(unletterbox),
                                                                             source.heatmap))
                if len(slot.frames) >= _MAX_FRAME_GRAPHS:
                    old = slot.frames.pop(next(iter(slot.frames)))
                    self._cudart.cudaGraphExecDestroy(old.graph_exec)
                slot.frames[key] = frame
            _check(self._cudart, self._cudart.cudaGraphLaunch(frame.graph_exec, self._stream), "cudaGraphLaunch")
            self._sync()
            return [frame.host_pixels[b].copy() for b in range(slot.batch)]

    def _activate(self, slot: _Slot, source: _DeviceSource) -> None:
        """Copy the source's cached device tensors into the bound inputs (device to device, only
        when the source changes): the graph keeps fixed addresses, the source moves in."""
        if slot.active is not None and slot.active() is source:
            return
        image = slot.device["source_image"]
        per_image = source.model_input.nbytes
        for b in range(slot.batch):
            self._copy(image.ptr + b * per_image, source.model_input.ptr, per_image, "d2d")
            if self.contract == "heatmaps":
                pose = slot.device["pose_heatmaps"]
                per_pose = pose.nbytes // slot.batch
                self._copy(pose.ptr + b * per_pose, source.maps.ptr, source.maps.nbytes, "d2d")  # channels 0..17
            else:
                kp = slot.device["source_keypoints"]
                self._copy(kp.ptr + b * source.keypoints.nbytes, source.keypoints.ptr, source.keypoints.nbytes, "d2d")
        slot.active = weakref.ref(source)

    def _enqueue_frame(self, slot: _Slot, frame: _Frame, box: "Letterbox", unletterbox: bool,
                       heatmap: HeatmapSpec) -> None:
        """Everything of one frame, enqueued on the private stream (captured once, replayed)."""
        stream = self._stream_handle
        if self.contract == "keypoints":
            dst = slot.device["target_keypoints"]
            self._copy(dst.ptr, slot.host_target.ctypes.data, dst.nbytes, "h2d")
        else:
            self._copy(slot.target.ptr, slot.host_target.ctypes.data, slot.target.nbytes, "h2d")
            pose = slot.device["pose_heatmaps"]
            joints, h, w = slot.target.shape[1], pose.shape[2], pose.shape[3]
            # The target half [B, 18:36] of every sample, in one launch.
            ops.heatmaps(slot.target, h, w, mode=heatmap.mode, sigma=heatmap.sigma, radius=heatmap.radius,
                         dtype=pose.dtype.name, out=pose, channel_offset=joints, stream=stream)
        self._execute()
        image = slot.device[OUTPUT_NAME]
        for b in range(slot.batch):
            ops.from_model_output(image.view((b,), image.shape[1:]), box, unletterbox=unletterbox,
                                  out=frame.pixels.view((b,), frame.pixels.shape[1:]), stream=stream)
        self._copy(frame.host_pixels.ctypes.data, frame.pixels.ptr, frame.pixels.nbytes, "d2h")

    def _capture(self, enqueue: Any) -> Any:
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
