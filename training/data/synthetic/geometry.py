"""Geometry helpers: tubes, ellipses and arcs as polygons, all in output-pixel coordinates, (x, y)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .body import _unit
from .constants import _CAP, _CAP_COS, _CAP_SIN, _ELL_COS, _ELL_SIN


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
