"""Fashion completion: one completion (batch 1) every way a user could run it, side by side.

Group ``backend-completion-rt`` (128 x 88, crops 64 x 64):

- ``torch_eager``: ``CompletionModel.sample`` (both stages) on the CPU under inference mode;
- ``onnxruntime``: a bare ``onnxruntime.InferenceSession`` on the bundle's ``model.onnx`` with
  default options, inputs prepared in advance;
- ``pyposert``: ``Engine.complete(photo, parsing, pose, "top")`` on the demo person
  (pyposert/data/demo, 256 x 176): erase box, letterboxing, one-hot parsing, heatmaps, garment crops,
  the network, un-letterboxing and compositing into the photo -- everything a caller gets.

The bundle is the shipped ``models/completion.plan`` when it exists (the torch case then loads
its checkpoint's weights when ``models/checkpoints/completion_rt_cpu`` exists), else a
random-init model exported to a temporary bundle. Records the same ``extra_info`` as
bench_backends.py (kind "backend", gflops per call from torch's FLOP counter, ...).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import cv2  # noqa: E402

import pyposert  # noqa: E402
from pyposert import completion as C  # noqa: E402
from pyposert.backends.onnxruntime_backend import physical_cores  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
WARMUP = 3


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from torch.utils.flop_counter import FlopCounterMode

    from export.completion_export import (completion_inputs, completion_manifest, export_completion_onnx,
                                          fold_spectral_norm)
    from pyposert.bundle import read_bundle, write_bundle
    from training.models.completion import CompletionConfig, CompletionModel, completion_config

    plan = MODELS / "completion.plan"
    ckpt = MODELS / "checkpoints" / "completion_rt_cpu"
    if plan.is_file():
        bundle = read_bundle(plan)
        cfg = CompletionConfig.from_dict(bundle.model_config)
        onnx = bundle.read_payload("model.onnx")
        if (ckpt / "checkpoint.json").is_file():
            from training.train_completion import load_completion_checkpoint

            model, weights = load_completion_checkpoint(ckpt).build_model(), f"{ckpt.name} checkpoint"
        else:
            model, weights = CompletionModel(cfg).eval(), "random init, same config"
        origin = f"shipped {plan.name} ({bundle.model_version})"
    else:
        cfg = completion_config("rt")
        torch.manual_seed(0)
        model, weights = CompletionModel(cfg).eval(), "random init (the weights exported to ONNX)"
        onnx = export_completion_onnx(fold_spectral_norm(model), "standard")
        plan = tmp_path_factory.mktemp("completion") / "completion.plan"
        write_bundle(plan, completion_manifest(cfg, "random-init"),
                     {"model.onnx": ("onnx", onnx, {"opset": 18, "precision": "fp32", "graph": "standard"})})
        origin = "random init, exported to a temporary bundle"
    x = completion_inputs(cfg, 1)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.sample(*(x[n] for n in C.COMPLETION_INPUTS))
    return {"cfg": cfg, "model": model, "onnx": onnx, "plan": plan, "inputs": x, "origin": origin,
            "weights": weights, "gflops": counter.get_total_flops() / 1e9}


def _record(benchmark: Any, p: dict[str, Any], backend: str, threads: Any, timed: str) -> None:
    cfg = p["cfg"]
    benchmark.group = "backend-completion-rt"
    benchmark.extra_info.update({"kind": "backend", "model": "completion", "size": "rt", "height": cfg.height,
                                 "width": cfg.width, "backend": backend, "device": "cpu", "precision": "fp32",
                                 "batch": 1, "gflops": p["gflops"], "threads": threads, "timed": timed})


def _demo() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    demo = Path(__file__).resolve().parents[1] / "pyposert" / "data" / "demo"
    photo = cv2.imread(str(demo / "person.png"), cv2.IMREAD_COLOR)
    parsing = cv2.imread(str(demo / "person_parsing.png"), cv2.IMREAD_UNCHANGED)
    flat = json.loads((demo / "person_pose.json").read_text())["people"][0]["pose_keypoints_2d"]
    return photo, parsing, np.asarray(flat, np.float32).reshape(18, 3)


@pytest.mark.parametrize("backend", ("torch_eager", "onnxruntime", "pyposert"))
def test_completion_cpu(benchmark: Any, prepared: dict[str, Any], backend: str) -> None:
    p = prepared
    x = p["inputs"]
    args = tuple(x[n] for n in C.COMPLETION_INPUTS)
    network_only = "network only (shape + texture stages), batch 1, inputs prepared in advance"
    if backend == "torch_eager":
        _record(benchmark, p, backend, torch.get_num_threads(), network_only)
        benchmark.extra_info["weights"] = p["weights"]

        def run() -> Any:
            with torch.inference_mode():
                return p["model"].sample(*args)[1]
    elif backend == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(p["onnx"], providers=["CPUExecutionProvider"])
        feeds = {n: x[n].numpy() for n in C.COMPLETION_INPUTS}
        _record(benchmark, p, backend, "ORT default", network_only + "; InferenceSession with default SessionOptions")
        benchmark.extra_info["weights"] = p["origin"]

        def run() -> Any:
            return session.run(None, feeds)[1]
    else:
        engine = pyposert.Engine(p["plan"], backend="onnxruntime")
        photo, parsing, pose = _demo()
        _record(benchmark, p, backend, physical_cores(),
                f"Engine.complete(photo {photo.shape[0]}x{photo.shape[1]}, parsing, pose, 'top'): erase box, "
                f"letterbox, one-hot parsing, heatmaps, garment crops, network, un-letterbox and composite")
        benchmark.extra_info.update({"weights": p["origin"], "includes_pre_post": True})

        def run() -> Any:
            return engine.complete(photo, parsing, pose, "top").images[0]
    for _ in range(WARMUP):
        out = run()
    out = benchmark(run)
    assert np.isfinite(np.asarray(out, dtype=np.float32)).all()
    benchmark.extra_info["load_average_1m"] = os.getloadavg()[0]
