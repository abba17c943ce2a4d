"""Differentiable PyTorch versions of pyposert's native ops: attention and heatmaps.

Two functions live here because every training model must use exactly the math that the
runtime runs:

- :func:`attention` -- softmax attention with key dim != value dim. It is the torch custom op
  ``pyposert::attention`` (signature ``(q, k, v, scale: float) -> Tensor``), registered by
  :mod:`pyposert.torch_ops` (forward: pyposert's fused kernel); this module attaches its
  autograd and FLOP formula. At export time the op becomes the ONNX node
  ``pyposert::FusedAttention``. Every softmax attention in every
  model goes through it. Inside :func:`plain_attention` it traces as ordinary
  MatMul/Softmax/MatMul instead, for a standard-op ONNX graph.
- :func:`heatmaps` / :func:`heatmaps_pair` -- keypoints -> per-joint Gaussian or disk maps with
  the same conventions as the native ``pyposert.ops.heatmaps`` kernel.

Coordinates are always (x, y): x is the column (width axis), y the row (height axis).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from pyposert import torch_ops
from pyposert.ops import HeatmapParams

__all__ = [
    "attention",
    "attention_reference",
    "plain_attention",
    "plain_attention_enabled",
    "heatmaps",
    "heatmaps_pair",
    "HEATMAP_MODES",
]

# ----------------------------------------------------------------------------------------
# attention
# ----------------------------------------------------------------------------------------


_check_attention_inputs = torch_ops.check_attention_inputs


def _attention_math(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """matmul -> softmax over keys -> matmul. [B, Nq, Dk], [B, Nk, Dk], [B, Nk, Dv] -> [B, Nq, Dv]."""
    energy = torch.bmm(q, k.transpose(1, 2))  # [B, Nq, Nk]
    if scale != 1.0:
        energy = energy * scale
    return torch.bmm(torch.softmax(energy, dim=-1), v)


def _attention_setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    q, k, v, scale = inputs
    # Save O rather than the N x N probabilities: backward recomputes P (one extra matmul)
    # so training memory stays O(N * D) per attention, like the fused kernel.
    ctx.save_for_backward(q, k, v, output)
    ctx.scale = float(scale)


def _attention_backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
    """Gradients of O = softmax(scale * Q K^T) V.

    With P = softmax(S), S = scale * Q K^T:
      dV = P^T dO
      dP = dO V^T
      dS = P * (dP - rowsum(dO * O))        (rowsum(dP * P) equals rowsum(dO * O))
      dQ = scale * dS K,   dK = scale * dS^T Q
    """
    q, k, v, out = ctx.saved_tensors
    scale: float = ctx.scale
    if k.shape[1] == 0 or q.shape[1] == 0 or q.shape[0] == 0:
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v), None
    grad_out = grad_out.contiguous()
    energy = torch.bmm(q, k.transpose(1, 2))
    if scale != 1.0:
        energy = energy * scale
    p = torch.softmax(energy, dim=-1)  # [B, Nq, Nk]
    grad_v = torch.bmm(p.transpose(1, 2), grad_out)  # [B, Nk, Dv]
    grad_p = torch.bmm(grad_out, v.transpose(1, 2))  # [B, Nq, Nk]
    delta = (grad_out * out).sum(dim=-1, keepdim=True)  # [B, Nq, 1]
    grad_s = p * (grad_p - delta)
    if scale != 1.0:
        grad_s = grad_s * scale
    grad_q = torch.bmm(grad_s, k)  # [B, Nq, Dk]
    grad_k = torch.bmm(grad_s.transpose(1, 2), q)  # [B, Nk, Dk]
    return grad_q, grad_k, grad_v, None


torch_ops.register_attention()
torch.library.register_autograd("pyposert::attention", _attention_backward, setup_context=_attention_setup_context)


def _register_attention_flops() -> None:
    """Let torch.utils.flop_counter count the op: 2 * B * Nq * Nk * (Dk + Dv) forward."""
    from torch.utils.flop_counter import register_flop_formula

    @register_flop_formula(torch.ops.pyposert.attention)
    def _attention_flop(q_shape: Sequence[int], k_shape: Sequence[int], v_shape: Sequence[int],
                        *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        b, nq, dk = q_shape
        _, nk, dv = v_shape
        return 2 * b * nq * nk * (dk + dv)


_register_attention_flops()

_plain_state = threading.local()


def plain_attention_enabled() -> bool:
    """True inside :func:`plain_attention` (on this thread)."""
    return bool(getattr(_plain_state, "depth", 0))


@contextlib.contextmanager
def plain_attention() -> Iterator[None]:
    """Make :func:`attention` run (and trace) as plain bmm/softmax/bmm instead of the custom op.

    Use it around ``torch.onnx.export`` for a standard-op ONNX graph (ONNX Runtime on any CPU,
    no pyposert node), or around any tracer that does not know ``pyposert::attention``.
    The math is identical; only the graph differs. Thread-local and re-entrant.
    """
    _plain_state.depth = getattr(_plain_state, "depth", 0) + 1
    try:
        yield
    finally:
        _plain_state.depth -= 1


def attention(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None) -> Tensor:
    """Softmax attention with separate key and value widths.

    out[b, j] = sum_i softmax_i(scale * q[b, j] . k[b, i]) * v[b, i]   (softmax over keys i)

    Args:
        q: queries [B, Nq, Dk], floating point (float32 in training).
        k: keys [B, Nk, Dk], same dtype.
        v: values [B, Nk, Dv], same dtype; Dv may differ from Dk.
        scale: multiplies the energy before the softmax. Default 1.0 (unscaled energy, as in
            SAGAN and PoNA) -- models pass theirs explicitly.

    Returns:
        [B, Nq, Dv], dtype of q. Differentiable in q, k and v.

    Runs the custom op ``pyposert::attention`` (the fused kernel / ONNX
    ``pyposert::FusedAttention`` at export), or plain math inside :func:`plain_attention`.
    """
    s = 1.0 if scale is None else float(scale)
    if plain_attention_enabled():
        _check_attention_inputs(q, k, v)
        return _attention_math(q, k, v, s)
    return torch.ops.pyposert.attention(q, k, v, s)


def attention_reference(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None) -> Tensor:
    """Float64 reference of :func:`attention`: einsum, max-subtracted exp, normalise.

    Returns float64 [B, Nq, Dv]; for tests and parity checks.
    """
    s = 1.0 if scale is None else float(scale)
    q64, k64, v64 = q.double(), k.double(), v.double()
    energy = s * torch.einsum("bjd,bid->bji", q64, k64)
    energy = energy - energy.amax(dim=-1, keepdim=True)
    w = torch.exp(energy)
    w = w / w.sum(dim=-1, keepdim=True)
    return torch.einsum("bji,bie->bje", w, v64)


# ----------------------------------------------------------------------------------------
# heatmaps
# ----------------------------------------------------------------------------------------

HEATMAP_MODES = tuple(torch_ops.HEATMAP_MODES)  # ("gaussian", "disk"), the kernel's modes


def heatmaps(keypoints: Tensor, height: int, width: int, **params: Any) -> Tensor:
    """Rasterise keypoints into one map per joint (same convention as ``pyposert.ops.heatmaps``).

    Args:
        keypoints: [B, K, 2] (x, y) in pixels, x = column, y = row. Any floating dtype; cast to
            float32 first (the native kernel takes float32). A joint is missing -- its channel is
            all zero -- if its ORIGINAL x or y is negative, NaN or infinite.
        height, width: output size H, W (>= 0).
        **params: ``mode``, ``sigma``, ``radius``, ``scale``, ``offset``, checked by
            :class:`pyposert.ops.HeatmapParams` (defaults: Gaussian, sigma 6, radius 4, identity
            map): "gaussian" is exp(-d^2 / (2 sigma^2)), peak 1, not renormalised; "disk" is 1
            where d^2 <= radius^2, else 0; (sx, sy), (ox, oy) map keypoint pixels to output
            pixels, x' = x * sx + ox, y' = y * sy + oy (e.g. a resize/letterbox).

    The value at integer pixel (px, py), px in [0, W), py in [0, H), is computed in float32:
        dx = px - x', dy = py - y', d2 = dx * dx + dy * dy,
        gaussian: exp(-d2 / two_sigma_sq) with two_sigma_sq = float32(2 * sigma * sigma),
        disk: d2 <= float32(radius * radius).
    Joints outside the canvas still contribute their tails inside it.

    Returns:
        float32 [B, K, H, W] in [0, 1], on the keypoints' device.
    """
    hm = HeatmapParams(**params)
    if keypoints.dim() != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must be [B, K, 2] (x, y), got {list(keypoints.shape)}")
    if not keypoints.dtype.is_floating_point:
        raise ValueError(f"keypoints must be floating point, got {keypoints.dtype}")
    if height < 0 or width < 0:
        raise ValueError(f"heatmap size must be >= 0, got height={height}, width={width}")
    return torch_ops.heatmaps(keypoints, height, width, hm.mode, hm.sigma, hm.radius, hm.scale, hm.offset)


def heatmaps_pair(source: Tensor, target: Tensor, height: int, width: int, **params: Any) -> Tensor:
    """Generator pose input: concat(heatmaps(source), heatmaps(target)) -> float32 [B, 2K, H, W].

    source, target: [B, K, 2] (x, y) keypoints of the source photo and of the target pose, both
    already in the same pixel frame (scale/offset apply to both). Source channels come first.
    ``params`` as in :func:`heatmaps`.
    """
    if source.shape != target.shape:
        raise ValueError(
            f"source and target keypoints must have one shape, got {list(source.shape)} and "
            f"{list(target.shape)}"
        )
    both = torch.cat([source, target], dim=1)  # [B, 2K, 2]: one map per joint, source first
    return heatmaps(both, height, width, **params)
