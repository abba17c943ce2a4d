"""Small ONNX models the tests build (imported like tests/reference.py)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def heatmap_max_onnx(path: Path, height: int, width: int) -> Path:
    """A stub with the heatmap contract: image [B, 3, H, W] = source_image + the max over the
    18 target heatmaps (channels 18..35 of pose_heatmaps), so outputs show where joints land."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    def value(name: str, channels: int) -> Any:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", channels, height, width])

    inits = [numpy_helper.from_array(np.array([v], np.int64), k) for k, v in
             {"c18": 18, "c36": 36, "axis1": 1}.items()]
    nodes = [helper.make_node("Slice", ["pose_heatmaps", "c18", "c36", "axis1"], ["target"]),
             helper.make_node("ReduceMax", ["target"], ["target_max"], axes=[1], keepdims=1),
             helper.make_node("Add", ["source_image", "target_max"], ["image"])]
    graph = helper.make_graph(nodes, "stub", [value("source_image", 3), value("pose_heatmaps", 36)],
                              [value("image", 3)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def export_generator_onnx(generator: Any, path: Path, height: int, width: int) -> Path:
    """A generator's standard-op ONNX (attention as MatMul/Softmax/MatMul), opset 17, dynamic batch,
    inputs source_image [B, 3, H, W] and pose_heatmaps [B, 36, H, W], output image."""
    import torch
    from training.ops import plain_attention

    with plain_attention(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(generator, (torch.zeros(1, 3, height, width), torch.zeros(1, 36, height, width)),
                          str(path), input_names=["source_image", "pose_heatmaps"], output_names=["image"],
                          dynamic_axes={n: {0: "batch"} for n in ("source_image", "pose_heatmaps", "image")},
                          opset_version=17, dynamo=False)
    return path
