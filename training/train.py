"""Training entry point: ``python -m training train --model nram --size rt [options]``.

One loop for the four generators, with each paper's loss recipe (REFERENCE_MODELS.md):

- pg2:  phase 1 (``g1_steps``): G1 alone on the pose-mask L1 (1 + M) |G1 - I_B|; phase 2: G1
        frozen, G2 on lambda_l1 * pose-mask L1 + lambda_gan * BCE adversarial; the DCGAN D sees
        targets as real, refined outputs and source images as fake (in one batch, as PG2).
- pona / patn: lambda_gan * cGAN (mean over D_appearance(image, source) and D_pose(image,
        target heatmaps), LSGAN) + lambda_l1 * L1 (+ lambda_perceptual * VGG-19 relu1_2 L1 when
        --vgg-weights is given).
- nram: lambda_l1 * L1 + lambda_gan * conditional adversarial (the same two discriminators)
        (+ lambda_style * Gram style loss on VGG-16 features, + perceptual, with --vgg-weights).

Per step: generator forward, generator update (discriminators frozen), discriminator update
on the detached output (PATN's order). Adam for every network; learning rate per step from
the config's policy (constant, linear decay to 0 over the last ``lr_decay_steps``, or
``lr_gamma`` every ``lr_step`` steps).

Data: ``--data synthetic`` (default, training.data.synthetic), ``deepfashion:PATH`` /
``market:PATH`` (PATN layout, see training.data.datasets). Heatmaps are rasterised per batch
with ``training.ops.heatmaps_pair`` from (x, y) model-pixel keypoints.

Determinism and resume: the model is initialised from ``seed``; the data order is a
permutation per epoch seeded by (seed, epoch); before every step the torch RNG (dropout) is
reseeded from (seed, rank, step). A checkpoint therefore needs no RNG state: ``--resume``
reloads weights, optimizer state and the step, and continues exactly where the run stopped.

Output (``--out`` folder, written by rank 0 only): the checkpoint (:mod:`training.checkpoint`),
``metrics.jsonl`` (one line per evaluation) and ``summary.json`` at the end.

Modules: :mod:`training.train_config` (the TOML config and the learning-rate policy),
:mod:`training.trainer` (the loss recipes: one step), :mod:`training.checkpoint`,
:mod:`training.distributed` (process group and data order); this module holds the loop and
the command line.

Distributed: ``torchrun --nproc_per_node 2 -m training train ...`` runs DistributedDataParallel
(gloo on CPU, nccl on CUDA); ``--batch-size`` is per process; each rank takes its own shard
of every epoch's permutation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from pyposert._cli_args import count
from training.checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, Checkpoint, load_checkpoint,
                                 save_checkpoint)
from training.data.datasets import build_dataset, describe
from training.distributed import Dist, StepBatchSampler, init_distributed, mean_across
from training.evaluate import evaluate_generator
from training.models import MODEL_NAMES, SIZES
from training.train_config import (CONFIG_DIR, DataSection, LossSection, TrainConfig, TrainSection, default_config_path,
                                   load_config, lr_at)
from training.trainer import Trainer, build_vgg, pose_input

# The names below stay importable from here (the modules above define them).
__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CONFIG_DIR",
    "TrainSection",
    "LossSection",
    "DataSection",
    "TrainConfig",
    "default_config_path",
    "load_config",
    "pose_input",
    "lr_at",
    "Checkpoint",
    "load_checkpoint",
    "StepBatchSampler",
    "train",
    "add_train_arguments",
    "main",
]


def _log(d: Dist, msg: str) -> None:
    if d.main:
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stderr)


def init_weights(trainer: Trainer, init_from: str | os.PathLike[str]) -> str:
    """Load starting weights into ``trainer``; returns a line for the log.

    ``init_from`` is a run folder (or its checkpoint.json): its generator and discriminators,
    whose model config must equal this run's; or a file holding a generator state dict
    (``torch.save(generator.state_dict())``, or .safetensors): the generator only, loaded
    strictly (every parameter of this architecture, nothing else), discriminators fresh.
    """
    path = Path(init_from)
    if path.is_file() and path.name != "checkpoint.json":
        from training.losses import load_state_dict_file

        state = load_state_dict_file(path)
        try:
            trainer.generator.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"--init-from {path}: not a state dict of this run's generator "
                             f"({trainer.mcfg.name}, {trainer.cfg.size}, warp_guided={trainer.mcfg.warp_guided}): "
                             f"{str(e).splitlines()[0]}") from None
        return f"initialised the generator from {path} (fresh discriminators and optimizer state)"
    seed = load_checkpoint(path, with_training_state=False, with_discriminators=True)
    if seed.config.model_config() != trainer.mcfg:
        raise ValueError(f"--init-from {path}: its model config {seed.config.model_config()} differs "
                         f"from this run's {trainer.mcfg}")
    trainer.generator.load_state_dict(seed.generator)
    for role, m in trainer.discriminators.items():
        m.load_state_dict(seed.discriminators[role])
    return f"initialised from {path} (step {seed.step} weights; fresh optimizer state)"


def train(cfg: TrainConfig, out: str | os.PathLike[str], *, resume: bool = False,
          vgg_weights: str | None = None, progress: bool = True, device: str | None = None,
          init_from: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run (or continue) training; returns the summary dict (also written to out/summary.json).

    Under torchrun (WORLD_SIZE > 1) every process calls this; rank 0 writes files and logs.
    ``resume``: continue from out/checkpoint.json (its step, weights and optimizer state);
    the caller passes the checkpoint's config (see :func:`main`). Without ``resume`` an existing
    checkpoint in ``out`` is an error, so a run is never overwritten by accident.
    ``init_from``: start a new run (step 0, fresh optimizers and schedule) from the weights of
    another run or of a generator state-dict file (:func:`init_weights`).
    """
    from tqdm import tqdm


    out = Path(out)
    d = init_distributed(device)
    t = cfg.train
    mcfg = cfg.model_config()
    ck: Checkpoint | None = None
    if (out / "checkpoint.json").is_file():
        if not resume:
            raise FileExistsError(f"{out} already holds a checkpoint: pass --resume to continue it, "
                                  "or choose another --out")
        ck = load_checkpoint(out)
    elif resume:
        _log(d, f"--resume: no checkpoint in {out}, starting from step 0")
    vgg, vgg_note = build_vgg(cfg, vgg_weights, d.device)
    trainer = Trainer(cfg, d, vgg)
    start = 0
    prior_seconds = 0.0
    history: list[dict[str, Any]] = []
    if init_from is not None and ck is None:
        _log(d, init_weights(trainer, init_from))
    if ck is not None:
        trainer.load_state(ck)
        start = ck.step
        prior_seconds = float(ck.sidecar.get("train_seconds", 0.0))
        history = list(ck.sidecar.get("eval_history", []))
    data_kw = dict(seed=t.seed, length=cfg.data.length, background=cfg.data.background,
                   poses_dir=cfg.data.poses_dir or None)
    train_ds = build_dataset(cfg.data.source, "train", mcfg.height, mcfg.width, **data_kw)
    eval_ds: Dataset | None = None

    def run_eval(step: int) -> dict[str, float]:
        nonlocal eval_ds
        if eval_ds is None:
            eval_ds = build_dataset(cfg.data.source, "eval", mcfg.height, mcfg.width, **data_kw)
        metrics = evaluate_generator(trainer.generator, mcfg, eval_ds, t.eval_count, t.batch_size, d.device)
        record = {"step": step, **metrics}
        history.append(record)
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        _log(d, f"eval @ {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "count"))
        return metrics

    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        g_params = sum(p.numel() for p in trainer.generator.parameters())
        _log(d, f"training {cfg.model} ({cfg.size}, {mcfg.height}x{mcfg.width}, {g_params / 1e6:.2f} M generator "
                f"parameters) on {describe(train_ds)}; steps {start} -> {t.steps}, batch {t.batch_size} x "
                f"{d.world} process(es), device {d.device}")
        if vgg_note:
            _log(d, vgg_note)
    sampler = StepBatchSampler(len(train_ds), t.batch_size, t.seed, start, d.rank, d.world)
    loader = DataLoader(train_ds, batch_sampler=sampler, num_workers=t.num_workers)
    window: dict[str, list[float]] = {}
    last_losses: dict[str, float] = {}
    last_eval: dict[str, float] = history[-1] if history else {}

    def info(secs: float) -> dict[str, Any]:
        """What checkpoint.json records besides the config."""
        return {"train_seconds": secs, "losses": last_losses, "eval": last_eval, "eval_history": history,
                "world_size": d.world, "data": cfg.data.source}

    t0 = time.perf_counter()
    bar = tqdm(total=t.steps, initial=start, disable=not (progress and d.main), dynamic_ncols=True,
               file=sys.stderr, mininterval=1.0)
    step = start
    try:
        if start < t.steps:
            for step, batch in zip(range(start, t.steps), loader):
                losses = trainer.step(step, batch)
                for k, v in losses.items():
                    window.setdefault(k, []).append(v)
                done = step + 1
                bar.update(1)
                if (t.log_every and done % t.log_every == 0) or done == t.steps:  # 0: only at the end
                    last_losses = mean_across({k: float(np.mean(v)) for k, v in window.items()}, d)
                    window = {}
                    bar.set_postfix({k: f"{v:.3f}" for k, v in last_losses.items()}, refresh=False)
                if t.eval_every and done % t.eval_every == 0 and done != t.steps:
                    if d.main:
                        last_eval = run_eval(done)
                    d.barrier()
                if t.checkpoint_every and done % t.checkpoint_every == 0 and done != t.steps:
                    if d.main:
                        save_checkpoint(out, done, cfg, trainer.generator, trainer.discriminators,
                                        trainer.optimizers, info(prior_seconds + time.perf_counter() - t0))
                    d.barrier()
            step = t.steps
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    ran = max(step - start, 0)
    if d.main:
        if t.eval_count > 0 and (not history or history[-1]["step"] != step):
            last_eval = run_eval(step)
        if ck is None or ran > 0:
            save_checkpoint(out, step, cfg, trainer.generator, trainer.discriminators, trainer.optimizers,
                            info(prior_seconds + seconds))
    d.barrier()
    summary = {
        "model": cfg.model, "size": cfg.size, "steps": step, "steps_this_run": ran,
        "seconds_this_run": seconds, "seconds_per_step": seconds / ran if ran else math.nan,
        "train_seconds": prior_seconds + seconds, "world_size": d.world, "batch_size": t.batch_size,
        "final_losses": last_losses, "eval": last_eval, "out": str(out),
    }
    if d.main:
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
        lines = [f"done: {cfg.model} {cfg.size}, step {step} ({ran} this run, {seconds:.1f} s, "
                 f"{summary['seconds_per_step']:.3f} s/step, {d.world} process(es))"]
        if last_losses:
            lines.append("final losses: " + ", ".join(f"{k} {v:.4f}" for k, v in last_losses.items()))
        if last_eval:
            lines.append("eval (held-out): " + ", ".join(
                f"{k} {v:.4f}" for k, v in last_eval.items() if k not in ("step", "count", "psnr_inf")))
        lines.append(f"checkpoint: {out / 'checkpoint.json'}")
        print("\n".join(lines), flush=True)
    if d.enabled:
        dist.destroy_process_group()
    return summary


def add_train_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--model", choices=MODEL_NAMES, help="generator (default: the config's)")
    ap.add_argument("--size", choices=SIZES, help="rt (128x88) or paper (256x176); default rt")
    ap.add_argument("--config", help="training TOML (default training/configs/<model>_<size>.toml)")
    ap.add_argument("--steps", type=count(0), help="total generator updates")
    ap.add_argument("--batch-size", type=count(1), help="batch per process")
    ap.add_argument("--seed", type=count(0))
    ap.add_argument("--data", help="synthetic | deepfashion:PATH | market:PATH | folder:PATH")
    ap.add_argument("--eval-every", type=count(0),
                    help="evaluate on the held-out split every N steps (0 = only at the end)")
    ap.add_argument("--eval-count", type=count(1), help="held-out pairs per evaluation")
    ap.add_argument("--checkpoint-every", type=count(0), help="save every N steps (0 = only at the end; "
                                                                       "always at the end)")
    ap.add_argument("--num-workers", type=count(0), help="DataLoader worker processes")
    ap.add_argument("--out", help="run folder (default runs/<model>_<size>)")
    ap.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    ap.add_argument("--init-from", metavar="RUN",
                    help="new run starting from RUN's generator/discriminator weights (no optimizer state), "
                         "or from a generator state-dict file (.pt / .safetensors)")
    ap.add_argument("--vgg-weights", metavar="PATH",
                    help="ImageNet VGG state dict (.safetensors or torch.save) for perceptual/style losses")
    ap.add_argument("--device", help="cpu | cuda (default: cuda when available)")
    ap.add_argument("--threads", type=count(1), help="torch CPU threads (default: torch's, one per core)")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bar")


# CLI flag -> (section, field); these may also change on --resume.
_OVERRIDES = {"steps": ("train", "steps"), "batch_size": ("train", "batch_size"), "seed": ("train", "seed"),
              "data": ("data", "source"), "eval_every": ("train", "eval_every"),
              "eval_count": ("train", "eval_count"), "checkpoint_every": ("train", "checkpoint_every"),
              "num_workers": ("train", "num_workers")}
_RESUME_SAFE = {"steps", "eval_every", "eval_count", "checkpoint_every", "num_workers"}


def resolve_config(args: argparse.Namespace) -> tuple[TrainConfig, Path]:
    """The run's config and folder from CLI arguments (and, with --resume, the checkpoint)."""
    if args.config:
        cfg = load_config(args.config)
        if args.model and args.model != cfg.model:
            raise ValueError(f"--model {args.model} but {args.config} configures {cfg.model}")
        if args.size and args.size != cfg.size:
            raise ValueError(f"--size {args.size} but {args.config} configures {cfg.size}")
    else:
        if not args.model:
            raise ValueError("pass --model (pg2 | pona | patn | nram) or --config FILE")
        cfg = load_config(default_config_path(args.model, args.size or "rt"))
    out = Path(args.out) if args.out else Path("runs") / f"{cfg.model}_{cfg.size}"
    given = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None}
    if args.resume and (out / "checkpoint.json").is_file():
        saved = load_checkpoint(out, with_training_state=False).config
        for k, v in given.items():
            sec, name = _OVERRIDES[k]
            if k not in _RESUME_SAFE and getattr(getattr(saved, sec), name) != v:
                raise ValueError(f"--{k.replace('_', '-')} {v} differs from the checkpoint's "
                                 f"{getattr(getattr(saved, sec), name)!r}; it cannot change on --resume")
        given = {k: v for k, v in given.items() if k in _RESUME_SAFE}
        cfg = saved
    changes: dict[str, dict[str, Any]] = {}
    for k, v in given.items():
        sec, name = _OVERRIDES[k]
        changes.setdefault(sec, {})[name] = v
    return (cfg.replace(**changes) if changes else cfg), out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training train", description="Train a pose-transfer generator.")
    add_train_arguments(ap)
    args = ap.parse_args(argv)
    return run_from_args(args)


def run_from_args(args: argparse.Namespace) -> int:
    cfg, out = resolve_config(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    train(cfg, out, resume=args.resume, vgg_weights=args.vgg_weights, progress=not args.no_progress,
          device=args.device, init_from=args.init_from)
    return 0
