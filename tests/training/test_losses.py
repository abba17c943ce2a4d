"""Losses on hand-made tensors; the VGG stack refuses without weights and works with a tiny fake
state dict (only the two first convolutions: enough for relu1_2)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from training.losses import (
    VGGFeatures,
    gan_discriminator_loss,
    gan_generator_loss,
    gram_matrix,
    l1_loss,
    perceptual_loss,
    pose_mask_l1_loss,
    style_loss,
)


def test_l1_and_pose_mask_l1_by_hand() -> None:
    g = torch.zeros(1, 3, 2, 2)
    t = torch.full((1, 3, 2, 2), 0.5)
    assert l1_loss(g, t).item() == pytest.approx(0.5)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # one of four pixels on the body
    # (1 + M) L1: mean 0.5 + mean(0.5 * M) = 0.5 + 0.5 / 4
    assert pose_mask_l1_loss(g, t, mask).item() == pytest.approx(0.625)
    assert pose_mask_l1_loss(g, t, mask[:, 0]).item() == pytest.approx(0.625)  # [B, H, W] mask
    with pytest.raises(ValueError, match="mask"):
        pose_mask_l1_loss(g, t, torch.ones(1, 1, 3, 3))
    with pytest.raises(ValueError, match="differ"):
        l1_loss(g, t[:, :2])


def test_lsgan_losses_by_hand() -> None:
    fake = torch.tensor([0.5, -1.0])
    assert gan_generator_loss(fake, "lsgan").item() == pytest.approx((0.25 + 4.0) / 2)
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    # 0.5 * (mean (D_r - 1)^2 + mean D_f^2) = 0.5 * (0.5 + 2)
    assert gan_discriminator_loss(real, fake, "lsgan").item() == pytest.approx(1.25)


def test_bce_losses_by_hand() -> None:
    zero = torch.zeros(3)
    assert gan_generator_loss(zero, "bce").item() == pytest.approx(math.log(2))
    assert gan_discriminator_loss(zero, torch.zeros(5), "bce").item() == pytest.approx(math.log(2))
    # Confident and right -> ~0; the generator's loss on a confident "fake" is ~|logit|.
    assert gan_discriminator_loss(torch.tensor([30.0]), torch.tensor([-30.0]), "bce").item() < 1e-6
    assert gan_generator_loss(torch.tensor([-30.0]), "bce").item() == pytest.approx(30.0, rel=1e-6)
    with pytest.raises(ValueError, match="GAN mode"):
        gan_generator_loss(zero, "wgan")


def test_gram_and_style_loss_by_hand() -> None:
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # [B=1, C=2, H=1, W=2]
    g = gram_matrix(f)
    # phi phi^T = [[5, 11], [11, 25]], divided by C H W = 4 (NRAM eq. 4)
    torch.testing.assert_close(g, torch.tensor([[[1.25, 2.75], [2.75, 6.25]]]))
    zero = torch.zeros_like(f)
    # ||G - 0||_F^2 = 1.25^2 + 2 * 2.75^2 + 6.25^2
    expected = 1.25**2 + 2 * 2.75**2 + 6.25**2
    assert style_loss({"a": f}, {"a": zero}).item() == pytest.approx(expected)
    assert style_loss({"a": f, "b": f}, {"a": zero, "b": f}).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="layers"):
        style_loss({"a": f}, {"b": f})


def test_feature_losses_do_not_backprop_into_the_target() -> None:
    fake = torch.zeros(1, 2, 2, 2, requires_grad=True)
    real = torch.ones(1, 2, 2, 2, requires_grad=True)
    loss = perceptual_loss({"x": fake}, {"x": real}) + style_loss({"x": fake + 1}, {"x": real})
    assert perceptual_loss({"x": fake}, {"x": real}).item() == pytest.approx(1.0)
    loss.backward()
    assert real.grad is None and fake.grad is not None


def test_vgg_refuses_without_weights(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--vgg-weights PATH"):
        VGGFeatures.from_weights(None)
    with pytest.raises(FileNotFoundError, match="--vgg-weights"):
        VGGFeatures.from_weights(tmp_path / "missing.safetensors")


def fake_vgg_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision-layout tensors of VGG's first two convolutions (features.0 and features.2)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "features.0.weight": torch.randn(64, 3, 3, 3, generator=g) * 0.1,
        "features.0.bias": torch.randn(64, generator=g) * 0.1,
        "features.2.weight": torch.randn(64, 64, 3, 3, generator=g) * 0.05,
        "features.2.bias": torch.randn(64, generator=g) * 0.1,
        "classifier.0.weight": torch.zeros(2, 2),  # extra keys are ignored
    }


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "pt-nested-no-prefix"])
def test_vgg_with_a_tiny_fake_state_dict(tmp_path: Path, fmt: str) -> None:
    state = fake_vgg_state()
    if fmt == "safetensors":
        path = tmp_path / "vgg.safetensors"
        save_file(state, str(path))
    elif fmt == "pt":
        path = tmp_path / "vgg.pth"
        torch.save(state, path)
    else:
        path = tmp_path / "vgg.pth"
        torch.save({"state_dict": {k.removeprefix("features."): v for k, v in state.items()}}, path)
    net = VGGFeatures.from_weights(path, "vgg16", ["relu1_1", "relu1_2"])
    assert not any(p.requires_grad for p in net.parameters())
    images = torch.rand(2, 3, 8, 6) * 2 - 1
    images.requires_grad_(True)
    feats = net(images)
    # The same math by hand: ImageNet normalisation, conv, ReLU, conv, ReLU.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = ((images + 1) / 2 - mean) / std
    r11 = F.relu(F.conv2d(x, state["features.0.weight"], state["features.0.bias"], padding=1))
    r12 = F.relu(F.conv2d(r11, state["features.2.weight"], state["features.2.bias"], padding=1))
    torch.testing.assert_close(feats["relu1_1"], r11)
    torch.testing.assert_close(feats["relu1_2"], r12)
    # Gradients reach the images (the losses train the generator through a frozen VGG).
    fake = net(images)
    real = net(torch.zeros_like(images))
    (perceptual_loss(fake, real) + style_loss(fake, real)).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    net.train()
    assert not net.training  # always a fixed feature extractor


def test_vgg_rejects_incomplete_or_wrong_weights(tmp_path: Path) -> None:
    state = fake_vgg_state()
    path = tmp_path / "vgg.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError, match="lack"):
        VGGFeatures.from_weights(path, "vgg19", ["relu2_1"])  # needs features.5 too
    bad = dict(state, **{"features.2.weight": torch.zeros(64, 32, 3, 3)})
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="shape"):
        VGGFeatures.from_weights(tmp_path / "bad.safetensors", "vgg16")
    with pytest.raises(ValueError, match="unknown vgg16 layers"):
        VGGFeatures("vgg16", ["relu5_4"])  # VGG-16 has three convs in block 5
    with pytest.raises(ValueError, match="arch"):
        VGGFeatures("vgg11")


def test_vgg_layer_names_follow_torchvision_indices() -> None:
    with torch.device("meta"):  # no memory, no init cost
        net = VGGFeatures("vgg19", ["relu1_2", "relu5_4"])
        vgg16 = VGGFeatures("vgg16", ["relu4_3"])
    names = net.names
    # torchvision vgg19.features: relu1_2 = 3, pool1 = 4, relu5_4 = 35
    assert names.index("relu1_2") == 3 and names.index("pool1") == 4 and names.index("relu5_4") == 35
    assert vgg16.names.index("relu4_3") == 22
