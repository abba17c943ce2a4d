"""CUDA kernels vs the CPU kernels vs the float64 references (needs a GPU and torch with CUDA;
skipped elsewhere). fp16 follows flash-attention's rule: the kernel's error against the fp64
reference is at most ~2x the error of the same math done naively in fp16 by torch."""

from __future__ import annotations

import numpy as np
import pytest

import pyposert
from pyposert import ops
from reference import attention_ref, heatmaps_ref, to_model_input_ref

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not (pyposert.cuda_available() and torch.cuda.is_available()),
                       reason="needs a CUDA device, pyposert built with CUDA, and torch with CUDA"),
]


def cuda(a: np.ndarray) -> "torch.Tensor":
    return torch.from_numpy(np.ascontiguousarray(a)).cuda()


def keypoints(rng, batch, joints, h, w):
    kp = np.stack([rng.uniform(-0.2 * w, 1.2 * w, (batch, joints)), rng.uniform(-0.2 * h, 1.2 * h, (batch, joints))], -1)
    kp[rng.random((batch, joints)) < 0.2] = -1
    kp[rng.random((batch, joints)) < 0.1, 1] = np.nan
    return kp.astype(np.float32)


@pytest.mark.parametrize("batch", [0, 1, 5])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_heatmaps_cuda_vs_cpu_vs_reference(rng, batch, dtype):
    kp = keypoints(rng, batch, 18, 256, 176)
    ref = heatmaps_ref(kp, 64, 44, sigma=1.5, scale=(0.25, 0.25), offset=(0.1, -0.2))
    cpu = ops.heatmaps(kp, 64, 44, sigma=1.5, scale=(0.25, 0.25), offset=(0.1, -0.2), dtype=dtype)
    gpu = ops.heatmaps(cuda(kp), 64, 44, sigma=1.5, scale=(0.25, 0.25), offset=(0.1, -0.2), dtype=dtype)
    assert isinstance(gpu, torch.Tensor) and gpu.is_cuda and str(gpu.dtype) == f"torch.{dtype}"
    tol = 1e-5 if dtype == "float32" else 1e-3
    np.testing.assert_allclose(gpu.cpu().float().numpy(), ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(gpu.cpu().float().numpy(), cpu.astype(np.float32), rtol=tol, atol=tol)


def test_heatmaps_pair_and_disk_cuda(rng):
    src, tgt = keypoints(rng, 3, 18, 64, 44), keypoints(rng, 3, 18, 64, 44)
    cpu = ops.heatmaps_pair(src, tgt, 64, 44, mode="disk", radius=4.0)
    gpu = ops.heatmaps_pair(cuda(src), cuda(tgt), 64, 44, mode="disk", radius=4.0)
    mismatch = (gpu.cpu().numpy() != cpu).mean()
    assert mismatch < 1e-4  # only pixels exactly on the rim may differ (fma vs mul-add)


@pytest.mark.parametrize("batch,queries,keys,dk,dv", [
    (1, 1, 1, 8, 8), (1, 97, 97, 32, 100), (3, 131, 61, 16, 13), (1, 704, 704, 32, 256),
    (2, 2816, 2816, 32, 256), (1, 300, 500, 128, 512), (1, 64, 64, 64, 1),
])
def test_attention_float32_cuda(rng, batch, queries, keys, dk, dv):
    q = rng.standard_normal((batch, queries, dk)).astype(np.float32)
    k = rng.standard_normal((batch, keys, dk)).astype(np.float32)
    v = rng.standard_normal((batch, keys, dv)).astype(np.float32)
    scale = dk ** -0.5
    gpu = ops.attention(cuda(q), cuda(k), cuda(v), scale=scale).cpu().numpy()
    ref = attention_ref(q, k, v, scale)
    np.testing.assert_allclose(gpu, ref, rtol=1e-4, atol=1e-4)
    if batch * queries * keys < 2_000_000:
        np.testing.assert_allclose(gpu, ops.attention(q, k, v, scale=scale), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("queries,dk,dv", [(97, 32, 100), (704, 32, 256), (2816, 32, 256), (513, 128, 64)])
def test_attention_float16_error_rule(rng, queries, dk, dv):
    q = rng.standard_normal((1, queries, dk)).astype(np.float32)
    k = rng.standard_normal((1, queries, dk)).astype(np.float32)
    v = rng.standard_normal((1, queries, dv)).astype(np.float32)
    q16, k16, v16 = (cuda(a).half() for a in (q, k, v))
    ref = attention_ref(q16.float().cpu().numpy(), k16.float().cpu().numpy(), v16.float().cpu().numpy(), 1.0)
    ours = ops.attention(q16, k16, v16, scale=1.0)
    assert ours.dtype == torch.float16
    naive = torch.softmax((q16 @ k16.transpose(1, 2)).float(), dim=-1).half() @ v16
    err_ours = np.abs(ours.float().cpu().numpy() - ref).max()
    err_naive = np.abs(naive.float().cpu().numpy() - ref).max()
    assert err_ours <= 2.0 * err_naive + 1e-4, (err_ours, err_naive)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_attention_strided_views_cuda(rng, dtype):
    """A head slice, a transposed-batch view, a stride-0 batch and a strided out: read and
    written in place, equal to the packed copies (CUDA twin of test_attention's test)."""
    heads = cuda(rng.standard_normal((3, 45, 3 * 16)).astype(np.float32)).to(dtype)
    q = heads[:, :, 16:32]
    k = cuda(rng.standard_normal((70, 3, 16)).astype(np.float32)).to(dtype).transpose(0, 1)
    v = cuda(rng.standard_normal((1, 70, 24)).astype(np.float32)).to(dtype).expand(3, 70, 24)
    expected = ops.attention(q.contiguous(), k.contiguous(), v.contiguous(), scale=0.3)
    buffer = torch.full((3, 45, 53), 7.0, dtype=dtype, device="cuda")
    out = buffer[:, :, 5:29]
    assert ops.attention(q, k, v, scale=0.3, out=out) is out
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert (buffer[:, :, :5] == 7).all() and (buffer[:, :, 29:] == 7).all()


def test_attention_runs_on_the_callers_stream(rng):
    q = cuda(rng.standard_normal((1, 500, 32)).astype(np.float32))
    v = cuda(rng.standard_normal((1, 500, 64)).astype(np.float32))
    expected = ops.attention(q, q, v)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        got = ops.attention(q, q, v)  # default: the producer's current stream = side
    side.synchronize()
    torch.testing.assert_close(got, expected)
    out = torch.empty_like(v)
    ops.attention(q, q, v, out=out, stream=side)
    side.synchronize()
    torch.testing.assert_close(out, expected)


def test_dlpack_only_producers_work(rng):
    class DLPackOnly:
        def __init__(self, t):
            self.t = t

        def __dlpack__(self, stream=None):
            return self.t.__dlpack__()

        def __dlpack_device__(self):
            return self.t.__dlpack_device__()

    kp = keypoints(rng, 2, 18, 32, 32)
    out = torch.empty((2, 18, 32, 32), device="cuda")
    ops.heatmaps(DLPackOnly(cuda(kp)), 32, 32, out=DLPackOnly(out), sigma=2.0)
    torch.cuda.synchronize()
    np.testing.assert_allclose(out.cpu().numpy(), heatmaps_ref(kp, 32, 32, sigma=2.0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("src", [(1080, 1920), (256, 176), (5, 3), (720, 405)])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_imageproc_cuda_vs_cpu(rng, src, dtype):
    image = rng.integers(0, 256, (*src, 3), dtype=np.uint8)
    cpu, box = ops.to_model_input(image, 256, 176, dtype=dtype)
    gpu, gbox = ops.to_model_input(cuda(image), 256, 176, dtype=dtype)
    assert box == gbox
    tol = 2e-5 if dtype == "float32" else 2e-3
    np.testing.assert_allclose(gpu.cpu().float().numpy(), to_model_input_ref(image, box), atol=tol)
    back_cpu = ops.from_model_output(cpu, box)
    back_gpu = ops.from_model_output(gpu, box).cpu().numpy()
    diff = np.abs(back_cpu.astype(np.int16) - back_gpu)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


@pytest.mark.parametrize("batch", [0, 1, 3])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_warp_cuda_vs_cpu(rng, batch, dtype):
    from reference import warp_inputs as pair

    image, src, dst = pair(rng, batch, 96, 64, 120, 80)
    want, want_cov = ops.warp(image, src, dst, 120, 80)
    got, got_cov = ops.warp(cuda(image).to(getattr(torch, dtype)), cuda(src), cuda(dst), 120, 80)
    assert got.dtype == getattr(torch, dtype) and got.shape == (batch, 3, 120, 80)
    got, got_cov = got.float().cpu().numpy(), got_cov.float().cpu().numpy()
    assert np.isfinite(got).all() and np.isfinite(got_cov).all()
    tol = 1e-4 if dtype == "float32" else 4e-3  # fp16 storage of image and outputs
    cov_err = np.abs(got_cov - want_cov)
    assert cov_err.size == 0 or (np.quantile(cov_err, 0.999) < tol and cov_err.mean() < tol / 10)
    both = np.broadcast_to((got_cov > 0.01) & (want_cov > 0.01), got.shape)
    err = np.abs(got - want)[both]
    assert err.size == 0 or (np.quantile(err, 0.999) < 10 * tol and err.mean() < tol)


def test_heatmaps_channel_offset_cuda_vs_cpu(rng):
    kp = keypoints(rng, 3, 18, 40, 28)
    host = np.zeros((3, 36, 40, 28), np.float32)
    ops.heatmaps(kp, 40, 28, sigma=2.0, out=host, channel_offset=18)
    dev = torch.zeros((3, 36, 40, 28), device="cuda")
    ops.heatmaps(cuda(kp), 40, 28, sigma=2.0, out=dev, channel_offset=18)
    torch.cuda.synchronize()
    np.testing.assert_allclose(dev.cpu().numpy(), host, rtol=1e-5, atol=1e-6)
