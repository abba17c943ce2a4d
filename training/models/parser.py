"""Human parser: photo + pose -> the 8-class parsing map that fashion completion needs.

``ParserNet(photo [B, 3, H, W] RGB in [-1, 1], pose_heatmaps [B, 18, H, W] in [0, 1])
-> logits [B, 8, H, W]`` over :data:`pyposert.completion.PARSING_CLASSES` (background,
face + hair, upper-body skin, lower-body skin, hat, top, bottom, shoes).

A small U-Net: a stem, ``levels`` average-pool down steps (widths doubling up to
``max_ch``), and as many up steps, each a nearest-neighbour resize followed by 3x3
convolutions over the concatenated skip (resize-then-convolve: no transposed convolution, so
no checkerboard). Batch norm after every convolution (folded into the weights at export).
The pose heatmaps tell it where the person is and which limb is which; it is trained on the
synthetic renderer's exact parsings (:mod:`training.train_parser`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.models import config_from_dict

__all__ = ["ParserConfig", "ParserNet", "PARSER_INPUTS", "PARSER_OUTPUTS", "NUM_CLASSES", "JOINTS"]

NUM_CLASSES = 8
JOINTS = 18
PARSER_INPUTS = ("photo", "pose_heatmaps")
PARSER_OUTPUTS = ("parsing",)


@dataclass(frozen=True)
class ParserConfig:
    """height x width: model frame (divisible by 2**levels); ch: stem width, doubling per
    level up to max_ch; heatmap_sigma: Gaussian sigma of pose_heatmaps in model pixels."""

    name: str = "parser"
    height: int = 128
    width: int = 88
    ch: int = 16
    max_ch: int = 64
    levels: int = 3
    heatmap_sigma: float = 3.0

    def __post_init__(self) -> None:
        if self.name != "parser":
            raise ValueError(f"ParserConfig.name must be 'parser', got {self.name!r}")
        m = 1 << self.levels
        if self.height % m or self.width % m:
            raise ValueError(f"height and width must be divisible by 2**levels = {m}, got {self.height} x {self.width}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ParserConfig":
        return config_from_dict(cls, data)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ParserNet(nn.Module):
    """(photo [B, 3, H, W], pose_heatmaps [B, 18, H, W]) -> logits [B, 8, H, W]."""

    def __init__(self, cfg: ParserConfig):
        super().__init__()
        self.config = cfg
        w = [min(cfg.ch << i, cfg.max_ch) for i in range(cfg.levels + 1)]
        self.stem = _block(3 + JOINTS, w[0])
        self.down = nn.ModuleList([_block(w[i], w[i + 1]) for i in range(cfg.levels)])
        self.up = nn.ModuleList([_block(w[i + 1] + w[i], w[i]) for i in reversed(range(cfg.levels))])
        self.head = nn.Conv2d(w[0], NUM_CLASSES, 1)

    def forward(self, photo: Tensor, pose_heatmaps: Tensor) -> Tensor:
        f = self.stem(torch.cat([photo, pose_heatmaps], 1))
        skips = [f]
        for blk in self.down:
            f = blk(F.avg_pool2d(f, 2))
            skips.append(f)
        skips.pop()
        for blk in self.up:
            skip = skips.pop()
            f = blk(torch.cat([F.interpolate(f, size=skip.shape[-2:], mode="nearest"), skip], 1))
        return self.head(f)


class ParserGraph(nn.Module):
    """Export wrapper: (photo, pose_heatmaps) -> parsing probabilities [B, 8, H, W] (softmax)."""

    def __init__(self, net: ParserNet):
        super().__init__()
        self.net = net

    def forward(self, photo: Tensor, pose_heatmaps: Tensor) -> Tensor:
        return torch.softmax(self.net(photo, pose_heatmaps), 1)
