"""Training a warp-guided generator: the warp the trainer feeds, one pixel-loss step, the SSIM
term, starting from a generator state dict, and evaluation feeding the warp."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pyposert import ops
from training.data.datasets import tensor_to_image
from training.evaluate import evaluate_checkpoint, generate
from training.losses import ssim_loss
from training.metrics import ssim as ssim_metric
from training.models import build_generator
from training.train import init_weights, train
from training.trainer import Trainer, generator_inputs, warp_input
from training.distributed import init_distributed

from tests.training.test_train import poses_dir, tiny_config  # noqa: F401  (fixture)
from tests.training.test_warp_guided import guided_inputs

H, W = 32, 24


def _batch(seed: int = 0, batch: int = 2) -> dict[str, torch.Tensor]:
    image, _, _, _ = guided_inputs("nram", batch=batch, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    base = torch.rand(batch, 18, 2, generator=g) * torch.tensor([W - 1, H - 1])
    target = base + torch.rand(batch, 18, 2, generator=g)
    target[:, 3] = -1.0  # a missing joint on the target side
    return {"source_image": image, "target_image": image.flip(-1), "source_pose": base, "target_pose": target,
            "target_mask": torch.ones(batch, 1, H, W)}


def test_warp_input_is_the_native_warp() -> None:
    b = _batch()
    cfg = build_generator("nram", "rt", warp_guided=True, height=H, width=W, ngf=4, n_blocks=1).config
    warped, coverage = warp_input(b["source_image"], b["source_pose"], b["target_pose"], cfg)
    want_w, want_c = ops.warp(b["source_image"].numpy(), b["source_pose"].numpy(), b["target_pose"].numpy(), H, W)
    assert warped.shape == (2, 3, H, W) and coverage.shape == (2, 1, H, W)
    np.testing.assert_array_equal(warped.numpy(), want_w)
    np.testing.assert_array_equal(coverage.numpy(), want_c)
    assert not warped.requires_grad
    assert 0.0 < float(coverage.mean()) < 1.0  # the test skeletons do cover part of the frame


def test_generator_inputs_add_the_warp_only_for_warp_guided_models() -> None:
    b = _batch()
    plain = build_generator("nram", "rt", height=H, width=W, ngf=4, n_blocks=1).config
    guided = plain.replace(warp_guided=True)
    assert len(generator_inputs(b, plain)) == 2
    src, pose, warped, coverage = generator_inputs(b, guided)
    assert pose.shape == (2, 36, H, W) and warped.shape == (2, 3, H, W) and coverage.shape == (2, 1, H, W)


def test_ssim_loss_is_zero_for_equal_images_and_follows_the_metric() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.rand(2, 3, H, W, generator=g) * 2 - 1
    assert float(ssim_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    losses, metric = [], []
    for noise in (0.05, 0.2, 0.6):
        b = (a + noise * torch.randn(a.shape, generator=g)).clamp(-1, 1)
        losses.append(float(ssim_loss(b, a)))
        u8 = lambda t: ((t[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)  # noqa: E731
        metric.append(ssim_metric(u8(b), u8(a)))
    assert losses == sorted(losses) and metric == sorted(metric, reverse=True)
    assert all(0 < v < 1 for v in losses)
    x = a.clone().requires_grad_(True)
    ssim_loss(x, a.flip(-1)).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="equal"):
        ssim_loss(a, a[:, :2])


def test_pixel_loss_step_trains_the_generator_and_leaves_the_discriminators(poses_dir: str) -> None:
    cfg = tiny_config(poses_dir, model_overrides={**tiny_config(poses_dir).model_overrides, "warp_guided": True},
                      loss={"lambda_gan": 0.0, "lambda_ssim": 0.5})
    trainer = Trainer(cfg, init_distributed("cpu"), None)
    before_g = [p.detach().clone() for p in trainer.generator.parameters()]
    before_d = {k: [p.detach().clone() for p in m.parameters()] for k, m in trainer.discriminators.items()}
    losses = trainer.step(0, _batch())
    assert set(losses) == {"l1", "ssim", "g_total"}
    assert losses["g_total"] == pytest.approx(losses["l1"] + losses["ssim"], rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(before_g, trainer.generator.parameters()))
    for k, m in trainer.discriminators.items():
        assert all(torch.equal(a, b) for a, b in zip(before_d[k], m.parameters()))


def test_adversarial_step_still_trains_the_discriminators(poses_dir: str) -> None:
    cfg = tiny_config(poses_dir, model_overrides={**tiny_config(poses_dir).model_overrides, "warp_guided": True})
    trainer = Trainer(cfg, init_distributed("cpu"), None)
    losses = trainer.step(0, _batch())
    assert {"g_gan", "l1", "d_appearance", "d_pose"} <= set(losses)


def test_init_from_a_state_dict_file(poses_dir: str, tmp_path: Path) -> None:
    overrides = {**tiny_config(poses_dir).model_overrides, "warp_guided": True}
    cfg = tiny_config(poses_dir, model_overrides=overrides, loss={"lambda_gan": 0.0},
                      train={"steps": 1, "eval_count": 1})
    torch.manual_seed(11)
    start = build_generator(cfg.model_config())
    torch.save(start.state_dict(), tmp_path / "start.pt")
    trainer = Trainer(cfg, init_distributed("cpu"), None)
    note = init_weights(trainer, tmp_path / "start.pt")
    assert "start.pt" in note
    for a, b in zip(start.state_dict().values(), trainer.generator.state_dict().values()):
        assert torch.equal(a, b)
    # A state dict of another architecture is refused with the reason, not a traceback.
    plain = build_generator(tiny_config(poses_dir).model_config())
    torch.save(plain.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="warp_guided=True"):
        init_weights(trainer, tmp_path / "plain.pt")
    # The whole run: one step from the file, then evaluation (which feeds the warp too).
    summary = train(cfg, tmp_path / "run", progress=False, device="cpu", init_from=tmp_path / "start.pt")
    assert summary["steps"] == 1 and 0.0 < summary["eval"]["ssim"] <= 1.0
    # evaluate: the warp-guided run on the held-out pairs, with the backdrops chosen for the comparison.
    reports = {bg: evaluate_checkpoint(tmp_path / "run", count=2, mean_count=2, batch_size=2, grid_rows=1,
                                       out=tmp_path / bg, background=bg) for bg in ("plain", "cluttered")}
    assert reports["plain"]["background"] == "plain"
    copies = [r["results"]["copy_source"]["ssim"] for r in reports.values()]
    assert copies[0] != copies[1]  # other backdrops, other pairs


def test_generate_feeds_the_warp() -> None:
    torch.manual_seed(0)
    gen = build_generator("nram", "rt", warp_guided=True, height=H, width=W, ngf=4, n_blocks=1).eval()
    b = _batch()
    out = generate(gen, gen.config, b)
    with torch.no_grad():
        want = gen(*generator_inputs(b, gen.config))
    assert out.shape == (2, H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, tensor_to_image(want))
