"""``python -m export.compact BUNDLE -o OUT.plan``: a compact copy of a bundle for the wheel.

The wheel carries the default models so that ``pip install`` then ``pyposert demo`` works
anywhere; full bundles (three graphs, fp32) are 13-17 MB each. The compact copy keeps only
the standard-op graph that ONNX Runtime runs (``model.onnx``) and stores its large weights in
float16, each followed by a ``Cast`` back to float32: the file halves, while inputs, outputs
and arithmetic stay float32 -- ONNX Runtime's CPU kernels have little fp16 support, so a true
half-precision graph would be slower there, not faster. The only change is the rounding of
the weights, which the parity check below measures on the bundle's own inputs.

Graphs that ONNX Runtime cannot run (the pyposert-node graphs for TensorRT, torch.export
programs, TensorRT engines) are dropped: the full bundle stays the model for those backends.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["compact_bundle", "fp16_weights", "main"]

# Initialisers smaller than this stay float32: biases and norm scales are tiny and most
# sensitive to rounding, and halving them saves nothing worth having.
MIN_ELEMENTS = 1024
PARITY_TOLERANCE = 0.02  # max abs output difference on the [-1, 1] image scale (~2.5 / 255)


def fp16_weights(model_bytes: bytes, min_elements: int = MIN_ELEMENTS) -> tuple[bytes, int]:
    """Standard-op ONNX graph -> the same graph with every float32 initialiser of at least
    ``min_elements`` values stored as float16 and cast back to float32 on load. Returns
    (new model bytes, number of initialisers converted)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    kept, casts, converted = [], [], 0
    for init in graph.initializer:
        if (init.data_type != TensorProto.FLOAT or init.name in graph_inputs
                or int(np.prod(init.dims)) < min_elements):
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "__fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + "__cast"))
        converted += 1
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # casts first: the graph stays topologically sorted
    onnx.checker.check_model(model)
    return model.SerializeToString(), converted


def _parity(reference: bytes, compact: bytes, seed: int = 0) -> float:
    """Max abs output difference of the two graphs under ONNX Runtime on random inputs in the
    ranges the engine feeds (images in [-1, 1], heatmaps / keypoints / noise as they come)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    a = ort.InferenceSession(reference, options, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(compact, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for i in a.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 2 for d in i.shape]
        if "int" in i.type:
            feeds[i.name] = rng.integers(0, 2, size=shape).astype(np.int64 if "64" in i.type else np.int32)
        elif "image" in i.name:
            feeds[i.name] = rng.uniform(-1, 1, size=shape).astype(np.float32)
        else:
            feeds[i.name] = rng.uniform(0, 1, size=shape).astype(np.float32)
    worst = 0.0
    for x, y in zip(a.run(None, feeds), b.run(None, feeds)):
        if np.issubdtype(np.asarray(x).dtype, np.floating):
            worst = max(worst, float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))))
    return worst


def compact_bundle(source: str | Path, output: str | Path) -> dict[str, Any]:
    """Write the compact copy of bundle ``source`` to ``output``; returns a summary
    (sizes, weights converted, parity). Raises ValueError when parity exceeds the tolerance."""
    from pyposert.bundle import read_bundle, write_bundle

    bundle = read_bundle(source)
    names = bundle.payload_names("onnx")
    if not names:
        raise ValueError(f"{source} has no standard-op 'onnx' payload to compact")
    reference = bundle.read_payload(names[0])
    compact, converted = fp16_weights(reference)
    worst = _parity(reference, compact)
    if not worst <= PARITY_TOLERANCE:
        raise ValueError(f"fp16 weights change the output by {worst:.4g} > {PARITY_TOLERANCE}")
    with zipfile.ZipFile(source) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    entry = next(p for p in manifest["payloads"] if p["name"] == names[0])
    extra = {k: v for k, v in entry.items() if k not in ("name", "kind", "sha256", "size")}
    extra.update({"precision": "fp32", "weights": "fp16",
                  "compacted_from": {"sha256": entry["sha256"], "max_abs_error": round(worst, 6)}})
    manifest = {k: v for k, v in manifest.items() if k != "payloads"}
    out = write_bundle(output, manifest, {"model.onnx": ("onnx", compact, extra)})
    return {"output": str(out), "source_bytes": Path(source).stat().st_size, "output_bytes": out.stat().st_size,
            "weights_fp16": converted, "max_abs_error": worst}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.compact", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="a .plan bundle with a standard-op model.onnx payload")
    parser.add_argument("-o", "--output", required=True, help="compact .plan to write")
    args = parser.parse_args(argv)
    try:
        s = compact_bundle(args.bundle, args.output)
    except (OSError, ValueError) as exc:
        print(f"export.compact: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {s['output']}: {s['output_bytes'] / 2**20:.1f} MiB (from {s['source_bytes'] / 2**20:.1f} MiB), "
          f"{s['weights_fp16']} weight tensors in fp16, max abs output difference {s['max_abs_error']:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
