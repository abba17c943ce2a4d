"""PG2 body mask (pose-mask loss, mask-SSIM), built from a pose's keypoints.

Specification (REFERENCE_MODELS.md): for each limb of :data:`poses.LIMBS` with both ends present,
a filled band of half-width 4 px along the segment; a disk of radius 4 px at every present
joint; then a dilation followed by an erosion with a 5 x 5 square. Pixel (row r, column c) is
tested at its centre (x = c, y = r), like the reference code's skimage.draw rasterisers.
"""

from __future__ import annotations

import cv2
import numpy as np

from .poses import LIMBS, NUM_JOINTS

BAND_HALF_WIDTH = 4.0
JOINT_RADIUS = 4.0
CLOSING_SIZE = 5

_KERNEL = np.ones((CLOSING_SIZE, CLOSING_SIZE), np.uint8)


def _present(kp: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(kp).all(-1) & (kp >= 0).all(-1)


def body_mask(keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    """PG2 body mask of one pose.

    Args:
        keypoints: float ``[18, C>=2]``, (x, y[, conf]) in pixels of the H x W image, COCO-18
            order; a joint is missing when x or y is negative or NaN.
        height, width: mask size (H, W).

    Returns:
        uint8 ``[H, W]`` with values {0, 1}: 1 on the body region.

    A band pixel is in when its centre projects onto the segment (0 <= u <= length) and lies
    within 4 px of it (|v| <= 4); a disk pixel when its centre is at distance < 4 from the
    joint (strict, like skimage.draw.disk in the reference code). The closing uses reflected
    borders like skimage / scipy morphology.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[0] != NUM_JOINTS or kp.shape[1] < 2:
        raise ValueError(f"keypoints must have shape [18, >=2], got {kp.shape}")
    kp = kp[:, :2]
    present = _present(kp)
    mask = np.zeros((height, width), np.uint8)

    # Shapes: every limb band (both ends present) and every joint disk (start = end = joint).
    limbs = np.array([(a, b) for a, b in LIMBS if present[a] and present[b]], np.int64).reshape(-1, 2)
    joints = np.flatnonzero(present)
    starts = np.concatenate([kp[limbs[:, 0]], kp[joints]])  # [S, 2] (x, y)
    ends = np.concatenate([kp[limbs[:, 1]], kp[joints]])
    if len(starts):
        _rasterise(mask, starts, ends, is_disk=np.arange(len(starts)) >= len(limbs))
    mask = cv2.dilate(mask, _KERNEL, borderType=cv2.BORDER_REFLECT)
    mask = cv2.erode(mask, _KERNEL, borderType=cv2.BORDER_REFLECT)
    return mask


def _rasterise(mask: np.ndarray, starts: np.ndarray, ends: np.ndarray, is_disk: np.ndarray) -> None:
    """Set mask pixels inside limb bands (start -> end) and joint disks (at start).

    Every shape is convex, so on each pixel row it covers one run of columns. The runs of all
    shapes' rows are found in one vectorised pass: an analytic estimate of the run's ends,
    corrected by testing the neighbouring columns with the exact per-pixel inclusion test (so
    ties, e.g. integer keypoints exactly 4 px from a pixel centre, are decided like the
    reference). Runs are painted through a difference array.
    """
    height, width = mask.shape
    d = ends - starts
    length = np.hypot(d[:, 0], d[:, 1])
    keep = is_disk | (length >= 1e-9)  # a zero-length band has no area (its joint disks cover it)
    starts, d, length, disk = starts[keep], d[keep], length[keep], is_disk[keep]
    reach = np.abs(d[:, 1]) + np.where(disk, JOINT_RADIUS, BAND_HALF_WIDTH)
    top = np.minimum(starts[:, 1], starts[:, 1] + d[:, 1])
    y0 = np.maximum(np.floor(top - np.where(disk, JOINT_RADIUS, BAND_HALF_WIDTH)), 0).astype(np.int64)
    y1 = np.minimum(np.ceil(top + reach), height - 1).astype(np.int64)
    n = np.maximum(y1 - y0 + 1, 0)
    total = int(n.sum())
    if total == 0:
        return
    sid = np.repeat(np.arange(len(n)), n)  # shape of every (shape, row) entry
    ys = y0[sid] + (np.arange(total) - np.repeat(np.cumsum(n) - n, n))
    safe = np.where(disk, 1.0, length)
    dx, dy = d[sid, 0], d[sid, 1]
    ux, uy = (d[:, 0] / safe)[sid], (d[:, 1] / safe)[sid]
    ax, py = starts[sid, 0], ys - starts[sid, 1]
    L, dk = length[sid], disk[sid]
    Ls = safe[sid]

    # Estimated run [lo, hi] in px = x - ax. A band is 0 <= u <= L and -4 <= v <= 4 with
    # u = px*ux + py*uy and v = px*uy - py*ux: two constraints coef*px in [a, b]. The estimate
    # is made a little permissive; the exact test below trims it.
    lo = np.full(total, -np.inf)
    hi = np.full(total, np.inf)
    for coef, a, b in ((ux, -py * uy, L - py * uy),
                       (uy, py * ux - BAND_HALF_WIDTH, py * ux + BAND_HALF_WIDTH)):
        moving = np.abs(coef) > 1e-12
        c = np.where(moving, coef, 1.0)
        p, q = a / c, b / c
        lo = np.where(moving, np.maximum(lo, np.minimum(p, q)), lo)
        hi = np.where(moving, np.minimum(hi, np.maximum(p, q)), hi)
        # A constraint that does not depend on x holds on the whole row or nowhere.
        nowhere = ~moving & ((a > 1e-6) | (b < -1e-6))
        lo = np.where(nowhere, np.inf, lo)
    # Disk: px^2 < 16 - py^2.
    h2 = JOINT_RADIUS * JOINT_RADIUS - py * py
    half = np.sqrt(np.maximum(h2, 0.0))
    lo = np.where(dk, np.where(h2 > 0, -half, np.inf), lo)
    hi = np.where(dk, np.where(h2 > 0, half, -np.inf), hi)
    xlo = np.clip(np.ceil(ax + lo), 0, width - 1)
    xhi = np.clip(np.floor(ax + hi), 0, width - 1)

    # Exact test at three candidate columns around each estimated end, with the spec's
    # arithmetic: u = (px*dx + py*dy) / L, v = (px*dy - py*dx) / L.
    off = np.array([-1.0, 0.0, 1.0])
    cand = np.concatenate([xlo[:, None] + off, xhi[:, None] - off], axis=1)  # [total, 6]
    px = cand - ax[:, None]
    pyc = py[:, None]
    u = (px * dx[:, None] + pyc * dy[:, None]) / Ls[:, None]
    v = (px * dy[:, None] - pyc * dx[:, None]) / Ls[:, None]
    ok = np.where(dk[:, None], px * px + pyc * pyc < JOINT_RADIUS * JOINT_RADIUS,
                  (u >= 0) & (u <= L[:, None]) & (np.abs(v) <= BAND_HALF_WIDTH))
    ok_lo, ok_hi = ok[:, :3], ok[:, 3:]
    idx = np.arange(total)
    start = np.maximum(cand[idx, ok_lo.argmax(1)], 0)
    end = np.minimum(cand[idx, 3 + ok_hi.argmax(1)], width - 1)
    run = ok_lo.any(1) & ok_hi.any(1) & (start <= end)
    if not run.any():
        return
    row = ys[run] * (width + 1)
    size = height * (width + 1)
    diff = (np.bincount(row + start[run].astype(np.int64), minlength=size)
            - np.bincount(row + end[run].astype(np.int64) + 1, minlength=size))
    covered = np.cumsum(diff.reshape(height, width + 1)[:, :width], axis=1) > 0
    mask |= covered.view(np.uint8)
