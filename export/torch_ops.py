"""The exporter's side of pyposert's torch custom ops: calling them, and their ONNX nodes.

The ops themselves are registered once, in :mod:`pyposert.torch_ops`. Here:

- :func:`pose_heatmaps` -- the heatmap front of the TensorRT graph (keypoints in, the
  generator's 36-channel pose input out) through ``pyposert::pose_heatmaps``; its eager result
  is exactly ``training.ops.heatmaps_pair``. Exported as one ``pyposert::PoseHeatmap`` node
  (export.onnx_export), which TensorRT runs as the AOT plugin in export/plugins/pose_heatmap.
- :func:`warp` -- the part-wise skeleton warp through ``pyposert::warp``, exported as one
  ``pyposert::Warp`` node (:func:`register_warp_schema`, :func:`warp_translation`), run by
  TensorRT as the AOT plugin in export/plugins/warp.
"""

from __future__ import annotations

from typing import Any

import torch
from onnx import defs
from torch import Tensor

from pyposert import torch_ops

__all__ = ["HEATMAP_MODE_CODES", "WARP_NODE", "pose_heatmaps", "register_warp_schema", "warp", "warp_translation"]

# Integer codes of the PoseHeatmap node's `mode` attribute (csrc HeatmapMode, via pyposert._C).
HEATMAP_MODE_CODES: dict[str, int] = torch_ops.HEATMAP_MODES
WARP_NODE = "Warp"  # op type of the warp's node in the "pyposert" domain, version 1
_DOMAIN, _DOMAIN_VERSION = "pyposert", 1

torch_ops.register_all()


def pose_heatmaps(source: Tensor, target: Tensor, height: int, width: int, mode: str = "gaussian",
                  sigma: float = 6.0, radius: float = 4.0) -> Tensor:
    """Generator pose input from keypoints, through the ``pyposert::pose_heatmaps`` custom op.

    Args:
        source, target: float32 [B, K, 2] keypoints (x, y) in model pixels, x = column; a joint
            is missing (all-zero channel) when x or y is negative, NaN or infinite (-1 by convention).
        height, width: model frame H x W.
        mode, sigma, radius: "gaussian" exp(-d^2 / (2 sigma^2)) or "disk" (d <= radius).

    Returns:
        float32 [B, 2K, H, W] in [0, 1]: source maps then target maps; equal to
        ``training.ops.heatmaps_pair`` with the same arguments.
    """
    if mode not in HEATMAP_MODE_CODES:
        raise ValueError(f"mode must be one of {tuple(HEATMAP_MODE_CODES)}, got {mode!r}")
    return torch.ops.pyposert.pose_heatmaps(source.to(torch.float32), target.to(torch.float32),
                                            HEATMAP_MODE_CODES[mode], float(sigma), float(radius), int(height),
                                            int(width))


def warp(image: Tensor, source_keypoints: Tensor, target_keypoints: Tensor, height: int,
         width: int) -> tuple[Tensor, Tensor]:
    """The skeleton-driven warp through the ``pyposert::warp`` custom op (math: pyposert.ops.warp).

    Args:
        image: [B, C, Hs, Ws] float32 or float16 source image.
        source_keypoints: float32 [B, 18, 2] COCO-18 (x, y) in source-image pixels.
        target_keypoints: float32 [B, 18, 2] (x, y) in output pixels; missing: negative, NaN, inf.
        height, width: output H, W.

    Returns:
        (warped [B, C, H, W], coverage [B, 1, H, W]) in the image's dtype. Not differentiable.
    """
    return torch.ops.pyposert.warp(image, source_keypoints.to(torch.float32), target_keypoints.to(torch.float32),
                                   int(height), int(width))


def register_warp_schema() -> None:
    """Register the ONNX schema of ``pyposert::Warp`` (version 1) with ONNX's registry
    (process-wide, idempotent); onnxscript resolves the node through it."""
    if defs.has(WARP_NODE, _DOMAIN):
        return
    S = defs.OpSchema
    defs.register_schema(S(
        WARP_NODE, _DOMAIN, _DOMAIN_VERSION,
        "Part-wise warp of a source image [B, C, Hs, Ws] from its COCO-18 skeleton (source_keypoints "
        "[B, 18, 2] (x, y) source pixels) to a target skeleton (target_keypoints [B, 18, 2], output "
        "pixels); missing joints negative/NaN. Outputs the composited source colours [B, C, height, width] "
        "and the coverage [B, 1, height, width] in [0, 1] (csrc/warp.h).",
        inputs=[S.FormalParameter("image", "T"), S.FormalParameter("source_keypoints", "K"),
                S.FormalParameter("target_keypoints", "K")],
        outputs=[S.FormalParameter("warped", "T"), S.FormalParameter("coverage", "T")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "image and outputs"),
                          ("K", ["tensor(float)"], "keypoints are float32")],
        attributes=[S.Attribute("height", S.AttrType.INT, "output H"),
                    S.Attribute("width", S.AttrType.INT, "output W")]))


def warp_translation() -> dict[Any, Any]:
    """{torch op: onnxscript function} for ``torch.onnx.export(custom_translation_table=...)``:
    ``pyposert::warp`` -> one ``pyposert::Warp`` node."""
    import onnxscript

    register_warp_schema()
    op = onnxscript.values.Opset(_DOMAIN, _DOMAIN_VERSION)

    def warp_node(image: Any, source_keypoints: Any, target_keypoints: Any, height: int, width: int) -> Any:
        return op.Warp(image, source_keypoints, target_keypoints, height=int(height), width=int(width),
                       _num_outputs=2)

    return {torch.ops.pyposert.warp.default: warp_node}
