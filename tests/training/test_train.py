"""Training and evaluation entry points on tiny configurations (32 x 24 images, a few channels,
a handful of steps): checkpoints, exact resume, the PG2 phases, the VGG switch, evaluate's
report, real-dataset layout, and a 2-process torchrun (gloo) run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from training.__main__ import main as cli
from training.data import poses as P
from training.models import MODEL_NAMES, SIZES, build_generator
from training.train import (
    CONFIG_DIR,
    StepBatchSampler,
    TrainConfig,
    TrainSection,
    default_config_path,
    load_checkpoint,
    load_config,
    lr_at,
    train,
)

REPO = Path(__file__).resolve().parents[2]

TINY_MODEL = dict(height=32, width=24, ngf=4, n_blocks=2, ndf=4, d_blocks=1, d_dropout=0.5,
                  heatmap_sigma=1.5, pg2_hidden=4)


def write_tiny_pose_bank(folder: Path, per_split: int = 6) -> Path:
    """A few real DeepFashion poses from both sides of the held-out split (fast renderer setup)."""
    src = P.default_poses_dir() / "fasion-annotation-test.csv"
    if not src.is_file():
        pytest.skip(f"shared poses not found at {src}")
    names, kp = P.read_annotation_csv(src)
    pres = P.present_mask(kp)
    ok = (pres.sum(-1) >= 12) & pres[:, [P.NECK, P.R_SHOULDER, P.L_SHOULDER]].all(-1)
    chosen: dict[bool, list[int]] = {True: [], False: []}
    for i in np.flatnonzero(ok):
        side = P.is_heldout(P.subject_of(names[i]))
        if len(chosen[side]) < per_split:
            chosen[side].append(int(i))
        if all(len(v) == per_split for v in chosen.values()):
            break
    folder.mkdir(parents=True, exist_ok=True)
    lines = [P.ANNOTATION_HEADER]
    for i in chosen[True] + chosen[False]:
        lines.append(f"{names[i]}: {kp[i, :, 1].astype(int).tolist()}: {kp[i, :, 0].astype(int).tolist()}")
    (folder / "fasion-annotation-tiny.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def poses_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_tiny_pose_bank(tmp_path_factory.mktemp("poses")))


def tiny_config(poses_dir: str, model: str = "nram", **sections: Any) -> TrainConfig:
    overrides = dict(TINY_MODEL)
    if model == "pg2":
        overrides.update(heatmap_mode="disk")
    cfg = TrainConfig.from_dict({
        "model": model, "size": "rt", "model_overrides": overrides,
        "train": {"steps": 3, "batch_size": 2, "eval_count": 2, "log_every": 1, "seed": 5},
        "loss": {"gan_mode": "bce" if model == "pg2" else "lsgan"},
        "data": {"length": 64, "poses_dir": poses_dir},
    })
    return cfg.replace(**sections) if sections else cfg


def run(cfg: TrainConfig, out: Path, **kwargs: Any) -> dict[str, Any]:
    """train() in this process, on the CPU (bit-exact resume needs deterministic kernels)."""
    return train(cfg, out, progress=False, device="cpu", **kwargs)


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint: generator, discriminators and the optimizer states."""
    out = {f"g.{k}": v for k, v in load_file(str(folder / "generator.safetensors")).items()}
    out.update({f"d.{k}": v for k, v in load_file(str(folder / "discriminators.safetensors")).items()})
    opt = torch.load(folder / "optimizer.pt", weights_only=True)

    def walk(prefix: str, x: Any) -> None:
        if isinstance(x, torch.Tensor):
            out[prefix] = x
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(f"{prefix}.{i}", v)

    walk("opt", opt["optimizers"])
    return out


# -- configuration -----------------------------------------------------------------------

def test_shipped_configs_load() -> None:
    # completion_*.toml are the fashion-completion recipes (tests/training/test_completion.py).
    files = sorted(p for p in CONFIG_DIR.glob("*.toml") if not p.name.startswith("completion_"))
    defaults = {f"{m}_{s}.toml" for m in MODEL_NAMES for s in SIZES}
    assert defaults <= {p.name for p in files}
    # Besides the defaults: the short CPU-budget recipes (<model>_rt_cpu.toml) of the shipped
    # checkpoints, their fine-tune stages (<model>_rt_cpu_ft.toml) and the warp-guided recipes
    # (<model>_rt_wg_cpu.toml); they must load and be
    # rt configs of their model.
    for extra in sorted({p.name for p in files} - defaults):
        model, size, budget = extra[:-len(".toml")].split("_", 2)
        assert model in MODEL_NAMES and size == "rt" and budget in ("cpu", "cpu_ft", "wg_cpu"), extra
        cfg = load_config(CONFIG_DIR / extra)
        assert (cfg.model, cfg.size) == (model, "rt") and cfg.train.steps > 0
    for model in MODEL_NAMES:
        for size in SIZES:
            cfg = load_config(default_config_path(model, size))
            mcfg = cfg.model_config()
            assert (cfg.model, cfg.size) == (model, size)
            assert (mcfg.height, mcfg.width) == ((128, 88) if size == "rt" else (256, 176))
            assert mcfg.heatmap_mode == ("disk" if model == "pg2" else "gaussian")
            assert cfg.data.source == "synthetic" and cfg.train.steps > 0
            # The default recipes must not need VGG weights: VGG terms are opt-in extras.
            assert cfg.loss.lambda_l1 > 0 and cfg.loss.lambda_gan > 0
    assert load_config(default_config_path("pg2", "rt")).train.g1_steps > 0


def test_config_rejects_typos(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('size = "rt"\n[model]\nname = "nram"\n[train]\nstep = 3\n')
    with pytest.raises(ValueError, match=r"unknown keys \['step'\]"):
        load_config(p)
    p.write_text('size = "rt"\n[model]\nname = "nram"\nngff = 3\n')
    with pytest.raises(ValueError, match="ngff"):
        load_config(p)
    cfg = tiny_config("")
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_lr_policies() -> None:
    t = TrainSection(steps=10, lr_policy="linear", lr_decay_steps=4)
    lrs = [lr_at(s, 1.0, t) for s in range(10)]
    assert lrs[:6] == [1.0] * 6 and lrs[6:] == pytest.approx([0.8, 0.6, 0.4, 0.2])
    s = TrainSection(steps=10, lr_policy="step", lr_step=4, lr_gamma=0.5)
    assert [lr_at(i, 1.0, s) for i in (0, 3, 4, 9)] == [1.0, 1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="lr_step"):
        TrainSection(lr_policy="step")


def test_step_batches_shard_and_resume() -> None:
    a = iter(StepBatchSampler(20, 2, seed=1, rank=0, world=2))
    b = iter(StepBatchSampler(20, 2, seed=1, rank=1, world=2))
    epoch = [next(a) + next(b) for _ in range(5)]  # 5 steps x 2 ranks x 2 = one epoch of 20
    flat = [i for batch in epoch for i in batch]
    assert sorted(flat) == list(range(20))  # ranks see disjoint shards covering the epoch
    full = iter(StepBatchSampler(20, 3, seed=1))
    batches = [next(full) for _ in range(9)]
    resumed = iter(StepBatchSampler(20, 3, seed=1, start_step=4))
    assert [next(resumed) for _ in range(5)] == batches[4:]  # the same order after a resume


# -- training runs -----------------------------------------------------------------------

def _training_imports() -> dict[str, set[str]]:
    """Module -> the training.* modules it imports anywhere (also inside functions), for the
    modules directly in training/ (training.models and training.data are leaves to them)."""
    import ast

    folder = REPO / "training"
    names = {f"training.{f.stem}" for f in folder.glob("*.py")} - {"training.__init__"}
    graph: dict[str, set[str]] = {}
    for name in names:
        tree = ast.parse((folder / f"{name.split('.')[1]}.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = (found & names) - {name}
    return graph


def test_training_modules_import_without_cycles() -> None:
    """No import cycle among training's modules, lazy imports included: the evaluators sit below
    the training loops (train -> evaluate, train_completion -> evaluate_completion), and what both
    sides need lives in modules they both import."""
    graph = _training_imports()
    assert "training.evaluate" in graph["training.train"]
    assert "training.evaluate_completion" in graph["training.train_completion"]
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join(path + (name,))}"
        if name not in done:
            for dep in graph[name]:
                visit(dep, path + (name,))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_run_folders_refuse_the_other_trainers_format(tmp_path: Path) -> None:
    """Pose-transfer and completion checkpoints share the writer and the readers' checks; each
    reader refuses the other's folder, a newer version and a torn save (files from two steps)."""
    from training.checkpoint import load_weights, read_sidecar, write_run
    from training.completion_run import CHECKPOINT_FORMAT as COMPLETION_FORMAT

    weights = {"model.safetensors": {"w": torch.zeros(2)}}
    side = write_run(tmp_path, 3, weights, {}, {"model_config": {}, "config": {}}, COMPLETION_FORMAT, 1)
    folder, side_path, sidecar = read_sidecar(side, COMPLETION_FORMAT, 1)
    assert (folder, side_path, sidecar["step"], sidecar["format"]) == (tmp_path, side, 3, COMPLETION_FORMAT)
    with pytest.raises(ValueError, match="not a pyposert-train-checkpoint file"):
        read_sidecar(tmp_path)
    with pytest.raises(ValueError, match="version 1 is newer than this code \\(0\\)"):
        read_sidecar(tmp_path, COMPLETION_FORMAT, 0)
    assert load_weights(tmp_path / "model.safetensors", 3)["w"].shape == (2,)
    with pytest.raises(ValueError, match="is from step 3 but checkpoint.json says 4"):
        load_weights(tmp_path / "model.safetensors", 4)


def test_train_writes_checkpoint(tmp_path: Path, poses_dir: str) -> None:
    out = tmp_path / "run"
    summary = run(tiny_config(poses_dir), out)
    assert summary["steps"] == 3 and summary["steps_this_run"] == 3
    assert {"g_gan", "l1", "d_appearance", "d_pose"} <= set(summary["final_losses"])
    assert 0.0 < summary["eval"]["ssim"] <= 1.0
    for name in ("generator.safetensors", "discriminators.safetensors", "optimizer.pt", "checkpoint.json",
                 "metrics.jsonl", "summary.json"):
        assert (out / name).is_file(), name
    side = json.loads((out / "checkpoint.json").read_text())
    assert side["step"] == 3 and side["config"]["model"] == "nram" and side["model_config"]["height"] == 32
    ck = load_checkpoint(out)
    g = ck.build_generator()
    assert not g.training
    src = torch.zeros(1, 3, 32, 24)
    assert g(src, torch.zeros(1, 36, 32, 24)).shape == (1, 3, 32, 24)
    with pytest.raises(FileExistsError, match="--resume"):
        run(tiny_config(poses_dir), out)


def test_pose_mask_l1_mode(tmp_path: Path, poses_dir: str) -> None:
    # The fine-tune recipes' body-weighted L1 replaces the plain term (and typos are refused).
    cfg = tiny_config(poses_dir, loss={"l1_mode": "pose_mask", "lambda_l1": 20.0})
    summary = run(cfg.replace(train={"steps": 1}), tmp_path / "run")
    assert "pose_mask_l1" in summary["final_losses"] and "l1" not in summary["final_losses"]
    with pytest.raises(ValueError, match="l1_mode"):
        tiny_config(poses_dir, loss={"l1_mode": "masked"})


def test_resume_continues_exactly(tmp_path: Path, poses_dir: str) -> None:
    cfg3 = tiny_config(poses_dir)
    run(cfg3, tmp_path / "straight")
    cfg2 = cfg3.replace(train={"steps": 2})
    run(cfg2, tmp_path / "split")
    assert load_checkpoint(tmp_path / "split").step == 2
    summary = run(cfg3, tmp_path / "split", resume=True)
    assert summary["steps"] == 3 and summary["steps_this_run"] == 1
    a, b = tensors(tmp_path / "straight"), tensors(tmp_path / "split")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    assert load_checkpoint(tmp_path / "split").step == 3


def test_init_from_starts_a_new_run_from_saved_weights(tmp_path: Path, poses_dir: str) -> None:
    cfg = tiny_config(poses_dir, train={"steps": 2})
    run(cfg, tmp_path / "first")
    saved = load_file(str(tmp_path / "first" / "generator.safetensors"))
    zero = cfg.replace(train={"steps": 0})  # no update: the new run's weights are the seed's
    summary = run(zero, tmp_path / "second", init_from=tmp_path / "first")
    assert summary["steps"] == 0
    again = load_file(str(tmp_path / "second" / "generator.safetensors"))
    assert all(torch.equal(saved[k], again[k]) for k in saved)
    other = tiny_config(poses_dir, "pona", train={"steps": 0})
    with pytest.raises(ValueError, match="model config"):
        run(other, tmp_path / "third", init_from=tmp_path / "first")


def test_pg2_trains_g1_then_g2(tmp_path: Path, poses_dir: str) -> None:
    cfg = tiny_config(poses_dir, "pg2", train={"steps": 3, "g1_steps": 2})
    torch.manual_seed(cfg.train.seed)
    init = build_generator(cfg.model_config()).state_dict()
    out = tmp_path / "pg2"
    summary = run(cfg.replace(train={"steps": 2}), out)
    assert set(summary["final_losses"]) == {"g1_pose_mask_l1"}
    after1 = load_file(str(out / "generator.safetensors"))
    assert any(not torch.equal(after1[k], init[k]) for k in init if k.startswith("g1."))
    assert all(torch.equal(after1[k], init[k]) for k in init if k.startswith("g2."))  # G2 idle
    summary = run(cfg, out, resume=True)
    assert {"g_gan", "pose_mask_l1", "d_image"} <= set(summary["final_losses"])
    after2 = load_file(str(out / "generator.safetensors"))
    assert all(torch.equal(after2[k], after1[k]) for k in init if k.startswith("g1."))  # G1 frozen
    assert any(not torch.equal(after2[k], after1[k]) for k in init if k.startswith("g2."))


def test_vgg_losses_are_opt_in(tmp_path: Path, poses_dir: str) -> None:
    cfg = tiny_config(poses_dir, loss={"lambda_style": 1.0, "vgg_arch": "vgg16", "style_layers": ["relu1_2"]})
    summary = run(cfg.replace(train={"steps": 1}), tmp_path / "plain")
    assert "style" not in summary["final_losses"]  # no weights: the default recipe still runs
    with pytest.raises(FileNotFoundError, match="--vgg-weights"):
        run(cfg, tmp_path / "missing", vgg_weights=str(tmp_path / "nope.safetensors"))
    g = torch.Generator().manual_seed(0)
    fake = {"features.0.weight": torch.randn(64, 3, 3, 3, generator=g) * 0.1, "features.0.bias": torch.zeros(64),
            "features.2.weight": torch.randn(64, 64, 3, 3, generator=g) * 0.05, "features.2.bias": torch.zeros(64)}
    save_file(fake, str(tmp_path / "vgg16.safetensors"))
    summary = run(cfg.replace(train={"steps": 1}), tmp_path / "vgg",
                  vgg_weights=str(tmp_path / "vgg16.safetensors"))
    assert summary["final_losses"]["style"] > 0


def test_cli_train_resume_and_evaluate(tmp_path: Path, poses_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = tmp_path / "tiny.toml"
    overrides = "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY_MODEL.items())
    cfg_path.write_text(f'size = "rt"\n[model]\nname = "patn"\n{overrides}\n'
                        f'[train]\nsteps = 2\nbatch_size = 2\neval_count = 2\n'
                        f'[data]\nlength = 64\nposes_dir = {json.dumps(poses_dir)}\n')
    out = tmp_path / "run"
    args = ["train", "--config", str(cfg_path), "--out", str(out), "--no-progress", "--device", "cpu"]
    assert cli(args) == 0
    assert "done: patn rt, step 2" in capsys.readouterr().out
    assert cli(args) == 2  # refuses to overwrite a run
    assert "--resume" in capsys.readouterr().err
    assert cli(args + ["--resume", "--batch-size", "4"]) == 2  # the recipe cannot change mid-run
    assert cli(args + ["--resume", "--steps", "3"]) == 0
    assert load_checkpoint(out).step == 3
    capsys.readouterr()
    report_dir = tmp_path / "report"
    assert cli(["evaluate", "--checkpoint", str(out), "--count", "3", "--mean-count", "3",
                "--grid-rows", "2", "--out", str(report_dir)]) == 0
    table = (report_dir / "metrics.md").read_text()
    assert "| patn (rt, step 3) |" in table and "| copy the source |" in table
    assert "| mean training target |" in table and "mask-SSIM" in table
    report = json.loads((report_dir / "metrics.json").read_text())
    assert report["count"] == 3 and set(report["results"]) == {"model", "copy_source", "mean_target"}
    grid = cv2.imread(str(report_dir / "grid.png"))
    assert grid.shape == (2 * 32 + 2, 4 * 24 + 3 * 2, 3)  # 2 rows of source | skeleton | output | truth


def test_train_on_a_patn_layout_dataset(tmp_path: Path) -> None:
    """The same entry point trains on real-dataset files (here 4 tiny Market-style images)."""
    root = tmp_path / "market"
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        lines = [P.ANNOTATION_HEADER]
        names = []
        for k in range(4):
            name = f"00{k}{split[0]}_c1s1_0000{k}_01.jpg"
            img = np.full((32, 16, 3), 60 * k, np.uint8)
            cv2.imwrite(str(root / split / name), img)
            ys = [4 + k + j for j in range(18)]
            xs = [2 + (j % 12) for j in range(18)]
            lines.append(f"{name}: {ys}: {xs}")
            names.append(name)
        (root / f"market-annotation-{split}.csv").write_text("\n".join(lines) + "\n")
        (root / f"market-pairs-{split}.csv").write_text("from,to\n" + "\n".join(
            f"{names[i]},{names[(i + 1) % 4]}" for i in range(4)) + "\n")
    cfg = tiny_config("", "pona", data={"source": f"market:{root}"}, train={"steps": 2, "batch_size": 2})
    summary = run(cfg, tmp_path / "run")
    assert summary["steps"] == 2 and summary["eval"]["count"] == 2


def test_torchrun_two_processes(tmp_path: Path, poses_dir: str) -> None:
    cfg_path = tmp_path / "tiny.toml"
    overrides = "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY_MODEL.items())
    cfg_path.write_text(f'size = "rt"\n[model]\nname = "nram"\n{overrides}\n'
                        f'[train]\nsteps = 2\nbatch_size = 2\neval_count = 2\n'
                        f'[data]\nlength = 64\nposes_dir = {json.dumps(poses_dir)}\n')
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "training", "train", "--config", str(cfg_path), "--out", str(out), "--no-progress",
         "--device", "cpu"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    print(f"torchrun took {time.perf_counter() - t0:.1f} s")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "2 process(es)" in proc.stdout
    side = json.loads((out / "checkpoint.json").read_text())
    assert side["step"] == 2 and side["world_size"] == 2
    assert load_checkpoint(out).step == 2
