"""Fashion-completion samples from the synthetic renderer: one person, one garment erased.

``CompletionSamples[i]`` renders a synthetic identity (training.data.synthetic) in a real
pose, picks a garment it wears and erases the garment's enlarged bounding box (the thesis'
sampler). Every network tensor is built by the same functions the runtime uses
(pyposert.completion), so training and ``Engine.complete`` feed the network identically.

Sample (numpy; the trainer batches with the default collate):
    image: uint8 [H, W, 3] RGB ground truth;  parsing: uint8 [H, W] 8-class map
    keypoints: float32 [18, 2] (x, y) model pixels, missing -1
    garment: int class (4 hat, 5 top, 6 bottom, 7 shoes); box: int32 [4] = (y0, x0, y1, x1)
    masked_image: float32 [3, H, W] RGB in [-1, 1], 0 in the box
    masked_parsing: float32 [8, H, W] one-hot, 0 in the box;  parsing_onehot: float32 [8, H, W]
    erase_mask: float32 [1, H, W] 1 in the box
    garment_mask: float32 [1, H, W] the erased garment's pixels (Es input x_s)
    garment_crop: float32 [3, S, S] the erased garment's crop (Ea input x_a)
    garment_crops: float32 [12, S, S] the other garments' crops (Esc / Eac input x_c)
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset

from pyposert import completion as C
from training.data import poses as P
from training.data import synthetic as R

__all__ = ["CompletionSamples", "GARMENT_WEIGHTS", "MIN_GARMENT_PIXELS", "coordinate_outfit", "build_sample"]

# How often each garment is the one erased (when the person wears it): tops and bottoms are
# the thesis' main case; hats and shoes are small and rarer.
GARMENT_WEIGHTS = {"hat": 0.15, "top": 0.4, "bottom": 0.35, "shoes": 0.1}
MIN_GARMENT_PIXELS = 12  # at 128 x 88; scaled with the frame area


class CompletionSamples(Dataset):
    """Deterministic, indexable completion samples (see the module docstring for the keys).

    Args:
        height, width: model frame (e.g. 128 x 88, 256 x 256).
        crop_size: S of the garment crops.
        split: 'train' or 'eval' (held-out identities and poses, as SyntheticPairs).
        seed: base seed; background: 'plain' | 'cluttered' | 'mixed'.
        margin, pad: erase-box enlargement (pyposert.completion.garment_box).
        garment: erase only this garment (name) when the person wears it; None = sampled.
        length: nominal len(); poses_dir / pose_bank: the real pose bank.
        coordinate: share of samples whose erased garment is recoloured to go with the
            largest other garment worn (:func:`coordinate_outfit`). The renderer draws every
            garment's colour independently, so without this there is nothing for the
            compatibility priors to learn; 0 (the default) leaves the renderer's outfits as
            they are.
    """

    def __init__(self, height: int = 128, width: int = 88, crop_size: int = 64, split: str = "train", seed: int = 0,
                 background: str = "plain", *, margin: float = C.DEFAULT_MARGIN, pad: int = C.DEFAULT_PAD,
                 garment: str | None = None, length: int = 100_000, poses_dir: str | os.PathLike[str] | None = None,
                 pose_bank: P.PoseBank | None = None, datasets: Sequence[str] | None = None, coordinate: float = 0.0):
        self.people = R.SyntheticPairs(height, width, split=split, seed=seed, background=background,
                                       pose_bank=pose_bank, poses_dir=poses_dir, length=length, datasets=datasets)
        self.height, self.width, self.crop_size = int(height), int(width), int(crop_size)
        self.split, self.seed, self.length = split, int(seed), int(length)
        self.margin, self.pad = float(margin), int(pad)
        self.only = None if garment is None else C.garment_class(garment)
        self.min_pixels = max(int(MIN_GARMENT_PIXELS * height * width / (128 * 88)), 1)
        if not 0.0 <= coordinate <= 1.0:
            raise ValueError(f"coordinate must be a share in [0, 1], got {coordinate!r}")
        self.coordinate = float(coordinate)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.sample(i)

    def render(self, i: int, attempt: int = 0) -> tuple[R.Rendering, np.random.Generator]:
        """Person i (attempt k re-draws the pose): the Rendering and the sample's generator."""
        split_code = 0 if self.split == "train" else 1
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0xC0, split_code, int(i), attempt])
        ident = R.sample_identity(R.identity_seed(self.seed, i, self.split))
        ppl = self.people
        kp, present = ppl._place(rng, int(rng.integers(len(ppl.poses))))
        bg = self.people.background
        if bg == "mixed":
            bg = "plain" if rng.random() < 0.5 else "cluttered"
        canvas = R._plain_background(rng, self.height, self.width) if bg == "plain" else ppl._cluttered(rng)
        return R._render_on(canvas, ident, kp.astype(np.float64), present, self.height, self.width), rng

    def _pick(self, parsing: np.ndarray, rng: np.random.Generator) -> int | None:
        counts = np.bincount(parsing.ravel(), minlength=C.NUM_CLASSES)
        worn = [(g, c) for g, c in zip(C.GARMENTS, C.GARMENT_CLASSES) if counts[c] >= self.min_pixels]
        if self.only is not None:
            return self.only if any(c == self.only for _, c in worn) else None
        if not worn:
            return None
        w = np.array([GARMENT_WEIGHTS[g] for g, _ in worn])
        return int(worn[int(rng.choice(len(worn), p=w / w.sum()))][1])

    def sample(self, i: int) -> dict[str, Any]:
        """Sample ``i`` (keys, shapes, dtypes: module docstring)."""
        if i < 0:
            raise IndexError(i)
        for attempt in range(16):  # a pose that hides every garment (or the asked one) is re-drawn
            r, rng = self.render(i, attempt)
            garment = self._pick(r.parsing, rng)
            if garment is not None:
                break
        else:
            raise RuntimeError(f"sample {i}: no garment visible in 16 poses")
        image = r.image
        if self.coordinate > 0.0:  # its own generator: the other draws stay those of coordinate = 0
            crng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0xC7, 0 if self.split == "train" else 1, int(i)])
            if crng.random() < self.coordinate:
                image = coordinate_outfit(image, r.parsing, garment, crng, self.min_pixels)
        return build_sample(image, r.parsing, r.keypoints, garment, self.crop_size, self.margin, self.pad)


def coordinate_outfit(image: np.ndarray, parsing: np.ndarray, garment: int, rng: np.random.Generator,
                      min_pixels: int = 1) -> np.ndarray:
    """``image`` (uint8 [H, W, 3] RGB) with the pixels of class ``garment`` moved in CIELAB so
    that their mean is the mean of the largest other garment worn (``parsing``), lightness
    shifted by up to +-35 (of 255) and the colour by a little noise: tone-on-tone or matching
    outfits. Shading and pattern (the deviations from the mean) are kept. The image is
    returned unchanged when no other garment has ``min_pixels`` pixels."""
    import cv2

    counts = {c: int((parsing == c).sum()) for c in C.GARMENT_CLASSES if c != garment}
    ref = max(counts, key=lambda c: counts[c])
    if counts[ref] < min_pixels:
        return image
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    hit = parsing == garment
    target = lab[parsing == ref].mean(0) + np.array([rng.uniform(-35, 35), rng.normal(0, 5), rng.normal(0, 5)],
                                                    np.float32)
    lab[hit] += target - lab[hit].mean(0)
    moved = cv2.cvtColor(np.clip(lab + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
    out = image.copy()
    out[hit] = moved[hit]
    return out


def build_sample(image: np.ndarray, parsing: np.ndarray, keypoints: np.ndarray, garment: int, crop_size: int,
                 margin: float = C.DEFAULT_MARGIN, pad: int = C.DEFAULT_PAD) -> dict[str, Any]:
    """The network tensors of one photo at model size (uint8 [H, W, 3] RGB, uint8 [H, W]
    parsing, (18, 2) (x, y) keypoints) with ``garment`` (class) erased."""
    h, w = parsing.shape
    box = C.garment_box(parsing, garment, margin, pad)
    erase = C.box_mask(box, h, w).astype(np.float32)[None]
    image_n = image.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0
    onehot = C.one_hot(parsing)
    full_crops = C.garment_crops(image, parsing, crop_size)
    g = C.GARMENT_CLASSES.index(garment)
    crops = full_crops.copy()
    crops[3 * g:3 * g + 3] = 0.0
    return {
        "image": image, "parsing": parsing, "keypoints": keypoints.astype(np.float32),
        "garment": int(garment), "box": np.array([box.y0, box.x0, box.y1, box.x1], np.int32),
        "masked_image": image_n * (1.0 - erase), "masked_parsing": onehot * (1.0 - erase), "parsing_onehot": onehot,
        "erase_mask": erase, "garment_mask": (parsing == garment).astype(np.float32)[None],
        "garment_crop": np.ascontiguousarray(full_crops[3 * g:3 * g + 3]), "garment_crops": crops,
    }
