"""NRAM: nested residual attention modules for pose transfer (seed 001, Zhong & Tan 2021).

The paper publishes no code; this follows its text (Sec. 3.1, Fig. 3) as summarised in
REFERENCE_MODELS.md ("NRAM"):

- two branches, appearance and pose, that update each other;
- residual blocks (conv, LeakyReLU slope 0.01) nested inside a residual attention module;
- the pose branch gives a sigmoid attention map of size H x W x 1 per module that selects
  appearance features through a short skip (attention-weighted residual);
- the attended appearance is concatenated back into the pose branch as feedback;
- 9 modules (paper figure 4 shows AM1..AM9), then two deconvolutions restore the resolution;
  encoders as PATN.

Choices the paper leaves open (stated so they can be revisited): each module nests 2
residual blocks; the module output is x' = x + m * (T(x) - x) where T is the chain of nested
residual blocks (so T(x) - x is the sum of their residuals: the short skip keeps x where the
map is 0 and takes the nested residual update where it is 1, and the identity path does not
grow from module to module); the pose branch is conv3x3 Cp -> C, norm, LReLU, conv3x3 C -> C,
norm, LReLU, and a 3x3 conv C -> 1 + sigmoid gives the map; feedback p' = concat(pose features,
x') (2C channels, as PATN). Instance norm as in the PATN lineage; no dropout.

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

__all__ = [
    "LEAKY_SLOPE",
    "LeakyResidualBlock",
    "NestedResidualAttentionModule",
    "NRAMGenerator",
    "build_nram_discriminators",
]

LEAKY_SLOPE = 0.01  # paper eq. 3: F(x) = x for x >= 0, 0.01 x otherwise


class LeakyResidualBlock(nn.Module):
    """Residual unit's branch: conv3x3, norm, LReLU(0.01), conv3x3, norm. [B,C,h,w] -> [B,C,h,w].

    Returns only the residual r(x); the caller adds the skip (so the module can weight it).
    """

    def __init__(self, channels: int, norm: str, dropout: float = 0.0) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            ConvNormAct(channels, channels, norm, nn.LeakyReLU(LEAKY_SLOPE, inplace=True), dropout),
            ConvNormAct(channels, channels, norm, None),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.branch(x)


class NestedResidualAttentionModule(nn.Module):
    """One NRAM module: (x [B,C,h,w], p [B,Cp,h,w]) -> (x' [B,C,h,w], p' [B,2C,h,w], m [B,1,h,w]).

    trunk:  t_0 = x, t_k = t_{k-1} + r_k(t_{k-1})       (nested residual blocks, inner skips)
    pose:   f = LReLU(norm(conv(LReLU(norm(conv(p))))))  (Cp -> C -> C)
            m = sigmoid(conv3x3(f)) in (0, 1), one channel: the H x W x 1 attention map
    output: x' = x + m * (t_n - x)                      (attention-weighted short skip)
            p' = concat(f, x')                           (appearance feedback to the pose branch)
    """

    def __init__(self, channels: int, pose_in: int, n_res: int, norm: str, dropout: float = 0.0) -> None:
        super().__init__()
        c = channels
        self.trunk = nn.ModuleList(LeakyResidualBlock(c, norm, dropout) for _ in range(n_res))
        self.pose_branch = nn.Sequential(
            ConvNormAct(pose_in, c, norm, nn.LeakyReLU(LEAKY_SLOPE, inplace=True)),
            ConvNormAct(c, c, norm, nn.LeakyReLU(LEAKY_SLOPE, inplace=True)),
        )
        self.to_map = conv3x3(c, 1)

    def forward(self, x: Tensor, p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        t = x
        for block in self.trunk:
            t = t + block(t)
        f = self.pose_branch(p)
        m = torch.sigmoid(self.to_map(f))  # [B, 1, h, w], broadcast over channels
        x = x + m * (t - x)
        return x, torch.cat([f, x], dim=1), m


class NRAMGenerator(nn.Module):
    """NRAM generator: (source [B,3,H,W] in [-1,1], pose [B,36,H,W] in [0,1]) -> [B,3,H,W] in [-1,1].

    PATN encoders, n_blocks nested residual attention modules at 1/2**n_down resolution
    (9 in the paper configuration), then the PATN decoder (n_down deconvolutions, 7x7 conv,
    Tanh). ``forward_with_maps`` also returns the per-module attention maps (paper Fig. 4).
    """

    def __init__(self, cfg: "ModelConfig") -> None:
        super().__init__()
        self.config = cfg
        self.image_encoder = Encoder(cfg.image_input_channels, cfg.ngf, cfg.n_down, cfg.norm, cfg.enc_kernel)
        self.pose_encoder = Encoder(cfg.pose_channels, cfg.ngf, cfg.n_down, cfg.norm, cfg.enc_kernel)
        c = self.image_encoder.out_channels
        self.attention_modules = nn.ModuleList(
            NestedResidualAttentionModule(c, c if i == 0 else 2 * c, cfg.nram_res_blocks, cfg.norm, cfg.dropout)
            for i in range(cfg.n_blocks)
        )
        self.decoder = Decoder(c, cfg.n_down, cfg.norm, cfg.image_output_channels, cfg.enc_kernel)
        init_normal(self)

    def forward_with_maps(self, source_image: Tensor, pose_heatmaps: Tensor) -> tuple[Tensor, list[Tensor]]:
        """-> (image [B,3,H,W] in [-1,1], attention maps: n_blocks x [B,1,H/4,W/4] in (0,1))."""
        check_generator_inputs(source_image, pose_heatmaps, self.config, multiple=2 ** self.config.n_down)
        x = self.image_encoder(source_image)
        p = self.pose_encoder(pose_heatmaps)
        maps: list[Tensor] = []
        for module in self.attention_modules:
            x, p, m = module(x, p)
            maps.append(m)
        return self.decoder(x), maps

    def forward(self, source_image: Tensor, pose_heatmaps: Tensor) -> Tensor:
        return self.forward_with_maps(source_image, pose_heatmaps)[0]


def build_nram_discriminators(cfg: "ModelConfig") -> dict[str, nn.Module]:
    """NRAM's conditional discriminators (conditioned on the inputs): the PATN pair,
    "appearance" [B,6,H,W] and "pose" [B,21,H,W]."""
    return build_pair_discriminators(cfg)
