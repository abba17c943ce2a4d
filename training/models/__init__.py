"""Generator / discriminator registry: ``build_generator(name, size)``, ``build_discriminators``.

Every generator takes ``(source_image [B, 3, H, W] RGB in [-1, 1], pose_heatmaps [B, 36, H, W]
= concat(source 18, target 18) heatmaps in [0, 1])`` and returns ``[B, 3, H, W]`` in [-1, 1].
Heatmaps come from training.ops.heatmaps_pair with the config's heatmap_mode / sigma / radius
(Gaussian for pona/patn/nram, disks for pg2), keypoints (x, y) in model pixels.

Configurations are plain data (:class:`ModelConfig`), so a ``configs/*.toml`` can set them:
``ModelConfig.from_dict(tomllib.load(f))`` and ``build_generator(cfg)``.

Sizes:
- "paper": 256 x 176 (DeepFashion), the papers' widths and block counts.
- "rt": 128 x 88 (same aspect), reduced widths/blocks so the generator alone runs at >= 30
  FPS under ONNX Runtime on a 2-core CPU (batch 1, fp32); each keeps its defining structure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

__all__ = [
    "MODEL_NAMES",
    "GUIDE_CHANNELS",
    "BLEND_SOURCES",
    "SIZES",
    "ModelConfig",
    "model_config",
    "build_generator",
    "build_discriminators",
]

MODEL_NAMES = ("pg2", "pona", "patn", "nram")
GUIDE_CHANNELS = 4  # warped source (3, in [-1, 1]) + warp coverage (1, in [0, 1])
BLEND_SOURCES = ("warped", "source", "generated")  # what a warp-guided output blends, in channel order
SIZES = ("paper", "rt")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build one model; plain data (str/int/float/bool only).

    Image/heatmap contract:
        height, width: model input/output size H x W in pixels.
        image_channels: 3 (RGB in [-1, 1]).
        pose_channels: 36 = 18 source + 18 target heatmap channels (source first).
        heatmap_mode: "gaussian" or "disk"; heatmap_sigma / heatmap_radius in model pixels
            (sigma 6 at 256 x 176, scaled with H; PG2 disks radius 4).
    PATN-lineage generators (pona, patn, nram):
        ngf: encoder stem width; block width C = ngf * 2**n_down (256 in the papers).
        n_down: stride-2 steps in each encoder (= deconvolutions in the decoder).
        n_blocks: PoNA blocks / PAT blocks / NRAM modules.
        enc_kernel: encoder stem and decoder output kernel (7 in the papers).
        norm: "instance" | "batch" | "none".   dropout: in the blocks (0.5 in PATN/PoNA).
        attn_ratio: PoNA q/k width = width // attn_ratio (8).
        nram_res_blocks: residual blocks nested in each NRAM module.
    PG2:
        pg2_hidden (n = 128), pg2_depth (0 = log2(H) - 2), pg2_depth2 (0 = depth - 2),
        pg2_z (FC bottleneck width, 64).
    Discriminators:
        ndf, d_n_down, d_blocks, d_norm, d_dropout, d_slope (0 = ReLU, else LeakyReLU slope),
        d_spectral_norm.
    Warp guidance (training.models.warp_guided):
        warp_guided: the generator also takes the source warped to the target skeleton
            (pyposert.ops.warp) and its coverage, and outputs a per-pixel blend of the warped
            source, the source itself (the background stays) and its generated pixels.
    """

    name: str
    height: int = 256
    width: int = 176
    image_channels: int = 3
    pose_channels: int = 36
    heatmap_mode: str = "gaussian"
    heatmap_sigma: float = 6.0
    heatmap_radius: float = 4.0
    ngf: int = 64
    n_down: int = 2
    n_blocks: int = 9
    enc_kernel: int = 7
    norm: str = "instance"
    dropout: float = 0.5
    attn_ratio: int = 8
    nram_res_blocks: int = 2
    pg2_hidden: int = 128
    pg2_depth: int = 0
    pg2_depth2: int = 0
    pg2_z: int = 64
    ndf: int = 64
    d_n_down: int = 2
    d_blocks: int = 3
    d_norm: str = "instance"
    d_dropout: float = 0.5
    d_slope: float = 0.0
    d_spectral_norm: bool = False
    warp_guided: bool = False

    @property
    def image_input_channels(self) -> int:
        """Channels of the generator's image branch input: the source image, plus the warped
        source and the warp coverage when warp-guided (3 + 3 + 1)."""
        return self.image_channels + (GUIDE_CHANNELS if self.warp_guided else 0)

    @property
    def image_output_channels(self) -> int:
        """Channels of the generator's decoder output: the generated image, plus one blend logit
        per blended source (warped, source, generated) when warp-guided (3 + 3)."""
        return self.image_channels + (len(BLEND_SOURCES) if self.warp_guided else 0)

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise ValueError(f"model name must be one of {MODEL_NAMES}, got {self.name!r}")
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"height and width must be positive, got {self.height} x {self.width}")
        if self.heatmap_mode not in ("gaussian", "disk"):
            raise ValueError(f"heatmap_mode must be 'gaussian' or 'disk', got {self.heatmap_mode!r}")
        if self.pose_channels % 2:
            raise ValueError(f"pose_channels must be even (source + target), got {self.pose_channels}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (TOML/JSON friendly); inverse of :meth:`from_dict`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a plain dict; unknown keys raise (a typo must not be silently ignored)."""
        return config_from_dict(cls, data)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


def config_from_dict(cls: Any, data: dict[str, Any]) -> Any:
    """Dataclass ``cls`` from a plain dict; unknown keys raise ValueError naming the known ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {unknown}; known: {sorted(known)}")
    return cls(**data)


# The papers' configurations at DeepFashion size 256 x 176.
_PAPER: dict[str, dict[str, Any]] = {
    # PoNA: 3 blocks; D_A / D_P spectral-normalised with LeakyReLU(0.2) (paper Sec. III-G).
    "pona": dict(n_blocks=3, d_spectral_norm=True, d_slope=0.2),
    # PATN: 9 blocks, ResNet discriminators with ReLU.
    "patn": dict(n_blocks=9),
    # NRAM: 9 modules (paper Fig. 4), no dropout (not in the paper), PATN discriminators.
    "nram": dict(n_blocks=9, dropout=0.0),
    # PG2: disks of radius 4, n = 128, depth log2(256) - 2 = 6; DCGAN D with batch norm.
    "pg2": dict(heatmap_mode="disk", heatmap_radius=4.0, d_norm="batch", ndf=64),
}

# Real-time configurations at 128 x 88 (half of 256 x 176, same aspect; sigma scaled to 3).
# Widths and block counts were chosen by measuring ONNX Runtime FPS on a 2-core AMD EPYC (Zen 4)
# VM, batch 1, fp32, 2 intra-op threads (python -m training.flops): 3.0-3.3 GFLOPs/frame and
# about 44-47 FPS for pona/patn/nram, 2.2 GFLOPs and about 80 FPS for pg2 when the (shared) CPU
# was quiet -- headroom over the 30 FPS target. Every model keeps its defining structure.
_RT_COMMON: dict[str, Any] = dict(height=128, width=88, heatmap_sigma=3.0, ndf=32)
_RT: dict[str, dict[str, Any]] = {
    # C = 64 at 32 x 22 (704 tokens); 2 blocks (the paper's fast variant), both attentions kept.
    "pona": dict(ngf=16, n_blocks=2, d_spectral_norm=True, d_slope=0.2),
    # C = 64, 6 PAT blocks with the C-channel mask.
    "patn": dict(ngf=16, n_blocks=6),
    # C = 64, 6 modules of 2 nested residual blocks, H x W x 1 maps and feedback kept.
    "nram": dict(ngf=16, n_blocks=6, nram_res_blocks=2, dropout=0.0),
    # n = 16, depth log2(128) - 2 = 5 (bottom 8 x 6 with the FC), G2 depth 3.
    "pg2": dict(heatmap_mode="disk", heatmap_radius=4.0, d_norm="batch", pg2_hidden=16),
}


def model_config(name: str, size: str = "paper", **overrides: Any) -> ModelConfig:
    """The named configuration, with optional field overrides (e.g. for tiny test models)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"model name must be one of {MODEL_NAMES}, got {name!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    fields: dict[str, Any] = {}
    if size == "rt":
        fields.update(_RT_COMMON)
        fields.update(_RT[name])
    else:
        fields.update(_PAPER[name])
    fields.update(overrides)
    return ModelConfig(name=name, **fields)


def _resolve(name_or_config: str | ModelConfig, size: str, overrides: dict[str, Any]) -> ModelConfig:
    if isinstance(name_or_config, ModelConfig):
        return name_or_config.replace(**overrides) if overrides else name_or_config
    return model_config(name_or_config, size, **overrides)


def build_generator(name: str | ModelConfig, size: str = "paper", **overrides: Any) -> nn.Module:
    """Generator for name in {pg2, pona, patn, nram} and size in {paper, rt}, or from a ModelConfig.

    The module has ``.config`` (its ModelConfig) and maps
    (source_image [B,3,H,W] in [-1,1], pose_heatmaps [B,36,H,W] in [0,1]) -> [B,3,H,W] in [-1,1];
    a warp-guided one (``cfg.warp_guided``) also takes (warped_source [B,3,H,W] in [-1,1],
    warp_coverage [B,1,H,W] in [0,1]) after those (training.models.warp_guided).
    PG2's module also has ``stages(...)`` -> (coarse, refined) for its two-stage loss.
    """
    cfg = _resolve(name, size, overrides)
    core = _build_core(cfg)
    if cfg.warp_guided:
        from training.models.warp_guided import WarpGuidedGenerator

        return WarpGuidedGenerator(core)
    return core


def _build_core(cfg: ModelConfig) -> nn.Module:
    """The seed architecture, with the config's image input/output channel counts."""
    if cfg.name == "pona":
        from training.models.pona import PoNAGenerator

        return PoNAGenerator(cfg)
    if cfg.name == "patn":
        from training.models.patn import PATNGenerator

        return PATNGenerator(cfg)
    if cfg.name == "nram":
        from training.models.nram import NRAMGenerator

        return NRAMGenerator(cfg)
    from training.models.pg2 import PG2Generator

    return PG2Generator(cfg)


def build_discriminators(name: str | ModelConfig, size: str = "paper", **overrides: Any) -> dict[str, nn.Module]:
    """The model's discriminators by role.

    pona / patn / nram: {"appearance": D([B, 6, H, W] = image ++ source image),
                         "pose": D([B, 21, H, W] = image ++ target heatmaps)} -> score maps.
    pg2: {"image": D([B, 3, H, W])} -> logits [B, 1].
    Images in [-1, 1], heatmaps in [0, 1] (the config's heatmap mode).
    """
    cfg = _resolve(name, size, overrides)
    if cfg.name == "pg2":
        from training.models.pg2 import build_pg2_discriminators

        return build_pg2_discriminators(cfg)
    from training.models.common import build_pair_discriminators

    return build_pair_discriminators(cfg)
