"""Generator -> the two ONNX graphs of a bundle, their structural checks and ONNX Runtime parity.

Graphs (opset 18 by default, batch dynamic as dim "batch", H x W fixed by the model):

``model.onnx`` -- standard ops only, for ONNX Runtime on any CPU:
    inputs  source_image  float32 [batch, 3, H, W]  RGB in [-1, 1]
            pose_heatmaps float32 [batch, 36, H, W] 18 source then 18 target heatmaps in [0, 1]
    output  image         float32 [batch, 3, H, W]  RGB in [-1, 1]
    Attention is traced as plain MatMul / Softmax / MatMul (``training.ops.plain_attention``).

    Warp-guided generators (``cfg.warp_guided``) take the keypoint contract with the warp
    instead, in standard ops too (the heatmaps are rasterised inside by
    :func:`standard_heatmaps`; the engine computes the warp on the host, ``pyposert.ops.warp``):
    inputs  source_image, source_keypoints, target_keypoints (as below),
            warped_source float32 [batch, 3, H, W]  the source warped to the target skeleton
            warp_coverage float32 [batch, 1, H, W]  in [0, 1]

``model_pyposert.onnx`` -- pyposert's fused kernels as custom nodes, for TensorRT:
    inputs  source_image     float32 [batch, 3, H, W]
            source_keypoints float32 [batch, 18, 2]  (x, y) model pixels, missing = -1
            target_keypoints float32 [batch, 18, 2]
    output  image            float32 [batch, 3, H, W]
    Warp-guided generators also take warped_source and warp_coverage (as above; the engine
    computes them, on the device where the backend has device frames).
    One ``pyposert::PoseHeatmap`` node (attributes mode 0 gaussian / 1 disk, sigma, radius,
    height, width; output float32 [batch, 36, H, W]) and one ``pyposert::FusedAttention`` node
    per attention (inputs q [batch, N, Dk], k [batch, N, Dk], v [batch, N, Dv]; attribute
    scale; output [batch, N, Dv]).
    The fp16 variant (``precision="fp16"``) keeps this float32 I/O and computes in half
    precision inside (TensorRT 11 is strongly typed: the graph's types are the engine's types),
    except the normalisation layers, which upcast to float32 (their mean/variance over H*W
    pixels is where half precision loses accuracy); the attention kernel accumulates in fp32.

How the custom nodes are made: ``torch.onnx.export(..., dynamo=True,
custom_translation_table={torch.ops.pyposert.attention.default: ..., torch.ops.pyposert.
pose_heatmaps.default: ...})`` with onnxscript functions calling ops of an onnxscript
``Opset("pyposert", 1)``. onnxscript resolves an op through its ONNX schema, so the two ops'
schemas are registered with ``onnx.defs.register_schema`` first (:func:`register_onnx_schemas`);
as a bonus ``onnx.checker`` then validates the custom nodes' inputs, types and attributes too.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch
from onnx import defs
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from export.torch_ops import HEATMAP_MODE_CODES, pose_heatmaps, warp_translation
from pyposert import ops as native_ops
from pyposert.model import HEATMAP_INPUTS, KEYPOINT_INPUTS, OUTPUT_NAME, WARP_INPUTS
from training.models import ModelConfig
from training.ops import heatmaps_pair, plain_attention

__all__ = [
    "DEFAULT_OPSET",
    "DOMAIN",
    "MIN_OPSET",
    "ExportError",
    "GraphReport",
    "HeatmapGraph",
    "KeypointGraph",
    "Parity",
    "count_attention_calls",
    "example_inputs",
    "export_pyposert_onnx",
    "export_standard_onnx",
    "export_torch_program",
    "half_precision",
    "check_pyposert_graph",
    "check_standard_graph",
    "compare",
    "generator_call",
    "graph_inputs",
    "standard_heatmaps",
    "WarpKeypointGraph",
    "onnxruntime_parity",
    "parity_fields",
    "psnr",
    "register_onnx_schemas",
    "torch_reference",
]

DOMAIN = "pyposert"
DOMAIN_VERSION = 1
MIN_OPSET = 18  # the torch.export-based exporter emits opset 18 or newer
DEFAULT_OPSET = 18  # read by ONNX Runtime >= 1.14 and TensorRT 10/11
JOINTS = 18
MAX_EXPORT_BATCH = 4096  # upper bound of the symbolic batch dim; TensorRT profiles narrow it


class ExportError(RuntimeError):
    """An exported graph does not have the structure or numbers the bundle promises."""


# ------------------------------------------------------------------ ONNX schemas of the custom ops
def register_onnx_schemas() -> None:
    """Register ``pyposert::PoseHeatmap`` and ``pyposert::FusedAttention`` (version 1) with
    ONNX's schema registry (process-wide, idempotent)."""
    S = defs.OpSchema
    if not defs.has("PoseHeatmap", DOMAIN):
        defs.register_schema(S(
            "PoseHeatmap", DOMAIN, DOMAIN_VERSION,
            "Source and target keypoints [B, K, 2] (x, y) in model pixels (missing: negative/NaN) -> "
            "float32 [B, 2K, height, width] heatmaps, source channels first. mode 0: "
            "exp(-d^2 / (2 sigma^2)); mode 1: 1 where d <= radius.",
            inputs=[S.FormalParameter("source_keypoints", "T"), S.FormalParameter("target_keypoints", "T")],
            outputs=[S.FormalParameter("heatmaps", "T")],
            type_constraints=[("T", ["tensor(float)"], "keypoints and heatmaps are float32")],
            attributes=[S.Attribute("mode", S.AttrType.INT, "0 gaussian, 1 disk"),
                        S.Attribute("sigma", S.AttrType.FLOAT, "Gaussian sigma, model pixels"),
                        S.Attribute("radius", S.AttrType.FLOAT, "disk radius, model pixels"),
                        S.Attribute("height", S.AttrType.INT, "output H"),
                        S.Attribute("width", S.AttrType.INT, "output W")]))
    if not defs.has("FusedAttention", DOMAIN):
        defs.register_schema(S(
            "FusedAttention", DOMAIN, DOMAIN_VERSION,
            "out[b, j] = sum_i softmax_i(scale * q[b, j] . k[b, i]) v[b, i]; q [B, Nq, Dk], k [B, Nk, Dk], "
            "v [B, Nk, Dv] -> [B, Nq, Dv]; fp32 accumulation.",
            inputs=[S.FormalParameter("q", "T"), S.FormalParameter("k", "T"), S.FormalParameter("v", "T")],
            outputs=[S.FormalParameter("out", "T")],
            type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "one float type for all")],
            attributes=[S.Attribute("scale", S.AttrType.FLOAT, "multiplies q . k before the softmax")]))


def _translation_table() -> dict[Any, Any]:
    """custom_translation_table for torch.onnx.export: our torch custom ops -> our ONNX nodes."""
    import onnxscript

    register_onnx_schemas()
    op = onnxscript.values.Opset(DOMAIN, DOMAIN_VERSION)

    def fused_attention(q: Any, k: Any, v: Any, scale: float = 1.0) -> Any:
        return op.FusedAttention(q, k, v, scale=float(scale))

    def pose_heatmap(source: Any, target: Any, mode: int, sigma: float, radius: float, height: int,
                     width: int) -> Any:
        return op.PoseHeatmap(source, target, mode=int(mode), sigma=float(sigma), radius=float(radius),
                              height=int(height), width=int(width))

    return {torch.ops.pyposert.attention.default: fused_attention,
            torch.ops.pyposert.pose_heatmaps.default: pose_heatmap, **warp_translation()}


# ------------------------------------------------------------------ export wrappers
class HeatmapGraph(nn.Module):
    """(source_image [B,3,H,W], pose_heatmaps [B,36,H,W]) -> image [B,3,H,W]: the generator itself."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, source_image: Tensor, pose_heatmaps: Tensor) -> Tensor:
        return self.generator(source_image, pose_heatmaps)


class _Float32(nn.Module):
    """Runs a layer in float32 inside a half-precision model (float16 in, float16 out)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer.float()

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x.float()).to(x.dtype)


def half_precision(generator: nn.Module) -> nn.Module:
    """A float16 copy of ``generator`` whose normalisation layers compute in float32."""
    g = copy.deepcopy(generator).half().eval()
    norms = (nn.InstanceNorm2d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)
    for parent in list(g.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, norms):
                setattr(parent, name, _Float32(child))
    return g


def standard_heatmaps(source: Tensor, target: Tensor, cfg: ModelConfig) -> Tensor:
    """``training.ops.heatmaps_pair`` in standard ops (traceable to plain ONNX): float32
    [B, 2K, H, W] from (x, y) keypoints [B, K, 2] in model pixels, source maps first; a joint
    with a negative, NaN or infinite coordinate gives an all-zero map. It is the eager torch
    form of the heatmap kernel (``pyposert.torch_ops.heatmaps``), so no pyposert node."""
    from pyposert import torch_ops

    return torch_ops.heatmaps(torch.cat([source, target], dim=1), cfg.height, cfg.width, cfg.heatmap_mode,
                              cfg.heatmap_sigma, cfg.heatmap_radius)


def graph_inputs(cfg: ModelConfig, graph: str) -> tuple[str, ...]:
    """Input names of the ``graph`` ("standard" or "pyposert") exported for ``cfg``."""
    if graph not in ("standard", "pyposert"):
        raise ValueError(f"graph must be 'standard' or 'pyposert', got {graph!r}")
    if cfg.warp_guided:
        return KEYPOINT_INPUTS + WARP_INPUTS
    return HEATMAP_INPUTS if graph == "standard" else KEYPOINT_INPUTS


def generator_call(generator: nn.Module, cfg: ModelConfig, inputs: dict[str, Tensor]) -> Tensor:
    """The torch generator on :func:`example_inputs`-style inputs: (source_image, pose_heatmaps),
    plus (warped_source, warp_coverage) for a warp-guided one."""
    args = [inputs["source_image"], inputs["pose_heatmaps"]]
    if cfg.warp_guided:
        args += [inputs[name] for name in WARP_INPUTS]
    return generator(*args)


class KeypointGraph(nn.Module):
    """(source_image [B,3,H,W], source_keypoints [B,18,2], target_keypoints [B,18,2]) -> image.

    Keypoints are (x, y) model pixels (missing = -1); heatmaps are rasterised inside by
    ``pyposert::pose_heatmaps`` with the config's mode/sigma/radius. I/O is float32 in both
    precisions; with precision "fp16" the generator (see :func:`half_precision`) runs in half.
    """

    def __init__(self, generator: nn.Module, cfg: ModelConfig, precision: str = "fp32") -> None:
        super().__init__()
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision must be 'fp32' or 'fp16', got {precision!r}")
        self.generator = half_precision(generator) if precision == "fp16" else generator
        self.cfg = cfg
        self.dtype = torch.float16 if precision == "fp16" else torch.float32

    def heatmaps(self, source_keypoints: Tensor, target_keypoints: Tensor) -> Tensor:
        c = self.cfg
        return pose_heatmaps(source_keypoints, target_keypoints, c.height, c.width, mode=c.heatmap_mode,
                             sigma=c.heatmap_sigma, radius=c.heatmap_radius)

    def forward(self, source_image: Tensor, source_keypoints: Tensor, target_keypoints: Tensor) -> Tensor:
        maps = self.heatmaps(source_keypoints, target_keypoints)
        out = self.generator(source_image.to(self.dtype), maps.to(self.dtype))
        return out.to(torch.float32)


class WarpKeypointGraph(KeypointGraph):
    """A warp-guided generator's graph: (source_image [B,3,H,W], source_keypoints [B,18,2],
    target_keypoints [B,18,2], warped_source [B,3,H,W], warp_coverage [B,1,H,W]) -> image.

    ``heatmaps``: "pyposert" rasterises through ``pyposert::pose_heatmaps`` (one PoseHeatmap
    node, for TensorRT); "standard" through :func:`standard_heatmaps` (plain ONNX, for ONNX
    Runtime). The warp is an input: the engine computes it like the heatmaps.
    """

    def __init__(self, generator: nn.Module, cfg: ModelConfig, precision: str = "fp32",
                 heatmaps: str = "pyposert") -> None:
        super().__init__(generator, cfg, precision)
        if not cfg.warp_guided:
            raise ValueError(f"{cfg.name} is not warp-guided: export it with KeypointGraph")
        if heatmaps not in ("pyposert", "standard"):
            raise ValueError(f"heatmaps must be 'pyposert' or 'standard', got {heatmaps!r}")
        self.standard = heatmaps == "standard"

    def heatmaps(self, source_keypoints: Tensor, target_keypoints: Tensor) -> Tensor:
        if self.standard:
            return standard_heatmaps(source_keypoints, target_keypoints, self.cfg)
        return super().heatmaps(source_keypoints, target_keypoints)

    def forward(self, source_image: Tensor, source_keypoints: Tensor, target_keypoints: Tensor,  # type: ignore[override]
                warped_source: Tensor, warp_coverage: Tensor) -> Tensor:
        maps = self.heatmaps(source_keypoints, target_keypoints).to(self.dtype)
        out = self.generator(source_image.to(self.dtype), maps, warped_source.to(self.dtype),
                             warp_coverage.to(self.dtype))
        return out.to(torch.float32)


def _graph(generator: nn.Module, cfg: ModelConfig, graph: str, precision: str = "fp32") -> nn.Module:
    """The module exported as ``graph`` ("standard" | "pyposert") for ``cfg``."""
    if cfg.warp_guided:
        return WarpKeypointGraph(generator, cfg, precision, heatmaps=graph).eval()
    if graph == "standard":
        return HeatmapGraph(generator).eval()
    return KeypointGraph(generator, cfg, precision).eval()


# ------------------------------------------------------------------ inputs and counts
def example_inputs(cfg: ModelConfig, batch: int = 2, seed: int = 0) -> dict[str, Tensor]:
    """Deterministic test inputs: images uniform in [-1, 1]; keypoints (x, y) inside the frame
    with about one joint in five missing (-1); heatmaps from training.ops.heatmaps_pair.

    Returns {"source_image" [B,3,H,W], "source_keypoints" [B,18,2], "target_keypoints"
    [B,18,2], "pose_heatmaps" [B,36,H,W], "warped_source" [B,3,H,W], "warp_coverage"
    [B,1,H,W]}, all float32; the warp is ``pyposert.ops.warp`` of the image between the two
    skeletons.
    """
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.height, cfg.width
    image = torch.rand(batch, 3, h, w, generator=g) * 2 - 1
    scale = torch.tensor([w - 1, h - 1], dtype=torch.float32)

    def pose() -> Tensor:
        kp = torch.rand(batch, JOINTS, 2, generator=g) * scale
        missing = torch.rand(batch, JOINTS, generator=g) < 0.2
        return torch.where(missing[..., None], torch.full_like(kp, -1.0), kp)

    src, tgt = pose(), pose()
    maps = heatmaps_pair(src, tgt, h, w, mode=cfg.heatmap_mode, sigma=cfg.heatmap_sigma, radius=cfg.heatmap_radius)
    warped, coverage = native_ops.warp(image.numpy(), src.numpy(), tgt.numpy(), h, w)
    return {"source_image": image, "source_keypoints": src, "target_keypoints": tgt, "pose_heatmaps": maps,
            "warped_source": torch.from_numpy(warped), "warp_coverage": torch.from_numpy(coverage)}


class _CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def count_attention_calls(generator: nn.Module, cfg: ModelConfig) -> int:
    """How many ``pyposert::attention`` calls one forward pass makes (PoNA: 2 per block)."""
    x = example_inputs(cfg, batch=1)
    with _CountOps() as mode:
        generator_call(generator, cfg, x)
    return mode.counts["pyposert.attention.default"]


# ------------------------------------------------------------------ export
@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    # The dynamo exporter prints its progress and warns about unrelated registry entries
    # (torchvision ops); our own progress bar and summary say what happened.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        import logging

        logger = logging.getLogger("torch.onnx")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(level)


def _finish(model: onnx.ModelProto, cfg: ModelConfig, graph: str, precision: str) -> bytes:
    """Strip per-node debug metadata (stack traces with local paths: bundles must not depend on
    where they were exported), label the model, check it, serialise it."""
    for node in model.graph.node:
        del node.metadata_props[:]
    model.doc_string = (f"pyposert {cfg.name} generator, {graph} graph, {precision}; "
                        f"{cfg.height}x{cfg.width}, dynamic batch")
    del model.metadata_props[:]
    for key, value in (("pyposert.graph", graph), ("pyposert.model", cfg.name), ("pyposert.precision", precision)):
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def _dynamic(names: Sequence[str]) -> dict[str, dict[int, Any]]:
    batch = torch.export.Dim("batch", min=1, max=MAX_EXPORT_BATCH)
    return {name: {0: batch} for name in names}


def export_standard_onnx(generator: nn.Module, cfg: ModelConfig, opset: int = DEFAULT_OPSET) -> bytes:
    """``model.onnx`` (see the module docstring) as serialised ONNX bytes."""
    x = example_inputs(cfg)
    names = list(graph_inputs(cfg, "standard"))  # a contract of pyposert.model
    with torch.no_grad(), plain_attention(), _quiet_export():
        program = torch.onnx.export(_graph(generator, cfg, "standard"), tuple(x[n] for n in names),
                                    dynamo=True, opset_version=opset, input_names=names, output_names=[OUTPUT_NAME],
                                    dynamic_shapes=_dynamic(names), verbose=False)
    return _finish(program.model_proto, cfg, "standard", "fp32")


def export_pyposert_onnx(generator: nn.Module, cfg: ModelConfig, opset: int = DEFAULT_OPSET,
                         precision: str = "fp32") -> bytes:
    """``model_pyposert.onnx`` (precision "fp32") or ``model_pyposert_fp16.onnx`` ("fp16")."""
    x = example_inputs(cfg)
    names = list(graph_inputs(cfg, "pyposert"))  # the keypoint contract of pyposert.model
    wrapper = _graph(generator, cfg, "pyposert", precision)
    with torch.no_grad(), _quiet_export():
        program = torch.onnx.export(wrapper, tuple(x[n] for n in names),
                                    dynamo=True, opset_version=opset, input_names=names, output_names=[OUTPUT_NAME],
                                    dynamic_shapes=_dynamic(names), custom_translation_table=_translation_table(),
                                    verbose=False)
    return _finish(program.model_proto, cfg, "pyposert", precision)


def export_torch_program(generator: nn.Module, cfg: ModelConfig) -> bytes:
    """A ``torch.export`` program of the standard graph (inputs of :func:`graph_inputs`; plain
    attention, so loading it needs no pyposert op), as ``torch.export.save`` bytes."""
    x = example_inputs(cfg)
    names = graph_inputs(cfg, "standard")
    with torch.no_grad(), plain_attention():
        program = torch.export.export(_graph(generator, cfg, "standard"), tuple(x[n] for n in names),
                                      dynamic_shapes=_dynamic(names))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


# ------------------------------------------------------------------ structural checks
_ELEM = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}


@dataclass(frozen=True)
class GraphReport:
    """What an exported graph holds: I/O signatures, op counts per (domain, op), opset."""

    inputs: dict[str, tuple[str, tuple[int | str, ...]]]
    outputs: dict[str, tuple[str, tuple[int | str, ...]]]
    op_counts: dict[str, int]
    opset: int
    nodes: int

    def count(self, op: str) -> int:
        """Nodes of "Op" (default domain) or "domain::Op"."""
        return self.op_counts.get(op, 0)


def _signature(values: Sequence[onnx.ValueInfoProto]) -> dict[str, tuple[str, tuple[int | str, ...]]]:
    out: dict[str, tuple[str, tuple[int | str, ...]]] = {}
    for v in values:
        t = v.type.tensor_type
        dims = tuple(d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim)
        out[v.name] = (_ELEM.get(t.elem_type, str(t.elem_type)), dims)
    return out


def _report(model: onnx.ModelProto) -> GraphReport:
    counts = Counter(f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in model.graph.node)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return GraphReport(_signature(model.graph.input), _signature(model.graph.output), dict(counts), opset,
                       len(model.graph.node))


def _expect_opset(report: GraphReport, opset: int | None, what: str) -> None:
    if opset is not None and report.opset != opset:
        raise ExportError(f"{what}: opset {opset} was requested, the exporter produced opset {report.opset}")


def _expect_io(report: GraphReport, inputs: dict[str, tuple[int | str, ...]], what: str) -> None:
    expected_in = {name: ("float32", dims) for name, dims in inputs.items()}
    if report.inputs != expected_in:
        raise ExportError(f"{what}: inputs must be {expected_in}, got {report.inputs}")
    h, w = inputs["source_image"][2:]
    expected_out = {"image": ("float32", ("batch", 3, h, w))}
    if report.outputs != expected_out:
        raise ExportError(f"{what}: outputs must be {expected_out}, got {report.outputs}")


def _input_dims(cfg: ModelConfig, graph: str) -> dict[str, tuple[int | str, ...]]:
    h, w = cfg.height, cfg.width
    dims: dict[str, tuple[int | str, ...]] = {
        "source_image": ("batch", 3, h, w), "pose_heatmaps": ("batch", 2 * JOINTS, h, w),
        "source_keypoints": ("batch", JOINTS, 2), "target_keypoints": ("batch", JOINTS, 2),
        "warped_source": ("batch", 3, h, w), "warp_coverage": ("batch", 1, h, w)}
    return {name: dims[name] for name in graph_inputs(cfg, graph)}


def _blend_softmaxes(cfg: ModelConfig) -> int:
    """Softmax nodes that are not attention: a warp-guided generator's blend weights."""
    return 1 if cfg.warp_guided else 0


def check_standard_graph(model: onnx.ModelProto, cfg: ModelConfig, attention_calls: int,
                         opset: int | None = None) -> GraphReport:
    """Raise ExportError unless ``model.onnx`` has the contract's I/O, only standard ops, one
    Softmax per attention, and (if given) the requested opset."""
    report = _report(model)
    _expect_opset(report, opset, "model.onnx")
    _expect_io(report, _input_dims(cfg, "standard"), "model.onnx")
    custom = {op for op in report.op_counts if "::" in op}
    if custom:
        raise ExportError(f"model.onnx must hold standard ONNX ops only, found {sorted(custom)}")
    if report.count("Softmax") != attention_calls + _blend_softmaxes(cfg):
        raise ExportError(f"model.onnx has {report.count('Softmax')} Softmax nodes, the model makes "
                          f"{attention_calls} attention calls" + (" and one blend" if cfg.warp_guided else ""))
    return report


def check_pyposert_graph(model: onnx.ModelProto, cfg: ModelConfig, attention_calls: int,
                         precision: str = "fp32", opset: int | None = None) -> GraphReport:
    """Raise ExportError unless the custom-node graph has the contract's I/O, exactly one
    PoseHeatmap node fed by the keypoint inputs with the config's attributes, one
    FusedAttention node (scale attribute, inputs of the graph's precision) per attention, no
    unfused Softmax, and (if given) the requested opset."""
    report = _report(model)
    h, w = cfg.height, cfg.width
    what = "model_pyposert_fp16.onnx" if precision == "fp16" else "model_pyposert.onnx"
    _expect_opset(report, opset, what)
    _expect_io(report, _input_dims(cfg, "pyposert"), what)
    ours = {op: n for op, n in report.op_counts.items() if op.startswith(f"{DOMAIN}::")}
    expected = {f"{DOMAIN}::PoseHeatmap": 1}
    if attention_calls:
        expected[f"{DOMAIN}::FusedAttention"] = attention_calls
    if ours != expected:
        raise ExportError(f"{what}: pyposert nodes must be {expected}, got {ours}")
    if report.count("Softmax") != _blend_softmaxes(cfg):
        raise ExportError(f"{what}: {report.count('Softmax') - _blend_softmaxes(cfg)} Softmax nodes left unfused")
    if not any(o.domain == DOMAIN and o.version == DOMAIN_VERSION for o in model.opset_import):
        raise ExportError(f"{what}: no opset import for domain {DOMAIN!r} version {DOMAIN_VERSION}")
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    want_attrs = {"mode": HEATMAP_MODE_CODES[cfg.heatmap_mode], "sigma": float(cfg.heatmap_sigma),
                  "radius": float(cfg.heatmap_radius), "height": h, "width": w}
    want_elem = onnx.TensorProto.FLOAT16 if precision == "fp16" else onnx.TensorProto.FLOAT
    for node in model.graph.node:
        if node.domain != DOMAIN:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "PoseHeatmap":
            if list(node.input) != ["source_keypoints", "target_keypoints"]:
                raise ExportError(f"{what}: PoseHeatmap must read (source_keypoints, target_keypoints), "
                                  f"reads {list(node.input)}")
            if set(attrs) != set(want_attrs) or any(not math.isclose(attrs[k], v, rel_tol=1e-6)
                                                    for k, v in want_attrs.items()):
                raise ExportError(f"{what}: PoseHeatmap attributes must be {want_attrs}, got {attrs}")
        else:
            if set(attrs) != {"scale"} or len(node.input) != 3:
                raise ExportError(f"{what}: FusedAttention needs inputs (q, k, v) and attribute scale, got "
                                  f"{list(node.input)} {attrs}")
            got = {types.get(i) for i in node.input} - {None}
            if got and got != {want_elem}:
                raise ExportError(f"{what}: FusedAttention inputs must be {_ELEM[want_elem]}, got "
                                  f"{sorted(_ELEM.get(t, str(t)) for t in got)}")
    return report


# ------------------------------------------------------------------ parity
@dataclass(frozen=True)
class Parity:
    """Agreement of a runtime's output with torch fp32: max |a - b| and PSNR in dB with the
    [-1, 1] image range (peak-to-peak 2). ``batch`` is the batch size compared."""

    max_abs_error: float
    psnr_db: float
    batch: int

    def __str__(self) -> str:
        return f"max abs error {self.max_abs_error:.3g}, PSNR {self.psnr_db:.1f} dB (batch {self.batch})"


def parity_fields(checks: Sequence[Parity]) -> dict[str, float | None]:
    """Manifest numbers of parity checks: the largest max abs error and the lowest PSNR
    (None where infinite: the manifest is strict JSON)."""
    err = max(c.max_abs_error for c in checks)
    db = min(c.psnr_db for c in checks)
    return {"max_abs_error": err if math.isfinite(err) else None,
            "psnr_db": round(db, 2) if math.isfinite(db) else None}


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio in dB; inf when identical; NaN anywhere gives -inf."""
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(test, dtype=np.float64)
    if not np.isfinite(got).all():
        return -math.inf
    mse = float(np.mean((ref - got) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range * data_range / mse)


def compare(reference: np.ndarray, test: np.ndarray) -> Parity:
    """Parity of ``test`` against ``reference`` (same shape [B, 3, H, W])."""
    if reference.shape != test.shape:
        raise ExportError(f"output shape {list(test.shape)} differs from torch's {list(reference.shape)}")
    diff = np.abs(reference.astype(np.float64) - test.astype(np.float64))
    err = float(diff.max()) if np.isfinite(diff).all() else math.inf
    return Parity(err, psnr(reference, test), int(reference.shape[0]))


@torch.no_grad()
def torch_reference(generator: nn.Module, inputs: dict[str, Tensor]) -> np.ndarray:
    """The fp32 torch output [B, 3, H, W] for ``example_inputs``-style inputs."""
    return generator_call(generator, generator.config, inputs).numpy()


def onnxruntime_parity(onnx_bytes: bytes, generator: nn.Module, cfg: ModelConfig,
                       batches: Sequence[int] = (1, 2, 3), threads: int = 2) -> list[Parity]:
    """Run ``model.onnx`` in ONNX Runtime (CPU) on :func:`example_inputs` of each batch size
    (one session: several sizes also prove the batch dim is dynamic) and compare with torch."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # this runs beside training jobs: stay polite
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    results = []
    for batch in batches:
        x = example_inputs(cfg, batch=batch, seed=batch)
        (got,) = session.run(["image"], {name: x[name].numpy() for name in graph_inputs(cfg, "standard")})
        results.append(compare(torch_reference(generator, x), got))
    return results
