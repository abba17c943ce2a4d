"""The training configuration (``configs/<model>_<size>.toml``): the [train], [loss] and [data]
sections, their strict loading, and the learning-rate policy of [train].
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.data.datasets import parse_data_spec
from training.losses import GAN_MODES, L1_MODES
from training.models import MODEL_NAMES, SIZES, ModelConfig, model_config


CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _strict(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """cls(**data), refusing unknown keys (a typo in a config must not be ignored)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return cls(**data)


def check_counts(section: Any, name: str, **least: int) -> None:
    """Refuse a [name] section whose step and worker counts are not integers at least their
    minimum: eval_every, checkpoint_every, log_every, num_workers >= 0 (0 = "only at the end" for
    the *_every counts), eval_count >= 1, and the fields of ``least`` >= their values. A negative
    or fractional count is a typo; ValueError names the section and the field."""
    counts = {"eval_every": 0, "checkpoint_every": 0, "log_every": 0, "eval_count": 1, "num_workers": 0, **least}
    for field_name, minimum in counts.items():
        value = getattr(section, field_name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"[{name}] {field_name} must be an integer >= {minimum}, got {value!r}")


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
        check_counts(self, "train", g1_steps=0, lr_decay_steps=0, lr_step=0)


@dataclass(frozen=True)
class LossSection:
    """[loss]: weights of the recipe's terms.

    gan_mode: "lsgan" | "bce". lambda_l1 weighs L1 (PG2: the pose-mask L1 of phase 2; phase 1
    is the bare pose-mask L1). l1_mode (PATN / PoNA / NRAM): "plain" = mean|G - I_B| as the
    papers; "pose_mask" = PG2's (1 + M) weighted L1 on the target's body mask, which spends the
    L1 budget on the person when no VGG term is available. lambda_ssim weighs 1 - SSIM
    (training.losses.ssim_loss; PATN / PoNA / NRAM). lambda_gan = 0 turns the adversarial
    term off: the discriminators are then neither run nor trained. lambda_perceptual / lambda_style apply only with --vgg-weights;
    vgg_arch and the layer lists say which VGG activations they use.
    """

    gan_mode: str = "lsgan"
    lambda_gan: float = 5.0
    lambda_l1: float = 1.0
    l1_mode: str = "plain"
    lambda_ssim: float = 0.0
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

def lr_at(step: int, base: float, t: TrainSection) -> float:
    """Learning rate of update ``step`` (0-based) under the [train] policy."""
    if t.lr_policy == "linear" and t.lr_decay_steps > 0:
        start = t.steps - t.lr_decay_steps
        if step >= start:
            return base * max(0.0, 1.0 - (step - start + 1) / (t.lr_decay_steps + 1))
    if t.lr_policy == "step":
        return base * t.lr_gamma ** (step // t.lr_step)
    return base
