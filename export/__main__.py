"""``python -m export CHECKPOINT -o model.plan [--fp16] [--tensorrt] [--torch-export] [--opset N]``

Turns a training run into a pyposert ``.plan`` bundle (pyposert/bundle.py):

1. load the generator from the run folder (``generator.safetensors`` + ``checkpoint.json``);
2. ``model.onnx`` (standard ops) -- checked with onnx.checker and its structure, then run in
   ONNX Runtime against torch (batch 1, 2, 3; max abs error <= 1e-4 or the export fails);
3. ``model_pyposert.onnx`` (PoseHeatmap + FusedAttention custom nodes), with ``--fp16`` also
   ``model_pyposert_fp16.onnx`` -- checked with onnx.checker and its structure (ONNX Runtime
   has no kernels for the pyposert domain);
4. ``--torch-export``: ``model.pt2`` (torch.export program of the standard graph);
5. ``--tensorrt``: engines from the custom-node graph(s) for this GPU and TensorRT version
   (fp16 with ``--fp16``, else fp32), each checked against torch fp32;
6. write the bundle atomically and print a summary.

Without TensorRT, ``--tensorrt`` fails at once with BackendUnavailable (nothing is exported);
without the flag nothing needs TensorRT, nvcc or a GPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyposert.errors import BackendUnavailable, PlanError

__all__ = ["ExportResult", "export_bundle", "main", "resolve_checkpoint"]

ORT_TOLERANCE = 1e-4  # max abs error of ONNX Runtime (fp32) vs torch (fp32)


@dataclass
class ExportResult:
    """What an export produced: the bundle path, payload sizes, parity numbers per check,
    what was included and what was skipped (with the reason)."""

    output: Path
    sizes: dict[str, int] = field(default_factory=dict)
    parity: dict[str, str] = field(default_factory=dict)
    included: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        total = self.output.stat().st_size if self.output.exists() else 0
        lines = [f"wrote {self.output} ({_size(total)}) in {self.seconds:.1f} s"]
        lines.append("payloads:")
        lines += [f"  {name:<44} {_size(size):>10}" for name, size in self.sizes.items()]
        lines.append("parity (vs torch fp32):")
        lines += [f"  {what}: {numbers}" for what, numbers in self.parity.items()]
        lines.append("included:")
        lines += [f"  {item}" for item in self.included]
        lines.append("skipped:" if self.skipped else "skipped: nothing")
        lines += [f"  {item}" for item in self.skipped]
        return "\n".join(lines)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def resolve_checkpoint(path: str | Path) -> Path:
    """The run folder of CHECKPOINT: the folder itself, or the folder of its
    generator.safetensors / checkpoint.json. FileNotFoundError if there is no checkpoint.json."""
    p = Path(path)
    folder = p.parent if p.is_file() else p
    if not (folder / "checkpoint.json").is_file():
        raise FileNotFoundError(f"no training checkpoint at {p}: expected a run folder with checkpoint.json and "
                                "generator.safetensors (training/train.py writes them), or one of those files")
    return folder


class _Progress:
    """tqdm over the export steps (stderr), naming the step in progress."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="export", unit="step", disable=not enabled, file=sys.stderr,
                        bar_format="{desc:<34} {n_fmt}/{total_fmt} |{bar:20}| {elapsed}")

    def start(self, label: str) -> None:
        self.bar.set_description_str(f"export: {label}")

    def done(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def export_bundle(checkpoint: str | Path, output: str | Path, *, fp16: bool = False, tensorrt: bool = False,
                  torch_export: bool = False, opset: int | None = None, name: str | None = None,
                  model_version: str | None = None, ptx_cache: str | Path | None = None,
                  progress: bool = True) -> ExportResult:
    """Export a training run to a ``.plan`` bundle (see the module docstring); returns what was
    done. Raises BackendUnavailable (``tensorrt`` without TensorRT/GPU/nvcc, before any work),
    FileNotFoundError (no checkpoint), ExportError (a graph fails its checks or parity)."""
    import onnx

    from export import onnx_export as ox
    from pyposert.bundle import write_bundle
    from training.train import load_checkpoint

    start = time.perf_counter()
    out = Path(output)
    if out.is_dir():  # found now, not as an IsADirectoryError after minutes of export
        raise ValueError(f"-o {out} is a directory; give the bundle's file name, e.g. {out / 'model.plan'}")
    folder = resolve_checkpoint(checkpoint)
    opset = ox.DEFAULT_OPSET if opset is None else int(opset)
    if opset < ox.MIN_OPSET:
        # The exporter would quietly fall back to 18 when its down-conversion fails.
        raise ValueError(f"--opset must be >= {ox.MIN_OPSET} (the torch.export-based ONNX exporter's minimum), "
                         f"got {opset}")
    if tensorrt:
        from export.tensorrt_build import require_tensorrt

        require_tensorrt()  # fail before minutes of export, not after
    result = _skips(fp16, tensorrt, torch_export, ExportResult(out))
    steps = 5 + int(fp16) + int(torch_export) + int(tensorrt)
    bar = _Progress(steps, progress)
    payloads: dict[str, tuple[str, bytes, dict[str, Any]]] = {}
    from training.train_completion import is_completion_checkpoint

    if is_completion_checkpoint(folder):  # the fashion-completion model: its own graphs and manifest
        from export.completion_export import export_completion_bundle

        try:
            export_completion_bundle(folder, out, fp16=fp16, tensorrt=tensorrt, torch_export=torch_export,
                                     opset=opset, name=name, model_version=model_version,
                                     ptx_cache=Path(ptx_cache) if ptx_cache is not None else None, result=result,
                                     progress=bar.start, done=bar.done)
        finally:
            bar.close()
        result.seconds = time.perf_counter() - start
        return result
    try:
        bar.start("loading checkpoint")
        ck = load_checkpoint(folder, with_training_state=False)
        cfg = ck.model_config()
        generator = ck.build_generator()
        attention_calls = ox.count_attention_calls(generator, cfg)
        bar.done()

        bar.start("model.onnx")
        standard = ox.export_standard_onnx(generator, cfg, opset)
        report = ox.check_standard_graph(onnx.load_from_string(standard), cfg, attention_calls, opset)
        bar.done()

        bar.start("ONNX Runtime parity")
        checks = ox.onnxruntime_parity(standard, generator, cfg, batches=(1, 2, 3))
        worst = max(checks, key=lambda c: c.max_abs_error)
        if not worst.max_abs_error <= ORT_TOLERANCE:
            raise ox.ExportError(f"model.onnx under ONNX Runtime differs from torch: {worst} > {ORT_TOLERANCE}")
        result.parity["model.onnx (ONNX Runtime, batch 1/2/3)"] = (
            f"max abs error {worst.max_abs_error:.3g}, PSNR >= {min(c.psnr_db for c in checks):.1f} dB")
        payloads["model.onnx"] = ("onnx", standard, {
            "opset": report.opset, "precision": "fp32", "graph": "standard",
            "parity": {"reference": "torch fp32", "runtime": "onnxruntime", "batches": [1, 2, 3],
                       **ox.parity_fields(checks)}})
        result.included.append(f"model.onnx: standard ops, opset {report.opset}, {report.nodes} nodes, "
                               f"{attention_calls} attention(s) as MatMul/Softmax/MatMul"
                               + (", inputs warped_source / warp_coverage (warp-guided)" if cfg.warp_guided else ""))
        bar.done()

        graphs: dict[str, tuple[str, bytes]] = {}
        for precision in ("fp32", "fp16") if fp16 else ("fp32",):
            pname = "model_pyposert_fp16.onnx" if precision == "fp16" else "model_pyposert.onnx"
            bar.start(pname)
            data = ox.export_pyposert_onnx(generator, cfg, opset, precision)
            rep = ox.check_pyposert_graph(onnx.load_from_string(data), cfg, attention_calls, precision, opset)
            payloads[pname] = ("onnx-pyposert", data, {"opset": rep.opset, "precision": precision,
                                                       "graph": "pyposert", "domain_version": ox.DOMAIN_VERSION})
            graphs[precision] = (pname, data)
            result.included.append(f"{pname}: {precision}, 1 PoseHeatmap + {attention_calls} FusedAttention node(s), "
                                   f"{rep.nodes} nodes (structure checked; ONNX Runtime cannot run pyposert nodes)")
            bar.done()

        if torch_export:
            bar.start("model.pt2")
            payloads["model.pt2"] = ("torch-export", ox.export_torch_program(generator, cfg),
                                     {"precision": "fp32", "graph": "standard"})
            result.included.append("model.pt2: torch.export program of the standard graph (plain attention)")
            bar.done()

        if tensorrt:
            from export.tensorrt_build import build_engines

            bar.start("TensorRT engines")
            wanted = {"fp16": graphs["fp16"]} if fp16 else {"fp32": graphs["fp32"]}
            engines, rejected = build_engines(wanted, generator, cfg, out,
                                              Path(ptx_cache) if ptx_cache is not None else None)
            for e in engines:
                payloads[e.name] = ("tensorrt", e.data, e.extra())
                result.parity[f"{e.name} (TensorRT {e.tensorrt_version}, batch {e.parity.batch})"] = str(e.parity)
                result.included.append(f"{e.name}: compute capability {e.compute_capability}, {e.precision}, "
                                       f"batch 1..8 (opt 1), built in {e.seconds:.0f} s")
            result.skipped += rejected
            bar.done()

        bar.start("writing bundle")
        manifest = {
            "model": {"name": name or cfg.name, "version": model_version or f"step-{ck.step}",
                      "config": cfg.to_dict()},
            "input": {"height": cfg.height, "width": cfg.width, "keypoint_format": "coco18", "keypoint_order": "xy",
                      "image": "rgb", "normalisation": "[-1,1]",
                      "heatmap": {"mode": cfg.heatmap_mode, "sigma": float(cfg.heatmap_sigma),
                                  "radius": float(cfg.heatmap_radius)}},
        }
        write_bundle(out, manifest, payloads)
        result.sizes = {n: len(p[1]) for n, p in payloads.items()}
        bar.done()
    finally:
        bar.close()
    result.seconds = time.perf_counter() - start
    return result


def _skips(fp16: bool, tensorrt: bool, torch_export: bool, result: ExportResult) -> ExportResult:
    if not fp16:
        result.skipped.append("model_pyposert_fp16.onnx: not requested (--fp16)")
    if not torch_export:
        result.skipped.append("model.pt2: not requested (--torch-export)")
    if not tensorrt:
        result.skipped.append("TensorRT engines: not requested (--tensorrt); build them on the target GPU by "
                              "re-running this export there with --tensorrt (the runtime does not build engines)")
    return result


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a pyposert training run to a .plan bundle (ONNX graphs, optional TensorRT engines).")
    ap.add_argument("checkpoint", help="training run folder (or its generator.safetensors / checkpoint.json)")
    ap.add_argument("-o", "--output", required=True, help="bundle to write, e.g. models/nram.plan")
    ap.add_argument("--fp16", action="store_true",
                    help="also export the custom-node graph in half precision (fp32 I/O, fp16 inside, float32 "
                         "normalisation); with --tensorrt the engine is built from it")
    ap.add_argument("--tensorrt", action="store_true",
                    help="build TensorRT engines for this GPU (needs TensorRT >= 10.9, a CUDA torch and nvcc)")
    ap.add_argument("--torch-export", action="store_true", help="include a torch.export program (model.pt2)")
    ap.add_argument("--opset", type=int, default=None, help="ONNX opset, >= 18 (default 18)")
    ap.add_argument("--name", default=None, help="model name in the manifest (default: the config's model name)")
    ap.add_argument("--model-version", default=None, help="model version string (default: step-<training step>)")
    ap.add_argument("--ptx-cache", default=None, help="folder caching the plugins' PTX (default ~/.cache/pyposert/ptx)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the exporter; returns 0. Errors propagate (BackendUnavailable, FileNotFoundError,
    ExportError, ...): the ``python -m export`` entry point turns them into a message."""
    args = build_parser().parse_args(argv)
    result = export_bundle(args.checkpoint, args.output, fp16=args.fp16, tensorrt=args.tensorrt,
                           torch_export=args.torch_export, opset=args.opset, name=args.name,
                           model_version=args.model_version, ptx_cache=args.ptx_cache, progress=not args.quiet)
    print(result.summary())
    return 0


def _cli() -> int:
    try:
        return main()
    except (BackendUnavailable, PlanError, OSError, ValueError, RuntimeError) as exc:
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        print(f"python -m export: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_cli())
