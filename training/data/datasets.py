"""torch Datasets of pose-transfer pairs: the synthetic renderer and the PATN / PoNA layouts of
DeepFashion and Market-1501.

Every dataset returns the same item (a dict of tensors, one pair):

    source_image, target_image: float32 [3, H, W] RGB in [-1, 1]   (u8 / 127.5 - 1)
    source_pose, target_pose:   float32 [18, 2] (x, y) model pixels, COCO-18, missing = -1
    target_mask:                float32 [1, H, W] in {0, 1}: PG2 body mask of the target pose
    index:                      int64 [] (the pair's index in the dataset)

Heatmaps are not made here: the training loop rasterises the keypoints of a whole batch with
``training.ops.heatmaps_pair`` (the same convention as the native kernel).

Real datasets, as prepared by PATN (tengteng95/Pose-Transfer) and used by PoNA::

    ROOT/
      train/ test/                         image folders (DeepFashion 256 x 176, Market 128 x 64)
      fasion-resize-annotation-train.csv   name:keypoints_y:keypoints_x  (y FIRST, -1 missing)
      fasion-resize-pairs-train.csv        from,to
      ...-annotation-test.csv, ...-pairs-test.csv

Images of another size than the model's are letterboxed into it exactly like pyposert's
runtime (``pyposert.ops.to_model_input``): aspect-preserving scale, centred, white bars, and
keypoints mapped with pixel centres preserved.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from pyposert import ops as runtime_ops

from . import poses as P
from .masks import body_mask
from .synthetic import SyntheticPairs

__all__ = [
    "image_to_tensor",
    "tensor_to_image",
    "letterbox_image",
    "load_image",
    "SyntheticPairDataset",
    "PairFolderDataset",
    "DATA_KINDS",
    "parse_data_spec",
    "build_dataset",
    "describe",
]

DATA_KINDS = ("synthetic", "deepfashion", "market", "folder")


def image_to_tensor(image: np.ndarray) -> Tensor:
    """uint8 [H, W, 3] RGB -> float32 [3, H, W] in [-1, 1] (u / 127.5 - 1, exact inverse below)."""
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3] RGB, got {a.dtype} {list(a.shape)}")
    t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).to(torch.float32)
    return t / 127.5 - 1.0


def tensor_to_image(t: Tensor) -> np.ndarray:
    """float [3, H, W] (or [B, 3, H, W]) RGB in [-1, 1] -> uint8 [H, W, 3] (or [B, H, W, 3]).

    Values are clamped to [-1, 1] and rounded: round((x + 1) * 127.5).
    """
    if t.dim() not in (3, 4) or t.shape[-3] != 3:
        raise ValueError(f"expected [3, H, W] or [B, 3, H, W], got {list(t.shape)}")
    u = ((t.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).cpu()
    return u.movedim(-3, -1).contiguous().numpy()


def letterbox_image(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, runtime_ops.Letterbox]:
    """uint8 [h, w, 3] RGB -> (uint8 [height, width, 3] RGB, Letterbox): the runtime's own
    pre-processing (``pyposert.ops.to_model_input``, white bars), so a model trains on exactly
    the pixels it will see at inference; map keypoints with ``box.to_model``."""
    x, box = runtime_ops.to_model_input(image, height, width, bgr=False, pad_value=1.0)
    return runtime_ops.from_model_output(x, box, unletterbox=False, bgr=False), box


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as uint8 [H, W, 3] RGB; FileNotFoundError / ValueError when unreadable."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image not found: {p}")
    bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot decode image: {p}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _item(index: int, source: np.ndarray, target: np.ndarray, source_pose: np.ndarray,
          target_pose: np.ndarray, target_mask: np.ndarray) -> dict[str, Tensor]:
    return {
        "source_image": image_to_tensor(source),
        "target_image": image_to_tensor(target),
        "source_pose": torch.from_numpy(np.asarray(source_pose, np.float32).copy()),
        "target_pose": torch.from_numpy(np.asarray(target_pose, np.float32).copy()),
        "target_mask": torch.from_numpy(np.asarray(target_mask, np.float32))[None].clone(),
        "index": torch.tensor(index, dtype=torch.int64),
    }


class SyntheticPairDataset(Dataset):
    """:class:`training.data.synthetic.SyntheticPairs` as tensors (see the module docstring).

    Args:
        height, width: image size H x W (the model size).
        split: "train" or "eval" (held-out identities and held-out real poses).
        seed: base seed; item i depends only on (seed, split, i).
        length: ``len()`` (the renderer is unbounded).
        background: "plain" | "cluttered" | "mixed".
        pose_bank, poses_dir: passed to SyntheticPairs (default: the shared real poses,
            ``$POSERT_POSES_DIR`` overrides).
    """

    def __init__(self, height: int, width: int, split: str = "train", seed: int = 0, length: int = 100_000,
                 background: str = "mixed", pose_bank: P.PoseBank | None = None,
                 poses_dir: str | os.PathLike[str] | None = None) -> None:
        self.pairs = SyntheticPairs(height, width, split=split, seed=seed, background=background,
                                    pose_bank=pose_bank, poses_dir=poses_dir, length=length)
        self.height, self.width = int(height), int(width)
        self.split = split

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range [0, {len(self)})")
        p = self.pairs.pair(i)
        return _item(i, p["source_image"], p["target_image"], p["source_pose"], p["target_pose"],
                     p["target_mask"])


def _find_one(root: Path, pattern: str, what: str) -> Path:
    hits = sorted(root.glob(pattern))
    if not hits:
        raise FileNotFoundError(f"no {what} matching {pattern!r} in {root}")
    if len(hits) > 1:
        raise ValueError(f"several {what} files match {pattern!r} in {root}: {[h.name for h in hits]}; "
                         "pass the file explicitly")
    return hits[0]


class PairFolderDataset(Dataset):
    """Pairs of a PATN-layout dataset (DeepFashion / Market-1501) as tensors.

    Args:
        root: dataset folder (see the module docstring).
        split: "train" or "test": images from ``root/<split>/``, keypoints from the one file
            matching ``*-annotation-<split>.csv``, pairs from ``*-pairs-<split>.csv``.
        height, width: model size; images (and keypoints) are letterboxed into it.
        images_dir, annotation, pairs: explicit paths overriding the defaults above.

    Keypoints in the annotation CSV are (y, x) pixels of the stored image; they are swapped to
    (x, y) by :func:`training.data.poses.read_annotation_csv` and mapped into the model frame.
    Malformed CSV rows raise ValueError naming the file and line. Pairs whose images have no
    annotation row or no file are dropped with a warning (counted in ``self.dropped``); none left
    raises ValueError.
    """

    def __init__(self, root: str | os.PathLike[str], split: str, height: int, width: int, *,
                 images_dir: str | os.PathLike[str] | None = None,
                 annotation: str | os.PathLike[str] | None = None,
                 pairs: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {self.root}")
        self.split = split
        self.height, self.width = int(height), int(width)
        self.images_dir = Path(images_dir) if images_dir is not None else self.root / split
        if not self.images_dir.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.images_dir}")
        ann = Path(annotation) if annotation is not None else _find_one(
            self.root, f"*-annotation-{split}.csv", "annotation CSV")
        prs = Path(pairs) if pairs is not None else _find_one(self.root, f"*-pairs-{split}.csv", "pairs CSV")
        names, keypoints = P.read_annotation_csv(ann)
        self.keypoints: dict[str, np.ndarray] = dict(zip(names, keypoints))  # (x, y) image pixels
        files = {f.name for f in self.images_dir.iterdir()}
        all_pairs = P.read_pairs_csv(prs)
        self.pairs: list[tuple[str, str]] = []
        no_kp = no_file = 0
        for a, b in all_pairs:
            if a not in self.keypoints or b not in self.keypoints:
                no_kp += 1
            elif a not in files or b not in files:
                no_file += 1
            else:
                self.pairs.append((a, b))
        self.dropped = no_kp + no_file
        if self.dropped:
            warnings.warn(f"{prs}: dropped {no_kp} pairs without annotation and {no_file} without an "
                          f"image file in {self.images_dir}; {len(self.pairs)} remain", stacklevel=2)
        if not self.pairs:
            raise ValueError(f"{prs}: no usable pairs (annotation {ann}, images {self.images_dir})")

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        image, box = letterbox_image(load_image(self.images_dir / name), self.height, self.width)
        return image, box.to_model(self.keypoints[name])

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range [0, {len(self)})")
        a, b = self.pairs[i]
        src, src_kp = self._load(a)
        tgt, tgt_kp = self._load(b)
        return _item(i, src, tgt, src_kp, tgt_kp, body_mask(tgt_kp, self.height, self.width))


def parse_data_spec(spec: str) -> tuple[str, Path | None]:
    """'synthetic' | 'deepfashion:PATH' | 'market:PATH' | 'folder:PATH' -> (kind, path or None)."""
    kind, sep, path = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in DATA_KINDS:
        raise ValueError(f"--data must be one of synthetic, deepfashion:PATH, market:PATH, folder:PATH; got {spec!r}")
    if kind == "synthetic":
        if sep:
            raise ValueError(f"--data synthetic takes no path, got {spec!r}")
        return kind, None
    if not path:
        raise ValueError(f"--data {kind}:PATH needs the dataset folder, got {spec!r}")
    return kind, Path(path).expanduser()


def build_dataset(spec: str, split: str, height: int, width: int, *, seed: int = 0,
                  length: int = 100_000, background: str = "mixed",
                  poses_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """The dataset named by a ``--data`` spec.

    split: "train" or "eval"; for real datasets "eval" reads the ``test`` files (the papers'
    test pairs, whose identities are disjoint from training). ``seed``, ``length``,
    ``background`` and ``poses_dir`` apply to the synthetic source only.
    """
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    kind, path = parse_data_spec(spec)
    if kind == "synthetic" or path is None:
        return SyntheticPairDataset(height, width, split, seed=seed, length=length, background=background,
                                    poses_dir=poses_dir)
    return PairFolderDataset(path, "train" if split == "train" else "test", height, width)


def describe(dataset: Any) -> str:
    """One line naming a dataset built by :func:`build_dataset`."""
    if isinstance(dataset, SyntheticPairDataset):
        return f"synthetic {dataset.split} ({dataset.height}x{dataset.width}, {len(dataset)} pairs)"
    if isinstance(dataset, PairFolderDataset):
        return f"{dataset.root} {dataset.split} ({len(dataset)} pairs)"
    return type(dataset).__name__
