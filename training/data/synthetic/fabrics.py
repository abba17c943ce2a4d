"""Fabrics: periodic RGB tiles in part coordinates (rows along a part, columns across it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from . import textures as tp
from .colours import _clip_rgb, _contrasting, _garment_colour, _mix, _scale_rgb
from .constants import _BIG, RGB, _T


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
