"""The training and export command lines: numeric options validated (0 = "only at the end",
as documented, for train and train-completion alike), and damaged or hostile checkpoints and
an output that is a directory reported as one line (exit 2, no traceback), with no code run
from a hostile optimizer.pt."""

from __future__ import annotations

import json
import pickle
import pickletools
import sys
from pathlib import Path
from typing import Any

import pytest

from training.__main__ import main as cli
from training.train import TrainSection as MainTrainSection
from training.train_completion import TrainSection as CompletionTrainSection

from test_completion import TINY as COMPLETION_TINY  # noqa: E402 - tiny completion model
from test_train import run, tiny_config, write_tiny_pose_bank  # noqa: E402 - tiny pose-transfer runs


@pytest.fixture(scope="module")
def poses_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_tiny_pose_bank(tmp_path_factory.mktemp("poses")))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, poses_dir: str) -> Path:
    """A 2-step tiny NRAM run (checkpoint with optimizer state)."""
    out = tmp_path_factory.mktemp("run") / "nram"
    run(tiny_config(poses_dir).replace(train={"steps": 2}), out)
    return out


def _copy(run_dir: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in run_dir.iterdir():
        if f.is_file():
            (dest / f.name).write_bytes(f.read_bytes())
    return dest


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------------------- numeric options
@pytest.mark.parametrize("argv", [
    ["train", "--model", "nram", "--eval-every", "-1"],
    ["train", "--model", "nram", "--checkpoint-every", "-3"],
    ["train", "--model", "nram", "--batch-size", "0"],
    ["train", "--model", "nram", "--eval-count", "0"],
    ["train", "--model", "nram", "--steps", "x"],
    ["train-completion", "--eval-every", "-1"],
    ["train-completion", "--log-every", "-1"],
    ["train-completion", "--steps", "0"],
])
def test_bad_counts_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err


@pytest.mark.parametrize("section", [MainTrainSection, CompletionTrainSection])
@pytest.mark.parametrize("field", ["eval_every", "checkpoint_every", "log_every"])
def test_config_counts(section: Any, field: str) -> None:
    """TOML recipes go through the same checks as the flags; 0 is valid (only at the end)."""
    assert getattr(section(**{field: 0}), field) == 0
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match=field):
            section(**{field: bad})


def test_log_every_zero_averages_the_whole_run(tmp_path: Path, poses_dir: str) -> None:
    """log_every 0 = one loss report at the end, averaged over every step of the run (it used
    to mean "every step"); the checkpoint records that average."""
    out = tmp_path / "run"
    run(tiny_config(poses_dir).replace(train={"steps": 3, "log_every": 0}), out)
    losses = json.loads((out / "checkpoint.json").read_text())["losses"]
    every_step = tmp_path / "every"
    run(tiny_config(poses_dir).replace(train={"steps": 3, "log_every": 1}), every_step)
    last = json.loads((every_step / "checkpoint.json").read_text())["losses"]
    assert losses and set(losses) == set(last) and losses != last  # mean of 3 steps, not the last step


def test_train_completion_zero_means_only_at_the_end(tmp_path: Path, poses_dir: str) -> None:
    """--eval-every 0, --checkpoint-every 0 and --log-every 0 used to divide by zero."""
    from training.train_completion import load_completion_checkpoint

    cfg = tmp_path / "tiny.toml"
    lines = ['size = "rt"', "[model]", *(f"{k} = {json.dumps(v)}" for k, v in COMPLETION_TINY.items()),
             "[train]", "steps = 2", "batch_size = 2", "eval_count = 2", "num_workers = 0",
             "[data]", f"poses_dir = {json.dumps(poses_dir)}"]
    cfg.write_text("\n".join(lines) + "\n")
    out = tmp_path / "completion"
    assert cli(["train-completion", "--config", str(cfg), "--out", str(out), "--no-progress", "--eval-every", "0",
                "--checkpoint-every", "0", "--log-every", "0"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records and {r["step"] for r in records} == {2}  # logged and evaluated once, at the end
    assert any("eval" in r for r in records)
    assert load_completion_checkpoint(out).step == 2


# ---------------------------------------------------------------------------- damaged checkpoints
class _WritesMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def _would_call(data: bytes, module: str, name: str, argument: str) -> bool:
    """Whether the pickle ``data`` imports ``module``.``name`` and calls it (REDUCE) with
    ``argument`` among the strings: read from its opcode listing, never executed."""
    ops = list(pickletools.genops(data))
    strings = [arg for _, arg, _ in ops if isinstance(arg, str)]
    imports = (any(op.name == "STACK_GLOBAL" for op, _, _ in ops) and module in strings and name in strings) or \
        any(op.name == "GLOBAL" and arg == f"{module} {name}" for op, arg, _ in ops)
    return imports and argument in strings and any(op.name == "REDUCE" for op, _, _ in ops)


def _resume(run_dir: Path) -> list[str]:
    return ["train", "--model", "nram", "--out", str(run_dir), "--resume", "--steps", "3", "--no-progress",
            "--device", "cpu"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_resume_with_a_hostile_optimizer_runs_nothing(tiny_run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _copy(tiny_run, tmp_path / "run")
    marker = tmp_path / "pickle-ran"
    (run_dir / "optimizer.pt").write_bytes(pickle.dumps({"step": 2, "optimizers": _WritesMarker(marker)}))
    assert cli(_resume(run_dir)) == 2
    err = _one_line(capsys)
    assert "corrupt or was not written by pyposert" in err and str(run_dir) in err
    assert not marker.exists()
    # Control, read without executing it: the file really is a pickle that would call open() on
    # the marker (pickletools only lists the opcodes).
    assert _would_call((run_dir / "optimizer.pt").read_bytes(), "io", "open", str(marker))


def test_a_corrupt_generator_is_one_line_for_resume_and_export(tiny_run: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from export.__main__ import _cli as export_cli

    run_dir = _copy(tiny_run, tmp_path / "run")
    (run_dir / "generator.safetensors").write_bytes(b"\xff" * 64)
    assert cli(_resume(run_dir)) == 2
    assert "corrupt" in _one_line(capsys)
    monkeypatch.setattr(sys, "argv", ["python -m export", str(run_dir), "-o", str(tmp_path / "x.plan"), "-q"])
    assert export_cli() == 2
    assert "corrupt" in _one_line(capsys)
    assert not (tmp_path / "x.plan").exists()


def test_export_to_a_directory_is_one_line(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from export.__main__ import _cli as export_cli

    monkeypatch.setattr(sys, "argv", ["python -m export", str(tiny_run), "-o", str(tmp_path), "-q"])
    assert export_cli() == 2
    assert "is a directory" in _one_line(capsys)


def test_checkpoint_config_is_checked_on_resume(tiny_run: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint.json whose recipe has a negative count is refused like the flag would be."""
    run_dir = _copy(tiny_run, tmp_path / "run")
    side = json.loads((run_dir / "checkpoint.json").read_text())
    side["config"]["train"]["eval_every"] = -1
    (run_dir / "checkpoint.json").write_text(json.dumps(side))
    assert cli(_resume(run_dir)) == 2
    assert "eval_every" in _one_line(capsys)


@pytest.mark.parametrize("argv", [
    ["evaluate", "--checkpoint", "x", "--count", "0"],
    ["evaluate", "--checkpoint", "x", "--grid-rows", "-1"],
    ["evaluate", "--checkpoint", "x", "--pad-white", "-1"],
    ["evaluate-completion", "--checkpoint", "x", "--samples", "0"],
])
def test_evaluate_counts_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli(argv)
    assert exit_info.value.code == 2 and "error: argument" in capsys.readouterr().err


def test_evaluate_a_damaged_checkpoint_is_one_line(tiny_run: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _copy(tiny_run, tmp_path / "run")
    (run_dir / "checkpoint.json").write_text("[" * 100000)
    assert cli(["evaluate", "--checkpoint", str(run_dir), "--count", "2"]) == 2
    assert "corrupt" in _one_line(capsys)
