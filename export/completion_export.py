"""Completion checkpoint -> ``completion.plan`` (``python -m export RUN -o completion.plan`` sees
the checkpoint kind and comes here).

Graphs (opset 18, batch dynamic, the contract of :mod:`pyposert.completion`):

``model.onnx``: standard ops (attention as MatMul / Softmax / MatMul), for ONNX Runtime; its
    parity against torch is checked on batches 1, 2, 3 (max abs error <= 1e-4 on ``image``
    and ``parsing``, or the export fails).
``model_pyposert.onnx`` (+ ``_fp16`` with ``--fp16``): every attention as one
    ``pyposert::FusedAttention`` node (the heatmaps are an input here: no PoseHeatmap node),
    for TensorRT; structure-checked (ONNX Runtime has no kernels for the pyposert domain).
``model.pt2`` with ``--torch-export``; TensorRT engines with ``--tensorrt`` (each checked
    against torch fp32 on the GPU).

Spectral norm is a training-time reparameterisation: it is folded into plain weights first
(``remove_parametrizations``), so the graphs carry ordinary convolutions.

The test inputs are real: held-out synthetic people with a garment erased
(:class:`training.data.completion.CompletionSamples`), so the in-graph argmax of the parsing
sees realistic margins rather than random near-ties.
"""

from __future__ import annotations

import contextlib
import copy
import io
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from pyposert import completion as C
from pyposert.model import COMPLETION_INPUTS, COMPLETION_OUTPUTS
from training.models.completion import CompletionConfig, CompletionGraph, CompletionModel
from training.ops import plain_attention

__all__ = ["fold_spectral_norm", "completion_inputs", "completion_manifest", "export_completion_onnx", "export_completion_bundle"]

ORT_TOLERANCE = 1e-4


def fold_spectral_norm(model: CompletionModel) -> CompletionModel:
    """An eval-mode copy whose spectral-normalised weights are plain parameters (W / sigma).

    The copy is rebuilt from the state dict: a deepcopy would share the parametrised modules'
    per-instance classes, and removing a parametrisation edits that class -- breaking the
    original."""
    m = CompletionModel(model.config)
    m.load_state_dict(model.state_dict())
    m.eval()
    for module in m.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return m


def completion_inputs(cfg: CompletionConfig, batch: int, seed: int = 0) -> dict[str, Tensor]:
    """``batch`` held-out samples (eval split, starting at ``seed`` * 7) as the graph's inputs
    {name: float32 tensor} in :data:`pyposert.completion.COMPLETION_INPUTS` order."""
    from training.data.completion import CompletionSamples
    from training.train_completion import pose_heatmaps

    ds = CompletionSamples(cfg.height, cfg.width, cfg.crop_size, "eval", 0, "plain", margin=cfg.margin, pad=cfg.pad)
    items = [ds[seed * 7 + i] for i in range(batch)]
    stack = lambda k: torch.from_numpy(np.stack([s[k] for s in items]))  # noqa: E731
    return {"masked_image": stack("masked_image"), "masked_parsing": stack("masked_parsing"),
            "erase_mask": stack("erase_mask"), "pose_heatmaps": pose_heatmaps(stack("keypoints"), cfg),
            "garment_crops": stack("garment_crops"),
            "noise": torch.from_numpy(C.noise(seed, batch, cfg.latent))}


class _Half(nn.Module):
    """float32 I/O around a half-precision CompletionGraph (TensorRT 11 is strongly typed)."""

    def __init__(self, graph: CompletionGraph):
        super().__init__()
        self.inner = copy.deepcopy(graph).half()  # not "graph": that name is taken on an FX GraphModule

    def forward(self, masked_image: Tensor, masked_parsing: Tensor, erase_mask: Tensor, pose_heatmaps: Tensor,
                garment_crops: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        inputs = (masked_image, masked_parsing, erase_mask, pose_heatmaps, garment_crops, noise)
        parsing, image = self.inner(*(x.half() for x in inputs))
        return parsing.float(), image.float()


def export_completion_onnx(model: CompletionModel, graph: str = "standard", precision: str = "fp32",
                           opset: int = 18) -> bytes:
    """ONNX bytes of ``graph`` "standard" (plain attention) or "pyposert" (FusedAttention)."""
    from export import onnx_export as ox

    cfg = model.config
    x = completion_inputs(cfg, 2)
    module: nn.Module = CompletionGraph(model).eval()
    if precision == "fp16":
        module = _Half(module)
    names = list(COMPLETION_INPUTS)
    kwargs: dict[str, Any] = dict(dynamo=True, opset_version=opset, input_names=names,
                                  output_names=list(COMPLETION_OUTPUTS), dynamic_shapes=ox._dynamic(names),
                                  verbose=False)
    if graph == "pyposert":
        ox.register_onnx_schemas()
        kwargs["custom_translation_table"] = ox._translation_table()
    ctx = plain_attention() if graph == "standard" else contextlib.nullcontext()
    with torch.no_grad(), ctx, ox._quiet_export():
        program = torch.onnx.export(module, tuple(x[n] for n in names), **kwargs)
    return ox._finish(program.model_proto, cfg, graph, precision)


def _count(model_bytes: bytes, op: str, domain: str = "") -> int:
    m = onnx.load_from_string(model_bytes)
    seen = [n for n in m.graph.node if n.op_type == op and n.domain == domain]
    for f in m.functions:
        seen += [n for n in f.node if n.op_type == op and n.domain == domain]
    return len(seen)


def _ort_parity(data: bytes, model: CompletionModel, batches: tuple[int, ...] = (1, 2, 3)) -> dict[str, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    worst = {"image": 0.0, "parsing": 0.0}
    for b in batches:
        x = completion_inputs(model.config, b, seed=b)
        with torch.no_grad():
            ref = dict(zip(COMPLETION_OUTPUTS, model.sample(*(x[n] for n in COMPLETION_INPUTS))))
        got = dict(zip(COMPLETION_OUTPUTS, session.run(list(COMPLETION_OUTPUTS),
                                                         {n: x[n].numpy() for n in COMPLETION_INPUTS})))
        for k in worst:
            worst[k] = max(worst[k], float(np.abs(ref[k].numpy() - got[k]).max()))
    return worst


def completion_manifest(cfg: CompletionConfig, version: str, name: str = "completion") -> dict[str, Any]:
    """The bundle manifest (without payloads) of a completion model: task, model, input with
    the heatmap convention and ``input.completion`` (pyposert/bundle.py validates it)."""
    return {
        "task": "completion",
        "model": {"name": name, "version": version, "config": cfg.to_dict()},
        "input": {"height": cfg.height, "width": cfg.width, "keypoint_format": "coco18", "keypoint_order": "xy",
                  "image": "rgb", "normalisation": "[-1,1]",
                  "heatmap": {"mode": "gaussian", "sigma": float(cfg.heatmap_sigma), "radius": 4.0},
                  "completion": {"crop_size": cfg.crop_size, "latent": cfg.latent, "margin": float(cfg.margin),
                                 "pad": int(cfg.pad), "parsing_classes": list(C.PARSING_CLASSES),
                                 "garments": list(C.GARMENTS)}},
    }


def export_completion_bundle(folder: Path, output: Path, *, fp16: bool, tensorrt: bool, torch_export: bool,
                             opset: int, name: str | None, model_version: str | None, ptx_cache: Path | None,
                             result: Any,
                             progress: Callable[[str], None], done: Callable[[], None]) -> None:
    """Fill ``result`` (export.__main__.ExportResult) and write the bundle; see the module
    docstring. ``progress(label)`` / ``done()`` drive the caller's progress bar."""
    from export.onnx_export import ExportError
    from pyposert.bundle import write_bundle
    from training.train_completion import load_completion_checkpoint

    progress("loading checkpoint")
    ck = load_completion_checkpoint(folder)
    model = fold_spectral_norm(ck.build_model())
    cfg = model.config
    done()

    progress("model.onnx")
    standard = export_completion_onnx(model, "standard", "fp32", opset)
    done()
    progress("ONNX Runtime parity")
    worst = _ort_parity(standard, model)
    if not max(worst.values()) <= ORT_TOLERANCE:
        raise ExportError(f"model.onnx under ONNX Runtime differs from torch: max abs error {worst} > {ORT_TOLERANCE}")
    result.parity["model.onnx (ONNX Runtime, batch 1/2/3)"] = (
        f"max abs error image {worst['image']:.3g}, parsing {worst['parsing']:.3g}")
    payloads: dict[str, tuple[str, bytes, dict[str, Any]]] = {"model.onnx": ("onnx", standard, {
        "opset": opset, "precision": "fp32", "graph": "standard",
        "parity": {"reference": "torch fp32", "runtime": "onnxruntime", "batches": [1, 2, 3],
                   "max_abs_error": max(worst.values())}})}
    result.included.append(f"model.onnx: standard ops, opset {opset}, {_count(standard, 'Softmax')} Softmax "
                           f"(attention as MatMul/Softmax/MatMul and the parsing softmax)")
    done()

    graphs: dict[str, tuple[str, bytes]] = {}
    for precision in ("fp32", "fp16") if fp16 else ("fp32",):
        pname = "model_pyposert_fp16.onnx" if precision == "fp16" else "model_pyposert.onnx"
        progress(pname)
        data = export_completion_onnx(model, "pyposert", precision, opset)
        n_attn = _count(data, "FusedAttention", "pyposert")
        if n_attn == 0:
            raise ExportError(f"{pname}: no pyposert::FusedAttention node; the attention did not go through the op")
        payloads[pname] = ("onnx-pyposert", data, {"opset": opset, "precision": precision, "graph": "pyposert",
                                                   "domain_version": 1})
        graphs[precision] = (pname, data)
        result.included.append(f"{pname}: {precision}, {n_attn} FusedAttention node(s) (structure checked)")
        done()

    if torch_export:
        progress("model.pt2")
        x = completion_inputs(cfg, 2)
        batch = torch.export.Dim("batch", min=1, max=4096)
        with torch.no_grad(), plain_attention():
            program = torch.export.export(CompletionGraph(model).eval(), tuple(x[n] for n in COMPLETION_INPUTS),
                                          dynamic_shapes={n: {0: batch} for n in COMPLETION_INPUTS})
        buf = io.BytesIO()
        torch.export.save(program, buf)
        payloads["model.pt2"] = ("torch-export", buf.getvalue(), {"precision": "fp32", "graph": "standard"})
        result.included.append("model.pt2: torch.export program of the standard graph")
        done()

    if tensorrt:
        from export.plugins import compile_all, register_plugins
        from export.tensorrt_build import (build_engine, device_compute_capability, engine_payload_name,
                                           require_tensorrt, run_engine)

        progress("TensorRT engines")
        trt = require_tensorrt()
        cc = device_compute_capability()
        register_plugins(compile_all(f"compute_{cc[0]}{cc[1]}", ptx_cache))
        precision = "fp16" if fp16 else "fp32"
        pname, data = graphs[precision]
        t0 = time.perf_counter()
        engine = build_engine(trt, data)
        x = completion_inputs(cfg, 1, seed=5)
        with torch.no_grad():
            ref = model.sample(*(x[n] for n in COMPLETION_INPUTS))[1].numpy()
        err = float(np.abs(run_engine(trt, engine, x) - ref).max())
        ename = engine_payload_name(cc, trt.__version__, precision)
        payloads[ename] = ("tensorrt", engine, {"compute_capability": f"{cc[0]}.{cc[1]}",
                                                "tensorrt_version": trt.__version__, "precision": precision})
        result.parity[f"{ename} (batch 1)"] = f"max abs error image {err:.3g}"
        result.included.append(f"{ename}: from {pname}, built in {time.perf_counter() - t0:.0f} s")
        done()

    progress("writing bundle")
    manifest = completion_manifest(cfg, model_version or f"step-{ck.step}", name or "completion")
    write_bundle(output, manifest, payloads)
    result.sizes = {n: len(p[1]) for n, p in payloads.items()}
    done()
