"""Plain float64 numpy references of pyposert's kernels: slow, obvious, and the ground truth
the tests compare the CPU and CUDA kernels against."""

from __future__ import annotations

import numpy as np


def heatmaps_ref(keypoints: np.ndarray, height: int, width: int, mode: str = "gaussian", sigma: float = 6.0,
                 radius: float = 4.0, scale=(1.0, 1.0), offset=(0.0, 0.0)) -> np.ndarray:
    """keypoints [B, K, 2] (x, y) -> [B, K, H, W] float64; missing (negative/NaN/inf) -> zeros."""
    kp = np.asarray(keypoints, dtype=np.float64)
    batch, joints = kp.shape[:2]
    out = np.zeros((batch, joints, height, width))
    py, px = np.mgrid[0:height, 0:width].astype(np.float64)
    for b in range(batch):
        for k in range(joints):
            x, y = kp[b, k]
            if not (np.isfinite(x) and np.isfinite(y)) or x < 0 or y < 0:
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                kx, ky = x * scale[0] + offset[0], y * scale[1] + offset[1]
                d2 = (px - kx) ** 2 + (py - ky) ** 2
            if mode == "gaussian":
                out[b, k] = np.exp(-d2 / (2.0 * sigma * sigma))
            else:
                out[b, k] = d2 <= radius * radius
    return out


def attention_ref(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """softmax over keys of scale * q k^T, times v; float64, materialised."""
    s = np.einsum("bqd,bkd->bqk", q.astype(np.float64), k.astype(np.float64)) * scale
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return p @ v.astype(np.float64)


def resample_matrix(start: int, in_size: int, out_size: int, total: int) -> np.ndarray:
    """[out_size, total] weights of the triangle filter of imageproc.h (support widens when
    downscaling; taps outside [start, start + in_size) dropped, rows renormalised)."""
    ratio = in_size / out_size
    support = max(1.0, ratio)
    m = np.zeros((out_size, total))
    idx = np.arange(start, start + in_size)
    for o in range(out_size):
        center = start + (o + 0.5) * ratio
        w = np.clip(1.0 - np.abs(idx + 0.5 - center) / support, 0.0, None)
        m[o, idx] = w / w.sum()
    return m


def to_model_input_ref(image: np.ndarray, box, bgr: bool = True, pad_value: float = 1.0) -> np.ndarray:
    """uint8 [h, w, 3] -> [3, H, W] float64 RGB in [-1, 1] with the letterbox ``box``."""
    rgb = image[..., ::-1] if bgr else image
    h, w = image.shape[:2]
    wy = resample_matrix(0, h, box.box_height, h)
    wx = resample_matrix(0, w, box.box_width, w)
    out = np.full((3, box.height, box.width), pad_value, dtype=np.float64)
    for c in range(3):
        res = wy @ rgb[..., c].astype(np.float64) @ wx.T
        out[c, box.box_y:box.box_y + box.box_height, box.box_x:box.box_x + box.box_width] = res / 127.5 - 1.0
    return out


def quantize_ref(v: np.ndarray) -> np.ndarray:
    t = (np.asarray(v, dtype=np.float64) + 1.0) * 127.5 + 0.5
    t = np.where(np.isnan(t), 0.0, t)
    return np.floor(np.clip(t, 0.0, 255.0)).astype(np.uint8)


def from_model_output_ref(output: np.ndarray, box, unletterbox: bool = True, bgr: bool = True) -> np.ndarray:
    """[3, H, W] in [-1, 1] -> uint8 HWC; optionally the content box resampled to the source size."""
    x = np.asarray(output, dtype=np.float64)
    if unletterbox:
        wy = resample_matrix(box.box_y, box.box_height, box.src_height, box.height)
        wx = resample_matrix(box.box_x, box.box_width, box.src_width, box.width)
        x = np.stack([wy @ x[c] @ wx.T for c in range(3)])
    img = quantize_ref(np.moveaxis(x, 0, -1))
    return img[..., ::-1].copy() if bgr else img
