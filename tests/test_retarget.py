"""The retargeting loop (pyposert.retarget) and One-Euro smoothing.

A real Engine runs a tiny stub ONNX graph (image = source image + max of the target heatmaps,
so the output moves with the pose); the drop-policy and Ctrl-C tests use a fake engine whose
run() sleeps, standing in for a slow network."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import pytest

from pyposert.pose_sources import OpenPoseJsonSource, PoseFrame, PoseSource, VideoPoseSource
from pyposert.retarget import retarget
from pyposert.smoothing import OneEuroFilter, PoseSmoother
from stub_models import heatmap_max_onnx

H, W = 32, 24  # stub model frame
REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from pyposert import Engine

    model = heatmap_max_onnx(tmp_path_factory.mktemp("stub") / "stub.onnx", H, W)
    return Engine(model, backend="onnxruntime", threads=1)


def _pose(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return np.stack([rng.uniform(2, w - 2, 18), rng.uniform(2, h - 2, 18)], -1).astype(np.float32)


def _video(path: Path, n: int, fps: float, size: tuple[int, int]) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0]))
    for i in range(n):
        writer.write(np.full((size[0], size[1], 3), 10 * i, np.uint8))
    writer.release()
    return path


def _read_back(path: Path) -> tuple[int, float, tuple[int, int]]:
    """(frames decoded, fps, (h, w)) of a video file."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} is not readable"
    fps = cap.get(cv2.CAP_PROP_FPS)
    n, size = 0, (0, 0)
    while True:
        ok, image = cap.read()
        if not ok:
            break
        n, size = n + 1, image.shape[:2]
    cap.release()
    return n, fps, size


class FakeSource:
    """Stands in for pyposert.Source: a grey image of the photo's size, after ``delay_s``."""

    def __init__(self, size: tuple[int, int], delay_s: float) -> None:
        self.size, self.delay_s = size, delay_s

    def run(self, pose: np.ndarray, *, pose_size: Optional[tuple[int, int]] = None,
            output_size: str = "source") -> np.ndarray:
        time.sleep(self.delay_s)
        return np.full((*self.size, 3), 128, np.uint8)


class FakeEngine:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    def source(self, image: np.ndarray, pose: Any) -> FakeSource:
        return FakeSource(image.shape[:2], self.delay_s)


class LiveLike(PoseSource):
    """A camera stand-in: ``n`` frames at ``fps`` in real time, whether consumed or not."""

    live = True

    def __init__(self, n: int, fps: float, size: tuple[int, int] = (48, 32)) -> None:
        self.n, self.fps, self.size = n, fps, size

    def frames(self) -> Iterator[PoseFrame]:
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for i in range(self.n):
            time.sleep(max(0.0, start + i / self.fps - time.perf_counter()))
            yield PoseFrame(i, i / self.fps, _pose(rng, *self.size), None, self.size)


# ------------------------------------------------------------------ end to end
def test_video_in_same_frames_and_fps(engine: Any, tmp_path: Path, rng: np.random.Generator) -> None:
    drive = _video(tmp_path / "drive.mp4", 12, 10.0, (48, 40))
    poses = [_pose(rng, 48, 40) for _ in range(12)]
    seen = []

    def estimate(image: np.ndarray) -> Optional[np.ndarray]:
        seen.append(image.shape)
        return None if len(seen) == 5 else poses[len(seen) - 1]  # frame 4: nobody

    photo = rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)
    out, stats_path = tmp_path / "out.mp4", tmp_path / "stats.json"
    stats = retarget(engine, photo, _pose(rng, 40, 30), VideoPoseSource(drive, estimate), output=out,
                     stats_path=stats_path, overlay=True, progress=False)
    assert (stats["frames_read"], stats["frames_written"], stats["frames_dropped"]) == (12, 12, 0)
    assert stats["no_person"] == 1 and not stats["interrupted"]
    n, fps, size = _read_back(out)
    assert (n, size) == (12, (40, 30)) and fps == pytest.approx(10.0)
    saved = json.loads(stats_path.read_text())
    assert saved["frames_written"] == 12
    for stage in ("queue", "pose", "smooth", "engine", "write", "end_to_end"):
        lat = saved["latency"][stage]
        assert lat["count"] == 12 and 0 <= lat["p50_ms"] <= lat["p99_ms"]


def test_openpose_folder_side_by_side(engine: Any, tmp_path: Path, rng: np.random.Generator) -> None:
    folder = tmp_path / "poses"
    folder.mkdir()
    for i in range(6):
        kp = np.concatenate([_pose(rng, 60, 40), np.ones((18, 1))], 1)
        people = [] if i == 0 else [{"pose_keypoints_2d": kp.ravel().tolist()}]
        (folder / f"f_{i:03d}_keypoints.json").write_text(json.dumps({"people": people}))
    photo = rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)
    out = tmp_path / "sbs.avi"
    # Not normalised: the skeleton is drawn in the driving frame (60 x 40), scaled to the result.
    stats = retarget(engine, photo, _pose(rng, 40, 30), OpenPoseJsonSource(folder, (60, 40), fps=5), output=out,
                     layout="side-by-side", progress=False, normalize=False)
    assert stats["frames_written"] == 6 and stats["no_person"] == 1 and not stats["normalized"]
    n, fps, size = _read_back(out)
    assert (n, size) == (6, (40, 40 * 40 // 60 + 30)) and fps == pytest.approx(5.0)  # skeleton 40x27 | 40x30
    # Normalised (the default for OpenPose folders): the skeleton is drawn in the photo's pixels.
    stats = retarget(engine, photo, _pose(rng, 40, 30), OpenPoseJsonSource(folder, (60, 40), fps=5), output=out,
                     layout="side-by-side", progress=False)
    assert stats["normalized"] and _read_back(out)[2] == (40, 30 + 30)


def test_malformed_json_mid_stream_keeps_output_playable(engine: Any, tmp_path: Path,
                                                         rng: np.random.Generator) -> None:
    folder = tmp_path / "poses"
    folder.mkdir()
    for i in range(4):
        kp = np.concatenate([_pose(rng, 40, 30), np.ones((18, 1))], 1)
        (folder / f"f_{i:03d}_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d":
                                                                                   kp.ravel().tolist()}]}))
    (folder / "f_004_keypoints.json").write_text("{broken")
    out = tmp_path / "partial.mp4"
    photo = rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="f_004_keypoints.json"):
        retarget(engine, photo, _pose(rng, 40, 30), OpenPoseJsonSource(folder, (40, 30)), output=out,
                 progress=False)
    assert _read_back(out)[0] == 4


def test_bad_arguments_and_outputs(tmp_path: Path, rng: np.random.Generator) -> None:
    photo = rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)
    src = LiveLike(2, 100.0)
    with pytest.raises(ValueError, match="layout"):
        retarget(FakeEngine(), photo, None, src, layout="grid")
    with pytest.raises(FileNotFoundError, match="output folder"):
        retarget(FakeEngine(), photo, None, src, output=tmp_path / "nope" / "out.mp4")
    with pytest.raises(IsADirectoryError):
        retarget(FakeEngine(), photo, None, src, output=tmp_path)
    with pytest.raises(OSError, match="no camera 97"):
        VideoPoseSource(97, lambda image: None)


def test_live_source_drops_stale_frames(tmp_path: Path, rng: np.random.Generator) -> None:
    photo = rng.integers(0, 255, (48, 32, 3), dtype=np.uint8)
    # Camera at 100 fps, engine at ~25 fps: most frames must be dropped, none may pile up.
    stats = retarget(FakeEngine(delay_s=0.04), photo, None, LiveLike(40, 100.0), output=tmp_path / "live.mp4")
    assert stats["live"] and stats["frames_read"] == 40
    assert stats["frames_dropped"] > 10
    assert stats["frames_processed"] + stats["frames_dropped"] == 40
    assert stats["frames_written"] == stats["frames_processed"] == _read_back(tmp_path / "live.mp4")[0]
    # Only the newest frame waits: queueing delay stays below ~one engine step.
    assert stats["latency"]["queue"]["p99_ms"] < 100


def test_file_sources_are_lossless_with_a_slow_engine(rng: np.random.Generator) -> None:
    photo = rng.integers(0, 255, (48, 32, 3), dtype=np.uint8)
    stats = retarget(FakeEngine(delay_s=0.01), photo, None, LiveLike(15, 1000.0), live=False, max_queue=2,
                     progress=False)
    assert (stats["frames_read"], stats["frames_processed"], stats["frames_dropped"]) == (15, 15, 0)


SIGINT_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_retarget import FakeEngine, LiveLike
    from pyposert.retarget import retarget

    class Started(FakeEngine):
        def source(self, image, pose):
            src = super().source(image, pose)
            run = src.run
            def announce(*a, **k):
                out = run(*a, **k)
                print("frame", flush=True)
                return out
            src.run = announce
            return src

    photo = np.zeros((48, 32, 3), np.uint8)
    stats = retarget(Started(delay_s=0.02), photo, None, LiveLike(100000, 50.0), output=sys.argv[1],
                     live=False, progress=False)
    print("interrupted" if stats["interrupted"] else "finished", stats["frames_written"], flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_finalises_a_playable_file(tmp_path: Path) -> None:
    out = tmp_path / "interrupted.mp4"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", SIGINT_SCRIPT.format(tests=str(REPO / "tests")), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 10
        frames = 0
        while frames < 5:
            line = proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                pytest.skip(f"the loop did not start within 10 s: {proc.stderr.read()[-500:] if not line else ''}")
            frames += line.strip() == "frame"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    assert "interrupted" in stdout
    written = int(stdout.split("interrupted")[1].split()[0])
    n, fps, _ = _read_back(out)
    assert n >= 5 and n == written and fps == pytest.approx(50.0)


# ------------------------------------------------------------------ One-Euro smoothing
def test_one_euro_constant_stays_constant() -> None:
    f = OneEuroFilter()
    value = np.array([[12.5, 40.0]] * 18)
    for i in range(50):
        out = f(value, i / 30)
    np.testing.assert_allclose(out, value)


def test_one_euro_reduces_jitter(rng: np.random.Generator) -> None:
    f = OneEuroFilter()
    noisy = 100 + rng.normal(0, 2.0, (300, 18, 2))
    out = np.stack([f(x, i / 30) for i, x in enumerate(noisy)])
    assert out[30:].var() < 0.2 * noisy[30:].var()


def test_one_euro_follows_a_ramp_with_bounded_lag() -> None:
    f = OneEuroFilter()
    t = np.arange(120) / 30
    ramp = 300 * t  # 300 px/s: fast motion raises the cutoff
    out = np.array([f(np.array([r]), s)[0] for r, s in zip(ramp, t)])
    lag_px = ramp[-30:] - out[-30:]
    assert (lag_px >= 0).all() and lag_px.max() < 40  # < ~0.13 s of motion
    slow = OneEuroFilter(beta=0.0)  # without the speed term the lag is much larger
    out0 = np.array([slow(np.array([r]), s)[0] for r, s in zip(ramp, t)])
    assert (ramp[-1] - out0[-1]) > 1.5 * lag_px[-1]


def test_pose_smoother_missing_joints_and_no_person() -> None:
    sm = PoseSmoother()
    kp = np.full((18, 2), 50.0, np.float32)
    assert sm(None, 0.0) is None and sm.no_person == 1
    sm(kp, 0.0)
    sm(kp + 10, 0.1)
    gone = kp.copy()
    gone[3] = -1
    out = sm(gone, 0.2)
    assert (out[3] == -1).all() and (out[:3] > 50).all()
    back = kp + 100
    out = sm(back, 0.3)
    np.testing.assert_allclose(out[3], back[3])  # reset: the returning joint starts at its measurement
    assert (out[0] < 150).all()  # the others are still filtered
    np.testing.assert_array_equal(sm(None, 0.4), out)
    assert sm.no_person == 2


def test_cli_retarget_on_a_pose_csv(engine: Any, tmp_path: Path, rng: np.random.Generator,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    import cv2

    from pyposert.retarget import add_retarget_parser

    parser = argparse.ArgumentParser(prog="pyposert")
    add_retarget_parser(parser.add_subparsers(dest="command", required=True))
    photo, pose = tmp_path / "photo.png", tmp_path / "photo_pose.npy"
    cv2.imwrite(str(photo), rng.integers(0, 255, (40, 30, 3), dtype=np.uint8))
    np.save(pose, _pose(rng, 40, 30))
    csv = tmp_path / "market-annotation-mini.csv"
    rows = [f"{i}.jpg: {[10 + i + j for j in range(18)]}: {[5 + j for j in range(18)]}" for i in range(7)]
    csv.write_text("name:keypoints_y:keypoints_x\n" + "\n".join(rows) + "\n")
    out, stats = tmp_path / "cli.mp4", tmp_path / "stats.json"
    model = tmp_path / "m.onnx"
    heatmap_max_onnx(model, H, W)
    args = parser.parse_args(["retarget", "--source", str(photo), "--source-pose", str(pose), "--driving", str(csv),
                              "--output", str(out), "--model", str(model), "--layout", "side-by-side",
                              "--stats", str(stats), "--fps", "7"])
    assert args.fn(args) == 0
    assert "written 7" in capsys.readouterr().out
    assert _read_back(out)[:2] == (7, pytest.approx(7.0))
    assert json.loads(stats.read_text())["frames_written"] == 7
    bad = parser.parse_args(["retarget", "--source", str(tmp_path / "none.png"), "--driving", str(csv),
                             "--model", str(model), "--output", str(out)])
    assert bad.fn(bad) == 1
    err = capsys.readouterr().err
    assert "--source photo not found" in err and "no such file" in err and len(err.splitlines()) == 1
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture")
    bad = parser.parse_args(["retarget", "--source", str(junk), "--driving", str(csv), "--model", str(model),
                             "--output", str(out)])
    assert bad.fn(bad) == 1
    err = capsys.readouterr().err
    assert "is not an image OpenCV can read" in err and len(err.splitlines()) == 1
    # Neither --output nor --show: refuses to start (nothing would be written or shown).
    idle = parser.parse_args(["retarget", "--source", str(photo), "--source-pose", str(pose), "--driving", str(csv),
                              "--model", str(model)])
    assert idle.fn(idle) == 2 and "nothing to do" in capsys.readouterr().err
    # --start and --max-frames: 7 rows at 7 fps, start at 2/7 s, at most 3 frames.
    part = parser.parse_args(["retarget", "--source", str(photo), "--source-pose", str(pose), "--driving", str(csv),
                              "--output", str(out), "--model", str(model), "--fps", "7", "--start", str(2 / 7),
                              "--max-frames", "3"])
    assert part.fn(part) == 0 and "written 3" in capsys.readouterr().out
    assert _read_back(out)[0] == 3
    # A camera that is not there is named as such (not "no pose estimator").
    cam = parser.parse_args(["retarget", "--source", str(photo), "--source-pose", str(pose), "--driving", "97",
                             "--model", str(model), "--output", str(out)])
    assert cam.fn(cam) == 1 and "no camera 97" in capsys.readouterr().err
    for flag, value in (("--max-frames", "0"), ("--start", "-1"), ("--person", "tallest")):
        wrong = parser.parse_args(["retarget", "--source", str(photo), "--driving", str(csv), "--model", str(model),
                                   "--output", str(out), flag, value])
        assert wrong.fn(wrong) == 1 and flag.lstrip("-").split("-")[0] in capsys.readouterr().err
