"""Identity: everything about the person except the pose (skin, hair, face, garments)."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

from . import textures as tp
from .colours import (_GARMENT_COLOURS, _HAIR_COLOURS, _HAIR_P, _SKIN_RAMP, _WORDS, _clip_rgb, _contrasting,
                      _garment_colour, _mix, _pick, _scale_rgb)
from .constants import RGB, _T
from .fabrics import _BOTTOM_PATTERN_P, BOTTOM_PATTERNS, Fabric, make_fabric, _TOP_PATTERN_P, TOP_PATTERNS


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
