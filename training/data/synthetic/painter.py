"""Painter: a supersampled RGB canvas whose 4th channel is the parsing label, box-filtered to the
output resolution.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from .colours import _scale_rgb
from .constants import _BIG, _FP, RGB, _SHIFT, SS, _T
from .fabrics import Fabric


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
