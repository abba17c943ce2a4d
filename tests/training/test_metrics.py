"""Metrics: SSIM / mask-SSIM as the papers compute them (checked against values recorded from
scikit-image 0.26 and PIL 12, which pyposert does not depend on), PSNR, L1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import (
    MetricAccumulator,
    gaussian_window,
    l1_score,
    mask_ssim,
    pad_white,
    psnr,
    psnr_ycbcr,
    rgb_to_ycbcr,
    ssim,
)


def formula_images() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic uint8 [40, 28, 3] images (no RNG, so recorded values stay valid) + a mask."""
    y, x = np.mgrid[0:40, 0:28]
    c = np.arange(3)
    a = ((x[..., None] * 7 + y[..., None] * 13 + c * 50) % 256).astype(np.uint8)
    b = np.clip(a.astype(int) + ((x * y) % 31)[..., None] - 15, 0, 255).astype(np.uint8)
    gen = (a // 2 + 60).astype(np.uint8)
    mask = ((x - 14) ** 2 / 100 + (y - 20) ** 2 / 300 < 1).astype(np.uint8)
    return a, b, gen, mask


def test_gaussian_window_is_scipys_11_taps() -> None:
    w = gaussian_window()
    assert w.shape == (11,)
    assert w.sum() == pytest.approx(1.0)
    expected = np.exp(-0.5 * (np.arange(-5, 6) / 1.5) ** 2)
    np.testing.assert_allclose(w, expected / expected.sum())
    assert gaussian_window(truncate=4.0).shape == (13,)  # the older skimage's filter


def test_ssim_matches_recorded_skimage_values() -> None:
    # skimage.metrics.structural_similarity(reference, generated, gaussian_weights=True,
    # sigma=1.5, use_sample_covariance=False, channel_axis=-1,
    # data_range=generated.max() - generated.min()) -- PATN/PoNA's call -- on these images.
    a, b, gen, mask = formula_images()
    assert ssim(b, a) == pytest.approx(0.9574023211550537, abs=1e-12)
    assert ssim(gen, a) == pytest.approx(0.7765813890629837, abs=1e-12)
    # mask-SSIM: the same call on generated * mask and reference * mask.
    assert mask_ssim(gen, a, mask) == pytest.approx(0.8297334884545587, abs=1e-12)


def test_ssim_of_constant_images_is_the_luminance_term() -> None:
    # Constant images: every variance and covariance is 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    # with C1 = (0.01 * 255)^2 (the structure term is C2 / C2 = 1).
    a, b = 100.0, 140.0
    x = np.full((16, 16, 3), a, np.uint8)
    y = np.full((16, 16, 3), b, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(x, y, data_range=255) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-12)


def test_ssim_identity_symmetry_and_noise(rng: np.random.Generator) -> None:
    x = rng.integers(0, 256, (48, 36, 3), dtype=np.uint8)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    y = np.clip(x.astype(int) + rng.integers(-30, 31, x.shape), 0, 255).astype(np.uint8)
    # Symmetric for a fixed data range (the default range comes from the generated image).
    assert ssim(x, y, data_range=255) == pytest.approx(ssim(y, x, data_range=255), abs=1e-12)
    smooth = np.repeat(np.repeat(rng.integers(0, 256, (12, 9, 3)), 4, 0), 4, 1).astype(np.uint8)
    scores = []
    for sigma in (0.0, 5.0, 20.0, 60.0):
        noisy = np.clip(smooth + rng.normal(0, sigma, smooth.shape), 0, 255).astype(np.uint8)
        scores.append(ssim(noisy, smooth))
    assert scores[0] == pytest.approx(1.0)
    assert all(s1 > s2 for s1, s2 in zip(scores, scores[1:])), scores


def test_ssim_flat_generated_image_falls_back_to_full_range() -> None:
    flat = np.full((16, 16, 3), 7, np.uint8)
    other = np.full((16, 16, 3), 9, np.uint8)
    assert ssim(flat, other) == ssim(flat, other, data_range=255)
    assert math.isfinite(ssim(flat, other))


def test_ssim_grey_and_validation() -> None:
    a, b, _, _ = formula_images()
    assert ssim(a[..., 0], b[..., 0], data_range=255) == pytest.approx(
        ssim(a[..., :1], b[..., :1], data_range=255))
    with pytest.raises(ValueError, match="uint8"):
        ssim(a.astype(np.float32), b)
    with pytest.raises(ValueError, match="one shape"):
        ssim(a, b[:-1])
    with pytest.raises(ValueError, match="at least 11"):
        ssim(a[:10], b[:10])


def test_mask_ssim() -> None:
    a, b, gen, mask = formula_images()
    ones = np.ones(a.shape[:2], np.uint8)
    assert mask_ssim(gen, a, ones) == ssim(gen, a)
    assert mask_ssim(gen, a, np.zeros_like(ones)) == pytest.approx(1.0)  # both images all black
    assert mask_ssim(gen, a, mask.astype(bool)) == mask_ssim(gen, a, mask)
    with pytest.raises(ValueError, match="mask"):
        mask_ssim(gen, a, mask[:-1])
    with pytest.raises(ValueError, match="0, 1"):
        mask_ssim(gen, a, mask * 255)


def test_psnr() -> None:
    x = np.full((8, 8, 3), 100, np.uint8)
    y = np.full((8, 8, 3), 105, np.uint8)
    assert psnr(x, y) == pytest.approx(10 * math.log10(255**2 / 25))
    assert psnr(x, x) == math.inf


def test_psnr_ycbcr_matches_recorded_pil_values() -> None:
    # PoNA's tool/Psnr.py on PIL's convert('YCbCr') of these images (PIL 12): Y, Cb, Cr in dB.
    a, _, gen, _ = formula_images()
    y, cb, cr = psnr_ycbcr(gen, a)
    assert y == pytest.approx(20.176497605551525, abs=1e-9)
    assert cb == pytest.approx(20.252556811159693, abs=1e-9)
    assert cr == pytest.approx(20.321943164851106, abs=1e-9)


def test_rgb_to_ycbcr_known_colours() -> None:
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]]], np.uint8)
    ycc = rgb_to_ycbcr(px)[0].astype(int)
    assert ycc[0].tolist() == [0, 128, 128]
    assert ycc[1].tolist() == [255, 128, 128]
    assert ycc[2, 0] == 76 and ycc[3, 0] == 29  # 0.299 * 255, 0.114 * 255 (PIL's values)
    assert ycc[3, 1] == 255  # full-scale blue saturates Cb


def test_l1_score_and_pad_white() -> None:
    black = np.zeros((4, 4, 3), np.uint8)
    white = np.full((4, 4, 3), 255, np.uint8)
    assert l1_score(black, white) == pytest.approx(2.0)
    half = np.full((4, 4, 3), 51, np.uint8)
    assert l1_score(half, black) == pytest.approx(2 * 51 / 255)
    padded = pad_white(black, 3, 2)
    assert padded.shape == (4, 9, 3)
    assert (padded[:, :3] == 255).all() and (padded[:, 3:7] == 0).all() and (padded[:, 7:] == 255).all()


def test_accumulator_means_per_image() -> None:
    a, b, gen, mask = formula_images()
    acc = MetricAccumulator()
    acc.add(gen, a, mask)
    acc.add(b, a, mask)
    acc.add(a, a, mask)  # an exact copy: infinite PSNR is counted, not averaged
    s = acc.summary()
    assert s["count"] == 3 and s["psnr_inf"] == 1
    assert s["ssim"] == pytest.approx((ssim(gen, a) + ssim(b, a) + 1.0) / 3)
    assert s["mask_ssim"] == pytest.approx((mask_ssim(gen, a, mask) + mask_ssim(b, a, mask) + 1.0) / 3)
    assert s["psnr"] == pytest.approx((psnr(gen, a) + psnr(b, a)) / 2)
    assert s["l1"] == pytest.approx((l1_score(gen, a) + l1_score(b, a)) / 3)
    padded = MetricAccumulator(pad=40)
    padded.add(gen, a, mask)
    assert padded.summary()["ssim"] == pytest.approx(ssim(pad_white(gen), pad_white(a)))
