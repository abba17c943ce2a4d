"""Backgrounds: the plain studio backdrop and cluttered scenes, as uint8 ``[2H, 2W, 3]`` RGB
canvases (supersampled).
"""

from __future__ import annotations

import cv2
import numpy as np

from . import textures as tp
from .colours import _clip_rgb, _garment_colour, _pick, _scale_rgb
from .constants import RGB, SS
from .fabrics import make_fabric


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
# colour of the original street scene; the others are textures of :mod:`.textures`.
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
