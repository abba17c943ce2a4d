"""``pyposert bench`` and ``pyposert demo`` on a tiny real generator (PoNA, 32 x 24, exported to ONNX as in
test_engine.py) and its error path when the model file is missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pyposert.cli import main
from stub_models import export_generator_onnx

H, W = 32, 24


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PoNA generator's standard-op ONNX export (dynamic batch), heatmap contract."""
    torch = pytest.importorskip("torch")
    from training.models import build_generator

    torch.manual_seed(0)
    generator = build_generator("pona", "rt", ngf=4, n_blocks=1, height=H, width=W).eval()
    return export_generator_onnx(generator, tmp_path_factory.mktemp("tiny") / "tiny.onnx", H, W)


def test_bench_runs_and_writes_json(tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", "--model", str(tiny_onnx), "--frames", "5", "--warmup", "2", "--threads", "1",
                 "--json", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "(a) engine alone" in printed.out and "(b) retargeting loop" in printed.out and "FPS" in printed.out
    result = json.loads(out.read_text())
    assert result["backend"] == "onnxruntime" and result["model_size"] == [H, W] and result["threads"] == 1
    alone = result["engine_alone"]
    assert alone["frames"] == 5 and alone["warmup"] == 2 and alone["fps"] > 0
    # Host backend: the step-by-step split reproduced Source.run exactly, so it was used.
    assert alone["split"] is True
    assert set(alone["latency"]) == {"keypoints", "heatmaps", "network", "output", "total"}
    for stage, lat in alone["latency"].items():
        assert lat["count"] == 5 and 0 <= lat["p50_ms"] <= lat["p99_ms"], stage
        assert 0 <= lat["share"] <= 1.0 + 1e-9, stage
    assert alone["latency"]["total"]["share"] == 1.0
    loop = result["retarget"]
    assert loop["frames"] == 5 and loop["frames_written"] == 5 and loop["fps"] > 0
    assert loop["layout"] == "side-by-side"
    assert set(loop["latency"]) == {"queue", "pose", "smooth", "engine", "write", "end_to_end"}
    for stage, lat in loop["latency"].items():
        assert lat["count"] == 5 and lat["p50_ms"] <= lat["p99_ms"] and lat["share"] >= 0, stage
    assert loop["latency"]["end_to_end"]["share"] == 1.0
    # The numbers printed are the numbers stored.
    assert f"{alone['fps']} FPS" in printed.out and f"{loop['fps']} FPS" in printed.out


def test_bench_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope" / "nram.plan"
    assert main(["bench", "--model", str(missing), "--frames", "5"]) == 1
    err = capsys.readouterr().err
    assert "model file not found" in err and str(missing) in err


def test_bench_rejects_bad_counts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--frames", "0"])
    assert exc.value.code == 2 and "--frames: must be >= 1, got 0" in capsys.readouterr().err


def test_fallback_inputs_without_demo_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without demo files and shared poses: a generated photo with its standing pose, and the
    jittered standing pose as driving motion (inside the frame, missing stays missing)."""
    from pyposert import bench, resources

    monkeypatch.setattr(resources, "package_dir", lambda: tmp_path / "no-package-data")
    monkeypatch.delenv("POSERT_MODELS", raising=False)
    monkeypatch.setenv("POSERT_POSES_DIR", str(tmp_path / "no-poses"))
    photo, pose, description = bench.demo_photo(tmp_path / "model.onnx")
    assert photo.shape == (256, 176, 3) and photo.dtype == np.uint8 and "generated" in description
    assert pose.shape == (18, 2) and (pose >= 0).all()
    assert photo[int(pose[1, 1]), int(pose[1, 0])].tolist() != [128, 128, 128]  # the figure is drawn there
    source, description = bench.driving_motion(30)
    assert isinstance(source, bench.JitteredPoseSource) and "standing" in description
    frames = list(source)
    assert len(frames) == 30 and frames[0].frame_size == (256, 176)
    kp = np.stack([f.keypoints for f in frames])
    assert (kp[..., 0] <= 175).all() and (kp[..., 1] <= 255).all() and (kp >= 0).all()
    assert np.ptp(kp[:, 1, 0]) > 10  # it moves


def test_demo_writes_video_preview_and_stats(tiny_onnx: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The demo on the installed demo media with a tiny model standing in for the default
    model: a playable video with one frame per driving frame, the preview, stats."""
    import cv2

    from pyposert.resources import demo_dir

    out = tmp_path / "demo"
    assert main(["demo", "--model", str(tiny_onnx), "--output", str(out), "--frames", "7"]) == 0
    printed = capsys.readouterr().out
    assert str((out / "demo.mp4").resolve()) in printed and str((out / "demo_preview.png").resolve()) in printed
    cap = cv2.VideoCapture(str(out / "demo.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    assert frames == 7 and fps == pytest.approx(25.0)
    photo = cv2.imread(str(demo_dir() / "person.png"))
    preview = cv2.imread(str(out / "demo_preview.png"))
    assert preview is not None and preview.shape[0] == 2 * photo.shape[0] + 4
    stats = json.loads((out / "demo_stats.json").read_text())
    assert stats["frames_read"] == stats["frames_written"] == 7 and stats["frames_dropped"] == 0


def test_demo_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--model", str(tmp_path / "none.plan"), "--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "model file not found" in err and "no such file" in err and str(tmp_path / "none.plan") in err
    assert len(err.strip().splitlines()) == 1
