"""Rendering: one posed, lit person on a background (:func:`render`, :class:`Rendering`, :class:`Light`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .. import poses as P
from .backgrounds import _cluttered_background, _plain_background, _to_canvas
from .body import complete_pose
from .constants import SS
from .identity import Identity
from .painter import _Painter
from .person import _build_person, _Scene


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
