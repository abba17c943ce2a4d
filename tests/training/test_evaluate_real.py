"""evaluate-real: the mirror-pair protocol, its scores, and a run on a small real-like folder
(and on the real photos beside the checkout when they are there)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from reference import STANDING
from training.evaluate_real import DEFAULT_REAL, body_box, evaluate_real, left_region, make_pair, mirror_pose, score


def test_mirroring_swaps_sides_and_is_its_own_inverse() -> None:
    pose = STANDING.astype(np.float32).copy()
    pose[16] = -1  # a missing ear stays missing (and moves to the other side's slot)
    mirrored = mirror_pose(pose, 176)
    assert mirrored[2, 0] == 175 - pose[5, 0] and mirrored[5, 0] == 175 - pose[2, 0]  # shoulders swap
    assert (mirrored[17] == -1).all() and (mirrored[16] >= 0).all()
    np.testing.assert_array_equal(mirror_pose(mirrored, 176), pose)


def test_body_box_holds_every_joint_and_stays_inside() -> None:
    x0, y0, x1, y1 = body_box(STANDING.astype(np.float32), 256, 176)
    assert 0 <= x0 <= STANDING[:, 0].min() and STANDING[:, 0].max() < x1 <= 176
    assert 0 <= y0 <= STANDING[:, 1].min() and STANDING[:, 1].max() < y1 <= 256


def write_real_folder(root: Path, rng: np.random.Generator) -> None:
    (root / "photos").mkdir(parents=True)
    (root / "poses").mkdir()
    photo = rng.integers(0, 256, (256, 176, 3), dtype=np.uint8)
    cv2.imwrite(str(root / "photos" / "person.jpg"), photo)
    flat = np.concatenate([STANDING, np.ones((18, 1))], 1).ravel().tolist()
    (root / "poses" / "person_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))


def test_evaluate_real_writes_scores_and_a_gallery(tmp_path: Path, rng: np.random.Generator) -> None:
    write_real_folder(tmp_path / "real", rng)
    summary = evaluate_real(tmp_path / "real", [], 0, tmp_path / "out")
    assert summary["pairs"] == ["person"] and set(summary["methods"]) == {"copy", "warp"}
    copy = summary["methods"]["copy"]
    assert copy["dE"] < 1.0  # mirroring keeps the mean colour of a symmetric box
    for name in ("real.json", "real.md", "real_gallery.png"):
        assert (tmp_path / "out" / name).is_file()
    assert cv2.imread(str(tmp_path / "out" / "real_gallery.png")).shape[0] == 256


def test_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(FileNotFoundError, match="no real photos with poses"):
        evaluate_real(tmp_path, [], 0, tmp_path / "out")


@pytest.mark.skipif(not (DEFAULT_REAL / "photos").is_dir(), reason="the real photos are not beside the checkout")
def test_warp_only_beats_copying_on_real_photos(tmp_path: Path) -> None:
    """The warp alone already moves the real person to the mirrored pose: it beats copying
    the photo on SSIM in the body box and on L1, and keeps the colours (dE76 < 5)."""
    summary = evaluate_real(DEFAULT_REAL, [], 2, tmp_path)
    copy, warp = summary["methods"]["copy"], summary["methods"]["warp"]
    assert warp["ssim_body"] > copy["ssim_body"] and warp["l1"] < copy["l1"] and warp["dE"] < 5.0


def test_where_the_person_left_scores_plain_fills() -> None:
    """l1_left / flat_left: zero for the truth itself, and a flat grey fill of the region the
    person left scores (nearly) 100% plain there (the failure the score exists to catch)."""
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, (256, 176, 3), dtype=np.uint8)
    pose = STANDING.astype(np.float32).copy()
    pose[:, 0] = pose[:, 0] * 0.5 + 10  # off to the left: the mirrored person stands elsewhere
    pair = make_pair("p", photo, pose)
    left = left_region(pair)
    assert left.sum() > 500
    perfect = score(pair.truth, pair)
    assert perfect["l1_left"] == 0.0 and perfect["flat_left"] == 0.0
    grey = pair.truth.copy()
    grey[left] = 128
    filled = score(grey, pair, left)
    assert filled["flat_left"] > 0.8 and filled["l1_left"] > 0.2
