"""PATN: progressive pose-attention transfer (Zhu et al., CVPR 2019) -- the baseline.

Follows REFERENCE_MODELS.md ("PATN") and tengteng95/Pose-Transfer's PATNetwork: paper
configuration (9 blocks, C = 256, instance norm) has 41.36 M generator parameters.

Generator input: source image [B, 3, H, W] RGB in [-1, 1] and pose heatmaps [B, 36, H, W] =
concat(source 18, target 18) Gaussian maps in [0, 1]. Output [B, 3, H, W] in [-1, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from training.models.common import (
    ConvNormAct,
    Decoder,
    Encoder,
    build_pair_discriminators,
    check_generator_inputs,
    conv3x3,
    init_normal,
)

if TYPE_CHECKING:
    from training.models import ModelConfig

__all__ = ["PATBlock", "PATNGenerator", "build_patn_discriminators"]


class PATBlock(nn.Module):
    """Pose-attentional transfer block: (x [B,C,h,w], p [B,Cp,h,w]) -> (x', p' [B,2C,h,w]).

    Image stream: conv3x3, norm, ReLU, Dropout, conv3x3, norm (C -> C).
    Pose stream: conv3x3 Cp -> Cp, norm, ReLU, Dropout, conv3x3 Cp -> C (no norm/activation);
    Cp = C in block 1, 2C after (the pose stream carries the previous block's output too).
    M = sigmoid(pose output), C channels (not 1). x' = x + image_stream(x) * M;
    p' = concat(pose output before the sigmoid, x').
    """

    def __init__(self, channels: int, pose_in: int, norm: str, dropout: float) -> None:
        super().__init__()
        c = channels
        self.image_stream = nn.Sequential(
            ConvNormAct(c, c, norm, nn.ReLU(inplace=True), dropout),
            ConvNormAct(c, c, norm, None),
        )
        self.pose_stream = nn.Sequential(
            ConvNormAct(pose_in, pose_in, norm, nn.ReLU(inplace=True), dropout),
            conv3x3(pose_in, c),
        )

    def forward(self, x: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        pose_out = self.pose_stream(p)
        x = x + self.image_stream(x) * torch.sigmoid(pose_out)
        return x, torch.cat([pose_out, x], dim=1)


class PATNGenerator(nn.Module):
    """PATN generator: (source [B,3,H,W] in [-1,1], pose [B,36,H,W] in [0,1]) -> [B,3,H,W] in [-1,1].

    Image and pose encoders (PoNA's, separate weights), n_blocks PAT blocks, decoder from the
    image code. Init N(0, 0.02).
    """

    def __init__(self, cfg: "ModelConfig") -> None:
        super().__init__()
        self.config = cfg
        self.image_encoder = Encoder(cfg.image_input_channels, cfg.ngf, cfg.n_down, cfg.norm, cfg.enc_kernel)
        self.pose_encoder = Encoder(cfg.pose_channels, cfg.ngf, cfg.n_down, cfg.norm, cfg.enc_kernel)
        c = self.image_encoder.out_channels
        self.blocks = nn.ModuleList(
            PATBlock(c, c if i == 0 else 2 * c, cfg.norm, cfg.dropout) for i in range(cfg.n_blocks)
        )
        self.decoder = Decoder(c, cfg.n_down, cfg.norm, cfg.image_output_channels, cfg.enc_kernel)
        init_normal(self)

    def forward(self, source_image: Tensor, pose_heatmaps: Tensor) -> Tensor:
        check_generator_inputs(source_image, pose_heatmaps, self.config, multiple=2 ** self.config.n_down)
        x = self.image_encoder(source_image)
        p = self.pose_encoder(pose_heatmaps)
        for block in self.blocks:
            x, p = block(x, p)
        return self.decoder(x)


def build_patn_discriminators(cfg: "ModelConfig") -> dict[str, nn.Module]:
    """PATN's D_PP ("appearance", [B,6,H,W]) and D_PB ("pose", [B,21,H,W]) ResNet discriminators."""
    return build_pair_discriminators(cfg)
