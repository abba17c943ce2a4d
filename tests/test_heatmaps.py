"""pyposert.ops.heatmaps / heatmaps_pair on the CPU against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

from pyposert import ops
from reference import heatmaps_ref


def random_keypoints(rng: np.random.Generator, batch: int, joints: int, height: int, width: int) -> np.ndarray:
    """(x, y) inside, on the borders of, and outside the canvas, plus missing joints."""
    kp = np.stack([rng.uniform(-0.3 * width, 1.3 * width, (batch, joints)),
                   rng.uniform(-0.3 * height, 1.3 * height, (batch, joints))], axis=-1)
    choice = rng.integers(0, 6, (batch, joints))
    kp[choice == 0] = -1.0                                    # annotation's "missing"
    kp[choice == 1, 0] = np.nan                               # NaN x
    kp[choice == 2] = np.stack([np.zeros((choice == 2).sum()), np.full((choice == 2).sum(), height - 1)], -1)  # corner
    kp[choice == 3, 0] = width - 1                            # right border
    return kp.astype(np.float32)


@pytest.mark.parametrize("batch", [0, 1, 3])
@pytest.mark.parametrize("height,width", [(1, 1), (17, 11), (64, 44)])
@pytest.mark.parametrize("sigma", [0.7, 6.0])
def test_gaussian_matches_reference(rng, batch, height, width, sigma):
    kp = random_keypoints(rng, batch, 18, height, width)
    got = ops.heatmaps(kp, height, width, sigma=sigma)
    assert got.shape == (batch, 18, height, width) and got.dtype == np.float32
    np.testing.assert_allclose(got, heatmaps_ref(kp, height, width, sigma=sigma), rtol=1e-5, atol=1e-6)


def test_scale_and_offset_map_the_annotation_frame(rng):
    kp = random_keypoints(rng, 2, 18, 256, 176)
    scale, offset = (0.5, 0.25), (3.0, -2.5)
    got = ops.heatmaps(kp, 64, 88, sigma=1.5, scale=scale, offset=offset)
    np.testing.assert_allclose(got, heatmaps_ref(kp, 64, 88, sigma=1.5, scale=scale, offset=offset),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("radius", [0.0, 1.0, 4.0, 7.3])
def test_disk_matches_reference_away_from_the_rim(rng, radius):
    height, width = 40, 28
    kp = random_keypoints(rng, 2, 18, height, width)
    got = ops.heatmaps(kp, height, width, mode="disk", radius=radius)
    ref = heatmaps_ref(kp, height, width, mode="disk", radius=radius)
    # float32 vs float64 may decide pixels whose distance equals the radius to ~1e-5 differently.
    py, px = np.mgrid[0:height, 0:width]
    kx, ky = kp[..., 0, None, None].astype(np.float64), kp[..., 1, None, None].astype(np.float64)
    with np.errstate(invalid="ignore"):
        on_rim = np.abs((px - kx) ** 2 + (py - ky) ** 2 - radius ** 2) < 1e-3
    assert set(np.unique(got)) <= {0.0, 1.0}
    assert np.array_equal(got[~on_rim], ref[~on_rim])


def test_disk_on_integer_keypoints_is_exact():
    kp = np.array([[[5, 5], [0, 0], [9, 3]]], np.float32)
    got = ops.heatmaps(kp, 10, 10, mode="disk", radius=2.0)
    assert np.array_equal(got, heatmaps_ref(kp, 10, 10, mode="disk", radius=2.0))
    assert got[0, 0].sum() == 13  # lattice points with x^2 + y^2 <= 4


def test_float16_output_is_the_rounded_float32_output(rng):
    kp = random_keypoints(rng, 3, 18, 64, 44)
    f32 = ops.heatmaps(kp, 64, 44, sigma=3.0)
    f16 = ops.heatmaps(kp, 64, 44, sigma=3.0, dtype=np.float16)
    assert f16.dtype == np.float16
    np.testing.assert_allclose(f16.astype(np.float32), f32, rtol=1e-3, atol=1e-7)


def test_missing_joints_give_zero_channels():
    kp = np.array([[[-1, -1], [10, -0.5], [-3, 4], [np.nan, 2], [2, np.nan], [np.inf, 1], [4, 4]]], np.float32)
    got = ops.heatmaps(kp, 16, 16, sigma=2.0)
    assert not got[0, :6].any()
    assert got[0, 6, 4, 4] == 1.0


@pytest.mark.parametrize("mode", ["gaussian", "disk"])
def test_huge_coordinates_are_safe(mode):
    big = [[1e30, 5], [5, 3.4e38], [1e9, 1e9], [np.finfo(np.float32).max, 0], [7, 7]]
    kp = np.array([big], np.float32)
    got = ops.heatmaps(kp, 12, 9, mode=mode, scale=(1e5, 1e5))
    assert np.isfinite(got).all()
    assert not got[0, :4].any()


def test_pair_writes_source_then_target(rng):
    src = random_keypoints(rng, 2, 18, 64, 44)
    tgt = random_keypoints(rng, 2, 18, 64, 44)
    pair = ops.heatmaps_pair(src, tgt, 64, 44, sigma=2.0)
    assert pair.shape == (2, 36, 64, 44)
    np.testing.assert_array_equal(pair[:, :18], ops.heatmaps(src, 64, 44, sigma=2.0))
    np.testing.assert_array_equal(pair[:, 18:], ops.heatmaps(tgt, 64, 44, sigma=2.0))


def test_out_argument_is_filled_and_returned(rng):
    kp = random_keypoints(rng, 1, 18, 20, 20)
    out = np.full((1, 18, 20, 20), 7.0, np.float32)
    assert ops.heatmaps(kp, 20, 20, out=out) is out
    np.testing.assert_allclose(out, heatmaps_ref(kp, 20, 20), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((18, 2), np.float32), r"keypoints must be \[B, K, 2\] float32.*got \[18, 2\] float32"),
    (np.zeros((1, 18, 3), np.float32), r"got \[1, 18, 3\] float32"),
    (np.zeros((1, 18, 2), np.float64), r"got \[1, 18, 2\] float64"),
    (np.zeros((1, 2, 18), np.float32).transpose(0, 2, 1), r"C-contiguous"),
    ([[[1.0, 2.0]]], r"expected a numpy array or a CUDA array.*got list"),
])
def test_bad_keypoints_raise_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        ops.heatmaps(bad, 8, 8)


@pytest.mark.parametrize("kwargs,match", [
    ({"sigma": 0.0}, "sigma must be > 0"),
    ({"sigma": float("nan")}, "sigma must be finite"),
    ({"mode": "box"}, "mode must be"),
    ({"mode": "disk", "radius": -1.0}, "radius must be >= 0"),
    ({"scale": (float("inf"), 1.0)}, "scale must be finite"),
    ({"dtype": np.int32}, "dtype must be float32 or float16"),
    ({"out": np.zeros((1, 18, 8, 9), np.float32)}, r"out must be \[1, 18, 8, 8\] float32"),
    ({"out": np.zeros((1, 18, 8, 8), np.float16)}, r"got \[1, 18, 8, 8\] float16"),
])
def test_bad_parameters_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ops.heatmaps(np.zeros((1, 18, 2), np.float32), 8, 8, **kwargs)


def test_pair_requires_matching_poses():
    with pytest.raises(ValueError, match=r"target must be \[2, 18, 2\]"):
        ops.heatmaps_pair(np.zeros((2, 18, 2), np.float32), np.zeros((1, 18, 2), np.float32), 8, 8)


def test_empty_sizes_work():
    assert ops.heatmaps(np.zeros((0, 18, 2), np.float32), 8, 8).shape == (0, 18, 8, 8)
    assert ops.heatmaps(np.zeros((2, 0, 2), np.float32), 8, 8).shape == (2, 0, 8, 8)
    assert ops.heatmaps(np.zeros((2, 18, 2), np.float32), 0, 8).shape == (2, 18, 0, 8)


def test_real_poses_from_the_annotation_files(rng):
    """Real COCO-18 poses (DeepFashion, annotated in the 256 x 256 frame whose centre crop is
    the 256 x 176 image) rendered at 64 x 44 through scale and offset."""
    from pathlib import Path
    import os
    poses_dir = os.environ.get("POSERT_POSES_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "poses"
    csv = Path(poses_dir) / "fasion-annotation-test.csv"
    if not csv.exists():
        pytest.skip(f"real poses not found at {csv}")
    rows = csv.read_text().splitlines()[1:]
    picked = [rows[i] for i in rng.choice(len(rows), 8, replace=False)]
    kp = []
    for row in picked:
        _, ys, xs = row.split(":")
        kp.append(np.stack([np.array(eval(xs), float), np.array(eval(ys), float)], -1))  # CSV stores y first
    kp = np.array(kp, np.float32)
    scale, offset = (0.25, 0.25), (-40 * 0.25, 0.0)  # crop 40 px off the left, then / 4
    got = ops.heatmaps(kp, 64, 44, sigma=1.5, scale=scale, offset=offset)
    np.testing.assert_allclose(got, heatmaps_ref(kp, 64, 44, sigma=1.5, scale=scale, offset=offset),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_channel_offset_writes_one_slice_of_a_larger_buffer(rng, dtype):
    # One call over the batch equals the per-sample loop into the target half it replaces.
    kp = random_keypoints(rng, 3, 18, 24, 16)
    buf = np.full((3, 36, 24, 16), 7.0, dtype)
    assert ops.heatmaps(kp, 24, 16, sigma=2.0, dtype=dtype, out=buf, channel_offset=18) is buf
    loop = np.full((3, 36, 24, 16), 7.0, dtype)
    for b in range(3):
        ops.heatmaps(kp[b:b + 1], 24, 16, sigma=2.0, dtype=dtype, out=loop[b:b + 1, 18:])
    assert np.array_equal(buf, loop)
    assert (buf[:, :18] == 7.0).all()  # the other channels are left as they were


def test_channel_offset_checks_the_buffer(rng):
    kp = random_keypoints(rng, 2, 18, 8, 8)
    with pytest.raises(ValueError, match="needs out="):
        ops.heatmaps(kp, 8, 8, channel_offset=18)
    with pytest.raises(ValueError, match="do not fit"):
        ops.heatmaps(kp, 8, 8, out=np.empty((2, 30, 8, 8), np.float32), channel_offset=18)
    with pytest.raises(ValueError, match="channel_offset must be"):
        ops.heatmaps(kp, 8, 8, out=np.empty((2, 36, 8, 8), np.float32), channel_offset=-1)
