"""Where pyposert finds its models and demo media.

A model given on the command line or to :func:`find_model` is looked up in this order:

1. an explicit path (``--model path/to/model.plan``) that exists;
2. the folder named by the ``POSERT_MODELS`` environment variable;
3. the models inside the installed package (``pyposert/data/``): the default pose-transfer
   model ``nram.plan`` (NRAM, 128 x 88, weights stored in float16) and the fashion-completion
   model ``completion.plan``.

In 2 and 3 a model is found by its file name, with or without ``.plan`` (``nram``,
``nram.plan``, ``completion``). The demo media (a photo of a person, its pose and parsing, and
a set of real driving poses) are found the same way, in a ``demo/`` folder.

Nothing here needs torch, a GPU or the repository checkout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

__all__ = ["DEFAULT_MODEL", "MODEL_SUFFIXES", "ModelEntry", "demo_dir", "driving_poses_csv", "find_model",
           "list_models", "package_dir", "search_path"]

DEFAULT_MODEL = "nram"
MODEL_SUFFIXES = (".plan", ".onnx")
ENV_VAR = "POSERT_MODELS"


def package_dir() -> Path:
    """The models shipped inside the package: ``<site-packages>/pyposert/data``."""
    return Path(__file__).resolve().parent / "data"


def search_path() -> list[tuple[str, Path]]:
    """The folders searched for a model named without a path, in order, each with where it
    comes from ("POSERT_MODELS" or "package"). A POSERT_MODELS that is not a folder is kept
    (so ``pyposert models`` can say so) but finds nothing."""
    folders: list[tuple[str, Path]] = []
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        folders.append((ENV_VAR, Path(env).expanduser()))
    folders.append(("package", package_dir()))
    return folders


def _is_bare_name(value: str) -> bool:
    """True for 'nram' or 'nram.plan'; False for anything with a folder in it."""
    return Path(value).name == value and value not in ("", ".", "..")


def find_model(model: Optional[Union[str, os.PathLike]] = None) -> Path:
    """The model file to open: an existing path as given; else a bare name (``nram``,
    ``nram.plan``) in ``$POSERT_MODELS``, then in the package. None: the default model.

    Raises FileNotFoundError with a one-line message ("model file not found: X (no such
    file ...)", listing where a bare name was looked for); IsADirectoryError for a folder.
    """
    value = os.fspath(model) if model is not None else DEFAULT_MODEL
    path = Path(value).expanduser()
    if path.is_file() or (os.path.lexists(path) and not path.is_dir()):
        return path  # not a regular file (a named pipe, a device): the loader refuses it, saying what it is
    if path.is_dir():
        raise IsADirectoryError(f"{value} is a folder, not a model file (.plan or .onnx)")
    if not _is_bare_name(value):
        raise FileNotFoundError(f"model file not found: {value} (no such file)")
    names = [value] if Path(value).suffix in MODEL_SUFFIXES else [value + s for s in MODEL_SUFFIXES]
    looked: list[str] = []
    for _, folder in search_path():
        for name in names:
            if (folder / name).is_file():
                return folder / name
        looked.append(str(folder))
    raise FileNotFoundError(f"model file not found: {value} (no such file here, nor in {', '.join(looked)}; "
                            f"`pyposert models` lists the installed models)")


def demo_dir() -> Path:
    """The demo media folder: ``$POSERT_MODELS/demo`` when it has a photo, else the package's."""
    for _, folder in search_path():
        if (folder / "demo" / "person.png").is_file():
            return folder / "demo"
    return package_dir() / "demo"


def driving_poses_csv() -> Path:
    """Real human poses for ``--driving synthetic:N`` and the demo (PATN annotation CSV, 40
    DeepFashion test poses of people no shipped model was trained on)."""
    return demo_dir() / "driving-poses.csv"


@dataclass(frozen=True)
class ModelEntry:
    """One model file found on the search path."""

    name: str  # what --model accepts (the file name without .plan)
    path: Path
    origin: str  # "POSERT_MODELS" or "package"
    size_bytes: int
    description: str  # task, model name/version, frame, weights -- or why it cannot be read
    shadowed: bool  # an earlier folder has a model of the same name (that one is used)
    default: bool  # the model used when --model is not given


def _describe(path: Path) -> str:
    """One line from the bundle's manifest (nothing is run); a bare .onnx is just named."""
    if path.suffix == ".onnx":
        return "bare ONNX graph"
    from .bundle import read_bundle

    try:
        b = read_bundle(path)
    except (OSError, ValueError) as exc:  # PlanError is a ValueError
        return f"unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    spec = b.input_spec
    weights = {str(p.extra.get("weights") or p.precision or "") for p in b.payloads if p.kind == "onnx"} - {""}
    kinds = sorted({p.kind for p in b.payloads})
    return (f"{b.task}, {b.model_name} {b.model_version}, {spec.height} x {spec.width}, "
            f"weights {'/'.join(sorted(weights)) or '-'}; payloads: {', '.join(kinds)}")


def list_models() -> list[ModelEntry]:
    """Every .plan / .onnx file in the search path, in search order."""
    seen: set[str] = set()
    default_path: Optional[Path]
    try:
        default_path = find_model(None)
    except OSError:
        default_path = None
    entries: list[ModelEntry] = []
    for origin, folder in search_path():
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in MODEL_SUFFIXES):
            name = path.stem if path.suffix == ".plan" else path.name
            entries.append(ModelEntry(name, path, origin, path.stat().st_size, _describe(path), name in seen,
                                      default_path is not None and path == default_path))
            seen.add(name)
    return entries
