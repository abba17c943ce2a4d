"""Training heatmaps are the runtime's heatmaps: the torch path (training.ops) against the
native kernel (pyposert.ops) on fresh random keypoints, Gaussian and disk, with the
annotation-frame scale and offset, missing and off-canvas joints."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pyposert import ops as native  # noqa: E402
from training import ops as training_ops  # noqa: E402


def random_keypoints(rng, batch, height, width):
    kp = np.stack([rng.uniform(-20, width + 20, (batch, 18)), rng.uniform(-20, height + 20, (batch, 18))], -1)
    kp[rng.random((batch, 18)) < 0.2] = -1.0
    kp[rng.random((batch, 18)) < 0.05, 0] = np.nan
    return kp.astype(np.float32)


@pytest.mark.parametrize("size,scale,offset,sigma", [
    ((256, 176), (1.0, 1.0), (0.0, 0.0), 6.0),
    ((128, 88), (0.5, 0.5), (0.0, 0.0), 3.0),
    ((64, 44), (0.25, 0.25), (0.375, -0.125), 1.5),
])
def test_gaussian_torch_equals_native(rng, size, scale, offset, sigma):
    kp = random_keypoints(rng, 3, 256, 176)
    want = native.heatmaps(kp, *size, sigma=sigma, scale=scale, offset=offset)
    got = training_ops.heatmaps(torch.from_numpy(kp), *size, sigma=sigma, scale=scale, offset=offset)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_disk_torch_equals_native_off_the_rim(rng):
    kp = random_keypoints(rng, 4, 128, 88)
    want = native.heatmaps(kp, 128, 88, mode="disk", radius=4.0)
    got = training_ops.heatmaps(torch.from_numpy(kp), 128, 88, mode="disk", radius=4.0).numpy()
    # Both decide (px - x)^2 + (py - y)^2 <= r^2 in float32; a pixel exactly on the rim can
    # flip with fused multiply-add, so allow a vanishing fraction of differing pixels.
    assert (got != want).mean() < 1e-4


def test_pair_torch_equals_native(rng):
    src, tgt = random_keypoints(rng, 2, 128, 88), random_keypoints(rng, 2, 128, 88)
    want = native.heatmaps_pair(src, tgt, 128, 88, sigma=3.0)
    got = training_ops.heatmaps_pair(torch.from_numpy(src), torch.from_numpy(tgt), 128, 88, sigma=3.0)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
