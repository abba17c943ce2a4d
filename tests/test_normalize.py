"""Skeleton normalisation (pyposert.normalize): driving poses land on the photo's person, at
their size, whatever the driver's frame, distance or camera."""

from __future__ import annotations

import numpy as np
import pytest

from pyposert.normalize import BONES, SkeletonNormalizer, bone_lengths
from pyposert.poses import STANDING_POSE

PHOTO = STANDING_POSE.copy()  # a standing person in a 256 x 176 photo, feet at y = 226
PHOTO_SIZE = (256, 176)


def _driver(scale: float, feet_at: tuple[float, float], pose: np.ndarray = PHOTO) -> np.ndarray:
    """``pose`` scaled by ``scale`` with its mid-hip x / lower ankle y at ``feet_at`` = (x, y)."""
    hips_x = (pose[8, 0] + pose[11, 0]) / 2
    feet_y = max(pose[10, 1], pose[13, 1])
    return ((pose - (hips_x, feet_y)) * scale + feet_at).astype(np.float32)


def _rotate(pose: np.ndarray, parent: int, children: tuple[int, ...], degrees: float) -> np.ndarray:
    """Rotate joints ``children`` about ``parent`` (a bend: bone lengths unchanged)."""
    out = pose.copy()
    a = np.deg2rad(degrees)
    for child in children:
        d = out[child] - out[parent]
        out[child] = out[parent] + (np.cos(a) * d[0] - np.sin(a) * d[1], np.sin(a) * d[0] + np.cos(a) * d[1])
    return out


def test_same_skeleton_elsewhere_and_larger_lands_on_the_photo_person() -> None:
    for scale, at in ((2.5, (900.0, 700.0)), (0.7, (100.0, 300.0)), (1.9, (640.0, 500.0))):
        norm = SkeletonNormalizer(PHOTO, PHOTO_SIZE)  # a new sequence each time
        out = norm(_driver(scale, at))
        np.testing.assert_allclose(out, PHOTO, atol=1e-3)
        assert norm.last_scale == pytest.approx(1 / scale, rel=1e-4)


def test_a_raised_arm_or_a_bent_knee_changes_the_pose_not_the_size() -> None:
    norm = SkeletonNormalizer(PHOTO, PHOTO_SIZE)
    norm(_driver(2.0, (600.0, 650.0)))
    moved = _rotate(_rotate(PHOTO, 2, (3, 4), -100.0), 12, (13,), -40.0)  # right arm up, left knee bent
    out = norm(_driver(2.0, (610.0, 640.0), moved))
    assert norm.last_scale == pytest.approx(0.5, rel=1e-4)
    np.testing.assert_allclose(bone_lengths(out), bone_lengths(PHOTO), rtol=1e-3, equal_nan=True)
    np.testing.assert_allclose(out[[8, 9, 10, 11]], PHOTO[[8, 9, 10, 11]], atol=1e-3)  # stands where it stood
    assert not np.allclose(out[3], PHOTO[3], atol=5)  # the arm did move


def test_walking_towards_the_camera_keeps_the_photo_persons_size(rng: np.random.Generator) -> None:
    """A driver growing from 1.5x to 3x over 60 frames (and the camera panning) -> the figure's
    height stays the photo person's, within 3 %, with per-frame noise on the joints."""
    norm = SkeletonNormalizer(PHOTO, PHOTO_SIZE)
    photo_height = np.ptp(PHOTO[:, 1])
    for i in range(60):
        scale = 1.5 + 1.5 * i / 59
        pose = _driver(scale, (500.0 + 3 * i, 700.0 + 4 * np.sin(i / 5.0)))  # head stays in a 720-high frame
        pose += rng.normal(0, 1.0, pose.shape).astype(np.float32)
        out = norm(pose)
        if i >= 5:  # the window has filled with this walk
            assert np.ptp(out[:, 1]) == pytest.approx(photo_height, rel=0.03)
        assert abs(max(out[10, 1], out[13, 1]) - 226) < 1.0  # feet on the photo person's feet


def test_feet_mode_is_edn_for_a_static_camera(rng: np.random.Generator) -> None:
    """size="feet": a driver's size as a linear function of how low their feet are (a static
    camera, a flat floor: size ~ feet_y - horizon). A crouch that shortens one frame's bones
    (foreshortening) does not change the scale there."""
    norm = SkeletonNormalizer(PHOTO, PHOTO_SIZE, size="feet")
    horizon = 200.0
    for i in range(80):
        feet = 420.0 + 120.0 * (1 - np.cos(np.pi * i / 20))  # walks forwards and back, twice
        scale = (feet - horizon) / 200.0
        pose = _driver(scale, (640.0, feet)) + rng.normal(0, 0.5, (18, 2)).astype(np.float32)
        out = norm(pose)
        if i >= 40:  # both ends of the range have been seen
            assert norm.last_scale == pytest.approx(1 / scale, rel=0.04)
            assert np.ptp(out[:, 1]) == pytest.approx(np.ptp(PHOTO[:, 1]), rel=0.04)
    crouch = _driver(225.0 / 200.0, (640.0, 425.0))  # where the walk ended (feet 421.5)
    crouch[9:11] = crouch[8] + (crouch[9:11] - crouch[8]) * 0.6  # legs foreshortened in this frame only
    norm(crouch)
    assert norm.last_scale == pytest.approx(200.0 / 225.0, rel=0.03)


def test_keep_bone_lengths_takes_only_the_angles() -> None:
    long_arms = PHOTO.copy()
    long_arms[[3, 4]] = long_arms[2] + (long_arms[[3, 4]] - long_arms[2]) * 1.4
    long_arms = _rotate(long_arms, 2, (3, 4), -60.0)
    norm = SkeletonNormalizer(PHOTO, PHOTO_SIZE, keep_bone_lengths=True)
    out = norm(_driver(2.0, (600.0, 650.0), long_arms))
    np.testing.assert_allclose(bone_lengths(out), bone_lengths(PHOTO), rtol=1e-4, equal_nan=True)
    for a, b in BONES:  # each bone points where the driver's points
        d_out, d_drv = out[b] - out[a], long_arms[b] - long_arms[a]
        cos = d_out @ d_drv / (np.linalg.norm(d_out) * np.linalg.norm(d_drv))
        assert cos == pytest.approx(1.0, abs=1e-5), (a, b)
    plain = SkeletonNormalizer(PHOTO, PHOTO_SIZE)(_driver(2.0, (600.0, 650.0), long_arms))
    assert np.linalg.norm(plain[4] - plain[3]) > 1.2 * np.linalg.norm(PHOTO[4] - PHOTO[3])


def test_upper_body_drivers_and_edge_cases() -> None:
    upper = _driver(3.0, (640.0, 900.0))
    upper[8:14] = -1.0  # a webcam: no hips, knees or ankles
    norm = SkeletonNormalizer(PHOTO, PHOTO_SIZE)
    out = norm(upper)
    np.testing.assert_allclose(out[:8], PHOTO[:8], atol=1e-3)  # anchored on the neck, sized by the arms
    assert (out[8:14] == -1).all()
    assert norm(None) is None and norm(np.full((18, 2), -1.0, np.float32)) is None
    few = np.full((18, 2), -1.0, np.float32)
    few[[0, 1]] = PHOTO[[0, 1]]
    with pytest.raises(ValueError, match="at least 3"):
        SkeletonNormalizer(few, PHOTO_SIZE)
    with pytest.raises(ValueError, match="size must be one of"):
        SkeletonNormalizer(PHOTO, PHOTO_SIZE, size="width")
    # Joints pushed beyond the photo's top edge are missing (the convention), not clamped.
    raised = _rotate(PHOTO, 2, (3,), 180.0)  # right elbow straight up from the shoulder: (72, 28)
    raised[4] = raised[3] + (raised[3] - raised[2])  # the wrist above that: (80, -8), off the photo
    out = SkeletonNormalizer(PHOTO, PHOTO_SIZE)(_driver(2.0, (500.0, 600.0), raised))
    np.testing.assert_allclose(out[3], (72.0, 28.0), atol=1e-3)
    np.testing.assert_array_equal(out[4], (-1.0, -1.0))
