"""pyposert's torch custom ops, each registered here and only here.

    pyposert::attention(q, k, v, scale) -> out                      fused softmax attention
    pyposert::pose_heatmaps(source, target, mode, sigma, radius, height, width) -> heatmaps
    pyposert::warp(image, source_keypoints, target_keypoints, height, width) -> (warped, coverage)

Each op has one registration function (idempotent; imports torch when called, so importing
this module does not): its eager forward runs pyposert's native kernels (:mod:`pyposert.ops`),
its ``register_fake`` gives shapes for ``torch.export`` / ONNX export. Who uses them:

- the torch backend registers them before loading a program that calls them;
- ``training.ops`` attaches autograd to ``pyposert::attention`` (``torch.library.register_autograd``)
  and a FLOP formula; the models call the ops through it;
- ``export.torch_ops`` maps them to the ONNX nodes ``pyposert::FusedAttention``, ``PoseHeatmap``
  and ``Warp`` (TensorRT plugins in export/plugins).

Shapes, dtypes and coordinate conventions are those of :mod:`pyposert.ops`: keypoints are
float32 (x, y) pixels, x first; a joint is missing when x or y is negative, NaN or inf.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from . import _C

__all__ = [
    "HEATMAP_MODES",
    "check_attention_inputs",
    "check_pose_heatmap_attributes",
    "heatmaps",
    "register_all",
    "register_attention",
    "register_pose_heatmaps",
    "register_warp",
]

HEATMAP_MODES: dict[str, int] = dict(_C.HEATMAP_MODES)  # mode name -> code of the op's `mode` argument
_MODE_NAMES: dict[int, str] = {code: name for name, code in HEATMAP_MODES.items()}


def _once(register: Callable[[Any], None]) -> Callable[[], Any]:
    """Run ``register(torch)`` on the first call only; every call returns torch.ops.pyposert."""
    done = False

    def wrapper() -> Any:
        nonlocal done
        import torch

        if not done:
            register(torch)
            done = True
        return torch.ops.pyposert

    wrapper.__name__ = register.__name__.lstrip("_")
    wrapper.__doc__ = register.__doc__
    return wrapper


# ------------------------------------------------------------------ attention
def check_attention_inputs(q: Any, k: Any, v: Any) -> None:
    """Raise ValueError unless q [B, Nq, Dk], k [B, Nk, Dk], v [B, Nk, Dv] (torch tensors) agree."""
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise ValueError("attention expects q [B, Nq, Dk], k [B, Nk, Dk], v [B, Nk, Dv] (3-D each), got "
                         f"q {list(q.shape)}, k {list(k.shape)}, v {list(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype) or not q.dtype.is_floating_point:
        raise ValueError(f"attention expects q, k, v of one floating dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    (bq, _, dq), (bk, nk, dk), (bv, nv, _) = q.shape, k.shape, v.shape
    if not (bq == bk == bv):
        raise ValueError(f"attention batch sizes differ: q {bq}, k {bk}, v {bv}")
    if dq != dk:
        raise ValueError(f"attention q and k feature dims differ: q [.., .., {dq}], k [.., .., {dk}]")
    if nk != nv:
        raise ValueError(f"attention k and v token counts differ: k [.., {nk}, ..], v [.., {nv}, ..]")


def _unit_last_axis(t: Any) -> Any:
    """``t`` itself when its last axis is unit-stride (any other strides are read in place)."""
    return t if t.shape[-1] <= 1 or t.stride(-1) == 1 else t.contiguous()


def _register_attention(torch: Any) -> None:
    """Register ``pyposert::attention(Tensor q, Tensor k, Tensor v, float scale) -> Tensor``:
    q [B, Nq, Dk], k [B, Nk, Dk], v [B, Nk, Dv] -> [B, Nq, Dv] = softmax(scale * q k^T) v,
    one floating dtype. The native kernel runs float32 on the CPU and float32/float16 with
    Dk <= 128 on CUDA; other dtypes and widths run the same math in torch. No autograd here
    (training.ops attaches it)."""
    from . import ops

    # The schema is spelled out: annotations here are strings (postponed evaluation) naming a
    # torch imported inside a function, which schema inference cannot resolve.
    @torch.library.custom_op("pyposert::attention", mutates_args=(),
                             schema="(Tensor q, Tensor k, Tensor v, float scale) -> Tensor")
    def attention(q: Any, k: Any, v: Any, scale: float) -> Any:
        check_attention_inputs(q, k, v)
        out = q.new_empty(q.shape[0], q.shape[1], v.shape[2])
        if k.shape[1] == 0 or out.numel() == 0:
            return out.zero_()  # a sum over no keys is zero
        native = (q.dtype == torch.float32 or (q.is_cuda and q.dtype == torch.float16)) and (
            not q.is_cuda or q.shape[2] <= ops.ATTENTION_MAX_DK)
        if not native:
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=float(scale))
        q, k, v = (_unit_last_axis(t.detach()) for t in (q, k, v))
        ops.attention(q, k, v, scale=scale, out=out)  # CUDA: on torch's current stream
        return out

    @attention.register_fake
    def _(q: Any, k: Any, v: Any, scale: float) -> Any:
        check_attention_inputs(q, k, v)  # shape errors surface while tracing/exporting too
        return q.new_empty(q.shape[0], q.shape[1], v.shape[2])


register_attention = _once(_register_attention)


# ------------------------------------------------------------------ pose heatmaps
def heatmaps(keypoints: Any, height: int, width: int, mode: str, sigma: float, radius: float,
             scale: tuple[float, float] = (1.0, 1.0), offset: tuple[float, float] = (0.0, 0.0)) -> Any:
    """The heatmap kernel's math in torch: [B, K, 2] (x, y) -> float32 [B, K, H, W] in [0, 1].

    The torch twin of :func:`pyposert.ops.heatmaps` (same conventions; the native CPU kernel
    differs by at most a couple of ulp): training rasterises with it, and it is the eager
    form of ``pyposert::pose_heatmaps``. At integer pixel (px, py), in float32,
    x' = x * scale[0] + offset[0] (y' likewise), d2 = (px - x')^2 + (py - y')^2,
    gaussian: exp(-d2 / float32(2 sigma^2)); disk: d2 <= float32(radius^2). A joint whose
    original x or y is negative, NaN or inf gives an all-zero channel. Arguments are not
    validated here (training.ops.heatmaps does that).
    """
    import torch

    f32 = torch.float32
    kp = keypoints.to(f32)
    dev = kp.device
    x, y = kp[..., 0], kp[..., 1]  # [B, K]
    present = torch.isfinite(x) & torch.isfinite(y) & (x >= 0) & (y >= 0)
    (sx, sy), (ox, oy) = (torch.tensor(scale, dtype=f32, device=dev), torch.tensor(offset, dtype=f32, device=dev))
    # Missing joints are replaced by 0 before the arithmetic so NaN/inf never reach exp();
    # their channel is zeroed below anyway.
    xt = torch.where(present, x, torch.zeros_like(x)) * sx + ox
    yt = torch.where(present, y, torch.zeros_like(y)) * sy + oy
    dx = torch.arange(width, dtype=f32, device=dev).view(1, 1, 1, width) - xt[..., None, None]  # [B, K, 1, W]
    dy = torch.arange(height, dtype=f32, device=dev).view(1, 1, height, 1) - yt[..., None, None]  # [B, K, H, 1]
    d2 = dx * dx + dy * dy  # [B, K, H, W], float32
    if mode == "gaussian":
        maps = torch.exp(-d2 / torch.tensor(2.0 * sigma * sigma, dtype=f32, device=dev))
    else:
        maps = (d2 <= torch.tensor(radius * radius, dtype=f32, device=dev)).to(f32)
    return maps * present[..., None, None].to(f32)


def check_pose_heatmap_attributes(mode: int, sigma: float, radius: float, height: int, width: int) -> None:
    """Raise ValueError unless the attributes of ``pyposert::pose_heatmaps`` (and of its ONNX node
    and TensorRT plugin) are valid: a mode code of :data:`HEATMAP_MODES`, size >= 1 x 1, a finite
    sigma > 0 (gaussian) or radius >= 0 (disk)."""
    if mode not in _MODE_NAMES:
        raise ValueError(f"pose_heatmaps mode must be one of {HEATMAP_MODES}, got {mode}")
    if height < 1 or width < 1:
        raise ValueError(f"pose_heatmaps size must be >= 1 x 1, got {height} x {width}")
    if _MODE_NAMES[mode] == "gaussian" and not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"pose_heatmaps sigma must be finite and > 0, got {sigma}")
    if _MODE_NAMES[mode] == "disk" and not (math.isfinite(radius) and radius >= 0):
        raise ValueError(f"pose_heatmaps radius must be finite and >= 0, got {radius}")


def _check_pose_heatmaps(source: Any, target: Any, mode: int, sigma: float, radius: float, height: int,
                         width: int) -> None:
    if source.dim() != 3 or source.shape[-1] != 2 or source.shape != target.shape:
        raise ValueError("pose_heatmaps expects source and target keypoints [B, K, 2] (x, y) of one shape, got "
                         f"{list(source.shape)} and {list(target.shape)}")
    check_pose_heatmap_attributes(mode, sigma, radius, height, width)


def _register_pose_heatmaps(torch: Any) -> None:
    """Register ``pyposert::pose_heatmaps(Tensor source, Tensor target, int mode, float sigma,
    float radius, int height, int width) -> Tensor``: float32 [B, K, 2] (x, y) model pixels
    twice -> float32 [B, 2K, height, width], source channels first; ``mode`` a code of
    :data:`HEATMAP_MODES`. The eager forward is :func:`heatmaps` (bit-exact with the maps the
    models were trained on); exported graphs run the PoseHeatmap node / plugin instead."""

    @torch.library.custom_op("pyposert::pose_heatmaps", mutates_args=(),
                             schema="(Tensor source, Tensor target, int mode, float sigma, float radius, int height, "
                                    "int width) -> Tensor")
    def pose_heatmaps(source: Any, target: Any, mode: int, sigma: float, radius: float, height: int,
                      width: int) -> Any:
        _check_pose_heatmaps(source, target, mode, sigma, radius, height, width)
        both = torch.cat([source, target], dim=1)  # [B, 2K, 2]: source channels first
        return heatmaps(both, height, width, _MODE_NAMES[mode], sigma, radius)

    @pose_heatmaps.register_fake
    def _(source: Any, target: Any, mode: int, sigma: float, radius: float, height: int, width: int) -> Any:
        _check_pose_heatmaps(source, target, mode, sigma, radius, height, width)
        return source.new_empty(source.shape[0], 2 * source.shape[1], height, width, dtype=torch.float32)


register_pose_heatmaps = _once(_register_pose_heatmaps)


# ------------------------------------------------------------------ warp
def _check_warp(image: Any, source_keypoints: Any, target_keypoints: Any, height: int, width: int) -> None:
    if image.dim() != 4:
        raise ValueError(f"warp expects image [B, C, Hs, Ws], got {list(image.shape)}")
    joints = (image.shape[0], _C.WARP_JOINTS, 2)
    for name, kp in (("source_keypoints", source_keypoints), ("target_keypoints", target_keypoints)):
        if tuple(kp.shape) != joints:
            raise ValueError(f"warp expects {name} {list(joints)} (x, y), the image's batch, got {list(kp.shape)}")
    if height < 0 or width < 0:
        raise ValueError(f"warp output size must be >= 0, got {height} x {width}")


def _register_warp(torch: Any) -> None:
    """Register ``pyposert::warp(Tensor image, Tensor source_keypoints, Tensor target_keypoints,
    int height, int width) -> (Tensor warped, Tensor coverage)``: image [B, C, Hs, Ws] float32 or
    float16, keypoints float32 [B, 18, 2] COCO-18 (x, y) (source in image pixels, target in
    output pixels) -> warped [B, C, H, W] and coverage [B, 1, H, W] in the image's dtype
    (:func:`pyposert.ops.warp`). Not differentiable: training feeds the warp as a fixed input
    computed from data (no gradient flows to the image or the keypoints), so no autograd is
    registered. float16 on the CPU is computed in float32."""
    from . import ops

    @torch.library.custom_op("pyposert::warp", mutates_args=(),
                             schema="(Tensor image, Tensor source_keypoints, Tensor target_keypoints, int height, "
                                    "int width) -> (Tensor, Tensor)")
    def warp(image: Any, source_keypoints: Any, target_keypoints: Any, height: int, width: int) -> Any:
        _check_warp(image, source_keypoints, target_keypoints, height, width)
        native = image if image.is_cuda or image.dtype == torch.float32 else image.float()
        batch, channels = image.shape[0], image.shape[1]
        warped = native.new_empty(batch, channels, height, width)
        coverage = native.new_empty(batch, 1, height, width)
        inputs = (t.detach().contiguous() for t in (native, source_keypoints, target_keypoints))
        ops.warp(*inputs, height, width, out=warped, coverage=coverage)  # CUDA: on torch's current stream
        return warped.to(image.dtype), coverage.to(image.dtype)

    @warp.register_fake
    def _(image: Any, source_keypoints: Any, target_keypoints: Any, height: int, width: int) -> Any:
        _check_warp(image, source_keypoints, target_keypoints, height, width)
        batch, channels = image.shape[0], image.shape[1]
        return image.new_empty(batch, channels, height, width), image.new_empty(batch, 1, height, width)


register_warp = _once(_register_warp)


def register_all() -> Any:
    """Register every pyposert op (idempotent); returns ``torch.ops.pyposert``."""
    register_attention()
    register_pose_heatmaps()
    return register_warp()
