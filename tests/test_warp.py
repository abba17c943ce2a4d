"""ops.warp: the CPU kernel against the float64 reference (tests/reference.py), exact
properties (identity, translation), missing, degenerate and out-of-frame joints, batches,
and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from pyposert import ops
from reference import warp_inputs as pair
from reference import warp_parts_ref, warp_ref

H, W = 96, 64
def assert_matches_reference(image, src, dst, h, w) -> None:
    got, cov = ops.warp(image, src, dst, h, w)
    ref, ref_cov = warp_ref(image, src, dst, h, w)
    assert got.dtype == np.float32 and got.shape == ref.shape and cov.shape == ref_cov.shape
    assert np.isfinite(got).all() and np.isfinite(cov).all()
    assert cov.min() >= 0.0 and cov.max() <= 1.0
    cov_err = np.abs(cov - ref_cov)
    # float32 vs float64 can flip a pixel across a threshold (the weight cutoff, the image
    # edge); those are rare, every other pixel agrees to float32 rounding.
    assert np.quantile(cov_err, 0.999) < 1e-4 and cov_err.mean() < 1e-5, (cov_err.max(), cov_err.mean())
    both = (cov > 0.01) & (ref_cov > 0.01)
    err = np.abs(got - ref)[np.broadcast_to(both, got.shape)]
    if err.size:
        assert np.quantile(err, 0.999) < 2e-3 and err.mean() < 1e-4, (err.max(), err.mean())


@pytest.mark.parametrize("sizes", [(H, W, H, W), (128, 88, 256, 176), (200, 150, 64, 48)])
def test_warp_matches_the_float64_reference(rng: np.random.Generator, sizes) -> None:
    hs, ws, h, w = sizes
    image, src, dst = pair(rng, 2, hs, ws, h, w)
    assert_matches_reference(image, src, dst, h, w)


def test_same_skeleton_reproduces_the_image(rng: np.random.Generator) -> None:
    image, src, _ = pair(rng, 1)
    got, cov = ops.warp(image, src, src, H, W)
    covered = cov[0, 0] > 0
    assert covered.mean() > 0.15  # the body is covered
    # The fitted maps are the identity up to float32 rounding of their coefficients.
    np.testing.assert_allclose(got[0][:, covered], image[0][:, covered], atol=5e-4)
    assert (got[0][:, ~covered] == 0).all()


def test_a_shifted_skeleton_shifts_the_image(rng: np.random.Generator) -> None:
    image, src, _ = pair(rng, 1)
    dx, dy = 5, -3
    dst = src + np.array([dx, dy], np.float32)
    dst[dst < 0] = 0  # stay present
    keep = (src[0] + [dx, dy] >= 0).all(axis=1)
    src, dst = src[:, keep.nonzero()[0]], dst[:, keep.nonzero()[0]]
    if src.shape[1] != 18:
        pytest.skip("the shift pushed a joint out of the frame")
    got, cov = ops.warp(image, src, dst, H, W)
    ys, xs = np.nonzero(cov[0, 0] > 0)
    ok = (ys - dy >= 0) & (ys - dy < H) & (xs - dx >= 0) & (xs - dx < W)
    ys, xs = ys[ok], xs[ok]
    np.testing.assert_allclose(got[0][:, ys, xs], image[0][:, ys - dy, xs - dx], atol=1e-4)


def test_missing_joints_drop_their_parts(rng: np.random.Generator) -> None:
    image, src, dst = pair(rng, 1)
    full, full_cov = ops.warp(image, src, dst, H, W)
    for missing in (np.float32(-1), np.float32(np.nan), np.float32(np.inf)):
        cut = dst.copy()
        cut[0, 4] = missing  # right wrist: the right forearm drops out
        got, cov = ops.warp(image, src, cut, H, W)
        assert np.isfinite(got).all() and np.isfinite(cov).all()
        assert cov.sum() < full_cov.sum()
        assert_matches_reference(image, src, cut, H, W)
    src_cut = src.copy()
    src_cut[0, 4] = -1  # missing in the source drops it too
    _, cov = ops.warp(image, src_cut, dst, H, W)
    assert cov.sum() < full_cov.sum()
    parts = warp_parts_ref(src_cut[0], dst[0], 0.25 * max(H, W))
    assert parts[0] is None and parts[9] is not None  # r_forearm gone, torso kept


def test_no_joints_means_no_coverage(rng: np.random.Generator) -> None:
    image, src, dst = pair(rng, 1)
    got, cov = ops.warp(image, src, np.full_like(dst, -1), H, W)
    assert (cov == 0).all() and (got == 0).all()


def test_degenerate_limbs_and_points(rng: np.random.Generator) -> None:
    image, src, dst = pair(rng, 1)
    dst[0, 4] = dst[0, 3]  # zero-length target forearm
    src[0, 7] = src[0, 6]  # zero-length source forearm
    dst[0, [2, 5, 8, 11]] = dst[0, 1]  # the whole target torso collapsed onto the neck
    src[0, [14, 15, 16, 17]] = src[0, 0]  # the source face collapsed onto the nose
    got, cov = ops.warp(image, src, dst, H, W)
    assert np.isfinite(got).all() and np.isfinite(cov).all() and cov.max() > 0
    assert_matches_reference(image, src, dst, H, W)


def test_joints_outside_the_frame(rng: np.random.Generator) -> None:
    image, src, dst = pair(rng, 1)
    dst[0, [9, 10, 12, 13]] += np.array([0, 3 * H], np.float32)  # legs far below the frame
    src[0, [3, 4]] += np.array([5 * W, 0], np.float32)  # a source arm beyond the image's right edge
    got, cov = ops.warp(image, src, dst, H, W)
    assert np.isfinite(got).all()
    assert_matches_reference(image, src, dst, H, W)


@pytest.mark.parametrize("batch", [0, 1, 3])
def test_batches_equal_single_items(rng: np.random.Generator, batch: int) -> None:
    image, src, dst = pair(rng, batch)
    got, cov = ops.warp(image, src, dst, H, W)
    assert got.shape == (batch, 3, H, W) and cov.shape == (batch, 1, H, W)
    for b in range(batch):
        one, one_cov = ops.warp(image[b:b + 1], src[b:b + 1], dst[b:b + 1], H, W)
        np.testing.assert_array_equal(got[b], one[0])
        np.testing.assert_array_equal(cov[b], one_cov[0])


def test_more_channels_and_caller_outputs(rng: np.random.Generator) -> None:
    image = rng.uniform(-1, 1, (1, 7, H, W)).astype(np.float32)
    _, src, dst = pair(rng, 1)
    out, cov = np.full((1, 7, 40, 30), np.nan, np.float32), np.full((1, 1, 40, 30), np.nan, np.float32)
    got, got_cov = ops.warp(image, src, dst, 40, 30, out=out, coverage=cov)
    assert got is out and got_cov is cov and np.isfinite(out).all() and np.isfinite(cov).all()
    assert_matches_reference(image, src, dst * np.float32(0.4), 40, 30)


@pytest.mark.parametrize("call,message", [
    (lambda i, s, d: ops.warp(i[0], s, d, H, W), "image must be [B, C, Hs, Ws] float32, got"),
    (lambda i, s, d: ops.warp(i, s[:, :17], d, H, W), "source_keypoints must be [1, 18, 2] float32"),
    (lambda i, s, d: ops.warp(i, s, d.astype(np.float64), H, W), "target_keypoints must be [1, 18, 2] float32"),
    (lambda i, s, d: ops.warp(i.astype(np.float16), s, d, H, W), "image must be [B, C, Hs, Ws] float32"),
    (lambda i, s, d: ops.warp(i, s, d, -1, W), "height must be an integer >= 0"),
    (lambda i, s, d: ops.warp(i, s, d, H, W, coverage=np.zeros((1, 2, H, W), np.float32)),
     "coverage must be [1, 1, 96, 64] float32"),
    (lambda i, s, d: ops.warp(i[:, :, :0], s, d, H, W), "image must be at least 1 x 1 pixels"),
])
def test_bad_input_is_a_clear_error(rng: np.random.Generator, call, message: str) -> None:
    image, src, dst = pair(rng, 1)
    with pytest.raises(ValueError) as info:
        call(image, src, dst)
    assert message in str(info.value), str(info.value)
