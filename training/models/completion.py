"""Fashion image completion (seed 002, FiNet-like): a shape network and a texture network.

Given a person with one garment erased (pyposert.completion describes every tensor), the
**shape network** completes the 8-class parsing map and the **texture network** paints the
RGB image from the completed parsing. Each is VAE-conditioned (thesis ch. 3):

- shape: ``Gs(masked_parsing 8, pose_heatmaps 18, face_hair mask 1, z_s) -> 8 logits``.
  ``Es(x_s)`` encodes the erased garment's binary mask [1, H, W] into N(mu_s, sigma_s);
  ``Esc(x_c)`` encodes the *other* garments (garment_crops [12, S, S]) into the
  compatibility prior N(mu_c, sigma_c); training minimises CE + lambda_KL KL(Es || Esc)
  (eq. 2-18, 2-19); at test time z_s is drawn from Esc's distribution, so the completion is
  compatible with the visible clothes and varies with the noise.
- texture: ``Ga(masked_image 3, face/hair RGB 3, parsing 8, z_a) -> RGB``. ``Ea(x_a)`` encodes the
  erased garment's own crop [3, S, S]; ``Eac(x_c)`` the compatibility prior (eq. 2-20). Losses
  (eq. 2-21..2-29): KL, appearance (pixel L1 + VGG-19 content/style when weights are given),
  feature matching for z ~ Ea and LSGAN for z ~ prior, LSGAN discriminator ``Da``.

Architecture (thesis 4.1.2): spectral norm on every convolution; encoders and generators are
built from residual blocks; generators downsample with average pooling and upsample with
deconvolutions in the thesis (the "paper" size) -- the "rt" size with a nearest-neighbour
resize and a 3x3 convolution (``upsample = "resize"``), because a 4x4 stride-2 deconvolution covers even and odd output
pixels with different taps and paints a period-2 checkerboard; the down path of a generator is the encoder without its last (distribution)
block; after the second up layer (``attn_up``) an **encoder-decoder attention** (eq. 2-30..2-32) uses the
decoder feature f_d and the matching encoder feature f_e:

    beta_ij = softmax_i(Q(f_d,i) . Q(f_d,j)),   Q = 1x1 conv (C -> C/8)
    y_d = gamma_d * sum_i beta_ij f_d,i + f_d                               (2-31)
    y_e = M * f_e + (1 - M) * gamma_e * sum_i beta_ij (M f_e)_i              (2-32)

with M = 1 where the encoder saw real content (outside the erase region). One call of the
fused attention op computes both sums (values = [f_d, M f_e], Dv = 2C != Dk = C/8). The
discriminator is the generator's down path with SAGAN self-attention after its third layer, a
residual block, a nonlinearity and a 3x3 convolution.

Shapes: images/heatmaps at H x W (divisible by 2**n_down), crops at S x S (divisible by
2**enc_down); latent Z per stage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from training.models import config_from_dict
from training.models.common import spatial_attention

__all__ = [
    "CompletionConfig",
    "completion_config",
    "CompletionModel",
    "ShapeNetwork",
    "TextureNetwork",
    "CompletionDiscriminator",
    "CompletionGraph",
    "kl_normal",
    "garment_statistics",
    "UPSAMPLE_MODES",
    "PAPER_PARAMS",
    "NUM_CLASSES",
    "NUM_GARMENTS",
    "JOINTS",
]

NUM_CLASSES = 8
NUM_GARMENTS = 4
UPSAMPLE_MODES = ("resize", "deconv")
STAT_CHANNELS = 7 * NUM_GARMENTS + 3  # per garment: mean RGB, std RGB, present; then the pooled mean RGB
JOINTS = 18
FACE_HAIR = 1


@dataclass(frozen=True)
class CompletionConfig:
    """One completion model (plain data).

    height, width: model frame H x W; crop_size: S of garment_crops; latent: Z per stage.
    ch: generator stem width; widths double per level up to ``max_ch``; n_down: generator
    levels (the attention follows up block ``attn_up``, at H / 2**(n_down - attn_up)).
    enc_ch / enc_max_ch / enc_down: the same for the encoders (levels on the S x S crops; Es
    adds levels for its H x W mask). d_ch / d_max_ch / d_down: discriminator (self-attention
    after the third level).
    heatmap_sigma: Gaussian sigma of pose_heatmaps in model pixels (6 at 256 rows).
    margin, pad: erase-box enlargement (pyposert.completion.garment_box).
    attention: False removes both attention layers (the thesis' "w/o Attention" ablation).
    attn_up: the encoder-decoder attention follows this up block (2 in the thesis; rt uses
    1, at H/4, where it costs 1/16 of H/2's N^2 -- the one place rt departs from the layout).
    upsample: how up blocks double the resolution: "resize" (nearest-neighbour resize, then a
    3x3 convolution: every output pixel gets the same taps, no checkerboard) or "deconv" (the
    thesis' 4x4 stride-2 transposed convolution, whose uneven kernel overlap paints a period-2
    checkerboard; the "paper" size keeps it, and it is the default so that checkpoints written
    before this field still load).
    photo_condition: the texture generator also sees the visible garments' colour statistics
    (:func:`garment_statistics`, broadcast over the frame at its input and again at its output
    layer, beside the masked photo), so the painted garment can follow what is still visible.
    """

    name: str = "completion"
    height: int = 256
    width: int = 256
    crop_size: int = 256
    latent: int = 8
    ch: int = 32
    max_ch: int = 256
    n_down: int = 4
    enc_ch: int = 16
    enc_max_ch: int = 128
    enc_down: int = 4
    d_ch: int = 32
    d_max_ch: int = 128
    d_down: int = 4
    heatmap_sigma: float = 6.0
    margin: float = 0.1
    pad: int = 2
    attention: bool = True
    attn_up: int = 2
    upsample: str = "deconv"
    photo_condition: bool = False

    def __post_init__(self) -> None:
        if self.name != "completion":
            raise ValueError(f"CompletionConfig.name must be 'completion', got {self.name!r}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")
        if not 1 <= self.attn_up <= self.n_down:
            raise ValueError(f"attn_up must be in 1..n_down = {self.n_down}, got {self.attn_up}")
        m = 1 << self.n_down
        if self.height % m or self.width % m:
            raise ValueError(f"height and width must be divisible by 2**n_down = {m}, got {self.height} x {self.width}")
        if self.crop_size % (1 << self.enc_down):
            raise ValueError(f"crop_size must be divisible by 2**enc_down = {1 << self.enc_down}, got {self.crop_size}")
        if self.d_down < 3:
            raise ValueError(f"d_down must be >= 3 (self-attention after the third layer), got {self.d_down}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CompletionConfig":
        """Build from a plain dict; unknown keys raise."""
        return config_from_dict(cls, data)

    def replace(self, **changes: Any) -> "CompletionConfig":
        return dataclasses.replace(self, **changes)


# paper: 256 x 256 and crops as the thesis, widths chosen so the parameter counts match its
# Table 4-1 (G 3.05 M, E 0.96 M, Ec 0.96 M, D 1.59 M): G 3.09 M, Es 0.97 M, Esc/Eac 0.97 M,
# Ea 0.97 M, D 1.58 M (tests/training/test_completion.py checks 5 %). rt: the pose-transfer frame
# 128 x 88 (DeepFashion aspect), crops 64 x 64, narrower and one level shallower, for CPU
# training and real-time inference.
_SIZES: dict[str, dict[str, Any]] = {
    "paper": dict(height=256, width=256, crop_size=256, latent=8, ch=32, max_ch=176, n_down=4, enc_ch=20,
                  enc_max_ch=128, enc_down=4, d_ch=32, d_max_ch=152, d_down=4, heatmap_sigma=6.0),
    "rt": dict(height=128, width=88, crop_size=64, latent=8, ch=16, max_ch=64, n_down=3, enc_ch=16, enc_max_ch=64,
               enc_down=4, d_ch=16, d_max_ch=64, d_down=3, heatmap_sigma=3.0, attn_up=1),
}
# The product size upsamples by resize-then-convolve and conditions the texture on the photo;
# "paper" stays the thesis' network (deconvolutions; its parameter counts are the thesis').
# Checkpoints whose config predates these fields load with the old behaviour (the defaults).
_CURRENT: dict[str, dict[str, Any]] = {"paper": {}, "rt": dict(upsample="resize", photo_condition=True)}
PAPER_PARAMS = {"generator": 3.0506e6, "encoder": 0.9601e6, "compat_encoder": 0.9631e6, "discriminator": 1.5893e6}


def completion_config(size: str = "paper", **overrides: Any) -> CompletionConfig:
    """The named size ("paper" | "rt") with field overrides (e.g. tiny test models)."""
    if size not in _SIZES:
        raise ValueError(f"size must be one of {tuple(_SIZES)}, got {size!r}")
    return CompletionConfig(**{**_SIZES[size], **_CURRENT[size], **overrides})


# ----------------------------------------------------------------------------------------
# building blocks (spectral norm on every convolution, LeakyReLU 0.2)
# ----------------------------------------------------------------------------------------


def _conv(cin: int, cout: int, k: int = 3) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, k, padding=k // 2))


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class ResBlock(nn.Module):
    """Pre-activation residual block (BigGAN style); ``resample`` "down" = average pooling
    (x 1/2), "up" = x 2 by ``upsample`` ("resize": nearest resize then 3x3 convolution;
    "deconv": 4x4 stride-2 transposed convolution), None = same size."""

    def __init__(self, cin: int, cout: int, resample: str | None = None, upsample: str = "resize"):
        super().__init__()
        self.resample = resample
        self.resize_first = resample == "up" and upsample == "resize"
        if resample == "up" and upsample == "deconv":
            self.conv1: nn.Module = spectral_norm(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
        else:
            self.conv1 = _conv(cin, cout)
        self.conv2 = _conv(cout, cout)
        self.skip = _conv(cin, cout, 1) if (cin != cout or resample) else nn.Identity()
        self.act1, self.act2 = _act(), _act()

    def forward(self, x: Tensor) -> Tensor:
        a = self.act1(x)
        if self.resize_first:
            a = F.interpolate(a, scale_factor=2.0, mode="nearest")
        h = self.conv2(self.act2(self.conv1(a)))
        s = x
        if self.resample == "up":
            s = F.interpolate(s, scale_factor=2.0, mode="nearest")
        s = self.skip(s)
        if self.resample == "down":
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + s


def _widths(ch: int, max_ch: int, levels: int) -> list[int]:
    """Stem width then one width per level, doubling up to max_ch."""
    return [min(ch << i, max_ch) for i in range(levels + 1)]


class Encoder(nn.Module):
    """x [B, Cin, s, s'] -> (mu, logvar) [B, Z] each: stem conv, ``levels`` residual down
    blocks, the distribution block (residual block, global average pool, linear -> 2Z)."""

    def __init__(self, cin: int, ch: int, max_ch: int, levels: int, latent: int):
        super().__init__()
        w = _widths(ch, max_ch, levels)
        self.stem = _conv(cin, w[0])
        self.down = nn.Sequential(*[ResBlock(w[i], w[i + 1], "down") for i in range(levels)])
        self.dist = ResBlock(w[-1], w[-1])
        self.head = spectral_norm(nn.Linear(w[-1], 2 * latent))
        self.act = _act()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.act(self.dist(self.down(self.stem(x))))
        mu, logvar = self.head(h.mean((2, 3))).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 10.0)  # bounded variance: exp() stays finite in fp16 graphs


class EncoderDecoderAttention(nn.Module):
    """Eq. 2-30..2-32 (see the module docstring): (f_d, f_e [B, C, h, w], known [B, 1, h, w]
    in {0, 1}) -> [B, 2C, h, w] = concat(y_d, y_e). gamma_d, gamma_e start at 0 (SAGAN)."""

    def __init__(self, channels: int, ratio: int = 8):
        super().__init__()
        self.query = _conv(channels, max(channels // ratio, 1), 1)
        self.gamma_d = nn.Parameter(torch.zeros(1))
        self.gamma_e = nn.Parameter(torch.zeros(1))

    def forward(self, f_d: Tensor, f_e: Tensor, known: Tensor) -> Tensor:
        q = self.query(f_d)
        c = spatial_attention(q, q, torch.cat([f_d, f_e * known], 1))  # one fused call, Dv = 2C
        c_d, c_e = c.chunk(2, dim=1)
        y_d = self.gamma_d * c_d + f_d
        y_e = known * f_e + (1.0 - known) * self.gamma_e * c_e
        return torch.cat([y_d, y_e], 1)


class SelfAttention(nn.Module):
    """SAGAN self-attention (discriminator): x + gamma * softmax(Q^T K) V, Q/K at C/8."""

    def __init__(self, channels: int, ratio: int = 8):
        super().__init__()
        dk = max(channels // ratio, 1)
        self.query, self.key, self.value = _conv(channels, dk, 1), _conv(channels, dk, 1), _conv(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.gamma * spatial_attention(self.query(x), self.key(x), self.value(x))


class Generator(nn.Module):
    """x [B, Cin, H, W] ++ z [B, Z] (broadcast over H x W) -> [B, Cout, H, W] (raw: logits or
    pre-tanh). Down path: stem + n_down residual down blocks (average pooling); up path:
    n_down residual up blocks (``cfg.upsample``); encoder-decoder attention after up block
    ``attn_up`` with the encoder feature of the same resolution and ``known`` (1 = real content)."""

    def __init__(self, cin: int, cout: int, cfg: CompletionConfig, cond: int = 0, skip: int = 0):
        super().__init__()
        n = cfg.n_down
        w = _widths(cfg.ch, cfg.max_ch, n)
        self.stem = _conv(cin + cfg.latent + cond, w[0])
        self.down = nn.ModuleList([ResBlock(w[i], w[i + 1], "down") for i in range(n)])
        self.attn_after = cfg.attn_up if cfg.attention else -1  # up blocks run before the attention
        self.attn_level = n - cfg.attn_up  # encoder level with the resolution reached there
        # up block k: w[n-k] -> w[n-k-1]; the one after the attention takes twice the width
        self.up = nn.ModuleList([ResBlock(w[n - k] * (2 if k == self.attn_after else 1), w[n - k - 1], "up",
                                          cfg.upsample) for k in range(n)])
        self.attn = EncoderDecoderAttention(w[self.attn_level]) if cfg.attention else None
        out_in = w[0] * (2 if self.attn_after == n else 1)
        self.out = nn.Sequential(_act(), _conv(out_in + skip, cout))  # the skip joins after the activation

    def forward(self, x: Tensor, z: Tensor, known: Tensor, skip: Tensor | None = None) -> Tensor:
        """x [B, cin, H, W]; z [B, latent + cond] (the latent, then any conditioning vector);
        known [B, 1, H, W]; skip [B, skip, H, W] joins the output layer's input."""
        b, _, h, w = x.shape
        zmap = z[:, :, None, None].expand(b, z.shape[1], h, w)
        f = self.stem(torch.cat([x, zmap], 1))
        feats = [f]
        for blk in self.down:
            f = blk(f)
            feats.append(f)
        for k, blk in enumerate(self.up):
            if k == self.attn_after:
                f = self._attend(f, feats[self.attn_level], known)
            f = blk(f)
        if self.attn_after == len(self.up):
            f = self._attend(f, feats[self.attn_level], known)
        act, conv = self.out
        f = act(f)
        return conv(f if skip is None else torch.cat([f, skip], 1))

    def _attend(self, f_d: Tensor, f_e: Tensor, known: Tensor) -> Tensor:
        assert self.attn is not None
        m = 1.0 - F.adaptive_max_pool2d(1.0 - known, f_d.shape[-2:])  # any erased pixel marks the cell
        return self.attn(f_d, f_e, m)


def garment_statistics(garment_crops: Tensor) -> Tensor:
    """The visible garments' colour statistics: garment_crops [B, 12, S, S] (RGB in [-1, 1],
    0 = no garment pixel) -> [B, STAT_CHANNELS] = per garment (hat, top, bottom, shoes) its
    mean RGB, its RGB standard deviation (how patterned it is) and 1 when present, then the
    mean RGB of all visible garment pixels together (0 when none)."""
    parts, means, counts = [], [], []
    for g in range(NUM_GARMENTS):
        c = garment_crops[:, 3 * g:3 * g + 3]
        m = (c.abs().amax(1, keepdim=True) > 1.0 / 255.0).to(c.dtype)  # a garment pixel is not neutral grey
        n = m.sum((2, 3))                                                # [B, 1]
        mean = (c * m).sum((2, 3)) / n.clamp(min=1.0)
        var = (((c - mean[:, :, None, None]) ** 2) * m).sum((2, 3)) / n.clamp(min=1.0)
        parts += [mean, torch.sqrt(var + 1e-6) * (n > 0).to(c.dtype), (n > 0).to(c.dtype)]
        means.append(mean * n)
        counts.append(n)
    pooled = torch.stack(means, 0).sum(0) / torch.stack(counts, 0).sum(0).clamp(min=1.0)
    return torch.cat(parts + [pooled], 1)


def reparameterise(mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    """z = mu + exp(logvar / 2) * eps."""
    return mu + torch.exp(0.5 * logvar) * eps


def kl_normal(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) summed over the latent, averaged over the batch."""
    kl = 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1.0)
    return kl.sum(1).mean()


class ShapeNetwork(nn.Module):
    """Gs, Es, Esc. ``generate(masked_parsing, pose_heatmaps, erase_mask, z)`` -> logits
    [B, 8, H, W]; ``posterior(x_s [B, 1, H, W])`` and ``prior(garment_crops [B, 12, S, S])`` ->
    (mu, logvar) [B, Z]."""

    def __init__(self, cfg: CompletionConfig):
        super().__init__()
        self.gen = Generator(NUM_CLASSES + JOINTS + 1, NUM_CLASSES, cfg)
        # Es sees the H x W garment mask: enough levels to reach about the crops' bottom size.
        mask_levels = max(cfg.enc_down + (max(cfg.height, cfg.width) // cfg.crop_size).bit_length() - 1, 1)
        self.enc = Encoder(1, cfg.enc_ch, cfg.enc_max_ch, mask_levels, cfg.latent)
        self.enc_c = Encoder(3 * NUM_GARMENTS, cfg.enc_ch, cfg.enc_max_ch, cfg.enc_down, cfg.latent)

    def generate(self, masked_parsing: Tensor, pose_heatmaps: Tensor, erase_mask: Tensor, z: Tensor) -> Tensor:
        face_hair = masked_parsing[:, FACE_HAIR:FACE_HAIR + 1]
        return self.gen(torch.cat([masked_parsing, pose_heatmaps, face_hair], 1), z, 1.0 - erase_mask)

    def posterior(self, x_s: Tensor) -> tuple[Tensor, Tensor]:
        return self.enc(x_s)

    def prior(self, garment_crops: Tensor) -> tuple[Tensor, Tensor]:
        return self.enc_c(garment_crops)


class TextureNetwork(nn.Module):
    """Ga, Ea, Eac. ``generate(masked_image, parsing, erase_mask, z)`` -> RGB [B, 3, H, W] in
    [-1, 1] (tanh), with parsing the complete one-hot map [B, 8, H, W]; ``posterior(x_a [B, 3,
    S, S])`` and ``prior(garment_crops)`` -> (mu, logvar)."""

    def __init__(self, cfg: CompletionConfig):
        super().__init__()
        self.photo_condition = cfg.photo_condition
        cond = STAT_CHANNELS if cfg.photo_condition else 0
        self.gen = Generator(3 + 3 + NUM_CLASSES, 3, cfg, cond=cond, skip=3 + cond if cfg.photo_condition else 0)
        self.enc = Encoder(3, cfg.enc_ch, cfg.enc_max_ch, cfg.enc_down, cfg.latent)
        self.enc_c = Encoder(3 * NUM_GARMENTS, cfg.enc_ch, cfg.enc_max_ch, cfg.enc_down, cfg.latent)

    def generate(self, masked_image: Tensor, parsing: Tensor, erase_mask: Tensor, z: Tensor,
                 garment_crops: Tensor | None = None) -> Tensor:
        """``garment_crops`` [B, 12, S, S] (the visible garments) is required with photo_condition."""
        face_hair_rgb = masked_image * parsing[:, FACE_HAIR:FACE_HAIR + 1]
        x = torch.cat([masked_image, face_hair_rgb, parsing], 1)
        if not self.photo_condition:
            return torch.tanh(self.gen(x, z, 1.0 - erase_mask))
        if garment_crops is None:
            raise ValueError("this texture network is conditioned on the photo: pass garment_crops")
        stats = garment_statistics(garment_crops)
        b, _, h, w = masked_image.shape
        skip = torch.cat([masked_image, stats[:, :, None, None].expand(b, stats.shape[1], h, w)], 1)
        return torch.tanh(self.gen(x, torch.cat([z, stats], 1), 1.0 - erase_mask, skip))

    def posterior(self, x_a: Tensor) -> tuple[Tensor, Tensor]:
        return self.enc(x_a)

    def prior(self, garment_crops: Tensor) -> tuple[Tensor, Tensor]:
        return self.enc_c(garment_crops)


class CompletionDiscriminator(nn.Module):
    """Da: image [B, 3, H, W] -> (score map [B, 1, H/2**d_down, W/2**d_down], last features).
    The generator's down path with self-attention after the third layer, then a residual
    block, a nonlinearity and a 3x3 convolution (thesis 4.1.2); ``features`` feed the
    feature-matching loss (eq. 2-25)."""

    def __init__(self, cfg: CompletionConfig):
        super().__init__()
        w = _widths(cfg.d_ch, cfg.d_max_ch, cfg.d_down)
        self.stem = _conv(3, w[0])
        blocks: list[nn.Module] = []
        for i in range(cfg.d_down):
            blocks.append(ResBlock(w[i], w[i + 1], "down"))
            if i == 2:
                blocks.append(SelfAttention(w[i + 1]))
        self.blocks = nn.Sequential(*blocks)
        self.last = ResBlock(w[-1], w[-1])
        self.act = _act()
        self.score = _conv(w[-1], 1)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        f = self.act(self.last(self.blocks(self.stem(image))))
        return self.score(f), f


class CompletionModel(nn.Module):
    """The two generator stages (what is exported); the discriminator lives apart."""

    def __init__(self, cfg: CompletionConfig):
        super().__init__()
        self.config = cfg
        self.shape = ShapeNetwork(cfg)
        self.texture = TextureNetwork(cfg)

    def sample(self, masked_image: Tensor, masked_parsing: Tensor, erase_mask: Tensor, pose_heatmaps: Tensor,
               garment_crops: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """Test-time completion (the exported graph): z of each stage from its compatibility
        prior with ``noise`` [B, 2, Z] as the standard-normal draw, then :meth:`complete`."""
        z_shape = reparameterise(*self.shape.prior(garment_crops), noise[:, 0])
        z_texture = reparameterise(*self.texture.prior(garment_crops), noise[:, 1])
        return self.complete(masked_image, masked_parsing, erase_mask, pose_heatmaps, z_shape, z_texture, garment_crops)

    def complete(self, masked_image: Tensor, masked_parsing: Tensor, erase_mask: Tensor, pose_heatmaps: Tensor,
                 z_shape: Tensor, z_texture: Tensor, garment_crops: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Both decoders for given latents [B, Z]: the texture stage sees the completed parsing
        as a hard one-hot map (and, with photo_condition, the statistics of ``garment_crops``). Returns (parsing probabilities [B, 8, H, W], image [B, 3, H, W]
        in [-1, 1]), both equal to the inputs outside the erase region."""
        keep = 1.0 - erase_mask
        logits = self.shape.generate(masked_parsing, pose_heatmaps, erase_mask, z_shape)
        probs = torch.softmax(logits, 1)
        parsing = masked_parsing * keep + probs * erase_mask
        hard = (probs == probs.amax(1, keepdim=True)).to(probs.dtype)  # one-hot argmax (ties: rare, harmless)
        full = masked_parsing * keep + hard * erase_mask
        rgb = self.texture.generate(masked_image, full, erase_mask, z_texture, garment_crops)
        image = masked_image * keep + rgb * erase_mask
        return parsing, image


class CompletionGraph(nn.Module):
    """Export wrapper: inputs in pyposert.completion.COMPLETION_INPUTS order, outputs
    (parsing, image) -- the runtime contract."""

    def __init__(self, model: CompletionModel):
        super().__init__()
        self.model = model

    def forward(self, masked_image: Tensor, masked_parsing: Tensor, erase_mask: Tensor, pose_heatmaps: Tensor,
                garment_crops: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.sample(masked_image, masked_parsing, erase_mask, pose_heatmaps, garment_crops, noise)
