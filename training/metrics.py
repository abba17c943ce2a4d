"""Image metrics of the pose-transfer papers (PG2 / PATN / PoNA evaluation scripts), in numpy.

Every function takes one generated image and one reference image as numpy uint8 ``[H, W, 3]``
RGB (or ``[H, W]`` grey) arrays of one size, and returns a Python float. Averages over a test
set are plain means of the per-image values (:class:`MetricAccumulator`), as in the papers.

- :func:`ssim`: ``skimage.metrics.structural_similarity(reference, generated,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1,
  data_range=generated.max() - generated.min())`` -- the call of PATN/PoNA's
  ``getMetrics_*.py`` -- reimplemented: float64, Gaussian window sigma 1.5 truncated at 3.5 sigma
  (11 taps, skimage >= 0.16; ``truncate=4.0`` gives the 13 taps of the older skimage the papers
  ran), scipy 'reflect' borders, K1 = 0.01, K2 = 0.03, population (co)variances, the 5-pixel
  border strip dropped, the mean over pixels and then over channels.
- :func:`mask_ssim`: the same on both images multiplied by the target's body mask (uint8 x
  {0, 1}), as ``create_masked_image`` in PATN's Market-1501 script.
- :func:`psnr`: RGB PSNR with peak 255; :func:`psnr_ycbcr`: PoNA's ``tool/Psnr.py`` (per
  channel Y, Cb, Cr of the JPEG full-range conversion, peak 255^2).
- :func:`l1_score`: mean |a - b| with both images mapped to [-1, 1] (``2 * (u / 255 - 0.5)``).
- :func:`pad_white`: PATN pads DeepFashion's 176-pixel-wide images with 40 white columns on
  each side (to 256 x 256) before its SSIM; apply it to both images to reproduce that protocol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "SSIM_SIGMA",
    "SSIM_TRUNCATE",
    "gaussian_window",
    "ssim",
    "mask_ssim",
    "psnr",
    "psnr_ycbcr",
    "rgb_to_ycbcr",
    "l1_score",
    "pad_white",
    "MetricAccumulator",
]

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5 -> the 11-tap window of Wang et al.
SSIM_WIN_SIZE = 11  # skimage's window for gaussian_weights; sets the cropped border (5 px)
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _as_image(name: str, image: np.ndarray) -> np.ndarray:
    """Validate a uint8 [H, W] or [H, W, C] image; return it as float64 [H, W, C]."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (0..255), got {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"{name} must be [H, W] or [H, W, C] uint8, got shape {list(a.shape)}")
    return a.astype(np.float64)


def _check_pair(generated: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = _as_image("generated", generated)
    r = _as_image("reference", reference)
    if g.shape != r.shape:
        raise ValueError(f"generated {list(g.shape)} and reference {list(r.shape)} must have one shape")
    return g, r


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """scipy.ndimage's 1-D Gaussian: radius int(truncate * sigma + 0.5), weights summing to 1.

    Returns float64 [2 * radius + 1] (11 taps for sigma 1.5, truncate 3.5).
    """
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _gaussian_filter(a: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable filter of [H, W, C] float64 over H and W with scipy's 'reflect' border.

    scipy 'reflect' repeats the edge sample (d c b a | a b c d), which is numpy's 'symmetric'.
    """
    r = (window.size - 1) // 2
    h, w = a.shape[:2]
    p = np.pad(a, ((r, r), (0, 0), (0, 0)), mode="symmetric")
    rows = sum(window[k] * p[k:k + h] for k in range(window.size))
    p = np.pad(rows, ((0, 0), (r, r), (0, 0)), mode="symmetric")
    return sum(window[k] * p[:, k:k + w] for k in range(window.size))


def ssim(
    generated: np.ndarray,
    reference: np.ndarray,
    *,
    data_range: float | None = None,
    sigma: float = SSIM_SIGMA,
    truncate: float = SSIM_TRUNCATE,
) -> float:
    """Mean structural similarity of two uint8 images, as the pose-transfer papers compute it.

    Args:
        generated: uint8 [H, W, 3] RGB (or [H, W]) -- the model's output.
        reference: uint8, same shape -- the ground truth.
        data_range: dynamic range R in C1 = (0.01 R)^2, C2 = (0.03 R)^2. Default, as PATN /
            PoNA: ``generated.max() - generated.min()`` over all channels. When the generated
            image is constant that range is 0 and the reference code returns NaN; here R falls
            back to 255 (the uint8 range) so an untrained, flat output still gets a score.
        sigma, truncate: Gaussian window (defaults: 1.5 and 3.5 -> 11 taps).

    Returns:
        SSIM in [-1, 1] (1 for identical images): per channel, the mean of the SSIM map without
        its 5-pixel border strip, then the mean over channels.
        The value is symmetric in the two images for a fixed ``data_range``.
    Raises:
        ValueError: dtype/shape mismatch, or an image smaller than the window.
    """
    g, r = _check_pair(generated, reference)
    window = gaussian_window(sigma, truncate)
    # skimage crops (win_size - 1) // 2 = 5 pixels (win_size 11), whatever the filter's taps.
    pad = (SSIM_WIN_SIZE - 1) // 2
    h, w = g.shape[:2]
    if h < SSIM_WIN_SIZE or w < SSIM_WIN_SIZE:
        raise ValueError(f"images must be at least {SSIM_WIN_SIZE} x {SSIM_WIN_SIZE} for SSIM, got {h} x {w}")
    if data_range is None:
        data_range = float(np.asarray(generated).max()) - float(np.asarray(generated).min())
        if data_range == 0.0:
            data_range = 255.0
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_g = _gaussian_filter(g, window)
    mu_r = _gaussian_filter(r, window)
    # Population (co)variances, as use_sample_covariance=False (Wang et al. 2004).
    var_g = _gaussian_filter(g * g, window) - mu_g * mu_g
    var_r = _gaussian_filter(r * r, window) - mu_r * mu_r
    cov = _gaussian_filter(g * r, window) - mu_g * mu_r
    num = (2.0 * mu_g * mu_r + c1) * (2.0 * cov + c2)
    den = (mu_g * mu_g + mu_r * mu_r + c1) * (var_g + var_r + c2)
    smap = num / den
    # skimage drops the strip the window overhangs (edge effects), then averages per channel.
    per_channel = smap[pad:h - pad, pad:w - pad].mean(axis=(0, 1))
    return float(per_channel.mean())


def mask_ssim(generated: np.ndarray, reference: np.ndarray, mask: np.ndarray, **kwargs: float) -> float:
    """SSIM of ``generated * mask`` and ``reference * mask`` (PG2 / PATN mask-SSIM).

    mask: uint8/bool [H, W] with values {0, 1} -- the body mask of the TARGET pose
    (:func:`training.data.masks.body_mask`). Both images are multiplied in uint8, so the
    background becomes black, and :func:`ssim` runs on the products (its data_range comes from
    the masked generated image, as in the reference script). kwargs go to :func:`ssim`.
    """
    m = np.asarray(mask)
    g = np.asarray(generated)
    r = np.asarray(reference)
    if m.shape != g.shape[:2]:
        raise ValueError(f"mask must be [H, W] = {list(g.shape[:2])}, got {list(m.shape)}")
    if m.dtype != np.bool_ and (m.max(initial=0) > 1 or m.min(initial=0) < 0):
        raise ValueError("mask must hold {0, 1}")
    m8 = m.astype(np.uint8)
    if g.ndim == 3:
        m8 = m8[:, :, None]
    return ssim(g * m8, r * m8, **kwargs)


def psnr(generated: np.ndarray, reference: np.ndarray, peak: float = 255.0) -> float:
    """10 log10(peak^2 / MSE) over all pixels and channels (uint8 images, float64 math).

    Returns +inf for identical images.
    """
    g, r = _check_pair(generated, reference)
    mse = float(np.mean((g - r) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


def rgb_to_ycbcr(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> uint8 [H, W, 3] (Y, Cb, Cr), JPEG full range (ITU-R BT.601).

    Computed the way PIL's ``convert('YCbCr')`` (which PoNA's script uses) does, in fixed point
    with 6 fraction bits: per-term tables c * v * 64 summed and shifted right by 6, with
    Y = 0.299 R + 0.587 G + 0.114 B (tables rounded: bit-identical to PIL),
    Cb = 128 - 0.168736 R - 0.331264 G + 0.5 B, Cr = 128 + 0.5 R - 0.418688 G - 0.081312 B
    (tables truncated: equal to PIL on ~98 % of random colours, one level off elsewhere).
    """
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3] RGB, got {a.dtype} {list(a.shape)}")
    r, g, b = (a[..., c].astype(np.int64) for c in range(3))
    out = np.empty(a.shape, np.uint8)
    for k, (tr, tg, tb) in enumerate(_YCC_TABLES):
        v = ((tr[r] + tg[g] + tb[b]) >> 6) + (0 if k == 0 else 128)
        out[..., k] = np.clip(v, 0, 255)
    return out


def _tables(coefs: tuple[float, float, float], rounding: Any) -> tuple[np.ndarray, ...]:
    return tuple(rounding(c * np.arange(256) * 64.0).astype(np.int64) for c in coefs)


# (R, G, B) fixed-point tables of Y, Cb, Cr (see rgb_to_ycbcr).
_YCC_TABLES = (
    _tables((0.299, 0.587, 0.114), np.rint),
    _tables((-0.168736, -0.331264, 0.5), np.trunc),
    _tables((0.5, -0.418688, -0.081312), np.trunc),
)


def psnr_ycbcr(generated: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """PoNA's PSNR: per channel of YCbCr, 10 log10(255^2 / MSE_c). Returns (Y, Cb, Cr) in dB.

    generated, reference: uint8 [H, W, 3] RGB. (PoNA's script prints 0 for a channel with
    MSE 0; this returns +inf, the actual limit.)
    """
    _check_pair(generated, reference)
    g = rgb_to_ycbcr(generated)
    r = rgb_to_ycbcr(reference)
    return tuple(psnr(g[..., c], r[..., c]) for c in range(3))  # type: ignore[return-value]


def l1_score(generated: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference in [-1, 1] units: mean |2 (g/255 - 0.5) - 2 (r/255 - 0.5)|.

    uint8 images of one shape; result in [0, 2] (PATN's ``l1_score``).
    """
    g, r = _check_pair(generated, reference)
    return float(np.mean(np.abs(2.0 * (g / 255.0 - 0.5) - 2.0 * (r / 255.0 - 0.5))))


def pad_white(image: np.ndarray, left: int = 40, right: int = 40) -> np.ndarray:
    """Add white (255) columns left and right: PATN's DeepFashion 176 -> 256 SSIM protocol.

    image: uint8 [H, W(, C)]; returns uint8 [H, left + W + right(, C)].
    """
    a = np.asarray(image)
    widths = [(0, 0), (int(left), int(right))] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, widths, mode="constant", constant_values=255)


@dataclass
class MetricAccumulator:
    """Per-image metrics, averaged over images (the papers' protocol).

    ``add(generated, reference, mask)`` with uint8 [H, W, 3] RGB images and the target's uint8
    [H, W] body mask; ``summary()`` -> {"ssim", "mask_ssim", "psnr", "psnr_y", "l1", "count"}.
    psnr is RGB PSNR, psnr_y the Y channel of :func:`psnr_ycbcr`; infinite per-image PSNRs (an
    exact copy) are left out of the PSNR means and counted in ``"psnr_inf"``.
    ``pad`` > 0 pads both images with that many white columns on each side before the SSIMs.
    """

    pad: int = 0
    values: dict[str, list[float]] = field(default_factory=lambda: {
        "ssim": [], "mask_ssim": [], "psnr": [], "psnr_y": [], "l1": []})
    psnr_inf: int = 0

    def add(self, generated: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> None:
        g, r, m = generated, reference, mask
        if self.pad:
            g, r = pad_white(g, self.pad, self.pad), pad_white(r, self.pad, self.pad)
            m = np.pad(np.asarray(m), ((0, 0), (self.pad, self.pad)))
        self.values["ssim"].append(ssim(g, r))
        self.values["mask_ssim"].append(mask_ssim(g, r, m))
        self.values["l1"].append(l1_score(generated, reference))
        p, py = psnr(generated, reference), psnr_ycbcr(generated, reference)[0]
        if math.isinf(p) or math.isinf(py):
            self.psnr_inf += 1
        else:
            self.values["psnr"].append(p)
            self.values["psnr_y"].append(py)

    def __len__(self) -> int:
        return len(self.values["ssim"])

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {k: (float(np.mean(v)) if v else math.nan) for k, v in self.values.items()}
        out["count"] = float(len(self))
        out["psnr_inf"] = float(self.psnr_inf)
        return out
