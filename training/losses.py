"""Losses of the four recipes (REFERENCE_MODELS.md): L1, PG2's pose-mask L1, conditional GAN
losses (LSGAN / BCE, both sides), and the VGG losses (perceptual L1, Gram style loss).

Tensors: images NCHW float32 RGB in [-1, 1]; masks [B, 1, H, W] (or [B, H, W]) in {0, 1};
discriminator outputs are raw scores (no sigmoid): PATN-style score maps [B, C, h, w] or PG2
logits [B, 1]. Every loss returns a 0-dim float tensor (a mean over all elements).

The VGG losses need ImageNet-pretrained VGG weights, which pyposert never downloads: build
:class:`VGGFeatures` with :meth:`VGGFeatures.from_weights` from a user-supplied state dict
(torchvision's ``vgg16()/vgg19().state_dict()`` layout, saved as safetensors or with
``torch.save``). The default recipes do not use them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GAN_MODES",
    "L1_MODES",
    "l1_loss",
    "pose_mask_l1_loss",
    "ssim_loss",
    "gan_generator_loss",
    "gan_discriminator_loss",
    "gram_matrix",
    "style_loss",
    "perceptual_loss",
    "VGG_CONFIGS",
    "VGGFeatures",
    "load_state_dict_file",
]

GAN_MODES = ("lsgan", "bce")
L1_MODES = ("plain", "pose_mask")

# ----------------------------------------------------------------------------------------
# pixel losses
# ----------------------------------------------------------------------------------------


def l1_loss(generated: Tensor, target: Tensor) -> Tensor:
    """mean |generated - target| over every element; [B, C, H, W] each, any range."""
    if generated.shape != target.shape:
        raise ValueError(f"generated {list(generated.shape)} and target {list(target.shape)} differ")
    return (generated - target).abs().mean()


def ssim_loss(generated: Tensor, target: Tensor, sigma: float = 1.5) -> Tensor:
    """1 - mean SSIM of [B, C, H, W] images in [-1, 1] (each channel on its own, Gaussian window
    of ``sigma`` over 11 taps, zero-padded borders, the metric's constants for a data range of 1
    after mapping to [0, 1]). Differentiable; 0 when the images are equal."""
    if generated.shape != target.shape or generated.dim() != 4:
        raise ValueError(f"ssim_loss expects two equal [B, C, H, W] images, got {list(generated.shape)} "
                         f"and {list(target.shape)}")
    x, y = (generated + 1.0) * 0.5, (target + 1.0) * 0.5
    c = x.shape[1]
    taps = torch.arange(11, dtype=x.dtype, device=x.device) - 5.0
    g = torch.exp(-0.5 * (taps / sigma) ** 2)
    g = g / g.sum()
    win = (g[:, None] * g[None, :]).expand(c, 1, 11, 11).contiguous()

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, win, padding=5, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return 1.0 - s.mean()


def _mask_4d(mask: Tensor, like: Tensor) -> Tensor:
    m = mask.unsqueeze(1) if mask.dim() == 3 else mask
    if m.dim() != 4 or m.shape[0] != like.shape[0] or m.shape[2:] != like.shape[2:] or m.shape[1] not in (1, like.shape[1]):
        raise ValueError(
            f"mask must be [B, 1, H, W] or [B, H, W] matching {list(like.shape)}, got {list(mask.shape)}"
        )
    return m.to(like.dtype)


def pose_mask_l1_loss(generated: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """PG2's pose-mask loss: mean|G - I_B| + mean(|G - I_B| * M), i.e. L1 weighted by (1 + M).

    generated, target: [B, 3, H, W] in [-1, 1]; mask: [B, 1, H, W] or [B, H, W] body mask of the
    target pose in {0, 1} (broadcast over channels). Both means run over B * 3 * H * W elements.
    """
    if generated.shape != target.shape:
        raise ValueError(f"generated {list(generated.shape)} and target {list(target.shape)} differ")
    diff = (generated - target).abs()
    return diff.mean() + (diff * _mask_4d(mask, generated)).mean()


# ----------------------------------------------------------------------------------------
# adversarial losses
# ----------------------------------------------------------------------------------------


def _check_mode(mode: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"GAN mode must be one of {GAN_MODES}, got {mode!r}")


def _gan_target_loss(scores: Tensor, real: bool, mode: str) -> Tensor:
    """Loss of raw scores against the label 1 (real) or 0 (fake): LSGAN MSE or BCE-with-logits."""
    target = torch.ones_like(scores) if real else torch.zeros_like(scores)
    if mode == "lsgan":
        return F.mse_loss(scores, target)
    return F.binary_cross_entropy_with_logits(scores, target)


def gan_generator_loss(fake_scores: Tensor, mode: str = "lsgan") -> Tensor:
    """Generator side: the discriminator should call the generated (conditioned) input real.

    fake_scores: D's raw output on the fake input, any shape. lsgan: mean (D - 1)^2;
    bce: mean softplus(-D) (the non-saturating -log sigmoid(D)).
    """
    _check_mode(mode)
    return _gan_target_loss(fake_scores, True, mode)


def gan_discriminator_loss(real_scores: Tensor, fake_scores: Tensor, mode: str = "lsgan") -> Tensor:
    """Discriminator side: 0.5 * (loss(real -> 1) + loss(fake -> 0)), as pix2pix / PATN.

    real_scores, fake_scores: raw outputs on the real and the (detached) fake inputs; shapes
    may differ (e.g. PG2 scores the source image as an extra fake, concatenated in the batch).
    lsgan: 0.5 (mean (D_r - 1)^2 + mean D_f^2); bce: 0.5 (mean softplus(-D_r) + mean softplus(D_f)).
    """
    _check_mode(mode)
    return 0.5 * (_gan_target_loss(real_scores, True, mode) + _gan_target_loss(fake_scores, False, mode))


# ----------------------------------------------------------------------------------------
# feature losses
# ----------------------------------------------------------------------------------------


def gram_matrix(features: Tensor) -> Tensor:
    """NRAM eq. 4: G_{c,c'} = 1 / (C H W) sum_{h,w} phi_{h,w,c} phi_{h,w,c'}.

    features: [B, C, H, W] -> [B, C, C] (float32 math).
    """
    if features.dim() != 4:
        raise ValueError(f"features must be [B, C, H, W], got {list(features.shape)}")
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / float(c * h * w)


def style_loss(generated: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> Tensor:
    """NRAM eq. 5 summed over layers: sum_j ||G_j(y_hat) - G_j(y)||_F^2, averaged over the batch.

    generated, target: {layer name: [B, C_j, H_j, W_j]} from one :class:`VGGFeatures`; the
    target features are detached (no gradient flows into the ground truth).
    """
    if set(generated) != set(target) or not generated:
        raise ValueError(f"feature layers differ or are empty: {sorted(generated)} vs {sorted(target)}")
    total = next(iter(generated.values())).new_zeros(())
    for name, feat in generated.items():
        diff = gram_matrix(feat) - gram_matrix(target[name].detach())
        total = total + diff.pow(2).sum(dim=(1, 2)).mean()
    return total


def perceptual_loss(generated: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> Tensor:
    """PATN/PoNA perceptual loss: mean L1 between VGG features, summed over layers.

    With the papers' single layer relu1_2 it is F.l1_loss(phi(G), phi(I_B).detach()).
    """
    if set(generated) != set(target) or not generated:
        raise ValueError(f"feature layers differ or are empty: {sorted(generated)} vs {sorted(target)}")
    total = next(iter(generated.values())).new_zeros(())
    for name, feat in generated.items():
        total = total + F.l1_loss(feat, target[name].detach())
    return total


# ----------------------------------------------------------------------------------------
# VGG feature stacks (no torchvision, no download)
# ----------------------------------------------------------------------------------------

# Conv widths per block; "M" = 2x2 max pool. torchvision's features.N indices follow this list
# with a ReLU after every conv.
VGG_CONFIGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_table(arch: str) -> list[tuple[str, str, int, int]]:
    """[(name, kind, in_ch, out_ch)] in torchvision order: conv{b}_{i}, relu{b}_{i}, pool{b}."""
    table: list[tuple[str, str, int, int]] = []
    ch = 3
    for b, widths in enumerate(VGG_CONFIGS[arch], start=1):
        for i, out in enumerate(widths, start=1):
            table.append((f"conv{b}_{i}", "conv", ch, out))
            table.append((f"relu{b}_{i}", "relu", out, out))
            ch = out
        table.append((f"pool{b}", "pool", ch, ch))
    return table


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Tensors of a state-dict file without executing code from it.

    ``*.safetensors`` -> safetensors.torch.load_file; anything else -> torch.load(...,
    weights_only=True) (a plain dict of tensors, optionally nested under "state_dict").
    """
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(p), device="cpu"))
    obj = torch.load(str(p), map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{p}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    return dict(obj)


class VGGFeatures(nn.Module):
    """Frozen VGG-16/19 convolution stack returning the activations of named layers.

    forward(images [B, 3, H, W] RGB in [-1, 1]) -> {layer: [B, C, H / 2^k, W / 2^k] float32}.
    Images are mapped to [0, 1] and normalised with the ImageNet mean/std inside (as PATN/PoNA's
    L1_plus_perceptualLoss does). Layer names: conv{b}_{i}, relu{b}_{i}, pool{b} (e.g. relu1_2 =
    torchvision features[3]); the stack stops at the deepest requested layer.
    Parameters never require grad; gradients still flow to the input images.

    Build it with :meth:`from_weights` (or load a state dict into ``VGGFeatures(arch, layers)``);
    freshly constructed weights are uninitialised placeholders, not a usable network.
    """

    def __init__(self, arch: str = "vgg19", layers: Sequence[str] = ("relu1_2",)) -> None:
        super().__init__()
        if arch not in VGG_CONFIGS:
            raise ValueError(f"arch must be one of {sorted(VGG_CONFIGS)}, got {arch!r}")
        if not layers:
            raise ValueError("layers must name at least one VGG layer")
        table = _layer_table(arch)
        names = [t[0] for t in table]
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise ValueError(f"unknown {arch} layers {unknown}; known: {names}")
        last = max(names.index(n) for n in layers)
        self.arch = arch
        self.layers = tuple(layers)
        self.names = names[: last + 1]
        modules: list[nn.Module] = []
        for name, kind, cin, cout in table[: last + 1]:
            if kind == "conv":
                modules.append(nn.Conv2d(cin, cout, 3, 1, 1))
            elif kind == "relu":
                modules.append(nn.ReLU(inplace=False))
            else:
                modules.append(nn.MaxPool2d(2, 2))
        # Named "features" so the keys are torchvision's ("features.0.weight", ...).
        self.features = nn.Sequential(*modules)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGFeatures":
        # Always inference mode: the network is a fixed feature extractor.
        return super().train(False)

    @classmethod
    def from_weights(
        cls,
        path: str | os.PathLike[str] | None,
        arch: str = "vgg19",
        layers: Sequence[str] = ("relu1_2",),
    ) -> "VGGFeatures":
        """Build the stack and load ImageNet weights from a user-supplied state-dict file.

        Args:
            path: ``*.safetensors`` or a ``torch.save``d state dict (loaded with
                weights_only=True), torchvision layout: keys ``features.{N}.weight/bias`` (the
                ``features.`` prefix may be absent); only the convolutions up to the deepest
                requested layer are needed, extra keys (classifier, deeper convs) are ignored.
            arch: "vgg16" (NRAM's style loss) or "vgg19" (PATN/PoNA perceptual loss).
            layers: names of the returned activations.

        Raises:
            ValueError: no path given (the VGG losses need ``--vgg-weights PATH``), or the file
                lacks a needed key / has a wrongly shaped tensor (e.g. VGG-19 weights for VGG-16).
            FileNotFoundError: the file does not exist.
        """
        if path is None or str(path) == "":
            raise ValueError(
                f"the perceptual/style losses need ImageNet-pretrained {arch.upper()} weights, which "
                f"pyposert does not download: pass --vgg-weights PATH (a {arch} state dict as "
                "*.safetensors or a torch.save file), or set their loss weights to 0"
            )
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"--vgg-weights PATH: no such file: {p}")
        net = cls(arch, layers)
        state = load_state_dict_file(p)
        if state and not any(k.startswith("features.") for k in state):
            state = {f"features.{k}": v for k, v in state.items()}
        own = net.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            hint = ""
            if arch == "vgg16" and "features.34.weight" in state:
                hint = " (the file looks like VGG-19: use arch 'vgg19')"
            raise ValueError(f"{p}: {arch} weights lack {missing[:4]}{'...' if len(missing) > 4 else ''}{hint}")
        for k, v in own.items():
            if tuple(state[k].shape) != tuple(v.shape):
                hint = " (VGG-19 weights given for VGG-16?)" if arch == "vgg16" else ""
                raise ValueError(f"{p}: {k} has shape {list(state[k].shape)}, {arch} needs {list(v.shape)}{hint}")
        net.load_state_dict({k: state[k].to(torch.float32) for k in own}, strict=True)
        return net

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W] RGB in [-1, 1], got {list(images.shape)}")
        x = ((images + 1.0) * 0.5 - self.mean) / self.std
        out: dict[str, Tensor] = {}
        for name, module in zip(self.names, self.features):
            x = module(x)
            if name in self.layers:
                out[name] = x
        return out
