"""What a new user meets first: the models and demo media that ship inside the package and
where they are found, the command line's behaviour on ordinary mistakes (one line, non-zero
exit, nothing from OpenCV or MediaPipe), quiet broken pipes, and texts written for users.

The commands run in a subprocess from a temporary folder -- outside the checkout, as a user
would run them -- wherever the terminal-level behaviour (file descriptors, exit codes) is
the point."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest

from pyposert import resources
from pyposert.cli import main

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DATA = REPO / "pyposert" / "data"


def _run(args: list[str], cwd: Path, env: Optional[dict[str, str]] = None,
         stdout: Optional[int] = subprocess.PIPE) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("POSERT_MODELS", "POSERT_POSES_DIR")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "pyposert", *args], cwd=cwd, env=full_env, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=300)


# ------------------------------------------------------------------ models and media in the package
def test_the_package_carries_compact_models_and_demo_media() -> None:
    for name in ("nram.plan", "completion.plan"):
        size = (PACKAGE_DATA / name).stat().st_size
        assert 1_000_000 < size < 5 * 2**20, (name, size)  # a real model, and small enough for a wheel
    for name in ("person.png", "person_pose.json", "person_parsing.png", "driving-poses.csv"):
        assert (PACKAGE_DATA / "demo" / name).is_file(), name
    # What the wheel ships is what git tracks: nothing in pyposert/data is ignored.
    if shutil.which("git") and (REPO / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", "pyposert/data/nram.plan"], cwd=REPO)
        assert ignored.returncode == 1


def test_model_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit path, then $POSERT_MODELS, then the package; names with or without .plan."""
    monkeypatch.delenv("POSERT_MODELS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resources.find_model() == PACKAGE_DATA / "nram.plan"
    assert resources.find_model("nram") == resources.find_model("nram.plan") == PACKAGE_DATA / "nram.plan"
    assert resources.find_model("completion") == PACKAGE_DATA / "completion.plan"
    own = tmp_path / "mine"
    own.mkdir()
    shutil.copy(PACKAGE_DATA / "nram.plan", own / "nram.plan")
    monkeypatch.setenv("POSERT_MODELS", str(own))
    assert resources.find_model() == own / "nram.plan"  # POSERT_MODELS wins over the package
    assert resources.find_model("completion") == PACKAGE_DATA / "completion.plan"  # ... for what it has
    local = tmp_path / "nram.plan"
    shutil.copy(PACKAGE_DATA / "nram.plan", local)
    assert resources.find_model("nram.plan") == Path("nram.plan")  # an existing path wins over both
    assert resources.find_model(str(local)) == local
    with pytest.raises(FileNotFoundError, match=r"model file not found: nope \(no such file here, nor in .*mine"):
        resources.find_model("nope")
    with pytest.raises(FileNotFoundError, match=r"model file not found: sub/nram.plan \(no such file\)"):
        resources.find_model("sub/nram.plan")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        resources.find_model(str(own))


def test_engine_takes_an_installed_model_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pyposert

    monkeypatch.delenv("POSERT_MODELS", raising=False)
    monkeypatch.chdir(tmp_path)
    with pyposert.Engine("nram", backend="onnxruntime", threads=1) as engine:
        assert engine.task == "pose_transfer" and engine.size == (128, 88)


def test_models_command_lists_what_is_installed_and_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    own = tmp_path / "mine"
    own.mkdir()
    shutil.copy(PACKAGE_DATA / "nram.plan", own / "nram.plan")
    monkeypatch.setenv("POSERT_MODELS", str(own))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    mine = next(line for line in lines if str(own / "nram.plan") in line)
    packaged = next(line for line in lines if str(PACKAGE_DATA / "nram.plan") in line)
    assert "(default)" in mine and "hidden by the one above" in packaged
    assert str(PACKAGE_DATA / "completion.plan") in out
    assert "pose_transfer, nram" in out and "completion, completion" in out and "weights fp16" in out


def test_packaged_default_model_matches_the_full_one(rng: np.random.Generator) -> None:
    """The compact model (fp16 weights) renders what models/nram.plan renders, within a few
    grey levels; its held-out quality is checked in test_shipped_models.py."""
    import pyposert
    from pyposert.poses import parse_pose

    photo_path = PACKAGE_DATA / "demo" / "person.png"
    import cv2

    photo = cv2.imread(str(photo_path))
    pose = parse_pose(PACKAGE_DATA / "demo" / "person_pose.json")
    target = pose + rng.uniform(-6, 6, pose.shape).astype(np.float32)
    target[pose < 0] = -1
    with pyposert.Engine(PACKAGE_DATA / "nram.plan", backend="onnxruntime", threads=1) as compact, \
            pyposert.Engine(REPO / "models" / "nram.plan", backend="onnxruntime", threads=1) as full:
        a = compact.run(photo, target, source_pose=pose).astype(int)
        b = full.run(photo, target, source_pose=pose).astype(int)
    assert np.abs(a - b).max() <= 6 and np.abs(a - b).mean() < 0.5


def test_synthetic_driving_uses_the_poses_that_ship(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyposert.pose_sources import default_poses_csv, open_driving

    monkeypatch.delenv("POSERT_POSES_DIR", raising=False)
    monkeypatch.delenv("POSERT_MODELS", raising=False)
    assert default_poses_csv() == PACKAGE_DATA / "demo" / "driving-poses.csv"
    frames = list(open_driving("synthetic:12"))
    assert len(frames) == 12 and all(f.keypoints is not None for f in frames)
    assert all((f.keypoints[[1, 8, 11]] >= 0).all() for f in frames)  # every frame is usable
    for bad in ("synthetic:", "synthetic:0", "synthetic:ten"):
        with pytest.raises(ValueError, match="synthetic:N needs a whole number"):
            open_driving(bad)


# ------------------------------------------------------------------ the command line, as a user meets it
def test_broken_pipe_is_quiet_for_every_command(tmp_path: Path) -> None:
    """`pyposert info | head -1`: the reader is gone before anything is written (the read end
    is closed first, so every write fails), and the command still ends quietly with 0."""
    for args in (["info"], ["info", "--model", "nram"], ["models"], ["--help"], ["demo", "--help"],
                 ["retarget", "--help"]):
        read, write = os.pipe()
        os.close(read)
        try:
            result = _run(args, tmp_path, stdout=write)
        finally:
            os.close(write)
        assert result.returncode == 0 and result.stderr == "", (args, result.returncode, result.stderr)


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "WARN" not in result.stderr and "Traceback" not in result.stderr
    return lines[0]


def test_missing_and_broken_inputs_say_so_in_one_line(tmp_path: Path) -> None:
    demo = PACKAGE_DATA / "demo"
    missing = _run(["retarget", "--source", "nope.jpg", "--source-pose", str(demo / "person_pose.json"),
                    "--driving", "synthetic:3", "--output", "o.mp4"], tmp_path)
    assert missing.returncode == 1
    assert "nope.jpg" in _one_line(missing) and "no such file" in _one_line(missing)  # and no OpenCV warning

    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8 not really a jpeg")
    broken = _run(["retarget", "--source", str(junk), "--source-pose", str(demo / "person_pose.json"),
                   "--driving", "synthetic:3", "--output", "o.mp4"], tmp_path)
    assert broken.returncode == 1 and "not an image" in _one_line(broken)

    no_pose = _run(["retarget", "--source", str(demo / "person.png"), "--source-pose", "nope.json",
                    "--driving", "synthetic:3", "--output", "o.mp4"], tmp_path)
    assert no_pose.returncode == 1 and "--source-pose not found: nope.json (no such file)" in _one_line(no_pose)

    no_driving = _run(["retarget", "--source", str(demo / "person.png"), "--source-pose",
                       str(demo / "person_pose.json"), "--driving", "dance.mp4", "--output", "o.mp4"], tmp_path)
    assert no_driving.returncode == 1 and "driving input not found: dance.mp4" in _one_line(no_driving)

    no_model = _run(["demo", "--model", "nope.plan", "--output", str(tmp_path / "out")], tmp_path)
    assert no_model.returncode == 1 and "no such file" in _one_line(no_model)

    nobody = tmp_path / "nobody.npy"
    np.save(nobody, np.full((18, 2), -1.0, np.float32))
    empty_pose = _run(["retarget", "--source", str(demo / "person.png"), "--source-pose", str(nobody),
                       "--driving", "synthetic:3", "--output", "o.mp4"], tmp_path)
    assert empty_pose.returncode == 1
    assert "too few joints: a pose needs at least the neck and both hips" in _one_line(empty_pose)


def test_a_missing_source_pose_says_what_to_pass(tmp_path: Path) -> None:
    from pyposert.estimators import mediapipe_available

    if mediapipe_available():
        pytest.skip("the pose extra is installed here, so the photo's pose is estimated instead")
    demo = PACKAGE_DATA / "demo"
    result = _run(["retarget", "--source", str(demo / "person.png"), "--driving", "synthetic:3", "--output", "o.mp4"],
                  tmp_path)
    line = _one_line(result)
    assert result.returncode == 1
    assert "--source-pose FILE" in line and 'pip install "pyposert[runtime,pose]"' in line
    assert "Engine(" not in line and "source_pose=" not in line  # no Python-API advice on the command line


def test_progress_bars_stay_out_of_logs(tmp_path: Path) -> None:
    """Run with stdout and stderr into one log, as CI or `> log 2>&1` does: the summary lines
    arrive whole, with no progress-bar redraws ('\\r', '%|') among them."""
    log = tmp_path / "log.txt"
    demo = PACKAGE_DATA / "demo"
    with open(log, "w") as f:
        result = subprocess.run([sys.executable, "-m", "pyposert", "retarget", "--source", str(demo / "person.png"),
                                 "--source-pose", str(demo / "person_pose.json"), "--driving", "synthetic:8",
                                 "--output", str(tmp_path / "o.mp4")], cwd=tmp_path, stdout=f,
                                stderr=subprocess.STDOUT, timeout=300)
    text = log.read_text()
    assert result.returncode == 0, text
    assert "\r" not in text and "%|" not in text
    assert re.fullmatch(r"frames read 8, written 8, .*wrote .*o\.mp4( \(\w+\))?\n", text), text


def test_frames_without_neck_or_hips_count_as_no_person(tmp_path: Path) -> None:
    """The minimum in the retargeting loop: such a driving frame keeps the last pose and is
    counted, instead of failing the whole video."""
    import pyposert
    from pyposert.pose_sources import PoseFrame, PoseSource
    from pyposert.retarget import retarget
    from stub_models import heatmap_max_onnx

    pose = np.stack([np.linspace(10, 30, 18), np.linspace(8, 50, 18)], 1).astype(np.float32)
    no_hips = pose.copy()
    no_hips[[8, 11]] = np.nan

    class Three(PoseSource):
        frame_count = 3

        def frames(self):  # type: ignore[no-untyped-def]
            for i, kp in enumerate((pose, no_hips, pose)):
                yield PoseFrame(i, i / 25, kp, None, (60, 40))

    with pyposert.Engine(heatmap_max_onnx(tmp_path / "stub.onnx", 32, 24), threads=1) as engine:
        stats = retarget(engine, np.full((60, 40, 3), 90, np.uint8), pose, Three(), output=tmp_path / "o.mp4",
                         progress=False)
    assert stats["frames_written"] == 3 and stats["no_person"] == 1


# ------------------------------------------------------------------ texts written for users
JARGON = ("seed 002", "fourth system", "this workplace", "2-core cpu", "shared real poses", "named in the brief",
          "the research")


def test_user_texts_have_no_internal_jargon(capsys: pytest.CaptureFixture[str]) -> None:
    texts = {name: (REPO / name).read_text(encoding="utf-8") for name in ("README.md", "models/MODEL_CARD.md")}
    for command in ([], ["info"], ["models"], ["demo"], ["retarget"], ["complete"], ["bench"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        texts[f"pyposert {' '.join(command)} --help"] = capsys.readouterr().out
    for path in sorted((REPO / "tests").rglob("*.py")):
        if path.name != Path(__file__).name:
            texts[str(path.relative_to(REPO))] = path.read_text(encoding="utf-8")  # skip reasons live here
    for path in sorted((REPO / "pyposert").rglob("*.py")):
        texts[str(path.relative_to(REPO))] = path.read_text(encoding="utf-8")  # CLI messages live here
    found = [(name, phrase) for name, text in texts.items() for phrase in JARGON if phrase in text.lower()]
    assert not found, found


@pytest.mark.parametrize("args, message", [
    (["demo", "--frames", "0"], "argument --frames: must be >= 1, got 0"),
    (["retarget", "--source", "p.png", "--driving", "synthetic:3", "--fps", "0"],
     "argument --fps: must be a finite number > 0"),
    (["retarget", "--source", "p.png", "--driving", "synthetic:3", "--fps", "nan"],
     "argument --fps: must be a finite number > 0"),
])
def test_bad_numbers_are_refused_by_name(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_demo_output_folder_that_cannot_be_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["demo", "--output", str(blocker / "out"), "--frames", "2"]) == 1
    err = capsys.readouterr().err
    assert f"cannot create the output folder {blocker / 'out'}" in err and len(err.splitlines()) == 1


def test_an_opencv_that_cannot_start_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """On a minimal server image the OpenCV wheel lacks the system's libGL: one line saying what
    to install, not a traceback."""
    import builtins

    real_import = builtins.__import__

    def no_gl(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "cv2":
            raise ImportError("libGL.so.1: cannot open shared object file: No such file or directory")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gl)
    demo = PACKAGE_DATA / "demo"
    code = main(["retarget", "--source", str(demo / "person.png"), "--source-pose", str(demo / "person_pose.json"),
                 "--driving", "synthetic:2", "--output", "o.mp4"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "OpenCV cannot start" in err and "apt-get install libgl1" in err
