"""A completion run's configuration ([train], [loss], [data] TOML sections) and checkpoint
reader, shared by :mod:`training.train_completion` (which writes checkpoints) and
:mod:`training.evaluate_completion` / the exporter (which read them).

Checkpoint folder: ``model.safetensors`` (CompletionModel), ``discriminator.safetensors``,
``optimizer.pt`` (tensors only, loaded with weights_only=True) and ``checkpoint.json``, written
last (see :func:`training.checkpoint.write_run`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from torch import Tensor

from training import ops as T
from training.checkpoint import RunCheckpoint, checkpoint_errors, load_optimizers, load_weights, read_sidecar
from training.models.completion import CompletionConfig, CompletionModel, completion_config
from training.train_config import check_counts

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "TrainSection", "LossSection", "DataSection",
           "CompletionTrainConfig", "pose_heatmaps", "CompletionCheckpoint", "is_completion_checkpoint",
           "load_completion_checkpoint"]

CHECKPOINT_FORMAT = "pyposert-completion-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainSection:
    steps: int = 20000
    batch_size: int = 16
    seed: int = 0
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    eval_every: int = 500
    eval_count: int = 32
    checkpoint_every: int = 100
    log_every: int = 50
    num_workers: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"[train] steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}")
        check_counts(self, "train")


@dataclass(frozen=True)
class LossSection:
    """Thesis weights (4.1.3): KL 20, appearance 20, adversarial 1 -- with KL averaged over the
    latent here (the thesis does not say how it reduces it); lambda_seg weighs the shape CE."""

    lambda_seg: float = 1.0
    lambda_kl_shape: float = 0.05
    lambda_kl_texture: float = 0.05
    lambda_appearance: float = 20.0
    lambda_adversarial: float = 1.0
    lambda_content: float = 1.0   # VGG-19 conv1_2..conv5_2 (only with --vgg-weights)
    lambda_style: float = 0.0     # Gram (only with --vgg-weights)
    content_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")

    def __post_init__(self) -> None:
        object.__setattr__(self, "content_layers", tuple(self.content_layers))


@dataclass(frozen=True)
class DataSection:
    """background, length, poses_dir: as :class:`training.data.completion.CompletionSamples`;
    coordinate: share of training outfits made to go together (evaluation never sees it)."""

    background: str = "plain"
    length: int = 100_000
    poses_dir: str = ""
    coordinate: float = 0.0


@dataclass(frozen=True)
class CompletionTrainConfig:
    """A run: model size + overrides, [train], [loss], [data] (TOML sections)."""

    size: str = "rt"
    model: dict[str, Any] = field(default_factory=dict)
    train: TrainSection = field(default_factory=TrainSection)
    loss: LossSection = field(default_factory=LossSection)
    data: DataSection = field(default_factory=DataSection)

    def model_config(self) -> CompletionConfig:
        return completion_config(self.size, **self.model)

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "model": dict(self.model), "train": dataclasses.asdict(self.train),
                "loss": dataclasses.asdict(self.loss), "data": dataclasses.asdict(self.data)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "config") -> "CompletionTrainConfig":
        known = {"size", "model", "train", "loss", "data"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{where}: unknown sections {unknown}; known: {sorted(known)}")

        def section(kind: type, name: str) -> Any:
            values = dict(d.get(name, {}))
            fields = {f.name for f in dataclasses.fields(kind)}
            bad = sorted(set(values) - fields)
            if bad:
                raise ValueError(f"{where}: unknown [{name}] keys {bad}; known: {sorted(fields)}")
            return kind(**values)

        cfg = cls(size=str(d.get("size", "rt")), model=dict(d.get("model", {})), train=section(TrainSection, "train"),
                  loss=section(LossSection, "loss"), data=section(DataSection, "data"))
        cfg.model_config()  # validate now, not at step 0
        return cfg



def pose_heatmaps(keypoints: Tensor, cfg: CompletionConfig) -> Tensor:
    """[B, 18, 2] (x, y) model pixels -> [B, 18, H, W] Gaussian heatmaps (pyposert's kernel math)."""
    return T.heatmaps(keypoints, cfg.height, cfg.width, mode="gaussian", sigma=cfg.heatmap_sigma)




@dataclass
class CompletionCheckpoint(RunCheckpoint[CompletionTrainConfig]):
    """A loaded completion checkpoint: the run folder's facts, then its tensor dicts."""

    model: dict[str, Tensor]
    discriminator: dict[str, Tensor] | None
    optimizers: dict[str, Any] | None

    def model_config(self) -> CompletionConfig:
        return CompletionConfig.from_dict(self.sidecar["model_config"])

    def build_model(self) -> CompletionModel:
        """The trained CompletionModel in eval mode on the CPU."""
        m = CompletionModel(self.model_config())
        m.load_state_dict(self.model)
        return m.eval()


def is_completion_checkpoint(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    side = (p.parent if p.suffix == ".json" else p) / "checkpoint.json"
    try:
        return json.loads(side.read_text()).get("format") == CHECKPOINT_FORMAT
    except (OSError, ValueError):
        return False


def load_completion_checkpoint(path: str | os.PathLike[str], with_training_state: bool = False) -> CompletionCheckpoint:
    """Load a run folder (or its checkpoint.json). FileNotFoundError / ValueError when missing,
    foreign, torn (files from different steps) or damaged (one line naming the folder)."""
    with checkpoint_errors(path):
        return _load_completion_checkpoint(path, with_training_state)


def _load_completion_checkpoint(path: str | os.PathLike[str], with_training_state: bool) -> CompletionCheckpoint:
    from safetensors.torch import load_file

    folder, side_path, side = read_sidecar(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
    step = int(side["step"])
    model = load_weights(folder / "model.safetensors", step)
    disc = opts = None
    if with_training_state:
        disc = load_file(str(folder / "discriminator.safetensors"))
        opts = load_optimizers(folder / "optimizer.pt", step)
    return CompletionCheckpoint(folder, side, CompletionTrainConfig.from_dict(side["config"], str(side_path)), step,
                                model, disc, opts)
