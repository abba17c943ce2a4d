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

Checkpoint (``--out`` folder, written by rank 0 only):
    generator.safetensors        generator weights (metadata: step, model config JSON)
    discriminators.safetensors   "<role>.<param>" for every discriminator
    optimizer.pt                 optimizer states (plain tensors; loaded with weights_only=True)
    checkpoint.json              sidecar: step, full training config, model config, last losses
                                 and eval metrics -- written last, so it names a complete set
    metrics.jsonl                one line per evaluation; summary.json at the end

Distributed: ``torchrun --nproc_per_node 2 -m training train ...`` runs DistributedDataParallel
(gloo on CPU, nccl on CUDA); ``--batch-size`` is per process; each rank takes its own shard
of every epoch's permutation.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset, Sampler

from pyposert._cli_args import count
from training.data.datasets import build_dataset, describe, parse_data_spec
from training.losses import (
    GAN_MODES,
    L1_MODES,
    VGGFeatures,
    gan_discriminator_loss,
    gan_generator_loss,
    l1_loss,
    perceptual_loss,
    pose_mask_l1_loss,
    style_loss,
)
from training.models import MODEL_NAMES, SIZES, ModelConfig, build_discriminators, build_generator, model_config
from training.ops import heatmaps_pair

__all__ = [
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
    "train",
    "add_train_arguments",
    "main",
]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CHECKPOINT_FORMAT = "pyposert-train-checkpoint"
CHECKPOINT_VERSION = 1

# ----------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------


def _strict(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """cls(**data), refusing unknown keys (a typo in a config must not be ignored)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return cls(**data)


@dataclass(frozen=True)
class TrainSection:
    """[train]: optimisation schedule.

    steps: generator updates in total (PG2: phase 1 + phase 2). batch_size: per process.
    lr_g / lr_d: Adam learning rates; betas: Adam (beta1, beta2).
    lr_policy: "constant" | "linear" (constant, then linear to 0 over the last lr_decay_steps,
        PATN) | "step" (times lr_gamma every lr_step steps, PG2).
    g1_steps: PG2 only, steps of phase 1 (G1 alone).
    eval_every / checkpoint_every / log_every: in steps (0 = only at the end).
    eval_count: held-out pairs per periodic evaluation. num_workers: DataLoader workers.
    """

    steps: int = 1000
    batch_size: int = 8
    seed: int = 0
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_policy: str = "constant"
    lr_decay_steps: int = 0
    lr_step: int = 0
    lr_gamma: float = 0.5
    g1_steps: int = 0
    eval_every: int = 0
    eval_count: int = 32
    checkpoint_every: int = 0
    log_every: int = 50
    num_workers: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"[train] needs steps >= 0 and batch_size >= 1, got {self.steps}, {self.batch_size}")
        if self.lr_policy not in ("constant", "linear", "step"):
            raise ValueError(f"[train] lr_policy must be constant | linear | step, got {self.lr_policy!r}")
        if self.lr_policy == "step" and self.lr_step <= 0:
            raise ValueError("[train] lr_policy 'step' needs lr_step > 0")
        if len(self.betas) != 2:
            raise ValueError(f"[train] betas must be [beta1, beta2], got {self.betas}")
        # 0 = "only at the end" for the *_every counts; a negative or fractional one is a typo.
        for name, least in (("eval_every", 0), ("checkpoint_every", 0), ("log_every", 0), ("eval_count", 1),
                            ("num_workers", 0), ("g1_steps", 0), ("lr_decay_steps", 0), ("lr_step", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"[train] {name} must be an integer >= {least}, got {value!r}")


@dataclass(frozen=True)
class LossSection:
    """[loss]: weights of the recipe's terms.

    gan_mode: "lsgan" | "bce". lambda_l1 weighs L1 (PG2: the pose-mask L1 of phase 2; phase 1
    is the bare pose-mask L1). l1_mode (PATN / PoNA / NRAM): "plain" = mean|G - I_B| as the
    papers; "pose_mask" = PG2's (1 + M) weighted L1 on the target's body mask, which spends the
    L1 budget on the person when no VGG term is available. lambda_perceptual / lambda_style apply only with --vgg-weights;
    vgg_arch and the layer lists say which VGG activations they use.
    """

    gan_mode: str = "lsgan"
    lambda_gan: float = 5.0
    lambda_l1: float = 1.0
    l1_mode: str = "plain"
    lambda_perceptual: float = 0.0
    lambda_style: float = 0.0
    vgg_arch: str = "vgg19"
    perceptual_layers: tuple[str, ...] = ("relu1_2",)
    style_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")

    def __post_init__(self) -> None:
        object.__setattr__(self, "perceptual_layers", tuple(self.perceptual_layers))
        object.__setattr__(self, "style_layers", tuple(self.style_layers))
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"[loss] gan_mode must be one of {GAN_MODES}, got {self.gan_mode!r}")
        if self.l1_mode not in L1_MODES:
            raise ValueError(f"[loss] l1_mode must be one of {L1_MODES}, got {self.l1_mode!r}")


@dataclass(frozen=True)
class DataSection:
    """[data]: source = "synthetic" | "deepfashion:PATH" | "market:PATH" | "folder:PATH";
    synthetic only: background ("plain" | "cluttered" | "mixed"), length (pairs per epoch),
    poses_dir ("" = the shared real poses / $POSERT_POSES_DIR)."""

    source: str = "synthetic"
    background: str = "mixed"
    length: int = 100_000
    poses_dir: str = ""

    def __post_init__(self) -> None:
        parse_data_spec(self.source)  # fail on a bad --data before building anything
        if self.background not in ("plain", "cluttered", "mixed"):
            raise ValueError(f"[data] background must be plain | cluttered | mixed, got {self.background!r}")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training configuration (one ``configs/<model>_<size>.toml``).

    model, size: the registry entry (training.models.model_config); ``model_overrides`` (the
    TOML's [model] table) changes ModelConfig fields on top of it.
    """

    model: str
    size: str = "rt"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    train: TrainSection = field(default_factory=TrainSection)
    loss: LossSection = field(default_factory=LossSection)
    data: DataSection = field(default_factory=DataSection)

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"model must be one of {MODEL_NAMES}, got {self.model!r}")
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {self.size!r}")
        self.model_config()  # validate the overrides now, not at step 0

    def model_config(self) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(ModelConfig)} - {"name"}
        unknown = sorted(set(self.model_overrides) - known)
        if unknown:  # model_config() would raise a bare TypeError; say which keys exist
            raise ValueError(f"[model]: unknown ModelConfig keys {unknown}; known: {sorted(known)}")
        return model_config(self.model, self.size, **self.model_overrides)

    def to_dict(self) -> dict[str, Any]:
        """TOML/JSON-shaped dict: {model, size, model: overrides -> [model], train, loss, data}."""
        def plain(x: Any) -> Any:
            d = dataclasses.asdict(x)
            return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

        return {"model": self.model, "size": self.size, "model_overrides": dict(self.model_overrides),
                "train": plain(self.train), "loss": plain(self.loss), "data": plain(self.data)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config") -> "TrainConfig":
        """Inverse of :meth:`to_dict`; also accepts the TOML layout (overrides under [model])."""
        d = dict(data)
        overrides = d.pop("model_overrides", None)
        if isinstance(d.get("model"), Mapping):  # TOML: name in 'name', [model] table = overrides
            table = dict(d.pop("model"))
            d["model"] = table.pop("name", None)
            overrides = {**table, **(overrides or {})}
        allowed = {"model", "size", "train", "loss", "data"}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ValueError(f"{where}: unknown top-level keys {unknown}; known: {sorted(allowed)} and [model]")
        if not d.get("model"):
            raise ValueError(f"{where}: no model name (set name = \"nram\" under [model])")
        return cls(
            model=d["model"],
            size=d.get("size", "rt"),
            model_overrides=dict(overrides or {}),
            train=_strict(TrainSection, d.get("train", {}), f"{where} [train]"),
            loss=_strict(LossSection, d.get("loss", {}), f"{where} [loss]"),
            data=_strict(DataSection, d.get("data", {}), f"{where} [data]"),
        )

    def replace(self, **sections: Any) -> "TrainConfig":
        """Copy with some fields of sections changed: replace(train={"steps": 3})."""
        changes: dict[str, Any] = {}
        for name, value in sections.items():
            if name in ("train", "loss", "data"):
                changes[name] = dataclasses.replace(getattr(self, name), **value)
            else:
                changes[name] = value
        return dataclasses.replace(self, **changes)


def default_config_path(model: str, size: str) -> Path:
    """training/configs/<model>_<size>.toml."""
    return CONFIG_DIR / f"{model}_{size}.toml"


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """Read a training TOML (see training/configs/*.toml for the layout)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config not found: {p}")
    with open(p, "rb") as f:
        return TrainConfig.from_dict(tomllib.load(f), where=str(p))


# ----------------------------------------------------------------------------------------
# pieces shared with evaluate.py
# ----------------------------------------------------------------------------------------


def pose_input(source_pose: Tensor, target_pose: Tensor, cfg: ModelConfig) -> Tensor:
    """Generator pose input [B, 36, H, W] in [0, 1] from keypoints [B, 18, 2] (x, y) model pixels.

    training.ops.heatmaps_pair with the model's heatmap mode / sigma / radius (missing = -1 ->
    an all-zero channel), source channels first.
    """
    return heatmaps_pair(source_pose, target_pose, cfg.height, cfg.width, mode=cfg.heatmap_mode,
                         sigma=cfg.heatmap_sigma, radius=cfg.heatmap_radius)


def lr_at(step: int, base: float, t: TrainSection) -> float:
    """Learning rate of update ``step`` (0-based) under the [train] policy."""
    if t.lr_policy == "linear" and t.lr_decay_steps > 0:
        start = t.steps - t.lr_decay_steps
        if step >= start:
            return base * max(0.0, 1.0 - (step - start + 1) / (t.lr_decay_steps + 1))
    if t.lr_policy == "step":
        return base * t.lr_gamma ** (step // t.lr_step)
    return base


def _step_seed(seed: int, rank: int, step: int) -> int:
    """A 63-bit seed per (seed, rank, step), so dropout noise is reproducible on resume."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, rank, step, 0x7A]).generate_state(1, np.uint64)[0] >> 1)


# ----------------------------------------------------------------------------------------
# data order
# ----------------------------------------------------------------------------------------


class StepBatchSampler(Sampler[list[int]]):
    """Batches of indices for steps start_step, start_step + 1, ... (endless).

    Epoch e is a permutation of range(n) from a generator seeded by (seed, e); each epoch holds
    n // (world * batch) steps; rank r takes positions [r*B, (r+1)*B) of every block of
    world * B indices (so every rank sees a disjoint shard, like DistributedSampler).
    The batch of a step depends only on (seed, n, world, batch, step): resuming at a step
    continues the same order.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int = 0, rank: int = 0, world: int = 1):
        self.n, self.batch, self.seed = int(n), int(batch_size), int(seed)
        self.start, self.rank, self.world = int(start_step), int(rank), int(world)
        self.per_epoch = self.n // (self.world * self.batch)
        if self.per_epoch < 1:
            raise ValueError(f"dataset of {n} pairs is smaller than one global batch ({world} x {batch_size})")

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        perm: list[int] = []
        epoch = -1
        while True:
            e, pos = divmod(step, self.per_epoch)
            if e != epoch:
                g = torch.Generator().manual_seed(_step_seed(self.seed, 0, e) & 0x7FFFFFFFFFFF)
                perm = torch.randperm(self.n, generator=g).tolist()
                epoch = e
            base = pos * self.world * self.batch + self.rank * self.batch
            yield perm[base:base + self.batch]
            step += 1


# ----------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------


def _tensors(state: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    # clone: safetensors refuses tensors that share storage; contiguous CPU copies are safe.
    return {f"{prefix}{k}": v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(out: Path, step: int, cfg: TrainConfig, generator: nn.Module,
                    discriminators: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                    info: Mapping[str, Any]) -> Path:
    """Write the checkpoint files (see the module docstring); returns checkpoint.json's path."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    mcfg = cfg.model_config()
    meta = {"step": str(step), "model_config": json.dumps(mcfg.to_dict()), "format": CHECKPOINT_FORMAT}
    _atomic_write(out / "generator.safetensors",
                  lambda p: save_file(_tensors(generator.state_dict()), str(p), metadata=meta))
    d_state: dict[str, Tensor] = {}
    for role, d in discriminators.items():
        d_state.update(_tensors(d.state_dict(), f"{role}."))
    _atomic_write(out / "discriminators.safetensors", lambda p: save_file(d_state, str(p), metadata=meta))
    opt_state = {"step": step, "optimizers": {k: o.state_dict() for k, o in optimizers.items()}}
    _atomic_write(out / "optimizer.pt", lambda p: torch.save(opt_state, str(p)))
    sidecar = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": step,
        "config": cfg.to_dict(),
        "model_config": mcfg.to_dict(),
        "files": {"generator": "generator.safetensors", "discriminators": "discriminators.safetensors",
                  "optimizer": "optimizer.pt"},
        "torch": torch.__version__,
        **info,
    }
    path = out / "checkpoint.json"
    _atomic_write(path, lambda p: p.write_text(json.dumps(sidecar, indent=1, default=float) + "\n"))
    return path


@dataclass
class Checkpoint:
    """A loaded checkpoint: folder, sidecar dict, config, step, and tensor dicts."""

    folder: Path
    sidecar: dict[str, Any]
    config: TrainConfig
    step: int
    generator: dict[str, Tensor]
    discriminators: dict[str, dict[str, Tensor]]
    optimizers: dict[str, Any] | None

    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.sidecar["model_config"])

    def build_generator(self) -> nn.Module:
        """The generator with its trained weights, in eval mode, on the CPU."""
        g = build_generator(self.model_config())
        g.load_state_dict(self.generator)
        return g.eval()


@contextlib.contextmanager
def checkpoint_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn what a damaged or hostile checkpoint makes the readers raise (safetensors'
    SafetensorError, the UnpicklingError of torch.load(weights_only=True) refusing a pickle,
    a missing key, ...) into one ValueError naming the run folder; FileNotFoundError and our
    own ValueErrors pass through."""
    try:
        yield
    except (ValueError, FileNotFoundError):
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure means the same thing here
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ValueError(f"the checkpoint in {path} is corrupt or was not written by pyposert's trainer "
                         f"({type(exc).__name__}: {first})") from None


def load_checkpoint(path: str | os.PathLike[str], *, with_training_state: bool = True,
                    with_discriminators: bool | None = None) -> Checkpoint:
    """Load a run folder (or its checkpoint.json); see :func:`_load_checkpoint`. Every way the
    files can be damaged is a ValueError naming the folder."""
    with checkpoint_errors(path):
        return _load_checkpoint(path, with_training_state=with_training_state,
                                with_discriminators=with_discriminators)


def _load_checkpoint(path: str | os.PathLike[str], *, with_training_state: bool = True,
                     with_discriminators: bool | None = None) -> Checkpoint:
    """Load a run folder (or its checkpoint.json).

    ``with_training_state``: also the discriminators and the optimizer state (for --resume).
    ``with_discriminators`` (default: as with_training_state): the discriminators alone, for
    --init-from, which needs no optimizer state.

    Raises FileNotFoundError if there is no checkpoint, ValueError if it is foreign or its files
    come from different steps (an interrupted save).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    p = Path(path)
    folder = p.parent if p.suffix == ".json" else p
    side_path = folder / "checkpoint.json"
    if not side_path.is_file():
        raise FileNotFoundError(f"no checkpoint.json in {folder}")
    sidecar = json.loads(side_path.read_text())
    if sidecar.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{side_path}: not a {CHECKPOINT_FORMAT} file")
    if int(sidecar.get("version", 0)) > CHECKPOINT_VERSION:
        raise ValueError(f"{side_path}: version {sidecar.get('version')} is newer than this code ({CHECKPOINT_VERSION})")
    step = int(sidecar["step"])
    files = sidecar["files"]
    g_path = folder / files["generator"]
    with safe_open(str(g_path), framework="pt") as f:
        g_step = int((f.metadata() or {}).get("step", -1))
    if g_step != step:
        raise ValueError(f"{g_path} is from step {g_step} but checkpoint.json says {step} (interrupted save?)")
    gen = load_file(str(g_path))
    discs: dict[str, dict[str, Tensor]] = {}
    opts = None
    if with_training_state if with_discriminators is None else with_discriminators:
        for k, v in load_file(str(folder / files["discriminators"])).items():
            role, _, name = k.partition(".")
            discs.setdefault(role, {})[name] = v
    if with_training_state:
        opt = torch.load(str(folder / files["optimizer"]), map_location="cpu", weights_only=True)
        if int(opt["step"]) != step:
            raise ValueError(f"{folder / files['optimizer']} is from step {opt['step']}, not {step}")
        opts = opt["optimizers"]
    return Checkpoint(folder, sidecar, TrainConfig.from_dict(sidecar["config"], str(side_path)), step,
                      gen, discs, opts)


# ----------------------------------------------------------------------------------------
# distributed helpers
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def _init_distributed(device: str | None = None) -> Dist:
    """Process group from torchrun's environment (WORLD_SIZE > 1), else a single process.

    device: "cpu", "cuda" or None (CUDA when available). Distributed CUDA runs use nccl and one
    GPU per local rank; CPU runs use gloo.
    """
    want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if want_cuda and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device on this machine")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=torch.device(device or ("cuda" if want_cuda else "cpu")))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if want_cuda else "gloo")
    if want_cuda:
        torch.cuda.set_device(local_rank)
        return Dist(rank, world, local_rank, torch.device("cuda", local_rank))
    # Share the cores: N processes each using every core would oversubscribe them.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return Dist(rank, world, local_rank, torch.device("cpu"))


def _mean_across(values: dict[str, float], d: Dist) -> dict[str, float]:
    if not d.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / d.world for k, v in zip(keys, t.tolist())}


# ----------------------------------------------------------------------------------------
# the loss recipes
# ----------------------------------------------------------------------------------------


class _GeneratorForward(nn.Module):
    """What DDP wraps: PG2 -> (coarse, refined) unclamped stages; the others -> (output,)."""

    def __init__(self, generator: nn.Module, name: str) -> None:
        super().__init__()
        self.generator = generator
        self.pg2 = name == "pg2"

    def forward(self, source: Tensor, pose: Tensor) -> tuple[Tensor, ...]:
        if self.pg2:
            return tuple(self.generator.stages(source, pose))
        return (self.generator(source, pose),)


class Trainer:
    """Networks, optimizers and one training step of the configured recipe."""

    def __init__(self, cfg: TrainConfig, d: Dist, vgg: VGGFeatures | None) -> None:
        self.cfg, self.d, self.vgg = cfg, d, vgg
        self.mcfg = cfg.model_config()
        self.name = cfg.model
        t = cfg.train
        torch.manual_seed(t.seed)  # identical initial weights on every rank
        self.generator = build_generator(self.mcfg).to(d.device)
        self.discriminators = {k: v.to(d.device) for k, v in build_discriminators(self.mcfg).items()}
        adam = dict(betas=t.betas)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        if self.name == "pg2":
            self.optimizers["g1"] = torch.optim.Adam(self.generator.g1.parameters(), lr=t.lr_g, **adam)
            self.optimizers["g2"] = torch.optim.Adam(self.generator.g2.parameters(), lr=t.lr_g, **adam)
        else:
            self.optimizers["g"] = torch.optim.Adam(self.generator.parameters(), lr=t.lr_g, **adam)
        d_params = [p for m in self.discriminators.values() for p in m.parameters()]
        self.optimizers["d"] = torch.optim.Adam(d_params, lr=t.lr_d, **adam)
        self._phase = 0
        self._g_run: nn.Module = _GeneratorForward(self.generator, self.name)
        self._d_run: dict[str, nn.Module] = dict(self.discriminators)
        if d.enabled:
            self._d_run = {k: DDP(m, device_ids=self._ids()) for k, m in self.discriminators.items()}

    def _ids(self) -> list[int] | None:
        return [self.d.local_rank] if self.d.device.type == "cuda" else None

    def phase(self, step: int) -> int:
        """PG2: 1 while step < g1_steps, else 2. Other models: always 2 (generator + D)."""
        return 1 if self.name == "pg2" and step < self.cfg.train.g1_steps else 2

    def _enter_phase(self, phase: int) -> None:
        """(Re)wrap the generator for the phase: PG2 phase 2 freezes G1 (PG2 trains G2 and D
        with G1 fixed), and DDP must be built after requires_grad changes."""
        if phase == self._phase:
            return
        self._phase = phase
        if self.name == "pg2":
            self.generator.g1.requires_grad_(phase == 1)
        fwd = _GeneratorForward(self.generator, self.name)
        if self.d.enabled:
            # PG2 phase 1 leaves G2 without gradients: DDP must be told.
            fwd = DDP(fwd, device_ids=self._ids(), find_unused_parameters=self.name == "pg2" and phase == 1)
        self._g_run = fwd

    def load_state(self, ck: Checkpoint) -> None:
        self.generator.load_state_dict(ck.generator)
        for role, m in self.discriminators.items():
            if role not in ck.discriminators:
                raise ValueError(f"checkpoint has no weights for discriminator {role!r}")
            m.load_state_dict(ck.discriminators[role])
        if ck.optimizers is None:
            raise ValueError("checkpoint has no optimizer state")
        for k, o in self.optimizers.items():
            o.load_state_dict(ck.optimizers[k])

    def _set_lr(self, step: int) -> None:
        t = self.cfg.train
        for k, o in self.optimizers.items():
            lr = lr_at(step, t.lr_d if k == "d" else t.lr_g, t)
            for group in o.param_groups:
                group["lr"] = lr

    def _vgg_terms(self, fake: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Perceptual and style terms (weighted), only when VGG weights were given."""
        L = self.cfg.loss
        if self.vgg is None or (L.lambda_perceptual <= 0 and L.lambda_style <= 0):
            return {}
        f_fake = self.vgg(fake)
        with torch.no_grad():
            f_real = self.vgg(target)
        out: dict[str, Tensor] = {}
        if L.lambda_perceptual > 0:
            layers = L.perceptual_layers
            out["perceptual"] = L.lambda_perceptual * perceptual_loss(
                {k: f_fake[k] for k in layers}, {k: f_real[k] for k in layers})
        if L.lambda_style > 0:
            layers = L.style_layers
            out["style"] = L.lambda_style * style_loss({k: f_fake[k] for k in layers}, {k: f_real[k] for k in layers})
        return out

    def _d_inputs(self, image: Tensor, source: Tensor, target_maps: Tensor) -> dict[str, Tensor]:
        """Conditional discriminator inputs per role (PATN lineage)."""
        return {"appearance": torch.cat([image, source], 1), "pose": torch.cat([image, target_maps], 1)}

    def step(self, step: int, batch: Mapping[str, Tensor]) -> dict[str, float]:
        """One update of the recipe at 0-based ``step``.

        Returns the generator's weighted loss terms (e.g. g_gan = lambda_gan * adversarial,
        l1 = lambda_l1 * L1), their sum g_total, and each discriminator's loss d_<role>
        (PG2 phase 1: only g1_pose_mask_l1).
        """
        dev = self.d.device
        src = batch["source_image"].to(dev)
        tgt = batch["target_image"].to(dev)
        mask = batch["target_mask"].to(dev)
        pose = pose_input(batch["source_pose"].to(dev), batch["target_pose"].to(dev), self.mcfg)
        phase = self.phase(step)
        self._enter_phase(phase)
        self._set_lr(step)
        torch.manual_seed(_step_seed(self.cfg.train.seed, self.d.rank, step))
        self.generator.train()
        for m in self.discriminators.values():
            m.train()
        if self.name == "pg2":
            return self._step_pg2(phase, src, tgt, mask, pose)
        return self._step_pair(src, tgt, pose, mask)

    # -- PATN / PoNA / NRAM ------------------------------------------------------------
    def _step_pair(self, src: Tensor, tgt: Tensor, pose: Tensor, mask: Tensor) -> dict[str, float]:
        L = self.cfg.loss
        n_t = self.mcfg.pose_channels // 2
        tmaps = pose[:, n_t:]
        (fake,) = self._g_run(src, pose)
        # Generator update; discriminators frozen and run bare (outside DDP: no gradient sync).
        for m in self.discriminators.values():
            m.requires_grad_(False)
        fake_in = self._d_inputs(fake, src, tmaps)
        adv = torch.stack([gan_generator_loss(self.discriminators[r](fake_in[r]), L.gan_mode)
                           for r in self.discriminators]).mean()
        terms: dict[str, Tensor] = {"g_gan": L.lambda_gan * adv}
        if L.l1_mode == "pose_mask":
            terms["pose_mask_l1"] = L.lambda_l1 * pose_mask_l1_loss(fake, tgt, mask)
        else:
            terms["l1"] = L.lambda_l1 * l1_loss(fake, tgt)
        terms.update(self._vgg_terms(fake, tgt))
        g_loss = torch.stack(list(terms.values())).sum()
        self.optimizers["g"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["g"].step()
        for m in self.discriminators.values():
            m.requires_grad_(True)
        # Discriminator update: real and fake in one forward per D (one DDP forward per backward;
        # the PATN-lineage discriminators use instance norm, so batching them is per-sample exact).
        fake_d = fake.detach()
        real_in = self._d_inputs(tgt, src, tmaps)
        fake_in = self._d_inputs(fake_d, src, tmaps)
        d_losses: dict[str, Tensor] = {}
        b = src.shape[0]
        for role, run in self._d_run.items():
            scores = run(torch.cat([real_in[role], fake_in[role]], 0))
            d_losses[role] = gan_discriminator_loss(scores[:b], scores[b:], L.gan_mode)
        d_loss = torch.stack(list(d_losses.values())).sum()
        self.optimizers["d"].zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimizers["d"].step()
        out = {k: float(v.detach()) for k, v in terms.items()}
        out["g_total"] = float(g_loss.detach())
        out.update({f"d_{k}": float(v.detach()) for k, v in d_losses.items()})
        return out


    # -- PG2 -----------------------------------------------------------------------------
    def _step_pg2(self, phase: int, src: Tensor, tgt: Tensor, mask: Tensor, pose: Tensor) -> dict[str, float]:
        L = self.cfg.loss
        coarse, refined = self._g_run(src, pose)
        if phase == 1:
            loss = pose_mask_l1_loss(coarse, tgt, mask)
            self.optimizers["g1"].zero_grad(set_to_none=True)
            loss.backward()
            self.optimizers["g1"].step()
            return {"g1_pose_mask_l1": float(loss.detach())}
        disc = self.discriminators["image"]
        disc.requires_grad_(False)
        adv = gan_generator_loss(disc(refined), L.gan_mode)
        terms = {"g_gan": L.lambda_gan * adv, "pose_mask_l1": L.lambda_l1 * pose_mask_l1_loss(refined, tgt, mask)}
        g_loss = terms["g_gan"] + terms["pose_mask_l1"]
        self.optimizers["g2"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["g2"].step()
        disc.requires_grad_(True)
        # PG2's D: targets real; refined outputs and the source images fake, in one batch.
        b = src.shape[0]
        scores = self._d_run["image"](torch.cat([tgt, refined.detach(), src], 0))
        d_loss = gan_discriminator_loss(scores[:b], scores[b:], L.gan_mode)
        self.optimizers["d"].zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimizers["d"].step()
        out = {k: float(v.detach()) for k, v in terms.items()}
        out["g_total"] = float(g_loss.detach())
        out["d_image"] = float(d_loss.detach())
        return out


# ----------------------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------------------


def _build_vgg(cfg: TrainConfig, vgg_weights: str | None, device: torch.device) -> tuple[VGGFeatures | None, str]:
    """The VGG stack when the recipe uses it and weights were given; plus a note for the log."""
    L = cfg.loss
    wanted: list[str] = []
    if L.lambda_perceptual > 0:
        wanted += [n for n in L.perceptual_layers if n not in wanted]
    if L.lambda_style > 0:
        wanted += [n for n in L.style_layers if n not in wanted]
    if not wanted:
        return None, ("--vgg-weights given but this recipe has no perceptual/style term (weights 0): unused"
                      if vgg_weights else "")
    if not vgg_weights:
        terms = " and ".join(t for t, w in (("perceptual", L.lambda_perceptual), ("style", L.lambda_style)) if w > 0)
        return None, f"{terms} loss off: pass --vgg-weights PATH ({L.vgg_arch} state dict) to enable it"
    vgg = VGGFeatures.from_weights(vgg_weights, L.vgg_arch, wanted).to(device)
    return vgg, f"VGG losses on: {L.vgg_arch} {wanted} from {vgg_weights}"


def _log(d: Dist, msg: str) -> None:
    if d.main:
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stderr)


def train(cfg: TrainConfig, out: str | os.PathLike[str], *, resume: bool = False,
          vgg_weights: str | None = None, progress: bool = True, device: str | None = None,
          init_from: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run (or continue) training; returns the summary dict (also written to out/summary.json).

    Under torchrun (WORLD_SIZE > 1) every process calls this; rank 0 writes files and logs.
    ``resume``: continue from out/checkpoint.json (its step, weights and optimizer state);
    the caller passes the checkpoint's config (see :func:`main`). Without ``resume`` an existing
    checkpoint in ``out`` is an error, so a run is never overwritten by accident.
    ``init_from``: start a new run (step 0, fresh optimizers and schedule) from the generator
    and discriminator weights of another run, e.g. a committed checkpoint without its
    optimizer state; the model configuration must match.
    """
    from tqdm import tqdm

    from training.evaluate import evaluate_generator

    out = Path(out)
    d = _init_distributed(device)
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
    vgg, vgg_note = _build_vgg(cfg, vgg_weights, d.device)
    trainer = Trainer(cfg, d, vgg)
    start = 0
    prior_seconds = 0.0
    history: list[dict[str, Any]] = []
    if init_from is not None and ck is None:
        seed = load_checkpoint(init_from, with_training_state=False, with_discriminators=True)
        if seed.config.model_config() != mcfg:
            raise ValueError(f"--init-from {init_from}: its model config {seed.config.model_config()} differs "
                             f"from this run's {mcfg}")
        trainer.generator.load_state_dict(seed.generator)
        for role, m in trainer.discriminators.items():
            m.load_state_dict(seed.discriminators[role])
        _log(d, f"initialised from {init_from} (step {seed.step} weights; fresh optimizer state)")
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
                    last_losses = _mean_across({k: float(np.mean(v)) for k, v in window.items()}, d)
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


# ----------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------


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
                    help="new run starting from RUN's generator/discriminator weights (no optimizer state)")
    ap.add_argument("--vgg-weights", metavar="PATH",
                    help="ImageNet VGG state dict (.safetensors or torch.save) for perceptual/style losses")
    ap.add_argument("--device", help="cpu | cuda (default: cuda when available)")
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
    train(cfg, out, resume=args.resume, vgg_weights=args.vgg_weights, progress=not args.no_progress,
          device=args.device, init_from=args.init_from)
    return 0
