"""PoNA: pose-guided non-local attention generator and its two discriminators (seed 003).

Follows REFERENCE_MODELS.md ("PoNA") layer by layer; paper configuration (3 blocks, C = 256)
has 34.33 M generator parameters, as the paper's Table II.

Generator input: source image [B, 3, H, W] RGB in [-1, 1] and pose heatmaps [B, 36, H, W] =
concat(source 18, target 18) Gaussian maps in [0, 1] (training.ops.heatmaps_pair, mode
"gaussian"). Output: [B, 3, H, W] in [-1, 1] (Tanh).
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
    init_normal,
    spatial_attention,
)

if TYPE_CHECKING:
    from training.models import ModelConfig

__all__ = ["DCBlock", "FusionSelfAttention", "PoNABlock", "PoNAGenerator", "build_pona_discriminators"]


class DCBlock(nn.Sequential):
    """PoNA's double conv: 3x3 conv in->mid, norm, ReLU, Dropout, 3x3 conv mid->out, norm, ReLU.

    [B, in_ch, h, w] -> [B, out_ch, h, w]. For the pose update DC(2C -> C) the first conv keeps
    2C and the second halves it (PATN's 'cated' stream convention; with it the paper's 34.33 M
    parameters come out exactly, with 2C -> C -> C they would be 29.0 M).
    """

    def __init__(self, in_ch: int, out_ch: int, norm: str, dropout: float) -> None:
        mid = in_ch
        super().__init__(
            ConvNormAct(in_ch, mid, norm, nn.ReLU(inplace=True), dropout),
            ConvNormAct(mid, out_ch, norm, nn.ReLU(inplace=True)),
        )


class FusionSelfAttention(nn.Module):
    """SAGAN self-attention on the fused code z = concat(x, p): [B, 2C, h, w] -> same.

    q, k: 1x1 conv 2C -> 2C / ratio; v: 1x1 conv 2C -> 2C; energy unscaled (scale 1.0),
    softmax over keys. z <- gamma * attn + beta * z + z, gamma = beta = 0 at init, so the block
    starts as the identity and learns to mix in non-local evidence.
    """

    def __init__(self, channels: int, ratio: int = 8) -> None:
        super().__init__()
        inner = max(channels // ratio, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, z: Tensor) -> Tensor:
        attn = spatial_attention(self.query(z), self.key(z), self.value(z), scale=1.0)
        return self.gamma * attn + self.beta * z + z


class PoNABlock(nn.Module):
    """One PoNA block: (image code x [B,C,h,w], pose code p [B,C,h,w]) -> (x', p'), same shapes.

    1. z = concat(x, p); z <- self_attention(z); z <- z + DC(2C)(z)
    2. image path: x <- x + DC(C)(x); x <- x + DC(C)(x)
    3. image-guided pose update: p' = DC(2C -> C)(z)   (no residual)
    4. pose-guided non-local attention: q, k = 1x1 conv(p') (C -> C/ratio), v = 1x1 conv(x)
       (C -> C); x' = gamma * attention(q, k, v) + x, gamma = 0 at init.
    """

    def __init__(self, channels: int, norm: str, dropout: float, ratio: int = 8) -> None:
        super().__init__()
        c = channels
        self.fusion_attention = FusionSelfAttention(2 * c, ratio)
        self.fusion_dc = DCBlock(2 * c, 2 * c, norm, dropout)
        self.image_dc1 = DCBlock(c, c, norm, dropout)
        self.image_dc2 = DCBlock(c, c, norm, dropout)
        self.pose_update = DCBlock(2 * c, c, norm, dropout)
        inner = max(c // ratio, 1)
        self.query = nn.Conv2d(c, inner, 1)
        self.key = nn.Conv2d(c, inner, 1)
        self.value = nn.Conv2d(c, c, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        z = self.fusion_attention(torch.cat([x, p], dim=1))
        z = z + self.fusion_dc(z)
        x = x + self.image_dc1(x)
        x = x + self.image_dc2(x)
        p = self.pose_update(z)
        attn = spatial_attention(self.query(p), self.key(p), self.value(x), scale=1.0)
        return self.gamma * attn + x, p


class PoNAGenerator(nn.Module):
    """PoNA generator: (source [B,3,H,W] in [-1,1], pose [B,36,H,W] in [0,1]) -> [B,3,H,W] in [-1,1].

    Two encoders (image 3 ch, pose 36 ch; same layers, separate weights), n_blocks PoNA
    blocks at 1/2**n_down resolution, decoder from the final image code (the final pose code is
    discarded). Init N(0, 0.02); attention gammas/betas start at 0.
    """

    def __init__(self, cfg: "ModelConfig") -> None:
        super().__init__()
        self.config = cfg
        self.image_encoder = Encoder(cfg.image_input_channels, cfg.ngf, cfg.n_down, cfg.norm, cfg.enc_kernel)
        self.pose_encoder = Encoder(cfg.pose_channels, cfg.ngf, cfg.n_down, cfg.norm, cfg.enc_kernel)
        c = self.image_encoder.out_channels
        self.blocks = nn.ModuleList(
            PoNABlock(c, cfg.norm, cfg.dropout, cfg.attn_ratio) for _ in range(cfg.n_blocks)
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


def build_pona_discriminators(cfg: "ModelConfig") -> dict[str, nn.Module]:
    """PoNA's D_A ("appearance") and D_P ("pose"): PATN ResNet discriminators with every conv
    spectral-normalised and LeakyReLU(0.2) (paper, Sec. III-G); see build_pair_discriminators."""
    return build_pair_discriminators(cfg)
