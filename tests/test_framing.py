"""Photo framing (pyposert.framing) and its use by the Engine: the crop frames the person at the
model's aspect, keypoints map exactly as pixels move, results are pasted back with the rest of
the photo untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyposert.framing import BOTTOM_MARGIN, TOP_MARGIN, Frame, frame_person, full_frame
from pyposert.poses import STANDING_POSE
from stub_models import heatmap_max_onnx

H, W = 32, 24


def _person(scale: float, at: tuple[float, float]) -> np.ndarray:
    """STANDING_POSE (a 256 x 176 frame's person) scaled and moved so its top-left joint box
    corner is at ``at`` = (x, y)."""
    kp = (STANDING_POSE - STANDING_POSE.min(0)) * scale + np.float32(at)
    return kp.astype(np.float32)


@pytest.mark.parametrize("image_size, scale, at", [((512, 512), 0.6, (300.0, 100.0)), ((720, 1280), 1.3, (40.0, 10.0)),
                                                   ((256, 176), 1.0, (52.0, 34.0)), ((100, 900), 0.3, (880.0, 40.0))])
def test_frame_fits_the_person_at_the_model_aspect(image_size: tuple[int, int], scale: float,
                                                   at: tuple[float, float]) -> None:
    kp = _person(scale, at)
    f = frame_person(kp, image_size, (256, 176))
    assert abs(f.width / f.height - 176 / 256) <= 1.0 / f.height  # model aspect, to the pixel
    box_h = np.ptp(kp[:, 1]) + 1
    assert f.height == pytest.approx(box_h * (1 + TOP_MARGIN + BOTTOM_MARGIN), abs=1.0)
    inside = frame_person(kp, image_size, (256, 176)).to_crop(kp)
    assert (inside >= 0).all() and (inside[:, 0] < f.width).all() and (inside[:, 1] < f.height).all()
    # The margins' proportions: more room below the ankles than above the head.
    top, bottom = inside[:, 1].min(), f.height - 1 - inside[:, 1].max()
    assert top == pytest.approx(box_h * TOP_MARGIN, abs=1.0) and bottom == pytest.approx(box_h * BOTTOM_MARGIN, abs=1.5)


def test_cut_pads_outside_and_maps_pixels_like_keypoints(rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    f = Frame(-7, 20, 30, 50, 60, 80)  # leaves the photo at the left and the bottom
    crop = f.cut(image)
    assert crop.shape == (50, 30, 3)
    np.testing.assert_array_equal(crop[:40, 7:], image[20:60, 0:23])
    np.testing.assert_array_equal(crop[:40, :7], np.repeat(image[20:60, :1], 7, axis=1))  # edge repeated
    np.testing.assert_array_equal(crop[40:], np.repeat(crop[39:40], 10, axis=0))
    kp = np.float32([[0.0, 20.0], [22.25, 59.5], [5.5, 10.0], [-1, -1]])
    mapped = f.to_crop(kp)
    np.testing.assert_array_equal(mapped[:2], kp[:2] + np.float32([7, -20]))
    np.testing.assert_array_equal(mapped[2:], -1.0)  # above the frame: missing; missing stays missing
    np.testing.assert_array_equal(f.to_image(mapped[:2]), kp[:2])  # exact, both ways
    for x, y in ((0, 20), (22, 59), (15, 33)):
        cx, cy = f.to_crop(np.float32([[x, y]]))[0]
        np.testing.assert_array_equal(crop[int(cy), int(cx)], image[y, x])
    whole = full_frame((60, 80))
    assert whole.is_whole and whole.cut(image) is not image and np.shares_memory(whole.cut(image), image)


def test_paste_leaves_the_rest_untouched_and_fades_inner_edges(rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    f = Frame(-5, 10, 40, 60, 60, 80)  # left and bottom beyond the photo; top and right inside
    crop = np.full((60, 40, 3), 255, np.uint8)
    out = f.paste(image, crop, feather=0.1)  # a 4-pixel ramp
    outside = np.ones((60, 80), bool)
    outside[10:60, 0:35] = False
    np.testing.assert_array_equal(out[outside], image[outside])
    np.testing.assert_array_equal(out[20:60, 0:31], 255)  # deep inside and along the photo's own borders: the crop
    assert (out[10, 10:30] < 255).any() and (out[20:50, 34] < 255).any()  # inner edges fade in
    hard = f.paste(image, crop, feather=0.0)
    np.testing.assert_array_equal(hard[10:60, 0:35], 255)
    np.testing.assert_array_equal(image, image.copy())  # the input is not modified


def test_few_joints_use_the_whole_photo() -> None:
    kp = np.full((18, 2), -1.0, np.float32)
    kp[0] = (10, 10)
    assert frame_person(kp, (50, 40), (32, 24)).is_whole


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from pyposert import Engine

    # required_joints=(): single-joint target poses paint where one joint lands.
    return Engine(heatmap_max_onnx(tmp_path_factory.mktemp("stub") / "stub.onnx", H, W), backend="onnxruntime",
                  threads=1, required_joints=())


def test_engine_frames_by_default(engine: Any, rng: np.random.Generator) -> None:
    """A small person in a big photo: framed, the person fills the model frame; target joints
    land where they belong in the photo; outside the frame the photo is untouched."""
    image = rng.integers(0, 256, (400, 500, 3), dtype=np.uint8)
    src = _person(0.4, (300.0, 200.0))
    s = engine.source(image, src)
    assert not s.frame.is_whole and engine.framing
    assert np.ptp(s.keypoints[:, 1]) > 0.7 * H  # the person fills the frame's height
    np.testing.assert_allclose(s.to_photo(s.keypoints), src, atol=1e-3)
    off = engine.source(image, src, framing=False)
    assert off.frame.is_whole and np.ptp(off.keypoints[:, 1]) < 0.25 * H
    # Where a target joint lands: the stub paints target heatmaps onto the photo (green up).
    target = np.full((18, 2), -1.0, np.float32)
    target[4] = (340.0, 260.0)
    out = s.run(target)
    rows, cols, _, _ = s.frame.inside
    outside = np.ones((400, 500), bool)
    outside[rows, cols] = False
    np.testing.assert_array_equal(out[outside], image[outside])
    model = s.run(target, output_size="model")
    y, x = np.unravel_index(np.argmax(model[..., 1].astype(int) - s.run(np.full((18, 2), -1.0, np.float32),
                                                                         output_size="model")[..., 1]), (H, W))
    mx, my = s.to_model(target)[4]
    assert abs(x - mx) <= 0.5 and abs(y - my) <= 0.5
    # A pose given in a driving frame's pixels goes onto the photo (letterboxed), then into the frame.
    # (pixel centres kept: x_photo = (x + 0.5) / 2 - 0.5 for a frame twice the photo's size)
    driving = np.where(target >= 0, (target + 0.5) * 2 - 0.5, -1.0).astype(np.float32)
    np.testing.assert_array_equal(s.run(driving, pose_size=(800, 1000)), out)
    # The Engine-level default.
    from pyposert import Engine

    unframed = Engine(engine._model.path, backend="onnxruntime", threads=1, framing=False)
    assert unframed.source(image, src).frame.is_whole and not unframed.source(image, src, framing=True).frame.is_whole


def test_completion_frames_and_keeps_the_photo_outside_the_region(tmp_path: Path, rng: np.random.Generator) -> None:
    from pyposert import Engine
    from stub_models import completion_stub_onnx

    engine = Engine(completion_stub_onnx(tmp_path / "c.onnx", 32, 24), backend="onnxruntime", threads=1)
    photo = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    parsing = np.zeros((300, 400), np.uint8)
    pose = _person(0.35, (250.0, 150.0))
    parsing[175:205, 260:290] = 5  # a top on the person
    framed = engine.complete(photo, parsing, pose, "top", seed=3)
    whole = engine.complete(photo, parsing, pose, "top", seed=3, framing=False)
    for result in (framed, whole):
        outside = result.region == 0
        np.testing.assert_array_equal(result.images[0][outside], photo[outside])
        np.testing.assert_array_equal(result.parsings[0][outside], parsing[outside])
    np.testing.assert_array_equal(framed.region, whole.region)
    assert not np.array_equal(framed.images[0], whole.images[0])  # the network saw another picture
    # In the model frame the erased region is far bigger when framed (the person fills it).
    big = engine.complete(photo, parsing, pose, "top", seed=3, output_size="model").region.sum()
    small = engine.complete(photo, parsing, pose, "top", seed=3, output_size="model", framing=False).region.sum()
    assert big > 4 * small


def test_engine_chooses_among_estimated_people(engine: Any, rng: np.random.Generator) -> None:
    """An estimator that reports several people: Engine(person=...) chooses the photo's."""
    from pyposert import Engine

    image = rng.integers(0, 256, (400, 500, 3), dtype=np.uint8)
    small_centre, big_left = _person(0.4, (220.0, 110.0)), _person(0.9, (10.0, 20.0))
    people = np.stack([np.concatenate([p, np.ones((18, 1), np.float32)], 1) for p in (small_centre, big_left)])
    for person, expected in (("largest", big_left), ("center", small_centre), (0, small_centre), ("1", big_left)):
        e = Engine(engine._model.path, backend="onnxruntime", threads=1, pose_estimator=lambda img: people,
                   person=person)
        np.testing.assert_allclose(e.source(image).photo_keypoints, expected, atol=1e-4)
    with pytest.raises(ValueError, match="person must be"):
        Engine(engine._model.path, backend="onnxruntime", person="tallest")
