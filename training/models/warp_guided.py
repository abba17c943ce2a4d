"""Warp-guided generators: the seed architectures, given the source photo already warped to
the target skeleton, output a learned per-pixel blend instead of inventing every pixel.

Inputs (model frame H x W, (x, y) keypoints in model pixels):
    source_image [B, 3, H, W] RGB in [-1, 1]
    pose_heatmaps [B, 36, H, W] in [0, 1] (source 18 ++ target 18, the config's heatmap mode)
    warped_source [B, 3, H, W] in [-1, 1]: ``pyposert.ops.warp`` of the source image from the
        source to the target skeleton (zero where no body part reaches)
    warp_coverage [B, 1, H, W] in [0, 1]: how much of each pixel the warp's parts cover

The core network (NRAM, PoNA, PATN or PG2, unchanged apart from its first and last layer
widths) reads concat(source, warped, coverage) in its image branch and outputs its generated
image plus one logit per blend source. The output is

    out = w_warped * warped_source + w_source * source_image + w_generated * generated,
    (w_warped, w_source, w_generated) = softmax(BLEND_LOGIT_SCALE * logits)

so the photo's real texture passes through where the warp is right, the photo itself stays
where the person is not (the background of a static camera), and the network paints seams,
disocclusions and the place the person left.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from training.models.pg2 import PG2Stages

__all__ = ["BLEND_LOGIT_SCALE", "WarpGuidedGenerator", "guide_input", "blend"]

# The seed decoders end in Tanh (PATN lineage) or are linear (PG2); scaled by 4, a Tanh
# output in [-1, 1] spans logits [-4, 4], enough for one source to take > 0.999 of a pixel.
BLEND_LOGIT_SCALE = 4.0


def guide_input(source_image: Tensor, warped_source: Tensor, warp_coverage: Tensor) -> Tensor:
    """concat(source [B,3,H,W], warped [B,3,H,W], coverage [B,1,H,W]) -> [B, 7, H, W]."""
    if warped_source.shape != source_image.shape:
        raise ValueError(f"warped_source must be {list(source_image.shape)} like source_image, "
                         f"got {list(warped_source.shape)}")
    b, _, h, w = source_image.shape
    if tuple(warp_coverage.shape) != (b, 1, h, w):
        raise ValueError(f"warp_coverage must be [{b}, 1, {h}, {w}], got {list(warp_coverage.shape)}")
    return torch.cat([source_image, warped_source, warp_coverage], dim=1)


def blend(raw: Tensor, source_image: Tensor, warped_source: Tensor) -> tuple[Tensor, Tensor]:
    """raw [B, 3 + 3, H, W] = (generated image, blend logits) -> (image [B,3,H,W], weights
    [B,3,H,W] over BLEND_SOURCES, summing to 1 per pixel)."""
    c = source_image.shape[1]  # weights follow BLEND_SOURCES: (warped, source, generated)
    generated, logits = raw[:, :c], raw[:, c:]
    weights = torch.softmax(BLEND_LOGIT_SCALE * logits, dim=1)
    image = weights[:, 0:1] * warped_source + weights[:, 1:2] * source_image + weights[:, 2:3] * generated
    return image, weights


class WarpGuidedGenerator(nn.Module):
    """(source_image, pose_heatmaps, warped_source, warp_coverage) -> image [B, 3, H, W].

    ``core`` is a seed generator built from a config with ``warp_guided=True`` (image input 7
    channels, output 3 + len(BLEND_SOURCES)). PG2 cores also give ``stages`` (coarse G1 image,
    blended refined image, both unclamped) for PG2's two-stage losses.
    """

    def __init__(self, core: nn.Module) -> None:
        super().__init__()
        if not core.config.warp_guided:
            raise ValueError("the core generator must be built with warp_guided=True")
        self.core = core
        self.config = core.config

    def forward_with_weights(self, source_image: Tensor, pose_heatmaps: Tensor, warped_source: Tensor,
                             warp_coverage: Tensor) -> tuple[Tensor, Tensor]:
        """-> (image [B,3,H,W], blend weights [B,3,H,W] over (warped, source, generated))."""
        guided = guide_input(source_image, warped_source, warp_coverage)
        if hasattr(self.core, "stages"):
            raw = self.core.stages(guided, pose_heatmaps).refined
        else:
            raw = self.core(guided, pose_heatmaps)
        image, weights = blend(raw, source_image, warped_source)
        return image.clamp(-1.0, 1.0), weights

    def forward(self, source_image: Tensor, pose_heatmaps: Tensor, warped_source: Tensor,
                warp_coverage: Tensor) -> Tensor:
        return self.forward_with_weights(source_image, pose_heatmaps, warped_source, warp_coverage)[0]

    def stages(self, source_image: Tensor, pose_heatmaps: Tensor, warped_source: Tensor,
               warp_coverage: Tensor) -> PG2Stages:
        """PG2 only: (coarse G1 image, refined blended image), both unclamped."""
        if not hasattr(self.core, "stages"):
            raise AttributeError(f"{self.config.name} has no stages (PG2 only)")
        s = self.core.stages(guide_input(source_image, warped_source, warp_coverage), pose_heatmaps)
        return PG2Stages(s.coarse, blend(s.refined, source_image, warped_source)[0])
