"""Texture helpers of the synthetic renderer (:mod:`training.data.synthetic`).

Two families, both pure numpy / OpenCV and deterministic given a ``numpy.random.Generator``:

- **Stamps for periodic fabric tiles**: anti-aliased alpha masks (flowers, spots, letters, small
  shapes) pasted into a tile with wrap-around, so the tile stays exactly periodic. Stamps are
  cached by their discrete parameters: a fabric costs a few small array writes, not fresh
  drawing.
- **Background surfaces** at output resolution: brick, wood planks, foliage, floor / wall tiles,
  plaster and wallpaper. They are drawn once per scene (scenes are cached by
  ``SyntheticPairs``), so they may cost a millisecond or two.

Colours are RGB float arrays or tuples; images are uint8 ``[H, W, 3|4]`` RGB(+label).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import cv2
import numpy as np

_SUPER = 4  # stamps are drawn this much larger, then area-averaged down (anti-aliasing)
LETTERS = "ABCDEFGHJKLMNOPRSTUVWXYZ0123456789"


# --------------------------------------------------------------------------------------------
# Stamps (alpha masks, float32 in [0, 1])
# --------------------------------------------------------------------------------------------


def _down(big: np.ndarray) -> np.ndarray:
    h, w = big.shape[:2]
    small = cv2.resize(big, (w // _SUPER, h // _SUPER), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


@lru_cache(maxsize=256)
def flower_stamp(petals: int, radius: int, rot: int) -> tuple[np.ndarray, np.ndarray]:
    """(petal alpha, centre alpha), float32 ``[2r+1, 2r+1]`` each: a flower of ``petals``
    round petals and radius ``radius`` texels, turned by ``rot`` eighths of a petal gap."""
    n = 2 * radius + 1
    big_p = np.zeros((n * _SUPER, n * _SUPER), np.uint8)
    big_c = np.zeros_like(big_p)
    c = (n * _SUPER) / 2.0
    R = radius * _SUPER
    pr = R * (0.42 if petals <= 5 else 0.3)  # petal radius
    for k in range(petals):
        a = 2 * math.pi * (k + rot / 8.0) / petals
        px, py = c + math.cos(a) * (R - pr), c + math.sin(a) * (R - pr)
        cv2.ellipse(big_p, (int(px), int(py)), (int(pr), int(pr * (0.75 if petals > 5 else 0.9))),
                    math.degrees(a), 0, 360, 255, -1, cv2.LINE_AA)
    cv2.circle(big_c, (int(c), int(c)), max(int(R * 0.28), 1), 255, -1, cv2.LINE_AA)
    return _down(big_p), _down(big_c)


@lru_cache(maxsize=128)
def leaf_stamp(length: int, rot: int) -> np.ndarray:
    """Alpha of a pointed leaf ``length`` texels long, turned by ``rot`` * 45 degrees."""
    n = length + 1
    big = np.zeros((n * _SUPER, n * _SUPER), np.uint8)
    c = n * _SUPER / 2.0
    cv2.ellipse(big, (int(c), int(c)), (int(length * _SUPER * 0.48), int(length * _SUPER * 0.18)),
                45.0 * rot, 0, 360, 255, -1, cv2.LINE_AA)
    return _down(big)


@lru_cache(maxsize=128)
def shape_stamp(kind: int, size: int, rot: int) -> np.ndarray:
    """Alpha of a small print shape (0 dot, 1 triangle, 2 bar, 3 ring, 4 squiggle, 5 blob)
    about ``size`` texels across, turned by ``rot`` * 30 degrees."""
    n = size + 2
    big = np.zeros((n * _SUPER, n * _SUPER), np.uint8)
    c = n * _SUPER / 2.0
    r = size * _SUPER / 2.0
    a = math.radians(30.0 * rot)
    ca, sa = math.cos(a), math.sin(a)

    def rotp(pts: Sequence[tuple[float, float]]) -> np.ndarray:
        return np.array([(c + x * ca - y * sa, c + x * sa + y * ca) for x, y in pts]) * 16

    if kind == 0:
        cv2.circle(big, (int(c * 16), int(c * 16)), int(r * 16), 255, -1, cv2.LINE_AA, 4)
    elif kind == 1:
        cv2.fillConvexPoly(big, rotp([(0, -r), (r * 0.9, r * 0.7), (-r * 0.9, r * 0.7)]).astype(np.int32), 255,
                           cv2.LINE_AA, 4)
    elif kind == 2:
        cv2.fillConvexPoly(big, rotp([(-r, -r * 0.25), (r, -r * 0.25), (r, r * 0.25), (-r, r * 0.25)]).astype(np.int32),
                           255, cv2.LINE_AA, 4)
    elif kind == 3:
        cv2.circle(big, (int(c * 16), int(c * 16)), int(r * 0.75 * 16), 255, max(int(r * 0.4), 1), cv2.LINE_AA, 4)
    elif kind == 4:
        t = np.linspace(-1.0, 1.0, 12)
        pts = rotp([(x * r, math.sin(x * 3.0) * r * 0.4) for x in t]).astype(np.int32)
        cv2.polylines(big, [pts], False, 255, max(int(r * 0.35), 1), cv2.LINE_AA, 4)
    else:  # irregular blob (leopard spot core / camo fleck)
        ang = np.linspace(0, 2 * math.pi, 9)[:-1]
        rad = r * (0.7 + 0.3 * np.cos(ang * 3 + rot))
        pts = rotp([(math.cos(t) * q, math.sin(t) * q * 0.8) for t, q in zip(ang, rad)]).astype(np.int32)
        cv2.fillPoly(big, [pts], 255, cv2.LINE_AA, 4)
    return _down(big)


@lru_cache(maxsize=256)
def text_stamp(text: str, height: int, bold: bool) -> np.ndarray:
    """Alpha of ``text`` in OpenCV's Hershey simplex font, about ``height`` texels tall (cap
    height), width as the text needs."""
    scale = height * _SUPER / 22.0  # Hershey simplex cap height is ~22 px at scale 1
    thick = max(int(round(scale * (3.2 if bold else 2.0))), 1)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = thick + _SUPER
    W = ((w + 2 * pad) // _SUPER + 1) * _SUPER
    Hh = ((h + 2 * pad) // _SUPER + 1) * _SUPER
    big = np.zeros((Hh, W), np.uint8)
    cv2.putText(big, text, (pad, pad + h), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thick, cv2.LINE_AA)
    return _down(big)


def _spans(start: int, n: int, T: int) -> list[tuple[int, int, int]]:
    """(tile start, stamp start, length) pieces of the wrapped range [start, start + n) mod T."""
    out = []
    done = 0
    s = start % T
    while done < n:
        k = min(n - done, T - s)
        out.append((s, done, k))
        done += k
        s = 0
    return out


def paste(tile: np.ndarray, alpha: np.ndarray, colour: Sequence[float], cy: float, cx: float) -> None:
    """Blend ``colour`` into float ``tile`` [T, T, 3] with ``alpha`` centred at (cy, cx), wrapping
    around the tile edges (the tile stays periodic). Stamps larger than the tile are cropped."""
    T = tile.shape[0]
    alpha = alpha[:T, :T]
    h, w = alpha.shape
    col = np.asarray(colour, np.float32)
    # Up to four rectangular pieces (plain slices: much cheaper than fancy indexing).
    for ty, sy, ky in _spans(int(round(cy)) - h // 2, h, T):
        for tx, sx, kx in _spans(int(round(cx)) - w // 2, w, T):
            sub = tile[ty:ty + ky, tx:tx + kx]
            sub += (col - sub) * alpha[sy:sy + ky, sx:sx + kx, None]


def periodic_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth value noise, float32 ``[size, size]`` in about [-1, 1], periodic with period ``size``
    (a random ``cells`` x ``cells`` grid, tiled 3 x 3 and cubic-upsampled; the middle period is
    exactly periodic because its input is)."""
    g = rng.normal(0.0, 1.0, (cells, cells)).astype(np.float32)
    big = cv2.resize(np.tile(g, (3, 3)), (3 * size, 3 * size), interpolation=cv2.INTER_CUBIC)
    out = big[size:2 * size, size:2 * size]
    return out / max(float(np.abs(out).max()), 1e-6)


# --------------------------------------------------------------------------------------------
# Background surfaces at output resolution (float32 [h, w, 3] RGB)
# --------------------------------------------------------------------------------------------


def value_noise(rng: np.random.Generator, h: int, w: int, cells: float, octaves: int = 2) -> np.ndarray:
    """Smooth noise float32 ``[h, w]`` roughly in [-1, 1]: ``octaves`` cubic-upsampled random
    grids (``cells`` cells across the shorter side, doubling per octave, halving amplitude)."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    c = cells
    for _ in range(octaves):
        gh = max(int(round(c * h / min(h, w))), 2) + 1
        gw = max(int(round(c * w / min(h, w))), 2) + 1
        g = rng.normal(0.0, 1.0, (gh, gw)).astype(np.float32)
        out += amp * cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
        c *= 2.0
    return out / total


def brick(rng: np.random.Generator, h: int, w: int, unit: float) -> np.ndarray:
    """Running-bond brick wall; ``unit`` = brick height in pixels."""
    base = np.array([rng.uniform(120, 185), rng.uniform(55, 95), rng.uniform(40, 70)], np.float32)
    if rng.random() < 0.3:  # pale / painted brick
        base = np.full(3, rng.uniform(150, 215), np.float32) + rng.normal(0, 8, 3).astype(np.float32)
    mortar = np.full(3, rng.uniform(150, 210), np.float32)
    bh = max(unit, 3.0)
    bw = bh * rng.uniform(2.0, 3.0)
    m = max(1.0, bh * 0.16)
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    row = np.floor(y / bh)
    xo = x + (row % 2) * bw * 0.5
    col = np.floor(xo / bw)
    nr, nc = int(h / bh) + 2, int((w + bw) / bw) + 2
    tint = rng.normal(0.0, 0.09, (nr, nc)).astype(np.float32)
    k = 1.0 + tint[row.astype(np.int64).clip(0, nr - 1), col.astype(np.int64).clip(0, nc - 1)]
    img = base[None, None, :] * k[:, :, None]
    joint = ((y % bh) < m) | ((xo % bw) < m)
    img = np.where(joint[:, :, None], mortar[None, None, :], img)
    img *= 1.0 + 0.06 * value_noise(rng, h, w, max(w / 3.0, 4.0), 1)[:, :, None]
    return img


def wood(rng: np.random.Generator, h: int, w: int, unit: float) -> np.ndarray:
    """Wood planks (vertical panelling or a horizontal floor) with grain; ``unit`` = plank width."""
    base = np.array([rng.uniform(110, 200), rng.uniform(70, 135), rng.uniform(35, 80)], np.float32)
    vertical = rng.random() < 0.5
    a, b = (w, h) if vertical else (h, w)  # a: across the planks, b: along them
    across = np.arange(a, dtype=np.float32)
    plank = np.floor(across / max(unit, 3.0))
    n = int(plank.max()) + 1
    tone = 1.0 + rng.normal(0.0, 0.1, n).astype(np.float32)
    phase = rng.uniform(0, 2 * math.pi, n).astype(np.float32)
    freq = rng.uniform(0.25, 0.6)
    along = np.arange(b, dtype=np.float32)
    warp = value_noise(rng, b, a, 3.0, 1) * 3.0  # [along, across]
    grain = np.sin((across[None, :] * freq + phase[plank.astype(np.int64)][None, :]) + warp)
    fine = value_noise(rng, b, a, max(a / 2.0, 4.0), 1)
    k = tone[plank.astype(np.int64)][None, :] * (1.0 + 0.08 * grain + 0.05 * fine)
    gap = (across % max(unit, 3.0)) < 1.0
    k = np.where(gap[None, :], 0.55, k)
    # Plank ends at random places along each plank.
    ends = rng.uniform(0, b, n).astype(np.float32)
    end = np.abs(along[:, None] - ends[plank.astype(np.int64)][None, :]) < 0.8
    k = np.where(end, 0.6, k)
    img = base[None, None, :] * k[:, :, None]
    # Arrays are [along, across]: [h, w] for vertical planks, transposed for horizontal ones.
    return img if vertical else np.ascontiguousarray(img.transpose(1, 0, 2))


def foliage(rng: np.random.Generator, h: int, w: int, unit: float) -> np.ndarray:
    """Hedge / tree foliage: layered noise in greens with many small leaf blobs; ``unit`` = leaf
    size in pixels."""
    dark = np.array([rng.uniform(20, 45), rng.uniform(45, 80), rng.uniform(15, 40)], np.float32)
    light = np.array([rng.uniform(80, 150), rng.uniform(120, 175), rng.uniform(40, 90)], np.float32)
    if rng.random() < 0.2:  # autumn
        light = np.array([rng.uniform(170, 220), rng.uniform(110, 160), rng.uniform(30, 60)], np.float32)
    t = 0.5 + 0.5 * value_noise(rng, h, w, 3.0, 3)
    img = dark[None, None, :] + (light - dark)[None, None, :] * t[:, :, None]
    img8 = np.clip(img, 0, 255).astype(np.uint8)
    n = int(h * w / max(unit * unit, 4.0) * 0.5)
    xs = rng.integers(0, w, n)
    ys = rng.integers(0, h, n)
    ls = rng.uniform(0.6, 1.6, n)
    ang = rng.uniform(0, 180, n)
    shade = rng.uniform(0.55, 1.35, n)
    for x, y, l, a, s in zip(xs.tolist(), ys.tolist(), ls.tolist(), ang.tolist(), shade.tolist()):
        c = np.clip(img[y, x] * s, 0, 255).tolist()
        ax = (max(int(unit * l * 0.5), 1), max(int(unit * l * 0.22), 1))
        cv2.ellipse(img8, (x, y), ax, a, 0, 360, c, -1, cv2.LINE_AA)
    return img8.astype(np.float32)


def tiles(rng: np.random.Generator, h: int, w: int, unit: float) -> np.ndarray:
    """Floor / wall tiles: a square grid with grout lines, per-tile tone, optional checkerboard."""
    c1 = rng.uniform(90, 235, 3).astype(np.float32)
    c1 = c1.mean() + (c1 - c1.mean()) * 0.3
    c2 = c1 * rng.uniform(0.45, 0.8) if rng.random() < 0.4 else c1
    grout = c1 * 0.7
    t = max(unit, 4.0)
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    ty, tx = np.floor(y / t), np.floor(x / t)
    chk = ((ty + tx) % 2)[:, :, None]
    img = c1[None, None, :] * (1 - chk) + c2[None, None, :] * chk
    tone = rng.normal(0.0, 0.04, (int(h / t) + 2, int(w / t) + 2)).astype(np.float32)
    img = img * (1.0 + tone[ty.astype(np.int64), tx.astype(np.int64)])[:, :, None]
    line = ((y % t) < 1.0) | ((x % t) < 1.0)
    img = np.where(line[:, :, None], grout[None, None, :], img)
    img *= 1.0 + 0.04 * value_noise(rng, h, w, max(w / 4.0, 4.0), 1)[:, :, None]
    return img


def plaster(rng: np.random.Generator, h: int, w: int, unit: float) -> np.ndarray:
    """Plaster / concrete: a muted colour with blotchy low-frequency and grainy high-frequency
    variation."""
    base = rng.uniform(110, 225, 3).astype(np.float32)
    base = base.mean() + (base - base.mean()) * rng.uniform(0.1, 0.5)
    k = 1.0 + 0.08 * value_noise(rng, h, w, 4.0, 3) + 0.05 * value_noise(rng, h, w, max(w / 2.5, 4.0), 1)
    return base[None, None, :] * k[:, :, None]


def wallpaper(rng: np.random.Generator, h: int, w: int, unit: float, tile: np.ndarray) -> np.ndarray:
    """A periodic fabric-like ``tile`` (uint8 [T, T, 3]) repeated at ``unit`` pixels per tile."""
    T = tile.shape[0]
    reps_y, reps_x = int(h / max(unit, 4.0)) + 2, int(w / max(unit, 4.0)) + 2
    big = np.tile(tile, (reps_y, reps_x, 1))
    scale = max(unit, 4.0) / T
    big = cv2.resize(big, (int(big.shape[1] * scale), int(big.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    out = np.zeros((h, w, 3), np.float32)
    hh, ww = min(h, big.shape[0]), min(w, big.shape[1])
    out[:hh, :ww] = big[:hh, :ww]
    return out


SURFACES = {"brick": brick, "wood": wood, "foliage": foliage, "tiles": tiles, "plaster": plaster}
