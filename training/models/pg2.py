"""PG2: pose guided person generation, two stages (Ma et al., NIPS 2017; seed 004 notes).

Follows REFERENCE_MODELS.md ("PG2") and charliememory/Pose-Guided-Person-Image-Generation
(GeneratorCNN_Pose_UAEAfterResidual for G1, UAE_noFC_AfterNoise for G2, DCGAN D):

- G1: input concat(source image, target pose disks) 21 ch; U-Net of residual blocks, hidden
  width n = 128, depth log2(H) - 2 (channels n, 2n, ... depth*n); fully connected bottleneck
  (flatten -> FC to 64 -> FC back to n x h x w); nearest-neighbour upsampling decoder with skip
  concatenation; ReLU after every conv; no normalisation; linear output. 70.8 M parameters on
  Market-1501 (128 x 64).
- G2: input concat(G1 output, source image) 6 ch; U-Net without FC and without residuals,
  depth = G1 depth - 2 (as the reference code's ``repeat_num - 2``), width n; outputs a
  difference map; final = G1 + diff.
- D: DCGAN-style on single images [B, 3, H, W] -> one logit; in PG2's code the targets are
  the positives and both the generated images and the source images are negatives.

Input contract (same tensors as the other generators, so the runtime stays uniform):
source image [B, 3, H, W] RGB in [-1, 1]; pose heatmaps [B, 36, H, W] = concat(source 18,
target 18) **disk** maps in {0, 1} (training.ops.heatmaps_pair(mode="disk", radius=4)). G1
uses only the target 18 channels and maps them x2-1 to [-1, 1] itself, as PG2 does.

Output: ``forward`` returns the refined image clamped to [-1, 1] (inference/export);
``stages`` returns the unclamped coarse (G1) and refined (G1 + G2) images for the two-stage
losses -- train on those: a clamp would stop the L1 gradient of out-of-range pixels.
Sizes whose side is not a multiple of 2**(depth-1) (e.g. 176 = 11 * 16) work: strided convs
give ceil(size / 2) and upsampling goes to the skip's exact size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.models.common import check_generator_inputs

if TYPE_CHECKING:
    from training.models import ModelConfig

__all__ = ["PG2Stages", "PG2G1", "PG2G2", "PG2Generator", "PG2Discriminator", "pg2_depth",
           "build_pg2_discriminators"]


def pg2_depth(height: int) -> int:
    """PG2's repeat_num: log2(H) - 2 (5 for Market 128, 6 for DeepFashion 256)."""
    return max(int(math.log2(height)) - 2, 1)


def _conv(in_ch: int, out_ch: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    # TF 'SAME' padding; for stride 2 on odd sizes PyTorch's symmetric pad gives the same size.
    return nn.Conv2d(in_ch, out_ch, k, stride, k // 2)


def _down_sizes(h: int, w: int, depth: int) -> list[tuple[int, int]]:
    """Feature sizes per U-Net level: ceil-halving depth - 1 times."""
    sizes = [(h, w)]
    for _ in range(depth - 1):
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    return sizes


class _ResidualPair(nn.Module):
    """x + ReLU(conv(ReLU(conv(x)))) with 3x3 convs c -> c (PG2's residual block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv(channels, channels)
        self.conv2 = _conv(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + F.relu(self.conv2(F.relu(self.conv1(x))))


class PG2G1(nn.Module):
    """G1: [B, in_ch, H, W] (image in [-1,1] ++ disks in [-1,1]) -> coarse image [B, 3, H, W], linear.

    Encoder level i (0..depth-1), c_i = n (i + 1): residual block c_i (saved as skip), then a
    3x3 stride-2 conv c_i -> c_{i+1} (not after the last level). Bottleneck: flatten
    [c_last, h, w] -> FC z_dim -> FC n*h*w -> reshape. Decoder level i: concat skip, residual
    block on the concatenation, then (not at the end) nearest upsample to the next skip's size
    and 1x1 conv -> n (depth - i - 1). Output 3x3 conv -> 3, no activation.
    """

    def __init__(self, in_ch: int, height: int, width: int, hidden: int = 128, depth: int = 5,
                 z_dim: int = 64, out_ch: int = 3) -> None:
        super().__init__()
        n = hidden
        self.depth = depth
        self.sizes = _down_sizes(height, width, depth)
        self.stem = _conv(in_ch, n)
        self.enc_blocks = nn.ModuleList(_ResidualPair(n * (i + 1)) for i in range(depth))
        self.enc_down = nn.ModuleList(_conv(n * (i + 1), n * (i + 2), 3, 2) for i in range(depth - 1))
        bh, bw = self.sizes[-1]
        self.bottom_shape = (n, bh, bw)
        self.fc_in = nn.Linear(n * depth * bh * bw, z_dim)
        self.fc_out = nn.Linear(z_dim, n * bh * bw)
        dec_ch: list[int] = []
        up_ch: list[int] = []
        x_ch = n
        for i in range(depth):
            c = x_ch + n * (depth - i)  # concat with the skip of level depth - 1 - i
            dec_ch.append(c)
            if i < depth - 1:
                x_ch = n * (depth - i - 1)
                up_ch.append(x_ch)
        self.dec_blocks = nn.ModuleList(_ResidualPair(c) for c in dec_ch)
        self.dec_up = nn.ModuleList(_conv(dec_ch[i], up_ch[i], 1) for i in range(depth - 1))
        self.out = _conv(dec_ch[-1], out_ch)

    def forward(self, x: Tensor) -> Tensor:
        skips: list[Tensor] = []
        x = F.relu(self.stem(x))
        for i in range(self.depth):
            x = self.enc_blocks[i](x)
            skips.append(x)
            if i < self.depth - 1:
                x = F.relu(self.enc_down[i](x))
        # No activation around the FC bottleneck (linear, as the reference code).
        z = self.fc_in(x.flatten(1))
        x = self.fc_out(z).view(x.shape[0], *self.bottom_shape)
        for i in range(self.depth):
            x = self.dec_blocks[i](torch.cat([x, skips[self.depth - 1 - i]], dim=1))
            if i < self.depth - 1:
                x = F.interpolate(x, size=skips[self.depth - 2 - i].shape[-2:], mode="nearest")
                x = F.relu(self.dec_up[i](x))
        return self.out(x)


class PG2G2(nn.Module):
    """G2: [B, in_ch, H, W] (coarse image ++ source image) -> difference map [B, 3, H, W], linear.

    Encoder level i, c_i = n (i + 1): two 3x3 convs -> c_i (skip), 3x3 stride-2 conv c_i -> c_i
    (not after the last). Decoder level i: concat skip, two 3x3 convs -> n, nearest upsample to
    the next skip's size (not at the end). Output 3x3 conv -> 3. ReLU after every hidden conv.
    """

    def __init__(self, in_ch: int, hidden: int = 128, depth: int = 3, out_ch: int = 3) -> None:
        super().__init__()
        n = hidden
        self.depth = depth
        self.stem = _conv(in_ch, n)
        enc: list[nn.Module] = []
        prev = n
        for i in range(depth):
            c = n * (i + 1)
            enc.append(nn.Sequential(_conv(prev, c), nn.ReLU(inplace=True), _conv(c, c), nn.ReLU(inplace=True)))
            prev = c
        self.enc_blocks = nn.ModuleList(enc)
        self.enc_down = nn.ModuleList(_conv(n * (i + 1), n * (i + 1), 3, 2) for i in range(depth - 1))
        dec: list[nn.Module] = []
        x_ch = n * depth  # the bottom features enter the first decoder level with their own skip
        for i in range(depth):
            c_in = x_ch + n * (depth - i)
            dec.append(nn.Sequential(_conv(c_in, n), nn.ReLU(inplace=True), _conv(n, n), nn.ReLU(inplace=True)))
            x_ch = n
        self.dec_blocks = nn.ModuleList(dec)
        self.out = _conv(n, out_ch)

    def forward(self, x: Tensor) -> Tensor:
        skips: list[Tensor] = []
        x = F.relu(self.stem(x))
        for i in range(self.depth):
            x = self.enc_blocks[i](x)
            skips.append(x)
            if i < self.depth - 1:
                x = F.relu(self.enc_down[i](x))
        for i in range(self.depth):
            x = self.dec_blocks[i](torch.cat([x, skips[self.depth - 1 - i]], dim=1))
            if i < self.depth - 1:
                x = F.interpolate(x, size=skips[self.depth - 2 - i].shape[-2:], mode="nearest")
        return self.out(x)


class PG2Stages(NamedTuple):
    """coarse: G1 output [B,3,H,W]; refined: G1 + G2 difference [B,3,H,W]; both linear (unclamped).
    Warp-guided cores put the blend logits after the refined image ([B,6,H,W]); the
    WarpGuidedGenerator blends them away."""

    coarse: Tensor
    refined: Tensor


class PG2Generator(nn.Module):
    """PG2 = G1 then G2: (source [B,3,H,W] in [-1,1], pose [B,36,H,W] disks in {0,1}) -> image.

    Only pose[:, 18:36] (the target disks) is used; it is mapped to [-1, 1] here. See the
    module docstring for forward (clamped) vs stages (unclamped, for training).
    """

    def __init__(self, cfg: "ModelConfig") -> None:
        super().__init__()
        self.config = cfg
        depth = cfg.pg2_depth or pg2_depth(cfg.height)
        depth2 = cfg.pg2_depth2 or max(depth - 2, 1)
        self.n_target = cfg.pose_channels // 2
        self.g1 = PG2G1(cfg.image_input_channels + self.n_target, cfg.height, cfg.width, cfg.pg2_hidden,
                        depth, cfg.pg2_z, cfg.image_channels)
        # G2 sees G1's coarse image next to the image input; warp-guided, it also outputs the
        # blend logits (channels 3:) after its difference map.
        self.g2 = PG2G2(cfg.image_channels + cfg.image_input_channels, cfg.pg2_hidden, depth2,
                        cfg.image_output_channels)
        for m in self.modules():
            # TF slim's default initialiser (Glorot uniform), zero biases.
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def stages(self, source_image: Tensor, pose_heatmaps: Tensor) -> PG2Stages:
        check_generator_inputs(source_image, pose_heatmaps, self.config, exact_size=True)
        target = pose_heatmaps[:, self.n_target:] * 2.0 - 1.0
        coarse = self.g1(torch.cat([source_image, target], dim=1))
        diff = self.g2(torch.cat([coarse, source_image], dim=1))
        c = coarse.shape[1]
        refined = coarse + diff[:, :c]
        if diff.shape[1] > c:  # warp-guided: the blend logits pass through after the image
            refined = torch.cat([refined, diff[:, c:]], dim=1)
        return PG2Stages(coarse, refined)

    def forward(self, source_image: Tensor, pose_heatmaps: Tensor) -> Tensor:
        return self.stages(source_image, pose_heatmaps).refined.clamp(-1.0, 1.0)


class PG2Discriminator(nn.Module):
    """DCGAN-style discriminator on single images: [B, 3, H, W] in [-1, 1] -> logits [B, 1].

    n_layers 5x5 stride-2 convs, widths ndf * 2**i (capped at 8 ndf), LeakyReLU(0.2), batch norm
    on all but the first; n_layers = log2(H) - 3 so the last map is about 8 rows high; then a
    linear layer to one logit (no sigmoid: use BCE-with-logits).
    """

    def __init__(self, in_ch: int, height: int, width: int, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        n_layers = max(int(math.log2(height)) - 3, 1)
        layers: list[nn.Module] = []
        ch, h, w = in_ch, height, width
        for i in range(n_layers):
            out = ndf * min(2 ** i, 8)
            batch_norm = i > 0 and norm == "batch"
            # No bias before batch norm: the mean subtraction would cancel it.
            layers.append(nn.Conv2d(ch, out, 5, 2, 2, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            ch, h, w = out, (h + 1) // 2, (w + 1) // 2
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(ch * h * w, 1)
        self.in_channels = in_ch
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"discriminator expects [B, {self.in_channels}, H, W], got {list(x.shape)}")
        return self.fc(self.features(x).flatten(1))


def build_pg2_discriminators(cfg: "ModelConfig") -> dict[str, nn.Module]:
    """{"image": PG2Discriminator} on single images [B, 3, H, W]."""
    return {"image": PG2Discriminator(cfg.image_channels, cfg.height, cfg.width, cfg.ndf, cfg.d_norm)}
