"""Constants of the renderer: canvas supersampling, fixed-point vertices, the 8 parsing classes,
fabric tile size and the cap / ellipse sample angles.
"""

from __future__ import annotations

import math

import numpy as np


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
