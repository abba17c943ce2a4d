"""Train the fashion-completion model (seed 002): shape and texture networks side by side.

    python -m training train-completion --size rt [--config training/configs/completion_rt_cpu.toml]
                                        [--steps N] [--out runs/completion_rt] [--resume] [--seed S]
                                        [--vgg-weights PATH]

Each step updates both stages on one batch of :class:`training.data.completion.CompletionSamples`
(the thesis trains them apart; the texture stage sees the true parsing either way, so one loop
halves the data cost):

- shape (eq. 2-16..2-19): lambda_seg * CE(Gs(masked parsing, pose, face/hair, z_s), parsing),
  weighted (1 + M) by the erase mask M like PG2's pose-mask L1, + lambda_kl_shape *
  KL(Es(x_s) || Esc(x_c)) with z_s ~ Es(x_s).
- texture (eq. 2-20..2-29): lambda_kl_texture * KL(Ea(x_a) || Eac(x_c)) + lambda_appearance *
  ((1 + M) L1 on pixels [+ VGG-19 content and style terms with --vgg-weights]) +
  lambda_adversarial * (feature matching on Da's last features for z_a ~ Ea, LSGAN for z drawn
  from the compatibility prior Eac -- the distribution the exported graph samples); Da: LSGAN on
  the real image and both fakes. Da sees fakes composited into the real image outside the
  erase region, as the graph outputs them.

Checkpoints: ``model.safetensors`` (CompletionModel), ``discriminator.safetensors``,
``optimizer.pt`` (tensors only, loaded with weights_only=True), ``checkpoint.json``; ``--resume``
continues a run exactly (the data order depends only on (seed, step)).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from training.checkpoint import cpu_tensors, write_run
from training.completion_run import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CompletionCheckpoint, CompletionTrainConfig,
                                     DataSection, LossSection, TrainSection, is_completion_checkpoint,
                                     load_completion_checkpoint, pose_heatmaps)
from training.data.completion import CompletionSamples
from training.evaluate_completion import evaluate_model
from training.losses import VGGFeatures, perceptual_loss, style_loss
from training.models.completion import CompletionDiscriminator, CompletionModel, kl_normal, reparameterise

# The configuration, pose_heatmaps and the checkpoint reader live in training.completion_run
# (evaluate_completion needs them too); they stay importable from here.
__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "TrainSection", "LossSection", "DataSection",
           "CompletionTrainConfig", "CompletionCheckpoint", "is_completion_checkpoint", "load_completion_checkpoint",
           "train_completion", "pose_heatmaps", "add_train_arguments", "run_from_args", "init_from",
           "deconv_to_resize_conv"]


def _weighted_ce(logits: Tensor, target: Tensor, erase: Tensor) -> Tensor:
    """(1 + M)-weighted cross-entropy; target [B, H, W] long, erase [B, 1, H, W]."""
    ce = F.cross_entropy(logits, target, reduction="none")
    return ce.mean() + (ce * erase[:, 0]).mean()


def _weighted_l1(fake: Tensor, real: Tensor, erase: Tensor) -> Tensor:
    diff = (fake - real).abs()
    return diff.mean() + (diff * erase).mean()


class CompletionTrainer:
    """Both stages, their optimizers and the discriminator; ``step(batch)`` -> loss terms."""

    def __init__(self, cfg: CompletionTrainConfig, device: torch.device, vgg: VGGFeatures | None = None):
        self.cfg, self.mcfg, self.device = cfg, cfg.model_config(), device
        torch.manual_seed(cfg.train.seed)
        self.model = CompletionModel(self.mcfg).to(device)
        self.disc = CompletionDiscriminator(self.mcfg).to(device)
        t = cfg.train
        self.opt = {
            "shape": torch.optim.Adam(self.model.shape.parameters(), lr=t.lr, betas=t.betas),
            "texture": torch.optim.Adam(self.model.texture.parameters(), lr=t.lr, betas=t.betas),
            "disc": torch.optim.Adam(self.disc.parameters(), lr=t.lr, betas=t.betas),
        }
        self.vgg = vgg

    def step(self, batch: Mapping[str, Tensor], step: int) -> dict[str, float]:
        L, dev = self.cfg.loss, self.device
        b = {k: v.to(dev) for k, v in batch.items() if isinstance(v, Tensor)}
        torch.manual_seed((self.cfg.train.seed * 1_000_003 + step) & 0x7FFFFFFF)
        self.model.train()
        self.disc.train()
        erase = b["erase_mask"]
        heat = pose_heatmaps(b["keypoints"], self.mcfg)
        out: dict[str, float] = {}
        # ---- shape stage
        shape = self.model.shape
        mu_s, lv_s = shape.posterior(b["garment_mask"])
        mu_c, lv_c = shape.prior(b["garment_crops"])
        z_s = reparameterise(mu_s, lv_s, torch.randn_like(mu_s))
        logits = shape.generate(b["masked_parsing"], heat, erase, z_s)
        seg = _weighted_ce(logits, b["parsing"].long(), erase)
        kl_s = kl_normal(mu_s, lv_s, mu_c, lv_c)
        loss_s = L.lambda_seg * seg + L.lambda_kl_shape * kl_s
        self.opt["shape"].zero_grad(set_to_none=True)
        loss_s.backward()
        self.opt["shape"].step()
        out.update(seg=float(seg.detach()), kl_shape=float(kl_s.detach()))
        # ---- texture stage
        tex = self.model.texture
        real = _image_tensor(b["image"])
        mu_a, lv_a = tex.posterior(b["garment_crop"])
        mu_ac, lv_ac = tex.prior(b["garment_crops"])
        z_a = reparameterise(mu_a, lv_a, torch.randn_like(mu_a))
        z_p = reparameterise(mu_ac, lv_ac, torch.randn_like(mu_ac))
        crops = b["garment_crops"]
        fake = tex.generate(b["masked_image"], b["parsing_onehot"], erase, z_a, crops)
        fake_p = tex.generate(b["masked_image"], b["parsing_onehot"], erase, z_p, crops)
        keep = 1.0 - erase
        comp, comp_p = real * keep + fake * erase, real * keep + fake_p * erase
        for p in self.disc.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            _, f_real = self.disc(real)
        _, f_fake = self.disc(comp)
        s_p, _ = self.disc(comp_p)
        fm = ((f_real - f_fake) ** 2).mean()
        adv = ((s_p - 1.0) ** 2).mean()
        pix = _weighted_l1(fake, real, erase)
        app = pix
        if self.vgg is not None:
            layers = list(L.content_layers)
            f_a, f_r = self.vgg(fake), self.vgg(real)
            app = app + L.lambda_content * perceptual_loss({k: f_a[k] for k in layers}, {k: f_r[k] for k in layers})
            if L.lambda_style > 0:
                app = app + L.lambda_style * style_loss({k: f_a[k] for k in layers}, {k: f_r[k] for k in layers})
        kl_a = kl_normal(mu_a, lv_a, mu_ac, lv_ac)
        loss_t = L.lambda_kl_texture * kl_a + L.lambda_appearance * app + L.lambda_adversarial * (fm + adv)
        self.opt["texture"].zero_grad(set_to_none=True)
        loss_t.backward()
        self.opt["texture"].step()
        for p in self.disc.parameters():
            p.requires_grad_(True)
        # ---- discriminator
        scores, _ = self.disc(torch.cat([real, comp.detach(), comp_p.detach()], 0))
        n = real.shape[0]
        d_loss = ((scores[:n] - 1.0) ** 2).mean() + (scores[n:] ** 2).mean()
        self.opt["disc"].zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt["disc"].step()
        out.update({k: float(v.detach()) for k, v in (("pixel_l1", pix), ("appearance", app), ("kl_texture", kl_a),
                                                        ("feature_match", fm),
                                                        ("g_adv", adv), ("d", d_loss))})
        return out


# Which of the 3 taps (offsets -1, 0, +1) of a resize-then-3x3 convolution each of the 4 taps
# of a 4x4 stride-2 padding-1 transposed convolution corresponds to, for one axis: output 2i
# reads x[i] (tap 1) and x[i-1] (tap 3); the resize-convolution gives x[i-1] K0 + x[i] (K1 + K2).
# Output 2i+1 reads x[i] (tap 2) and x[i+1] (tap 0), vs x[i] (K0 + K1) + x[i+1] K2.
_DECONV_TAPS = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def deconv_to_resize_conv(weight: Tensor) -> Tensor:
    """The 3x3 kernel [cout, cin, 3, 3] of nearest-resize-then-convolve closest (least squares
    over the four output phases) to a 4x4 stride-2 padding-1 ConvTranspose2d ``weight``
    [cin, cout, 4, 4]; exact when the deconvolution's phases are tied that way."""
    p = torch.linalg.pinv(_DECONV_TAPS.to(weight.dtype))  # [3, 4]
    return torch.einsum("ak,iokl,bl->oiab", p, weight, p).contiguous()


def _sn_key(name: str) -> tuple[str, str] | None:
    """(module path, suffix) of a spectral-norm tensor name, else None."""
    for suffix in (".parametrizations.weight.original", ".parametrizations.weight.0._u", ".parametrizations.weight.0._v"):
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix
    return None


@torch.no_grad()
def init_from(model: torch.nn.Module, state: Mapping[str, Tensor]) -> dict[str, list[str]]:
    """Start ``model`` from another checkpoint's weights where they fit (fine-tuning after an
    architecture change): tensors of the same shape are copied; a convolution with more input
    channels (the photo statistics at a stem, the skip at an output layer) gets the old weights
    for its first channels and zeros for the new ones (same function at the start); a 4x4
    stride-2 transposed convolution becomes its closest resize-convolution
    (:func:`deconv_to_resize_conv`, applied to its spectrally normalised weight). The power
    iteration of every changed spectral norm is re-run. Returns {"copied", "widened",
    "projected", "fresh"} parameter names."""
    own = model.state_dict()
    report: dict[str, list[str]] = {"copied": [], "widened": [], "projected": [], "fresh": []}
    changed: set[str] = set()
    for name, value in own.items():
        old = state.get(name)
        if old is not None and old.shape == value.shape:
            value.copy_(old)
            report["copied"].append(name)
            continue
        sn = _sn_key(name)
        if sn is None or not sn[1].endswith("original"):
            if sn is None:
                report["fresh"].append(name)
            continue
        changed.add(sn[0])
        if old is not None and old.dim() == 4 and old.shape[0] == value.shape[0] and old.shape[2:] == value.shape[2:] \
                and old.shape[1] < value.shape[1]:
            value.zero_()
            value[:, : old.shape[1]] = old
            report["widened"].append(name)
        elif old is not None and old.dim() == 4 and old.shape[2:] == (4, 4) and value.shape[2:] == (3, 3) \
                and (old.shape[1], old.shape[0]) == tuple(value.shape[:2]):
            sigma = torch.linalg.matrix_norm(old.transpose(0, 1).reshape(old.shape[1], -1), ord=2)
            value.copy_(deconv_to_resize_conv(old / sigma))
            report["projected"].append(name)
        else:
            report["fresh"].append(name)
    modules = dict(model.named_modules())
    for path in changed:
        sn = modules[path].parametrizations.weight[0]
        sn._power_method(sn._reshape_weight_to_matrix(modules[path].parametrizations.weight.original), 50)
    return report


def _image_tensor(image_u8: Tensor) -> Tensor:
    """uint8 [B, H, W, 3] RGB -> float [B, 3, H, W] in [-1, 1]."""
    return image_u8.permute(0, 3, 1, 2).float() / 127.5 - 1.0


# ----------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------


def save_completion_checkpoint(out: Path, step: int, trainer: CompletionTrainer, info: Mapping[str, Any]) -> None:
    """model.safetensors, discriminator.safetensors, optimizer.pt, checkpoint.json (last)."""
    weights = {"model.safetensors": cpu_tensors(trainer.model.state_dict()),
               "discriminator.safetensors": cpu_tensors(trainer.disc.state_dict())}
    sidecar = {"config": trainer.cfg.to_dict(), "model_config": trainer.mcfg.to_dict(), **info}
    write_run(out, step, weights, trainer.opt, sidecar, CHECKPOINT_FORMAT, CHECKPOINT_VERSION)


# ----------------------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------------------


def _batches(ds: CompletionSamples, batch: int, seed: int, start: int, workers: int) -> Iterator[dict[str, Tensor]]:
    """Endless batches; batch k holds samples drawn from (seed, k) only, so resume is exact."""

    class _Order(torch.utils.data.Sampler[list[int]]):
        def __iter__(self) -> Iterator[list[int]]:
            k = start
            while True:
                rng = np.random.default_rng([seed & 0xFFFFFFFF, 0xCB, k])
                yield rng.integers(0, len(ds), batch).tolist()
                k += 1

    loader = DataLoader(ds, batch_sampler=_Order(), num_workers=workers, persistent_workers=workers > 0)
    for item in loader:
        yield {k: v for k, v in item.items() if isinstance(v, Tensor)}


def train_completion(cfg: CompletionTrainConfig, out: str | os.PathLike[str], *, resume: bool = False,
                     vgg_weights: str | None = None, progress: bool = True, device: str | None = None,
                     init_from_run: str | None = None) -> dict[str, Any]:
    """Run (or continue) training; returns the summary written to out/summary.json.
    ``init_from_run``: start a new run from that run's CompletionModel weights where they fit
    (:func:`init_from`; a fresh optimizer and discriminator)."""
    from tqdm import tqdm

    out = Path(out)
    dev = torch.device(device or "cpu")
    mcfg = cfg.model_config()
    vgg = None
    note = ""
    wanted = list(cfg.loss.content_layers)
    if vgg_weights:
        vgg = VGGFeatures.from_weights(vgg_weights, "vgg19", wanted).to(dev)
        note = f"VGG-19 content/style on ({vgg_weights})"
    elif cfg.loss.lambda_content > 0 or cfg.loss.lambda_style > 0:
        note = "VGG content/style off: pass --vgg-weights PATH (VGG-19 state dict) to enable them"
    trainer = CompletionTrainer(cfg, dev, vgg)
    start = 0
    if (out / "checkpoint.json").exists():
        if not resume:
            raise FileExistsError(f"{out} already holds a checkpoint: pass --resume to continue it, or another --out")
        ck = load_completion_checkpoint(out, with_training_state=True)
        trainer.model.load_state_dict(ck.model)
        assert ck.discriminator is not None and ck.optimizers is not None
        trainer.disc.load_state_dict(ck.discriminator)
        for k, o in trainer.opt.items():
            o.load_state_dict(ck.optimizers[k])
        start = ck.step
    elif init_from_run:
        report = init_from(trainer.model, load_completion_checkpoint(init_from_run).model)
        print(f"started from {init_from_run}: " + ", ".join(f"{len(v)} {k}" for k, v in report.items())
              + " tensors", file=sys.stderr)
    if note:
        print(note, file=sys.stderr)
    t = cfg.train
    ds = CompletionSamples(mcfg.height, mcfg.width, mcfg.crop_size, "train", t.seed, cfg.data.background,
                           margin=mcfg.margin, pad=mcfg.pad, length=cfg.data.length,
                           poses_dir=cfg.data.poses_dir or None, coordinate=cfg.data.coordinate)
    eval_ds = CompletionSamples(mcfg.height, mcfg.width, mcfg.crop_size, "eval", t.seed, cfg.data.background,
                                margin=mcfg.margin, pad=mcfg.pad, poses_dir=cfg.data.poses_dir or None)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "metrics.jsonl", "a")
    t0 = time.perf_counter()
    terms: dict[str, list[float]] = {}
    last_eval: dict[str, float] = {}
    bar = tqdm(total=t.steps, initial=start, disable=not progress, desc="completion", unit="step")
    batches = _batches(ds, t.batch_size, t.seed, start, t.num_workers)
    step = start
    try:
        while step < t.steps:
            losses = trainer.step(next(batches), step)
            step += 1
            for k, v in losses.items():
                terms.setdefault(k, []).append(v)
            bar.update(1)
            if _due(step, t.log_every) or step == t.steps:
                mean = {k: float(np.mean(v)) for k, v in terms.items()}
                log.write(json.dumps({"step": step, **mean}) + "\n")
                log.flush()
                bar.set_postfix(seg=f"{mean['seg']:.3f}", l1=f"{mean['pixel_l1']:.3f}")
                terms.clear()
            if _due(step, t.eval_every) or step == t.steps:
                res = evaluate_model(trainer.model, eval_ds, t.eval_count)
                last_eval = {f"{row}_{k}": v for row in ("reconstruction", "samples") for k, v in res[row].items()}
                log.write(json.dumps({"step": step, "eval": last_eval}) + "\n")
                log.flush()
                tqdm.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in last_eval.items()), file=sys.stderr)
            if _due(step, t.checkpoint_every) or step == t.steps:
                save_completion_checkpoint(out, step, trainer, {"eval": last_eval})
    finally:
        bar.close()
        log.close()
    seconds = time.perf_counter() - t0
    summary = {"steps": step, "trained_steps": step - start, "seconds": seconds,
               "seconds_per_step": seconds / max(step - start, 1), "eval": last_eval, "out": str(out)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"trained completion {cfg.size} to step {step} in {seconds / 60:.1f} min "
          f"({summary['seconds_per_step']:.2f} s/step); eval: "
          + ", ".join(f"{k} {v:.4f}" for k, v in last_eval.items()) + f"; checkpoint in {out}", file=sys.stderr)
    return summary


def _due(step: int, every: int) -> bool:
    """True on every ``every``-th step; never for 0 ("only at the end", which the caller adds)."""
    return every > 0 and step % every == 0


def add_train_arguments(ap: argparse.ArgumentParser) -> None:
    from pyposert._cli_args import count

    ap.add_argument("--size", choices=("paper", "rt"), default="rt")
    ap.add_argument("--config", help="TOML recipe (training/configs/completion_*.toml)")
    ap.add_argument("--steps", type=count(1), help="total steps, >= 1")
    ap.add_argument("--batch-size", type=count(1), help=">= 1")
    ap.add_argument("--seed", type=count(0), help=">= 0")
    ap.add_argument("--eval-every", type=count(0), help="evaluate every N steps (0 = only at the end)")
    ap.add_argument("--checkpoint-every", type=count(0), help="save every N steps (0 = only at the end)")
    ap.add_argument("--log-every", type=count(0), help="log every N steps (0 = only at the end)")
    ap.add_argument("--out", help="run folder (default runs/completion_<size>)")
    ap.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    ap.add_argument("--init-from", metavar="RUN", help="start from this completion run's weights where they fit")
    ap.add_argument("--threads", type=count(1), help="torch intra-op threads (default: torch's)")
    ap.add_argument("--vgg-weights", help="VGG-19 state dict for the content/style losses")
    ap.add_argument("--device", help="cpu | cuda | cuda:N")
    ap.add_argument("--no-progress", action="store_true")


def run_from_args(args: argparse.Namespace) -> int:
    d: dict[str, Any] = {"size": args.size}
    if args.config:
        with open(args.config, "rb") as f:
            d = tomllib.load(f)
        if d.get("size", args.size) != args.size:
            raise ValueError(f"--size {args.size} but {args.config} is for size {d.get('size')!r}")
    out = Path(args.out or f"runs/completion_{args.size}")
    if args.resume and (out / "checkpoint.json").is_file():
        d = load_completion_checkpoint(out).sidecar["config"]
    tr = dict(d.get("train", {}))
    for flag, key in (("steps", "steps"), ("batch_size", "batch_size"), ("seed", "seed"), ("eval_every", "eval_every"),
                      ("checkpoint_every", "checkpoint_every"), ("log_every", "log_every")):
        if getattr(args, flag, None) is not None:
            tr[key] = getattr(args, flag)
    d = {**d, "train": tr}
    cfg = CompletionTrainConfig.from_dict(d, args.config or "config")
    if args.threads:
        torch.set_num_threads(args.threads)
    train_completion(cfg, out, resume=args.resume, vgg_weights=args.vgg_weights, progress=not args.no_progress,
                     device=args.device, init_from_run=None if args.resume else args.init_from)
    return 0
