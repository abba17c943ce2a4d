"""Pose completion: every joint the drawing needs, plus view and scale.

Keypoints are float ``[18, 2]`` **(x, y)** output pixels, COCO-18 (see :mod:`training.data.poses`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import poses as P


def _unit(v: np.ndarray, fallback: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    n = math.hypot(v[0], v[1])
    if n < 1e-6:
        return np.array(fallback, np.float64)
    return v / n


@dataclass
class Body:
    """A completed pose in output pixels (x, y) with the quantities the drawing needs
    (returned by :func:`complete_pose`)."""

    J: np.ndarray  # float64 [18, 2] (x, y): annotated joints + completed ones
    known: np.ndarray  # bool [18]: joints present in the annotation
    s: float  # body unit (torso length) in pixels
    down: np.ndarray  # unit vector neck -> mid-hip
    h: np.ndarray  # unit vector perpendicular to down, pointing image-right when upright
    cos_t: float  # body yaw: +1 facing the camera, -1 back to the camera
    sin_t: float  # > 0: facing image-right (the person's right side is nearer the camera)
    face: bool  # face visible (front head)
    torso_front: bool  # chest (not back) towards the camera
    head_c: np.ndarray  # head centre (x, y)
    head_up: np.ndarray  # unit vector, head's up
    head_r: np.ndarray  # unit vector, head's image-right (perpendicular to head_up)


# Nominal lengths in body units (medians of the real pose bank, frontal views).
_L_UPPER_ARM, _L_FOREARM, _L_THIGH, _L_SHIN = 0.6, 0.52, 0.86, 0.84
HEAD_RX, HEAD_RY = 0.19, 0.245  # head half-width / half-height in body units (ear span ~0.36)


def complete_pose(keypoints_xy: np.ndarray, present: np.ndarray) -> Body:
    """Fill in joints missing from an annotation so a whole body can be drawn.

    keypoints_xy: float ``[18, 2]`` (x, y) pixels (values of missing joints are ignored);
    present: bool ``[18]``. Needs the neck or both shoulders, plus one more torso joint
    (neck, shoulders, hips); raises ValueError otherwise. Completed joints follow body
    proportions: a missing shoulder mirrors the other about the neck, missing hips sit one
    torso length below the neck, missing arm / leg joints continue the limb or hang down.
    """
    kp = np.asarray(keypoints_xy, np.float64)[:, :2]
    known = np.asarray(present, bool) & np.isfinite(kp).all(-1)
    J = np.where(known[:, None], kp, np.nan)
    k = known.copy()
    torso_known = int(k[[P.NECK, P.R_SHOULDER, P.L_SHOULDER, P.R_HIP, P.L_HIP]].sum())
    if not (k[P.NECK] or (k[P.R_SHOULDER] and k[P.L_SHOULDER])) or torso_known < 2:
        raise ValueError("pose needs the neck (or both shoulders) and one more torso joint")
    if not k[P.NECK]:
        J[P.NECK] = (J[P.R_SHOULDER] + J[P.L_SHOULDER]) / 2
        k[P.NECK] = True
    neck = J[P.NECK]

    # Body unit: torso length; foreshortening only shortens, so take the larger estimate.
    est: list[float] = []
    if k[P.R_HIP] or k[P.L_HIP]:
        hips = [J[j] for j in (P.R_HIP, P.L_HIP) if k[j]]
        est.append(float(np.linalg.norm(np.mean(hips, 0) - neck)))
    if k[P.R_SHOULDER] and k[P.L_SHOULDER]:
        est.append(float(np.linalg.norm(J[P.R_SHOULDER] - J[P.L_SHOULDER])) / 0.78)
    sec: list[float] = []
    for a, b, L in ((P.NECK, P.NOSE, 0.42), (P.R_SHOULDER, P.R_ELBOW, _L_UPPER_ARM),
                    (P.L_SHOULDER, P.L_ELBOW, _L_UPPER_ARM), (P.R_HIP, P.R_KNEE, _L_THIGH),
                    (P.L_HIP, P.L_KNEE, _L_THIGH), (P.R_EAR, P.L_EAR, 0.36)):
        if k[a] and k[b]:
            sec.append(float(np.linalg.norm(J[a] - J[b])) / L)
    s = max(est) if est else 0.0
    if sec:
        s = max(s, 0.85 * float(np.median(sec)))
    s = max(s, 4.0)

    # Body axes.
    if k[P.R_HIP] or k[P.L_HIP]:
        mh = np.nanmean(J[[P.R_HIP, P.L_HIP]], 0)
        down = _unit(mh - neck)
    elif k[P.R_SHOULDER] and k[P.L_SHOULDER]:
        sv = J[P.L_SHOULDER] - J[P.R_SHOULDER]
        down = _unit(np.array([-sv[1], sv[0]]))
        if down[1] < 0:
            down = -down
        if np.hypot(*sv) < 0.2 * s:
            down = np.array([0.0, 1.0])
    else:
        down = np.array([0.0, 1.0])
    h = np.array([down[1], -down[0]])

    # Shoulders.
    if k[P.R_SHOULDER] != k[P.L_SHOULDER]:
        a, b = (P.R_SHOULDER, P.L_SHOULDER) if k[P.R_SHOULDER] else (P.L_SHOULDER, P.R_SHOULDER)
        J[b] = 2 * neck - J[a]
    elif not k[P.R_SHOULDER]:
        J[P.R_SHOULDER] = neck - h * 0.33 * s
        J[P.L_SHOULDER] = neck + h * 0.33 * s
    sh_vec = J[P.L_SHOULDER] - J[P.R_SHOULDER]

    # View: shoulder order gives the body's yaw, the face tells front from back.
    cos_t = float(np.clip(np.dot(sh_vec, h) / (0.62 * s), -1.0, 1.0))
    face = bool(k[P.NOSE] or k[P.R_EYE] or k[P.L_EYE])
    torso_front = cos_t > -0.15 if face else cos_t > 0.3
    side = 0.0
    if face:
        r_side = int(k[P.R_EYE]) + int(k[P.R_EAR])
        l_side = int(k[P.L_EYE]) + int(k[P.L_EAR])
        if r_side != l_side:
            side = 1.0 if r_side > l_side else -1.0  # right features visible: facing image-right
        elif k[P.NOSE] and k[P.R_EYE] and k[P.L_EYE]:
            off = np.dot(J[P.NOSE] - (J[P.R_EYE] + J[P.L_EYE]) / 2, h)
            side = float(np.clip(off / (0.05 * s), -1, 1))
    sin_t = side * math.sqrt(max(0.0, 1.0 - cos_t * cos_t))

    # Hips.
    hip_half = sh_vec * 0.31
    if not (k[P.R_HIP] or k[P.L_HIP]):
        mh = neck + down * s
        J[P.R_HIP] = mh - hip_half
        J[P.L_HIP] = mh + hip_half
    elif not k[P.R_HIP]:
        J[P.R_HIP] = J[P.L_HIP] - 2 * hip_half
    elif not k[P.L_HIP]:
        J[P.L_HIP] = J[P.R_HIP] + 2 * hip_half

    # Limbs: (root, mid, end, len1, len2, outward, is_arm).
    for root, mid, end, l1, l2, out, arm in (
        (P.R_SHOULDER, P.R_ELBOW, P.R_WRIST, _L_UPPER_ARM, _L_FOREARM, -sh_vec, True),
        (P.L_SHOULDER, P.L_ELBOW, P.L_WRIST, _L_UPPER_ARM, _L_FOREARM, sh_vec, True),
        (P.R_HIP, P.R_KNEE, P.R_ANKLE, _L_THIGH, _L_SHIN, -sh_vec, False),
        (P.L_HIP, P.L_KNEE, P.L_ANKLE, _L_THIGH, _L_SHIN, sh_vec, False),
    ):
        out = _unit(out, (float(h[0]), float(h[1])))
        hang = _unit(down + out * (0.18 if arm else 0.04))
        L1, L2 = l1 * s, l2 * s
        a = J[root]
        if k[mid] and k[end]:
            continue
        if k[end]:  # mid missing: bend the limb outwards between root and end
            d = J[end] - a
            dist = math.hypot(d[0], d[1])
            m = a + d * (L1 / (L1 + L2))
            if dist < L1 + L2:
                n = _unit(np.array([-d[1], d[0]]))
                if np.dot(n, out) < 0:
                    n = -n
                m = m + n * math.sqrt(max(L1 * L1 - (dist * L1 / (L1 + L2)) ** 2, 0.0))
            J[mid] = m
        elif k[mid]:  # end missing: continue the limb (arms relax towards hanging)
            d = J[mid] - a
            cont = _unit(d, (float(hang[0]), float(hang[1]))) if math.hypot(*d) > 0.15 * s else hang
            if arm:
                cont = _unit(cont + hang)
            J[end] = J[mid] + cont * L2
        else:
            J[mid] = a + hang * L1
            J[end] = J[mid] + hang * L2

    # Head frame from whatever facial joints exist.
    up0 = -down
    cands: list[np.ndarray] = []
    hr_ = 0.19 * s
    face_pts = [J[j] for j in (P.R_EYE, P.L_EYE) if known[j]]
    if known[P.NOSE]:
        c = J[P.NOSE] + up0 * 0.07 * s
        if face_pts:
            c = (c + np.mean(face_pts, 0) + up0 * 0.01 * s) / 2
        cands.append(c - h * (sin_t * 0.5 * hr_))  # profile: the skull is behind the face
    elif face_pts:
        cands.append(np.mean(face_pts, 0) - h * (sin_t * 0.5 * hr_))
    if known[P.R_EAR] and known[P.L_EAR]:
        cands.append((J[P.R_EAR] + J[P.L_EAR]) / 2)
    elif known[P.R_EAR] or known[P.L_EAR]:
        e = J[P.R_EAR] if known[P.R_EAR] else J[P.L_EAR]
        cands.append(e + h * (sin_t * 0.3 * hr_))
    head_c = np.mean(cands, 0) if cands else neck + up0 * 0.46 * s
    head_up = _unit(0.5 * _unit(head_c - neck, (float(up0[0]), float(up0[1]))) + 0.5 * up0,
                    (float(up0[0]), float(up0[1])))
    if known[P.R_EYE] and known[P.L_EYE]:
        e = J[P.L_EYE] - J[P.R_EYE]
        if math.hypot(*e) > 0.06 * s:
            n = _unit(np.array([e[1], -e[0]]))
            if np.dot(n, head_up) < 0:
                n = -n
            head_up = _unit(n + head_up)
    head_r = np.array([-head_up[1], head_up[0]])
    # The drawn head must contain the annotated face: pull the centre towards any eye / nose
    # outside 75 % of the nominal head ellipse (ears: outside its edge).
    rx, ry = HEAD_RX * s, HEAD_RY * s
    for j, lim in ((P.NOSE, 0.75), (P.R_EYE, 0.75), (P.L_EYE, 0.75), (P.R_EAR, 1.0), (P.L_EAR, 1.0)):
        if known[j]:
            d = J[j] - head_c
            rho = math.hypot(float(np.dot(d, head_r)) / rx, float(np.dot(d, head_up)) / ry)
            if rho > lim:
                head_c = head_c + d * (1.0 - lim / rho)
    return Body(J, known, s, down, h, cos_t, sin_t, face, torso_front, head_c, head_up, head_r)
