"""Training checkpoints: a run folder written atomically, sidecar last.

Folder (written by rank 0 only):
    generator.safetensors        generator weights (metadata: step, model config JSON)
    discriminators.safetensors   "<role>.<param>" for every discriminator
    optimizer.pt                 optimizer states (plain tensors; loaded with weights_only=True)
    checkpoint.json              sidecar: step, full training config, model config, last losses
                                 and eval metrics -- written last, so it names a complete set

The helpers :func:`atomic_write`, :func:`checkpoint_errors`, :func:`read_sidecar` and
:func:`check_step` are shared with the completion trainer's checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor, nn

from training.models import ModelConfig, build_generator
from training.train_config import TrainConfig


CHECKPOINT_FORMAT = "pyposert-train-checkpoint"
CHECKPOINT_VERSION = 1


def cpu_tensors(state: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """``state`` as contiguous CPU copies, keys prefixed with ``prefix``, ready for safetensors."""
    # clone: safetensors refuses tensors that share storage; contiguous CPU copies are safe.
    return {f"{prefix}{k}": v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` then rename tmp over ``path``: a reader sees the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(out: Path, step: int, cfg: TrainConfig, generator: nn.Module,
                    discriminators: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                    info: Mapping[str, Any]) -> Path:
    """Write the checkpoint files (see the module docstring); returns checkpoint.json's path."""
    d_state: dict[str, Tensor] = {}
    for role, d in discriminators.items():
        d_state.update(cpu_tensors(d.state_dict(), f"{role}."))
    files = {"generator": "generator.safetensors", "discriminators": "discriminators.safetensors",
             "optimizer": "optimizer.pt"}
    weights = {files["generator"]: cpu_tensors(generator.state_dict()), files["discriminators"]: d_state}
    sidecar = {"config": cfg.to_dict(), "model_config": cfg.model_config().to_dict(), "files": files, **info}
    return write_run(out, step, weights, optimizers, sidecar)


def write_run(out: Path, step: int, weights: Mapping[str, Mapping[str, Tensor]],
              optimizers: Mapping[str, torch.optim.Optimizer], sidecar: Mapping[str, Any],
              fmt: str = CHECKPOINT_FORMAT, version: int = CHECKPOINT_VERSION) -> Path:
    """Write a run folder: every ``weights`` entry (file name -> CPU tensors) as safetensors whose
    metadata holds the step, ``fmt`` and ``sidecar["model_config"]``, then optimizer.pt, then
    checkpoint.json (``fmt``, ``version``, step, torch version and ``sidecar``), each atomically
    and the sidecar last. Returns checkpoint.json's path."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    meta = {"step": str(step), "model_config": json.dumps(sidecar["model_config"]), "format": fmt}
    for name, tensors in weights.items():
        atomic_write(out / name, lambda p, tensors=tensors: save_file(dict(tensors), str(p), metadata=meta))
    opt_state = {"step": step, "optimizers": {k: o.state_dict() for k, o in optimizers.items()}}
    atomic_write(out / "optimizer.pt", lambda p: torch.save(opt_state, str(p)))
    side = {"format": fmt, "version": version, "step": step, "torch": torch.__version__, **sidecar}
    path = out / "checkpoint.json"
    atomic_write(path, lambda p: p.write_text(json.dumps(side, indent=1, default=float) + "\n"))
    return path


ConfigT = TypeVar("ConfigT")


@dataclass
class RunCheckpoint(Generic[ConfigT]):
    """What every loaded run folder has: the folder, its checkpoint.json contents (sidecar), the
    run's configuration and the step it was saved at."""

    folder: Path
    sidecar: dict[str, Any]
    config: ConfigT
    step: int


@dataclass
class Checkpoint(RunCheckpoint[TrainConfig]):
    """A loaded training checkpoint: the run folder's facts, then its tensor dicts."""

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
    from safetensors.torch import load_file

    folder, side_path, sidecar = read_sidecar(path)
    step = int(sidecar["step"])
    files = sidecar["files"]
    gen = load_weights(folder / files["generator"], step)
    discs: dict[str, dict[str, Tensor]] = {}
    opts = None
    if with_training_state if with_discriminators is None else with_discriminators:
        for k, v in load_file(str(folder / files["discriminators"])).items():
            role, _, name = k.partition(".")
            discs.setdefault(role, {})[name] = v
    if with_training_state:
        opts = load_optimizers(folder / files["optimizer"], step)
    return Checkpoint(folder, sidecar, TrainConfig.from_dict(sidecar["config"], str(side_path)), step,
                      gen, discs, opts)


def read_sidecar(path: str | os.PathLike[str], fmt: str = CHECKPOINT_FORMAT,
                 version: int = CHECKPOINT_VERSION) -> tuple[Path, Path, dict[str, Any]]:
    """(run folder, checkpoint.json path, its contents) of a run folder or its checkpoint.json.

    Raises FileNotFoundError without a checkpoint.json, ValueError when its format is not
    ``fmt`` or its version is newer than ``version``.
    """
    p = Path(path)
    folder = p.parent if p.suffix == ".json" else p
    side_path = folder / "checkpoint.json"
    if not side_path.is_file():
        raise FileNotFoundError(f"no checkpoint.json in {folder}")
    sidecar = json.loads(side_path.read_text())
    if sidecar.get("format") != fmt:
        raise ValueError(f"{side_path}: not a {fmt} file (format {sidecar.get('format')!r})")
    if int(sidecar.get("version", 0)) > version:
        raise ValueError(f"{side_path}: version {sidecar.get('version')} is newer than this code ({version})")
    return folder, side_path, sidecar


def load_weights(path: Path, step: int) -> dict[str, Tensor]:
    """The tensors of a safetensors file whose metadata says ``step``; ValueError when it is from
    another step (a save interrupted between files)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        found = int((f.metadata() or {}).get("step", -1))
    if found != step:
        raise ValueError(f"{path} is from step {found} but checkpoint.json says {step} (interrupted save?)")
    return load_file(str(path))


def load_optimizers(path: Path, step: int) -> dict[str, Any]:
    """The optimizer states of optimizer.pt (plain tensors, weights_only), checked to be from ``step``."""
    opt = torch.load(str(path), map_location="cpu", weights_only=True)
    if int(opt["step"]) != step:
        raise ValueError(f"{path} is from step {opt['step']}, not {step}")
    return opt["optimizers"]
