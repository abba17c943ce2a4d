"""Temporal smoothing of driving poses: a One-Euro filter per joint coordinate.

The One-Euro filter (Casiez, Roussel, Vogel: "1 Euro Filter: A Simple Speed-based Low-pass
Filter for Noisy Input in Interactive Systems", CHI 2012) is a first-order low-pass whose
cutoff rises with the signal's speed: slow motion is smoothed hard (jitter disappears), fast
motion gets a high cutoff (little lag). Defaults are the paper's recommended starting point:
``min_cutoff = 1.0`` Hz, ``beta = 0.007``, ``d_cutoff = 1.0`` Hz.

Contract: poses are float32 ``(18, 2)`` **(x, y)** pixels, a missing joint is ``(-1, -1)``.
A missing joint resets that joint's filter (so a joint that reappears elsewhere does not glide
in from its old position); a frame without a person (``None``) keeps the last smoothed pose
and is counted in :attr:`PoseSmoother.no_person`.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

__all__ = ["OneEuroFilter", "PoseSmoother", "DEFAULT_MIN_CUTOFF", "DEFAULT_BETA", "DEFAULT_D_CUTOFF"]

DEFAULT_MIN_CUTOFF = 1.0  # Hz; Casiez et al. 2012
DEFAULT_BETA = 0.007  # speed coefficient (1/pixel units); Casiez et al. 2012
DEFAULT_D_CUTOFF = 1.0  # Hz, cutoff of the derivative's own low-pass; Casiez et al. 2012


def _alpha(cutoff: np.ndarray, dt: float) -> np.ndarray:
    """Smoothing factor of an exponential low-pass with ``cutoff`` Hz at period ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Vectorised One-Euro filter over an array of independent channels (any shape).

    ``reset(mask)`` forgets the state of the channels where mask is True: their next sample
    passes through unfiltered.
    """

    def __init__(self, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
                 d_cutoff: float = DEFAULT_D_CUTOFF) -> None:
        if not (min_cutoff > 0 and d_cutoff > 0 and beta >= 0):
            raise ValueError(f"need min_cutoff > 0, d_cutoff > 0, beta >= 0; got {min_cutoff}, {d_cutoff}, {beta}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self._x: Optional[np.ndarray] = None  # last filtered value (float64)
        self._dx: Optional[np.ndarray] = None  # last filtered derivative
        self._valid: Optional[np.ndarray] = None  # channels with a state
        self._t: Optional[float] = None

    def reset(self, mask: Optional[np.ndarray] = None) -> None:
        """Forget everything (mask None) or only the channels where ``mask`` is True."""
        if mask is None or self._valid is None:
            self._x = self._dx = self._valid = None
            self._t = None
            return
        self._valid &= ~np.asarray(mask, bool)

    def __call__(self, value: np.ndarray, t: float) -> np.ndarray:
        """Filter one sample taken at time ``t`` (seconds, increasing). Returns float64."""
        x = np.asarray(value, np.float64)
        if self._x is None or self._t is None or self._x.shape != x.shape:
            self._x, self._dx, self._valid, self._t = x.copy(), np.zeros_like(x), np.ones(x.shape, bool), float(t)
            return x.copy()
        # A repeated or backwards timestamp would divide by zero; treat it as a tiny step.
        dt = max(float(t) - self._t, 1e-6)
        self._t = float(t)
        fresh = ~self._valid
        dx = (x - self._x) / dt
        dx[fresh] = 0.0
        a_d = _alpha(np.full_like(x, self.d_cutoff), dt)
        dx_hat = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        a = _alpha(cutoff, dt)
        x_hat = a * x + (1.0 - a) * self._x
        x_hat[fresh] = x[fresh]  # a (re)started channel begins at its measurement
        dx_hat[fresh] = 0.0
        self._x, self._dx = x_hat, dx_hat
        self._valid[:] = True
        return x_hat.copy()


class PoseSmoother:
    """One-Euro smoothing of COCO-18 poses, (18, 2) float32 (x, y) pixels, missing (-1, -1).

    ``smoother(keypoints, t)``: keypoints None = no person -> the last smoothed pose (None if
    there has been none yet); counted in ``no_person``.
    """

    def __init__(self, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
                 d_cutoff: float = DEFAULT_D_CUTOFF, enabled: bool = True) -> None:
        self.enabled = enabled
        self._filter = OneEuroFilter(min_cutoff, beta, d_cutoff)
        self._last: Optional[np.ndarray] = None
        self.no_person = 0

    def __call__(self, keypoints: Optional[np.ndarray], t: float) -> Optional[np.ndarray]:
        if keypoints is None:
            self.no_person += 1
            return None if self._last is None else self._last.copy()
        kp = np.asarray(keypoints, np.float32).reshape(-1, 2)
        missing = (kp < 0).any(axis=1)
        if not self.enabled:
            out = kp.copy()
        else:
            # Missing joints reset their filter; their input value is irrelevant (masked below).
            self._filter.reset(np.repeat(missing[:, None], 2, axis=1))
            out = self._filter(np.where(missing[:, None], 0.0, kp), t).astype(np.float32)
            # Those joints must start fresh when they come back: reset again after the update.
            self._filter.reset(np.repeat(missing[:, None], 2, axis=1))
        out[missing] = -1.0
        self._last = out
        return out.copy()
