"""Layers shared by the PATN-lineage generators (PATN, PoNA, NRAM) and their discriminators.

Tensor layout everywhere: NCHW float32. Images are RGB in [-1, 1]; pose heatmaps are the
36-channel concat(source 18, target 18) maps in [0, 1] (see training.ops.heatmaps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from training.ops import attention

if TYPE_CHECKING:
    from training.models import ModelConfig

__all__ = [
    "NORMS",
    "make_norm",
    "conv_bias",
    "conv3x3",
    "check_generator_inputs",
    "ConvNormAct",
    "Encoder",
    "Decoder",
    "ResnetBlock",
    "ResnetDiscriminator",
    "spatial_attention",
    "init_normal",
    "build_pair_discriminators",
]

NORMS = ("instance", "batch", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    """Normalisation layer by name.

    "instance": InstanceNorm2d without affine parameters and without running statistics, as
    in PATN/PoNA (get_norm_layer('instance')); "batch": BatchNorm2d (Market-1501 in PoNA);
    "none": identity.
    """
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def conv_bias(norm: str) -> bool:
    """PATN's use_bias rule: convs carry a bias unless batch norm follows.

    Before a non-affine InstanceNorm the bias is cancelled by the mean subtraction (its gradient
    is identically zero); PATN/PoNA keep it anyway and the papers' parameter counts include it
    (PoNA 34.33 M, PATN 41.36 M), so it stays for fidelity.
    """
    return norm != "batch"


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, reflect: bool = True, bias: bool = True) -> nn.Sequential:
    """3x3 convolution; reflection padding (PATN blocks) or zero padding (strided)."""
    if reflect and stride == 1:
        return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(in_ch, out_ch, 3, stride, 0, bias=bias))
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=bias))


class ConvNormAct(nn.Sequential):
    """conv3x3 (reflection padded) -> norm -> activation -> optional dropout."""

    def __init__(self, in_ch: int, out_ch: int, norm: str, act: nn.Module | None,
                 dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [conv3x3(in_ch, out_ch, bias=conv_bias(norm)), make_norm(norm, out_ch)]
        if act is not None:
            layers.append(act)
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


class Encoder(nn.Sequential):
    """PATN/PoNA encoder: [B, in_ch, H, W] -> [B, ngf * 2**n_down, H / 2**n_down, W / 2**n_down].

    Reflection-pad k//2, k x k conv -> ngf, norm, ReLU; then n_down times a 3x3 stride-2 conv
    doubling the width, norm, ReLU. Paper: k = 7, ngf = 64, n_down = 2 -> 256 x H/4 x W/4.
    Output size per stride-2 step is ceil(size / 2).
    """

    def __init__(self, in_ch: int, ngf: int, n_down: int, norm: str, kernel: int = 7) -> None:
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(in_ch, ngf, kernel, 1, 0, bias=conv_bias(norm)),
            make_norm(norm, ngf),
            nn.ReLU(inplace=True),
        ]
        ch = ngf
        for _ in range(n_down):
            layers += [nn.Conv2d(ch, ch * 2, 3, 2, 1, bias=conv_bias(norm)), make_norm(norm, ch * 2),
                       nn.ReLU(inplace=True)]
            ch *= 2
        super().__init__(*layers)
        self.out_channels = ch


class Decoder(nn.Sequential):
    """PATN/PoNA decoder: [B, C, h, w] -> image [B, out_ch, h * 2**n_up, w * 2**n_up] in [-1, 1].

    n_up times ConvTranspose 3x3 stride 2 (padding 1, output_padding 1) halving the width,
    norm, ReLU; then reflection-pad k//2, k x k conv -> out_ch, Tanh.
    """

    def __init__(self, in_ch: int, n_up: int, norm: str, out_ch: int = 3, kernel: int = 7) -> None:
        layers: list[nn.Module] = []
        ch = in_ch
        for _ in range(n_up):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, 2, padding=1, output_padding=1, bias=conv_bias(norm)),
                make_norm(norm, ch // 2),
                nn.ReLU(inplace=True),
            ]
            ch //= 2
        layers += [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(ch, out_ch, kernel, 1, 0), nn.Tanh()]
        super().__init__(*layers)


class ResnetBlock(nn.Module):
    """PATN ResnetBlock: x + [conv3x3, norm, act, dropout, conv3x3, norm](x). [B,C,h,w] -> same."""

    def __init__(self, channels: int, norm: str, dropout: float = 0.0, slope: float = 0.0,
                 sn: bool = False) -> None:
        super().__init__()
        act: nn.Module = nn.LeakyReLU(slope, inplace=True) if slope > 0 else nn.ReLU(inplace=True)
        c1 = nn.Conv2d(channels, channels, 3, 1, 0, bias=conv_bias(norm))
        c2 = nn.Conv2d(channels, channels, 3, 1, 0, bias=conv_bias(norm))
        if sn:
            c1, c2 = _spectral_norm(c1), _spectral_norm(c2)
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), c1, make_norm(norm, channels), act]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), c2, make_norm(norm, channels)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class ResnetDiscriminator(nn.Module):
    """PATN ResnetDiscriminator (also PoNA's D_A / D_P with spectral norm, and NRAM's).

    [B, in_ch, H, W] -> score map [B, ndf * 2**n_down, H / 2**n_down, W / 2**n_down].
    Reflection-pad 3, 7x7 conv -> ndf, norm, act; n_down 3x3 stride-2 convs doubling the width,
    norm, act; n_blocks ResnetBlocks. No final 1-channel conv: every element of the map enters
    the GAN loss (LSGAN on DeepFashion in PATN). act = ReLU (slope 0) or LeakyReLU(slope).
    With sn every conv is spectrally normalised (PoNA).
    """

    def __init__(self, in_ch: int, ndf: int = 64, n_down: int = 2, n_blocks: int = 3,
                 norm: str = "instance", dropout: float = 0.5, slope: float = 0.0,
                 sn: bool = False) -> None:
        super().__init__()

        def wrap(conv: nn.Conv2d) -> nn.Module:
            return _spectral_norm(conv) if sn else conv

        def act() -> nn.Module:
            return nn.LeakyReLU(slope, inplace=True) if slope > 0 else nn.ReLU(inplace=True)

        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), wrap(nn.Conv2d(in_ch, ndf, 7, 1, 0, bias=bias)),
                                   make_norm(norm, ndf), act()]
        ch = ndf
        for _ in range(n_down):
            layers += [wrap(nn.Conv2d(ch, ch * 2, 3, 2, 1, bias=bias)), make_norm(norm, ch * 2), act()]
            ch *= 2
        for _ in range(n_blocks):
            layers.append(ResnetBlock(ch, norm, dropout=dropout, slope=slope, sn=sn))
        self.model = nn.Sequential(*layers)
        self.in_channels = in_ch

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"discriminator expects [B, {self.in_channels}, H, W], got {list(x.shape)}"
            )
        return self.model(x)


def check_generator_inputs(source_image: Tensor, pose_heatmaps: Tensor, cfg: "ModelConfig",
                           multiple: int = 1, exact_size: bool = False) -> None:
    """Raise ValueError unless source [B, C, H, W] (C = cfg.image_input_channels: 3, or 7 with
    the warp guide concatenated) and pose [B, 36, H, W] agree with cfg.

    multiple: H and W must be divisible by it (2**n_down for the encoder/decoder models);
    exact_size: H x W must equal cfg.height x cfg.width (PG2's FC bottleneck fixes the size).
    """
    c_img, c_pose = cfg.image_input_channels, cfg.pose_channels
    if source_image.dim() != 4 or source_image.shape[1] != c_img:
        raise ValueError(f"source_image must be [B, {c_img}, H, W], got {list(source_image.shape)}")
    if pose_heatmaps.dim() != 4 or pose_heatmaps.shape[1] != c_pose:
        raise ValueError(f"pose_heatmaps must be [B, {c_pose}, H, W], got {list(pose_heatmaps.shape)}")
    b, _, h, w = source_image.shape
    if pose_heatmaps.shape[0] != b or tuple(pose_heatmaps.shape[2:]) != (h, w):
        raise ValueError(
            f"source_image {list(source_image.shape)} and pose_heatmaps {list(pose_heatmaps.shape)} "
            "must share batch and size"
        )
    if exact_size and (h, w) != (cfg.height, cfg.width):
        raise ValueError(f"{cfg.name} is built for {cfg.height} x {cfg.width} inputs, got {h} x {w}")
    if h % multiple or w % multiple:
        raise ValueError(f"{cfg.name} needs H and W divisible by {multiple}, got {h} x {w}")


def spatial_attention(query: Tensor, key: Tensor, value: Tensor, scale: float = 1.0) -> Tensor:
    """Non-local attention over the H*W positions of feature maps (through training.ops.attention).

    Args:
        query: [B, Dk, H, W] (each position j is a query q_j).
        key: [B, Dk, H, W] (each position i is a key k_i).
        value: [B, Dv, H, W].
        scale: energy scale; SAGAN/PoNA use 1.0 (unscaled q . k).

    Returns:
        [B, Dv, H, W] with out_j = sum_i softmax_i(scale * q_j . k_i) v_i -- SAGAN's
        bmm(V, softmax(Q^T K)^T).
    """
    b, dk, h, w = query.shape
    dv = value.shape[1]
    q = query.flatten(2).transpose(1, 2)  # [B, N, Dk]
    k = key.flatten(2).transpose(1, 2)  # [B, N, Dk]
    v = value.flatten(2).transpose(1, 2)  # [B, N, Dv]
    out = attention(q, k, v, scale)  # [B, N, Dv]
    return out.transpose(1, 2).reshape(b, dv, h, w)


@torch.no_grad()
def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """PATN/PoNA init ('normal'): conv/linear weights N(0, std), biases 0, BN weight N(1, std).

    Spectral-normalised convs get their *original* weight initialised (the parametrisation
    keeps working on it).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def build_pair_discriminators(cfg: "ModelConfig") -> dict[str, nn.Module]:
    """The PATN-lineage pair of conditional discriminators (PATN, PoNA, NRAM).

    "appearance" (PATN's D_PP, PoNA's D_A): input concat(image, source image) [B, 6, H, W].
    "pose" (PATN's D_PB, PoNA's D_P): input concat(image, target heatmaps) [B, 3 + 18, H, W].
    Images in [-1, 1], heatmaps in [0, 1]. Output: score maps
    [B, ndf * 2**d_n_down, ceil(H / 2**d_n_down), ceil(W / 2**d_n_down)], no sigmoid (LSGAN or
    BCE-with-logits is the loss's choice). Width, depth, norm, dropout, LeakyReLU slope and
    spectral norm come from cfg (d_* fields).
    """
    n_target = cfg.pose_channels // 2
    ds: dict[str, nn.Module] = {
        "appearance": ResnetDiscriminator(
            2 * cfg.image_channels, cfg.ndf, cfg.d_n_down, cfg.d_blocks, cfg.d_norm,
            cfg.d_dropout, cfg.d_slope, cfg.d_spectral_norm),
        "pose": ResnetDiscriminator(
            cfg.image_channels + n_target, cfg.ndf, cfg.d_n_down, cfg.d_blocks, cfg.d_norm,
            cfg.d_dropout, cfg.d_slope, cfg.d_spectral_norm),
    }
    for d in ds.values():
        init_normal(d)
    return ds
