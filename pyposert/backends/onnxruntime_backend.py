"""ONNX Runtime backend: the first-class CPU path (and ONNX Runtime's CUDA provider on request).

Runs the standard-op ``model.onnx`` (heatmap contract: ``source_image`` [B, 3, H, W] RGB in
[-1, 1] + ``pose_heatmaps`` [B, 36, H, W] -> ``image`` [B, 3, H, W] in [-1, 1], float32; or the
completion contract of :mod:`pyposert.completion`: six inputs -> ``parsing`` and ``image``).
Nothing below depends on the contract: inputs and outputs are bound by name.

Tuned for latency at batch 1: all graph optimisations, sequential execution (one frame's
operators one after another; the parallelism is inside each operator, on ``threads`` intra-op
threads, by default the physical cores), and pre-allocated I/O binding: inputs are bound by
address (no copy), outputs are numpy buffers allocated once per batch size and thread and
bound once. ONNX Runtime releases the GIL while it runs, so several threads overlap.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..errors import BackendUnavailable, PlanError
from ..safety import check_onnx, open_regular
from . import ModelFile, TensorSpec, contract_kind, parse_device

__all__ = ["OnnxRuntimeBackend", "availability", "open_backend", "physical_cores"]

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16"}
_MAX_CACHED_BATCHES = 4  # output buffers kept per thread; video uses one batch size


def _import_ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendUnavailable(
            f"onnxruntime is not installed ({exc}): pip install onnxruntime (or pip install pyposert[runtime])"
        ) from None
    return ort


def physical_cores() -> int:
    """Physical CPU cores this process may use (hyper-threads share a core's FPU, so more
    intra-op threads than cores only adds contention). Falls back to the logical count."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)
    cores = set()
    for cpu in allowed:
        base = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((base.joinpath("physical_package_id").read_text().strip(),
                       base.joinpath("core_id").read_text().strip()))
        except OSError:
            return max(len(allowed), 1)
    return max(len(cores), 1)


def availability() -> tuple[str, bool, str]:
    """("onnxruntime", available, reason) for backends_report()."""
    try:
        ort = _import_ort()
    except BackendUnavailable as exc:
        return "onnxruntime", False, str(exc)
    providers = ", ".join(ort.get_available_providers())
    return "onnxruntime", True, (f"onnxruntime {ort.__version__}; providers: {providers}; "
                                 f"{physical_cores()} physical CPU cores")


def open_backend(model: ModelFile, *, device: Optional[str] = None, threads: Optional[int] = None,
                 strict: bool = True) -> "OnnxRuntimeBackend":
    """Open ``model`` with ONNX Runtime (the bundle's "onnx" payload, or a bare .onnx path)."""
    ort = _import_ort()
    if model.kind == "bundle":
        names = model.payload_names("onnx")
        if not names:
            raise BackendUnavailable(f"the bundle {model.path.name} has no 'onnx' payload (the standard-op "
                                     f"graph ONNX Runtime runs); re-export it with one")
        source = model.read_payload(names[0])
        where = f"{model.path.name}:{names[0]}"
    elif model.kind == "onnx":
        # Read here (regular files only) and handed over as bytes, after the same check as a
        # bundle's graph: ONNX Runtime never opens a path the model names.
        with open_regular(model.path) as f:
            source = f.read()
        where = model.path.name
    else:
        message = f"{model.path} is neither a pyposert bundle nor an .onnx model"
        if strict:
            raise PlanError(message)
        raise BackendUnavailable(message)
    return OnnxRuntimeBackend(source, where=where, device=device, threads=threads, ort=ort)


class OnnxRuntimeBackend:
    """ONNX Runtime session behind the Backend protocol (see pyposert.backends.Backend)."""

    name = "onnxruntime"

    def __init__(self, model: Union[bytes, str], *, where: str = "model", device: Optional[str] = None,
                 threads: Optional[int] = None, ort: Any = None) -> None:
        ort = ort or _import_ort()
        if isinstance(model, str):  # a path: read it, so the external-data check sees what ORT gets
            with open_regular(model) as f:
                model = f.read()
        check_onnx(bytes(model), where)  # no external data: every weight comes from these checked bytes
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be None or an integer >= 1, got {threads!r}")
        kind, index = parse_device(device)
        if kind == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailable(
                    "ONNX Runtime has no CUDAExecutionProvider here (install onnxruntime-gpu with a matching "
                    f"CUDA); available: {ort.get_available_providers()}")
            providers: list[Any] = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
            self.device = f"cuda:{index}"
        else:
            providers = ["CPUExecutionProvider"]
            self.device = "cpu"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or physical_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: warnings about unused initialisers are noise here
        try:
            self._session = ort.InferenceSession(model, sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own pybind exception types (InvalidProtobuf, Fail, ...)
            raise PlanError(f"ONNX Runtime cannot load {where}: {type(exc).__name__}: {exc}") from None
        self._where = where
        self.threads = options.intra_op_num_threads
        self.input_spec = {i.name: self._spec(i, where) for i in self._session.get_inputs()}
        self.output_spec = {o.name: self._spec(o, where) for o in self._session.get_outputs()}
        self.contract = contract_kind(list(self.input_spec.values()), list(self.output_spec.values()), where)
        self._local = threading.local()

    @staticmethod
    def _spec(arg: Any, where: str) -> TensorSpec:
        dtype = _ORT_TYPES.get(arg.type)
        if dtype is None:
            raise PlanError(f"{where}: tensor {arg.name!r} has type {arg.type}; expected float32 or float16")
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
        return TensorSpec(arg.name, shape, dtype)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """feeds: name -> C-contiguous array [B, ...] of the spec's dtype (one B for all).

        Returns name -> array [B, ...]. The arrays are this thread's output buffers for batch
        size B, overwritten by this thread's next run with the same B: copy to keep them.
        """
        if self._session is None:
            raise RuntimeError("this model was closed (Engine.close()); open a new Engine to run it again")
        batch = self._check_feeds(feeds)
        state = self._state()
        binding = state.binding
        for name, array in feeds.items():
            binding.bind_input(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
        outputs = state.outputs.get(batch)
        if outputs is None or state.bound_batch != batch:
            outputs = self._bind_outputs(state, batch)
        try:
            self._session.run_with_iobinding(binding)
        except Exception as exc:  # ORT's own exception types; the feeds were checked, so the graph is at fault
            raise PlanError(f"ONNX Runtime failed to run {self._where}: {type(exc).__name__}: {exc}") from None
        if outputs:
            return outputs
        # Outputs whose shape the graph does not state: ONNX Runtime allocated them.
        return dict(zip(self.output_spec, binding.copy_outputs_to_cpu()))

    def _check_feeds(self, feeds: dict[str, np.ndarray]) -> int:
        if set(feeds) != set(self.input_spec):
            raise ValueError(f"feeds must be exactly {sorted(self.input_spec)}, got {sorted(feeds)}")
        batch: Optional[int] = None
        for name, array in feeds.items():
            spec = self.input_spec[name]
            ok = (isinstance(array, np.ndarray) and array.dtype == np.dtype(spec.dtype)
                  and array.ndim == len(spec.shape) and array.flags.c_contiguous
                  and all(d is None or d == g for d, g in zip(spec.shape, array.shape)))
            if not ok:
                got = f"{list(array.shape)} {array.dtype}" if isinstance(array, np.ndarray) else type(array).__name__
                raise ValueError(f"feed {spec.describe()} (C-contiguous numpy) expected, got {got}")
            if batch is None:
                batch = int(array.shape[0])
            elif array.shape[0] != batch:
                raise ValueError(f"all feeds must have one batch size, got {batch} and {array.shape[0]} ({name})")
        if not batch:
            raise ValueError("feeds must have a batch size >= 1")
        return batch

    def _state(self) -> Any:
        state = self._local
        if not hasattr(state, "binding"):
            # One IOBinding per thread: bindings are mutable and not safe to share.
            state.binding = self._session.io_binding()
            state.outputs = {}
            state.bound_batch = None
        return state

    def _bind_outputs(self, state: Any, batch: int) -> dict[str, np.ndarray]:
        outputs = state.outputs.get(batch)
        if outputs is None:
            outputs = {}
            for name, spec in self.output_spec.items():
                shape = (batch,) + spec.shape[1:]
                if any(d is None for d in shape):
                    outputs = {}
                    break
                outputs[name] = np.empty(shape, dtype=spec.dtype)
            if len(state.outputs) >= _MAX_CACHED_BATCHES:
                state.outputs.pop(next(iter(state.outputs)))
            state.outputs[batch] = outputs
        state.binding.clear_binding_outputs()
        if outputs:
            for name, array in outputs.items():
                state.binding.bind_output(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
        else:
            for name in self.output_spec:
                state.binding.bind_output(name, "cpu")
        state.bound_batch = batch
        return outputs

    def device_adapter(self) -> None:
        """None: frames run on host arrays (ONNX Runtime's CUDA provider binds host buffers here)."""
        return None

    def close(self) -> None:
        """Drop the session (its memory goes when the last thread's binding goes too)."""
        self._session = None  # type: ignore[assignment]
