"""torch backend: runs a bundle's ``torch-export`` program, checked and rebuilt by
:func:`pyposert.safety.sanitize_torch_program` before ``torch.export.load`` sees it (no pickle,
operators only, arithmetic shapes only).

Where it is used: on an NVIDIA GPU without TensorRT (fp16 weights and activations,
channels_last, pyposert's kernels on torch's CUDA tensors, the whole frame in a CUDA graph
through :mod:`pyposert.backends.device_frames`, to which this module supplies only its
adapter), and on the CPU for parity checks (fp32, only when asked for by name:
``backend="torch"``).

The program follows one of the model contracts of :mod:`pyposert.model` (by its input
names: ``source_image`` + ``pose_heatmaps``, or ``source_image`` + ``source_keypoints`` +
``target_keypoints``, or the six completion inputs of :mod:`pyposert.completion`, whose
program returns ``(parsing, image)``). A bundle without a torch-export payload cannot run
here: the network is never rebuilt from Python code at load time. Completion programs run
on host arrays only (no device-frame path).

Programs exported from the training code contain the custom op ``pyposert::attention``;
when the training package has not registered it in this process, this module registers it
with pyposert's fused attention kernel (``pyposert.ops.attention``) behind it.

torch is imported only when this backend is opened. The CUDA path is written for, but has
not been run on, a GPU in this repository's CI: treat it as untested until a GPU job runs
``tests/test_engine.py -m cuda``.
"""

from __future__ import annotations

import io
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np

from ..errors import BackendUnavailable, PlanError
from ..model import contract_outputs
from ..safety import sanitize_torch_program
from . import ModelFile, TensorSpec, contract_kind, module_installed, parse_device
from .device_frames import MAX_GRAPHS, GraphCache, capture_after_warmup

__all__ = ["TorchBackend", "availability", "open_backend"]

_OP_MARKER = b"torch.ops.pyposert."  # how a saved program names our custom ops


def _import_torch() -> Any:
    if not module_installed("torch"):
        raise BackendUnavailable("torch is not installed: pip install torch (the torch backend runs a bundle's "
                                 "torch-export program)")
    import torch

    return torch


def availability() -> tuple[str, bool, str]:
    """("torch", available, reason) for backends_report()."""
    try:
        torch = _import_torch()
    except BackendUnavailable as exc:
        return "torch", False, str(exc)
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return "torch", True, f"torch {torch.__version__} on CUDA ({name}): fp16, CUDA graphs"
    return "torch", True, (f"torch {torch.__version__}, CPU only: used for parity checks when asked for "
                           f"(backend='torch'); the automatic choice needs a CUDA build and device")


def open_backend(model: ModelFile, *, device: Optional[str] = None, threads: Optional[int] = None,
                 strict: bool = True) -> "TorchBackend":
    """Open the bundle's torch-export program on CUDA (or on the CPU when asked for).

    ``threads`` is not applied: torch's CPU thread count is process-wide
    (``torch.set_num_threads``), and this backend's CPU use is for parity checks.
    """
    kind, index = parse_device(device)
    # The cheap reasons first: importing torch costs a second or more.
    if model.kind != "bundle":
        raise BackendUnavailable(f"{model.path.name} is a bare file; the torch backend runs the torch-export "
                                 f"program of a .plan bundle")
    names = model.payload_names("torch-export")
    if not names:
        raise BackendUnavailable(f"the bundle {model.path.name} has no torch program (no 'torch-export' payload); "
                                 f"use backend='onnxruntime', or re-export the bundle with one")
    if not strict and kind is None and _no_cuda_device():
        raise BackendUnavailable("no CUDA device (torch on the CPU is only used when asked for: backend='torch')")
    torch = _import_torch()
    if kind is None:
        if torch.cuda.is_available():
            kind = "cuda"
        elif strict:
            kind = "cpu"
        else:
            raise BackendUnavailable("no CUDA device for torch (torch on the CPU is only used when asked for: "
                                     "backend='torch')")
    if kind == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"torch {torch.__version__} sees no CUDA device (CPU build, or no driver)")
    data = model.read_payload(names[0])
    return TorchBackend(data, device=f"{kind}:{index}" if kind == "cuda" else "cpu",
                        where=f"{model.path.name}:{names[0]}")


def _no_cuda_device() -> bool:
    """True when pyposert's own CUDA query (compiled in) finds no device: then torch would not
    find one either, and it need not be imported to learn that."""
    from .. import build_info

    info = build_info()
    return bool(info["cuda_compiled"]) and int(info["cuda"]["device_count"]) == 0


def _placeholder_shape(node: Any) -> tuple[Optional[int], ...]:
    val = node.meta.get("val")
    shape = getattr(val, "shape", None)
    if shape is None:
        return ()
    return tuple(int(d) if isinstance(d, int) else None for d in shape)


class TorchBackend:
    """An exported program behind the Backend protocol; on CUDA, :meth:`device_adapter` lets
    :mod:`pyposert.backends.device_frames` keep whole frames on the GPU."""

    name = "torch"

    def __init__(self, program: bytes, *, device: str = "cpu", where: str = "torch-export") -> None:
        torch = _import_torch()
        self._torch = torch
        # The deserialiser must resolve the pyposert ops a program calls (registered once, by
        # pyposert.torch_ops, with the native kernels as their forward).
        if _OP_MARKER in program:
            from .. import torch_ops

            torch_ops.register_all()
        # Checked and rebuilt first: no pickled entry, no non-operator call, no eval'd
        # expression reaches torch.export.load (pyposert.safety explains each).
        program = sanitize_torch_program(program, where)
        # torch.export.load logs a failed parse as a warning with its traceback before trying
        # an older format; the failure is reported below as one PlanError instead.
        export_log = logging.getLogger("torch.export")
        level = export_log.level
        export_log.setLevel(logging.ERROR)
        try:
            ep = torch.export.load(io.BytesIO(program))
        except Exception as exc:  # the loader raises many types for a damaged archive
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise PlanError(f"torch cannot load the program {where}: {type(exc).__name__}: {first}") from None
        finally:
            export_log.setLevel(level)
        # The program's argument names are the contract's input names (the exporters and the
        # training models name forward()'s arguments so); the contract follows from them.
        names = list(ep.graph_signature.user_inputs)
        nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
        self._order = names  # argument order of the program
        self.input_spec = {}
        for name in names:
            shape = _placeholder_shape(nodes[name]) if name in nodes else ()
            # A batch axis exported as static stays fixed (the Engine then runs batches in
            # chunks of that size); a dynamic one is None.
            self.input_spec[name] = TensorSpec(name, shape or (None,), "float32")
        # The program returns one tensor per contract output, in the contract's order (a
        # completion program returns (parsing, image)), and does not state their shapes.
        self.contract = contract_kind(list(self.input_spec.values()), None, where)
        self.output_spec = contract_outputs(self.contract, self.input_spec)

        self.device = device
        self._cuda = device.startswith("cuda")
        self._lock = threading.Lock()
        self._adapter: Optional[_TorchDevice] = None
        if self._cuda:
            move = getattr(getattr(torch.export, "passes", None), "move_to_device_pass", None)
            if move is not None:
                ep = move(ep, device)
            module = ep.module().to(device)
            # fp16 halves memory traffic; InstanceNorm statistics and the attention softmax
            # accumulate in fp32 inside the kernels. channels_last lets cuDNN pick NHWC convs.
            module = module.half().to(memory_format=torch.channels_last)
            self._dtype = torch.float16
            self._adapter = _TorchDevice(self, torch.cuda.Stream(device=device), "float16")
            self._graphs: GraphCache[_HostGraph] = GraphCache(MAX_GRAPHS, lambda graph: None)
        else:
            module = ep.module()
            self._dtype = torch.float32
        self._module = module

    # ------------------------------------------------------------------ Backend protocol
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """name -> float32 [B, ...] numpy (host) in, outputs by name (float32 [B, ...]) out."""
        torch = self._torch
        if self._module is None:
            raise RuntimeError("this model was closed (Engine.close()); open a new Engine to run it again")
        if set(feeds) != set(self.input_spec):
            raise ValueError(f"feeds must be exactly {sorted(self.input_spec)}, got {sorted(feeds)}")
        arrays = [np.ascontiguousarray(feeds[n], dtype=np.float32) for n in self._order]
        batch = {a.shape[0] for a in arrays}
        if len(batch) != 1:
            raise ValueError(f"all feeds must have one batch size, got {sorted(batch)}")
        if self._adapter is None:
            with torch.inference_mode():
                out = self._module(*[torch.from_numpy(a) for a in arrays])
            return {n: t.float().numpy() for n, t in zip(self.output_spec, self._output_tensors(out))}
        device = self._adapter
        with device.session():
            graph = self._host_graph(arrays)
            for name, array in zip(self._order, arrays):
                np.copyto(graph.host_inputs[name], array, casting="same_kind")
            if graph.graph is None:
                graph.graph = capture_after_warmup(device, graph.enqueue)
            device.replay(graph.graph)
            device.synchronize()
            return {n: host.astype(np.float32) for n, host in graph.host_outputs.items()}

    def _host_graph(self, arrays: list[np.ndarray]) -> "_HostGraph":
        """The buffers (and, once captured, the graph) of :meth:`run` for these input shapes:
        page-locked host copies in the network's dtypes, device inputs and outputs."""
        key = tuple(a.shape for a in arrays)
        graph = self._graphs.get(key)
        if graph is not None:
            return graph
        device = self._adapter
        assert device is not None
        batch = arrays[0].shape[0]
        shapes = {n: a.shape for n, a in zip(self._order, arrays)}
        shapes.update({n: (batch,) + tuple(s.shape[1:]) for n, s in self.output_spec.items()})
        dtypes = {n: device.tensor_dtype(n) for n in shapes}
        host = {n: device.pinned(shape, dtypes[n]) for n, shape in shapes.items()}
        on_device = {n: device.allocate(shape, dtypes[n]) for n, shape in shapes.items()}
        inputs = {n: on_device[n] for n in self._order}
        outputs = {n: on_device[n] for n in self.output_spec}

        def enqueue() -> None:
            for name in self._order:
                device.copy(inputs[name], host[name])
            device.execute(inputs, outputs)
            for name in self.output_spec:
                device.copy(host[name], outputs[name])

        graph = _HostGraph({n: host[n] for n in self._order}, {n: host[n] for n in self.output_spec}, enqueue)
        self._graphs.put(key, graph)
        return graph

    def _output_tensors(self, out: Any) -> list[Any]:
        """The program's result as a list in ``output_spec`` order: one tensor (pose transfer),
        or a (parsing, image) tuple / list or a dict keyed by output name (completion)."""
        if isinstance(out, dict):
            missing = [n for n in self.output_spec if n not in out]
            if missing:
                raise RuntimeError(f"the torch program returned {sorted(out)}, expected {list(self.output_spec)}")
            return [out[n] for n in self.output_spec]
        items = list(out) if isinstance(out, (tuple, list)) else [out]
        if len(items) != len(self.output_spec):
            raise RuntimeError(f"the torch program returned {len(items)} tensors, expected {len(self.output_spec)} "
                               f"({list(self.output_spec)})")
        return items

    def _forward_all(self, inputs: Mapping[str, Any]) -> list[Any]:
        """Run the module on device tensors named by the contract; its outputs in
        ``output_spec`` order, NCHW-contiguous."""
        torch = self._torch
        args = [inputs[n] for n in self._order]
        args = [x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in args]
        with torch.inference_mode():
            # NCHW again: the output kernel reads [3, H, W]
            return [t.contiguous() for t in self._output_tensors(self._module(*args))]

    def device_adapter(self) -> Optional["_TorchDevice"]:
        """On CUDA, this program's side of the device-frame pipeline
        (:mod:`pyposert.backends.device_frames`); None on the CPU."""
        return self._adapter

    def close(self) -> None:
        """Release the module and captured graphs (close the device frames first)."""
        if self._adapter is not None:
            self._graphs.clear()
        self._module = None


@dataclass(eq=False)
class _HostGraph:
    """:meth:`TorchBackend.run` on CUDA for one set of input shapes."""

    host_inputs: dict[str, np.ndarray]  # page-locked, the network's dtypes
    host_outputs: dict[str, np.ndarray]  # page-locked, the network's dtypes
    enqueue: Callable[[], None]  # inputs up, network, outputs down
    graph: Any = None  # the captured enqueue


class _TorchDevice:
    """The torch backend's :class:`~pyposert.backends.device_frames.DeviceAdapter` on CUDA:
    torch tensors, copies and the program on the backend's private stream, torch.cuda.CUDAGraph.

    Images and heatmaps take the network's precision; keypoints stay float32 (pixel
    coordinates need the mantissa)."""

    def __init__(self, backend: TorchBackend, stream: Any, network_dtype: str) -> None:
        self._backend = backend
        self._torch = backend._torch
        self.stream = stream
        self._network_dtype = network_dtype

    @contextmanager
    def session(self) -> Iterator[None]:
        torch = self._torch
        with self._backend._lock, torch.cuda.device(torch.device(self._backend.device)):
            # Work queued on the default stream (the weights' upload) comes first.
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                yield

    def tensor_dtype(self, name: str) -> str:
        return "float32" if name.endswith("keypoints") else self._network_dtype

    def allocate(self, shape: Sequence[int], dtype: str) -> Any:
        torch = self._torch
        return torch.empty(tuple(shape), dtype=getattr(torch, dtype), device=self._backend.device)

    def pinned(self, shape: Sequence[int], dtype: str) -> np.ndarray:
        torch = self._torch
        return torch.empty(tuple(shape), dtype=getattr(torch, dtype), pin_memory=True).numpy()

    def copy(self, dst: Any, src: Any) -> None:
        torch = self._torch
        dst, src = (torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in (dst, src))
        if dst.dtype != src.dtype or dst.numel() != src.numel():
            raise ValueError(f"copy of {src.dtype} x {src.numel()} into {dst.dtype} x {dst.numel()}")
        dst.view(-1).copy_(src.view(-1), non_blocking=True)  # page-locked host memory: asynchronous

    def view(self, array: Any, start: Sequence[int], shape: Sequence[int]) -> Any:
        offset = sum(int(i) * int(s) for i, s in zip(start, array.stride()))
        return array.view(-1).narrow(0, offset, int(np.prod(shape))).view(tuple(shape))

    def execute(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        for name, tensor in zip(self._backend.output_spec, self._backend._forward_all(inputs)):
            if name in outputs:
                outputs[name].copy_(tensor)

    def capture(self, enqueue: Callable[[], None]) -> Any:
        torch = self._torch
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream):
            enqueue()
        return graph

    def replay(self, graph: Any) -> None:
        graph.replay()

    def is_current(self, graph: Any) -> bool:
        return True  # a torch graph owns its memory pool and replays its own addresses

    def release(self, graph: Any) -> None:
        graph.reset()

    def synchronize(self) -> None:
        self.stream.synchronize()
