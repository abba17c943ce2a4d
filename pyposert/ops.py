"""pyposert's kernels as functions: heatmaps, attention, warp, to_model_input / from_model_output.

Every op runs on the CPU for numpy arrays and on the GPU for CUDA arrays (anything with
``__cuda_array_interface__`` or DLPack: torch, cupy, ...), on the caller's stream, with the
GIL released during native work. Inputs are validated here, once: a wrong rank, shape,
dtype, contiguity or device raises ValueError saying what was expected and what was given.

Coordinate convention everywhere: keypoints are (x, y) pixels, x first; pixel (px, py) has
its centre at integer coordinates; a joint is missing when x or y is negative, NaN or inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Optional

import numpy as np

from . import _C
from ._arrays import ArrayInfo, array_info, empty_like_producer, stream_handle

HeatmapMode = Literal["gaussian", "disk"]
FloatDType = Literal["float32", "float16"]

# Codes and limits the kernels define (csrc/heatmaps.h, common.h, attention.h).
_MODES: dict[str, int] = dict(_C.HEATMAP_MODES)
_DTYPE_CODES: dict[str, int] = dict(_C.DTYPES)
ATTENTION_MAX_DK: int = int(_C.ATTENTION_TILES["max_dk"])

__all__ = [
    "ATTENTION_MAX_DK",
    "HeatmapParams",
    "Letterbox",
    "attention",
    "from_model_output",
    "heatmaps",
    "heatmaps_pair",
    "letterbox",
    "to_model_input",
    "warp",
]


# ------------------------------------------------------------------ validation helpers
def _check(info: ArrayInfo, expected: str, shape: tuple[Optional[int], ...], dtypes: tuple[str, ...],
           contiguous: bool = True) -> None:
    ok = len(info.shape) == len(shape) and all(e is None or e == g for e, g in zip(shape, info.shape))
    ok = ok and info.dtype in dtypes
    if not ok:
        raise ValueError(f"{info.name} must be {expected}, got {info.describe()}")
    if contiguous and not info.c_contiguous:
        raise ValueError(f"{info.name} must be C-contiguous ({expected}), got strides {list(info.strides)} bytes")


def _same_device(*infos: ArrayInfo) -> str:
    devices = {(i.device, i.device_id) for i in infos}
    if len(devices) != 1:
        described = ", ".join(f"{i.name} {i.describe()}" for i in infos)
        raise ValueError(f"all arrays must be on one device, got {described}")
    return infos[0].device


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _dtype_name(dtype: Any) -> str:
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in _DTYPE_CODES:
        raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
    return name


def _output(out: Any, like: ArrayInfo, shape: tuple[int, ...], dtype: str, expected: str,
            name: str = "out", contiguous: bool = True) -> tuple[Any, ArrayInfo]:
    """Validate a caller-provided output array ``name`` or allocate one on ``like``'s device
    (C-contiguous unless ``contiguous`` is False, when the caller checks the layout)."""
    if out is None:
        if like.device == "cpu":
            out = np.empty(shape, dtype=dtype)
        else:
            out = empty_like_producer(like, shape, dtype, name)
    info = array_info(out, name)
    _check(info, expected, shape, (dtype,), contiguous)
    if info.device == "cpu" and not info.numpy.flags.writeable:
        raise ValueError(f"{name} must be writable")
    _same_device(like, info)
    return out, info


# ------------------------------------------------------------------ heatmaps
@dataclass(frozen=True)
class HeatmapParams:
    """How keypoints become heatmaps, checked once: the keyword arguments of :func:`heatmaps`,
    :func:`heatmaps_pair` and their torch twins in ``training.ops``.

    Attributes:
        mode: "gaussian": exp(-((px - x')^2 + (py - y')^2) / (2 sigma^2)) on the integer
            pixel grid (PATN/PoNA); "disk": 1 inside ``radius``, 0 outside (PG2).
        sigma: the Gaussian's standard deviation in output pixels (finite; > 0 for "gaussian").
        radius: the disk's radius in output pixels (finite; >= 0 for "disk").
        scale, offset: (x, y) map from the annotation frame to the output frame,
            x' = x * scale[0] + offset[0], y' = y * scale[1] + offset[1] (finite).

    ValueError naming the argument when one is not as above.
    """

    mode: HeatmapMode = "gaussian"
    sigma: float = 6.0
    radius: float = 4.0
    scale: tuple[float, float] = (1.0, 1.0)
    offset: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"heatmaps mode must be one of {tuple(_MODES)}, got {self.mode!r}")
        sigma, radius = _finite("sigma", self.sigma), _finite("radius", self.radius)
        if self.mode == "gaussian" and sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if self.mode == "disk" and radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        pairs = {}
        for name in ("scale", "offset"):
            value = getattr(self, name)
            if len(tuple(value)) != 2:
                raise ValueError(f"{name} must be (x, y), got {value!r}")
            pairs[name] = tuple(_finite(name, v) for v in value)
        for name, value in (("sigma", sigma), ("radius", radius), *pairs.items()):
            object.__setattr__(self, name, value)


def heatmaps(
    keypoints: Any,
    height: int,
    width: int,
    *,
    dtype: Any = "float32",
    out: Any = None,
    channel_offset: int = 0,
    stream: Any = None,
    **params: Any,
) -> Any:
    """Rasterise keypoints into one heatmap channel per joint.

    Args:
        keypoints: [B, K, 2] float32 (x, y) pixels of the annotation frame, C-contiguous;
            numpy for the CPU, a CUDA array for the GPU. Missing joint: x or y negative,
            NaN or inf -> all-zero channel.
        height, width: output H, W.
        dtype: float32 or float16 output.
        out: optional C-contiguous [B, C, H, W] output on the keypoints' device, C >=
            ``channel_offset`` + K (C = K when ``channel_offset`` is 0 and ``out`` is None).
        channel_offset: the first channel written: channels [offset, offset + K) of every
            sample of ``out`` are written, the others left as they are (so the target half
            of a [B, 2K, H, W] pose input is filled in place with ``channel_offset=K``).
        stream: CUDA stream (int handle, torch/cupy stream); default: the producer's current.
        **params: ``mode``, ``sigma``, ``radius``, ``scale``, ``offset``: see
            :class:`HeatmapParams` (defaults: Gaussian, sigma 6, radius 4, identity map).

    Returns:
        ``out`` ([B, C, H, W]), or a new [B, K, H, W]; values in [0, 1], same device as
        ``keypoints``.
    """
    hm = HeatmapParams(**params)
    kp = array_info(keypoints, "keypoints")
    _check(kp, "[B, K, 2] float32 (x, y)", (None, None, 2), ("float32",))
    batch, joints = kp.shape[0], kp.shape[1]
    dt = _dtype_name(dtype)
    h, w = _size("height", height), _size("width", width)
    if isinstance(channel_offset, bool) or not isinstance(channel_offset, (int, np.integer)) or channel_offset < 0:
        raise ValueError(f"channel_offset must be an integer >= 0, got {channel_offset!r}")
    first = int(channel_offset)
    if out is None and first:
        raise ValueError(f"channel_offset={first} needs out= (the [B, C, H, W] buffer it indexes)")
    # The channel count C is the given buffer's (its batch stride is C * H * W); a buffer of
    # another rank fails in _output with the expected shape.
    shape = tuple(getattr(out, "shape", ()))
    channels = int(shape[1]) if len(shape) == 4 else joints + first
    if channels < joints + first:
        raise ValueError(f"out has {channels} channels; channel_offset + K = {first} + {joints} do not fit")
    expected = f"[{batch}, {channels}, {h}, {w}] {dt}" + (f" (channels {first}..{first + joints - 1} written)"
                                                          if channels != joints else "")
    out, oi = _output(out, kp, (batch, channels, h, w), dt, expected)
    (sx, sy), (ox, oy), mode = hm.scale, hm.offset, _MODES[hm.mode]
    if kp.device == "cpu":
        _C.heatmaps_cpu(kp.numpy, oi.numpy, first, mode, hm.sigma, hm.radius, sx, sy, ox, oy)
    else:
        _C.heatmaps_cuda(kp.data, oi.data, _DTYPE_CODES[oi.dtype], batch, joints, h, w, channels, first, mode,
                         hm.sigma, hm.radius, sx, sy, ox, oy, stream_handle(stream, kp))
    return out


def heatmaps_pair(source: Any, target: Any, height: int, width: int, *, dtype: Any = "float32", out: Any = None,
                  stream: Any = None, **params: Any) -> Any:
    """Source and target heatmaps in one [B, 2K, H, W] buffer (source channels first).

    This is the generators' pose input (36 channels for COCO-18). ``source`` and ``target``
    are [B, K, 2] float32 (x, y) on the same device; ``out`` an optional [B, 2K, H, W]
    output; the other arguments are as in :func:`heatmaps`.
    """
    src = array_info(source, "source")
    tgt = array_info(target, "target")
    _check(src, "[B, K, 2] float32 (x, y)", (None, None, 2), ("float32",))
    _check(tgt, f"[{src.shape[0]}, {src.shape[1]}, 2] float32 (x, y), like source", src.shape, ("float32",))
    _same_device(src, tgt)
    batch, joints = src.shape[0], src.shape[1]
    dt = _dtype_name(dtype)
    h, w = _size("height", height), _size("width", width)
    out, _ = _output(out, src, (batch, 2 * joints, h, w), dt, f"[{batch}, {2 * joints}, {h}, {w}] {dt}")
    for keypoints, first in ((source, 0), (target, joints)):
        heatmaps(keypoints, h, w, dtype=dt, out=out, channel_offset=first, stream=stream, **params)
    return out


def _size(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


# ------------------------------------------------------------------ attention
def _row_strides(info: ArrayInfo, expected: str) -> tuple[int, int]:
    """(batch, row) element strides of a [B, N, D] array whose last axis must be unit-stride."""
    if 0 in info.shape:
        return 0, 0  # nothing is read or written (and numpy may report zero strides)
    item = 2 if info.dtype == "float16" else 4
    sb, sr, sd = info.strides
    if (info.shape[2] > 1 and sd != item) or sb % item or sr % item:
        raise ValueError(f"{info.name} must have a C-contiguous last axis ({expected}; any batch and row "
                         f"strides), got strides {list(info.strides)} bytes")
    return sb // item, sr // item


def attention(q: Any, k: Any, v: Any, *, scale: float = 1.0, out: Any = None, stream: Any = None) -> Any:
    """Fused softmax attention with different key and value widths.

    ``out[b, j] = sum_i softmax_i(scale * q[b, j] . k[b, i]) * v[b, i]`` (softmax over keys),
    computed tile by tile with an online softmax; the Nq x Nk matrix is never stored.

    Args:
        q: [B, Nq, Dk], k: [B, Nk, Dk], v: [B, Nk, Dv]; one device, one dtype.
            CPU: float32. CUDA: float32 or float16 (fp32 accumulation), Dk <= 128.
            The last axis must be unit-stride; batch and row strides are free, so a head slice
            (``x[:, :, h * d:(h + 1) * d]``), a transposed-batch view or a broadcast (stride-0)
            batch is read in place, without a copy.
        scale: multiplies q . k (PoNA's attention uses 1.0; SDPA's default is 1/sqrt(Dk)).
        out: optional [B, Nq, Dv] output, written in place; like the inputs it may be a strided
            view with a unit-stride last axis, but its elements must not overlap.
        stream: CUDA stream, as in :func:`heatmaps`.

    Returns:
        [B, Nq, Dv] on the inputs' device, same dtype.
    """
    qi, ki, vi = array_info(q, "q"), array_info(k, "k"), array_info(v, "v")
    device = _same_device(qi, ki, vi)
    dtypes = ("float32",) if device == "cpu" else ("float32", "float16")
    names = " or ".join(dtypes)
    _check(qi, f"[B, Nq, Dk] {names}", (None, None, None), dtypes, contiguous=False)
    batch, queries, dk = qi.shape
    _check(ki, f"[{batch}, Nk, {dk}] {qi.dtype} (batch and Dk of q)", (batch, None, dk), (qi.dtype,),
           contiguous=False)
    keys = ki.shape[1]
    _check(vi, f"[{batch}, {keys}, Dv] {qi.dtype} (batch and Nk of k)", (batch, keys, None), (qi.dtype,),
           contiguous=False)
    dv = vi.shape[2]
    if dk < 1:
        raise ValueError(f"q must have Dk >= 1, got {qi.describe()}")
    if keys < 1 and batch * queries > 0:
        raise ValueError(f"k must have at least one key (Nk >= 1), got {ki.describe()}")
    if device == "cuda" and dk > ATTENTION_MAX_DK:
        raise ValueError(f"CUDA attention supports Dk <= {ATTENTION_MAX_DK}, got q {qi.describe()}")
    scale = _finite("scale", scale)
    shape = (batch, queries, dv)
    expected = f"[{batch}, {queries}, {dv}] {qi.dtype}"
    out, oi = _output(out, qi, shape, qi.dtype, expected, contiguous=False)
    strides = [_row_strides(info, "[B, N, D]") for info in (qi, ki, vi)] + [_row_strides(oi, expected)]
    if device == "cpu":
        _C.attention_cpu(qi.numpy, ki.numpy, vi.numpy, oi.numpy, scale)
    else:
        _C.attention_cuda(qi.data, ki.data, vi.data, oi.data, _DTYPE_CODES[qi.dtype], batch, queries, keys,
                          dk, dv, scale, *strides, stream_handle(stream, qi))
    return out


# ------------------------------------------------------------------ warp
WARP_PARTS = ("r_forearm", "l_forearm", "r_upper_arm", "l_upper_arm", "head", "r_shin", "l_shin", "r_thigh",
              "l_thigh", "torso")


def warp(image: Any, source_keypoints: Any, target_keypoints: Any, height: int, width: int, *,
         out: Any = None, coverage: Any = None, stream: Any = None) -> tuple[Any, Any]:
    """Warp a source image part by part from its skeleton to a target skeleton.

    For every target pixel, each body part (:data:`WARP_PARTS`, composited front to back:
    forearms, upper arms, head, shins, thighs, torso) samples the source where the part's
    target -> source transform sends the pixel, weighted by the pixel's distance to the
    part in the target frame. Limbs use the similarity that maps the target bone onto the
    source bone, the head a least-squares similarity of the face points and neck, the torso a
    least-squares affine map of neck, shoulders and hips. Parts whose joints are missing in
    either skeleton drop out; zero-length bones fall back to a translation scaled by the two
    skeletons' body sizes. The exact math is in ``csrc/warp.h``.

    Args:
        image: [B, C, Hs, Ws] source images (any value range; the model's [-1, 1] RGB, say),
            C-contiguous; numpy float32 for the CPU, a CUDA array float32 or float16 for the GPU.
        source_keypoints: [B, 18, 2] float32 COCO-18 (x, y) in source-image pixels.
        target_keypoints: [B, 18, 2] float32 COCO-18 (x, y) in output pixels. Missing joint
            (in either): x or y negative, NaN or inf.
        height, width: output H, W.
        out, coverage: optional outputs [B, C, H, W] and [B, 1, H, W] (image's dtype and device).
        stream: CUDA stream, as in :func:`heatmaps`.

    Returns:
        (warped [B, C, H, W], coverage [B, 1, H, W]): the composited source colours (0 where
        nothing covers the pixel) and the coverage in [0, 1] (1 - the transmittance left
        after all parts), on the image's device, in its dtype.
    """
    im = array_info(image, "image")
    sk, tk = array_info(source_keypoints, "source_keypoints"), array_info(target_keypoints, "target_keypoints")
    device = _same_device(im, sk, tk)
    dtypes = ("float32",) if device == "cpu" else ("float32", "float16")
    _check(im, f"[B, C, Hs, Ws] {' or '.join(dtypes)}", (None, None, None, None), dtypes)
    batch, channels, src_h, src_w = im.shape
    for kp in (sk, tk):
        _check(kp, f"[{batch}, 18, 2] float32 (x, y), the image's batch", (batch, 18, 2), ("float32",))
    if batch > 0 and (src_h < 1 or src_w < 1):
        raise ValueError(f"image must be at least 1 x 1 pixels, got {im.describe()}")
    h, w = _size("height", height), _size("width", width)
    out, oi = _output(out, im, (batch, channels, h, w), im.dtype, f"[{batch}, {channels}, {h}, {w}] {im.dtype}")
    coverage, ci = _output(coverage, im, (batch, 1, h, w), im.dtype, f"[{batch}, 1, {h}, {w}] {im.dtype}",
                           "coverage")
    if batch == 0:
        return out, coverage
    if device == "cpu":
        _C.warp_cpu(im.numpy, sk.numpy, tk.numpy, oi.numpy, ci.numpy)
    else:
        _C.warp_cuda(im.data, sk.data, tk.data, oi.data, ci.data, _DTYPE_CODES[im.dtype], batch, channels, src_h,
                     src_w, h, w, stream_handle(stream, im))
    return out, coverage


# ------------------------------------------------------------------ imageproc
@dataclass(frozen=True)
class Letterbox:
    """How an image of [src_height, src_width] sits inside the model frame [height, width].

    The image is scaled by min(H / h, W / w) into the content box (box_x, box_y,
    box_width, box_height); the bars around it are padding. Keypoints (x, y) map with
    pixel centres preserved: x_model = (x + 0.5) * box_width / src_width - 0.5 + box_x.
    """

    src_height: int
    src_width: int
    height: int
    width: int
    box_x: int
    box_y: int
    box_width: int
    box_height: int

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) scale from image pixels to model pixels."""
        return self.box_width / self.src_width, self.box_height / self.src_height

    @property
    def offset(self) -> tuple[float, float]:
        """(x, y) offset of the image -> model map, x_model = x * scale_x + offset_x."""
        sx, sy = self.scale
        return 0.5 * sx - 0.5 + self.box_x, 0.5 * sy - 0.5 + self.box_y

    def to_model(self, keypoints: np.ndarray) -> np.ndarray:
        """Map [..., 2] (x, y) image pixels into model pixels (or [..., 3] with confidence,
        kept). Missing joints (negative, NaN, inf) become -1.

        A present joint on the first row/column can land a fraction of a pixel below 0 (pixel
        centres are preserved when scaling); it is clamped to 0, because to the kernels any
        negative coordinate means "missing"."""
        return self._map(keypoints, self.scale, self.offset)

    def to_image(self, keypoints: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_model`: model pixels -> image pixels (x, y), with the same
        missing (-1) and clamp-at-0 rules."""
        sx, sy = self.scale
        ox, oy = self.offset
        return self._map(keypoints, (1.0 / sx, 1.0 / sy), (-ox / sx, -oy / sy))

    @staticmethod
    def _map(keypoints: np.ndarray, scale: tuple[float, float], offset: tuple[float, float]) -> np.ndarray:
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim < 1 or kp.shape[-1] not in (2, 3):
            raise ValueError(f"keypoints must be [..., 2] (x, y) or [..., 3] (x, y, confidence), got {list(kp.shape)}")
        xy = kp[..., :2]
        missing = ~np.isfinite(xy).all(axis=-1) | (xy < 0).any(axis=-1)
        mapped = kp.copy()
        mapped[..., 0] = np.maximum(xy[..., 0] * scale[0] + offset[0], 0.0)
        mapped[..., 1] = np.maximum(xy[..., 1] * scale[1] + offset[1], 0.0)
        mapped[..., :2][missing] = -1.0
        return mapped.astype(np.float32)


def letterbox(src_height: int, src_width: int, height: int, width: int) -> Letterbox:
    """The letterbox that fits an [src_height, src_width] image into [height, width]."""
    for name, value in (("src_height", src_height), ("src_width", src_width), ("height", height), ("width", width)):
        if _size(name, value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    bx, by, bw, bh = _C.letterbox(src_height, src_width, height, width)
    return Letterbox(int(src_height), int(src_width), int(height), int(width), bx, by, bw, bh)


def to_model_input(
    image: Any,
    height: int,
    width: int,
    *,
    bgr: bool = True,
    dtype: Any = "float32",
    pad_value: float = 1.0,
    out: Any = None,
    stream: Any = None,
) -> tuple[Any, Letterbox]:
    """Photo/frame -> network input.

    Args:
        image: uint8 [h, w, 3] (BGR if ``bgr`` else RGB), any size >= 1 x 1; rows may be
            padded (a crop of a larger frame), pixels must be packed.
        height, width: model size H, W.
        dtype: float32 or float16 output.
        pad_value: value of the letterbox bars in [-1, 1] units (1.0 = white).
        out: optional [3, H, W] output on the image's device.

    Returns:
        ([3, H, W] RGB in [-1, 1] on the image's device, the Letterbox used — its
        ``to_model`` maps the image's keypoints into the model frame).
    """
    info = array_info(image, "image")
    _check(info, "[h, w, 3] uint8 (BGR/RGB)", (None, None, 3), ("uint8",), contiguous=False)
    h, w = info.shape[0], info.shape[1]
    if h < 1 or w < 1:
        raise ValueError(f"image must be at least 1 x 1 pixels, got {info.describe()}")
    if info.strides[1:] != (3, 1) or info.strides[0] < 3 * w:
        raise ValueError(f"image pixels must be packed (byte strides [row >= {3 * w}, 3, 1]), got {list(info.strides)}")
    box = letterbox(h, w, height, width)
    dt = _dtype_name(dtype)
    pad_value = _finite("pad_value", pad_value)
    out, oi = _output(out, info, (3, box.height, box.width), dt, f"[3, {box.height}, {box.width}] {dt}")
    if info.device == "cpu":
        _C.to_model_input_cpu(info.numpy, oi.numpy, bool(bgr), pad_value)
    else:
        _C.to_model_input_cuda(info.data, info.strides[0], h, w, oi.data, _DTYPE_CODES[dt], box.height, box.width,
                               bool(bgr), pad_value, stream_handle(stream, info))
    return out, box


def from_model_output(
    output: Any,
    box: Letterbox,
    *,
    unletterbox: bool = True,
    bgr: bool = True,
    out: Any = None,
    stream: Any = None,
) -> Any:
    """Network output -> displayable image.

    Args:
        output: [3, H, W] RGB float32/float16 in [-1, 1] (values outside are clamped;
            NaN becomes 0), C-contiguous, with (H, W) = (box.height, box.width).
        box: the Letterbox returned by :func:`to_model_input` for the source image.
        unletterbox: True: crop the content box and resample it back to the source size
            [box.src_height, box.src_width]; False: keep the model size.
        bgr: channel order of the result (BGR for OpenCV, else RGB).
        out: optional uint8 [h, w, 3] output on the same device.

    Returns:
        uint8 [h, w, 3], u8 = clamp(floor((v + 1) * 127.5 + 0.5), 0, 255).
    """
    if not isinstance(box, Letterbox):
        raise ValueError(f"box must be the Letterbox that ops.to_model_input returned for the source image (or "
                         f"ops.letterbox(H, W, H, W) for an image already at the model size), got "
                         f"{type(box).__name__}")
    info = array_info(output, "output")
    _check(info, f"[3, {box.height}, {box.width}] float32/float16 RGB", (3, box.height, box.width),
           ("float32", "float16"))
    h, w = (box.src_height, box.src_width) if unletterbox else (box.height, box.width)
    out, oi = _output(out, info, (h, w, 3), "uint8", f"[{h}, {w}, 3] uint8")
    if info.device == "cpu":
        _C.from_model_output_cpu(info.numpy, oi.numpy, box.src_height, box.src_width, bool(unletterbox), bool(bgr))
    else:
        _C.from_model_output_cuda(info.data, _DTYPE_CODES[info.dtype], box.height, box.width, oi.data,
                                  box.src_height, box.src_width, bool(unletterbox), bool(bgr),
                                  stream_handle(stream, info))
    return out
