"""Generators and discriminators: shapes, gradients, a falling loss, export, parameter counts.

Everything runs on tiny configurations (32 x 24 images, a handful of channels) except the
parameter counts, which build the paper models on the meta device (no memory, no init cost).
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from training.models import (
    MODEL_NAMES,
    ModelConfig,
    build_discriminators,
    build_generator,
    model_config,
)
from training.ops import heatmaps_pair, plain_attention

H, W = 32, 24
TINY: dict[str, Any] = dict(
    height=H, width=W, ngf=4, n_blocks=2, dropout=0.0, ndf=4, d_blocks=1, d_dropout=0.0,
    pg2_hidden=4, heatmap_sigma=2.0,
)


def tiny(name: str, **overrides: Any) -> ModelConfig:
    return model_config(name, "paper", **{**TINY, **overrides})


def inputs(cfg: ModelConfig, batch: int = 2, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(source image [B,3,H,W] in [-1,1], pose heatmaps [B,36,H,W] from random keypoints)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, cfg.height, cfg.width, generator=g) * 2 - 1
    kp = torch.rand(2, batch, 18, 2, generator=g) * torch.tensor([cfg.width, cfg.height])
    pose = heatmaps_pair(kp[0], kp[1], cfg.height, cfg.width, mode=cfg.heatmap_mode,
                         sigma=cfg.heatmap_sigma, radius=cfg.heatmap_radius)
    return image, pose


def disc_inputs(cfg: ModelConfig, image: Tensor, source: Tensor, pose: Tensor) -> dict[str, Tensor]:
    target = pose[:, cfg.pose_channels // 2:]
    return {"appearance": torch.cat([image, source], 1), "pose": torch.cat([image, target], 1),
            "image": image}


def set_gates(model: nn.Module, value: float) -> None:
    """Set every attention gate (PoNA's gamma / beta, zero at init) to value."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("gamma", "beta")):
                p.fill_(value)


def instance_norm_cancelled_biases(model: nn.Module, *args: Tensor) -> set[str]:
    """Names of conv biases whose output goes straight into a non-affine InstanceNorm.

    The norm subtracts the per-channel mean, so such a bias cannot change the output and its
    gradient is identically zero. PATN/PoNA keep these biases (their published parameter
    counts include them), so the gradient test expects zero there and nowhere else.
    """
    produced: dict[int, str] = {}
    alive: list[Tensor] = []  # keep outputs alive so their ids stay unique during the pass
    cancelled: set[str] = set()
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
            def on_conv(mod: nn.Module, inp: Any, out: Tensor, name: str = name) -> None:
                produced[id(out)] = name
                alive.append(out)
            hooks.append(m.register_forward_hook(on_conv))
        elif isinstance(m, nn.InstanceNorm2d) and not m.affine:
            def on_norm(mod: nn.Module, inp: tuple[Tensor, ...]) -> None:
                if id(inp[0]) in produced:
                    cancelled.add(produced[id(inp[0])] + ".bias")
            hooks.append(m.register_forward_pre_hook(on_norm))
    try:
        with torch.no_grad():
            model(*args)
    finally:
        for h in hooks:
            h.remove()
    return cancelled


def assert_all_grads(model: nn.Module, expected_zero: set[str]) -> None:
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    zero = [n for n, p in model.named_parameters()
            if p.grad is not None and not p.grad.abs().max() > 0 and n not in expected_zero]
    assert not missing and not zero, f"no gradient: {missing}; all-zero gradient: {zero}"
    for n, p in model.named_parameters():
        if n in expected_zero:
            assert p.grad is None or p.grad.abs().max() < 1e-5, f"{n} should be cancelled by its norm"


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("size", [(32, 24), (40, 16)])
def test_generator_output_shape_and_range(name: str, size: tuple[int, int]) -> None:
    cfg = tiny(name, height=size[0], width=size[1])
    gen = build_generator(cfg).eval()
    image, pose = inputs(cfg)
    with torch.no_grad():
        out = gen(image, pose)
    assert out.shape == (2, 3, *size) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= -1 and out.max() <= 1
    assert gen.config == cfg


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_discriminator_shapes(name: str) -> None:
    cfg = tiny(name)
    image, pose = inputs(cfg)
    ds = build_discriminators(cfg)
    feeds = disc_inputs(cfg, image, image, pose)
    if name == "pg2":
        assert set(ds) == {"image"}
        assert ds["image"](image).shape == (2, 1)
    else:
        assert set(ds) == {"appearance", "pose"}
        for role, d in ds.items():
            assert d(feeds[role]).shape == (2, cfg.ndf * 4, H // 4, W // 4)


def test_pona_discriminators_are_spectral_normalised() -> None:
    ds = build_discriminators(tiny("pona"))
    for d in ds.values():
        convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(hasattr(m, "parametrizations") for m in convs)


def test_pg2_stages_and_input_contract() -> None:
    cfg = tiny("pg2")
    gen = build_generator(cfg)
    image, pose = inputs(cfg)
    coarse, refined = gen.stages(image, pose)
    assert coarse.shape == refined.shape == (2, 3, H, W)
    torch.testing.assert_close(gen(image, pose), refined.clamp(-1, 1))
    # Only the target 18 channels matter (PG2 conditions on the target pose alone).
    changed = pose.clone()
    changed[:, :18] = 0
    torch.testing.assert_close(gen(image, changed), gen(image, pose))
    with pytest.raises(ValueError, match="built for"):
        gen(image[..., :16], pose[..., :16])


def test_nram_attention_maps_are_one_channel() -> None:
    cfg = tiny("nram", n_blocks=3)
    gen = build_generator(cfg)
    out, maps = gen.forward_with_maps(*inputs(cfg))
    assert out.shape == (2, 3, H, W) and len(maps) == 3
    for m in maps:
        assert m.shape == (2, 1, H // 4, W // 4) and m.min() > 0 and m.max() < 1


@pytest.mark.parametrize("name", ["pona", "patn", "nram"])
def test_generators_reject_bad_inputs(name: str) -> None:
    cfg = tiny(name)
    gen = build_generator(cfg)
    image, pose = inputs(cfg)
    with pytest.raises(ValueError, match="pose_heatmaps"):
        gen(image, pose[:, :18])
    with pytest.raises(ValueError, match="divisible"):
        gen(image[..., :22], pose[..., :22])


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    """One backward on a tiny config reaches every parameter of G and of each D.

    PoNA's attention gates (gamma, beta) start at 0, which by design cuts the gradient to
    everything upstream of them in step 1 (the attention q/k/v convs, and through the pose
    update the whole pose pathway). The gates themselves do get gradients at init (checked in
    test_pona_gates_learn_from_zero), so training moves them off zero; here they are set to
    0.5 to check that every weight is wired into the output. Conv biases directly followed by a
    non-affine InstanceNorm are cancelled by it; they must have zero gradient and are the only
    exception.
    """
    torch.manual_seed(0)
    cfg = tiny(name)
    gen = build_generator(cfg)
    set_gates(gen, 0.5)
    image, pose = inputs(cfg)
    expected_zero = instance_norm_cancelled_biases(gen, image, pose)
    if name == "pg2":
        coarse, refined = gen.stages(image, pose)
        loss = coarse.square().mean() + refined.square().mean()
    else:
        loss = gen(image, pose).square().mean()
    loss.backward()
    assert_all_grads(gen, expected_zero)

    fake = torch.rand_like(image) * 2 - 1
    for role, d in build_discriminators(cfg).items():
        x = disc_inputs(cfg, fake, image, pose)[role]
        expected_zero = instance_norm_cancelled_biases(d, x)
        d(x).square().mean().backward()
        assert_all_grads(d, expected_zero)


def test_pona_gates_learn_from_zero() -> None:
    """At init (all gates 0) only the pose-guided gammas get a gradient; one optimiser step later
    everything does. So the zero init is a starting point, not a dead end."""
    torch.manual_seed(0)
    cfg = tiny("pona")
    gen = build_generator(cfg)
    image, pose = inputs(cfg)
    gates = {n: p for n, p in gen.named_parameters() if n.endswith(("gamma", "beta"))}
    assert len(gates) == 3 * cfg.n_blocks and all(p.item() == 0 for p in gates.values())
    opt = torch.optim.Adam(gen.parameters(), lr=1e-3)
    gen(image, pose).square().mean().backward()
    nonlocal_gammas = [f"blocks.{i}.gamma" for i in range(cfg.n_blocks)]
    for n, p in gates.items():
        has_grad = p.grad is not None and p.grad.abs().item() > 0
        # The self-attention gates act on z, which reaches the output only through the
        # pose-guided attention, still multiplied by its zero gamma.
        assert has_grad == (n in nonlocal_gammas), n
    assert all(p.grad is None or not p.grad.any() for p in gen.pose_encoder.parameters())
    opt.step()
    assert all(gen.get_parameter(n).item() != 0 for n in nonlocal_gammas)
    opt.zero_grad()
    expected_zero = instance_norm_cancelled_biases(gen, image, pose)
    gen(image, pose).square().mean().backward()
    # The self-attention gates are still 0, so its q/k/v convs wait for one more step.
    sa_qkv = {n for n, _ in gen.named_parameters()
              if ".fusion_attention." in n and not n.endswith(("gamma", "beta"))}
    assert_all_grads(gen, expected_zero | sa_qkv)


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_loss_falls_on_a_fixed_batch(name: str) -> None:
    torch.manual_seed(0)
    cfg = tiny(name)
    gen = build_generator(cfg)
    image, pose = inputs(cfg)
    target = torch.rand_like(image) * 2 - 1
    opt = torch.optim.Adam(gen.parameters(), lr=2e-3, betas=(0.5, 0.999))
    losses: list[float] = []
    for _ in range(20):
        opt.zero_grad()
        if name == "pg2":
            coarse, refined = gen.stages(image, pose)
            loss = (coarse - target).abs().mean() + (refined - target).abs().mean()
        else:
            loss = (gen(image, pose) - target).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(map(lambda v: v == v, losses)), losses  # no NaN
    assert losses[-1] < 0.9 * losses[0], losses


# --------------------------------------------------------------------------- export


def test_pona_torch_export_keeps_attention_op() -> None:
    cfg = tiny("pona")
    gen = build_generator(cfg).eval()
    set_gates(gen, 0.5)
    args = inputs(cfg, batch=1)
    ep = torch.export.export(gen, args)
    targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    # one self-attention and one pose-guided attention per block
    assert targets.count(torch.ops.pyposert.attention.default) == 2 * cfg.n_blocks
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(*args), gen(*args))


@pytest.mark.parametrize("name", ["pona", "pg2"])
def test_plain_onnx_export_matches_torch(name: str) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from training.flops import export_onnx

    cfg = tiny(name)
    gen = build_generator(cfg).eval()
    set_gates(gen, 0.5)
    args = inputs(cfg, batch=1)
    buf = io.BytesIO()
    export_onnx(gen, cfg, buf)
    model = onnx.load_from_string(buf.getvalue())
    assert all(node.domain in ("", "ai.onnx") for node in model.graph.node), "standard ops only"
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"source_image": args[0].numpy(), "pose_heatmaps": args[1].numpy()})
    with torch.no_grad(), plain_attention():
        ref = gen(*args)
    torch.testing.assert_close(torch.from_numpy(out), ref, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------- configs


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _meta_generator(name: str, **kw: Any) -> nn.Module:
    with torch.device("meta"):
        return build_generator(name, "paper", **kw)


@pytest.mark.parametrize(
    "name, kw, expected",
    [
        # REFERENCE_MODELS.md / PoNA Table II
        ("pona", {}, 34.33e6),
        ("pona", dict(n_blocks=2), 23.31e6),
        ("patn", {}, 41.36e6),
    ],
)
def test_paper_parameter_counts(name: str, kw: dict[str, Any], expected: float) -> None:
    n = _count(_meta_generator(name, **kw))
    assert abs(n - expected) / expected < 0.005, n


def test_pg2_parameter_counts() -> None:
    g = _meta_generator("pg2", height=128, width=64)  # Market-1501
    assert abs(_count(g.g1) - 71e6) / 71e6 < 0.05, _count(g.g1)
    # PoNA's Table II lists PG2 at 437.09 M on DeepFashion (256 x 256): that is G1 + G2 + D
    # counted with Adam's two moment slots (TF checkpoint variables), i.e. 3x the parameters.
    g = _meta_generator("pg2", height=256, width=256)
    with torch.device("meta"):
        d = build_discriminators("pg2", "paper", height=256, width=256)["image"]
    assert abs(3 * (_count(g) + _count(d)) - 437.09e6) / 437.09e6 < 0.005


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_rt_generators_run_at_128x88(name: str) -> None:
    cfg = model_config(name, "rt")
    assert (cfg.height, cfg.width) == (128, 88)
    gen = build_generator(cfg).eval()
    with torch.no_grad():
        out = gen(*inputs(cfg, batch=1))
    assert out.shape == (1, 3, 128, 88) and torch.isfinite(out).all()


def test_config_roundtrip_and_validation() -> None:
    for name in MODEL_NAMES:
        for size in ("paper", "rt"):
            cfg = model_config(name, size)
            assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert model_config("pg2").heatmap_mode == "disk"
    assert model_config("pona", "rt").height == 128
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({"name": "pona", "n_blokcs": 3})
    with pytest.raises(ValueError):
        model_config("stylegan")
    with pytest.raises(ValueError):
        model_config("pona", "huge")
