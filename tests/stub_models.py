"""Small ONNX models the tests build (imported like tests/reference.py)."""

from __future__ import annotations

import warnings
import threading
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pytest


# ------------------------------------------------------------------ building blocks
def tensor(name: str, dims: list[Any], batch: Any = "batch") -> Any:
    """A float32 graph input/output ``name`` of shape [batch] + dims."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch] + list(dims))


def constants(ints: Optional[dict[str, Any]] = None, floats: Optional[dict[str, Any]] = None) -> list[Any]:
    """Initialisers: int64 and float32 arrays by name."""
    from onnx import numpy_helper

    return ([numpy_helper.from_array(np.array(v, np.int64), k) for k, v in (ints or {}).items()]
            + [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in (floats or {}).items()])


def save_graph(path: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any],
               inits: Sequence[Any] = ()) -> Path:
    """Save an opset-17 ONNX model of these nodes at ``path`` (checked by onnx first)."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def pose_transfer_io(height: int, width: int, batch: Any = "batch") -> tuple[list[Any], list[Any]]:
    """The heatmap contract's inputs (source_image, pose_heatmaps) and output (image)."""
    return ([tensor("source_image", [3, height, width], batch), tensor("pose_heatmaps", [36, height, width], batch)],
            [tensor("image", [3, height, width], batch)])


def run_in_threads(work: Callable[[int], None], count: int = 4) -> None:
    """Run ``work(i)`` for i in 0..count-1 on as many threads at once; re-raise the first
    exception any of them raised (a thread's exception is otherwise lost)."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def guarded(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def torch_cuda() -> bool:
    """True where torch sees a CUDA device and pyposert's CUDA kernels run (GPU tests)."""
    try:
        import torch
    except ImportError:
        return False
    import pyposert

    return bool(torch.cuda.is_available()) and pyposert.cuda_available()


# ------------------------------------------------------------------ pose-transfer stubs
def heatmap_max_onnx(path: Path, height: int, width: int) -> Path:
    """A stub with the heatmap contract: image [B, 3, H, W] = source_image + the max over the
    18 target heatmaps (channels 18..35 of pose_heatmaps), so outputs show where joints land."""
    helper = pytest.importorskip("onnx.helper")
    nodes = [helper.make_node("Slice", ["pose_heatmaps", "c18", "c36", "axis1"], ["target"]),
             helper.make_node("ReduceMax", ["target"], ["target_max"], axes=[1], keepdims=1),
             helper.make_node("Add", ["source_image", "target_max"], ["image"])]
    inputs, outputs = pose_transfer_io(height, width)
    return save_graph(path, nodes, inputs, outputs, constants({"c18": [18], "c36": [36], "axis1": [1]}))


def heatmap_pair_onnx(path: Path, height: int, width: int, batch: Any = "batch") -> Path:
    """A stub with the heatmap contract: image = (R: 2 max(source maps) - 1, G: 2 max(target
    maps) - 1, B: the source image's blue channel), so both halves of pose_heatmaps and the
    photo show in the output."""
    helper = pytest.importorskip("onnx.helper")
    nodes = [
        helper.make_node("Slice", ["pose_heatmaps", "c0", "c18", "axis1"], ["src_maps"]),
        helper.make_node("Slice", ["pose_heatmaps", "c18", "c36", "axis1"], ["tgt_maps"]),
        helper.make_node("ReduceMax", ["src_maps"], ["src_max"], axes=[1], keepdims=1),
        helper.make_node("ReduceMax", ["tgt_maps"], ["tgt_max"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["src_max", "two"], ["src2"]),
        helper.make_node("Sub", ["src2", "one"], ["red"]),
        helper.make_node("Mul", ["tgt_max", "two"], ["tgt2"]),
        helper.make_node("Sub", ["tgt2", "one"], ["green"]),
        helper.make_node("Slice", ["source_image", "c2", "c3", "axis1"], ["blue"]),
        helper.make_node("Concat", ["red", "green", "blue"], ["image"], axis=1),
    ]
    inputs, outputs = pose_transfer_io(height, width, batch)
    inits = constants({"c0": [0], "c18": [18], "c36": [36], "c2": [2], "c3": [3], "axis1": [1]},
                      {"two": 2.0, "one": 1.0})
    return save_graph(path, nodes, inputs, outputs, inits)


def heatmap_groups_onnx(path: Path, height: int, width: int, groups: tuple[tuple[int, ...], ...]) -> Path:
    """A stub with the heatmap contract: output channel c (R, G, B) = 2 max(target heatmaps of
    the joints ``groups[c]``) - 1, black where none of them is."""
    helper = pytest.importorskip("onnx.helper")
    names = ("red", "green", "blue")
    nodes = []
    for name in names:
        nodes += [helper.make_node("Gather", ["pose_heatmaps", name], [f"{name}_maps"], axis=1),
                  helper.make_node("ReduceMax", [f"{name}_maps"], [f"{name}_max"], axes=[1], keepdims=1)]
    nodes += [helper.make_node("Concat", [f"{n}_max" for n in names], ["rgb"], axis=1),
              helper.make_node("Mul", ["rgb", "two"], ["rgb2"]),
              helper.make_node("Sub", ["rgb2", "one"], ["image"])]
    inits = constants({name: [18 + j for j in joints] for name, joints in zip(names, groups)},
                      {"two": 2.0, "one": 1.0})
    inputs, outputs = pose_transfer_io(height, width)
    return save_graph(path, nodes, inputs, outputs, inits)


def keypoint_x_onnx(path: Path, height: int, width: int) -> Path:
    """A stub with the keypoint contract: a constant image whose R (and B) = target x of joint
    0 and G = source x of joint 0, both as 2 x / W - 1 (so uint8 = round(255 x / W))."""
    helper = pytest.importorskip("onnx.helper")
    inputs = [tensor("source_image", [3, height, width]), tensor("source_keypoints", [18, 2]),
              tensor("target_keypoints", [18, 2])]
    nodes = []
    for name in ("target", "source"):
        nodes += [helper.make_node("Slice", [f"{name}_keypoints", "zeros2", "ones2", "axes12"], [f"{name}_x"]),
                  helper.make_node("Unsqueeze", [f"{name}_x", "axis3"], [f"{name}_x4"]),
                  helper.make_node("Mul", [f"{name}_x4", "scale"], [f"{name}_s"]),
                  helper.make_node("Sub", [f"{name}_s", "one"], [f"{name}_v"])]
    nodes += [helper.make_node("Concat", ["target_v", "source_v", "target_v"], ["rgb"], axis=1),
              helper.make_node("Mul", ["source_image", "zero"], ["blank"]),
              helper.make_node("Add", ["blank", "rgb"], ["image"])]
    inits = constants({"zeros2": [0, 0], "ones2": [1, 1], "axes12": [1, 2], "axis3": [3]},
                      {"scale": 2.0 / width, "one": 1.0, "zero": 0.0})
    return save_graph(path, nodes, inputs, [tensor("image", [3, height, width])], inits)


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
    assert latent >= 8
    helper = pytest.importorskip("onnx.helper")
    inputs = [tensor("masked_image", [3, height, width], batch), tensor("masked_parsing", [8, height, width], batch),
              tensor("erase_mask", [1, height, width], batch), tensor("pose_heatmaps", [18, height, width], batch),
              tensor("garment_crops", [12, crop, crop], batch), tensor("noise", [2, latent], batch)]
    outputs = [tensor("parsing", [8, height, width], batch), tensor("image", [3, height, width], batch)]
    top = np.zeros((1, 8, 1, 1), np.float32)
    top[0, 5] = 4.0
    inits = constants({"s_tex": [1, 0], "e_tex": [2, 3], "s_shape": [0, 0], "e_shape": [1, 8], "axes12": [1, 2],
                       "rgb_shape": [-1, 3, 1, 1], "cls_shape": [-1, 8, 1, 1]}, {"top_gain": top})
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
    return save_graph(path, nodes, inputs, outputs, inits)


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
    helper = pytest.importorskip("onnx.helper")
    inputs = [tensor("source_image", [3, height, width]), tensor("source_keypoints", [18, 2]),
              tensor("target_keypoints", [18, 2]), tensor("warped_source", [3, height, width]),
              tensor("warp_coverage", [1, height, width])]
    nodes = [helper.make_node("Mul", ["warped_source", "warp_coverage"], ["image"])]
    return save_graph(path, nodes, inputs, [tensor("image", [3, height, width])])
