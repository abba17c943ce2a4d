"""Torch custom ops that exist only so the exporter can emit pyposert's ONNX nodes.

``pyposert::pose_heatmaps`` is the heatmap front of the TensorRT graph: keypoints in, the
generator's 36-channel pose input out. Its torch implementation is exactly
``training.ops.heatmaps_pair`` (the math every model was trained with); at export it becomes
one ``pyposert::PoseHeatmap`` ONNX node (export.onnx_export), which TensorRT runs as the
AOT plugin in export/plugins/pose_heatmap. (``pyposert::attention``, the other custom op,
lives in training/ops.py because the models call it.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from training.ops import heatmaps_pair

__all__ = ["HEATMAP_MODE_CODES", "pose_heatmaps"]

# Integer codes of the PoseHeatmap node's `mode` attribute (csrc HeatmapMode: 0 Gaussian, 1 disk).
HEATMAP_MODE_CODES: dict[str, int] = {"gaussian": 0, "disk": 1}
_MODE_NAMES: dict[int, str] = {code: name for name, code in HEATMAP_MODE_CODES.items()}


def _check(source: Tensor, target: Tensor, mode: int, height: int, width: int) -> None:
    if source.dim() != 3 or source.shape[-1] != 2 or source.shape != target.shape:
        raise ValueError("pose_heatmaps expects source and target keypoints [B, K, 2] (x, y) of one shape, got "
                         f"{list(source.shape)} and {list(target.shape)}")
    if mode not in HEATMAP_MODE_CODES.values():
        raise ValueError(f"pose_heatmaps mode must be 0 (gaussian) or 1 (disk), got {mode}")
    if height < 1 or width < 1:
        raise ValueError(f"pose_heatmaps size must be >= 1 x 1, got {height} x {width}")


@torch.library.custom_op("pyposert::pose_heatmaps", mutates_args=())
def _pose_heatmaps_op(source: Tensor, target: Tensor, mode: int, sigma: float, radius: float, height: int,
                      width: int) -> Tensor:
    """[B, K, 2], [B, K, 2] (x, y) model pixels -> float32 [B, 2K, H, W] (source channels first)."""
    _check(source, target, mode, height, width)
    return heatmaps_pair(source, target, height, width, mode=_MODE_NAMES[mode], sigma=sigma, radius=radius)


@_pose_heatmaps_op.register_fake
def _pose_heatmaps_fake(source: Tensor, target: Tensor, mode: int, sigma: float, radius: float, height: int,
                        width: int) -> Tensor:
    _check(source, target, mode, height, width)
    return source.new_empty(source.shape[0], 2 * source.shape[1], height, width, dtype=torch.float32)


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
