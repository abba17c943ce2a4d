"""Pose estimators (pyposert.estimators): BlazePose -> COCO-18 mapping on hand-made landmarks,
the "no person in the source photo" errors of the Engine and ``pyposert retarget``, and -- only
where the ``pyposert[pose]`` extra is installed -- the real MediaPipe estimator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest

from pyposert import engine as engine_module
from pyposert.estimators import (BLAZEPOSE_TO_COCO18, MediaPipePoseEstimator, blazepose_to_coco18,
                                 mediapipe_available)
from pyposert.poses import JOINT_NAMES
from stub_models import heatmap_max_onnx

H, W = 32, 24  # stub model frame

# BlazePose landmark names by index (mediapipe.solutions.pose.PoseLandmark), written out here
# so the mapping is checked by name, not against itself.
BLAZEPOSE_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
COCO_TO_BLAZEPOSE_NAME = {
    "nose": "nose", "r_shoulder": "right_shoulder", "r_elbow": "right_elbow", "r_wrist": "right_wrist",
    "l_shoulder": "left_shoulder", "l_elbow": "left_elbow", "l_wrist": "left_wrist", "r_hip": "right_hip",
    "r_knee": "right_knee", "r_ankle": "right_ankle", "l_hip": "left_hip", "l_knee": "left_knee",
    "l_ankle": "left_ankle", "r_eye": "right_eye", "l_eye": "left_eye", "r_ear": "right_ear", "l_ear": "left_ear",
}


def _landmarks(rng: np.random.Generator, columns: int = 4) -> np.ndarray:
    """(33, columns) normalised landmarks strictly inside the image, all visible."""
    lm = np.empty((33, columns))
    lm[:, 0] = rng.uniform(0.05, 0.95, 33)
    lm[:, 1] = rng.uniform(0.05, 0.95, 33)
    if columns >= 3:
        lm[:, 2] = rng.uniform(-0.5, 0.5, 33)  # z: ignored
    if columns == 4:
        lm[:, 3] = rng.uniform(0.6, 1.0, 33)
    return lm


# ------------------------------------------------------------------ the mapping
def test_mapping_names_left_and_right() -> None:
    assert len(BLAZEPOSE_TO_COCO18) == len(JOINT_NAMES) == 18
    for joint, index in enumerate(BLAZEPOSE_TO_COCO18):
        name = JOINT_NAMES[joint]
        if name == "neck":
            assert index is None
        else:
            assert BLAZEPOSE_NAMES[index] == COCO_TO_BLAZEPOSE_NAME[name], name


def test_pixels_confidence_and_neck(rng: np.random.Generator) -> None:
    h, w = 480, 320
    lm = _landmarks(rng)
    out = blazepose_to_coco18(lm, (h, w))
    assert out.dtype == np.float32 and out.shape == (18, 3)
    for joint, index in enumerate(BLAZEPOSE_TO_COCO18):
        if index is None:
            continue
        # (x, y): x = column from the normalised x times the width; pixel centres at integers.
        np.testing.assert_allclose(out[joint], (lm[index, 0] * w - 0.5, lm[index, 1] * h - 0.5, lm[index, 3]),
                                   rtol=1e-5, atol=1e-3)
    r_sh, l_sh = lm[12], lm[11]
    np.testing.assert_allclose(out[1, :2], ((r_sh[0] + l_sh[0]) / 2 * w - 0.5, (r_sh[1] + l_sh[1]) / 2 * h - 0.5),
                               rtol=1e-5, atol=1e-3)
    assert out[1, 2] == pytest.approx(min(r_sh[3], l_sh[3]))


def test_left_right_on_a_person_facing_the_camera() -> None:
    """Facing the camera, the person's right side is on the image's left (small x)."""
    lm = np.full((33, 4), 0.5)
    lm[:, 3] = 1.0
    for index, name in enumerate(BLAZEPOSE_NAMES):
        if name.startswith("right_"):
            lm[index, 0] = 0.25
        elif name.startswith("left_"):
            lm[index, 0] = 0.75
    out = blazepose_to_coco18(lm, (100, 200))
    for joint, name in enumerate(JOINT_NAMES):
        if name.startswith("r_"):
            assert out[joint, 0] == pytest.approx(49.5), name
        elif name.startswith("l_"):
            assert out[joint, 0] == pytest.approx(149.5), name
    assert out[1, 0] == pytest.approx(99.5)  # neck between the shoulders


def test_low_visibility_and_outside_are_missing(rng: np.random.Generator) -> None:
    lm = _landmarks(rng)
    lm[14, 3] = 0.2  # right elbow barely visible
    lm[27, 3] = 0.49  # left ankle just under the threshold
    lm[0, 3] = 0.5  # nose exactly at it: kept
    lm[16, 0] = 1.2  # right wrist beyond the right edge
    lm[25, 1] = -0.1  # left knee above the top edge
    out = blazepose_to_coco18(lm, (64, 48), min_visibility=0.5)
    for joint in (3, 13, 4, 12):  # r_elbow, l_ankle, r_wrist, l_knee
        np.testing.assert_array_equal(out[joint], (-1, -1, 0), err_msg=JOINT_NAMES[joint])
    assert (out[0, :2] >= 0).all() and out[0, 2] == pytest.approx(0.5)
    # One shoulder missing: no neck.
    lm[11, 3] = 0.1
    out = blazepose_to_coco18(lm, (64, 48))
    np.testing.assert_array_equal(out[1], (-1, -1, 0))
    np.testing.assert_array_equal(out[5], (-1, -1, 0))
    assert (out[2, :2] >= 0).all()
    # A stricter threshold drops more.
    assert (blazepose_to_coco18(lm, (64, 48), min_visibility=0.99)[:, 2] == 0).sum() > (out[:, 2] == 0).sum()


def test_edges_stay_inside_the_image() -> None:
    lm = np.full((33, 2), 0.5)
    lm[0] = (0.0, 0.0)  # the outer corner: clamped onto pixel (0, 0), not "missing"
    lm[12] = (1.0, 1.0)
    out = blazepose_to_coco18(lm, (10, 20))
    np.testing.assert_allclose(out[0], (0, 0, 1))
    np.testing.assert_allclose(out[2], (19, 9, 1))


@pytest.mark.parametrize("columns", [2, 3])
def test_without_visibility_everything_inside_is_present(rng: np.random.Generator, columns: int) -> None:
    lm = _landmarks(rng, columns)
    out = blazepose_to_coco18(lm, (50, 40), min_visibility=0.9)
    assert (out[:, 2] == 1.0).all() and (out[:, :2] >= 0).all()
    np.testing.assert_allclose(out[15, :2], (lm[2, 0] * 40 - 0.5, lm[2, 1] * 50 - 0.5), rtol=1e-5)  # l_eye


@pytest.mark.parametrize("bad,message", [
    (np.zeros((17, 4)), r"expected \(33, 2\|3\|4\).*got shape \(17, 4\)"),
    (np.zeros((33, 5)), r"got shape \(33, 5\)"),
    (np.zeros(33 * 4), r"got shape \(132,\)"),
    ([["a", "b"]] * 33, r"expected \(33, 2\|3\|4\) numbers, got list"),
])
def test_wrong_landmarks_raise(bad: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        blazepose_to_coco18(bad, (10, 10))


def test_bad_image_size_and_nan_raise() -> None:
    with pytest.raises(ValueError, match=r"image_size must be \(h, w\).*got \(10,\)"):
        blazepose_to_coco18(np.zeros((33, 2)), (10,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"image_size.*got \(0, 5\)"):
        blazepose_to_coco18(np.zeros((33, 2)), (0, 5))
    lm = np.full((33, 4), 0.5)
    lm[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite x / y at BlazePose landmarks \[7\]"):
        blazepose_to_coco18(lm, (10, 10))


# ------------------------------------------------------------------ without mediapipe
@pytest.mark.skipif(mediapipe_available(), reason="mediapipe is installed here")
def test_missing_mediapipe_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ImportError, match=r'pip install "pyposert\[runtime,pose\]" in its own virtual environment'):
        MediaPipePoseEstimator()
    assert engine_module.default_estimator() is None
    from pyposert.pose_sources import VideoPoseSource

    video = _video(tmp_path / "v.mp4")
    with pytest.raises(ValueError, match=r"needs a pose estimator.*pyposert\[runtime,pose\]"):
        VideoPoseSource(video)


def _video(path: Path, n: int = 2) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (32, 24))
    for i in range(n):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    return path


# ------------------------------------------------------------------ no person in the source photo
@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return heatmap_max_onnx(tmp_path_factory.mktemp("stub") / "stub.onnx", H, W)


class CountingEstimator:
    """Returns ``result`` for every image; counts calls and closes."""

    def __init__(self, result: Optional[np.ndarray]) -> None:
        self.result, self.calls, self.closed = result, 0, 0

    def __call__(self, image_bgr: np.ndarray) -> Optional[np.ndarray]:
        self.calls += 1
        return self.result

    def close(self) -> None:
        self.closed += 1


@pytest.mark.parametrize("result", [None, np.full((18, 3), (-1.0, -1.0, 0.0))], ids=["none", "all_missing"])
def test_engine_source_without_a_person(stub: Path, result: Optional[np.ndarray]) -> None:
    from pyposert import Engine

    estimator = CountingEstimator(result)
    engine = Engine(stub, pose_estimator=estimator, threads=1)
    photo = np.full((40, 30, 3), 90, np.uint8)
    with pytest.raises(ValueError, match=r"no person found in the source photo.*--source-pose"):
        engine.source(photo)
    with pytest.raises(ValueError, match=r"no person found in the source photo"):
        engine.run(photo, np.full((18, 2), 10.0))
    assert estimator.calls == 2
    pose = np.full((18, 2), 10.0, np.float32)
    assert engine.run(photo, pose, source_pose=pose).shape == (40, 30, 3)  # still usable
    engine.close()
    assert estimator.closed == 0  # the caller's estimator is the caller's to close


def test_default_estimator_is_made_lazily_and_closed(stub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyposert import Engine

    made: list[tuple[bool, CountingEstimator]] = []
    pose = np.concatenate([np.full((18, 2), 12.0), np.ones((18, 1))], 1)

    def fake_default(static_image_mode: bool = False) -> CountingEstimator:
        made.append((static_image_mode, CountingEstimator(pose)))
        return made[-1][1]

    monkeypatch.setattr(engine_module, "default_estimator", fake_default)
    engine = Engine(stub, threads=1)
    assert made == []  # nothing built until a photo needs it
    photo = np.full((40, 30, 3), 90, np.uint8)
    engine.source(photo)
    engine.source(photo)
    assert len(made) == 1 and made[0][0] is True and made[0][1].calls == 2  # photos: static image mode
    engine.close()
    assert made[0][1].closed == 1


def test_cli_retarget_without_a_person(stub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    from pyposert.cli import main

    monkeypatch.setattr(engine_module, "default_estimator", lambda static_image_mode=False: CountingEstimator(None))
    photo = tmp_path / "empty_room.png"
    cv2.imwrite(str(photo), np.full((40, 30, 3), 200, np.uint8))
    folder = tmp_path / "poses"
    folder.mkdir()
    kp = np.concatenate([np.full((18, 2), 8.0), np.ones((18, 1))], 1)
    (folder / "f_000_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": kp.ravel().tolist()}]}))
    out = tmp_path / "out.mp4"
    code = main(["retarget", "--source", str(photo), "--driving", str(folder), "--model", str(stub),
                 "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "no person found in the source photo" in err and "--source-pose" in err
    # Without any estimator the message says how to get one.
    monkeypatch.setattr(engine_module, "default_estimator", lambda static_image_mode=False: None)
    code = main(["retarget", "--source", str(photo), "--driving", str(folder), "--model", str(stub),
                 "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "--source-pose FILE" in err and "pyposert[runtime,pose]" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ the real estimator (extra installed)
@pytest.mark.skipif(not mediapipe_available(),
                    reason='mediapipe is not installed (the optional pose extra: pip install "pyposert[runtime,pose]" '
                           'in its own virtual environment)')
def test_mediapipe_estimator_on_the_demo_photo() -> None:
    """On the demo photo the estimator must find the person where its annotated pose says
    (pyposert/data/demo/person_pose.json, left/right included); on a flat grey image, nobody."""
    import cv2

    from pyposert.poses import parse_pose

    demo = Path(__file__).resolve().parents[1] / "pyposert" / "data" / "demo"
    with MediaPipePoseEstimator(static_image_mode=True) as estimator:
        assert estimator(np.full((256, 176, 3), 128, np.uint8)) is None
        if not (demo / "person.png").is_file() or not (demo / "person_pose.json").is_file():
            pytest.skip(f"no annotated photo of a person to run on in {demo}")
        photo = cv2.imread(str(demo / "person.png"), cv2.IMREAD_COLOR)
        keypoints = estimator(photo)
    assert keypoints is not None and keypoints.shape == (18, 3) and keypoints.dtype == np.float32
    reference = parse_pose(json.loads((demo / "person_pose.json").read_text()))
    both = (keypoints[:, 2] > 0) & (reference >= 0).all(-1)
    assert both.sum() >= 12
    error = np.linalg.norm(keypoints[both, :2] - reference[both], axis=-1)
    h = photo.shape[0]
    # Annotations and BlazePose disagree by a few pixels on a 256-pixel person; swapped
    # left/right limbs would be off by the shoulder width (~40 px here).
    assert np.median(error) < 0.03 * h and error.max() < 0.08 * h, dict(zip(np.flatnonzero(both), error.round(1)))
