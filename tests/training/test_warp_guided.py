"""Warp-guided generators: shapes, the blend's algebra, wiring of the guide, gradients, learning."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from pyposert import ops
from training.models import BLEND_SOURCES, GUIDE_CHANNELS, MODEL_NAMES, build_generator, model_config
from training.models.warp_guided import BLEND_LOGIT_SCALE, WarpGuidedGenerator, blend
from training.ops import heatmaps_pair

H, W = 32, 24
TINY = dict(height=H, width=W, ngf=4, n_blocks=2, dropout=0.0, ndf=4, d_blocks=1, d_dropout=0.0, pg2_hidden=4,
            heatmap_sigma=2.0)


def guided_inputs(name: str, batch: int = 2, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(source, heatmaps, warped, coverage) with the warp computed by pyposert.ops.warp."""
    cfg = model_config(name, "paper", **TINY)
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, H, W, generator=g) * 2 - 1
    # A plausible upright skeleton, jittered per sample, so every part of the warp is present.
    base = torch.tensor([[0.5, 0.1], [0.5, 0.25], [0.3, 0.25], [0.25, 0.45], [0.25, 0.6], [0.7, 0.25],
                         [0.75, 0.45], [0.75, 0.6], [0.4, 0.55], [0.4, 0.75], [0.4, 0.95], [0.6, 0.55],
                         [0.6, 0.75], [0.6, 0.95], [0.45, 0.08], [0.55, 0.08], [0.42, 0.1], [0.58, 0.1]])
    kp = base * torch.tensor([W, H]) + (torch.rand(2, batch, 18, 2, generator=g) - 0.5) * 2
    kp = kp.clamp(min=0)
    pose = heatmaps_pair(kp[0], kp[1], H, W, mode=cfg.heatmap_mode, sigma=cfg.heatmap_sigma,
                         radius=cfg.heatmap_radius)
    warped, cover = ops.warp(image.numpy(), kp[0].numpy(), kp[1].numpy(), H, W)
    return image, pose, torch.from_numpy(warped), torch.from_numpy(cover)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shapes_and_weights(name: str) -> None:
    torch.manual_seed(0)
    gen = build_generator(name, "paper", warp_guided=True, **TINY)
    assert isinstance(gen, WarpGuidedGenerator)
    assert gen.config.image_input_channels == 3 + GUIDE_CHANNELS
    assert gen.config.image_output_channels == 3 + len(BLEND_SOURCES)
    image, weights = gen.forward_with_weights(*guided_inputs(name))
    assert image.shape == (2, 3, H, W) and weights.shape == (2, len(BLEND_SOURCES), H, W)
    assert image.abs().max() <= 1.0
    assert torch.allclose(weights.sum(1), torch.ones(2, H, W), atol=1e-5) and weights.min() >= 0
    # Same weights as the plain model except the first and last layer widths.
    plain = build_generator(name, "paper", **TINY)
    assert len(list(gen.core.parameters())) == len(list(plain.parameters()))


def test_blend_selects_each_source() -> None:
    """A logit of +1 (Tanh's top) on one source gives it > 0.999 of the pixel, as the scale promises."""
    source, warped, generated = (torch.full((1, 3, 2, 2), v) for v in (-0.5, 0.25, 0.75))
    for k, want in enumerate((warped, source, generated)):
        logits = -torch.ones(1, 3, 2, 2)
        logits[:, k] = 1.0
        image, weights = blend(torch.cat([generated, logits], 1), source, warped)
        assert weights[:, k].min() > 0.999
        assert torch.allclose(image, want, atol=2e-3)
    assert BLEND_LOGIT_SCALE * 2 > 6.9  # e^(2 * scale) / 2 > 1000: one source can take > 0.999


@pytest.mark.parametrize("name", ["nram", "pg2"])
def test_guide_reaches_the_output(name: str) -> None:
    """Changing only the warped source changes the output (through the blend and the network),
    and gradients reach every parameter of the core."""
    torch.manual_seed(0)
    gen = build_generator(name, "paper", warp_guided=True, **TINY)
    source, pose, warped, cover = guided_inputs(name)
    a = gen(source, pose, warped, cover)
    b = gen(source, pose, -warped, cover)
    assert (a - b).abs().max() > 1e-3
    loss = gen.stages(source, pose, warped, cover).refined.square().mean() if name == "pg2" else a.square().mean()
    loss.backward()
    no_grad = [n for n, p in gen.named_parameters() if p.grad is None]
    assert not no_grad, no_grad


def test_bad_guides_are_refused() -> None:
    gen = build_generator("nram", "paper", warp_guided=True, **TINY)
    source, pose, warped, cover = guided_inputs("nram")
    with pytest.raises(ValueError, match="warped_source must be"):
        gen(source, pose, warped[:, :2], cover)
    with pytest.raises(ValueError, match="warp_coverage must be"):
        gen(source, pose, warped, cover[:1])
    with pytest.raises(ValueError, match="warp_guided=True"):
        WarpGuidedGenerator(build_generator("nram", "paper", **TINY))


def test_learns_to_pass_the_warp_through() -> None:
    """When the truth is the warped source, a few steps move the blend towards it: the L1 to
    the truth falls well below the untrained model's, which blends all three sources."""
    torch.manual_seed(0)
    gen = build_generator("nram", "paper", warp_guided=True, **TINY)
    source, pose, warped, cover = guided_inputs("nram", batch=4)
    opt = torch.optim.Adam(gen.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (gen(source, pose, warped, cover) - warped).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
