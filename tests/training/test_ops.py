"""training.ops: the attention custom op and the heatmap rasteriser against float64 references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from training.ops import (
    attention,
    attention_reference,
    heatmaps,
    heatmaps_pair,
    plain_attention,
    plain_attention_enabled,
)

# --------------------------------------------------------------------------- attention

SHAPES = [
    # (B, Nq, Nk, Dk, Dv): Dk != Dv as in PoNA, Nq != Nk, odd and size-1 dims.
    (1, 1, 1, 1, 1),
    (2, 5, 7, 3, 4),
    (3, 17, 13, 8, 32),
    (1, 64, 64, 4, 32),
    (2, 33, 1, 5, 2),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [None, 1.0, 0.125, 3.0])
def test_attention_matches_float64_reference(shape: tuple[int, ...], scale: float | None) -> None:
    b, nq, nk, dk, dv = shape
    q = torch.randn(b, nq, dk)
    k = torch.randn(b, nk, dk)
    v = torch.randn(b, nk, dv)
    out = attention(q, k, v, scale)
    ref = attention_reference(q, k, v, scale)
    assert out.shape == (b, nq, dv) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # fp32 error vs fp64 must stay within ~2x of the same math done naively in fp32.
    naive = torch.softmax((1.0 if scale is None else scale) * q @ k.transpose(1, 2), -1) @ v
    naive_err = (naive.double() - ref).abs().max().item()
    err = (out.double() - ref).abs().max().item()
    assert err <= 2 * naive_err + 1e-6


def test_attention_default_scale_is_unscaled() -> None:
    q, k, v = torch.randn(1, 4, 3), torch.randn(1, 6, 3), torch.randn(1, 6, 5)
    expected = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v
    torch.testing.assert_close(attention(q, k, v), expected)


def test_attention_large_energies_stay_finite() -> None:
    # |q . k| in the thousands: a softmax without max-subtraction would overflow.
    q = torch.randn(2, 9, 16) * 30
    k = torch.randn(2, 11, 16) * 30
    v = torch.randn(2, 11, 7)
    out = attention(q, k, v)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), attention_reference(q, k, v), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("scale", [1.0, 0.37])
def test_attention_gradcheck_float64(scale: float) -> None:
    q = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: attention(a, b, c, scale), (q, k, v))


def test_attention_backward_matches_autograd_of_plain_math() -> None:
    q = torch.randn(2, 12, 4, requires_grad=True)
    k = torch.randn(2, 10, 4, requires_grad=True)
    v = torch.randn(2, 10, 24, requires_grad=True)
    g = torch.randn(2, 12, 24)
    grads_op = torch.autograd.grad(attention(q, k, v, 0.5), (q, k, v), g)
    with plain_attention():
        grads_plain = torch.autograd.grad(attention(q, k, v, 0.5), (q, k, v), g)
    for a, b in zip(grads_op, grads_plain):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_attention_empty_inputs() -> None:
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 0, 4), torch.randn(2, 0, 5)
    out = attention(q, k, v)
    assert out.shape == (2, 3, 5) and not out.any()
    assert attention(torch.randn(0, 3, 4), torch.randn(0, 2, 4), torch.randn(0, 2, 5)).shape == (0, 3, 5)


@pytest.mark.parametrize(
    "q_shape, k_shape, v_shape",
    [
        ((2, 3), (2, 3), (2, 3)),  # not 3-D
        ((2, 3, 4), (2, 5, 3), (2, 5, 6)),  # Dk mismatch
        ((2, 3, 4), (2, 5, 4), (2, 6, 6)),  # Nk mismatch
        ((2, 3, 4), (1, 5, 4), (2, 5, 6)),  # batch mismatch
    ],
)
def test_attention_rejects_bad_shapes(q_shape: tuple[int, ...], k_shape: tuple[int, ...],
                                      v_shape: tuple[int, ...]) -> None:
    q, k, v = torch.randn(q_shape), torch.randn(k_shape), torch.randn(v_shape)
    with pytest.raises(ValueError):
        attention(q, k, v)
    with pytest.raises(ValueError), plain_attention():
        attention(q, k, v)


def test_attention_rejects_mixed_dtypes() -> None:
    with pytest.raises(ValueError, match="dtype"):
        attention(torch.randn(1, 2, 3), torch.randn(1, 2, 3).double(), torch.randn(1, 2, 3))


def test_attention_fake_gives_shape_without_computing() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        q, k, v = torch.empty(3, 11, 4), torch.empty(3, 7, 4), torch.empty(3, 7, 9)
        out = torch.ops.pyposert.attention(q, k, v, 1.0)
        assert out.shape == (3, 11, 9) and out.dtype == torch.float32
        with pytest.raises(ValueError):
            torch.ops.pyposert.attention(q, torch.empty(3, 7, 5), v, 1.0)


class _Attn(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return attention(q, k, v, 0.25)


def test_attention_torch_export_keeps_the_custom_op() -> None:
    args = (torch.randn(2, 8, 4), torch.randn(2, 6, 4), torch.randn(2, 6, 16))
    ep = torch.export.export(_Attn(), args)
    targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    assert torch.ops.pyposert.attention.default in targets
    torch.testing.assert_close(ep.module()(*args), _Attn()(*args))


def test_plain_attention_traces_standard_ops() -> None:
    from torch.fx.experimental.proxy_tensor import make_fx

    args = (torch.randn(1, 8, 4), torch.randn(1, 6, 4), torch.randn(1, 6, 16))
    assert not plain_attention_enabled()
    with plain_attention():
        assert plain_attention_enabled()
        gm = make_fx(_Attn())(*args)
    assert not plain_attention_enabled()
    names = {str(n.target) for n in gm.graph.nodes if n.op == "call_function"}
    assert not any("pyposert" in s for s in names)
    assert any("softmax" in s for s in names)
    torch.testing.assert_close(gm(*args), _Attn()(*args))


def test_attention_flops_are_counted() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        attention(torch.randn(2, 5, 3), torch.randn(2, 7, 3), torch.randn(2, 7, 4))
    assert counter.get_total_flops() == 2 * 2 * 5 * 7 * (3 + 4)


# --------------------------------------------------------------------------- heatmaps


def heatmaps_reference(kp: np.ndarray, h: int, w: int, mode: str = "gaussian", sigma: float = 6.0,
                       radius: float = 4.0, scale: tuple[float, float] = (1.0, 1.0),
                       offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Float64 loops over joints: [B, K, 2] (x, y) -> [B, K, H, W]; obviously correct, slow."""
    b, k, _ = kp.shape
    out = np.zeros((b, k, h, w), dtype=np.float64)
    py, px = np.mgrid[0:h, 0:w].astype(np.float64)
    for i in range(b):
        for j in range(k):
            x, y = float(kp[i, j, 0]), float(kp[i, j, 1])
            if not (math.isfinite(x) and math.isfinite(y)) or x < 0 or y < 0:
                continue  # missing joint: all-zero channel
            xt, yt = x * scale[0] + offset[0], y * scale[1] + offset[1]
            d2 = (px - xt) ** 2 + (py - yt) ** 2
            out[i, j] = np.exp(-d2 / (2 * sigma**2)) if mode == "gaussian" else (d2 <= radius**2)
    return out


def heatmaps_float32_disk(kp: np.ndarray, h: int, w: int, radius: float,
                          scale: tuple[float, float], offset: tuple[float, float]) -> np.ndarray:
    """Disk maps with the exact float32 operation order of the convention (for an == check)."""
    f = np.float32
    kp = kp.astype(f)
    x, y = kp[..., 0], kp[..., 1]
    present = np.isfinite(x) & np.isfinite(y) & (x >= 0) & (y >= 0)
    x = np.where(present, x, f(0)) * f(scale[0]) + f(offset[0])
    y = np.where(present, y, f(0)) * f(scale[1]) + f(offset[1])
    dx = np.arange(w, dtype=f)[None, None, None, :] - x[..., None, None]
    dy = np.arange(h, dtype=f)[None, None, :, None] - y[..., None, None]
    d2 = dx * dx + dy * dy
    return ((d2 <= f(radius * radius)) & present[..., None, None]).astype(f)


def _random_keypoints(b: int, k: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    # Spread over and a little beyond the canvas, so borders and outside joints are covered.
    x = torch.rand(b, k, generator=gen) * (w + 20) - 5
    y = torch.rand(b, k, generator=gen) * (h + 20) - 5
    return torch.stack([x, y], dim=-1)


@pytest.mark.parametrize("h, w", [(32, 24), (17, 29), (1, 1), (64, 44)])
@pytest.mark.parametrize("sigma", [6.0, 1.5])
def test_heatmaps_gaussian_matches_float64(h: int, w: int, sigma: float) -> None:
    gen = torch.Generator().manual_seed(h * 1000 + w)
    kp = _random_keypoints(2, 18, h, w, gen)
    out = heatmaps(kp, h, w, sigma=sigma)
    assert out.shape == (2, 18, h, w) and out.dtype == torch.float32
    ref = heatmaps_reference(kp.numpy(), h, w, sigma=sigma)
    np.testing.assert_allclose(out.numpy(), ref, atol=2e-6, rtol=0)


def test_heatmaps_missing_joints_are_zero() -> None:
    nan, inf = float("nan"), float("inf")
    kp = torch.tensor([[[-1.0, 5.0], [5.0, -1.0], [nan, 5.0], [5.0, nan], [inf, 5.0], [5.0, -inf],
                        [-0.5, -0.5], [0.0, 0.0], [5.0, 5.0]]])
    out = heatmaps(kp, 16, 12)
    assert not out[0, :7].any(), "negative / NaN / inf joints must give all-zero channels"
    assert torch.isfinite(out).all()
    assert out[0, 7, 0, 0] == 1.0 and out[0, 8, 5, 5] == 1.0  # (0, 0) is a valid joint
    np.testing.assert_allclose(out.numpy(), heatmaps_reference(kp.numpy(), 16, 12), atol=2e-6)


def test_heatmaps_x_is_column_y_is_row() -> None:
    out = heatmaps(torch.tensor([[[7.0, 2.0]]]), 10, 12)
    assert tuple(np.argwhere(out[0, 0].numpy() == out.max().item())[0]) == (2, 7)  # (row, col)


def test_heatmaps_borders_and_outside_canvas() -> None:
    h, w, sigma = 20, 16, 3.0
    kp = torch.tensor([[[w - 1.0, h - 1.0], [w + 3.0, 4.0], [4.0, h + 2.5], [1000.0, 1000.0]]])
    out = heatmaps(kp, h, w, sigma=sigma)
    assert out[0, 0, h - 1, w - 1] == 1.0  # peak on the last pixel
    # a joint 4 px right of the canvas still leaves its tail on the last column
    assert out[0, 1, 4, w - 1].item() == pytest.approx(math.exp(-16 / (2 * sigma**2)), rel=1e-6)
    assert out[0, 2, h - 1, 4].item() == pytest.approx(math.exp(-(3.5**2) / (2 * sigma**2)), rel=1e-6)
    assert out[0, 3].max().item() == 0.0  # far away: underflows to exactly 0
    np.testing.assert_allclose(out.numpy(), heatmaps_reference(kp.numpy(), h, w, sigma=sigma), atol=2e-6)


def test_heatmaps_scale_and_offset() -> None:
    kp = torch.tensor([[[10.0, 20.0], [-1.0, 3.0], [1.0, 1.0]]])
    scale, offset = (0.5, 0.25), (1.0, 2.0)
    out = heatmaps(kp, 16, 12, sigma=2.0, scale=scale, offset=offset)
    assert out[0, 0, 7, 6] == 1.0  # x' = 10 * 0.5 + 1 = 6, y' = 20 * 0.25 + 2 = 7
    assert not out[0, 1].any()  # missing is decided on the ORIGINAL x (-1), despite the offset
    ref = heatmaps_reference(kp.numpy(), 16, 12, sigma=2.0, scale=scale, offset=offset)
    np.testing.assert_allclose(out.numpy(), ref, atol=2e-6)
    # a negative offset moves a present joint off the canvas: it is not missing, its tail shows
    out2 = heatmaps(torch.tensor([[[1.0, 1.0]]]), 8, 8, sigma=2.0, offset=(-3.0, 0.0))
    assert out2[0, 0, 1, 0].item() == pytest.approx(math.exp(-4 / 8), rel=1e-6)


@pytest.mark.parametrize("radius", [4.0, 2.5, 0.0])
def test_heatmaps_disk(radius: float) -> None:
    h, w = 33, 27
    gen = torch.Generator().manual_seed(7)
    kp = _random_keypoints(2, 18, h, w, gen)
    kp[0, 3] = torch.tensor([10.0, 10.0])
    kp[1, 5] = torch.tensor([float("nan"), 3.0])
    scale, offset = (0.75, 1.25), (2.0, -1.0)
    out = heatmaps(kp, h, w, mode="disk", radius=radius, scale=scale, offset=offset)
    assert out.dtype == torch.float32 and set(np.unique(out.numpy())) <= {0.0, 1.0}
    np.testing.assert_array_equal(out.numpy(), heatmaps_float32_disk(kp.numpy(), h, w, radius, scale, offset))
    ref = heatmaps_reference(kp.numpy(), h, w, mode="disk", radius=radius, scale=scale, offset=offset)
    # float32 vs float64 may differ only on pixels exactly at the rim; there are very few.
    assert (out.numpy() != ref).sum() <= 4
    assert not out[1, 5].any()


def test_heatmaps_disk_radius_4_has_49_pixels() -> None:
    out = heatmaps(torch.tensor([[[10.0, 10.0]]]), 21, 21, mode="disk", radius=4.0)
    assert out.sum().item() == 49  # lattice points with dx^2 + dy^2 <= 16


def test_heatmaps_pair_source_first() -> None:
    gen = torch.Generator().manual_seed(3)
    src = _random_keypoints(2, 18, 24, 16, gen)
    tgt = _random_keypoints(2, 18, 24, 16, gen)
    out = heatmaps_pair(src, tgt, 24, 16, sigma=2.0)
    assert out.shape == (2, 36, 24, 16)
    torch.testing.assert_close(out[:, :18], heatmaps(src, 24, 16, sigma=2.0), rtol=0, atol=0)
    torch.testing.assert_close(out[:, 18:], heatmaps(tgt, 24, 16, sigma=2.0), rtol=0, atol=0)
    with pytest.raises(ValueError):
        heatmaps_pair(src, tgt[:, :17], 24, 16)


def test_heatmaps_float64_keypoints_give_float32() -> None:
    kp = torch.tensor([[[3.25, 4.5]]], dtype=torch.float64)
    out = heatmaps(kp, 8, 8)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, heatmaps(kp.float(), 8, 8), rtol=0, atol=0)


def test_heatmaps_empty() -> None:
    assert heatmaps(torch.zeros(0, 18, 2), 8, 8).shape == (0, 18, 8, 8)
    assert heatmaps(torch.zeros(2, 18, 2), 0, 8).shape == (2, 18, 0, 8)


@pytest.mark.parametrize(
    "kwargs",
    [dict(mode="box"), dict(sigma=0.0), dict(sigma=float("nan")), dict(mode="disk", radius=-1.0)],
)
def test_heatmaps_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        heatmaps(torch.zeros(1, 18, 2), 8, 8, **kwargs)


@pytest.mark.parametrize("shape", [(18, 2), (1, 18, 3), (1, 18)])
def test_heatmaps_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\[B, K, 2\]"):
        heatmaps(torch.zeros(shape), 8, 8)


def test_heatmaps_rejects_integer_keypoints() -> None:
    with pytest.raises(ValueError):
        heatmaps(torch.zeros(1, 18, 2, dtype=torch.int64), 8, 8)
