"""Pairs: :class:`SyntheticPairs`, the endless, deterministic source of same-person pose pairs."""

from __future__ import annotations

import os
from typing import Any, Sequence

import cv2
import numpy as np

from .. import poses as P
from ..masks import body_mask
from .backgrounds import _cluttered_background, _cluttered_scene, _plain_background
from .constants import SS
from .identity import Identity, sample_identity
from .rendering import _render_on, sample_light


_SPLIT_CODE = {"train": 0, "eval": 1}


def identity_seed(seed: int, index: int, split: str) -> int:
    """Seed of the identity of pair ``index``: even for 'train', odd for 'eval' (disjoint spaces)."""
    k = int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x1D, int(index)]).generate_state(1, np.uint64)[0])
    return 2 * (k >> 2) + _SPLIT_CODE[split]


class SyntheticPairs:
    """Deterministic, indexable source of pose-transfer training pairs.

    ``pairs[i]`` / ``pairs.pair(i)`` returns a dict:
        source_image, target_image: uint8 ``[H, W, 3]`` **RGB**, one identity in two poses;
        source_pose, target_pose: float32 ``[18, 2]`` **(x, y)** pixels, missing / outside = -1;
        target_mask: uint8 ``[H, W]`` {0, 1}, :func:`masks.body_mask` of ``target_pose``;
        source_silhouette, target_silhouette: uint8 ``[H, W]`` {0, 1} true body coverage;
        source_parsing, target_parsing: uint8 ``[H, W]`` 8-class parsing maps;
        identity_seed: int; source_name, target_name: names of the real annotations used.

    Determinism: the result depends only on (seed, split, i) and the pose bank contents.
    Splits: 'eval' uses identity seeds disjoint from 'train' (odd vs even, see
    :func:`identity_seed`) and poses of held-out subjects (:meth:`PoseBank.split`).

    Args:
        height, width: output size (e.g. 128 x 88, 256 x 176).
        split: 'train' or 'eval'.
        seed: base seed.
        background: 'plain' (studio), 'cluttered' (street / indoor, flat or textured surfaces),
            or 'mixed' (per pair, 50 / 50). Either way one scene and one light per pair (static
            camera): source and target differ only where a person is.
        pose_bank: a :class:`poses.PoseBank` (default :func:`poses.load_pose_bank` of ``poses_dir``).
        length: nominal ``len()`` (the source is unbounded; any non-negative index works).
        same_subject_prob: chance that source and target poses come from one real person
            (two photos of the same subject), else two unrelated poses.
        scale_range, shift: random placement: scale of the pose relative to its source frame,
            and shift as a fraction of (W, H).
        flip_prob: chance of mirroring each pose (left / right joint channels swapped).
        heldout_fraction: share of real subjects whose poses are kept for 'eval'.
        datasets: only poses of these datasets ('fasion', 'market'); default all.
        clutter_bank: number of distinct cluttered scenes, generated on first use from
            (seed, split, k) and cached per instance (H*W*4 bytes each: 11 MB for 256 scenes
            at 128 x 88, 46 MB at 256 x 176), then mirrored at random; 0 draws a fresh scene
            for every image (about 0.3 ms more per image, same distribution).
    """

    def __init__(
        self,
        height: int = 128,
        width: int = 88,
        split: str = "train",
        seed: int = 0,
        background: str = "mixed",
        *,
        pose_bank: P.PoseBank | None = None,
        poses_dir: str | os.PathLike[str] | None = None,
        length: int = 100_000,
        same_subject_prob: float = 0.5,
        scale_range: tuple[float, float] = (0.8, 1.1),
        shift: float = 0.06,
        flip_prob: float = 0.5,
        heldout_fraction: float = 0.1,
        clutter_bank: int = 256,
        datasets: Sequence[str] | None = None,
    ):
        if split not in _SPLIT_CODE:
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        if background not in ("plain", "cluttered", "mixed"):
            raise ValueError(f"background must be 'plain', 'cluttered' or 'mixed', got {background!r}")
        self.height, self.width = int(height), int(width)
        self.split, self.seed, self.background = split, int(seed), background
        self.length = int(length)
        self.same_subject_prob = float(same_subject_prob)
        self.scale_range, self.shift, self.flip_prob = scale_range, float(shift), float(flip_prob)
        bank = pose_bank if pose_bank is not None else P.load_pose_bank(poses_dir)
        if datasets is not None:
            bank = bank.subset([i for i, d in enumerate(bank.datasets) if d in set(datasets)])
        self.poses = bank.split(split, heldout_fraction)
        if len(self.poses) == 0:
            raise ValueError(f"no poses in the {split!r} split")
        groups: dict[str, list[int]] = {}
        for i, subj in enumerate(self.poses.subjects):
            groups.setdefault(subj, []).append(i)
        self._multi = [np.asarray(v) for v in groups.values() if len(v) > 1]
        self.clutter_bank = int(clutter_bank)
        self._bank: dict[int, np.ndarray] = {}

    def _cluttered(self, rng: np.random.Generator) -> np.ndarray:
        """A cluttered canvas uint8 [SS*H, SS*W, 4] (see ``clutter_bank``)."""
        H, W = self.height, self.width
        if self.clutter_bank <= 0:
            return _cluttered_background(rng, H, W)
        k = int(rng.integers(self.clutter_bank))
        scene = self._bank.get(k)
        if scene is None:  # depends only on (seed, split, k): cache state never changes a pair
            scene_rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0xB6, _SPLIT_CODE[self.split], k])
            scene = self._bank[k] = _cluttered_scene(scene_rng, H, W)
        if rng.random() < 0.5:
            scene = cv2.flip(scene, 1)
        return cv2.resize(scene, (W * SS, H * SS), interpolation=cv2.INTER_NEAREST_EXACT)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.pair(i)

    def identity(self, i: int) -> Identity:
        """The identity of pair ``i``."""
        return sample_identity(identity_seed(self.seed, i, self.split))

    def _place(self, rng: np.random.Generator, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Pose j with random scale / shift / flip: ((x, y) pixels float32 [18, 2], present [18])."""
        kpn = self.poses.keypoints[j]
        if rng.random() < self.flip_prob:
            kpn = P.flip_normalised(kpn)
        present = np.isfinite(kpn).all(-1)
        H, W = self.height, self.width
        for _ in range(4):  # keep the neck in the frame: a pair needs a visible person
            scale = rng.uniform(*self.scale_range)
            dx, dy = rng.uniform(-self.shift, self.shift) * W, rng.uniform(-self.shift, self.shift) * H
            kp = P.denormalise(kpn, (H, W), scale, (dx, dy))
            n = kp[P.NECK]
            if 0 <= n[0] < W and 0 <= n[1] < H:
                break
        return kp, present

    def _pose_pair(self, rng: np.random.Generator) -> tuple[int, int]:
        if self._multi and rng.random() < self.same_subject_prob:
            g = self._multi[int(rng.integers(len(self._multi)))]
            a = int(rng.integers(len(g)))
            b = (a + 1 + int(rng.integers(len(g) - 1))) % len(g)  # any other photo of the subject
            return int(g[a]), int(g[b])
        n = len(self.poses)
        return int(rng.integers(n)), int(rng.integers(n))

    def pair(self, i: int) -> dict[str, Any]:
        """Pair ``i`` (see the class docstring for the keys, shapes, dtypes)."""
        if i < 0:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x5A, _SPLIT_CODE[self.split], int(i)])
        ident_seed = identity_seed(self.seed, i, self.split)
        ident = sample_identity(ident_seed)
        src_j, tgt_j = self._pose_pair(rng)
        bg = self.background
        if bg == "mixed":
            bg = "plain" if rng.random() < 0.5 else "cluttered"
        H, W = self.height, self.width
        out: dict[str, Any] = {}
        # Static camera: one scene (studio or street, same crop and mirroring) and one light for
        # both photos; only the person moves. The target's background is then the source's
        # wherever the person does not cover it, which is what a warp-guided model must keep.
        scene = _plain_background(rng, H, W) if bg == "plain" else self._cluttered(rng)
        light = sample_light(rng)
        for role, j in (("source", src_j), ("target", tgt_j)):
            kp, present = self._place(rng, j)
            canvas = scene.copy() if role == "source" else scene
            r = _render_on(canvas, ident, kp.astype(np.float64), present, H, W, light)
            out[f"{role}_image"] = r.image
            out[f"{role}_pose"] = r.keypoints
            out[f"{role}_silhouette"] = r.silhouette
            out[f"{role}_parsing"] = r.parsing
            out[f"{role}_name"] = self.poses.names[j]
        out["target_mask"] = body_mask(out["target_pose"], H, W)
        out["identity_seed"] = ident_seed
        return out
