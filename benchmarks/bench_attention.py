"""attention: pyposert's CPU kernel vs numpy with a materialised softmax vs torch SDPA (same
cores), and on a GPU the CUDA kernel vs torch's best SDPA backend that accepts Dk != Dv."""

from __future__ import annotations

import numpy as np
import pytest

import pyposert
from pyposert import ops

SHAPES = [(704, 32, 64), (704, 32, 256), (2816, 32, 64), (2816, 32, 256)]  # (N, Dk, Dv), B = 1


def numpy_attention(q, k, v, scale):
    s = (q @ k.transpose(0, 2, 1)) * scale
    s -= s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    return s @ v


def inputs(rng, n, dk, dv):
    q = rng.standard_normal((1, n, dk)).astype(np.float32)
    k = rng.standard_normal((1, n, dk)).astype(np.float32)
    v = rng.standard_normal((1, n, dv)).astype(np.float32)
    return q, k, v


@pytest.mark.parametrize("n,dk,dv", SHAPES)
@pytest.mark.parametrize("impl", ["pyposert", "numpy", "torch_sdpa"])
def test_attention_cpu(benchmark, rng, impl, n, dk, dv):
    benchmark.group = f"attention cpu N={n} Dk={dk} Dv={dv}"
    q, k, v = inputs(rng, n, dk, dv)
    scale = dk ** -0.5
    expected = numpy_attention(q, k, v, scale)
    if impl == "pyposert":
        out = np.empty((1, n, dv), np.float32)
        result = benchmark(ops.attention, q, k, v, scale=scale, out=out)
    elif impl == "numpy":
        result = benchmark(numpy_attention, q, k, v, scale)
    else:
        torch = pytest.importorskip("torch")
        tq, tk, tv = (torch.from_numpy(a)[:, None] for a in (q, k, v))  # [B, heads=1, N, D]

        def sdpa():
            with torch.no_grad():
                return torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, scale=scale)

        result = benchmark(sdpa)[:, 0].numpy()
    np.testing.assert_allclose(result, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not pyposert.cuda_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("n,dk,dv", SHAPES)
@pytest.mark.parametrize("impl", ["pyposert", "torch_sdpa"])
def test_attention_cuda_fp16(benchmark, rng, impl, n, dk, dv):
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    benchmark.group = f"attention cuda fp16 N={n} Dk={dk} Dv={dv}"
    q, k, v = (torch.from_numpy(a).cuda().half() for a in inputs(rng, n, dk, dv))
    out = torch.empty((1, n, dv), device="cuda", dtype=torch.float16)

    def ours():
        ops.attention(q, k, v, scale=1.0, out=out)
        torch.cuda.synchronize()

    backend = {"name": "none"}

    def torch_best():
        with torch.no_grad(), sdpa_kernel(backend["value"]):
            torch.nn.functional.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=1.0)
        torch.cuda.synchronize()

    if impl == "torch_sdpa":
        # The first backend that accepts Dk != Dv, fastest first.
        for name in ("EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "FLASH_ATTENTION", "MATH"):
            backend["value"] = getattr(SDPBackend, name)
            try:
                torch_best()
                backend["name"] = name
                break
            except RuntimeError:
                continue
        benchmark.extra_info["torch_backend"] = backend["name"]
    fn = ours if impl == "pyposert" else torch_best
    for _ in range(10):
        fn()
    benchmark(fn)
