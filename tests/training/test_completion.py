"""Fashion completion on the training side: the model's structure and equations,
the erased-garment sampler, the trainer (checkpoint, exact resume, CLI), evaluation, and the
export -> Engine.complete round trip against torch, on tiny configurations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pyposert import completion as C
from training.__main__ import main as cli
from training.data.completion import CompletionSamples, build_sample
from training.models.completion import (PAPER_PARAMS, CompletionDiscriminator, CompletionModel,
                                        EncoderDecoderAttention, completion_config, kl_normal)
from training.ops import attention_reference

from test_train import write_tiny_pose_bank  # noqa: E402 - the shared tiny real-pose bank

TINY = dict(height=32, width=24, crop_size=16, latent=4, ch=4, max_ch=8, n_down=3, enc_ch=4, enc_max_ch=8,
            enc_down=2, d_ch=4, d_max_ch=8, d_down=3, heatmap_sigma=1.5)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def poses_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_tiny_pose_bank(tmp_path_factory.mktemp("poses")))


def _inputs(cfg, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    h, w, s = cfg.height, cfg.width, cfg.crop_size
    labels = torch.randint(0, C.NUM_CLASSES, (batch, h, w), generator=g)
    erase = torch.zeros(batch, 1, h, w)
    erase[:, :, h // 4:h // 2, w // 4:3 * w // 4] = 1.0
    onehot = torch.nn.functional.one_hot(labels, C.NUM_CLASSES).permute(0, 3, 1, 2).float()
    return (torch.rand(batch, 3, h, w, generator=g) * 2 - 1) * (1 - erase), onehot * (1 - erase), erase, \
        torch.rand(batch, 18, h, w, generator=g), torch.rand(batch, 12, s, s, generator=g) * 2 - 1, \
        torch.randn(batch, 2, cfg.latent, generator=g)


def test_paper_parameter_counts_match_the_thesis() -> None:
    cfg = completion_config("paper")
    m, d = CompletionModel(cfg), CompletionDiscriminator(cfg)
    counts = {"generator": [_count(m.shape.gen), _count(m.texture.gen)],
              "encoder": [_count(m.shape.enc), _count(m.texture.enc)],
              "compat_encoder": [_count(m.shape.enc_c), _count(m.texture.enc_c)],
              "discriminator": [_count(d)]}
    for part, values in counts.items():
        for v in values:
            assert abs(v / PAPER_PARAMS[part] - 1) < 0.05, (part, v, PAPER_PARAMS[part])


def test_sample_keeps_the_input_outside_the_region_and_varies_with_noise() -> None:
    cfg = completion_config("rt", **TINY)
    m = CompletionModel(cfg).eval()
    x = _inputs(cfg)
    with torch.no_grad():
        parsing, image = m.sample(*x)
        parsing2, image2 = m.sample(*x[:5], torch.randn_like(x[5]))
    keep = x[2] == 0
    assert parsing.shape == (2, 8, cfg.height, cfg.width) and image.shape == (2, 3, cfg.height, cfg.width)
    assert torch.equal(image[keep.expand_as(image)], x[0][keep.expand_as(image)])
    assert torch.equal(parsing[keep.expand_as(parsing)], x[1][keep.expand_as(parsing)])
    inside = ~keep
    assert torch.allclose(parsing.sum(1, keepdim=True)[inside], torch.ones(1), atol=1e-5)
    assert image.abs().max() <= 1.0
    assert not torch.equal(image2, image)  # z comes from the prior: other noise, other completion


def test_every_attention_goes_through_the_op_and_the_ablation_removes_it() -> None:
    from export.onnx_export import _CountOps

    for attention, expected in ((True, 2), (False, 0)):
        m = CompletionModel(completion_config("rt", **TINY, attention=attention)).eval()
        with torch.no_grad(), _CountOps() as mode:
            m.sample(*_inputs(m.config))
        assert mode.counts["pyposert.attention.default"] == expected


def test_encoder_decoder_attention_follows_eq_2_31_and_2_32() -> None:
    torch.manual_seed(0)
    att = EncoderDecoderAttention(16)
    with torch.no_grad():
        att.gamma_d.fill_(0.7)
        att.gamma_e.fill_(-1.3)
    f_d, f_e = torch.randn(2, 16, 4, 3), torch.randn(2, 16, 4, 3)
    known = (torch.rand(2, 1, 4, 3) > 0.4).float()
    out = att(f_d, f_e, known)
    q = att.query(f_d).flatten(2).transpose(1, 2)  # [B, N, 2]
    beta_c = lambda v: attention_reference(q, q, v.flatten(2).transpose(1, 2), 1.0).transpose(1, 2).reshape(v.shape)  # noqa: E731
    y_d = 0.7 * beta_c(f_d) + f_d
    y_e = known * f_e + (1 - known) * -1.3 * beta_c(known * f_e)
    assert torch.allclose(out, torch.cat([y_d, y_e], 1).float(), atol=1e-5)
    # gamma = 0 at initialisation: the block starts as the identity skip (SAGAN).
    fresh = EncoderDecoderAttention(16)
    assert torch.allclose(fresh(f_d, f_e, known), torch.cat([f_d, known * f_e], 1))


def test_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(1)
    mq, lq, mp, lp = (torch.randn(3, 5, generator=g) for _ in range(4))
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mq, (0.5 * lq).exp()),
                                            torch.distributions.Normal(mp, (0.5 * lp).exp())).sum(1).mean()
    assert torch.allclose(kl_normal(mq, lq, mp, lp), ref, atol=1e-5)


def test_gradients_reach_every_parameter(poses_dir: str) -> None:
    from training.train_completion import CompletionTrainConfig, CompletionTrainer

    cfg = CompletionTrainConfig.from_dict({"size": "rt", "model": TINY, "train": {"batch_size": 2}})
    trainer = CompletionTrainer(cfg, torch.device("cpu"))
    ds = CompletionSamples(32, 24, 16, poses_dir=poses_dir)
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    trainer.step(batch, 0)
    # Each stage zeroes its own grads before its backward and Adam leaves them in place, so
    # after one step every parameter holds the gradient of the loss that trains it.
    named = list(trainer.model.named_parameters()) + [(f"disc.{n}", p) for n, p in trainer.disc.named_parameters()]
    dead = [n for n, p in named if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    # The attention gammas start at 0, so the layers feeding the attention branch get no
    # gradient on step one (SAGAN); the gammas themselves must.
    behind_gamma = ("query", "key", "value")
    assert [n for n in dead if not any(k in n for k in behind_gamma)] == []
    assert any(n.endswith("gamma_e") for n, _ in named)


def test_losses_fall_on_a_fixed_batch(poses_dir: str) -> None:
    from training.train_completion import CompletionTrainConfig, CompletionTrainer

    cfg = CompletionTrainConfig.from_dict({"size": "rt", "model": TINY, "train": {"lr": 2e-3}})
    trainer = CompletionTrainer(cfg, torch.device("cpu"))
    ds = CompletionSamples(32, 24, 16, poses_dir=poses_dir)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    first = trainer.step(batch, 0)
    for k in range(1, 30):
        last = trainer.step(batch, k)
    assert last["seg"] < 0.7 * first["seg"]
    assert last["pixel_l1"] < 0.8 * first["pixel_l1"]


def test_samples_are_deterministic_and_erase_the_garment(poses_dir: str) -> None:
    a = CompletionSamples(64, 44, 32, poses_dir=poses_dir)
    b = CompletionSamples(64, 44, 32, poses_dir=poses_dir)
    for i in range(4):
        s, t = a[i], b[i]
        assert all(np.array_equal(s[k], t[k]) for k in s if isinstance(s[k], np.ndarray))
        g = s["garment"]
        assert g in C.GARMENT_CLASSES
        y0, x0, y1, x1 = s["box"]
        inside = np.zeros(s["parsing"].shape, bool)
        inside[y0:y1, x0:x1] = True
        assert inside[s["parsing"] == g].all()  # the box covers the whole garment
        assert np.array_equal(s["erase_mask"][0] > 0, inside)
        assert not s["masked_image"][:, inside].any() and not s["masked_parsing"][:, inside].any()
        k = C.GARMENT_CLASSES.index(g)
        assert not s["garment_crops"][3 * k:3 * k + 3].any() and s["garment_crop"].any()
        assert np.array_equal(s["garment_mask"][0] > 0, s["parsing"] == g)
    only = CompletionSamples(64, 44, 32, garment="bottom", poses_dir=poses_dir)
    assert {only[i]["garment"] for i in range(3)} == {C.garment_class("bottom")}
    with pytest.raises(ValueError, match="garment must be one of"):
        CompletionSamples(64, 44, 32, garment="scarf", poses_dir=poses_dir)


def test_train_resume_evaluate_export_and_serve(tmp_path: Path, poses_dir: str) -> None:
    """The whole path on a tiny model: train 2 steps, resume to 3 (== 3 straight), evaluate
    (report files), export (ONNX Runtime parity inside), and Engine.complete on the bundle
    equals the torch model on the same photo."""
    pytest.importorskip("onnxruntime")
    import pyposert
    from export.__main__ import export_bundle
    from training.train_completion import load_completion_checkpoint

    recipe = {"size": "rt", "model": TINY,
              "train": {"steps": 3, "batch_size": 2, "eval_every": 100, "eval_count": 2, "checkpoint_every": 1,
                        "log_every": 1, "num_workers": 0},
              "data": {"poses_dir": poses_dir}}
    cfg_file = tmp_path / "tiny.toml"
    def toml(d: dict) -> str:
        lines = [f'size = "{d["size"]}"']
        for sec in ("model", "train", "data"):
            lines.append(f"[{sec}]")
            for k, v in d[sec].items():
                lines.append(f"{k} = {json.dumps(v)}")
        return "\n".join(lines) + "\n"

    cfg_file.write_text(toml(recipe))
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    base = ["train-completion", "--size", "rt", "--config", str(cfg_file), "--no-progress"]
    assert cli(base + ["--out", str(straight)]) == 0
    assert cli(base + ["--out", str(resumed), "--steps", "2"]) == 0
    assert cli(base + ["--out", str(resumed)]) == 2  # exists: needs --resume
    assert cli(base + ["--out", str(resumed), "--resume", "--steps", "3"]) == 0
    a, b = load_completion_checkpoint(straight), load_completion_checkpoint(resumed)
    assert a.step == b.step == 3
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)

    report = tmp_path / "report"
    assert cli(["evaluate-completion", "--checkpoint", str(straight), "--count", "2", "--samples", "2",
                "--out", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    scores = {"ssim", "l1", "parsing_acc", "garment_iou"}
    assert set(metrics["samples"]) == scores | {"diversity"} and metrics["samples"]["diversity"] > 0
    assert set(metrics["reconstruction"]) == scores and set(metrics["mean_fill"]) == scores
    assert (report / "grid.png").stat().st_size > 0 and "region SSIM" in (report / "metrics.md").read_text()

    plan = tmp_path / "completion.plan"
    res = export_bundle(straight, plan, progress=False)
    assert "model.onnx" in res.sizes and "model_pyposert.onnx" in res.sizes
    engine = pyposert.Engine(plan, backend="onnxruntime")
    assert engine.task == "completion"
    ds = CompletionSamples(32, 24, 16, "eval", poses_dir=poses_dir)
    person, _ = ds.render(0)
    g = int(ds[0]["garment"])
    out = engine.complete(np.ascontiguousarray(person.image[:, :, ::-1]), person.parsing, person.keypoints,
                          C.GARMENTS[C.GARMENT_CLASSES.index(g)], seed=3, samples=2, output_size="model",
                          framing=False)  # the model frame of the whole photo, as the reference below
    s = build_sample(person.image, person.parsing, person.keypoints, g, 16)
    from training.train_completion import pose_heatmaps

    model = a.build_model()
    t = lambda k: torch.from_numpy(np.asarray(s[k]))[None].expand(2, *np.asarray(s[k]).shape)  # noqa: E731
    with torch.no_grad():
        _, ref = model.sample(t("masked_image"), t("masked_parsing"), t("erase_mask"),
                              pose_heatmaps(t("keypoints"), model.config), t("garment_crops"),
                              torch.from_numpy(C.noise(3, 2, model.config.latent)))
    for k in range(2):
        want = np.clip(np.floor((ref[k].numpy().transpose(1, 2, 0) + 1) * 127.5 + 0.5), 0, 255).astype(np.uint8)
        assert np.abs(out.images[k][:, :, ::-1].astype(int) - want.astype(int)).max() <= 1


def test_folding_spectral_norm_keeps_outputs_and_the_original() -> None:
    from export.completion_export import fold_spectral_norm

    torch.manual_seed(0)
    model = CompletionModel(completion_config("rt", **TINY)).eval()
    x = _inputs(model.config)
    with torch.no_grad():
        before = model.sample(*x)[1]
        folded = fold_spectral_norm(model)
        assert not any(hasattr(m, "parametrizations") for m in folded.modules())
        assert torch.allclose(folded.sample(*x)[1], before, atol=1e-5)
        assert torch.equal(model.sample(*x)[1], before)  # the original still runs, unchanged


def test_vgg_content_and_style_are_opt_in(tmp_path: Path, poses_dir: str) -> None:
    from safetensors.torch import save_file

    from training.losses import VGGFeatures
    from training.train_completion import CompletionTrainConfig, CompletionTrainer

    recipe = {"size": "rt", "model": TINY, "loss": {"content_layers": ["relu1_2"], "lambda_style": 1.0}}
    cfg = CompletionTrainConfig.from_dict(recipe)
    ds = CompletionSamples(32, 24, 16, poses_dir=poses_dir)
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    plain = CompletionTrainer(cfg, torch.device("cpu")).step(batch, 0)
    assert plain["appearance"] == plain["pixel_l1"]  # no weights: pixels only, and it still trains
    g = torch.Generator().manual_seed(0)
    fake = {"features.0.weight": torch.randn(64, 3, 3, 3, generator=g) * 0.1, "features.0.bias": torch.zeros(64),
            "features.2.weight": torch.randn(64, 64, 3, 3, generator=g) * 0.05, "features.2.bias": torch.zeros(64)}
    save_file(fake, str(tmp_path / "vgg19.safetensors"))
    vgg = VGGFeatures.from_weights(str(tmp_path / "vgg19.safetensors"), "vgg19", ["relu1_2"])
    with_vgg = CompletionTrainer(cfg, torch.device("cpu"), vgg).step(batch, 0)
    assert with_vgg["appearance"] > with_vgg["pixel_l1"] > 0


# ------------------------------------------------------------------ measures, upsampling, photo conditioning
def test_checkerboard_measure_sees_the_grid_and_not_texture() -> None:
    from training.evaluate_completion import checkerboard

    rng = np.random.default_rng(0)
    mask = np.zeros((64, 64), bool)
    mask[8:56, 8:56] = True
    flat = np.full((64, 64, 3), 120, np.uint8)
    assert checkerboard(flat, mask) == 0.0
    texture = np.clip(120 + rng.normal(0, 30, (64, 64, 3)), 0, 255).astype(np.uint8)
    tile = rng.normal(0, 20, (8, 8))
    grid = np.clip(texture.astype(np.float64) + np.tile(tile, (8, 8))[:, :, None], 0, 255).astype(np.uint8)
    noise_only, with_grid = checkerboard(texture, mask), checkerboard(grid, mask)
    assert noise_only < 2.0 < 10.0 < with_grid  # texture without the grid: about 0; the grid: its RMS
    stripes = np.tile((np.arange(64) % 5 < 2)[None, :, None] * 80 + 80, (64, 1, 3)).astype(np.uint8)
    assert checkerboard(stripes, mask) < 3.0  # a pattern off the 8-pixel grid is texture
    assert np.isnan(checkerboard(grid, np.zeros((64, 64), bool)))


def test_spearman_and_colour_tracking() -> None:
    from training.evaluate_completion import colour_tracking, spearman

    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert spearman(x, x ** 3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert spearman(x, np.array([1.0, 1.0, 2.0, 2.0, 3.0])) == pytest.approx(0.9486832980505138)
    assert np.isnan(spearman(x, np.ones(5))) and np.isnan(spearman(x[:2], x[:2]))
    rng = np.random.default_rng(1)
    visible = rng.normal(0, 1, (40, 3))
    rho = colour_tracking(visible * 2 + 0.1 * rng.normal(0, 1, (40, 3)), visible)
    assert min(rho[c] for c in ("L", "a", "b")) > 0.9 and rho["mean"] > 0.9
    assert rho["slope"] == pytest.approx(2.0, abs=0.1)
    tiny = colour_tracking(visible * 0.01 + 50.0, visible)  # perfectly ranked, barely moving
    assert tiny["mean"] == pytest.approx(1.0) and tiny["slope"] == pytest.approx(0.01)
    assert abs(colour_tracking(rng.normal(0, 1, (40, 3)), visible)["mean"]) < 0.4


def test_resize_up_blocks_have_no_transposed_convolution() -> None:
    from training.models.completion import UPSAMPLE_MODES

    new = CompletionModel(completion_config("rt", **{k: v for k, v in TINY.items() if k not in ("height", "width")}))
    assert new.config.upsample == "resize" and new.config.photo_condition
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in new.modules())
    old = CompletionModel(completion_config("rt", upsample="deconv", photo_condition=False))
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in old.modules())
    # A config written before these fields (no keys) is the old network, so its checkpoint loads.
    legacy = {k: v for k, v in completion_config("rt").to_dict().items() if k not in ("upsample", "photo_condition")}
    cfg = type(new.config).from_dict(legacy)
    assert cfg.upsample == "deconv" and not cfg.photo_condition
    with pytest.raises(ValueError, match=r"upsample must be one of \('resize', 'deconv'\)"):
        completion_config("rt", upsample="bilinear")
    assert UPSAMPLE_MODES == ("resize", "deconv")


def test_deconvolution_projects_exactly_onto_a_resize_convolution() -> None:
    from training.train_completion import _DECONV_TAPS, deconv_to_resize_conv

    g = torch.Generator().manual_seed(0)
    kernel = torch.randn(5, 4, 3, 3, generator=g)
    tied = torch.einsum("ka,oiab,lb->iokl", _DECONV_TAPS, kernel, _DECONV_TAPS)  # a deconvolution a resize-conv can equal
    x = torch.randn(2, 4, 6, 7, generator=g)
    y_deconv = torch.nn.functional.conv_transpose2d(x, tied, stride=2, padding=1)
    up = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
    y_resize = torch.nn.functional.conv2d(up, deconv_to_resize_conv(tied), padding=1)
    torch.testing.assert_close(y_resize, y_deconv, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(deconv_to_resize_conv(tied), kernel, atol=1e-4, rtol=1e-4)


def test_init_from_an_older_architecture() -> None:
    """Same-shape tensors copied; the photo-conditioned texture stem and output layer start
    with zero weights on their new inputs, so with the same upsampling the network computes
    exactly what the old one did; deconvolutions are projected."""
    from training.train_completion import init_from

    base = {k: v for k, v in TINY.items()}
    old = CompletionModel(completion_config("rt", **base, upsample="deconv", photo_condition=False))
    x = _inputs(old.config)
    with torch.no_grad():
        for _ in range(60):  # converge the spectral norms' power iterations, as training does
            old.sample(*x)
    old.eval()
    widened = CompletionModel(completion_config("rt", **base, upsample="deconv", photo_condition=True)).eval()
    report = init_from(widened, old.state_dict())
    assert len(report["widened"]) == 2 and not report["projected"] and not report["fresh"]
    with torch.no_grad():
        for a, b in zip(old.sample(*x), widened.sample(*x)):
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)  # up to the power iterations' last digits
    resized = CompletionModel(completion_config("rt", **base)).eval()
    report = init_from(resized, old.state_dict())
    assert len(report["projected"]) == 2 * base["n_down"] and len(report["widened"]) == 2 and not report["fresh"]


def test_garment_statistics_and_the_texture_following_them() -> None:
    from training.models.completion import STAT_CHANNELS, garment_statistics

    crops = torch.zeros(2, 12, 8, 8)
    crops[0, 3:6, :4] = torch.tensor([0.5, -0.5, 0.25])[:, None, None]  # a top, half its crop
    crops[0, 6:9] = 0.2  # a bottom, all of it
    stats = garment_statistics(crops)
    assert stats.shape == (2, STAT_CHANNELS)
    top, bottom = stats[0, 7:14], stats[0, 14:21]
    torch.testing.assert_close(top[:3], torch.tensor([0.5, -0.5, 0.25]))
    assert top[6] == 1 and bottom[6] == 1 and stats[0, 6] == 0 and (stats[1] == 0).all()
    assert float(top[3:6].max()) < 1e-2  # solid colour: no spread
    pooled = (torch.tensor([0.5, -0.5, 0.25]) * 32 + torch.tensor([0.2, 0.2, 0.2]) * 64) / 96
    torch.testing.assert_close(stats[0, -3:], pooled)
    # The conditioned texture generator's output moves with the visible garments' colours.
    model = CompletionModel(completion_config("rt", **TINY)).eval()
    with torch.no_grad():
        for p in model.texture.gen.stem.parameters():
            p.add_(0.1)
    x = list(_inputs(model.config))
    with torch.no_grad():
        a = model.sample(*x)[1]
        x[4] = x[4] * 0.2
        b = model.sample(*x)[1]
    assert (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError, match="pass garment_crops"):
        model.texture.generate(x[0], x[1], x[2], torch.zeros(2, model.config.latent))


def test_coordinated_outfits(poses_dir: str) -> None:
    import cv2

    from training.data.completion import coordinate_outfit

    plain = CompletionSamples(64, 44, 16, "train", 0, "plain", poses_dir=poses_dir)
    both = CompletionSamples(64, 44, 16, "train", 0, "plain", poses_dir=poses_dir, coordinate=1.0)
    moved = 0
    for i in range(6):
        a, b = plain[i], both[i]
        np.testing.assert_array_equal(a["parsing"], b["parsing"])  # only colours change
        g = a["garment"]
        others = np.isin(a["parsing"], [c for c in C.GARMENT_CLASSES if c != g])
        np.testing.assert_array_equal(a["image"][a["parsing"] != g], b["image"][b["parsing"] != g])
        if others.sum() >= plain.min_pixels and not np.array_equal(a["image"], b["image"]):
            moved += 1
            lab = cv2.cvtColor(b["image"], cv2.COLOR_RGB2LAB).astype(np.float32)
            ref = max((c for c in C.GARMENT_CLASSES if c != g), key=lambda c: (b["parsing"] == c).sum())
            ab_gap = np.abs(lab[b["parsing"] == g].mean(0) - lab[b["parsing"] == ref].mean(0))[1:]
            assert ab_gap.max() < 20  # the erased garment's hue now goes with the largest other garment
    assert moved >= 3
    image = np.zeros((8, 8, 3), np.uint8)
    parsing = np.full((8, 8), 5, np.uint8)
    assert coordinate_outfit(image, parsing, 5, np.random.default_rng(0)) is image  # nothing to match
    with pytest.raises(ValueError, match=r"coordinate must be a share in \[0, 1\]"):
        CompletionSamples(64, 44, 16, "train", 0, "plain", poses_dir=poses_dir, coordinate=2.0)
