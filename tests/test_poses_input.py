"""Keypoint input parsing (pyposert.poses): arrays and OpenPose JSON (COCO-18, BODY_25) ->
float32 (18, 2) (x, y) pixels, missing (-1, -1); every malformed input is a ValueError."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pyposert.poses import BODY25_TO_COCO18, parse_openpose, parse_pose


def _random_pose(rng: np.random.Generator, joints: int = 18) -> np.ndarray:
    """(joints, 3) (x, y, confidence) with all joints present and confident."""
    return np.stack([rng.uniform(0, 300, joints), rng.uniform(0, 400, joints), rng.uniform(0.5, 1, joints)], 1)


def test_array_xy_and_xyc(rng: np.random.Generator) -> None:
    pose = _random_pose(rng)
    xy = parse_pose(pose[:, :2])
    assert xy.dtype == np.float32 and xy.shape == (18, 2)
    np.testing.assert_allclose(xy, pose[:, :2], rtol=1e-6)
    np.testing.assert_array_equal(parse_pose(pose), xy)
    np.testing.assert_array_equal(parse_pose(pose.tolist()), xy)  # nested lists are array-like too


def test_missing_is_negative_or_low_confidence(rng: np.random.Generator) -> None:
    pose = _random_pose(rng)
    pose[3, 0] = -1  # negative x
    pose[5, 1] = -0.5  # negative y
    pose[7, 2] = 0.01  # confidence below the default 0.05
    pose[9, 2] = 0.05  # exactly the threshold: present
    out = parse_pose(pose)
    for j in (3, 5, 7):
        np.testing.assert_array_equal(out[j], [-1, -1])
    assert (out[[0, 1, 2, 4, 6, 8, 9]] >= 0).all()
    # The threshold is a parameter.
    assert (parse_pose(pose, min_confidence=0.0)[7] >= 0).all()
    assert (parse_pose(pose, min_confidence=0.9)[pose[:, 2] < 0.9] == -1).all()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_are_missing(rng: np.random.Generator, bad: float) -> None:
    """The one convention (README, ops.heatmaps, Engine, pose files): a NaN or infinite x or
    y -- or a NaN confidence -- marks a missing joint, exactly like a negative coordinate."""
    pose = _random_pose(rng)[:, :2]
    pose[4, 1] = bad
    out = parse_pose(pose)
    np.testing.assert_array_equal(out[4], [-1, -1])
    keep = np.arange(18) != 4
    np.testing.assert_allclose(out[keep], pose[keep], rtol=1e-6)
    pose3 = _random_pose(rng)
    pose3[2, 2] = math.nan
    pose3[6, 0] = bad
    out3 = parse_pose(pose3)
    np.testing.assert_array_equal(out3[[2, 6]], [[-1, -1], [-1, -1]])
    assert (out3[[0, 1, 3, 4, 5, 7]] >= 0).all()


def test_minimum_joints_neck_and_hips(rng: np.random.Generator) -> None:
    from pyposert.poses import REQUIRED_JOINTS, check_minimum, has_minimum

    assert REQUIRED_JOINTS == (1, 8, 11)
    pose = parse_pose(_random_pose(rng))
    assert has_minimum(pose) and check_minimum(pose) is pose
    for j, name in ((1, "neck"), (8, "r_hip"), (11, "l_hip")):
        broken = pose.copy()
        broken[j] = -1
        assert not has_minimum(broken)
        with pytest.raises(ValueError, match=f"at least the neck and both hips, and {name} is missing"):
            check_minimum(broken, "source_pose")
    with pytest.raises(ValueError, match=r"neck, r_hip, l_hip are missing \(0 of 18"):
        check_minimum(np.full((18, 2), -1, np.float32), "source_pose")
    # Everything else may be missing.
    only = np.full((18, 2), -1, np.float32)
    only[list(REQUIRED_JOINTS)] = pose[list(REQUIRED_JOINTS)]
    assert has_minimum(only)


@pytest.mark.parametrize("shape", [(16, 2), (19, 2), (18, 1), (18, 4), (17, 4), (33, 5), (36,), (2, 18), (1, 1, 18, 2),
                                   ()])
def test_wrong_shapes(shape: tuple[int, ...]) -> None:
    # The message lists every accepted format, so a user sees which one they almost had.
    with pytest.raises(ValueError, match=r"COCO-17.*\(18, 2\).*BODY_25.*MediaPipe-33"):
        parse_pose(np.ones(shape))


def test_non_numeric() -> None:
    with pytest.raises(ValueError):
        parse_pose([["a", "b"]] * 18)
    with pytest.raises(ValueError):
        parse_pose(object())  # type: ignore[arg-type]
    # Beyond float32's range is as infinite: missing.
    assert (parse_pose(np.full((18, 2), 1e300)) == -1).all()


def _openpose(flat: list[float], people: int = 1) -> dict:
    return {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": flat}] * people}


def test_openpose_coco18(rng: np.random.Generator) -> None:
    pose = _random_pose(rng)
    pose[6] = 0.0  # OpenPose writes undetected joints as (0, 0, 0)
    out = parse_pose(_openpose(pose.ravel().tolist()))
    np.testing.assert_array_equal(out[6], [-1, -1])
    keep = np.arange(18) != 6
    np.testing.assert_allclose(out[keep], pose[keep, :2], rtol=1e-6)
    # A single person entry works too.
    np.testing.assert_array_equal(parse_pose({"pose_keypoints_2d": pose.ravel().tolist()}), out)


def test_openpose_body25_maps_to_coco18(rng: np.random.Generator) -> None:
    body25 = _random_pose(rng, 25)
    out = parse_pose(_openpose(body25.ravel().tolist()))
    # Explicit joints: neck is 1 in both; BODY_25's 9 (RHip) is COCO's 8; 18 (LEar) is 17;
    # MidHip (8) and the feet (19-24) have no COCO-18 slot.
    np.testing.assert_allclose(out[1], body25[1, :2], rtol=1e-6)
    np.testing.assert_allclose(out[8], body25[9, :2], rtol=1e-6)
    np.testing.assert_allclose(out[17], body25[18, :2], rtol=1e-6)
    np.testing.assert_allclose(out, body25[list(BODY25_TO_COCO18), :2], rtol=1e-6)
    assert 8 not in BODY25_TO_COCO18 and max(BODY25_TO_COCO18) == 18


def test_openpose_person_choice_and_file(tmp_path: Path, rng: np.random.Generator) -> None:
    a, b = _random_pose(rng), _random_pose(rng)
    data = {"people": [{"pose_keypoints_2d": a.ravel().tolist()}, {"pose_keypoints_2d": b.ravel().tolist()}]}
    np.testing.assert_allclose(parse_openpose(data, person=1), b[:, :2], rtol=1e-6)
    np.testing.assert_allclose(parse_openpose(data, person=0), a[:, :2], rtol=1e-6)
    path = tmp_path / "frame_000000_keypoints.json"
    path.write_text(json.dumps(data))
    np.testing.assert_allclose(parse_pose(path, person="0"), a[:, :2], rtol=1e-6)
    np.testing.assert_allclose(parse_pose(str(path), person=1), b[:, :2], rtol=1e-6)


@pytest.mark.parametrize("data, message", [
    ({"people": []}, "no person"),
    ({"people": {}}, "must be a list"),
    ({"people": [{"face_keypoints_2d": []}]}, "pose_keypoints_2d"),
    ({"people": [{"pose_keypoints_2d": [1.0] * 50}]}, "54 numbers"),
    ({"people": [{"pose_keypoints_2d": [1.0] * 57}]}, "got 57"),
    ({"people": [{"pose_keypoints_2d": ["1"] * 54}]}, "flat list of numbers"),
    ({"people": [{"pose_keypoints_2d": [True] * 54}]}, "flat list of numbers"),
    ({"people": [{"pose_keypoints_2d": [[1.0, 2.0, 3.0]] * 18}]}, "flat list of numbers"),
    ({"people": ["oops"]}, "pose_keypoints_2d"),
])
def test_openpose_malformed(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pose(data)


def test_openpose_bad_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_pose(broken)
    with pytest.raises(ValueError, match=r"\.json"):
        parse_pose(tmp_path / "pose.csv")
    with pytest.raises(FileNotFoundError):
        parse_pose(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="person 3"):
        parse_openpose(_openpose([1.0] * 54), person=3)


# ------------------------------------------------------------------ other keypoint formats
def test_coco17_maps_to_coco18_with_a_neck(rng: np.random.Generator) -> None:
    coco17 = _random_pose(rng, 17)
    expected = np.full((18, 2), -1.0)
    # COCO-17 index of each COCO-18 joint, written out (not taken from the module's table).
    for c18, c17 in {0: 0, 2: 6, 3: 8, 4: 10, 5: 5, 6: 7, 7: 9, 8: 12, 9: 14, 10: 16, 11: 11, 12: 13, 13: 15,
                     14: 2, 15: 1, 16: 4, 17: 3}.items():
        expected[c18] = coco17[c17, :2]
    expected[1] = (coco17[5, :2] + coco17[6, :2]) / 2  # neck = mid-shoulders
    for given in (coco17, coco17[:, :2], {"keypoints": coco17.ravel().tolist()},
                  [{"keypoints": coco17.ravel().tolist(), "score": 0.9}],
                  {"annotations": [{"keypoints": coco17.ravel().tolist()}]},
                  {"people": [{"pose_keypoints_2d": coco17.ravel().tolist()}]}):
        np.testing.assert_allclose(parse_pose(given), expected, rtol=1e-6, err_msg=str(type(given)))
    # COCO's visibility flag 0 (not labelled) is missing; one shoulder missing: no neck.
    coco17[6, 2] = 0
    out = parse_pose(coco17)
    np.testing.assert_array_equal(out[2], [-1, -1])
    np.testing.assert_array_equal(out[1], [-1, -1])


def test_mediapipe33_pixels(rng: np.random.Generator) -> None:
    mp = np.concatenate([rng.uniform(10, 300, (33, 2)), rng.uniform(-1, 1, (33, 1)), np.ones((33, 1))], 1)
    mp[27, 3] = 0.0  # left ankle invisible
    out = parse_pose(mp)  # (x, y, z, visibility)
    np.testing.assert_allclose(out[0], mp[0, :2], rtol=1e-6)
    np.testing.assert_allclose(out[2], mp[12, :2], rtol=1e-6)  # right shoulder
    np.testing.assert_allclose(out[1], (mp[11, :2] + mp[12, :2]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(out[13], [-1, -1])
    np.testing.assert_array_equal(parse_pose(mp[:, [0, 1, 3]]), out)
    np.testing.assert_array_equal(parse_pose({"keypoints": mp.ravel().tolist()}), out)
    with pytest.raises(ValueError, match="normalised.*blazepose_to_coco18"):
        parse_pose(np.concatenate([rng.uniform(0, 1, (33, 2)), np.ones((33, 1))], 1))


def test_missing_neck_is_synthesised_for_openpose_too(rng: np.random.Generator) -> None:
    pose = _random_pose(rng)
    pose[1] = 0.0
    out = parse_pose(_openpose(pose.ravel().tolist()))
    np.testing.assert_allclose(out[1], (pose[2, :2] + pose[5, :2]) / 2, rtol=1e-6)


@pytest.mark.parametrize("count", [34, 50, 57, 60, 66, 100])
def test_unknown_json_length_names_the_formats(count: int) -> None:
    with pytest.raises(ValueError, match=rf"51 numbers \(COCO-17.*54 numbers \(COCO-18\).*BODY_25.*MediaPipe-33.*got {count}"):
        parse_pose({"keypoints": [1.0] * count})


# ------------------------------------------------------------------ several people
def _person_at(cx: float, cy: float, height: float) -> np.ndarray:
    """A standing COCO-18 skeleton of ``height`` pixels centred at (cx, cy)."""
    from pyposert.poses import STANDING_POSE

    unit = (STANDING_POSE - STANDING_POSE.mean(0)) / np.ptp(STANDING_POSE[:, 1])
    return (unit * height + (cx, cy)).astype(np.float32)


def test_person_choice_largest_center_index() -> None:
    from pyposert.poses import parse_people, select_person

    small_centre = _person_at(320, 240, 100)
    big_left = _person_at(100, 250, 300)
    seated = _person_at(560, 300, 150)
    data = {"people": [{"pose_keypoints_2d": np.concatenate([p, np.ones((18, 1))], 1).ravel().tolist()}
                       for p in (seated, big_left, small_centre)]}
    people = parse_people(data)
    assert len(people) == 3
    assert select_person(people, "largest") == 1
    assert select_person(people, "center", image_size=(480, 640)) == 2
    assert select_person(people, 2) == 2
    np.testing.assert_allclose(parse_pose(data), big_left, atol=1e-4)  # default: the largest
    np.testing.assert_allclose(parse_pose(data, person="center", image_size=(480, 640)), small_centre, atol=1e-4)
    np.testing.assert_allclose(parse_pose(np.stack([seated, small_centre]), person="1"), small_centre, atol=1e-4)
    with pytest.raises(ValueError, match="person 3 requested.*has 3"):
        parse_pose(data, person=3)
    with pytest.raises(ValueError, match="'largest', 'center' or an index"):
        parse_pose(data, person="tallest")


def test_tracking_keeps_the_same_person() -> None:
    from pyposert.poses import track_person

    a, b = _person_at(200, 240, 200), _person_at(420, 240, 260)
    # The estimator lists them in any order, and the tracked one moved a little.
    assert track_person([b, a + 7], a) == 1
    assert track_person([a + 7, b], a) == 0
    # Larger people do not steal the track.
    assert track_person([_person_at(260, 240, 400), a - 5], a) == 1


# ------------------------------------------------------------------ the skeleton drawing
def test_draw_skeleton_draws_present_limbs_and_joints_only() -> None:
    from pyposert.poses import SKELETON_LIMBS, draw_skeleton

    assert len(SKELETON_LIMBS) == 17 and len(set(SKELETON_LIMBS)) == 17
    blank = draw_skeleton(None, (40, 30))
    assert blank.shape == (40, 30, 3) and blank.dtype == np.uint8 and not blank.any()
    kp = np.full((18, 2), -1.0, np.float32)
    kp[1], kp[2], kp[3] = (15, 5), (15, 25), (float("nan"), 30)  # neck, r-shoulder; r-elbow missing (NaN)
    canvas = np.zeros((40, 30, 3), np.uint8)
    out = draw_skeleton(kp, canvas, thickness=2, joint_radius=1)
    assert out is canvas  # drawn in place
    assert out[15, 15].tolist() == [0, 200, 255]  # the neck -> r-shoulder limb (x=15, y=5..25), BGR orange
    assert out[5, 15].tolist() == [255, 255, 255] and out[25, 15].tolist() == [255, 255, 255]  # joints on top
    assert not out[30:].any()  # nothing towards the missing elbow
    no_joints = draw_skeleton(kp, (40, 30), joint_colour=None, thickness=2)
    assert no_joints[5, 15].tolist() == [0, 200, 255]


def test_draw_skeleton_takes_one_colour_per_limb_and_per_joint() -> None:
    from pyposert.poses import draw_skeleton

    kp = np.full((18, 2), -1.0, np.float32)
    kp[0], kp[1], kp[8] = (10, 2), (10, 12), (10, 37.4)  # nose, neck, r-hip (rounded to y=37)
    limbs = ((1, 0), (1, 8))
    img = draw_skeleton(kp, np.full((40, 20, 3), 255, np.uint8), limb_colour=[(1, 2, 3), (4, 5, 6)],
                        joint_colour=[(7, 7, j) for j in range(18)], thickness=2, joint_radius=1, limbs=limbs)
    assert img[7, 10].tolist() == [1, 2, 3] and img[25, 10].tolist() == [4, 5, 6]
    assert img[37, 10].tolist() == [7, 7, 8] and img[12, 10].tolist() == [7, 7, 1]
    assert img[39, 10].tolist() == [255, 255, 255]  # the canvas outside the drawing is kept
