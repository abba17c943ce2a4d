"""Colours: skin, hair and garment palettes (RGB), chest-print words, and small RGB helpers."""

from __future__ import annotations

import colorsys
from functools import lru_cache
from typing import Sequence

import numpy as np

from .constants import RGB


_SKIN_RAMP = np.array([(255, 226, 204), (241, 199, 168), (226, 176, 140), (199, 140, 102),
                       (163, 108, 74), (122, 78, 52), (86, 56, 40)], np.float64)
_HAIR_COLOURS: tuple[RGB, ...] = ((22, 18, 16), (40, 28, 20), (66, 44, 28), (102, 70, 42),
                                  (150, 112, 66), (208, 174, 112), (132, 58, 30), (150, 150, 148),
                                  (225, 222, 212), (168, 84, 40), (236, 226, 196), (92, 50, 34))
_HAIR_P = (0.24, 0.18, 0.14, 0.09, 0.06, 0.07, 0.05, 0.06, 0.02, 0.04, 0.02, 0.03)
# Short words and fake brands for chest text (any letters would do; words read as text).
_WORDS = ("SPORT", "NYC", "LOVE", "1987", "CLUB", "WILD", "ZEN", "ROCK", "ATHL", "MODE", "PARIS", "SURF",
          "NO.9", "TEAM", "CITY", "OK", "HELLO", "EST 04", "BASIC", "ROMA")
_GARMENT_COLOURS: tuple[RGB, ...] = (
    (24, 24, 28), (238, 238, 232), (128, 128, 130), (70, 72, 78), (30, 40, 82), (64, 94, 146),
    (212, 192, 160), (160, 140, 102), (86, 96, 52), (112, 26, 42), (198, 32, 44), (236, 160, 182),
    (240, 202, 64), (40, 132, 72), (132, 182, 226), (112, 72, 42), (230, 122, 42), (112, 62, 142),
    (30, 120, 122), (250, 246, 230), (180, 40, 90), (60, 60, 120),
)


def _clip_byte(v: float) -> int:
    return 0 if v <= 0 else 255 if v >= 255 else int(v + 0.5)


def _clip_rgb(c: Sequence[float]) -> RGB:
    return (_clip_byte(float(c[0])), _clip_byte(float(c[1])), _clip_byte(float(c[2])))


@lru_cache(maxsize=4096)
def _scale_rgb(c: RGB, k: float) -> RGB:
    return _clip_rgb((c[0] * k, c[1] * k, c[2] * k))


def _mix(a: Sequence[float], b: Sequence[float], t: float) -> RGB:
    return _clip_rgb((a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t))


def _pick(rng: np.random.Generator, p: Sequence[float]) -> int:
    """Index drawn with probabilities ``p`` (sums to 1); much cheaper than Generator.choice."""
    x = rng.random()
    acc = 0.0
    for i, pi in enumerate(p):
        acc += pi
        if x < acc:
            return i
    return len(p) - 1


def _garment_colour(rng: np.random.Generator) -> RGB:
    if rng.random() < 0.55:
        c = _GARMENT_COLOURS[int(rng.integers(len(_GARMENT_COLOURS)))]
        j = rng.normal(0.0, 8.0, 3).tolist()
        return _clip_rgb((c[0] + j[0], c[1] + j[1], c[2] + j[2]))
    h = rng.random()
    s = rng.uniform(0.15, 0.9)
    v = rng.uniform(0.2, 0.95)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return _clip_rgb((r * 255, g * 255, b * 255))


def _contrasting(rng: np.random.Generator, c: RGB) -> RGB:
    """A second pattern colour that is visibly different from ``c`` (luma or hue)."""
    for _ in range(8):
        d = _garment_colour(rng)
        if sum(abs(x - y) for x, y in zip(c, d)) > 150:
            return d
    return (245, 245, 240) if sum(c) < 380 else (25, 25, 30)
