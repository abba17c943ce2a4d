"""torch backend: runs a bundle's ``torch-export`` program, checked and rebuilt by
:func:`pyposert.safety.sanitize_torch_program` before ``torch.export.load`` sees it (no pickle,
operators only, arithmetic shapes only).

Where it is used: on an NVIDIA GPU without TensorRT (fp16 weights and activations,
channels_last, the whole frame in a CUDA graph, pyposert's kernels on torch's CUDA tensors),
and on the CPU for parity checks (fp32, only when asked for by name: ``backend="torch"``).

The program follows one of the model contracts of :mod:`pyposert.backends` (by its input
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
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .. import ops
from ..errors import BackendUnavailable, PlanError
from ..safety import sanitize_torch_program
from ..model import contract_outputs
from . import (OUTPUT_NAME, HeatmapSpec, ModelFile, TensorSpec, contract_kind, module_installed,
               parse_device)

if TYPE_CHECKING:
    from ..ops import Letterbox

__all__ = ["TorchBackend", "availability", "open_backend"]

_OP_MARKER = b"torch.ops.pyposert."  # how a saved program names our custom ops
_MAX_GRAPHS = 4  # captured frame graphs kept (video uses one: one source size, one batch size)


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
    """An exported program behind the Backend protocol (and DeviceFrames on CUDA)."""

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
        if self._cuda:
            move = getattr(getattr(torch.export, "passes", None), "move_to_device_pass", None)
            if move is not None:
                ep = move(ep, device)
            module = ep.module().to(device)
            # fp16 halves memory traffic; InstanceNorm statistics and the attention softmax
            # accumulate in fp32 inside the kernels. channels_last lets cuDNN pick NHWC convs.
            module = module.half().to(memory_format=torch.channels_last)
            self._dtype = torch.float16
            self._stream = torch.cuda.Stream(device=device)
            self._graphs: dict[Any, _Graph] = {}
        else:
            module = ep.module()
            self._dtype = torch.float32
        self._module = module

    # ------------------------------------------------------------------ Backend protocol
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """name -> float32 [B, ...] numpy (host) in, ``{"image": float32 [B, 3, H, W]}`` out."""
        torch = self._torch
        if self._module is None:
            raise RuntimeError("this model was closed (Engine.close()); open a new Engine to run it again")
        if set(feeds) != set(self.input_spec):
            raise ValueError(f"feeds must be exactly {sorted(self.input_spec)}, got {sorted(feeds)}")
        arrays = [np.ascontiguousarray(feeds[n], dtype=np.float32) for n in self._order]
        batch = {a.shape[0] for a in arrays}
        if len(batch) != 1:
            raise ValueError(f"all feeds must have one batch size, got {sorted(batch)}")
        if not self._cuda:
            with torch.inference_mode():
                out = self._module(*[torch.from_numpy(a) for a in arrays])
            return {n: t.float().numpy() for n, t in zip(self.output_spec, self._output_tensors(out))}
        with self._lock:
            graph = self._host_graph(arrays)
            for host, array in zip(graph.host_inputs, arrays):
                host.numpy()[...] = array
            with torch.cuda.stream(self._stream):
                graph.graph.replay()
            self._stream.synchronize()
            return {n: t.numpy().copy() for n, t in zip(self.output_spec, graph.host_outputs)}

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

    def close(self) -> None:
        """Release the module and captured graphs."""
        if self._cuda:
            self._graphs.clear()
        self._module = None

    # ------------------------------------------------------------------ CUDA: host protocol
    def _host_graph(self, arrays: list[np.ndarray]) -> "_Graph":
        torch = self._torch
        key = ("host",) + tuple(a.shape for a in arrays)
        graph = self._graphs.get(key)
        if graph is not None:
            return graph
        graph = _Graph()
        graph.host_inputs = [torch.empty(a.shape, dtype=torch.float32, pin_memory=True) for a in arrays]
        graph.device_inputs = {n: torch.empty(a.shape, dtype=self._input_dtype(n), device=self.device)
                               for a, n in zip(arrays, self._order)}
        batch = arrays[0].shape[0]
        graph.host_outputs = [torch.empty((batch,) + tuple(s.shape[1:]), dtype=torch.float32, pin_memory=True)
                              for s in self.output_spec.values()]
        for host, array in zip(graph.host_inputs, arrays):
            host.numpy()[...] = array

        def body() -> None:
            for dev, host in zip(graph.device_inputs.values(), graph.host_inputs):
                dev.copy_(host, non_blocking=True)
            for host, out in zip(graph.host_outputs, self._forward_all(graph.device_inputs)):
                host.copy_(out.float(), non_blocking=True)

        self._capture(graph, body)
        self._remember(key, graph)
        return graph

    def _input_dtype(self, name: str) -> Any:
        # Keypoints stay float32 (pixel coordinates need the mantissa); images and heatmaps
        # take the network's precision.
        return self._torch.float32 if name.endswith("keypoints") else self._dtype

    def _forward_all(self, inputs: dict[str, Any]) -> list[Any]:
        """Run the module on device tensors named by the contract; its outputs in
        ``output_spec`` order, NCHW-contiguous."""
        torch = self._torch
        args = [inputs[n] for n in self._order]
        args = [x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in args]
        with torch.inference_mode():
            # NCHW again: our output kernel reads [3, H, W]
            return [t.contiguous() for t in self._output_tensors(self._module(*args))]

    def _forward(self, inputs: dict[str, Any]) -> Any:
        """The ``image`` output of :meth:`_forward_all` (the pose-transfer frame path)."""
        return self._forward_all(inputs)[list(self.output_spec).index(OUTPUT_NAME)]

    def _capture(self, graph: "_Graph", body: Any) -> None:
        """Warm up (cuDNN algorithm choice, lazy module loading) off-graph, then capture."""
        torch = self._torch
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            body()
            body()
        self._stream.synchronize()
        graph.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph.graph, stream=self._stream):
            body()
        self._stream.synchronize()

    def _remember(self, key: Any, graph: "_Graph") -> None:
        if len(self._graphs) >= _MAX_GRAPHS:
            self._graphs.pop(next(iter(self._graphs)))
        self._graphs[key] = graph

    # ------------------------------------------------------------------ CUDA: DeviceFrames
    def load_source(self, image: np.ndarray, box: "Letterbox", source_keypoints: np.ndarray,
                    heatmap: HeatmapSpec) -> "_TorchSource":
        """Upload the photo and prepare everything that depends only on it, on the GPU.

        image: uint8 [h, w, 3] BGR; box: its letterbox into the model frame;
        source_keypoints: float32 (18, 2) (x, y) model pixels, missing -1.
        """
        if not self._cuda:
            raise RuntimeError("load_source needs the CUDA torch backend")
        if self.contract == "completion":
            raise RuntimeError("a completion program has no device-frame path: run it with run(feeds)")
        torch = self._torch
        h, w = box.height, box.width
        with self._lock, torch.cuda.stream(self._stream):
            pixels = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
            model_input = torch.empty((3, h, w), dtype=self._dtype, device=self.device)
            ops.to_model_input(pixels, h, w, dtype=_np_name(torch, self._dtype), out=model_input, stream=self._stream)
            keypoints = torch.from_numpy(np.ascontiguousarray(source_keypoints, np.float32)[None]).to(self.device)
            maps = None
            if self.contract == "heatmaps":
                maps = torch.empty((1, keypoints.shape[1], h, w), dtype=self._dtype, device=self.device)
                ops.heatmaps(keypoints, h, w, mode=heatmap.mode, sigma=heatmap.sigma, radius=heatmap.radius,
                             dtype=_np_name(torch, self._dtype), out=maps, stream=self._stream)
            self._stream.synchronize()
        return _TorchSource(box, model_input, keypoints, maps, heatmap)

    def render(self, source: "_TorchSource", target_keypoints: np.ndarray, *, unletterbox: bool) -> list[np.ndarray]:
        """target_keypoints: float32 [B, 18, 2] (x, y) model pixels -> B uint8 [h, w, 3] BGR."""
        torch = self._torch
        tgt = np.ascontiguousarray(target_keypoints, dtype=np.float32)
        batch = tgt.shape[0]
        with self._lock:
            key = ("frame", batch, source.box, bool(unletterbox), source.heatmap)
            graph = self._graphs.get(key)
            if graph is None:
                graph = self._frame_graph(source, batch, bool(unletterbox))
                graph.host_inputs[0].numpy()[...] = tgt
                self._activate(graph, source)
                self._capture(graph, graph.body)
                self._remember(key, graph)
            else:
                graph.host_inputs[0].numpy()[...] = tgt
                self._activate(graph, source)
            with torch.cuda.stream(self._stream):
                graph.graph.replay()
            self._stream.synchronize()
            return [graph.host_output[b].numpy().copy() for b in range(batch)]

    def _frame_graph(self, source: "_TorchSource", batch: int, unletterbox: bool) -> "_Graph":
        torch = self._torch
        box, hm = source.box, source.heatmap
        h, w = box.height, box.width
        joints = source.keypoints.shape[1]
        graph = _Graph()
        graph.host_inputs = [torch.empty((batch, joints, 2), dtype=torch.float32, pin_memory=True)]
        target = torch.empty((batch, joints, 2), dtype=torch.float32, device=self.device)
        images = torch.empty((batch, 3, h, w), dtype=self._dtype, device=self.device)
        if self.contract == "heatmaps":
            pose = torch.empty((batch, 2 * joints, h, w), dtype=self._dtype, device=self.device)
            graph.device_inputs = {"source_image": images, "pose_heatmaps": pose}
        else:
            pose = torch.empty((batch, joints, 2), dtype=torch.float32, device=self.device)
            graph.device_inputs = {"source_image": images, "source_keypoints": pose, "target_keypoints": target}
        out_h, out_w = (box.src_height, box.src_width) if unletterbox else (h, w)
        pixels = torch.empty((batch, out_h, out_w, 3), dtype=torch.uint8, device=self.device)
        graph.host_output = torch.empty((batch, out_h, out_w, 3), dtype=torch.uint8, pin_memory=True)
        dtype = _np_name(torch, self._dtype)

        def body() -> None:
            target.copy_(graph.host_inputs[0], non_blocking=True)
            if self.contract == "heatmaps":
                # The target half [B, 18:36] of every sample, in one launch.
                ops.heatmaps(target, h, w, mode=hm.mode, sigma=hm.sigma, radius=hm.radius, dtype=dtype, out=pose,
                             channel_offset=joints, stream=self._stream)
            out = self._forward(graph.device_inputs)
            for b in range(batch):
                ops.from_model_output(out[b], box, unletterbox=unletterbox, out=pixels[b], stream=self._stream)
            graph.host_output.copy_(pixels, non_blocking=True)

        graph.body = body
        return graph

    def _activate(self, graph: "_Graph", source: "_TorchSource") -> None:
        """Copy the source's cached tensors into the graph's fixed inputs (only when the source
        changes: a graph replays fixed addresses, so the source is copied in, not re-bound)."""
        if graph.active is not None and graph.active() is source:
            return
        with self._torch.cuda.stream(self._stream):
            images = graph.device_inputs["source_image"]
            images.copy_(source.model_input.unsqueeze(0).expand_as(images))
            if self.contract == "heatmaps":
                pose = graph.device_inputs["pose_heatmaps"]
                joints = source.keypoints.shape[1]
                pose[:, :joints].copy_(source.maps.expand(pose.shape[0], -1, -1, -1))
            else:
                keypoints = graph.device_inputs["source_keypoints"]
                keypoints.copy_(source.keypoints.expand_as(keypoints))
        graph.active = weakref.ref(source)


def _np_name(torch: Any, dtype: Any) -> str:
    return "float16" if dtype == torch.float16 else "float32"


@dataclass
class _TorchSource:
    box: "Letterbox"
    model_input: Any  # torch [3, H, W] on the device
    keypoints: Any  # torch float32 [1, 18, 2] (x, y) model pixels
    maps: Any  # torch [1, 18, H, W] source heatmaps (heatmap models) or None
    heatmap: HeatmapSpec


@dataclass(eq=False)
class _Graph:
    graph: Any = None
    host_inputs: list[Any] = field(default_factory=list)
    device_inputs: dict[str, Any] = field(default_factory=dict)  # contract name -> device tensor
    host_output: Any = None  # the frame path's uint8 pixels
    host_outputs: list[Any] = field(default_factory=list)  # the host path's outputs, output_spec order
    body: Any = None
    active: Any = None  # weakref to the source whose tensors are in device_inputs
