"""Driving pose sources: OpenPose JSON folders, annotation CSVs (y first in the file), synthetic
motion, and video via an estimator -- all yielding COCO-18 (18, 2) (x, y), missing (-1, -1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pyposert.pose_sources import (AnnotationCsvSource, OpenPoseJsonSource, SyntheticMotionSource, VideoPoseSource,
                                   default_poses_csv, read_annotation_csv)


def _pose(rng: np.random.Generator, h: int = 64, w: int = 48) -> np.ndarray:
    return np.stack([rng.uniform(2, w - 2, 18), rng.uniform(2, h - 2, 18)], -1).astype(np.float32)


def _write_openpose(path: Path, kp: np.ndarray | None, body25: bool = False) -> None:
    if kp is None:
        path.write_text(json.dumps({"version": 1.3, "people": []}))
        return
    triplets = np.concatenate([kp, np.ones((18, 1), np.float32)], 1)
    if body25:  # insert MidHip at 8, append 6 feet points
        triplets = np.concatenate([triplets[:8], [[0, 0, 0]], triplets[8:], np.zeros((6, 3))])
    path.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": triplets.ravel().tolist()}]}))


def test_openpose_folder_coco_and_body25_in_natural_order(tmp_path: Path, rng: np.random.Generator) -> None:
    poses = [_pose(rng) for _ in range(11)]
    poses[3][5] = -1  # missing joint (negative) survives
    for i, kp in enumerate(poses):  # unpadded numbers: 10 must come after 9
        _write_openpose(tmp_path / f"clip_{i}_keypoints.json", None if i == 7 else kp, body25=i % 2 == 1)
    (tmp_path / "notes.json").write_text("{}")  # not a *_keypoints.json: ignored
    src = OpenPoseJsonSource(tmp_path, frame_size=(64, 48), fps=10)
    frames = list(src)
    assert [f.index for f in frames] == list(range(11))
    assert frames[7].keypoints is None
    for i, f in enumerate(frames):
        assert f.frame_size == (64, 48) and f.time_s == pytest.approx(i / 10)
        if i != 7:
            assert f.keypoints.shape == (18, 2) and f.keypoints.dtype == np.float32
            np.testing.assert_allclose(f.keypoints[(poses[i] >= 0).all(1)], poses[i][(poses[i] >= 0).all(1)],
                                       rtol=1e-6)
    assert (frames[3].keypoints[5] == -1).all()


def test_openpose_errors_name_the_file(tmp_path: Path, rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="no OpenPose"):
        OpenPoseJsonSource(tmp_path)
    with pytest.raises(ValueError, match="not found"):
        OpenPoseJsonSource(tmp_path / "nope")
    _write_openpose(tmp_path / "a_000_keypoints.json", _pose(rng))
    (tmp_path / "a_001_keypoints.json").write_text("{not json")
    with pytest.raises(ValueError, match="a_001_keypoints.json"):
        list(OpenPoseJsonSource(tmp_path))
    (tmp_path / "a_001_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 3]}]}))
    with pytest.raises(ValueError, match="a_001_keypoints.json.*54 numbers"):
        list(OpenPoseJsonSource(tmp_path))


def test_annotation_csv_swaps_y_first(tmp_path: Path) -> None:
    ys, xs = list(range(10, 28)), list(range(100, 118))
    ys[4] = -1
    csv = tmp_path / "poses.csv"
    csv.write_text("name:keypoints_y:keypoints_x\n"
                   f"a.jpg: {ys}: {xs}\n\n"
                   f"b.jpg: {[-1] * 18}: {[-1] * 18}\n")
    names, kp = read_annotation_csv(csv)
    assert names == ["a.jpg", "b.jpg"] and kp.shape == (2, 18, 2) and kp.dtype == np.float32
    assert tuple(kp[0, 0]) == (100, 10)  # (x, y)
    assert (kp[0, 4] == -1).all()
    frames = list(AnnotationCsvSource(csv, frame_size=(256, 256), fps=5))
    assert frames[0].frame_size == (256, 256) and tuple(frames[0].keypoints[1]) == (101, 11)
    assert frames[1].keypoints is None  # no joint at all: no person


def test_annotation_csv_fasion_frame_is_the_centre_crop(tmp_path: Path) -> None:
    csv = tmp_path / "fasion-annotation-x.csv"
    xs = [40, 60, 215, 216] + [100] * 14  # 216 - 40 = 176 is outside the 176-wide crop
    csv.write_text(f"name:keypoints_y:keypoints_x\na.jpg: {[50] * 18}: {xs}\n")
    (frame,) = list(AnnotationCsvSource(csv))
    assert frame.frame_size == (256, 176)
    assert tuple(frame.keypoints[0]) == (0, 50) and tuple(frame.keypoints[2]) == (175, 50)
    assert (frame.keypoints[3] == -1).all()


@pytest.mark.parametrize("body,match", [
    ("name:y:x\n", ":1: expected header"),
    ("name:keypoints_y:keypoints_x\na.jpg: [1, 2]: [3, 4]\n", ":2: expected 18"),
    ("name:keypoints_y:keypoints_x\na.jpg: [1, 2\n", ":2: expected 'name"),
    ("name:keypoints_y:keypoints_x\n", "no poses"),
])
def test_annotation_csv_malformed(tmp_path: Path, body: str, match: str) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(body)
    with pytest.raises(ValueError, match=match):
        read_annotation_csv(csv)


def test_synthetic_motion_is_smooth_and_respects_missing(tmp_path: Path) -> None:
    csv = tmp_path / "fasion-annotation-mini.csv"
    a_y, a_x = [20 + 10 * j for j in range(18)], [60 + 5 * j for j in range(18)]
    b_y, b_x = list(a_y), [x + 20 for x in a_x]
    b_y[17], b_x[17] = -1, -1  # joint 17 missing in one key pose
    csv.write_text(f"name:keypoints_y:keypoints_x\na.jpg: {a_y}: {a_x}\nb.jpg: {b_y}: {b_x}\n")
    src = SyntheticMotionSource(csv, frames=30, fps=10, seed=1, min_joints=17)
    frames = list(src)
    assert len(frames) == 30 and src.frame_size == (256, 176)
    kp = np.stack([f.keypoints for f in frames])
    assert kp.shape == (30, 18, 2) and kp.dtype == np.float32
    present = (kp >= 0).all(-1)
    assert present[:, :17].all()  # always present at both ends -> always present
    steps = np.abs(np.diff(kp[:, :17], axis=0)).max()
    assert steps <= 20 * 1.5 / 10 + 1e-3  # smoothstep peak speed 1.5x the mean over a 10-frame segment


def test_synthetic_motion_from_shared_poses() -> None:
    if not default_poses_csv().is_file():
        pytest.skip(f"shared poses not found at {default_poses_csv()}")
    frames = list(SyntheticMotionSource(frames=5, fps=25, seed=0))
    assert len(frames) == 5 and all(f.keypoints is not None and f.frame_size == (256, 176) for f in frames)
    assert all(((f.keypoints >= 0).all(-1).sum()) >= 10 for f in frames)


def _video(path: Path, n: int, fps: float = 10.0, size: tuple[int, int] = (48, 64)) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0]))
    assert writer.isOpened()
    for i in range(n):
        frame = np.full((size[0], size[1], 3), 20 * i % 255, np.uint8)
        writer.write(frame)
    writer.release()
    return path


def test_video_source_with_estimator(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _video(tmp_path / "drive.mp4", 5)
    pose = np.concatenate([_pose(rng, 48, 64), np.ones((18, 1), np.float32)], 1)
    calls = []

    def estimate(image: np.ndarray) -> np.ndarray | None:
        calls.append(image.shape)
        return None if len(calls) == 2 else pose

    src = VideoPoseSource(path, estimate)
    assert src.fps == pytest.approx(10) and not src.live
    frames = list(src)
    assert len(frames) == 5 and calls[0] == (48, 64, 3)
    assert frames[1].keypoints is None and frames[0].frame_size == (48, 64)
    np.testing.assert_allclose(frames[0].keypoints, pose[:, :2])


def test_video_source_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyposert import engine as engine_module

    monkeypatch.setattr(engine_module, "default_estimator", lambda static_image_mode=False: None)
    with pytest.raises(engine_module.NoPoseEstimator, match="needs a pose estimator"):
        VideoPoseSource(_video(tmp_path / "v.mp4", 2))
    with pytest.raises(FileNotFoundError):
        VideoPoseSource(tmp_path / "missing.mp4", lambda im: None)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(OSError, match="junk.mp4"):
        list(VideoPoseSource(junk, lambda im: None))


def test_openpose_folder_chooses_then_tracks_one_person(tmp_path: Path) -> None:
    """Two people, listed in a different order in every file: the chosen person is followed
    (by position), though the other is larger in some frames."""
    import json

    from pyposert.poses import STANDING_POSE

    def at(x: float, y: float, scale: float) -> np.ndarray:
        return (STANDING_POSE - STANDING_POSE.mean(0)) * scale + (x, y)

    folder = tmp_path / "poses"
    folder.mkdir()
    walker = [at(300 + 10 * i, 360, 1.0 + 0.05 * i) for i in range(8)]  # grows from 1.0 to 1.35
    other = [at(900, 360, 1.2) for _ in range(8)]
    for i in range(8):
        people = [walker[i], other[i]] if i % 2 else [other[i], walker[i]]
        entries = [{"pose_keypoints_2d": np.concatenate([p, np.ones((18, 1))], 1).ravel().tolist()} for p in people]
        (folder / f"f_{i:03d}_keypoints.json").write_text(json.dumps({"people": entries}))
    # "largest" picks the other person in frame 0 (1.2 > 1.0) and keeps them.
    got = [f.keypoints for f in OpenPoseJsonSource(folder, (720, 1280))]
    assert all(np.allclose(g, o, atol=1e-3) for g, o in zip(got, other))
    # index 1 in frame 0 is the walker; tracked through the swaps though they outgrow the other.
    got = [f.keypoints for f in OpenPoseJsonSource(folder, (720, 1280), person=1)]
    assert all(np.allclose(g, w, atol=1e-3) for g, w in zip(got, walker))
    # "center" of a 720 x 1280 frame (x = 640): |900 - 640| = 260 < |300 - 640| = 340, the other one.
    got = [f.keypoints for f in OpenPoseJsonSource(folder, (720, 1280), person="center")]
    assert np.allclose(got[0], other[0], atol=1e-3)
    with pytest.raises(ValueError, match="person must be"):
        OpenPoseJsonSource(folder, person="tallest")


def test_estimator_reporting_several_people_is_tracked(tmp_path: Path) -> None:
    """A video whose estimator reports two people (an array [P, 18, 3]) in swapping order."""
    import cv2

    from pyposert.poses import STANDING_POSE

    video = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(5):
        writer.write(np.zeros((240, 320, 3), np.uint8))
    writer.release()
    a = np.concatenate([STANDING_POSE * 0.5 + (10, 0), np.ones((18, 1))], 1)
    b = np.concatenate([STANDING_POSE * 0.8 + (150, 20), np.ones((18, 1))], 1)
    calls = {"n": 0}

    def estimate(image: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        return np.stack([a, b] if calls["n"] % 2 else [b, a]).astype(np.float32)

    got = [f.keypoints for f in VideoPoseSource(video, estimate, person="0")]
    assert len(got) == 5 and all(np.allclose(g, a[:, :2]) for g in got)
    got = [f.keypoints for f in VideoPoseSource(video, estimate)]  # largest: b
    assert all(np.allclose(g, b[:, :2]) for g in got)
