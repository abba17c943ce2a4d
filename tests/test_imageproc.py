"""pyposert.ops.to_model_input / from_model_output / letterbox on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

from pyposert import ops
from reference import from_model_output_ref, heatmaps_ref, to_model_input_ref

SIZES = [(256, 176), (480, 640), (1080, 720), (3, 2), (1, 1), (7, 300), (300, 7), (256, 176 * 2)]


def smooth_image(rng, h, w):
    """Low-frequency content (gradients + one sinusoid), so resampling round trips are tight."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi, 3)
    img = np.stack([127 + 100 * np.sin(2 * np.pi * (x / max(w, 2) + y / max(h, 2)) * 0.5 + p) for p in phase], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("src", SIZES)
@pytest.mark.parametrize("model", [(64, 44), (256, 176)])
def test_letterbox_geometry(src, model):
    box = ops.letterbox(*src, *model)
    scale = min(model[0] / src[0], model[1] / src[1])
    assert box.box_width == min(max(round(src[1] * scale), 1), model[1])
    assert box.box_height == min(max(round(src[0] * scale), 1), model[0])
    assert box.box_x == (model[1] - box.box_width) // 2 and box.box_y == (model[0] - box.box_height) // 2
    assert box.box_width == model[1] or box.box_height == model[0]  # fills one axis


@pytest.mark.parametrize("src", SIZES)
@pytest.mark.parametrize("bgr", [True, False])
def test_to_model_input_matches_reference(rng, src, bgr):
    image = rng.integers(0, 256, (*src, 3), dtype=np.uint8)
    got, box = ops.to_model_input(image, 64, 44, bgr=bgr, pad_value=0.25)
    assert got.shape == (3, 64, 44) and got.dtype == np.float32
    np.testing.assert_allclose(got, to_model_input_ref(image, box, bgr=bgr, pad_value=0.25), rtol=0, atol=2e-5)


def test_to_model_input_float16(rng):
    image = rng.integers(0, 256, (100, 70, 3), dtype=np.uint8)
    got, box = ops.to_model_input(image, 64, 44, dtype="float16")
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float64), to_model_input_ref(image, box), rtol=0, atol=1e-3)


def test_row_padded_crops_are_accepted(rng):
    frame = rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)
    crop = frame[10:110, 30:100]
    assert not crop.flags.c_contiguous
    got, box = ops.to_model_input(crop, 64, 44)
    np.testing.assert_allclose(got, to_model_input_ref(np.ascontiguousarray(crop), box), atol=2e-5)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_same_size_round_trip_is_exact(rng, dtype):
    image = rng.integers(0, 256, (64, 44, 3), dtype=np.uint8)
    x, box = ops.to_model_input(image, 64, 44, dtype=dtype)
    assert np.array_equal(ops.from_model_output(x, box), image)
    assert np.array_equal(ops.from_model_output(x, box, unletterbox=False, bgr=False), image[..., ::-1])


@pytest.mark.parametrize("src", [(512, 300), (300, 512), (100, 100)])
def test_letterbox_round_trip(rng, src):
    """Portrait, landscape, square: in and back out differs only by resampling blur."""
    image = smooth_image(rng, *src)
    x, box = ops.to_model_input(image, 256, 176)
    back = ops.from_model_output(x, box)
    assert back.shape == image.shape
    err = np.abs(back.astype(np.int16) - image.astype(np.int16))
    assert err.mean() < 2.0, err.mean()


@pytest.mark.parametrize("src", [(1, 1), (3, 2), (6, 4), (2, 9)])
def test_tiny_image_round_trip(src):
    """Tiny photos blow up ~40x and come back: constant colour exactly, a ramp without shift
    (its error stays well below that of a one-pixel displacement)."""
    flat = np.full((*src, 3), (12, 200, 77), np.uint8)
    x, box = ops.to_model_input(flat, 256, 176)
    assert np.array_equal(ops.from_model_output(x, box), flat)
    y, xx = np.mgrid[0:src[0], 0:src[1]]
    ramp = np.stack([40 + 20 * y + 10 * xx, 200 - 15 * xx, 30 + 25 * y], -1).astype(np.uint8)
    x, box = ops.to_model_input(ramp, 256, 176)
    err = np.abs(ops.from_model_output(x, box).astype(np.int16) - ramp).mean()
    shifted = np.abs(np.diff(ramp.astype(np.int16), axis=0)).mean() if src[0] > 1 else 0.0
    shifted = max(shifted, np.abs(np.diff(ramp.astype(np.int16), axis=1)).mean() if src[1] > 1 else 0.0)
    assert err <= 0.5 * shifted, (err, shifted)


@pytest.mark.parametrize("src", SIZES)
@pytest.mark.parametrize("unletterbox", [True, False])
def test_from_model_output_matches_reference(rng, src, unletterbox):
    box = ops.letterbox(*src, 64, 44)
    output = rng.uniform(-1.2, 1.2, (3, 64, 44)).astype(np.float32)
    got = ops.from_model_output(output, box, unletterbox=unletterbox)
    ref = from_model_output_ref(output, box, unletterbox=unletterbox)
    assert got.shape == ref.shape and got.dtype == np.uint8
    diff = np.abs(got.astype(np.int16) - ref.astype(np.int16))
    # float32 vs float64 may round a value sitting on a .5 boundary differently.
    # float32 vs float64 interpolation may put a value on the other side of a .5 rounding
    # boundary (about 1 value in 1000 here); never more than one level.
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99


def test_quantisation_clamps_and_maps_nan_to_zero():
    box = ops.letterbox(1, 4, 1, 4)
    output = np.array([[[-5.0, 5.0, np.nan, 0.0]]] * 3, np.float32)
    got = ops.from_model_output(output, box, bgr=False)
    assert got[0, :, 0].tolist() == [0, 255, 0, 128]


def test_keypoint_map_follows_the_pixels(rng):
    """A bright dot in the photo lands where Letterbox.to_model maps its keypoint."""
    h, w = 400, 300
    for _ in range(5):
        image = np.zeros((h, w, 3), np.uint8)
        x, y = int(rng.integers(20, w - 20)), int(rng.integers(20, h - 20))
        image[y - 6:y + 7, x - 6:x + 7] = 255
        model, box = ops.to_model_input(image, 256, 176, pad_value=-1.0)
        mx, my = box.to_model(np.array([[x, y]], np.float32))[0]
        ys, xs = np.mgrid[0:256, 0:176]
        weight = model[0] + 1.0
        cy, cx = (weight * ys).sum() / weight.sum(), (weight * xs).sum() / weight.sum()
        assert abs(cx - mx) < 0.05 and abs(cy - my) < 0.05


def test_keypoint_round_trip_keeps_missing(rng):
    box = ops.letterbox(720, 1280, 256, 176)
    kp = rng.uniform(10, 700, (18, 3)).astype(np.float32)  # away from the clamp at 0 (see below)
    kp[3, :2] = -1
    kp[5, 0] = np.nan
    there = box.to_model(kp)
    assert (there[[3, 5], :2] == -1).all()
    np.testing.assert_allclose(box.to_image(there)[[0, 1, 2, 4]], kp[[0, 1, 2, 4]], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(there[:, 2], kp[:, 2])  # confidence untouched


def test_edge_joints_are_clamped_not_lost():
    """Pixel-centre mapping puts image column 0 at model x = 0.5 * 44 / 640 - 0.5 = -0.47 when
    downscaling 640 -> 44: the joint is present, so it is clamped to 0, not made "missing"."""
    box = ops.letterbox(480, 640, 64, 44)
    there = box.to_model(np.array([[0.0, 0.0], [-1.0, 5.0], [639.0, 479.0]], np.float32))
    assert there[0, 0] == 0.0 and there[0, 1] == pytest.approx(box.box_y + 0.5 * 33 / 480 - 0.5)
    assert there[1].tolist() == [-1.0, -1.0]
    assert (there[2] >= 0).all()
    assert (box.to_image(np.array([[0.0, 0.0]], np.float32)) >= 0).all()


def test_heatmap_scale_offset_equals_mapping_the_keypoints(rng):
    box = ops.letterbox(480, 640, 64, 44)
    # Away from the first row/column, where to_model clamps to 0 and the plain affine map does not.
    kp = np.stack([rng.uniform(12, 640, 18), rng.uniform(12, 480, 18)], -1)[None].astype(np.float32)
    direct = ops.heatmaps(kp, 64, 44, sigma=1.5, scale=box.scale, offset=box.offset)
    np.testing.assert_allclose(direct, heatmaps_ref(box.to_model(kp[0])[None], 64, 44, sigma=1.5), atol=1e-5)


@pytest.mark.parametrize("image,match", [
    (np.zeros((10, 10), np.uint8), r"image must be \[h, w, 3\] uint8.*got \[10, 10\] uint8"),
    (np.zeros((10, 10, 4), np.uint8), r"got \[10, 10, 4\] uint8"),
    (np.zeros((10, 10, 3), np.uint16), r"got \[10, 10, 3\] uint16"),
    (np.zeros((10, 10, 3), np.float32), r"got \[10, 10, 3\] float32"),
    (np.zeros((0, 10, 3), np.uint8), r"at least 1 x 1"),
    (np.zeros((10, 10, 6), np.uint8)[:, :, ::2], r"packed"),
])
def test_bad_images_raise_value_error(image, match):
    with pytest.raises(ValueError, match=match):
        ops.to_model_input(image, 64, 44)


def test_bad_model_output_raises_value_error():
    box = ops.letterbox(100, 100, 64, 44)
    with pytest.raises(ValueError, match=r"output must be \[3, 64, 44\] float32/float16 RGB, got \[3, 64, 40\]"):
        ops.from_model_output(np.zeros((3, 64, 40), np.float32), box)
    with pytest.raises(ValueError, match=r"out must be \[100, 100, 3\] uint8"):
        ops.from_model_output(np.zeros((3, 64, 44), np.float32), box, out=np.zeros((64, 44, 3), np.uint8))
    with pytest.raises(ValueError, match="height must be >= 1"):
        ops.letterbox(10, 10, 0, 44)
