"""heatmaps: pyposert's CPU kernel vs a vectorised numpy implementation (and, on a GPU, the
CUDA kernel vs plain torch), for two poses (source + target) at the generator sizes."""

from __future__ import annotations

import numpy as np
import pytest

import pyposert
from pyposert import ops

SIZES = [(256, 176), (128, 88)]


def numpy_heatmaps(kp: np.ndarray, height: int, width: int, sigma: float) -> np.ndarray:
    """The vectorised numpy way: broadcast the grid against all joints at once."""
    ys = np.arange(height, dtype=np.float32)[None, None, :, None]
    xs = np.arange(width, dtype=np.float32)[None, None, None, :]
    x = kp[..., 0][..., None, None]
    y = kp[..., 1][..., None, None]
    out = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / np.float32(2 * sigma * sigma))
    missing = (kp < 0).any(-1) | ~np.isfinite(kp).all(-1)
    out[missing] = 0.0
    return out


def real_like_poses(rng, batch, height, width):
    kp = np.stack([rng.uniform(0, width, (batch, 18)), rng.uniform(0, height, (batch, 18))], -1).astype(np.float32)
    kp[:, 14:] = -1  # faces often missing, as in the annotations
    return kp


@pytest.mark.parametrize("height,width", SIZES)
@pytest.mark.parametrize("impl", ["pyposert", "numpy"])
def test_heatmaps_cpu(benchmark, rng, impl, height, width):
    benchmark.group = f"heatmaps cpu 2x18 {height}x{width}"
    kp = real_like_poses(rng, 2, height, width)
    sigma = 6.0 * height / 256
    if impl == "pyposert":
        out = np.empty((2, 18, height, width), np.float32)
        result = benchmark(ops.heatmaps, kp, height, width, sigma=sigma, out=out)
    else:
        result = benchmark(numpy_heatmaps, kp, height, width, sigma)
    np.testing.assert_allclose(result, numpy_heatmaps(kp, height, width, sigma), rtol=1e-4, atol=1e-6)




@pytest.mark.skipif(not pyposert.cuda_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("impl", ["pyposert", "torch"])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_heatmaps_cuda(benchmark, rng, impl, dtype):
    import torch
    height, width = 256, 176
    benchmark.group = f"heatmaps cuda 2x18 {height}x{width} {dtype}"
    kp = torch.from_numpy(real_like_poses(rng, 2, height, width)).cuda()
    out = torch.empty((2, 18, height, width), device="cuda", dtype=getattr(torch, dtype))
    ys = torch.arange(height, device="cuda", dtype=torch.float32)[None, None, :, None]
    xs = torch.arange(width, device="cuda", dtype=torch.float32)[None, None, None, :]

    def torch_heatmaps():
        x, y = kp[..., 0, None, None], kp[..., 1, None, None]
        h = torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 72.0)
        h = h * ((kp >= 0).all(-1))[..., None, None]
        out.copy_(h)
        torch.cuda.synchronize()

    def ours():
        ops.heatmaps(kp, height, width, out=out, dtype=dtype)
        torch.cuda.synchronize()

    fn = ours if impl == "pyposert" else torch_heatmaps
    for _ in range(20):
        fn()
    benchmark(fn)
