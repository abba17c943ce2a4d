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


def completion_stub_onnx(path: Path, height: int, width: int, crop: int = 16, latent: int = 8,
                         batch: Any = "batch") -> Path:
    """A stub with the completion contract (pyposert.completion) in which every input matters:

        raw     = Tanh(noise[:, 1, :3] (per channel) + max over the 18 pose heatmaps
                       + mean of garment_crops)                         [B, 3, H, W]
        logits  = noise[:, 0, :8] (per class) + 4 x max pose heatmap x onehot(class 5, "top")
                  + mean of garment_crops                                [B, 8, H, W]
        image   = masked_image + erase_mask * raw
        parsing = masked_parsing + erase_mask * Softmax(logits, axis=1)

    so outside the erase region both outputs equal their inputs, as the contract says.
    ``latent`` must be >= 8; ``batch`` an int fixes the batch axis.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    assert latent >= 8

    def value(name: str, dims: list[Any]) -> Any:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch] + dims)

    inputs = [value("masked_image", [3, height, width]), value("masked_parsing", [8, height, width]),
              value("erase_mask", [1, height, width]), value("pose_heatmaps", [18, height, width]),
              value("garment_crops", [12, crop, crop]), value("noise", [2, latent])]
    outputs = [value("parsing", [8, height, width]), value("image", [3, height, width])]
    top = np.zeros((1, 8, 1, 1), np.float32)
    top[0, 5] = 4.0
    inits = [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in
             {"s_tex": [1, 0], "e_tex": [2, 3], "s_shape": [0, 0], "e_shape": [1, 8], "axes12": [1, 2],
              "rgb_shape": [-1, 3, 1, 1], "cls_shape": [-1, 8, 1, 1]}.items()]
    inits.append(numpy_helper.from_array(top, "top_gain"))
    nodes = [
        helper.make_node("Slice", ["noise", "s_tex", "e_tex", "axes12"], ["tex"]),        # [B, 1, 3]
        helper.make_node("Reshape", ["tex", "rgb_shape"], ["tex4"]),                       # [B, 3, 1, 1]
        helper.make_node("Slice", ["noise", "s_shape", "e_shape", "axes12"], ["shape"]),  # [B, 1, 8]
        helper.make_node("Reshape", ["shape", "cls_shape"], ["shape4"]),                   # [B, 8, 1, 1]
        helper.make_node("ReduceMax", ["pose_heatmaps"], ["pose_max"], axes=[1], keepdims=1),  # [B, 1, H, W]
        helper.make_node("ReduceMean", ["garment_crops"], ["crop_mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Add", ["tex4", "pose_max"], ["raw0"]),
        helper.make_node("Add", ["raw0", "crop_mean"], ["raw1"]),
        helper.make_node("Tanh", ["raw1"], ["raw"]),
        helper.make_node("Mul", ["erase_mask", "raw"], ["raw_in"]),
        helper.make_node("Add", ["masked_image", "raw_in"], ["image"]),
        helper.make_node("Mul", ["pose_max", "top_gain"], ["pose_top"]),                  # [B, 8, H, W]
        helper.make_node("Add", ["shape4", "pose_top"], ["logits0"]),
        helper.make_node("Add", ["logits0", "crop_mean"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        helper.make_node("Mul", ["erase_mask", "probs"], ["probs_in"]),
        helper.make_node("Add", ["masked_parsing", "probs_in"], ["parsing"]),
    ]
    graph = helper.make_graph(nodes, "stub_completion", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def stub_manifest(height: int, width: int) -> dict[str, Any]:
    """The manifest of a stub pose-transfer bundle of model frame [height, width]."""
    return {"model": {"name": "stub", "version": "test", "config": {}},
            "input": {"height": height, "width": width, "keypoint_format": "coco18", "keypoint_order": "xy",
                      "image": "rgb", "normalisation": "[-1,1]",
                      "heatmap": {"mode": "gaussian", "sigma": 1.0, "radius": 4.0}}}


def stub_bundle(path: Path, height: int, width: int) -> Path:
    """A valid bundle at ``path`` holding only a stub heatmap-contract ONNX graph
    (:func:`heatmap_max_onnx`): no torch program, no TensorRT engine."""
    from pyposert.bundle import write_bundle

    onnx_path = heatmap_max_onnx(path.with_suffix(".onnx"), height, width)
    return write_bundle(path, stub_manifest(height, width), {"model.onnx": ("onnx", onnx_path.read_bytes(), None)})


def warp_stub_onnx(path: Path, height: int, width: int) -> Path:
    """A stub with the keypoint contract and its optional warp inputs: image [B, 3, H, W] =
    warped_source * warp_coverage, so the output is exactly what the engine fed as the warp."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def value(name: str, shape: list[Any]) -> Any:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch"] + shape)

    inputs = [value("source_image", [3, height, width]), value("source_keypoints", [18, 2]),
              value("target_keypoints", [18, 2]), value("warped_source", [3, height, width]),
              value("warp_coverage", [1, height, width])]
    nodes = [helper.make_node("Mul", ["warped_source", "warp_coverage"], ["image"])]
    graph = helper.make_graph(nodes, "warp_stub", inputs, [value("image", [3, height, width])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
