"""Parser checkpoint -> ``parser.plan``: ``python -m export.parser_export RUN -o models/parser.plan``.

One payload, ``model.onnx`` (standard ops, opset 18, batch dynamic): ``photo`` [B, 3, H, W] and
``pose_heatmaps`` [B, 18, H, W] -> ``parsing`` [B, 8, H, W] class probabilities (the "parsing"
task of :mod:`pyposert.model`, run by ``Engine.parse``). Its parity against torch is checked
under ONNX Runtime on held-out synthetic people, batches 1 and 3 (max abs error <= 1e-4, or the
export fails).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyposert import completion as C
from training.models.parser import PARSER_INPUTS, PARSER_OUTPUTS, ParserConfig, ParserGraph, ParserNet

__all__ = ["parser_inputs", "parser_manifest", "export_parser_onnx", "export_parser_bundle", "main"]

ORT_TOLERANCE = 1e-4


def parser_inputs(cfg: ParserConfig, batch: int, start: int = 0) -> dict[str, torch.Tensor]:
    """``batch`` held-out synthetic people (eval split from ``start``) as the graph's inputs."""
    from training.data.completion import CompletionSamples
    from training.train_parser import parser_batch

    ds = CompletionSamples(cfg.height, cfg.width, 64, "eval", 0, "plain")
    renders = [ds.render(start + i)[0] for i in range(batch)]
    photo, heat = parser_batch(torch.from_numpy(np.stack([r.image for r in renders])),
                               torch.from_numpy(np.stack([r.keypoints for r in renders])).float(), cfg)
    return {"photo": photo, "pose_heatmaps": heat}


def export_parser_onnx(net: ParserNet, opset: int = 18) -> bytes:
    from export import onnx_export as ox

    x = parser_inputs(net.config, 2)
    names = list(PARSER_INPUTS)
    with torch.no_grad(), ox._quiet_export():
        program = torch.onnx.export(ParserGraph(net).eval(), tuple(x[n] for n in names), dynamo=True,
                                    opset_version=opset, input_names=names, output_names=list(PARSER_OUTPUTS),
                                    dynamic_shapes=ox._dynamic(names), verbose=False)
    return ox._finish(program.model_proto, net.config, "standard", "fp32")


def _ort_parity(data: bytes, net: ParserNet) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst = 0.0
    for b, start in ((1, 10), (3, 20)):
        x = parser_inputs(net.config, b, start)
        with torch.no_grad():
            ref = ParserGraph(net).eval()(*(x[n] for n in PARSER_INPUTS)).numpy()
        got = session.run(list(PARSER_OUTPUTS), {n: x[n].numpy() for n in PARSER_INPUTS})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def parser_manifest(cfg: ParserConfig, version: str) -> dict[str, Any]:
    """The bundle manifest (without payloads): task "parsing", frame and heatmap convention."""
    return {
        "task": "parsing",
        "model": {"name": "parser", "version": version, "config": cfg.to_dict(),
                  "parsing_classes": list(C.PARSING_CLASSES)},
        "input": {"height": cfg.height, "width": cfg.width, "keypoint_format": "coco18", "keypoint_order": "xy",
                  "image": "rgb", "normalisation": "[-1,1]",
                  "heatmap": {"mode": "gaussian", "sigma": float(cfg.heatmap_sigma), "radius": 4.0}},
    }


def export_parser_bundle(run: str | Path, output: str | Path, version: str | None = None) -> dict[str, Any]:
    """Write the bundle; returns {"path", "max_abs_error", "bytes"}."""
    from export.onnx_export import ExportError
    from pyposert.bundle import write_bundle
    from training.train_parser import load_parser

    net, side = load_parser(run)
    data = export_parser_onnx(net)
    err = _ort_parity(data, net)
    if not err <= ORT_TOLERANCE:
        raise ExportError(f"parser model.onnx under ONNX Runtime differs from torch: max abs error {err:.3g} > "
                          f"{ORT_TOLERANCE}")
    payloads = {"model.onnx": ("onnx", data, {"opset": 18, "precision": "fp32", "graph": "standard",
                                              "parity": {"reference": "torch fp32", "runtime": "onnxruntime",
                                                         "batches": [1, 3], "max_abs_error": err}})}
    path = write_bundle(Path(output), parser_manifest(net.config, version or f"step-{side['step']}"), payloads)
    return {"path": str(path), "max_abs_error": err, "bytes": len(data)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.parser_export", description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="parser run folder (python -m training.train_parser)")
    ap.add_argument("-o", "--output", required=True, help="bundle to write (.plan)")
    ap.add_argument("--model-version", help="version string (default step-N)")
    args = ap.parse_args(argv)
    res = export_parser_bundle(args.run, args.output, args.model_version)
    print(f"wrote {res['path']}: model.onnx {res['bytes'] / 1e6:.2f} MB, ONNX Runtime parity max abs error "
          f"{res['max_abs_error']:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
