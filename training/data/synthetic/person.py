"""The person: draw commands with depth (body, garments, head, face, chest print)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np

from .. import poses as P
from . import textures as tp
from .body import Body, HEAD_RX, HEAD_RY, _L_THIGH, _L_UPPER_ARM, _unit
from .colours import _mix, _scale_rgb
from .constants import BOTTOM, FACE_HAIR, HAT, LOWER_SKIN, RGB, SHOES, TOP, UPPER_SKIN
from .fabrics import Fabric
from .geometry import _arc, _ellipse, _ramp, _tube, _Tubes
from .identity import Identity, Top
from .painter import _Frame, _Painter


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
