"""Procedural clothed people posed with real keypoints: an endless, labelled source of
pose-transfer training pairs (same person = same :class:`Identity`, two poses).

Conventions (say them everywhere):
- Keypoints: COCO-18 order (see :mod:`training.data.poses`), float32 ``[18, 2]`` **(x, y)** in
  pixels of the image they belong to (pixel centres at integer coordinates), missing = -1.
- Images: numpy uint8 ``[H, W, 3]`` **RGB** (this module never produces BGR).
- Masks: uint8 ``[H, W]`` with values {0, 1}; parsing maps uint8 ``[H, W]`` with the 8 classes
  of :data:`PARSING_CLASSES`.

How a person is drawn: every body part (and garment piece) is a polygon built from the
(completed) joints: limbs are tapered tubes between joints, the torso a profile swept along the
neck -> mid-hip axis, the head an ellipse in its own frame. Patterned garments are periodic
fabric tiles mapped into each part's own frame (u along the part, v across it, in body units =
torso lengths), so stripes and prints move and bend with the limb. The view comes from the pose:
the shoulders' left/right order gives the body's yaw (front: the person's right shoulder on the
image's left), annotated eyes / nose mean the face is visible; back views get no face and no
chest print, and parts are drawn far to near (arms behind the torso from the back, the far arm
and leg first in turned views). Drawing happens on a 2x supersampled canvas whose 4th channel
carries the parsing label of every pixel drawn, then is box-filtered down (anti-aliasing), so
labels, silhouette and pixels come from the same rasterisation.

What a pair teaches (issue 13: warp-guided generators must carry the source photo's texture
to the new pose and keep its background):
- **Static camera.** Source and target share one scene (studio backdrop or street / indoor
  scene, same crop and mirroring) and one light; only the person moves. Outside both people
  the two images are identical, pixel for pixel. No pair gets a different framing: the
  product's contract is "keep the source photo's background", so there is nothing to teach
  by changing it. The person's own placement (scale, shift, mirroring of the real pose) stays
  per image, because the runtime feeds driving poses at the driving video's scale.
- **Texture worth carrying.** Garments are solid, striped, checked, dotted, gradient, heather,
  motif, floral, all-over print (confetti, camouflage, animal spots) or monogram fabrics in the
  part's own frame, with chest prints that include real text and badges (clipped to the top);
  hair has strands or curls (styles :data:`HAIR_STYLES`), faces vary in eyes, brows, mouth,
  beards, glasses and blush. A flat colour per garment misses by ~14 grey levels (median L1,
  tests/training/test_synthetic.py), twice the pre-issue-13 renderer.
- **Shading.** One :class:`Light` per pair shades every part as a rounded solid (Lambert, see
  :func:`_shade`): the shading follows the body, the texture follows the cloth.
- **Scenes.** 'plain' is the light studio; 'cluttered' walls and grounds are flat, brick, wood,
  foliage, tiles, plaster or wallpaper (:mod:`training.data.textures`) with windows, signs,
  poles and passers-by.
- **Labels.** Textures, prints, shading and scenes never change the 8-class parsing: it comes
  from the geometry alone (what :mod:`training.data.completion` learns from).

Entry points: :func:`sample_identity`, :func:`render`, :class:`SyntheticPairs`;
``python -m training.data.synthetic --bench`` (pairs/s on one core) / ``--grid out.png``.
``training/data/synthetic_before_after.png`` shows eval pairs 0-7 before and after issue 13.
"""

from __future__ import annotations

import argparse
import colorsys
import math
import os
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from . import poses as P
from . import textures as tp
from .masks import body_mask

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

RGB = tuple[int, int, int]

SS = 2  # supersampling factor of the drawing canvas
_SHIFT = 4  # cv2 fixed-point bits for sub-pixel polygon vertices
_FP = float(1 << _SHIFT)

PARSING_CLASSES: tuple[str, ...] = (
    "background", "face_hair", "upper_skin", "lower_skin", "hat", "top", "bottom", "shoes",
)
BG, FACE_HAIR, UPPER_SKIN, LOWER_SKIN, HAT, TOP, BOTTOM, SHOES = range(8)

_T = 32  # fabric tile size (texels); tiles are periodic with this period
_BIG = 6  # the pre-tiled fabric is _BIG x _BIG tiles, so most parts sample without wrapping

# Semicircle sample angles for the round caps of tubes and for ellipses (column vectors, so
# ``_CAP_COS * n`` broadcasts to [k, 2] points).
_CAP = np.linspace(0.0, math.pi, 7)
_CAP_COS, _CAP_SIN = np.cos(_CAP)[:, None], np.sin(_CAP)[:, None]
_ELL = np.linspace(0.0, 2.0 * math.pi, 20, endpoint=False)
_ELL_COS, _ELL_SIN = np.cos(_ELL)[:, None], np.sin(_ELL)[:, None]

# --------------------------------------------------------------------------------------------
# Colours
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Fabrics: periodic tiles in part coordinates
# --------------------------------------------------------------------------------------------

# Textured patterns (floral, all-over prints, monograms) carry high-frequency detail that a
# flat-colour guess cannot reproduce: they make "carry the source's texture" measurable.
TOP_PATTERNS = ("solid", "hstripes", "vstripes", "checks", "dots", "gradient", "heather", "motif",
                "floral", "print", "monogram")
_TOP_PATTERN_P = (0.16, 0.1, 0.06, 0.09, 0.07, 0.05, 0.07, 0.08, 0.12, 0.12, 0.08)
BOTTOM_PATTERNS = ("solid", "denim", "heather", "checks", "vstripes", "hstripes", "dots", "floral", "print")
_BOTTOM_PATTERN_P = (0.3, 0.26, 0.08, 0.07, 0.05, 0.04, 0.04, 0.08, 0.08)


@dataclass(frozen=True, eq=False)
class Fabric:
    """A garment's material: a periodic texture in the garment's own (part) coordinates.

    Attributes:
        pattern: one of TOP_PATTERNS / BOTTOM_PATTERNS ('hair' for an identity's hair).
        colors: the RGB colours used.
        tile: uint8 ``[32, 32, 3]`` RGB, periodic in both axes. Rows run ALONG a part (u, from
            its proximal joint outwards / from the shoulders down), columns ACROSS it (v).
        (the renderer samples the tile repeated 6 x 6, see :meth:`labelled`).
        texels_per_unit: tile texels per body unit (1 unit = the person's torso length), so a
            pattern has the same physical size on every part and scales with the person.
        mean: mean RGB colour (used for the shading rim of textured parts).
    """

    pattern: str
    colors: tuple[RGB, ...]
    tile: np.ndarray
    texels_per_unit: float
    mean: RGB
    _labelled: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _scaled: dict[float, "Fabric"] = field(default_factory=dict, repr=False)

    def scaled(self, k: float) -> "Fabric":
        """This fabric with every texel multiplied by ``k`` (cached: hair uses two tones)."""
        out = self._scaled.get(k)
        if out is None:
            t8 = np.clip(self.tile.astype(np.float32) * k + 0.5, 0, 255).astype(np.uint8)
            out = self._scaled[k] = Fabric(self.pattern, self.colors, t8, self.texels_per_unit,
                                           _scale_rgb(self.mean, k))
        return out

    def labelled(self, label: int) -> np.ndarray:
        """The tile repeated 6 x 6 with a constant 4th channel = parsing label
        (uint8 [192, 192, 4]), cached: most parts then sample it without wrapping."""
        out = self._labelled.get(label)
        if out is None:
            t4 = np.empty((_T, _T, 4), np.uint8)
            t4[:, :, :3] = self.tile
            t4[:, :, 3] = label
            out = np.tile(t4, (_BIG, _BIG, 1))
            self._labelled[label] = out
        return out


def _bands(n: int, period: int, duty: float, phase: int = 0) -> np.ndarray:
    """float [n] in {0,1}: 1 on the first ``duty`` fraction of each ``period`` texels."""
    i = (np.arange(n) + phase) % period
    return (i < max(1, round(duty * period))).astype(np.float32)


def make_fabric(rng: np.random.Generator, pattern: str, base: RGB | None = None) -> Fabric:
    """Sample a fabric of the given pattern (colours, scale and pattern parameters from ``rng``)."""
    c1 = base if base is not None else _garment_colour(rng)
    c2 = _contrasting(rng, c1)
    a1 = np.asarray(c1, np.float32)
    a2 = np.asarray(c2, np.float32)
    tile = np.empty((_T, _T, 3), np.float32)
    tile[:] = a1
    colors: tuple[RGB, ...] = (c1,)
    period_units = rng.uniform(0.1, 0.32)  # physical period of the pattern, in torso lengths
    period = 16 if rng.random() < 0.75 else 8
    tpu = period / period_units
    if pattern in ("hstripes", "vstripes"):
        duty = rng.uniform(0.25, 0.6)
        band = _bands(_T, period, duty)
        if rng.random() < 0.3:  # thin accent stripe of a third colour
            c3 = _garment_colour(rng)
            accent = _bands(_T, period, 0.12, phase=-(round(0.6 * period))) * (1 - band)
            colors = (c1, c2, c3)
        else:
            accent = None
            colors = (c1, c2)
        if pattern == "hstripes":
            tile[:] = a1 + (a2 - a1) * band[:, None, None]
            if accent is not None:
                tile += (np.asarray(c3, np.float32) - tile) * accent[:, None, None]
        else:
            tile[:] = a1 + (a2 - a1) * band[None, :, None]
            if accent is not None:
                tile += (np.asarray(c3, np.float32) - tile) * accent[None, :, None]
    elif pattern == "checks":
        duty = rng.uniform(0.3, 0.5)
        rows = _bands(_T, period, duty)[:, None, None]
        cols = _bands(_T, period, duty)[None, :, None]
        mid = (a1 + a2) / 2
        tile[:] = a1 * (1 - rows) * (1 - cols) + mid * (rows + cols - 2 * rows * cols) + a2 * rows * cols
        colors = (c1, c2)
    elif pattern == "dots":
        radius = period * rng.uniform(0.16, 0.32)
        y, x = np.mgrid[0:_T, 0:_T].astype(np.float32) + 0.5
        half = period / 2
        dy = (y % period) - half
        dx = (x % period) - half
        d = np.sqrt(dx * dx + dy * dy)
        if rng.random() < 0.5:  # half-drop lattice
            dy2 = ((y + half) % period) - half
            dx2 = ((x + half) % period) - half
            d = np.minimum(d, np.sqrt(dx2 * dx2 + dy2 * dy2))
        cover = np.clip(radius + 0.5 - d, 0.0, 1.0)[:, :, None]
        tile[:] = a1 + (a2 - a1) * cover
        colors = (c1, c2)
    elif pattern == "gradient":
        # Triangle wave along u with one period per tile: a smooth light-to-dark garment.
        y = (np.arange(_T, dtype=np.float32) + 0.5) / _T
        w = np.abs(2.0 * y - 1.0)[:, None, None]
        tile[:] = a2 + (a1 - a2) * w
        tpu = _T / rng.uniform(2.0, 3.2)
        colors = (c1, c2)
    elif pattern in ("heather", "denim"):
        if pattern == "denim":
            c1 = _clip_rgb(np.asarray((52, 78, 128), np.float64) * rng.uniform(0.5, 1.5)
                           + rng.normal(0, 8, 3)) if base is None else c1
            a1 = np.asarray(c1, np.float32)
            y, x = np.mgrid[0:_T, 0:_T]
            twill = (((x + y) % 4) == 0).astype(np.float32)[:, :, None]
            tile[:] = a1 * (1.0 + 0.18 * twill)
        else:
            tile[:] = a1
        grain = rng.normal(0.0, 1.0, (_T, _T, 1)).astype(np.float32)
        streak = rng.normal(0.0, 1.0, (1, _T, 1)).astype(np.float32)
        tile *= 1.0 + 0.05 * grain + 0.04 * streak
        tpu = rng.uniform(60.0, 90.0)
        colors = (c1,)
    elif pattern == "motif":
        shape = int(rng.integers(4))
        size = period * rng.uniform(0.22, 0.34)
        t8 = np.ascontiguousarray(tile.astype(np.uint8))
        for cy in (period / 2, period / 2 + period):
            for cx in (period / 2, period / 2 + period):
                for oy in range(0, _T, 2 * period):
                    for ox in range(0, _T, 2 * period):
                        _draw_motif(t8, shape, cx + ox, cy + oy, size, c2)
        tile = t8.astype(np.float32)
        colors = (c1, c2)
    elif pattern == "floral":
        tile, colors, tpu = _floral_tile(rng, a1, c1, c2)
    elif pattern == "print":
        tile, colors, tpu = _print_tile(rng, a1, c1, c2)
    elif pattern == "monogram":
        tile, colors, tpu = _monogram_tile(rng, a1, c1, c2)
    else:  # solid: faint weave so flat areas are not perfectly flat
        tile *= 1.0 + 0.025 * rng.normal(0.0, 1.0, (_T, _T, 1)).astype(np.float32)
        tpu = rng.uniform(60.0, 90.0)
    t8 = np.clip(tile + 0.5, 0, 255).astype(np.uint8)
    mean = _clip_rgb(cv2.mean(t8))
    return Fabric(pattern, colors, t8, float(tpu), mean)


def _floral_tile(rng: np.random.Generator, a1: np.ndarray, c1: RGB, c2: RGB
                 ) -> tuple[np.ndarray, tuple[RGB, ...], float]:
    """Scattered flowers (petals, centres) and leaves on a ground colour, wrapped periodically."""
    tile = np.empty((_T, _T, 3), np.float32)
    tile[:] = a1
    c3 = _contrasting(rng, c2)  # flower centres
    leaf = _clip_rgb((rng.uniform(40, 110), rng.uniform(90, 160), rng.uniform(40, 90)))
    extra = _garment_colour(rng)  # a second flower colour
    n = int(rng.integers(3, 7))
    radius = int(rng.integers(4, 8))
    for k in range(n):
        cy, cx = rng.uniform(0, _T), rng.uniform(0, _T)
        if rng.random() < 0.7:
            lr = int(rng.integers(0, 4))
            tp.paste(tile, tp.leaf_stamp(radius + 2, lr), leaf, cy + radius * 0.7, cx + radius * 0.6)
        petals = (4, 5, 5, 6, 8)[int(rng.integers(5))]
        pa, ca = tp.flower_stamp(petals, max(radius + int(rng.integers(-1, 2)), 3), int(rng.integers(8)))
        tp.paste(tile, pa, c2 if k % 2 == 0 else extra, cy, cx)
        tp.paste(tile, ca, c3, cy, cx)
    # Small fillers (dots / buds) between the flowers.
    for _ in range(int(rng.integers(2, 7))):
        tp.paste(tile, tp.shape_stamp(0, 2, 0), c3, rng.uniform(0, _T), rng.uniform(0, _T))
    tpu = _T / rng.uniform(0.4, 0.75)  # one tile = 0.4 .. 0.75 torso lengths
    return tile, (c1, c2, c3, leaf, extra), tpu


def _print_tile(rng: np.random.Generator, a1: np.ndarray, c1: RGB, c2: RGB
                ) -> tuple[np.ndarray, tuple[RGB, ...], float]:
    """All-over print: confetti of small shapes, camouflage, or animal spots."""
    tile = np.empty((_T, _T, 3), np.float32)
    tile[:] = a1
    kind = int(rng.integers(3))
    c3 = _garment_colour(rng)
    if kind == 0:  # confetti: many small shapes in two or three colours
        for k in range(int(rng.integers(8, 15))):
            shape = int(rng.integers(6))
            col = (c2, c3)[k % 2]
            tp.paste(tile, tp.shape_stamp(shape, int(rng.integers(3, 7)), int(rng.integers(12))), col,
                     rng.uniform(0, _T), rng.uniform(0, _T))
        tpu = _T / rng.uniform(0.35, 0.6)
    elif kind == 1:  # camouflage: periodic smooth noise quantised into 3 - 4 colour regions
        noise = tp.periodic_noise(rng, _T, int(rng.integers(3, 6)))
        c4 = _mix(c1, c2, 0.5)
        cols = np.asarray((c1, c4, c2, c3), np.float32)
        level = np.digitize(noise, np.array([-0.3, 0.1, 0.45], np.float32))
        tile[:] = cols[level]
        tpu = _T / rng.uniform(0.45, 0.8)
    else:  # animal spots: a dark broken ring around a mid-tone core
        dark = _scale_rgb(c2, 0.35)
        for _ in range(int(rng.integers(5, 9))):
            cy, cx = rng.uniform(0, _T), rng.uniform(0, _T)
            size = int(rng.integers(5, 9))
            rot = int(rng.integers(12))
            tp.paste(tile, tp.shape_stamp(5, size, rot), dark, cy, cx)
            tp.paste(tile, tp.shape_stamp(5, max(size - 3, 2), rot), c2, cy, cx)
        tpu = _T / rng.uniform(0.4, 0.7)
    return tile, (c1, c2, c3), tpu


def _monogram_tile(rng: np.random.Generator, a1: np.ndarray, c1: RGB, c2: RGB
                   ) -> tuple[np.ndarray, tuple[RGB, ...], float]:
    """Repeated letters (a logo-print / monogram): one or two glyphs on a half-drop lattice."""
    tile = np.empty((_T, _T, 3), np.float32)
    tile[:] = a1
    glyphs = [tp.LETTERS[int(rng.integers(len(tp.LETTERS)))] for _ in range(2)]
    size = int(rng.integers(6, 10))
    bold = bool(rng.random() < 0.5)
    # Glyphs in every lattice cell (alternating), or glyphs and small accent marks.
    accents = rng.random() < 0.4
    for i, (cy, cx) in enumerate(((8.0, 8.0), (24.0, 24.0), (8.0, 24.0), (24.0, 8.0))):
        if i < 2 or not accents:
            tp.paste(tile, tp.text_stamp(glyphs[i % 2], size, bold), c2, cy, cx)
        else:
            tp.paste(tile, tp.shape_stamp(int(rng.integers(4)), 4, int(rng.integers(12))), c2, cy, cx)
    tpu = _T / rng.uniform(0.4, 0.6)
    return tile, (c1, c2), tpu


def _draw_motif(img: np.ndarray, shape: int, cx: float, cy: float, r: float, color: RGB) -> None:
    """Small printed motif centred in a lattice cell (kept inside the cell: tile stays periodic)."""
    if shape == 0:  # diamond
        pts = np.array([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)])
    elif shape == 1:  # triangle
        pts = np.array([(cx, cy - r), (cx + r * 0.9, cy + r * 0.7), (cx - r * 0.9, cy + r * 0.7)])
    elif shape == 2:  # cross
        w = r * 0.35
        cv2.rectangle(img, (int(cx - r), int(cy - w)), (int(cx + r), int(cy + w)), color, -1)
        cv2.rectangle(img, (int(cx - w), int(cy - r)), (int(cx + w), int(cy + r)), color, -1)
        return
    else:  # ring
        cv2.circle(img, (int(round(cx * 16)), int(round(cy * 16))), int(r * 16), color,
                   max(1, int(r * 0.5)), cv2.LINE_AA, 4)
        return
    cv2.fillConvexPoly(img, np.round(pts * 16).astype(np.int32), color, cv2.LINE_AA, 4)


# --------------------------------------------------------------------------------------------
# Identity: everything about the person except the pose
# --------------------------------------------------------------------------------------------

HAIR_STYLES = ("short", "buzz", "bob", "long", "ponytail", "bun", "curly")
BEARDS = ("none", "stubble", "moustache", "beard")
TOP_KINDS = ("tank", "tee", "elbow", "three_quarter", "long")
_SLEEVE = {"tank": 0.0, "tee": 0.45, "elbow": 1.0, "three_quarter": 1.55, "long": 1.97}


@dataclass(frozen=True, eq=False)
class Top:
    """Upper garment. ``sleeve`` is arm coverage: 0 none, 1 = to the elbow, 2 = to the wrist.
    ``hem`` is the torso level of the hem (0 shoulder line, 1 hip line); ``loose`` extra
    half-width in body units; ``print_shape`` a chest print (-1 none) seen from the front only:
    0 star, 1 ring, 2 bars, 3 band, 4 triangle, 5 text (``print_text``, one or two lines),
    6 badge (disc with text), 7 slanted-bars logo."""

    kind: str
    sleeve: float
    hem: float
    loose: float
    neckline: str
    neck_depth: float
    fabric: Fabric
    print_shape: int
    print_color: RGB
    print_size: float
    print_text: str = ""  # lines separated by "\n" (shapes 5 and 6)


@dataclass(frozen=True, eq=False)
class Bottom:
    """Lower garment. ``kind`` trousers | shorts | skirt. ``length`` is leg coverage (0 hip,
    1 knee, 2 ankle). ``waist`` the torso level of the waistband; ``flare`` how much a skirt
    widens per unit of length; ``loose`` extra half-width in body units."""

    kind: str
    length: float
    waist: float
    loose: float
    flare: float
    fabric: Fabric


@dataclass(frozen=True, eq=False)
class Identity:
    """Appearance of one synthetic person: body build, skin, face, hair and outfit (no pose).

    Lengths are in body units (1 = the person's torso length, neck to mid-hip); colours RGB.
    Sampled by :func:`sample_identity`; the same identity rendered in two poses is a pair.
    """

    seed: int
    skin: RGB
    girth: float  # limb thickness multiplier
    shoulder: float  # shoulder breadth multiplier (beyond the joints)
    waist: float  # waist narrowing (1 = straight torso)
    hips: float  # hip breadth multiplier
    head: float  # head size multiplier
    hair_style: str
    hair: RGB
    hair_length: float  # for long / bob styles, in head heights below the head centre
    fringe: float  # fringe height (head frame, 0 = eye level .. 1 = top of head)
    fringe_tilt: float
    eyes: RGB
    lips: RGB
    top: Top
    bottom: Bottom
    dress: bool  # top and skirt of one fabric, no visible waistband
    tucked: bool
    belt: RGB | None
    shoes: RGB
    sole: RGB
    hat: str | None  # None | "cap" | "beanie"
    hat_color: RGB
    # Texture and face details (hair strands / curls, facial hair, glasses, proportions).
    hair_fabric: Fabric
    beard: str  # one of BEARDS
    glasses: RGB | None  # frame colour, None = no glasses
    eye_size: float  # multiplier of the eye size
    brow: float  # eyebrow thickness multiplier
    mouth: float  # mouth width multiplier
    blush: float  # cheek colour strength 0 .. 0.3


def sample_identity(rng: np.random.Generator | int) -> Identity:
    """Draw a random person appearance (deterministic given the generator / seed).

    Args:
        rng: numpy Generator, or an int seed (then ``Identity.seed`` is that seed, else -1).
    Returns: an :class:`Identity`.
    """
    seed = -1
    if not isinstance(rng, np.random.Generator):
        seed = int(rng)
        rng = np.random.default_rng(seed)
    fem = rng.random() < 0.5  # style prior only: it correlates hair, skirts and build

    t = rng.random() ** 0.9 * (len(_SKIN_RAMP) - 1)
    k = min(int(t), len(_SKIN_RAMP) - 2)
    skin = _clip_rgb(_SKIN_RAMP[k] + (_SKIN_RAMP[k + 1] - _SKIN_RAMP[k]) * (t - k) + rng.normal(0, 5, 3))
    if rng.random() < 0.85:
        hair = _HAIR_COLOURS[_pick(rng, _HAIR_P)]
        hair = _clip_rgb(np.asarray(hair, np.float64) * rng.uniform(0.85, 1.15))
    else:  # dyed
        r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.4, 0.8), rng.uniform(0.4, 0.9))
        hair = _clip_rgb((r * 255, g * 255, b * 255))
    if fem:
        style = HAIR_STYLES[_pick(rng, (0.08, 0.0, 0.2, 0.36, 0.14, 0.1, 0.12))]
    else:
        style = HAIR_STYLES[_pick(rng, (0.46, 0.22, 0.06, 0.08, 0.04, 0.02, 0.12))]

    # Upper garment.
    top_kind = TOP_KINDS[_pick(rng, (0.14, 0.4, 0.08, 0.12, 0.26))]
    top_pattern = TOP_PATTERNS[_pick(rng, _TOP_PATTERN_P)]
    top_fabric = make_fabric(rng, top_pattern)
    has_print = top_pattern in ("solid", "heather", "gradient") and rng.random() < 0.55
    top = Top(
        kind=top_kind,
        sleeve=_SLEEVE[top_kind] + (rng.uniform(-0.12, 0.1) if top_kind != "tank" else 0.0),
        hem=rng.uniform(0.92, 1.22),
        loose=rng.uniform(0.0, 0.07),
        neckline=("round", "v", "crew")[int(rng.integers(3))],
        neck_depth=rng.uniform(0.06, 0.26),
        fabric=top_fabric,
        print_shape=_pick(rng, (0.1, 0.1, 0.08, 0.1, 0.1, 0.3, 0.12, 0.1)) if has_print else -1,
        print_color=_contrasting(rng, top_fabric.mean),
        print_size=rng.uniform(0.09, 0.17),
        print_text=_chest_text(rng),
    )

    # Lower garment (or the skirt of a dress).
    dress = fem and rng.random() < 0.22
    if dress:
        kind = "skirt"
    elif fem:
        kind = ("trousers", "shorts", "skirt")[_pick(rng, (0.5, 0.18, 0.32))]
    else:
        kind = ("trousers", "shorts", "skirt")[_pick(rng, (0.78, 0.22, 0.0))]
    if dress:
        bfabric = top_fabric
    else:
        bpattern = BOTTOM_PATTERNS[_pick(rng, _BOTTOM_PATTERN_P)]
        if kind == "skirt" and bpattern == "denim" and rng.random() < 0.5:
            bpattern = "solid"
        bfabric = make_fabric(rng, bpattern)
    if kind == "trousers":
        length = rng.uniform(1.9, 2.0) if rng.random() < 0.82 else rng.uniform(1.55, 1.8)
    elif kind == "shorts":
        length = rng.uniform(0.3, 0.85)
    else:
        length = rng.uniform(*((0.35, 0.65), (0.8, 1.15), (1.3, 1.8))[int(rng.integers(3))])
    bottom = Bottom(
        kind=kind,
        length=float(length),
        waist=rng.uniform(0.68, 0.86) if not dress else 0.62,
        loose=rng.uniform(0.0, 0.06) if kind != "skirt" else 0.02,
        flare=rng.uniform(0.08, 0.32),
        fabric=bfabric,
    )
    tucked = (not dress) and rng.random() < 0.25
    if dress:
        top = Top(**{**top.__dict__, "hem": bottom.waist + 0.05})
    hat = None
    if rng.random() < 0.1:
        hat = "cap" if rng.random() < 0.5 else "beanie"
    if rng.random() < 0.7:  # black, white, grey, beige, brown, red, navy
        shoes = _GARMENT_COLOURS[(0, 1, 3, 6, 15, 10, 4)[int(rng.integers(7))]]
    else:
        shoes = _garment_colour(rng)
    return Identity(
        seed=seed,
        skin=skin,
        girth=rng.uniform(0.82, 1.2) * (0.94 if fem else 1.0),
        shoulder=rng.uniform(0.9, 1.12) * (0.94 if fem else 1.04),
        waist=rng.uniform(0.8, 0.92) if fem else rng.uniform(0.9, 1.0),
        hips=rng.uniform(0.95, 1.15) * (1.06 if fem else 1.0),
        head=rng.uniform(0.92, 1.08),
        hair_style=style,
        hair=hair,
        hair_length=rng.uniform(1.3, 3.2) if style == "long" else rng.uniform(0.7, 1.1),
        fringe=rng.uniform(0.32, 0.62) if style != "buzz" else 0.75,
        fringe_tilt=rng.uniform(-0.25, 0.25),
        eyes=_clip_rgb(np.asarray((40, 30, 25)) * rng.uniform(0.6, 1.6) + rng.normal(0, 6, 3)),
        lips=_mix(skin, (170, 60, 70), rng.uniform(0.25, 0.6)),
        top=top,
        bottom=bottom,
        dress=dress,
        tucked=tucked,
        belt=_garment_colour(rng) if (tucked and rng.random() < 0.6) else None,
        shoes=_clip_rgb(np.asarray(shoes, np.float64) + rng.normal(0, 6, 3)),
        sole=(235, 235, 230) if rng.random() < 0.5 else _scale_rgb(shoes, 0.6),
        hat=hat,
        hat_color=_garment_colour(rng),
        hair_fabric=_hair_fabric(rng, hair, style),
        beard=BEARDS[_pick(rng, (0.55, 0.2, 0.1, 0.15))] if not fem else "none",
        glasses=(_garment_colour(rng) if rng.random() < 0.5 else (20, 20, 22)) if rng.random() < 0.18 else None,
        eye_size=rng.uniform(0.8, 1.25),
        brow=rng.uniform(0.7, 1.5),
        mouth=rng.uniform(0.8, 1.25),
        blush=rng.uniform(0.0, 0.3) if rng.random() < 0.4 else 0.0,
    )


def _chest_text(rng: np.random.Generator) -> str:
    """One or two short lines: a word from _WORDS or random letters (3 - 6)."""
    lines = []
    for _ in range(1 + int(rng.random() < 0.35)):
        if rng.random() < 0.6:
            lines.append(_WORDS[int(rng.integers(len(_WORDS)))])
        else:
            n = int(rng.integers(3, 7))
            lines.append("".join(tp.LETTERS[int(rng.integers(len(tp.LETTERS)))] for _ in range(n)))
    return "\n".join(lines)


def _hair_fabric(rng: np.random.Generator, hair: RGB, style: str) -> Fabric:
    """Hair as a texture in the head frame (rows run down the head, columns across it): strands
    of varying brightness, optional highlights; curls (rings) for curly hair."""
    tile = np.empty((_T, _T, 3), np.float32)
    tile[:] = np.asarray(hair, np.float32)
    light = _mix(hair, (235, 215, 170), rng.uniform(0.25, 0.55))
    if style == "curly":
        tile *= 1.0 + 0.1 * tp.periodic_noise(rng, _T, 4)[:, :, None]
        dark = _scale_rgb(hair, 0.6)
        for _ in range(int(rng.integers(10, 16))):
            tp.paste(tile, tp.shape_stamp(3, int(rng.integers(4, 7)), 0), dark if rng.random() < 0.6 else light,
                     rng.uniform(0, _T), rng.uniform(0, _T))
        tpu = _T / rng.uniform(0.18, 0.3)
    else:
        strands = rng.normal(0.0, 1.0, _T).astype(np.float32)
        strands = 0.5 * strands + 0.25 * np.roll(strands, 1) + 0.25 * np.roll(strands, -1)
        tile *= (1.0 + 0.16 * strands)[None, :, None]
        tile *= (1.0 + 0.05 * rng.normal(0.0, 1.0, (_T, 1, 1))).astype(np.float32)
        if rng.random() < 0.25:  # highlights: a few lighter strands
            cols = rng.integers(0, _T, int(rng.integers(3, 7)))
            tile[:, cols] = tile[:, cols] * 0.4 + np.asarray(light, np.float32) * 0.6
        tpu = _T / rng.uniform(0.22, 0.4)
    t8 = np.clip(tile + 0.5, 0, 255).astype(np.uint8)
    return Fabric("hair", (hair,), t8, float(tpu), _clip_rgb(cv2.mean(t8)))





# --------------------------------------------------------------------------------------------
# Pose completion: every joint the drawing needs, plus view and scale
# --------------------------------------------------------------------------------------------


def _unit(v: np.ndarray, fallback: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    n = math.hypot(v[0], v[1])
    if n < 1e-6:
        return np.array(fallback, np.float64)
    return v / n


@dataclass
class Body:
    """A completed pose in output pixels (x, y) with the quantities the drawing needs
    (returned by :func:`complete_pose`)."""

    J: np.ndarray  # float64 [18, 2] (x, y): annotated joints + completed ones
    known: np.ndarray  # bool [18]: joints present in the annotation
    s: float  # body unit (torso length) in pixels
    down: np.ndarray  # unit vector neck -> mid-hip
    h: np.ndarray  # unit vector perpendicular to down, pointing image-right when upright
    cos_t: float  # body yaw: +1 facing the camera, -1 back to the camera
    sin_t: float  # > 0: facing image-right (the person's right side is nearer the camera)
    face: bool  # face visible (front head)
    torso_front: bool  # chest (not back) towards the camera
    head_c: np.ndarray  # head centre (x, y)
    head_up: np.ndarray  # unit vector, head's up
    head_r: np.ndarray  # unit vector, head's image-right (perpendicular to head_up)


# Nominal lengths in body units (medians of the real pose bank, frontal views).
_L_UPPER_ARM, _L_FOREARM, _L_THIGH, _L_SHIN = 0.6, 0.52, 0.86, 0.84
HEAD_RX, HEAD_RY = 0.19, 0.245  # head half-width / half-height in body units (ear span ~0.36)


def complete_pose(keypoints_xy: np.ndarray, present: np.ndarray) -> Body:
    """Fill in joints missing from an annotation so a whole body can be drawn.

    keypoints_xy: float ``[18, 2]`` (x, y) pixels (values of missing joints are ignored);
    present: bool ``[18]``. Needs the neck or both shoulders, plus one more torso joint
    (neck, shoulders, hips); raises ValueError otherwise. Completed joints follow body
    proportions: a missing shoulder mirrors the other about the neck, missing hips sit one
    torso length below the neck, missing arm / leg joints continue the limb or hang down.
    """
    kp = np.asarray(keypoints_xy, np.float64)[:, :2]
    known = np.asarray(present, bool) & np.isfinite(kp).all(-1)
    J = np.where(known[:, None], kp, np.nan)
    k = known.copy()
    torso_known = int(k[[P.NECK, P.R_SHOULDER, P.L_SHOULDER, P.R_HIP, P.L_HIP]].sum())
    if not (k[P.NECK] or (k[P.R_SHOULDER] and k[P.L_SHOULDER])) or torso_known < 2:
        raise ValueError("pose needs the neck (or both shoulders) and one more torso joint")
    if not k[P.NECK]:
        J[P.NECK] = (J[P.R_SHOULDER] + J[P.L_SHOULDER]) / 2
        k[P.NECK] = True
    neck = J[P.NECK]

    # Body unit: torso length; foreshortening only shortens, so take the larger estimate.
    est: list[float] = []
    if k[P.R_HIP] or k[P.L_HIP]:
        hips = [J[j] for j in (P.R_HIP, P.L_HIP) if k[j]]
        est.append(float(np.linalg.norm(np.mean(hips, 0) - neck)))
    if k[P.R_SHOULDER] and k[P.L_SHOULDER]:
        est.append(float(np.linalg.norm(J[P.R_SHOULDER] - J[P.L_SHOULDER])) / 0.78)
    sec: list[float] = []
    for a, b, L in ((P.NECK, P.NOSE, 0.42), (P.R_SHOULDER, P.R_ELBOW, _L_UPPER_ARM),
                    (P.L_SHOULDER, P.L_ELBOW, _L_UPPER_ARM), (P.R_HIP, P.R_KNEE, _L_THIGH),
                    (P.L_HIP, P.L_KNEE, _L_THIGH), (P.R_EAR, P.L_EAR, 0.36)):
        if k[a] and k[b]:
            sec.append(float(np.linalg.norm(J[a] - J[b])) / L)
    s = max(est) if est else 0.0
    if sec:
        s = max(s, 0.85 * float(np.median(sec)))
    s = max(s, 4.0)

    # Body axes.
    if k[P.R_HIP] or k[P.L_HIP]:
        mh = np.nanmean(J[[P.R_HIP, P.L_HIP]], 0)
        down = _unit(mh - neck)
    elif k[P.R_SHOULDER] and k[P.L_SHOULDER]:
        sv = J[P.L_SHOULDER] - J[P.R_SHOULDER]
        down = _unit(np.array([-sv[1], sv[0]]))
        if down[1] < 0:
            down = -down
        if np.hypot(*sv) < 0.2 * s:
            down = np.array([0.0, 1.0])
    else:
        down = np.array([0.0, 1.0])
    h = np.array([down[1], -down[0]])

    # Shoulders.
    if k[P.R_SHOULDER] != k[P.L_SHOULDER]:
        a, b = (P.R_SHOULDER, P.L_SHOULDER) if k[P.R_SHOULDER] else (P.L_SHOULDER, P.R_SHOULDER)
        J[b] = 2 * neck - J[a]
    elif not k[P.R_SHOULDER]:
        J[P.R_SHOULDER] = neck - h * 0.33 * s
        J[P.L_SHOULDER] = neck + h * 0.33 * s
    sh_vec = J[P.L_SHOULDER] - J[P.R_SHOULDER]

    # View: shoulder order gives the body's yaw, the face tells front from back.
    cos_t = float(np.clip(np.dot(sh_vec, h) / (0.62 * s), -1.0, 1.0))
    face = bool(k[P.NOSE] or k[P.R_EYE] or k[P.L_EYE])
    torso_front = cos_t > -0.15 if face else cos_t > 0.3
    side = 0.0
    if face:
        r_side = int(k[P.R_EYE]) + int(k[P.R_EAR])
        l_side = int(k[P.L_EYE]) + int(k[P.L_EAR])
        if r_side != l_side:
            side = 1.0 if r_side > l_side else -1.0  # right features visible: facing image-right
        elif k[P.NOSE] and k[P.R_EYE] and k[P.L_EYE]:
            off = np.dot(J[P.NOSE] - (J[P.R_EYE] + J[P.L_EYE]) / 2, h)
            side = float(np.clip(off / (0.05 * s), -1, 1))
    sin_t = side * math.sqrt(max(0.0, 1.0 - cos_t * cos_t))

    # Hips.
    hip_half = sh_vec * 0.31
    if not (k[P.R_HIP] or k[P.L_HIP]):
        mh = neck + down * s
        J[P.R_HIP] = mh - hip_half
        J[P.L_HIP] = mh + hip_half
    elif not k[P.R_HIP]:
        J[P.R_HIP] = J[P.L_HIP] - 2 * hip_half
    elif not k[P.L_HIP]:
        J[P.L_HIP] = J[P.R_HIP] + 2 * hip_half

    # Limbs: (root, mid, end, len1, len2, outward, is_arm).
    for root, mid, end, l1, l2, out, arm in (
        (P.R_SHOULDER, P.R_ELBOW, P.R_WRIST, _L_UPPER_ARM, _L_FOREARM, -sh_vec, True),
        (P.L_SHOULDER, P.L_ELBOW, P.L_WRIST, _L_UPPER_ARM, _L_FOREARM, sh_vec, True),
        (P.R_HIP, P.R_KNEE, P.R_ANKLE, _L_THIGH, _L_SHIN, -sh_vec, False),
        (P.L_HIP, P.L_KNEE, P.L_ANKLE, _L_THIGH, _L_SHIN, sh_vec, False),
    ):
        out = _unit(out, (float(h[0]), float(h[1])))
        hang = _unit(down + out * (0.18 if arm else 0.04))
        L1, L2 = l1 * s, l2 * s
        a = J[root]
        if k[mid] and k[end]:
            continue
        if k[end]:  # mid missing: bend the limb outwards between root and end
            d = J[end] - a
            dist = math.hypot(d[0], d[1])
            m = a + d * (L1 / (L1 + L2))
            if dist < L1 + L2:
                n = _unit(np.array([-d[1], d[0]]))
                if np.dot(n, out) < 0:
                    n = -n
                m = m + n * math.sqrt(max(L1 * L1 - (dist * L1 / (L1 + L2)) ** 2, 0.0))
            J[mid] = m
        elif k[mid]:  # end missing: continue the limb (arms relax towards hanging)
            d = J[mid] - a
            cont = _unit(d, (float(hang[0]), float(hang[1]))) if math.hypot(*d) > 0.15 * s else hang
            if arm:
                cont = _unit(cont + hang)
            J[end] = J[mid] + cont * L2
        else:
            J[mid] = a + hang * L1
            J[end] = J[mid] + hang * L2

    # Head frame from whatever facial joints exist.
    up0 = -down
    cands: list[np.ndarray] = []
    hr_ = 0.19 * s
    face_pts = [J[j] for j in (P.R_EYE, P.L_EYE) if known[j]]
    if known[P.NOSE]:
        c = J[P.NOSE] + up0 * 0.07 * s
        if face_pts:
            c = (c + np.mean(face_pts, 0) + up0 * 0.01 * s) / 2
        cands.append(c - h * (sin_t * 0.5 * hr_))  # profile: the skull is behind the face
    elif face_pts:
        cands.append(np.mean(face_pts, 0) - h * (sin_t * 0.5 * hr_))
    if known[P.R_EAR] and known[P.L_EAR]:
        cands.append((J[P.R_EAR] + J[P.L_EAR]) / 2)
    elif known[P.R_EAR] or known[P.L_EAR]:
        e = J[P.R_EAR] if known[P.R_EAR] else J[P.L_EAR]
        cands.append(e + h * (sin_t * 0.3 * hr_))
    head_c = np.mean(cands, 0) if cands else neck + up0 * 0.46 * s
    head_up = _unit(0.5 * _unit(head_c - neck, (float(up0[0]), float(up0[1]))) + 0.5 * up0,
                    (float(up0[0]), float(up0[1])))
    if known[P.R_EYE] and known[P.L_EYE]:
        e = J[P.L_EYE] - J[P.R_EYE]
        if math.hypot(*e) > 0.06 * s:
            n = _unit(np.array([e[1], -e[0]]))
            if np.dot(n, head_up) < 0:
                n = -n
            head_up = _unit(n + head_up)
    head_r = np.array([-head_up[1], head_up[0]])
    # The drawn head must contain the annotated face: pull the centre towards any eye / nose
    # outside 75 % of the nominal head ellipse (ears: outside its edge).
    rx, ry = HEAD_RX * s, HEAD_RY * s
    for j, lim in ((P.NOSE, 0.75), (P.R_EYE, 0.75), (P.L_EYE, 0.75), (P.R_EAR, 1.0), (P.L_EAR, 1.0)):
        if known[j]:
            d = J[j] - head_c
            rho = math.hypot(float(np.dot(d, head_r)) / rx, float(np.dot(d, head_up)) / ry)
            if rho > lim:
                head_c = head_c + d * (1.0 - lim / rho)
    return Body(J, known, s, down, h, cos_t, sin_t, face, torso_front, head_c, head_up, head_r)


# --------------------------------------------------------------------------------------------
# Geometry helpers (all in output-pixel coordinates, (x, y))
# --------------------------------------------------------------------------------------------


def _tube(a: np.ndarray, b: np.ndarray, ra: float, rb: float, cap_a: bool = True,
          cap_b: bool = True) -> np.ndarray:
    """Tapered limb polygon from a (radius ra) to b (radius rb); caps round or flat. [n, 2]."""
    d = _unit(b - a)
    n = np.array([-d[1], d[0]])
    if cap_a:
        pa = a + ra * (_CAP_COS * n - _CAP_SIN * d)
    else:
        pa = np.stack([a + n * ra, a - n * ra])
    if cap_b:
        pb = b + rb * (_CAP_SIN * d - _CAP_COS * n)
    else:
        pb = np.stack([b - n * rb, b + n * rb])
    return np.concatenate([pa, pb])


# Tube template for batches: 7 points around the start cap, then 7 around the end cap, as
# coefficients of the limb normal n and direction d. A flat cap keeps the n coefficients and
# drops d: its points are collinear on the cap line, which fillPoly does not mind.
_TUBE_CN = np.concatenate([np.cos(_CAP), -np.cos(_CAP)])
_TUBE_CD = np.concatenate([-np.sin(_CAP), np.sin(_CAP)])
_TUBE_START = np.concatenate([np.ones(7, bool), np.zeros(7, bool)])


class _Tubes:
    """Tube polygons collected while a person is built and computed in one vectorised pass
    (a person has ~40 of them; one numpy pass is much cheaper than 40 small ones)."""

    def __init__(self) -> None:
        self._rows: list[tuple[float, ...]] = []
        self.pts = np.zeros((0, 14, 2))

    def add(self, a: np.ndarray, b: np.ndarray, ra: float, rb: float, cap_a: bool = True,
            cap_b: bool = True) -> int:
        """Queue the tube of :func:`_tube`; returns its index into :attr:`pts` after compute()."""
        self._rows.append((float(a[0]), float(a[1]), float(b[0]), float(b[1]), float(ra), float(rb),
                           float(cap_a), float(cap_b)))
        return len(self._rows) - 1

    def compute(self) -> np.ndarray:
        """float64 [m, 14, 2] (x, y) polygons of every queued tube."""
        if not self._rows:
            return self.pts
        S = np.array(self._rows, np.float64)
        A, B = S[:, 0:2], S[:, 2:4]
        D = B - A
        L = np.hypot(D[:, 0], D[:, 1])
        ok = L > 1e-6
        d = np.where(ok[:, None], D / np.where(ok, L, 1.0)[:, None], np.array([0.0, 1.0]))
        n = np.stack([-d[:, 1], d[:, 0]], axis=1)
        start = _TUBE_START[None, :]
        cap = np.where(start, S[:, 6:7], S[:, 7:8])  # [m, 14]
        r = np.where(start, S[:, 4:5], S[:, 5:6])  # [m, 14]
        c = np.where(start[:, :, None], A[:, None, :], B[:, None, :])  # [m, 14, 2]
        off = _TUBE_CN[None, :, None] * n[:, None, :] + (_TUBE_CD[None, :] * cap)[:, :, None] * d[:, None, :]
        self.pts = c + r[:, :, None] * off
        return self.pts


def _ellipse(c: np.ndarray, ax1: np.ndarray, ax2: np.ndarray) -> np.ndarray:
    """Ellipse polygon with centre c and semi-axis vectors ax1, ax2. [20, 2]."""
    return c + _ELL_COS * ax1 + _ELL_SIN * ax2


@lru_cache(maxsize=64)
def _ramp(n: int) -> np.ndarray:
    """float [n, 1] from 0 to 1 (cached: building it is a noticeable share of a tiny polygon)."""
    r = np.linspace(0.0, 1.0, n)[:, None]
    r.setflags(write=False)
    return r


def _arc(c: np.ndarray, ax1: np.ndarray, ax2: np.ndarray, t0: float, t1: float, n: int = 10) -> np.ndarray:
    """Elliptic arc c + cos(t) ax1 + sin(t) ax2 for t from t0 to t1, [n, 2]."""
    t = t0 + (t1 - t0) * _ramp(n)
    return c + np.cos(t) * ax1 + np.sin(t) * ax2


# --------------------------------------------------------------------------------------------
# Painter: supersampled RGB canvas + parsing map at output resolution
# --------------------------------------------------------------------------------------------

_Frame = tuple[np.ndarray, np.ndarray, np.ndarray, float, float]  # origin, u, v, unit px, u offset
_RIM_K = 0.8  # rim (shading) colour = paint * _RIM_K


def _rim_colour(paint: RGB | Fabric, k: float) -> RGB:
    return _scale_rgb(paint.mean if isinstance(paint, Fabric) else paint, k)


class _Painter:
    """Draws polygons on a supersampled 4-channel canvas: RGB plus the parsing label in the
    4th channel, so one cv2 call paints a part and labels it with identical rasterisation."""

    def __init__(self, canvas: np.ndarray, height: int, width: int):
        self.img = canvas  # uint8 [SS*H, SS*W, 4]: R, G, B, parsing label
        self.H, self.W = height, width
        self.rim = max(1, int(round(SS * 0.75)))
        self.tubes = np.zeros((0, 14, 2))
        self.tubes_q = np.zeros((0, 14, 2), np.int32)

    def set_tubes(self, pts: np.ndarray) -> None:
        self.tubes = pts
        self.tubes_q = self._canvas_pts(pts)

    def _resolve(self, pts: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(pts, int):
            return self.tubes[pts], self.tubes_q[pts]
        return pts, self._canvas_pts(pts)

    @staticmethod
    def _canvas_pts(pts: np.ndarray) -> np.ndarray:
        # Output pixel centre x -> canvas coordinate SS*x + (SS-1)/2, in cv2 fixed point.
        return np.rint(pts * (SS * _FP) + (SS - 1) / 2.0 * _FP).astype(np.int32)

    def _fill(self, pts: np.ndarray, qi: np.ndarray, paint: RGB | Fabric, label: int,
              frame: _Frame | None) -> None:
        if isinstance(paint, Fabric):
            self._textured(qi, paint, label, frame)
        else:
            cv2.fillPoly(self.img, [qi], (*paint, label), cv2.LINE_8, _SHIFT)

    def poly(self, pts: np.ndarray | int, paint: RGB | Fabric, label: int, frame: _Frame | None = None,
             rim: bool = True, rim_k: float = _RIM_K) -> None:
        """Fill polygon ``pts`` (float [n, 2] (x, y) output pixels) with a colour or a fabric."""
        pts, qi = self._resolve(pts)
        self._fill(pts, qi, paint, label, frame)
        if rim:
            # A darker rim stands in for the shading at the part's silhouette (and separates
            # overlapping parts of one colour, e.g. an arm across a same-coloured top).
            cv2.polylines(self.img, [qi], True, (*_rim_colour(paint, rim_k), label), self.rim,
                          cv2.LINE_8, _SHIFT)

    def group(self, items: Sequence[tuple[np.ndarray | int, np.ndarray | int, RGB | Fabric, _Frame | None]],
              label: int) -> None:
        """Connected parts (e.g. upper arm, forearm, hand): every outer polygon in its darker
        rim colour first, then every inner (inset) polygon in its paint, so the rim shades the
        group's silhouette without drawing seams at the joints."""
        for outer, _, paint, _ in items:
            _, qi = self._resolve(outer)
            cv2.fillPoly(self.img, [qi], (*_rim_colour(paint, _RIM_K), label), cv2.LINE_8, _SHIFT)
        for _, inset, paint, frame in items:
            pts, qi = self._resolve(inset)
            self._fill(pts, qi, paint, label, frame)

    def _textured(self, qi: np.ndarray, fab: Fabric, label: int, frame: _Frame | None) -> None:
        H2, W2 = self.img.shape[:2]
        bx, by, bw, bh = cv2.boundingRect(qi)  # fixed point
        x0, y0 = max((bx >> _SHIFT) - 1, 0), max((by >> _SHIFT) - 1, 0)
        x1, y1 = min(((bx + bw) >> _SHIFT) + 2, W2), min(((by + bh) >> _SHIFT) + 2, H2)
        if x1 <= x0 or y1 <= y0:
            return
        w, h = x1 - x0, y1 - y0
        assert frame is not None, "a fabric needs a part frame"
        o, u, v, unit, u_off = frame
        tpu = fab.texels_per_unit
        k = tpu / (unit * SS)
        # Canvas pixel (x0 + qx, y0 + qy) -> output coords X = (q - (SS-1)/2) / SS -> part
        # coordinates (du along u, dv along v, body units) -> texel (col = dv*tpu, row = du*tpu).
        bxo = (x0 - (SS - 1) / 2.0) / SS - float(o[0])
        byo = (y0 - (SS - 1) / 2.0) / SS - float(o[1])
        c_col = tpu * (bxo * float(v[0]) + byo * float(v[1])) / unit
        c_row = tpu * ((bxo * float(u[0]) + byo * float(u[1])) / unit + u_off)
        a00, a01, a10, a11 = k * float(v[0]), k * float(v[1]), k * float(u[0]), k * float(u[1])
        # Shift by whole tile periods so the bbox samples start inside the pre-tiled texture.
        cols = (c_col, c_col + a00 * w, c_col + a01 * h, c_col + a00 * w + a01 * h)
        rows = (c_row, c_row + a10 * w, c_row + a11 * h, c_row + a10 * w + a11 * h)
        c_col -= math.floor(min(cols) / _T) * _T
        c_row -= math.floor(min(rows) / _T) * _T
        span = max(max(cols) - min(cols), max(rows) - min(rows))
        M = np.array([[a00, a01, c_col], [a10, a11, c_row]], np.float64)
        border = cv2.BORDER_CONSTANT if span < (_BIG - 1) * _T - 2 else cv2.BORDER_WRAP
        # Nearest texels are fine here: the canvas is box-filtered down by SS afterwards.
        tex = cv2.warpAffine(fab.labelled(label), M, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                             borderMode=border)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [qi], 1, cv2.LINE_8, _SHIFT, (-(x0 << _SHIFT), -(y0 << _SHIFT)))
        cv2.copyTo(tex, mask, self.img[y0:y1, x0:x1])

    def outline(self, pts: np.ndarray, colour: RGB, thickness: float, label: int) -> None:
        """Closed thin outline (spectacle frames)."""
        cv2.polylines(self.img, [self._canvas_pts(pts)], True, (*colour, label), max(1, int(round(thickness * SS))),
                      cv2.LINE_8, _SHIFT)

    def decal(self, alpha: np.ndarray, colour: RGB, label: int, centre: np.ndarray, ax: np.ndarray,
              ay: np.ndarray) -> None:
        """Blend ``colour`` through the uint8 mask ``alpha`` [h, w] mapped onto the parallelogram
        centre +- ax (sprite width) +- ay (sprite height), output pixels. Only pixels already
        labelled ``label`` are painted and no label changes: a print never leaves its garment,
        and the parsing map is exactly the garment's."""
        h, w = alpha.shape
        A = np.column_stack([ax * (2.0 * SS / w), ay * (2.0 * SS / h)])  # sprite px -> canvas px
        t = centre * SS + (SS - 1) / 2.0 - A @ np.array([w / 2.0, h / 2.0])
        corners = A @ np.array([[0.0, w, 0.0, w], [0.0, 0.0, h, h]]) + t[:, None]
        H2, W2 = self.img.shape[:2]
        x0, y0 = max(int(math.floor(corners[0].min())), 0), max(int(math.floor(corners[1].min())), 0)
        x1, y1 = min(int(math.ceil(corners[0].max())) + 1, W2), min(int(math.ceil(corners[1].max())) + 1, H2)
        if x1 <= x0 or y1 <= y0:
            return
        M = np.hstack([A, (t - np.array([x0, y0]))[:, None]])
        a = cv2.warpAffine(alpha, M, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        region = self.img[y0:y1, x0:x1]
        af = (a.astype(np.float32) * (1.0 / 255.0)) * (region[:, :, 3] == label)
        rgb = region[:, :, :3].astype(np.float32)
        rgb += (np.asarray(colour, np.float32) - rgb) * af[:, :, None]
        region[:, :, :3] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)

    def line(self, a: np.ndarray, b: np.ndarray, colour: RGB, thickness: float, label: int) -> None:
        """Thin stroke (face details); anti-aliased by the supersampling."""
        qa = self._canvas_pts(a)
        qb = self._canvas_pts(b)
        cv2.line(self.img, (int(qa[0]), int(qa[1])), (int(qb[0]), int(qb[1])), (*colour, label),
                 max(1, int(round(thickness * SS))), cv2.LINE_8, _SHIFT)


# --------------------------------------------------------------------------------------------
# The person: draw commands with depth
# --------------------------------------------------------------------------------------------

_Cmd = tuple[float, int, Callable[[_Painter], None]]


class _Scene:
    """Collects draw commands with a depth key; drawn far to near (stable within equal depth)."""

    def __init__(self) -> None:
        self.cmds: list[_Cmd] = []
        self.tubes = _Tubes()

    def add(self, z: float, fn: Callable[[_Painter], None]) -> None:
        self.cmds.append((z, len(self.cmds), fn))

    def poly(self, z: float, pts: np.ndarray | int, paint: RGB | Fabric, label: int,
             frame: _Frame | None = None, rim: bool = True) -> None:
        self.cmds.append((z, len(self.cmds), lambda p: p.poly(pts, paint, label, frame, rim)))

    def group(self, z: float, items: list[tuple[np.ndarray | int, np.ndarray | int, RGB | Fabric, _Frame | None]],
              label: int) -> None:
        self.cmds.append((z, len(self.cmds), lambda p: p.group(items, label)))

    def draw(self, painter: _Painter) -> None:
        painter.set_tubes(self.tubes.compute())
        for _, _, fn in sorted(self.cmds, key=lambda c: (c[0], c[1])):
            fn(painter)


class _Torso:
    """Torso outline swept along the neck -> mid-hip axis (level t: 0 shoulders, 1 hips)."""

    def __init__(self, b: Body, ident: Identity):
        J, s = b.J, b.s
        self.s = s
        self.ms = (J[P.R_SHOULDER] + J[P.L_SHOULDER]) / 2
        self.mh = (J[P.R_HIP] + J[P.L_HIP]) / 2
        fallback_r = -b.h if b.torso_front else b.h  # person's right side in the image
        half_s = (J[P.R_SHOULDER] - J[P.L_SHOULDER]) / 2
        half_h = (J[P.R_HIP] - J[P.L_HIP]) / 2
        fb = (float(fallback_r[0]), float(fallback_r[1]))
        self.dir_s = _unit(half_s, fb)
        self.dir_h = _unit(half_h, fb)
        if np.dot(self.dir_s, self.dir_h) < -0.2:  # crossed (twisted) annotation: follow the shoulders
            self.dir_h = self.dir_s
        if math.hypot(*half_s) < 0.2 * s:
            self.dir_s = _unit(self.dir_s + fallback_r * 0.5)
        # Half-widths: projected joint spread, but never thinner than the body's depth (side
        # views). The shoulder joint sits inside the deltoid, so the top edge passes over it.
        hs = max(math.hypot(*half_s), 0.2 * s) * ident.shoulder
        ws = hs + 0.045 * s * ident.girth
        wh = max(math.hypot(*half_h), 0.16 * s) * ident.hips + 0.1 * s * ident.girth
        ww = ident.waist * (ws + (wh - ws) * 0.62)
        wn = 0.08 * s * ident.girth
        self.t_k = np.array([-0.16, -0.1, 0.0, 0.1, 0.62, 1.0, 1.3])
        self.w_k = np.array([wn * 1.2, hs * 0.85, ws * 0.97, ws, ww, wh, wh * 1.04])

    def centre(self, t: np.ndarray) -> np.ndarray:
        return self.ms + (self.mh - self.ms) * t[:, None]

    def side_dir(self, t: np.ndarray) -> np.ndarray:
        a = np.clip(t, 0.0, 1.0)[:, None]
        d = self.dir_s + (self.dir_h - self.dir_s) * a
        return d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)[:, None]

    def edges(self, t0: float, t1: float, extra: float = 0.0,
              narrow_top: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Right and left edge points [n, 2] at levels t0 .. t1 (extra half-width in body units)."""
        inner = self.t_k[(self.t_k > t0) & (self.t_k < t1)]
        t = np.concatenate([[t0], inner, [t1]])
        w = np.interp(t, self.t_k, self.w_k) + extra * self.s
        if narrow_top != 1.0:
            w = np.where(t < 0.12, w * narrow_top, w)
        c = self.centre(t)
        d = self.side_dir(t)
        return c + d * w[:, None], c - d * w[:, None]

    def outline(self, t0: float, t1: float, extra: float = 0.0, narrow_top: float = 1.0) -> np.ndarray:
        r, l = self.edges(t0, t1, extra, narrow_top)
        return np.concatenate([r, l[::-1]])

    def frame(self) -> _Frame:
        u = _unit(self.mh - self.ms)
        v = -self.dir_s  # across: from the right towards the left side
        return (self.ms, u, v, self.s, 0.0)


def _limb_point(J: np.ndarray, root: int, mid: int, end: int, t: float) -> np.ndarray:
    """Point along a two-segment limb: t in [0, 1] on the first segment, [1, 2] on the second."""
    if t <= 1.0:
        return J[root] + (J[mid] - J[root]) * t
    return J[mid] + (J[end] - J[mid]) * min(t - 1.0, 1.0)


def _limb_frame(a: np.ndarray, b: np.ndarray, s: float, u_off: float) -> _Frame:
    u = _unit(b - a)
    return (a, u, np.array([-u[1], u[0]]), s, u_off)


def _build_person(scene: _Scene, ident: Identity, b: Body) -> None:
    J, s, g = b.J, b.s, ident.girth
    skin = ident.skin
    torso = _Torso(b, ident)
    tf = torso.frame()
    front = b.torso_front
    top, bot = ident.top, ident.bottom
    inset = min(max(0.022 * s, 0.45), 1.3)  # rim width (output px) of limb groups

    tubes = scene.tubes

    def tube(a: np.ndarray, e: np.ndarray, ra: float, rb: float, cap_a: bool = True,
             cap_b: bool = True) -> tuple[int, int]:
        """(outer, inset) tube references: the inset one is drawn over the rim-coloured outer."""
        return (tubes.add(a, e, ra, rb, cap_a, cap_b),
                tubes.add(a, e, max(ra - inset, 0.3), max(rb - inset, 0.3), cap_a, cap_b))

    def ellipse(c: np.ndarray, ax1: np.ndarray, ax2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n1, n2 = np.hypot(*ax1), np.hypot(*ax2)
        k1, k2 = max(n1 - inset, 0.3) / max(n1, 1e-6), max(n2 - inset, 0.3) / max(n2, 1e-6)
        return _ellipse(c, ax1, ax2), _ellipse(c, ax1 * k1, ax2 * k2)

    # Depth keys: torso stack around 0, arms in front (front view) or behind (back view),
    # the near side (sin_t > 0: the right side) in front of the far side in turned views.
    fb = 1.0 if front else -1.0
    z_arm = {P.R_SHOULDER: 0.1 * fb + 0.5 * b.sin_t, P.L_SHOULDER: 0.1 * fb - 0.5 * b.sin_t}
    z_leg = {P.R_HIP: -0.05 + 0.04 * b.sin_t, P.L_HIP: -0.05 - 0.04 * b.sin_t}

    # Torso skin (shows at necklines, midriffs, under tank tops).
    scene.poly(0.0, torso.outline(-0.16, 1.08), skin, UPPER_SKIN)

    # Neck.
    neck_top = b.head_c - b.head_up * 0.12 * s
    scene.group(-0.001, [(*tube(J[P.NECK] - b.down * 0.05 * s, neck_top, 0.08 * s * g, 0.07 * s * g),
                          _scale_rgb(skin, 0.94), None)], UPPER_SKIN)

    # Legs: skin, trouser / shorts tubes, shoes.
    bf = bot.fabric
    r_hip, r_knee, r_ank = 0.14 * s * g * ident.hips, 0.095 * s * g, 0.062 * s * g
    for root, mid, end in ((P.R_HIP, P.R_KNEE, P.R_ANKLE), (P.L_HIP, P.L_KNEE, P.L_ANKLE)):
        z = z_leg[root]
        A, K, F = J[root], J[mid], J[end]
        scene.group(z, [(*tube(A, K, r_hip, r_knee), skin, None), (*tube(K, F, r_knee, r_ank), skin, None)],
                    LOWER_SKIN)
        if bot.kind in ("trousers", "shorts"):
            lo = bot.loose * s
            if bot.kind == "shorts" or bot.length <= 1.0:
                e = _limb_point(J, root, mid, end, bot.length)
                items = [(*tube(A, e, r_hip * 1.12 + lo, r_hip * 0.95 + lo + 0.02 * s, cap_b=False),
                          bf, _limb_frame(A, K, s, 1.0))]
            else:
                e = _limb_point(J, root, mid, end, bot.length)
                items = [(*tube(A, K, r_hip * 1.12 + lo, r_knee * 1.2 + lo), bf, _limb_frame(A, K, s, 1.0)),
                         (*tube(K, e, r_knee * 1.2 + lo, r_ank * 1.35 + lo * 1.4, cap_b=False), bf,
                          _limb_frame(K, F, s, 1.0 + _L_THIGH))]
            scene.group(z + 2e-4, items, BOTTOM)
        # Foot: points along the facing direction in turned views, towards the camera in front views.
        out = _unit(J[root] - (J[P.R_HIP] + J[P.L_HIP]) / 2, (float(b.h[0]), float(b.h[1])))
        toe = F + b.h * (b.sin_t * 0.22 * s) + b.down * (0.07 * s) + out * (0.025 * s * abs(b.cos_t))
        heel = F - b.h * (b.sin_t * 0.04 * s)
        scene.group(z + 4e-4, [(*tube(heel + b.down * 0.03 * s, toe + b.down * 0.025 * s, 0.06 * s, 0.055 * s),
                                ident.sole, None),
                               (*tube(heel, toe, 0.062 * s, 0.052 * s), ident.shoes, None)], SHOES)

    # Hip piece of trousers / shorts (covers the top of both legs).
    if bot.kind in ("trousers", "shorts"):
        r, l = torso.edges(bot.waist, 1.0, bot.loose + 0.01)
        crotch = torso.mh + b.down * 0.16 * s
        lo_r = J[P.R_HIP] + torso.dir_h * (r_hip * 1.1) + _unit(J[P.R_KNEE] - J[P.R_HIP]) * 0.18 * s
        lo_l = J[P.L_HIP] - torso.dir_h * (r_hip * 1.1) + _unit(J[P.L_KNEE] - J[P.L_HIP]) * 0.18 * s
        pts = np.concatenate([r, [lo_r, crotch, lo_l], l[::-1]])
        scene.poly(0.01, pts, bf, BOTTOM, tf)
    else:  # skirt: from the waist, widening over the legs towards the hem
        r, l = torso.edges(bot.waist, 1.0, bot.loose + 0.015)
        L = bot.length
        hem_r = _limb_point(J, P.R_HIP, P.R_KNEE, P.R_ANKLE, L)
        hem_l = _limb_point(J, P.L_HIP, P.L_KNEE, P.L_ANKLE, L)
        width = float(np.dot(hem_r - hem_l, torso.dir_h))
        need = 2 * r_hip + 2 * bot.flare * s * L
        centre = (hem_r + hem_l) / 2
        # Keep the hem at least as wide as the hips + flare, whatever the legs do.
        half = max(width, need) / 2
        hem_r = centre + torso.dir_h * half
        hem_l = centre - torso.dir_h * half
        hem_mid = centre + b.down * 0.04 * s
        pts = np.concatenate([r, [hem_r, hem_mid, hem_l], l[::-1]])
        scene.poly(0.012 if not ident.dress else 0.019, pts, bf, BOTTOM, tf)

    # Top (tucked tops sit under the bottom's waistband).
    z_top = 0.008 if ident.tucked else 0.02
    hem = min(top.hem, bot.waist + 0.06) if ident.tucked else top.hem
    narrow = 0.7 if top.kind == "tank" else 1.0
    scene.poly(z_top, torso.outline(-0.17, hem, top.loose, narrow), top.fabric, TOP, tf)
    if ident.belt is not None and bot.kind != "skirt":
        scene.poly(0.011, torso.outline(bot.waist - 0.02, bot.waist + 0.035, bot.loose + 0.015),
                   ident.belt, BOTTOM, rim=False)
    if front:
        # Neckline: skin showing below the neck.
        c0 = torso.centre(np.array([-0.17]))[0]
        d0 = torso.side_dir(np.array([-0.17]))[0]
        wn = 0.1 * s * g
        bottom_pt = torso.centre(np.array([top.neck_depth - 0.15]))[0]
        if top.neckline == "v":
            pts = np.stack([c0 + d0 * wn, bottom_pt, c0 - d0 * wn])
        else:
            depth = bottom_pt - c0 if top.neckline == "round" else (bottom_pt - c0) * 0.45
            pts = _arc(c0, d0 * wn, depth, 0.0, math.pi, 9)
        scene.poly(z_top + 0.001, pts, skin, UPPER_SKIN, rim=False)
        # Chest print, foreshortened with the body's yaw; seen from the front only.
        if top.print_shape >= 0 and b.cos_t > 0.35:
            _chest_print(scene, z_top + 0.002, torso, top, b)

    # Arms: skin, sleeves, hands.
    r_s, r_e, r_w = 0.1 * s * g, 0.075 * s * g, 0.055 * s * g
    for root, mid, end in ((P.R_SHOULDER, P.R_ELBOW, P.R_WRIST), (P.L_SHOULDER, P.L_ELBOW, P.L_WRIST)):
        z = z_arm[root]
        S, E, W = J[root], J[mid], J[end]
        fd = _unit(W - E)
        hand = ellipse(W + fd * 0.06 * s, fd * 0.085 * s, np.array([-fd[1], fd[0]]) * 0.05 * s * g)
        hand_col = _scale_rgb(skin, 0.97)
        long_sleeve = top.sleeve > 1.5
        items = [(*tube(S, E, r_s, r_e), skin, None), (*tube(E, W, r_e, r_w), skin, None)]
        if not long_sleeve:
            items.append((*hand, hand_col, None))
        scene.group(z, items, UPPER_SKIN)
        if top.sleeve > 0.05:
            lo = top.loose * s + 0.015 * s
            if top.sleeve <= 1.0:
                e = _limb_point(J, root, mid, end, top.sleeve)
                re = r_s + (r_e - r_s) * top.sleeve
                items = [(*tube(S, e, r_s * 1.15 + lo, re * 1.25 + lo, cap_b=False), top.fabric,
                          _limb_frame(S, E, s, 0.0))]
            else:
                e = _limb_point(J, root, mid, end, top.sleeve)
                re = r_e + (r_w - r_e) * (top.sleeve - 1.0)
                items = [(*tube(S, E, r_s * 1.15 + lo, r_e * 1.2 + lo), top.fabric, _limb_frame(S, E, s, 0.0)),
                         (*tube(E, e, r_e * 1.2 + lo, re * 1.25 + lo, cap_b=False), top.fabric,
                          _limb_frame(E, W, s, _L_UPPER_ARM))]
            scene.group(z + 3e-4, items, TOP)
        if long_sleeve:  # the hand stays in front of a long cuff
            scene.group(z + 5e-4, [(*hand, hand_col, None)], UPPER_SKIN)

    _build_head(scene, ident, b)


def _chest_print(scene: _Scene, z: float, torso: _Torso, top: Top, b: Body) -> None:
    s = torso.s
    c = torso.centre(np.array([0.32]))[0]
    across = -torso.side_dir(np.array([0.32]))[0] * (top.print_size * s * b.cos_t)
    along = _unit(torso.mh - torso.ms) * (top.print_size * s)
    shape = top.print_shape
    col = top.print_color
    if shape == 0:  # star
        ang = np.linspace(-math.pi / 2, 1.5 * math.pi, 11)[:-1]
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = c + (np.cos(ang) * rad)[:, None] * across + (np.sin(ang) * rad)[:, None] * along
        scene.poly(z, pts, col, TOP, rim=False)
    elif shape == 1:  # disc with a ring
        scene.poly(z, _ellipse(c, across, along), col, TOP, rim=False)
        scene.poly(z + 1e-5, _ellipse(c, across * 0.55, along * 0.55), top.fabric.mean, TOP, rim=False)
    elif shape == 2:  # "text": three bars of different lengths
        for i, ln in enumerate((1.0, 0.7, 0.85)):
            cc = c + along * (i * 0.45 - 0.45)
            pts = np.stack([cc - across * ln, cc + across * ln, cc + across * ln + along * 0.22,
                            cc - across * ln + along * 0.22])
            scene.poly(z, pts, col, TOP, rim=False)
    elif shape == 3:  # band across the chest
        pts = torso.outline(0.22, 0.22 + top.print_size, top.loose - 0.005)
        scene.poly(z, pts, col, TOP, rim=False)
    elif shape == 4:  # triangle / logo
        pts = np.stack([c - along, c + across + along * 0.7, c - across + along * 0.7])
        scene.poly(z, pts, col, TOP, rim=False)
    elif shape in (5, 6):  # text lines (6: in a badge), foreshortened with the torso
        alpha = _text_sprite(top.print_text, top.print_size > 0.13)
        h, w = alpha.shape
        ua, uc = along / max(np.hypot(*along), 1e-6), across / max(np.hypot(*across), 1e-6)
        half_h = top.print_size * s * (0.45 if shape == 5 else 0.3) * (1 + top.print_text.count("\n"))
        half_w = half_h * w / h
        limit = (0.3 if shape == 5 else 0.2) * s
        if half_w > limit:  # keep the text on the chest
            half_h, half_w = half_h * limit / half_w, limit
        if shape == 6:
            r = max(half_w, half_h) * 1.35
            scene.poly(z, _ellipse(c, uc * r * b.cos_t, ua * r), col, TOP, rim=False)
            col = top.fabric.mean
        scene.add(z + 1e-5, lambda p: p.decal(alpha, col, TOP, c, uc * half_w * b.cos_t, ua * half_h))
    else:  # three slanted bars (sports logo)
        for i in range(3):
            o = c + across * (i - 1) * 0.62
            h = 0.55 + 0.25 * i
            pts = np.stack([o - across * 0.22 + along * 0.6, o + across * 0.22 + along * 0.6,
                            o + across * 0.5 + along * (0.6 - 1.2 * h), o + across * 0.06 + along * (0.6 - 1.2 * h)])
            scene.poly(z, pts, col, TOP, rim=False)


@lru_cache(maxsize=512)
def _text_sprite(text: str, bold: bool) -> np.ndarray:
    """uint8 alpha [h, w] of (possibly two-line) text, lines centred (see :func:`textures.text_stamp`)."""
    lines = [tp.text_stamp(t, 14, bold) for t in text.split("\n")]
    w = max(a.shape[1] for a in lines)
    rows = []
    for a in lines:
        pad = w - a.shape[1]
        rows.append(np.pad(a, ((0, 0), (pad // 2, pad - pad // 2))))
    return np.clip(np.concatenate(rows, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=16)
def _bezier_weights(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = _ramp(n)
    return (1 - t) ** 2, 2 * (1 - t) * t, t ** 2


def _bezier(p0: np.ndarray, ctrl: np.ndarray, p1: np.ndarray, n: int = 6) -> np.ndarray:
    """Quadratic Bezier curve from p0 to p1 pulled towards ctrl, [n, 2]."""
    w0, w1, w2 = _bezier_weights(n)
    return w0 * p0 + w1 * ctrl + w2 * p1


def _build_head(scene: _Scene, ident: Identity, b: Body) -> None:
    s, J = b.s, b.J
    c, up, rt = b.head_c, b.head_up, b.head_r
    rx, ry = HEAD_RX * s * ident.head, HEAD_RY * s * ident.head
    face_col = ident.skin
    hair = ident.hair
    hf = ident.hair_fabric  # strands / curls, mapped in the head frame (rows run down the head)
    hfd = hf.scaled(0.88)
    style = ident.hair_style
    # Turned heads show more of the back of the skull (hair) on the side away from the face.
    away = -b.h * (1.0 if b.sin_t > 0 else -1.0) if abs(b.sin_t) > 0.2 else np.zeros(2)
    turn = abs(b.sin_t)
    cc = c + up * 0.05 * ry + away * (0.15 * rx * turn)  # centre of the hair mass
    hframe: _Frame = (cc + up * ry * 1.1, -up, rt, s, 0.0)

    def crown(z: float, lo: float, scale: float, bulge: float, colour: RGB | Fabric, tilt: float = 0.0,
              label: int = FACE_HAIR) -> None:
        """Hair over the top of the head down to head-frame height ``lo`` (-1 chin .. 1 top),
        closed by a curved hairline (``bulge`` > 0 arches up, < 0 dips down)."""
        ax, ay = rt * rx * scale, up * ry * (scale + 0.02)
        t0 = math.asin(max(-0.97, min(0.97, lo + tilt)))
        t1 = math.pi - math.asin(max(-0.97, min(0.97, lo - tilt)))
        arc = _arc(cc, ax, ay, t0, t1, 14)
        ctrl = (arc[0] + arc[-1]) / 2 + up * ry * bulge
        pts = np.concatenate([arc, _bezier(arc[-1], ctrl, arc[0])[1:-1]])
        scene.poly(z, pts, colour, label, hframe if isinstance(colour, Fabric) else None)

    def falling(z: float, length: float, width: float) -> None:
        """Hair falling from the head: a rounded top plus straight sides down to ``length``."""
        top_pts = _arc(cc, rt * rx * width, up * ry * 1.08, 0.0, math.pi, 10)
        bottom = c - up * ry * length
        ends = _bezier(bottom - rt * rx * width * 0.85, bottom - up * ry * 0.3, bottom + rt * rx * width * 0.85)
        pts = np.concatenate([top_pts, ends])
        scene.poly(z, pts, hfd, FACE_HAIR, hframe)

    def curls(z: float, paint: Fabric) -> None:
        """Curly hair: a bumpy round mass around the skull."""
        t = np.linspace(0.0, 2.0 * math.pi, 36, endpoint=False)[:, None]
        r = 1.0 + 0.07 * np.cos(t * 11.0)
        pts = cc + up * ry * 0.12 + np.cos(t) * r * rt * rx * 1.42 + np.sin(t) * r * up * ry * 1.22
        scene.poly(z, pts, paint, FACE_HAIR, hframe)

    if b.face:
        if style in ("long", "bob"):
            falling(-0.6, ident.hair_length, 1.22 if style == "long" else 1.2)
        if style == "ponytail" and turn > 0.3:
            tail = c + away * rx * 1.05
            scene.poly(-0.6, _tube(tail, tail - up * ry * 1.6, 0.2 * rx, 0.12 * rx), hf, FACE_HAIR, hframe)
        if style == "curly":
            curls(0.0499, hfd)
        elif style != "buzz":  # hair around the face, down to the ears
            crown(0.0499, -0.28 if style in ("short", "ponytail", "bun") else -0.55, 1.1, 0.0, hfd)
        scene.poly(0.05, _ellipse(c, rt * rx, up * ry), face_col, FACE_HAIR)
        for ear in (P.R_EAR, P.L_EAR):
            if b.known[ear]:
                # An ear on the head's outline sticks out from behind it (frontal views); one
                # well inside the outline is the near ear of a profile, drawn on the face.
                d = J[ear] - c
                rho = math.hypot(float(np.dot(d, rt)) / rx, float(np.dot(d, up)) / ry)
                scene.poly(0.0499 if rho > 0.75 else 0.0505,
                           _ellipse(J[ear] + d * 0.08, rt * 0.04 * s, up * 0.06 * s),
                           _scale_rgb(face_col, 0.92), FACE_HAIR)
        _face_details(scene, ident, b)
        if style == "bun":
            bun = c + up * ry * 1.0 + away * rx * 0.3
            scene.poly(0.054, _ellipse(bun, rt * rx * 0.42, up * rx * 0.38), hf, FACE_HAIR, hframe)
        if style == "buzz":
            crown(0.055, ident.fringe, 1.03, 0.1, _mix(hair, face_col, 0.3), ident.fringe_tilt * 0.3)
        else:
            crown(0.055, ident.fringe + (0.12 if style == "curly" else 0.0), 1.06 if style != "curly" else 1.16,
                  0.12 - 0.3 * ident.fringe_tilt ** 2 * 4, hf, ident.fringe_tilt)
    else:
        # Back of the head: skin (nape, ears), then hair over most of it.
        scene.poly(0.05, _ellipse(c, rt * rx, up * ry), face_col, FACE_HAIR)
        for ear in (P.R_EAR, P.L_EAR):
            if b.known[ear]:
                scene.poly(0.0505, _ellipse(J[ear], rt * 0.038 * s, up * 0.058 * s),
                           _scale_rgb(face_col, 0.92), FACE_HAIR)
        if style in ("long", "bob"):
            falling(0.057, ident.hair_length, 1.12 if style == "long" else 1.1)
        elif style == "curly":
            curls(0.057, hf)
        else:
            crown(0.055, -0.5 if style != "buzz" else -0.35, 1.05, -0.12, hf if style != "buzz"
                  else _mix(hair, face_col, 0.3))
        if style == "ponytail":
            scene.poly(0.056, _tube(c, c - up * ry * 1.9, 0.28 * rx, 0.16 * rx), hf, FACE_HAIR, hframe)
        if style == "bun":
            scene.poly(0.056, _ellipse(c + up * ry * 0.75, rt * rx * 0.45, up * rx * 0.42), hf, FACE_HAIR, hframe)
    if ident.hat is not None:
        hc = ident.hat_color
        if ident.hat == "beanie":
            crown(0.058, 0.3, 1.1, 0.0, hc, label=HAT)
        else:
            hat_c = c + up * 0.2 * ry
            scene.poly(0.058, _arc(hat_c, rt * rx * 1.06, up * ry * 0.92, 0.0, math.pi, 12), hc, HAT)
            if b.face:  # brim towards the face
                fwd = b.h * (1.0 if b.sin_t >= 0 else -1.0) * turn
                a = hat_c - rt * rx * (1.0 - 0.6 * turn)
                e = hat_c + rt * rx * (1.0 - 0.6 * turn) + fwd * rx * 0.9
                scene.poly(0.059, _tube(a, e, 0.045 * s, 0.045 * s), _scale_rgb(hc, 0.85), HAT)


def _face_details(scene: _Scene, ident: Identity, b: Body) -> None:
    """Eyes, brows, nose and mouth at the annotated facial joints (front views only)."""
    s, J, up, rt = b.s, b.J, b.head_up, b.head_r
    k = b.known
    z = 0.052
    eye_r = 0.032 * s * ident.eye_size
    brow = _scale_rgb(ident.hair, 0.75)
    if ident.blush > 0 and k[P.NOSE]:
        cheek = _mix(ident.skin, (214, 96, 108), ident.blush)
        for eye in (P.R_EYE, P.L_EYE):
            if k[eye]:
                scene.poly(z - 1e-4, _ellipse(J[eye] - up * 0.07 * s, rt * 0.045 * s, up * 0.028 * s), cheek,
                           FACE_HAIR, rim=False)
    for eye in (P.R_EYE, P.L_EYE):
        if not k[eye]:
            continue
        e = J[eye]
        scene.poly(z, _ellipse(e, rt * eye_r * 1.1, up * eye_r * 0.6), (240, 238, 232), FACE_HAIR, rim=False)
        scene.poly(z + 1e-5, _ellipse(e, rt * eye_r * 0.55, up * eye_r * 0.6), ident.eyes, FACE_HAIR, rim=False)
        brow_c = e + up * 0.065 * s
        scene.add(z + 2e-5, lambda p, a=brow_c - rt * 0.042 * s, c2=brow_c + rt * 0.042 * s:
                  p.line(a, c2, brow, 0.018 * s * ident.brow, FACE_HAIR))
        if ident.glasses is not None:
            scene.add(z + 3e-5, lambda p, e=e: p.outline(_ellipse(e, rt * 0.07 * s, up * 0.05 * s), ident.glasses,
                                                        0.012 * s, FACE_HAIR))
    if ident.glasses is not None and k[P.R_EYE] and k[P.L_EYE]:
        a, c2 = J[P.R_EYE], J[P.L_EYE]
        d = _unit(c2 - a)
        scene.add(z + 3e-5, lambda p: p.line(a + d * 0.07 * s, c2 - d * 0.07 * s, ident.glasses, 0.012 * s,
                                             FACE_HAIR))
    if k[P.NOSE]:
        n = J[P.NOSE]
        scene.add(z, lambda p, a=n + up * 0.05 * s, c2=n: p.line(a, c2, _scale_rgb(ident.skin, 0.82), 0.014 * s,
                                                               FACE_HAIR))
        m = n - up * 0.075 * s + b.h * (-b.sin_t * 0.02 * s)
        width = 0.05 * s * (0.5 + 0.5 * abs(b.cos_t)) * ident.mouth
        if ident.beard in ("stubble", "beard"):
            # Jaw line of the head ellipse, closed by a curve just above the mouth.
            rx, ry = HEAD_RX * s * ident.head, HEAD_RY * s * ident.head
            arc = _arc(b.head_c, rt * rx * 1.01, up * ry * 1.01, math.pi + 0.2, 2.0 * math.pi - 0.2, 12)
            pts = np.concatenate([arc, _bezier(arc[-1], m + up * 0.06 * s, arc[0])[1:-1]])
            col = _mix(ident.skin, ident.hair, 0.35) if ident.beard == "stubble" else _scale_rgb(ident.hair, 0.9)
            scene.poly(z - 5e-5, pts, col, FACE_HAIR, rim=False)
        if ident.beard in ("moustache", "beard"):
            scene.poly(z + 2e-5, _ellipse(m + up * 0.028 * s, rt * width * 1.15, up * 0.014 * s),
                       _scale_rgb(ident.hair, 0.8), FACE_HAIR, rim=False)
        scene.poly(z, _ellipse(m, rt * width, up * 0.017 * s), ident.lips, FACE_HAIR, rim=False)



# --------------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------------


def _plain_background(rng: np.random.Generator, height: int, width: int,
                      base: RGB | None = None) -> np.ndarray:
    """Studio backdrop (DeepFashion-like): light, nearly uniform, soft vertical falloff.
    Returns the supersampled canvas uint8 [SS*H, SS*W, 4] (RGB + parsing label 0)."""
    if base is None:
        v = rng.uniform(205, 252)
        tint = rng.normal(0, 5, 3)
        base = _clip_rgb((v + tint[0], v + tint[1], v + tint[2]))
    small = np.zeros((2, 2, 4), np.uint8)
    small[0, :, :3] = base
    small[1, :, :3] = _scale_rgb(base, rng.uniform(0.9, 1.0))
    return cv2.resize(small, (width * SS, height * SS), interpolation=cv2.INTER_LINEAR)


_GRAIN_SIGMAS = (2.5, 4.0, 6.0)
_GRAIN: list[tuple[np.ndarray, np.ndarray]] = []


def _grain_bank() -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed fields of Gaussian sensor grain, one per strength, split into positive and
    negative uint8 parts ([256, 256, 4] each, 4th channel 0): images add / subtract random
    crops with saturating cv2 arithmetic, far cheaper than fresh float noise per image."""
    if not _GRAIN:
        g = np.random.default_rng(0x5EED).normal(0.0, 1.0, (256, 256))
        for sigma in _GRAIN_SIGMAS:
            n = np.rint(g * sigma)
            pos = np.zeros((256, 256, 4), np.uint8)
            neg = np.zeros((256, 256, 4), np.uint8)
            pos[:, :, :3] = np.clip(n, 0, 255)[:, :, None]
            neg[:, :, :3] = np.clip(-n, 0, 255)[:, :, None]
            _GRAIN.append((pos, neg))
    return _GRAIN


def _muted(rng: np.random.Generator, lo: float = 0.45, hi: float = 0.85) -> RGB:
    """A garment-like colour pulled towards its grey: walls, pavements, objects."""
    r, g, b = _garment_colour(rng)
    m = (r + g + b) / 3.0
    k = rng.uniform(lo, hi)
    return _clip_rgb((r + (m - r) * k, g + (m - g) * k, b + (m - b) * k))


def _cluttered_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Street / campus / indoor scene (Market-like): a wall and a ground with lighting falloff,
    each flat or textured (brick, wood, foliage, tiles, plaster, wallpaper: :data:`WALLS`,
    :data:`GROUNDS`), windows, doors, signs, poles, passers-by and bushes, then blur and grain.
    Returns the supersampled canvas uint8 [SS*H, SS*W, 4] (RGB + parsing label 0)."""
    img = _cluttered_scene(rng, height, width)
    # Pixel replication: the final box filter then returns the scene exactly where no person is.
    return cv2.resize(img, (width * SS, height * SS), interpolation=cv2.INTER_NEAREST_EXACT)


# Scene surfaces: the wall above the horizon and the ground below it. "plain" is the lit flat
# colour of the original street scene; the others are textures of training.data.textures.
WALLS = ("plain", "brick", "wood", "foliage", "tiles", "plaster", "wallpaper")
_WALL_P = (0.3, 0.15, 0.1, 0.12, 0.08, 0.13, 0.12)
GROUNDS = ("plain", "tiles", "wood", "foliage", "plaster")
_GROUND_P = (0.4, 0.2, 0.15, 0.1, 0.15)


def _surface(rng: np.random.Generator, region: np.ndarray, kind: str, frame_h: int, base: RGB) -> None:
    """Texture ``region`` (uint8 [h, w, 4] view of the scene, already holding its lit flat
    colour ``base``) with surface ``kind``, keeping its lighting gradient. Sizes scale with the
    frame height so a scene looks the same at every resolution."""
    h, w = region.shape[:2]
    if kind == "plain" or h < 2:
        return
    if kind == "brick":
        tex = tp.brick(rng, h, w, frame_h * rng.uniform(0.025, 0.05))
    elif kind == "wood":
        tex = tp.wood(rng, h, w, frame_h * rng.uniform(0.05, 0.1))
    elif kind == "foliage":
        tex = tp.foliage(rng, h, w, frame_h * rng.uniform(0.02, 0.04))
    elif kind == "tiles":
        tex = tp.tiles(rng, h, w, frame_h * rng.uniform(0.06, 0.14))
    elif kind == "plaster":
        tex = tp.plaster(rng, h, w, 1.0)
    else:  # wallpaper: a garment pattern in muted colours
        pattern = ("floral", "dots", "motif", "vstripes", "monogram", "checks")[int(rng.integers(6))]
        fab = make_fabric(rng, pattern, _muted(rng, 0.2, 0.6))
        tex = tp.wallpaper(rng, h, w, frame_h * rng.uniform(0.08, 0.16), fab.tile)
    # Keep the flat colour's lighting falloff: scale by its luminance relative to ``base``.
    lum = region[:, :, :3].astype(np.float32).mean(-1, keepdims=True) / max(sum(base) / 3.0, 1.0)
    region[:, :, :3] = np.clip(tex * lum + 0.5, 0, 255).astype(np.uint8)


def _cluttered_scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """The scene of :func:`_cluttered_background` at output size: uint8 [H, W, 4], label 0."""
    H, W = height, width
    wall = _muted(rng, 0.5, 0.9)
    g0, gj = rng.uniform(70, 175), rng.normal(0, 10, 3).tolist()
    ground = _clip_rgb((g0 + gj[0], g0 + gj[1], g0 + gj[2]))
    hz = int(H * rng.uniform(0.45, 0.85))
    # Wall above the horizon, pavement below, each with a soft lighting gradient; RGB + label 0.
    small = np.zeros((4, 2, 4), np.uint8)
    small[0, 0, :3], small[0, 1, :3] = wall, _scale_rgb(wall, rng.uniform(0.75, 1.1))
    small[1, :, :3] = _scale_rgb(wall, rng.uniform(0.7, 1.0))
    small[2, :, :3] = ground
    small[3, 0, :3], small[3, 1, :3] = ground, _scale_rgb(ground, rng.uniform(0.8, 1.1))
    img = np.empty((H, W, 4), np.uint8)
    img[:hz] = cv2.resize(small[:2], (W, hz), interpolation=cv2.INTER_LINEAR)
    img[hz:] = cv2.resize(small[2:], (W, H - hz), interpolation=cv2.INTER_LINEAR)
    wall_kind = WALLS[_pick(rng, _WALL_P)]
    ground_kind = GROUNDS[_pick(rng, _GROUND_P)]
    _surface(rng, img[:hz], wall_kind, H, wall)
    _surface(rng, img[hz:], ground_kind, H, ground)
    n_objects = int(rng.integers(3, 9)) if wall_kind == "plain" else int(rng.integers(0, 5))
    for _ in range(n_objects):  # windows, doors, shop fronts, signs
        x0, y0 = int(rng.integers(-W // 4, W)), int(rng.integers(-H // 8, max(hz, 1)))
        w, h = int(rng.integers(W // 8, W // 2 + 2)), int(rng.integers(H // 10, H // 2))
        col = _muted(rng, 0.2, 0.7) if rng.random() < 0.85 else _garment_colour(rng)
        cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), col, -1)
        if rng.random() < 0.5:
            cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), _scale_rgb(col, 0.6), 1)
    for _ in range(int(rng.integers(0, 4))):  # poles, railings
        x = int(rng.integers(0, W))
        cv2.line(img, (x, 0), (x + int(rng.integers(-4, 5)), H), _scale_rgb(_muted(rng), 0.6),
                 int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(0, 3))):  # passers-by, bikes, bags: dark upright blobs
        cx, cy = int(rng.integers(0, W)), int(rng.integers(hz - H // 4, H))
        ax = (int(rng.integers(W // 16 + 1, W // 6 + 2)), int(rng.integers(H // 8 + 1, H // 3 + 2)))
        cv2.ellipse(img, (cx, cy), ax, float(rng.uniform(-15, 15)), 0, 360, _scale_rgb(_muted(rng, 0.1, 0.6), 0.7),
                    -1, cv2.LINE_AA)
    if rng.random() < 0.4:  # a bush / tree
        cx, cy = int(rng.integers(0, W)), int(rng.integers(0, H))
        green = _clip_rgb((rng.uniform(40, 90), rng.uniform(70, 130), rng.uniform(30, 70)))
        cv2.ellipse(img, (cx, cy), (int(rng.integers(W // 6, W // 2)), int(rng.integers(H // 10, H // 4))),
                    0.0, 0, 360, green, -1, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 4))):  # paving joints
        y = int(rng.integers(hz, H))
        cv2.line(img, (0, y), (W, y + int(rng.integers(-8, 9))), _scale_rgb(ground, 0.85), 1)
    img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.5, 1.1))
    pos, neg = _grain_bank()[int(rng.integers(len(_GRAIN_SIGMAS)))]
    if H <= pos.shape[0] and W <= pos.shape[1]:
        oy, ox = int(rng.integers(0, pos.shape[0] - H + 1)), int(rng.integers(0, pos.shape[1] - W + 1))
        cv2.add(img, pos[oy:oy + H, ox:ox + W], dst=img)
        cv2.subtract(img, neg[oy:oy + H, ox:ox + W], dst=img)
    return img


def _to_canvas(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 RGB [H, W, 3] (any size) -> supersampled canvas uint8 [SS*H, SS*W, 4], label 0."""
    rgba = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    rgba[:, :, 3] = 0
    return cv2.resize(rgba, (width * SS, height * SS), interpolation=cv2.INTER_LINEAR)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Rendering:
    """One rendered person.

    image: uint8 ``[H, W, 3]`` **RGB**.
    keypoints: float32 ``[18, 2]`` **(x, y)** pixels, COCO-18; -1 for joints missing in the
        annotation or outside the frame.
    silhouette: uint8 ``[H, W]`` {0, 1}: pixels covered by the person (body, hair, clothes).
    parsing: uint8 ``[H, W]``, classes of :data:`PARSING_CLASSES` (0 background).
    """

    image: np.ndarray
    keypoints: np.ndarray
    silhouette: np.ndarray
    parsing: np.ndarray


def render(
    identity: Identity,
    keypoints_xy: np.ndarray,
    height: int,
    width: int,
    rng_or_seed: np.random.Generator | int = 0,
    *,
    present: np.ndarray | None = None,
    background: str | np.ndarray = "plain",
    light: Light | bool = True,
) -> Rendering:
    """Render ``identity`` in a pose.

    Args:
        identity: the appearance (:func:`sample_identity`).
        keypoints_xy: float ``[18, 2]`` **(x, y)** pixels of the H x W output, COCO-18, or
            ``[18, 3]`` (x, y, confidence). Missing joints are negative or NaN (or have
            confidence <= 0), unless ``present`` is given.
        height, width: output size.
        rng_or_seed: randomness for the background (numpy Generator or int seed).
        present: optional bool ``[18]``; when given it decides which joints exist, and the
            coordinates of present joints may lie anywhere (also at negative coordinates,
            outside the frame): the body is drawn there and the joint reported missing.
        background: "plain" (light studio backdrop), "cluttered" (street-like scene), or an
            uint8 ``[h, w, 3]`` **RGB** image of any size (resized to the 2x supersampled
            canvas, so ``[2*H, 2*W, 3]`` keeps full detail) to draw on.
        light: the person's shading: a :class:`Light`, True (drawn from ``rng_or_seed`` after the
            background, :func:`sample_light`) or False (flat colours, no shading).

    Returns:
        :class:`Rendering`; its keypoints are the input joints that are present and inside
        the frame, others -1. Joints missing in the input are completed for drawing only.
    Raises:
        ValueError: the pose lacks the neck (or both shoulders) plus another torso joint.
    """
    kp = np.asarray(keypoints_xy, np.float64)
    if kp.ndim != 2 or kp.shape[0] != P.NUM_JOINTS or kp.shape[1] < 2:
        raise ValueError(f"keypoints_xy must be [18, 2] (x, y), got {kp.shape}")
    pres = P.present_mask(kp) if present is None else (np.asarray(present, bool) & np.isfinite(kp[:, :2]).all(-1))
    if present is None and kp.shape[1] >= 3:
        pres &= kp[:, 2] > 0  # (x, y, confidence): zero confidence = not detected
    kp = kp[:, :2]
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    if isinstance(background, np.ndarray):
        if background.ndim != 3 or background.shape[2] != 3 or background.dtype != np.uint8:
            raise ValueError(f"background image must be uint8 [h, w, 3] RGB, got {background.dtype} "
                             f"{background.shape}")
        canvas = _to_canvas(background, height, width)
    elif background == "plain":
        canvas = _plain_background(rng, height, width)
    elif background == "cluttered":
        canvas = _cluttered_background(rng, height, width)
    else:
        raise ValueError(f"background must be 'plain', 'cluttered' or an array, got {background!r}")
    lt = light if isinstance(light, Light) else sample_light(rng) if light else None
    return _render_on(canvas, identity, kp, pres, height, width, lt)


@dataclass(frozen=True)
class Light:
    """One light of a scene: unit direction towards the light in camera space (x image-right,
    y image-down, z towards the camera) and the ambient share. A pair has one light, so the
    person's shading follows the body's geometry, not its texture, in both images."""

    x: float
    y: float
    z: float
    ambient: float


DEFAULT_LIGHT = Light(-0.35, -0.45, math.sqrt(1.0 - 0.35 ** 2 - 0.45 ** 2), 0.6)  # soft, from the upper left


def sample_light(rng: np.random.Generator) -> Light:
    """A light from the front hemisphere, mostly from above, with 40 - 75 % ambient."""
    az = rng.uniform(0.0, 2.0 * math.pi)
    lz = rng.uniform(0.45, 0.9)
    r = math.sqrt(1.0 - lz * lz)
    x, y = r * math.cos(az), r * math.sin(az)
    if y > 0 and rng.random() < 0.75:  # light from below is rare
        y = -y
    return Light(x, y, lz, rng.uniform(0.4, 0.75))


_K3 = np.ones((3, 3), np.uint8)


def _shade(image: np.ndarray, parsing: np.ndarray, light: Light, unit_px: float) -> None:
    """Lambert shading of the person in ``image`` (uint8 [H, W, 3], modified in place).

    Every parsing region (skin, face and hair, garments) is treated as a rounded solid: the
    surface normal tilts outwards near the region's boundary (within ~0.1 body units of it) and
    faces the camera inside, so limbs shade across their width and the torso at its sides.
    Background pixels (label 0) are never touched, so the scene stays identical between the
    two images of a pair. The factor is normalised to 1 for a surface facing the camera, so
    mean colours stay close to the unshaded ones.
    """
    bx, by, bw, bh = cv2.boundingRect(parsing)  # the person's box (non-zero labels), padded
    if bw == 0 or bh == 0:
        return
    H, W = parsing.shape
    y0, y1 = max(by - 3, 0), min(by + bh + 3, H)
    x0, x1 = max(bx - 3, 0), min(bx + bw + 3, W)
    p = parsing[y0:y1, x0:x1]
    # Large frames: normals from the parsing at half resolution (a quarter of the work), the
    # factor upsampled smoothly; shading is low-frequency, so nothing visible is lost.
    f = 2 if H >= 192 else 1
    ps = p[::f, ::f] if f > 1 else p
    unit_px /= f
    # Region boundaries: pixels whose 3x3 neighbourhood holds another label (both sides).
    edge = cv2.morphologyEx(ps, cv2.MORPH_GRADIENT, _K3)
    # 5x5 chamfer distances, lightly smoothed: the 3x3 chamfer's staircase on slanted edges
    # would show as banding across the limbs.
    dist = cv2.distanceTransform((edge == 0).view(np.uint8), cv2.DIST_L2, 5)
    dist = cv2.GaussianBlur(dist, (5, 5), 1.0)
    depth = max(0.09 * unit_px, 1.5)
    gx = cv2.Sobel(dist, cv2.CV_32F, 1, 0, ksize=3, scale=-0.125)
    gy = cv2.Sobel(dist, cv2.CV_32F, 0, 1, ksize=3, scale=-0.125)
    # Outward normal: against the distance gradient (|grad| ~ 1 off ridges), scaled by the
    # tilt, 1 at the boundary and 0 deeper inside than ``depth``.
    tilt = np.maximum(1.0 - dist * (1.0 / depth), 0.0)
    gx *= tilt
    gy *= tilt
    nz = np.sqrt(np.maximum(1.0 - gx * gx - gy * gy, 0.0))
    lam = np.maximum(gx * light.x + gy * light.y + nz * light.z, 0.0)
    a = light.ambient
    norm = 1.0 / (a + (1.0 - a) * light.z)
    k = np.clip((a * norm) + ((1.0 - a) * norm) * lam, 0.55, 1.3)
    if f > 1:
        k = cv2.resize(k, (p.shape[1], p.shape[0]), interpolation=cv2.INTER_LINEAR)
    k[p == 0] = 1.0
    region = image[y0:y1, x0:x1]
    cv2.multiply(region, cv2.merge([k, k, k]), dst=region, dtype=cv2.CV_8U)


def _render_on(canvas: np.ndarray, identity: Identity, kp: np.ndarray, present: np.ndarray,
               height: int, width: int, light: Light | None = DEFAULT_LIGHT) -> Rendering:
    """Draw the person on ``canvas`` (uint8 [SS*H, SS*W, 4], modified in place) and reduce it;
    ``light`` shades the person (None: flat, as before shading existed)."""
    body = complete_pose(kp, present)
    painter = _Painter(canvas, height, width)
    scene = _Scene()
    _build_person(scene, identity, body)
    scene.draw(painter)
    small = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    image = cv2.cvtColor(small, cv2.COLOR_RGBA2RGB)
    # Labels are not averaged: take one supersample per output pixel.
    parsing = np.ascontiguousarray(canvas[SS - 1::SS, SS - 1::SS, 3])
    if light is not None:
        _shade(image, parsing, light, body.s)
    return Rendering(
        image=image,
        keypoints=P.to_reported(kp.astype(np.float32), present, (height, width)),
        silhouette=(parsing > 0).astype(np.uint8),
        parsing=parsing,
    )


# --------------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------------

_SPLIT_CODE = {"train": 0, "eval": 1}


def identity_seed(seed: int, index: int, split: str) -> int:
    """Seed of the identity of pair ``index``: even for 'train', odd for 'eval' (disjoint spaces)."""
    k = int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x1D, int(index)]).generate_state(1, np.uint64)[0])
    return 2 * (k >> 2) + _SPLIT_CODE[split]


class SyntheticPairs:
    """Deterministic, indexable source of pose-transfer training pairs.

    ``pairs[i]`` / ``pairs.pair(i)`` returns a dict:
        source_image, target_image: uint8 ``[H, W, 3]`` **RGB**, one identity in two poses;
        source_pose, target_pose: float32 ``[18, 2]`` **(x, y)** pixels, missing / outside = -1;
        target_mask: uint8 ``[H, W]`` {0, 1}, :func:`masks.body_mask` of ``target_pose``;
        source_silhouette, target_silhouette: uint8 ``[H, W]`` {0, 1} true body coverage;
        source_parsing, target_parsing: uint8 ``[H, W]`` 8-class parsing maps;
        identity_seed: int; source_name, target_name: names of the real annotations used.

    Determinism: the result depends only on (seed, split, i) and the pose bank contents.
    Splits: 'eval' uses identity seeds disjoint from 'train' (odd vs even, see
    :func:`identity_seed`) and poses of held-out subjects (:meth:`PoseBank.split`).

    Args:
        height, width: output size (e.g. 128 x 88, 256 x 176).
        split: 'train' or 'eval'.
        seed: base seed.
        background: 'plain' (studio), 'cluttered' (street / indoor, flat or textured surfaces),
            or 'mixed' (per pair, 50 / 50). Either way one scene and one light per pair (static
            camera): source and target differ only where a person is.
        pose_bank: a :class:`poses.PoseBank` (default :func:`poses.load_pose_bank` of ``poses_dir``).
        length: nominal ``len()`` (the source is unbounded; any non-negative index works).
        same_subject_prob: chance that source and target poses come from one real person
            (two photos of the same subject), else two unrelated poses.
        scale_range, shift: random placement: scale of the pose relative to its source frame,
            and shift as a fraction of (W, H).
        flip_prob: chance of mirroring each pose (left / right joint channels swapped).
        heldout_fraction: share of real subjects whose poses are kept for 'eval'.
        datasets: only poses of these datasets ('fasion', 'market'); default all.
        clutter_bank: number of distinct cluttered scenes, generated on first use from
            (seed, split, k) and cached per instance (H*W*4 bytes each: 11 MB for 256 scenes
            at 128 x 88, 46 MB at 256 x 176), then mirrored at random; 0 draws a fresh scene
            for every image (about 0.3 ms more per image, same distribution).
    """

    def __init__(
        self,
        height: int = 128,
        width: int = 88,
        split: str = "train",
        seed: int = 0,
        background: str = "mixed",
        *,
        pose_bank: P.PoseBank | None = None,
        poses_dir: str | os.PathLike[str] | None = None,
        length: int = 100_000,
        same_subject_prob: float = 0.5,
        scale_range: tuple[float, float] = (0.8, 1.1),
        shift: float = 0.06,
        flip_prob: float = 0.5,
        heldout_fraction: float = 0.1,
        clutter_bank: int = 256,
        datasets: Sequence[str] | None = None,
    ):
        if split not in _SPLIT_CODE:
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        if background not in ("plain", "cluttered", "mixed"):
            raise ValueError(f"background must be 'plain', 'cluttered' or 'mixed', got {background!r}")
        self.height, self.width = int(height), int(width)
        self.split, self.seed, self.background = split, int(seed), background
        self.length = int(length)
        self.same_subject_prob = float(same_subject_prob)
        self.scale_range, self.shift, self.flip_prob = scale_range, float(shift), float(flip_prob)
        bank = pose_bank if pose_bank is not None else P.load_pose_bank(poses_dir)
        if datasets is not None:
            bank = bank.subset([i for i, d in enumerate(bank.datasets) if d in set(datasets)])
        self.poses = bank.split(split, heldout_fraction)
        if len(self.poses) == 0:
            raise ValueError(f"no poses in the {split!r} split")
        groups: dict[str, list[int]] = {}
        for i, subj in enumerate(self.poses.subjects):
            groups.setdefault(subj, []).append(i)
        self._multi = [np.asarray(v) for v in groups.values() if len(v) > 1]
        self.clutter_bank = int(clutter_bank)
        self._bank: dict[int, np.ndarray] = {}

    def _cluttered(self, rng: np.random.Generator) -> np.ndarray:
        """A cluttered canvas uint8 [SS*H, SS*W, 4] (see ``clutter_bank``)."""
        H, W = self.height, self.width
        if self.clutter_bank <= 0:
            return _cluttered_background(rng, H, W)
        k = int(rng.integers(self.clutter_bank))
        scene = self._bank.get(k)
        if scene is None:  # depends only on (seed, split, k): cache state never changes a pair
            scene_rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0xB6, _SPLIT_CODE[self.split], k])
            scene = self._bank[k] = _cluttered_scene(scene_rng, H, W)
        if rng.random() < 0.5:
            scene = cv2.flip(scene, 1)
        return cv2.resize(scene, (W * SS, H * SS), interpolation=cv2.INTER_NEAREST_EXACT)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.pair(i)

    def identity(self, i: int) -> Identity:
        """The identity of pair ``i``."""
        return sample_identity(identity_seed(self.seed, i, self.split))

    def _place(self, rng: np.random.Generator, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Pose j with random scale / shift / flip: ((x, y) pixels float32 [18, 2], present [18])."""
        kpn = self.poses.keypoints[j]
        if rng.random() < self.flip_prob:
            kpn = P.flip_normalised(kpn)
        present = np.isfinite(kpn).all(-1)
        H, W = self.height, self.width
        for _ in range(4):  # keep the neck in the frame: a pair needs a visible person
            scale = rng.uniform(*self.scale_range)
            dx, dy = rng.uniform(-self.shift, self.shift) * W, rng.uniform(-self.shift, self.shift) * H
            kp = P.denormalise(kpn, (H, W), scale, (dx, dy))
            n = kp[P.NECK]
            if 0 <= n[0] < W and 0 <= n[1] < H:
                break
        return kp, present

    def _pose_pair(self, rng: np.random.Generator) -> tuple[int, int]:
        if self._multi and rng.random() < self.same_subject_prob:
            g = self._multi[int(rng.integers(len(self._multi)))]
            a = int(rng.integers(len(g)))
            b = (a + 1 + int(rng.integers(len(g) - 1))) % len(g)  # any other photo of the subject
            return int(g[a]), int(g[b])
        n = len(self.poses)
        return int(rng.integers(n)), int(rng.integers(n))

    def pair(self, i: int) -> dict[str, Any]:
        """Pair ``i`` (see the class docstring for the keys, shapes, dtypes)."""
        if i < 0:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x5A, _SPLIT_CODE[self.split], int(i)])
        ident_seed = identity_seed(self.seed, i, self.split)
        ident = sample_identity(ident_seed)
        src_j, tgt_j = self._pose_pair(rng)
        bg = self.background
        if bg == "mixed":
            bg = "plain" if rng.random() < 0.5 else "cluttered"
        H, W = self.height, self.width
        out: dict[str, Any] = {}
        # Static camera: one scene (studio or street, same crop and mirroring) and one light for
        # both photos; only the person moves. The target's background is then the source's
        # wherever the person does not cover it, which is what a warp-guided model must keep.
        scene = _plain_background(rng, H, W) if bg == "plain" else self._cluttered(rng)
        light = sample_light(rng)
        for role, j in (("source", src_j), ("target", tgt_j)):
            kp, present = self._place(rng, j)
            canvas = scene.copy() if role == "source" else scene
            r = _render_on(canvas, ident, kp.astype(np.float64), present, H, W, light)
            out[f"{role}_image"] = r.image
            out[f"{role}_pose"] = r.keypoints
            out[f"{role}_silhouette"] = r.silhouette
            out[f"{role}_parsing"] = r.parsing
            out[f"{role}_name"] = self.poses.names[j]
        out["target_mask"] = body_mask(out["target_pose"], H, W)
        out["identity_seed"] = ident_seed
        return out


# --------------------------------------------------------------------------------------------
# CLI: benchmark and sample grid
# --------------------------------------------------------------------------------------------


def _draw_keypoints(img_rgb: np.ndarray, kp: np.ndarray) -> np.ndarray:
    out = img_rgb.copy()
    for a, b in P.LIMBS:
        if (kp[a] >= 0).all() and (kp[b] >= 0).all():
            cv2.line(out, (int(round(kp[a][0])), int(round(kp[a][1]))),
                     (int(round(kp[b][0])), int(round(kp[b][1]))), (0, 255, 0), 1, cv2.LINE_AA)
    for j, (x, y) in enumerate(kp):
        if x >= 0 and y >= 0:
            col = (255, 0, 0) if j in (2, 3, 4, 8, 9, 10, 14, 16) else (0, 0, 255)
            cv2.circle(out, (int(round(x)), int(round(y))), 1, col, -1)
    return out


def sample_grid(pairs: SyntheticPairs, n: int, start: int = 0, with_pose: bool = False) -> np.ndarray:
    """uint8 RGB grid: each cell is source | target (| target with keypoints) of one pair."""
    cells = []
    for i in range(start, start + n):
        p = pairs.pair(i)
        row = [p["source_image"], p["target_image"]]
        if with_pose:
            row.append(_draw_keypoints(p["target_image"], p["target_pose"]))
        sep = np.full((pairs.height, 2, 3), 255, np.uint8)
        cell = np.concatenate([x for r in row for x in (r, sep)][:-1], axis=1)
        cells.append(cell)
    cols = 4 if not with_pose else 3
    while len(cells) % cols:
        cells.append(np.zeros_like(cells[0]))
    rows = []
    for r in range(0, len(cells), cols):
        pad = np.full((cells[0].shape[0], 6, 3), 0, np.uint8)
        rows.append(np.concatenate([x for c in cells[r:r + cols] for x in (c, pad)][:-1], axis=1))
        rows.append(np.full((6, rows[-1].shape[1], 3), 0, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def benchmark(pairs: SyntheticPairs, n: int = 1000, start: int = 0, chunks: int = 5,
              warmup: int = 200) -> dict[str, float]:
    """Measure ``pairs.pair(i)`` throughput in this process (set threads / affinity first).

    Runs ``warmup`` pairs (imports, caches, the clutter bank fills up over training anyway),
    then ``n`` pairs in ``chunks`` equal chunks. Returns pairs/s: 'wall' over all n pairs,
    'best_chunk' (the least disturbed chunk on a shared machine) and 'cpu' (by process CPU time).
    """
    for i in range(start, start + warmup):
        pairs.pair(i)
    i0 = start + warmup
    per = max(n // chunks, 1)
    best = 0.0
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    for c in range(chunks):
        t = time.perf_counter()
        for i in range(i0 + c * per, i0 + (c + 1) * per):
            pairs.pair(i)
        best = max(best, per / (time.perf_counter() - t))
    wall = per * chunks / (time.perf_counter() - t_wall)
    cpu = per * chunks / max(time.process_time() - t_cpu, 1e-9)
    return {"wall": wall, "best_chunk": best, "cpu": cpu}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Synthetic pose-transfer pairs: benchmark / preview.")
    ap.add_argument("--bench", action="store_true", help="measure pairs/s on one core")
    ap.add_argument("--n", type=int, default=1000, help="pairs timed by --bench")
    ap.add_argument("--cells", type=int, default=24, help="pairs shown by --grid")
    ap.add_argument("--grid", type=str, default=None, help="write a PNG grid of samples here")
    ap.add_argument("--size", type=str, default="128x88", help="H x W, e.g. 256x176")
    ap.add_argument("--split", default="train", choices=["train", "eval"])
    ap.add_argument("--background", default="mixed", choices=["plain", "cluttered", "mixed"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--pose", action="store_true", help="grid: add the target with its keypoints")
    args = ap.parse_args(argv)
    # One core: OpenCV's own thread pool off, and the process pinned to a single CPU (numpy
    # elementwise work is single-threaded; run with OMP_NUM_THREADS=1 for any BLAS too).
    cv2.setNumThreads(1)
    cpu = None
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    h, w = (int(v) for v in args.size.lower().split("x"))
    pairs = SyntheticPairs(h, w, split=args.split, seed=args.seed, background=args.background)
    if args.grid:
        grid = sample_grid(pairs, args.cells, args.start, args.pose)
        cv2.imwrite(args.grid, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        print(f"wrote {args.grid} ({grid.shape[1]}x{grid.shape[0]})")
    if args.bench or not args.grid:
        r = benchmark(pairs, args.n, args.start)
        where = f"pinned to CPU {cpu}" if cpu is not None else "1 thread"
        print(f"{r['wall']:.1f} pairs/s at {h}x{w} ({args.background} backgrounds, {args.n} pairs, one core, "
              f"{where}); best chunk {r['best_chunk']:.1f} pairs/s; by CPU time {r['cpu']:.1f} pairs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
