"""Parameters, GFLOPs per frame and ONNX Runtime CPU FPS of every generator configuration.

    python -m training.flops                      # all models, sizes paper and rt
    python -m training.flops --sizes rt --runs 30 # only the real-time configs
    python -m training.flops --no-fps             # params and GFLOPs only (fast)

Prints a markdown table. FLOPs are counted by torch.utils.flop_counter.FlopCounterMode on one
batch-1 forward pass in eval mode (convolutions, matmuls and the pyposert::attention op at
2 * B * Nq * Nk * (Dk + Dv); a multiply-add counts as 2 FLOPs; norms and activations are not
counted). FPS: the generator is exported with torch.onnx.export (TorchScript exporter,
standard ops only: attention traced as MatMul/Softmax/MatMul via training.ops.plain_attention),
run by ONNX Runtime's CPU provider with intra-op threads = 2 (batch 1, fp32); a few warm-up
runs, then the median of --runs timed runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import IO

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from training.models import MODEL_NAMES, SIZES, ModelConfig, build_generator, model_config
from training.ops import plain_attention

__all__ = ["Measurement", "count_params", "count_flops", "example_inputs", "export_onnx", "ort_fps", "measure", "main"]


@dataclass(frozen=True)
class Measurement:
    model: str
    size: str
    height: int
    width: int
    params_m: float
    gflops: float
    fps: float | None  # 1000 / median ms; None when not measured
    ms: float | None  # median ms per frame
    best_ms: float | None  # fastest run: the least disturbed by other work on a shared CPU


def count_params(module: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


def example_inputs(cfg: ModelConfig, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (source_image [B,3,H,W] in [-1,1], pose_heatmaps [B,36,H,W] in [0,1]) float32."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, cfg.image_channels, cfg.height, cfg.width, generator=g) * 2 - 1
    pose = torch.rand(batch, cfg.pose_channels, cfg.height, cfg.width, generator=g)
    return image, pose


@torch.no_grad()
def count_flops(generator: nn.Module, cfg: ModelConfig) -> int:
    """FLOPs of one batch-1 forward pass (eval mode), attention op included."""
    was_training = generator.training
    generator.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            generator(*example_inputs(cfg))
    finally:
        generator.train(was_training)
    return int(counter.get_total_flops())


def export_onnx(generator: nn.Module, cfg: ModelConfig, path: str | os.PathLike[str] | IO[bytes],
                opset: int = 17) -> None:
    """Standard-op ONNX export (file path or binary file object): inputs "source_image"
    [1,3,H,W], "pose_heatmaps" [1,36,H,W]; output "image" [1,3,H,W]. Puts the generator in eval mode."""
    generator.eval()
    with plain_attention(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            generator,
            example_inputs(cfg),
            path,
            input_names=["source_image", "pose_heatmaps"],
            output_names=["image"],
            opset_version=opset,
            dynamo=False,
        )


def ort_fps(path: str, cfg: ModelConfig, runs: int = 20, warmup: int = 3,
            threads: int = 2) -> tuple[float, float, float]:
    """(FPS from the median, median ms, best ms) of an ONNX generator under ONNX Runtime CPU,
    batch 1, fp32, intra-op threads = threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    image, pose = example_inputs(cfg)
    feeds = {"source_image": image.numpy(), "pose_heatmaps": pose.numpy()}
    for _ in range(warmup):
        sess.run(None, feeds)
    times: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return 1.0 / med, med * 1000.0, min(times) * 1000.0


def measure(name: str, size: str, fps: bool = True, runs: int = 20, **overrides: object) -> Measurement:
    cfg = model_config(name, size, **overrides)
    torch.manual_seed(0)
    gen = build_generator(cfg)
    params = count_params(gen)
    flops = count_flops(gen, cfg)
    f: float | None = None
    ms: float | None = None
    best: float | None = None
    if fps:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"{name}_{size}.onnx")
            export_onnx(gen, cfg, path)
            del gen  # free the torch weights before timing (paper models are large)
            f, ms, best = ort_fps(path, cfg, runs=runs)
    return Measurement(name, size, cfg.height, cfg.width, params / 1e6, flops / 1e9, f, ms, best)


def format_table(rows: list[Measurement]) -> str:
    lines = [
        "| model | size | H x W | params (M) | GFLOPs/frame | ORT CPU FPS (median) | ms/frame median | ms/frame best |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        fps = "-" if r.fps is None else f"{r.fps:.1f}"
        ms = "-" if r.ms is None else f"{r.ms:.1f}"
        best = "-" if r.best_ms is None else f"{r.best_ms:.1f}"
        lines.append(
            f"| {r.model} | {r.size} | {r.height} x {r.width} | {r.params_m:.2f} | {r.gflops:.2f} "
            f"| {fps} | {ms} | {best} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=SIZES)
    ap.add_argument("--runs", type=int, default=20, help="timed ORT runs per model (median reported)")
    ap.add_argument("--no-fps", action="store_true", help="skip the ONNX export and ORT timing")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    rows: list[Measurement] = []
    for size in args.sizes:
        for name in args.models:
            rows.append(measure(name, size, fps=not args.no_fps, runs=max(args.runs, 1)))
            print(f"# measured {name} {size}", flush=True)
    print(format_table(rows))


if __name__ == "__main__":
    main()
