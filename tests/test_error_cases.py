"""Failures that must be one clean, typed error: the Engine after close(), ops.heatmaps with a
vanishing sigma, ops.from_model_output without a Letterbox, and every CLI (one line on
stderr, non-zero exit, no traceback; bad numeric options are usage errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyposert import BackendUnavailable, Engine, ops
from pyposert.cli import main as cli
from stub_models import stub_bundle

H, W = 16, 12
REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "pyposert" / "data" / "demo"  # the demo media the package ships


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle with only the ONNX Runtime graph (no torch program, no TensorRT engine)."""
    return stub_bundle(tmp_path_factory.mktemp("stub") / "stub.plan", H, W)


def _pose(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return np.stack([rng.uniform(0, w - 1, 18), rng.uniform(0, h - 1, 18)], 1).astype(np.float32)


# ---------------------------------------------------------------------------- Engine.close()
def test_engine_after_close_is_a_clear_error(stub: Path, rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    pose = _pose(rng, 40, 30)
    engine = Engine(stub)
    source = engine.source(image, pose)
    first = source.run(pose)
    assert not engine.closed
    engine.close()
    assert engine.closed
    engine.close()  # a second close does nothing
    for call in (lambda: engine.run(image, pose, pose), lambda: engine.source(image, pose),
                 lambda: source.run(pose), lambda: source.run_batch([pose, pose])):
        with pytest.raises(RuntimeError, match="closed"):
            call()
    with Engine(stub) as again:  # a new Engine on the same file works
        np.testing.assert_array_equal(again.source(image, pose).run(pose), first)
    with pytest.raises(RuntimeError, match="closed"):
        again.run(image, pose, pose)


# ---------------------------------------------------------------------------- ops
@pytest.mark.parametrize("sigma", [1e-20, 1e-30, 1e-38, 1e-45, 1e-3])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_heatmaps_with_a_vanishing_sigma_stay_in_0_1(sigma: float, dtype: str) -> None:
    """2 sigma^2 underflows to 0; the joint on a pixel centre must still be exactly 1 and every
    other pixel 0 (the limit of the Gaussian), never NaN."""
    kp = np.array([[[5.0, 7.0], [3.25, 9.5], [-1.0, 2.0], [0.0, 0.0], [11.0, 15.0]]], np.float32)
    maps = ops.heatmaps(kp, 16, 12, sigma=sigma, dtype=dtype).astype(np.float32)
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    for k, (x, y) in enumerate([(5, 7), (None, None), (None, None), (0, 0), (11, 15)]):
        if x is None:
            continue
        assert maps[0, k, y, x] == 1.0
        assert maps[0, k].sum() == 1.0  # only the joint's own pixel
    assert not maps[0, 2].any()  # missing joint
    pair = ops.heatmaps_pair(kp, kp, 16, 12, sigma=sigma)
    assert np.isfinite(pair).all() and 0.0 <= pair.min() and pair.max() <= 1.0


def test_heatmaps_sigma_limit_matches_the_reference_for_normal_sigmas(rng: np.random.Generator) -> None:
    """The clamp only changes the underflowing case: a normal sigma is unchanged."""
    kp = rng.uniform(0, 11, (2, 18, 2)).astype(np.float32)
    maps = ops.heatmaps(kp, 16, 12, sigma=1.5)
    ys, xs = np.mgrid[0:16, 0:12]
    d2 = (xs[None, None] - kp[..., 0, None, None].astype(np.float64)) ** 2 + \
         (ys[None, None] - kp[..., 1, None, None].astype(np.float64)) ** 2
    np.testing.assert_allclose(maps, np.exp(-d2 / (2 * 1.5 ** 2)), atol=2e-6)


@pytest.mark.parametrize("box", [None, "letterbox", (16, 12)])
def test_from_model_output_without_a_letterbox(box: Any) -> None:
    y = np.zeros((3, 16, 12), np.float32)
    with pytest.raises(ValueError, match="box must be the Letterbox"):
        ops.from_model_output(y, box)
    same = ops.letterbox(16, 12, 16, 12)  # the spelled-out way to keep the model size
    assert ops.from_model_output(y, same).shape == (16, 12, 3)


# ---------------------------------------------------------------------------- CLIs
def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = cli(argv)
    err = capsys.readouterr().err
    assert code != 0, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def _retarget(model: Path, *extra: str) -> list[str]:
    return ["retarget", "--source", str(DEMO / "person.png"), "--source-pose", str(DEMO / "person_pose.json"),
            "--driving", "synthetic:2", "--model", str(model), *extra]


@pytest.mark.skipif(not (DEMO / "person.png").is_file(), reason="demo media missing")
def test_retarget_and_demo_report_unavailable_backends_in_one_line(stub: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("cv2")
    try:
        Engine(stub, backend="tensorrt")
        pytest.skip("TensorRT runs here; this test needs a machine without it")
    except BackendUnavailable:
        pass
    err = _one_line_error(_retarget(stub, "--backend", "tensorrt", "--output", str(tmp_path / "o.mp4")), capsys)
    assert "TensorRT" in err
    err = _one_line_error(_retarget(stub, "--backend", "torch", "--output", str(tmp_path / "o.mp4")), capsys)
    assert "no torch program" in err
    err = _one_line_error(["demo", "--backend", "tensorrt", "--model", str(stub), "--frames", "2",
                           "--output", str(tmp_path / "demo")], capsys)
    assert "TensorRT" in err
    for command in (["bench", "--model", str(stub), "--backend", "tensorrt", "--frames", "2"],
                    ["complete", "--model", str(stub), "--backend", "tensorrt", "--image", str(DEMO / "person.png"),
                     "--parsing", str(DEMO / "person_parsing.png"), "--pose", str(DEMO / "person_pose.json"),
                     "--garment", "top", "--output", str(tmp_path / "c.png")]):
        assert "TensorRT" in _one_line_error(command, capsys)


@pytest.mark.parametrize("argv", [
    ["retarget", "--source", "p.png", "--driving", "0", "--fps", "0"],
    ["retarget", "--source", "p.png", "--driving", "0", "--fps", "-5"],
    ["retarget", "--source", "p.png", "--driving", "0", "--fps", "nan"],
    ["retarget", "--source", "p.png", "--driving", "0", "--driving-size", "0x640"],
    ["retarget", "--source", "p.png", "--driving", "0", "--driving-size", "720"],
    ["retarget", "--source", "p.png", "--driving", "0", "--backend", "cuda"],
    ["demo", "--frames", "0"],
    ["demo", "--frames", "-1"],
    ["bench", "--frames", "0"],
    ["complete", "--model", "m", "--image", "i", "--parsing", "p", "--pose", "q", "--output", "o", "--samples", "0"],
])
def test_numeric_options_are_validated(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: argument" in err


def test_info_on_a_model_that_is_not_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "not found" in _one_line_error(["info", "--model", str(tmp_path / "nope.plan")], capsys)
