"""Plain float64 numpy references of pyposert's kernels: slow, obvious, and the ground truth
the tests compare the CPU and CUDA kernels against."""

from __future__ import annotations

import numpy as np


def heatmaps_ref(keypoints: np.ndarray, height: int, width: int, mode: str = "gaussian", sigma: float = 6.0,
                 radius: float = 4.0, scale=(1.0, 1.0), offset=(0.0, 0.0)) -> np.ndarray:
    """keypoints [B, K, 2] (x, y) -> [B, K, H, W] float64; missing (negative/NaN/inf) -> zeros."""
    kp = np.asarray(keypoints, dtype=np.float64)
    batch, joints = kp.shape[:2]
    out = np.zeros((batch, joints, height, width))
    py, px = np.mgrid[0:height, 0:width].astype(np.float64)
    for b in range(batch):
        for k in range(joints):
            x, y = kp[b, k]
            if not (np.isfinite(x) and np.isfinite(y)) or x < 0 or y < 0:
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                kx, ky = x * scale[0] + offset[0], y * scale[1] + offset[1]
                d2 = (px - kx) ** 2 + (py - ky) ** 2
            if mode == "gaussian":
                out[b, k] = np.exp(-d2 / (2.0 * sigma * sigma))
            else:
                out[b, k] = d2 <= radius * radius
    return out


def attention_ref(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """softmax over keys of scale * q k^T, times v; float64, materialised."""
    s = np.einsum("bqd,bkd->bqk", q.astype(np.float64), k.astype(np.float64)) * scale
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return p @ v.astype(np.float64)


def resample_matrix(start: int, in_size: int, out_size: int, total: int) -> np.ndarray:
    """[out_size, total] weights of the triangle filter of imageproc.h (support widens when
    downscaling; taps outside [start, start + in_size) dropped, rows renormalised)."""
    ratio = in_size / out_size
    support = max(1.0, ratio)
    m = np.zeros((out_size, total))
    idx = np.arange(start, start + in_size)
    for o in range(out_size):
        center = start + (o + 0.5) * ratio
        w = np.clip(1.0 - np.abs(idx + 0.5 - center) / support, 0.0, None)
        m[o, idx] = w / w.sum()
    return m


def to_model_input_ref(image: np.ndarray, box, bgr: bool = True, pad_value: float = 1.0) -> np.ndarray:
    """uint8 [h, w, 3] -> [3, H, W] float64 RGB in [-1, 1] with the letterbox ``box``."""
    rgb = image[..., ::-1] if bgr else image
    h, w = image.shape[:2]
    wy = resample_matrix(0, h, box.box_height, h)
    wx = resample_matrix(0, w, box.box_width, w)
    out = np.full((3, box.height, box.width), pad_value, dtype=np.float64)
    for c in range(3):
        res = wy @ rgb[..., c].astype(np.float64) @ wx.T
        out[c, box.box_y:box.box_y + box.box_height, box.box_x:box.box_x + box.box_width] = res / 127.5 - 1.0
    return out


def quantize_ref(v: np.ndarray) -> np.ndarray:
    t = (np.asarray(v, dtype=np.float64) + 1.0) * 127.5 + 0.5
    t = np.where(np.isnan(t), 0.0, t)
    return np.floor(np.clip(t, 0.0, 255.0)).astype(np.uint8)


def from_model_output_ref(output: np.ndarray, box, unletterbox: bool = True, bgr: bool = True) -> np.ndarray:
    """[3, H, W] in [-1, 1] -> uint8 HWC; optionally the content box resampled to the source size."""
    x = np.asarray(output, dtype=np.float64)
    if unletterbox:
        wy = resample_matrix(box.box_y, box.box_height, box.src_height, box.height)
        wx = resample_matrix(box.box_x, box.box_width, box.src_width, box.width)
        x = np.stack([wy @ x[c] @ wx.T for c in range(3)])
    img = quantize_ref(np.moveaxis(x, 0, -1))
    return img[..., ::-1].copy() if bgr else img


# ------------------------------------------------------------------ warp (csrc/warp.h)
WARP_LIMBS = [  # (from joint, to joint, core / body size, slot), front-to-back slots as in warp_parts.h
    (3, 4, 0.08, 0), (6, 7, 0.08, 1), (2, 3, 0.10, 2), (5, 6, 0.10, 3),
    (9, 10, 0.10, 5), (12, 13, 0.10, 6), (8, 9, 0.13, 7), (11, 12, 0.13, 8),
]
WARP_HEAD_SLOT, WARP_TORSO_SLOT = 4, 9


def _present(kp: np.ndarray, j: int) -> bool:
    x, y = float(kp[j, 0]), float(kp[j, 1])
    return bool(np.isfinite(x) and np.isfinite(y) and x >= 0 and y >= 0)


def warp_body_size(kp: np.ndarray) -> float:
    if _present(kp, 1) and (_present(kp, 8) or _present(kp, 11)):
        hips = [kp[j].astype(np.float64) for j in (8, 11) if _present(kp, j)]
        length = float(np.linalg.norm(np.mean(hips, axis=0) - kp[1].astype(np.float64)))
        if length >= 1.0:
            return length
    if _present(kp, 2) and _present(kp, 5):
        length = 1.25 * float(np.linalg.norm(kp[2].astype(np.float64) - kp[5].astype(np.float64)))
        if length >= 1.0:
            return length
    longest = 0.0
    for a, b, _, _ in WARP_LIMBS:
        if _present(kp, a) and _present(kp, b):
            longest = max(longest, 1.5 * float(np.linalg.norm(kp[b].astype(np.float64) - kp[a].astype(np.float64))))
    return longest if longest >= 1.0 else 0.0


def _translation(t: np.ndarray, s: np.ndarray, scale: float) -> np.ndarray:
    return np.array([[scale, 0.0, s[0] - scale * t[0]], [0.0, scale, s[1] - scale * t[1]]])


def _similarity(t: np.ndarray, s: np.ndarray, fallback_scale: float) -> np.ndarray:
    tm, sm = t.mean(0), s.mean(0)
    u, v = t - tm, s - sm
    uu = float((u ** 2).sum())
    if uu < 1.0:
        return _translation(tm, sm, fallback_scale)
    re = float((u[:, 0] * v[:, 0] + u[:, 1] * v[:, 1]).sum()) / uu
    im = float((u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]).sum()) / uu
    if re * re + im * im < 1e-6:
        return _translation(tm, sm, fallback_scale)
    a = np.array([[re, -im], [im, re]])
    return np.concatenate([a, (sm - a @ tm)[:, None]], 1)


def _affine(t: np.ndarray, s: np.ndarray, rho: float):
    if len(t) < 3:
        return None
    tm, sm = t.mean(0), s.mean(0)
    u, v = t - tm, s - sm
    c = u.T @ u
    det, trace = float(np.linalg.det(c)), float(np.trace(c))
    if trace < 1.0 or det < 1e-3 * trace * trace:
        return None
    a = (v.T @ u) @ np.linalg.inv(c)
    area = float(np.linalg.det(a))
    if not (rho * rho / 25.0 < area < 25.0 * rho * rho):
        return None
    return np.concatenate([a, (sm - a @ tm)[:, None]], 1)


def warp_parts_ref(src: np.ndarray, dst: np.ndarray, fallback_size: float) -> list:
    """The ten parts of one item: None or dict(m [2, 3], segments [n, 4] (ax, ay, bx, by),
    polygon, core, falloff), in compositing order."""
    parts: list = [None] * 10
    size_s, size_t = warp_body_size(src), warp_body_size(dst)
    size = size_t if size_t > 0 else fallback_size
    rho = size_s / size_t if size_s > 0 and size_t > 0 else 1.0
    falloff = max(0.06 * size, 1.0)
    both = lambda j: _present(src, j) and _present(dst, j)  # noqa: E731
    d64, s64 = dst.astype(np.float64), src.astype(np.float64)
    for a, b, core, slot in WARP_LIMBS:
        if both(a) and both(b):
            parts[slot] = dict(m=_similarity(d64[[a, b]], s64[[a, b]], rho), segments=np.array([[*d64[a], *d64[b]]]),
                               polygon=False, core=core * size, falloff=falloff)
    joints = [j for j in (0, 14, 15, 16, 17, 1) if both(j)]
    face = [j for j in joints if j != 1]
    if face:
        centre = d64[face].mean(0)
        radius = max([0.25 * size] + [1.1 * float(np.linalg.norm(d64[j] - centre)) for j in face])
        parts[WARP_HEAD_SLOT] = dict(m=_similarity(d64[joints], s64[joints], rho),
                                     segments=np.array([[*centre, *centre]]), polygon=False, core=radius,
                                     falloff=falloff)
    joints = [j for j in (1, 2, 5, 8, 11) if both(j)]
    quad = all(_present(dst, j) for j in (2, 5, 8, 11))
    neck_hip = _present(dst, 1) and (_present(dst, 8) or _present(dst, 11))
    if joints and (quad or neck_hip):
        m = _affine(d64[joints], s64[joints], rho)
        if m is None:
            m = _similarity(d64[joints], s64[joints], rho)
        if quad:
            corners = [2, 5, 11, 8]
            segs = np.array([[*d64[corners[i]], *d64[corners[(i + 1) % 4]]] for i in range(4)])
            parts[WARP_TORSO_SLOT] = dict(m=m, segments=segs, polygon=True, core=0.06 * size, falloff=falloff)
        else:
            hips = d64[[j for j in (8, 11) if _present(dst, j)]].mean(0)
            parts[WARP_TORSO_SLOT] = dict(m=m, segments=np.array([[*d64[1], *hips]]), polygon=False,
                                          core=0.30 * size, falloff=falloff)
    return parts


def _bilinear(image: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """image [C, Hs, Ws], positions inside [-0.5, size - 0.5] -> [C, N], edge clamped."""
    hs, ws = image.shape[1:]
    x0, y0 = np.floor(sx), np.floor(sy)
    ux, uy = sx - x0, sy - y0
    xa, xb = np.clip(x0, 0, ws - 1).astype(int), np.clip(x0 + 1, 0, ws - 1).astype(int)
    ya, yb = np.clip(y0, 0, hs - 1).astype(int), np.clip(y0 + 1, 0, hs - 1).astype(int)
    return ((1 - ux) * (1 - uy) * image[:, ya, xa] + ux * (1 - uy) * image[:, ya, xb]
            + (1 - ux) * uy * image[:, yb, xa] + ux * uy * image[:, yb, xb])


def warp_ref(image: np.ndarray, source_keypoints: np.ndarray, target_keypoints: np.ndarray, height: int,
             width: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 warp: image [B, C, Hs, Ws], keypoints [B, 18, 2] -> ([B, C, H, W], [B, 1, H, W])."""
    batch, channels, hs, ws = image.shape
    out = np.zeros((batch, channels, height, width))
    cover = np.zeros((batch, 1, height, width))
    py, px = (g.ravel() for g in np.mgrid[0:height, 0:width].astype(np.float64))
    for b in range(batch):
        parts = warp_parts_ref(source_keypoints[b], target_keypoints[b], 0.25 * max(height, width))
        img = image[b].astype(np.float64)
        trans = np.ones(px.shape)
        acc = np.zeros((channels, px.size))
        for part in parts:
            if part is None:
                continue
            d = np.full(px.shape, np.inf)
            inside = np.zeros(px.shape, bool)
            for ax, ay, bx, by in part["segments"]:
                dx, dy = bx - ax, by - ay
                len2 = dx * dx + dy * dy
                t = np.clip(((px - ax) * dx + (py - ay) * dy) / len2, 0, 1) if len2 > 1e-12 else np.zeros(px.shape)
                d = np.minimum(d, np.hypot(px - ax - t * dx, py - ay - t * dy))
                if part["polygon"]:  # even-odd rule along each row
                    crosses = (ay > py) != (by > py)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        at = ax + (py - ay) * (bx - ax) / (by - ay)
                    inside ^= crosses & (px < at)
            if part["polygon"]:
                d = np.where(inside, 0.0, d)
            e = np.maximum(d - part["core"], 0.0) / part["falloff"]
            w = np.where(e < 4.0, np.exp(-0.5 * e * e), 0.0)
            m = part["m"]
            sx = m[0, 0] * px + m[0, 1] * py + m[0, 2]
            sy = m[1, 0] * px + m[1, 1] * py + m[1, 2]
            use = (w > 0) & (trans >= 1e-4) & (sx >= -0.5) & (sx <= ws - 0.5) & (sy >= -0.5) & (sy <= hs - 0.5)
            idx = np.nonzero(use)[0]
            acc[:, idx] += (trans[idx] * w[idx]) * _bilinear(img, sx[idx], sy[idx])
            trans[idx] *= 1.0 - w[idx]
        cov = 1.0 - trans
        cover[b, 0] = cov.reshape(height, width)
        safe = np.where(cov > 1e-6, cov, 1.0)
        out[b] = np.where(cov > 1e-6, acc / safe, 0.0).reshape(channels, height, width)
    return out, cover


# ------------------------------------------------------------------ warp inputs
# A standing person in a 256 x 176 frame (COCO-18, (x, y)).
STANDING = np.array([[88, 30], [88, 55], [65, 57], [58, 95], [55, 130], [111, 57], [118, 95], [121, 130],
                     [72, 130], [70, 180], [70, 230], [104, 130], [106, 180], [106, 230], [83, 25], [93, 25],
                     [78, 28], [98, 28]], np.float64)


def skeleton(rng: np.random.Generator, h: int, w: int, jitter: float = 0.08) -> np.ndarray:
    """A standing skeleton scaled into [h, w], randomly moved, scaled and jittered: [18, 2] float32."""
    scale = min(h / 256, w / 176) * rng.uniform(0.6, 1.1)
    kp = STANDING * scale
    kp += rng.normal(0, jitter * 176 * scale, kp.shape)
    kp += [rng.uniform(0, max(w - 176 * scale, 1.0)), rng.uniform(0, max(h - 256 * scale, 1.0))]
    return np.clip(kp, 0, None).astype(np.float32)


def warp_inputs(rng: np.random.Generator, batch: int, hs: int = 96, ws: int = 64, h: int = 96, w: int = 64):
    """(image [B, 3, hs, ws] float32, source [B, 18, 2], target [B, 18, 2] float32) for the warp."""
    image = rng.uniform(-1, 1, (batch, 3, hs, ws)).astype(np.float32)
    src = np.array([skeleton(rng, hs, ws) for _ in range(batch)], np.float32).reshape(batch, 18, 2)
    dst = np.array([skeleton(rng, h, w) for _ in range(batch)], np.float32).reshape(batch, 18, 2)
    return image, src, dst
