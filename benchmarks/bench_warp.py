"""warp: pyposert's kernel vs the same math written with torch (vectorised over parts and
pixels, bilinear sampling by grid_sample) and vs the float64 numpy reference, one source
image (3 channels) warped to one target pose at the generator sizes; on a GPU, the CUDA
kernel vs the torch version on the device."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import pyposert
from pyposert import ops
from tests.reference import warp_inputs as pair
from tests.reference import warp_parts_ref, warp_ref

SIZES = [(128, 88), (256, 176)]


def torch_warp(torch: Any, image: Any, src: np.ndarray, dst: np.ndarray, height: int, width: int) -> tuple[Any, Any]:
    """image [1, C, Hs, Ws] torch tensor; src, dst [18, 2] numpy. The parts are fitted with the
    reference's code (tiny, host side); everything per pixel is torch."""
    dev, hs, ws = image.device, image.shape[2], image.shape[3]
    parts = [p for p in warp_parts_ref(src, dst, 0.25 * max(height, width)) if p is not None]
    if not parts:
        return torch.zeros(1, image.shape[1], height, width, device=dev), torch.zeros(1, 1, height, width, device=dev)
    seg = torch.tensor(np.stack([np.concatenate([p["segments"], np.repeat(p["segments"][-1:], 4 - len(p["segments"]), 0)])
                                 for p in parts]), dtype=torch.float32, device=dev)  # [P, 4, 4]
    polygon = torch.tensor([p["polygon"] for p in parts], device=dev)
    core = torch.tensor([p["core"] for p in parts], dtype=torch.float32, device=dev)[:, None, None]
    falloff = torch.tensor([p["falloff"] for p in parts], dtype=torch.float32, device=dev)[:, None, None]
    m = torch.tensor(np.stack([p["m"] for p in parts]), dtype=torch.float32, device=dev)  # [P, 2, 3]
    py, px = torch.meshgrid(torch.arange(height, device=dev, dtype=torch.float32),
                            torch.arange(width, device=dev, dtype=torch.float32), indexing="ij")
    ax, ay, bx, by = (seg[..., i, None, None] for i in range(4))  # [P, 4, 1, 1]
    dx, dy = bx - ax, by - ay
    len2 = dx * dx + dy * dy
    t = (((px - ax) * dx + (py - ay) * dy) / len2.clamp_min(1e-12)).clamp(0, 1) * (len2 > 1e-12)
    d = torch.hypot(px - ax - t * dx, py - ay - t * dy).amin(1)  # [P, H, W]
    crosses = (ay > py) != (by > py)
    at = ax + (py - ay) * dx / torch.where(by == ay, torch.ones_like(by), by - ay)
    inside = ((crosses & (px < at)).sum(1) % 2 == 1) & polygon[:, None, None]
    d = torch.where(inside, torch.zeros_like(d), d)
    e = (d - core).clamp_min(0) / falloff
    w = torch.where(e < 4, torch.exp(-0.5 * e * e), torch.zeros_like(e))
    sx = m[:, 0, 0, None, None] * px + m[:, 0, 1, None, None] * py + m[:, 0, 2, None, None]
    sy = m[:, 1, 0, None, None] * px + m[:, 1, 1, None, None] * py + m[:, 1, 2, None, None]
    w = w * ((sx >= -0.5) & (sx <= ws - 0.5) & (sy >= -0.5) & (sy <= hs - 0.5))
    grid = torch.stack([(2 * sx + 1) / ws - 1, (2 * sy + 1) / hs - 1], -1)  # align_corners=False
    samples = torch.nn.functional.grid_sample(image.expand(len(parts), -1, -1, -1), grid, mode="bilinear",
                                              padding_mode="border", align_corners=False)  # [P, C, H, W]
    keep = torch.cumprod(torch.cat([torch.ones_like(w[:1]), 1 - w[:-1]]), 0)  # transmittance before each part
    acc = (keep[:, None] * w[:, None] * samples).sum(0, keepdim=True)
    cov = (1 - torch.prod(1 - w, 0))[None, None]
    out = torch.where(cov > 1e-6, acc / cov.clamp_min(1e-6), torch.zeros_like(acc))
    return out, cov


@pytest.mark.parametrize("height,width", SIZES)
@pytest.mark.parametrize("impl", ["pyposert", "torch_grid_sample", "numpy_float64_reference"])
def test_warp_cpu(benchmark: Any, impl: str, height: int, width: int) -> None:
    benchmark.group = f"warp cpu 3x{height}x{width}"
    image, src, dst = pair(np.random.default_rng(0), 1, height, width, height, width)
    want, want_cov = ops.warp(image, src, dst, height, width)
    if impl == "pyposert":
        out, cov = np.empty_like(want), np.empty_like(want_cov)
        got, cov = benchmark(ops.warp, image, src, dst, height, width, out=out, coverage=cov)
    elif impl == "torch_grid_sample":
        torch = pytest.importorskip("torch")
        timage = torch.from_numpy(image)
        with torch.no_grad():
            got, cov = (a.numpy() for a in benchmark(torch_warp, torch, timage, src[0], dst[0], height, width))
    else:
        got, cov = benchmark(warp_ref, image, src, dst, height, width)
    # Same function: the torch version skips no nearly-hidden part (pyposert stops at a
    # transmittance of 1e-4), so they agree to about that.
    assert np.abs(cov - want_cov).max() < 2e-3
    both = np.broadcast_to((cov > 0.01) & (want_cov > 0.01), got.shape)
    assert np.quantile(np.abs(got - want)[both], 0.999) < 5e-3


@pytest.mark.skipif(not pyposert.cuda_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("impl", ["pyposert", "torch_grid_sample"])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_warp_cuda(benchmark: Any, impl: str, dtype: str) -> None:
    torch = pytest.importorskip("torch")
    height, width = 256, 176
    benchmark.group = f"warp cuda {dtype} 3x{height}x{width}"
    image, src, dst = pair(np.random.default_rng(0), 1, height, width, height, width)
    timage = torch.from_numpy(image).cuda().to(getattr(torch, dtype))
    tsrc, tdst = torch.from_numpy(src).cuda(), torch.from_numpy(dst).cuda()
    if impl == "pyposert":
        out = torch.empty((1, 3, height, width), device="cuda", dtype=timage.dtype)
        cov = torch.empty((1, 1, height, width), device="cuda", dtype=timage.dtype)

        def run() -> None:
            ops.warp(timage, tsrc, tdst, height, width, out=out, coverage=cov)
            torch.cuda.synchronize()
    else:
        def run() -> None:
            with torch.no_grad():
                torch_warp(torch, timage, src[0], dst[0], height, width)
            torch.cuda.synchronize()
    benchmark(run)
