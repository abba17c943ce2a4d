"""Backends: one generator, batch 1, every way a user could run it, side by side in one run.

For each model (nram, pona, pg2) at the ``rt`` size (128 x 88), and nram at the ``paper``
size (256 x 176, marked ``slow``: deselect with ``-m "not slow"``), one benchmark group
``backend-<model>-<size>`` holds:

- ``torch_eager``: the torch generator on the CPU under ``torch.inference_mode``;
- ``torch_compile``: the same module through ``torch.compile`` (inductor, default mode);
  skipped with the exception text when compilation fails;
- ``onnxruntime``: a bare ``onnxruntime.InferenceSession`` on the bundle's standard-op
  ``model.onnx`` with default session options (what a user would otherwise run);
- ``pyposert``: ``pyposert.Engine(bundle, backend="onnxruntime")`` and ``Source.run(pose)``
  per frame -- this one *includes* pre/post-processing (target heatmaps, un-letterboxing the
  output to the photo's size, uint8 BGR), the others time the network alone;
- on a CUDA machine ``torch_cuda_fp16`` (eager, half precision) and ``torch_cuda_graph``
  (the same captured in a CUDA graph and replayed); skipped with the reason elsewhere.

Models come from the shipped bundles ``models/<name>.plan`` when they exist at the wanted
size; otherwise the generator is built with random weights (``build_generator``) and
exported with the project's exporter (``export_standard_onnx`` + ``write_bundle``) into a
temporary bundle. The torch cases always use a randomly initialised generator of the same
configuration (a bundle holds no torch weights; timing does not depend on the weights).

``test_peak_matmul`` measures a large float32 matrix product (numpy and torch, 2048 x 2048)
in the same run: the machine's attainable GFLOP/s, against which the report sets the
backends' achieved GFLOP/s (GFLOPs per frame from ``training.flops.count_flops``). On a
GPU it adds a float16 8192 x 8192 product.

Every benchmark records in ``extra_info`` what the report needs: kind ("backend" or
"peak"), model, size, height, width, backend, device, precision, gflops (per frame) or flops
(per call), threads, what is timed, where the weights came from, and the 1-minute load
average right after the timing (other work on the machine shows up there).

    .venv/bin/python -m pytest benchmarks/bench_backends.py -m "not slow" --benchmark-json=out.json
    .venv/bin/python benchmarks/report.py out.json -o benchmarks/REPORT.md
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import pyposert  # noqa: E402
from pyposert.backends.onnxruntime_backend import physical_cores  # noqa: E402
from pyposert.bundle import read_bundle, write_bundle  # noqa: E402
from training.flops import count_flops, example_inputs  # noqa: E402
from training.models import ModelConfig, build_generator, model_config  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
PHOTO_SIZE = (256, 176)  # (h, w) of the source photo fed to the Engine: DeepFashion's frame
POSES = 16  # distinct target poses the Engine cycles through
CPU_BACKENDS = ("torch_eager", "torch_compile", "onnxruntime", "pyposert")
CUDA_BACKENDS = ("torch_cuda_fp16", "torch_cuda_graph")
CASES = [pytest.param("nram", "rt", id="nram-rt"), pytest.param("pona", "rt", id="pona-rt"),
         pytest.param("pg2", "rt", id="pg2-rt"),
         pytest.param("nram", "paper", id="nram-paper", marks=pytest.mark.slow)]
WARMUP = 3  # untimed calls before each benchmark (allocations, ORT arena, lazy init)


@dataclass
class Prepared:
    """One model at one size, ready for every backend.

    cfg: its ModelConfig; generator: torch module (eval, CPU, float32); gflops: per batch-1
    frame; onnx: the standard-op model.onnx bytes; bundle: path of a .plan holding it;
    origin: where the ONNX weights came from; torch_weights: where the torch weights came from;
    shared_weights: the torch generator holds the ONNX graph's weights (outputs comparable).
    """

    cfg: ModelConfig
    generator: Any
    gflops: float
    onnx: bytes
    bundle: Path
    origin: str
    torch_weights: str
    shared_weights: bool


def _shipped(name: str, cfg: ModelConfig) -> Any:
    """The shipped bundle models/<name>.plan if it exists and has ``cfg``'s frame size, else None."""
    path = MODELS_DIR / f"{name}.plan"
    if not path.is_file():
        return None
    bundle = read_bundle(path)
    if (bundle.input_spec.height, bundle.input_spec.width) != (cfg.height, cfg.width):
        return None
    return bundle


def _export(cfg: ModelConfig, generator: Any, folder: Path) -> tuple[bytes, Path]:
    """Standard-op ONNX of ``generator`` (the project's exporter) in a new bundle under ``folder``."""
    from export.onnx_export import DEFAULT_OPSET, export_standard_onnx

    data = export_standard_onnx(generator, cfg, DEFAULT_OPSET)
    manifest = {
        "model": {"name": cfg.name, "version": "random-init", "config": cfg.to_dict()},
        "input": {"height": cfg.height, "width": cfg.width, "keypoint_format": "coco18", "keypoint_order": "xy",
                  "image": "rgb", "normalisation": "[-1,1]",
                  "heatmap": {"mode": cfg.heatmap_mode, "sigma": float(cfg.heatmap_sigma),
                              "radius": float(cfg.heatmap_radius)}},
    }
    path = write_bundle(folder / f"{cfg.name}.plan", manifest, {
        "model.onnx": ("onnx", data, {"opset": DEFAULT_OPSET, "precision": "fp32", "graph": "standard"})})
    return data, path


def prepare(name: str, size: str, folder: Path) -> Prepared:
    """Build (or load) model ``name`` at ``size``; see the module docstring."""
    cfg = model_config(name, size)
    bundle = _shipped(name, cfg)
    if bundle is not None and bundle.model_config:
        cfg = ModelConfig.from_dict(bundle.model_config)
    torch.manual_seed(0)
    generator = build_generator(cfg).eval()
    gflops = count_flops(generator, cfg) / 1e9
    if bundle is not None:
        return Prepared(cfg, generator, gflops, bundle.read_payload("model.onnx"), bundle.path,
                        f"shipped {bundle.path.name} ({bundle.model_version})", "random init, same config", False)
    data, path = _export(cfg, generator, folder)
    return Prepared(cfg, generator, gflops, data, path, "random init, exported to a temporary bundle",
                    "random init (the weights exported to ONNX)", True)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Prepared]:
    """prepared(name, size) -> Prepared, built once per session and shared by every backend."""
    cache: dict[tuple[str, str], Prepared] = {}

    def get(name: str, size: str) -> Prepared:
        if (name, size) not in cache:
            cache[(name, size)] = prepare(name, size, tmp_path_factory.mktemp(f"{name}_{size}"))
        return cache[(name, size)]

    return get


def _record(benchmark: Any, p: Prepared, size: str, backend: str, device: str, precision: str,
            threads: int | str, timed: str) -> None:
    benchmark.group = f"backend-{p.cfg.name}-{size}"
    benchmark.extra_info.update({
        "kind": "backend", "model": p.cfg.name, "size": size, "height": p.cfg.height, "width": p.cfg.width,
        "backend": backend, "device": device, "precision": precision, "batch": 1, "gflops": p.gflops,
        "threads": threads, "timed": timed})


def _load_average(benchmark: Any) -> None:
    benchmark.extra_info["load_average_1m"] = os.getloadavg()[0]


def _warm(fn: Callable[[], Any]) -> Any:
    out = None
    for _ in range(WARMUP):
        out = fn()
    return out


def _photo_and_poses(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """A random uint8 BGR photo of PHOTO_SIZE, its pose, and POSES target poses (x, y) inside it."""
    h, w = PHOTO_SIZE
    photo = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)

    def pose() -> np.ndarray:
        return np.stack([rng.uniform(0, w - 1, 18), rng.uniform(0, h - 1, 18)], -1).astype(np.float32)

    return photo, pose(), [pose() for _ in range(POSES)]


# ------------------------------------------------------------------ CPU backends
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("model,size", CASES)
def test_backend_cpu(benchmark: Any, prepared: Callable[[str, str], Prepared], rng: np.random.Generator,
                     model: str, size: str, backend: str) -> None:
    p = prepared(model, size)
    image, pose = example_inputs(p.cfg)
    network_only = "network only, batch 1, inputs prepared in advance"
    if backend == "torch_eager":
        _record(benchmark, p, size, backend, "cpu", "fp32", torch.get_num_threads(), network_only)
        benchmark.extra_info["weights"] = p.torch_weights

        def run() -> Any:
            with torch.inference_mode():
                return p.generator(image, pose)

        _warm(run)
        result = benchmark(run)
        assert torch.isfinite(result).all()
    elif backend == "torch_compile":
        _record(benchmark, p, size, backend, "cpu", "fp32", torch.get_num_threads(), network_only)
        benchmark.extra_info["weights"] = p.torch_weights
        benchmark.extra_info["compile"] = "torch.compile(generator), inductor, default mode"
        compiled = torch.compile(p.generator)

        def run() -> Any:
            with torch.inference_mode():
                return compiled(image, pose)

        try:
            first = run()  # compiles
        except Exception as exc:  # inductor raises many types (BackendCompilerFailed, CppCompileError, ...)
            pytest.skip(f"torch.compile failed on CPU: {type(exc).__name__}: {str(exc).strip()[:400]}")
        with torch.inference_mode():
            reference = p.generator(image, pose)
        torch.testing.assert_close(first, reference, rtol=1e-3, atol=1e-3)
        _warm(run)
        benchmark(run)
    elif backend == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(p.onnx, providers=["CPUExecutionProvider"])  # default options
        feeds = {"source_image": image.numpy(), "pose_heatmaps": pose.numpy()}
        _record(benchmark, p, size, backend, "cpu", "fp32", "ORT default",
                network_only + "; InferenceSession with default SessionOptions")
        benchmark.extra_info["weights"] = p.origin

        def run() -> Any:
            return session.run(None, feeds)[0]

        _warm(run)
        result = benchmark(run)
        if p.shared_weights:
            with torch.inference_mode():
                reference = p.generator(image, pose).numpy()
            np.testing.assert_allclose(result, reference, rtol=1e-3, atol=1e-3)
    else:
        engine = pyposert.Engine(p.bundle, backend="onnxruntime")
        photo, photo_pose, poses = _photo_and_poses(rng)
        source = engine.source(photo, photo_pose)
        _record(benchmark, p, size, backend, engine.device, "fp32", physical_cores(),
                f"Source.run(pose) per frame: target heatmaps, network (ONNX Runtime, I/O binding), output to "
                f"uint8 BGR un-letterboxed to the {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} photo; the photo's letterbox "
                f"and source heatmaps are prepared once per Source (not timed)")
        benchmark.extra_info.update({"weights": p.origin, "photo": list(PHOTO_SIZE), "includes_pre_post": True})
        cycle: Iterator[np.ndarray] = itertools.cycle(poses)

        def run() -> np.ndarray:
            return source.run(next(cycle))

        _warm(run)
        result = benchmark(run)
        assert result.shape == (*PHOTO_SIZE, 3) and result.dtype == np.uint8
        engine.close()
    _load_average(benchmark)


# ------------------------------------------------------------------ CUDA backends
@pytest.mark.cuda
@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("model,size", CASES)
def test_backend_cuda(benchmark: Any, prepared: Callable[[str, str], Prepared], model: str, size: str,
                      backend: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (torch.cuda.is_available() is False)")
    p = prepared(model, size)
    torch.backends.cudnn.benchmark = True
    generator = copy.deepcopy(p.generator).half().cuda().eval()
    image, pose = (t.half().cuda() for t in example_inputs(p.cfg))
    _record(benchmark, p, size, backend, f"cuda:{torch.cuda.current_device()}", "fp16", 0,
            "network only, batch 1, inputs on the device, torch.cuda.synchronize() after each call")
    benchmark.extra_info.update({"weights": p.torch_weights, "cudnn_benchmark": True,
                                 "gpu": torch.cuda.get_device_name()})

    if backend == "torch_cuda_fp16":
        def run() -> Any:
            with torch.inference_mode():
                out = generator(image, pose)
            torch.cuda.synchronize()
            return out
    else:
        graph = torch.cuda.CUDAGraph()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode():
            with torch.cuda.stream(side):  # warm-up outside the capture (cuDNN algorithm choice)
                for _ in range(WARMUP):
                    generator(image, pose)
            torch.cuda.current_stream().wait_stream(side)
            try:
                with torch.cuda.graph(graph):
                    static_out = generator(image, pose)
            except Exception as exc:  # capture rejects host syncs etc.: say which
                pytest.skip(f"CUDA graph capture failed: {type(exc).__name__}: {str(exc).strip()[:400]}")

        def run() -> Any:
            graph.replay()
            torch.cuda.synchronize()
            return static_out

    _warm(run)
    result = benchmark(run)
    assert torch.isfinite(result).all()
    _load_average(benchmark)


# ------------------------------------------------------------------ the machine's peak
PEAK_CASES = [pytest.param("numpy", "cpu", 2048, id="numpy-cpu"), pytest.param("torch", "cpu", 2048, id="torch-cpu"),
              pytest.param("torch", "cuda", 8192, id="torch-cuda", marks=pytest.mark.cuda)]


@pytest.mark.parametrize("impl,device,n", PEAK_CASES)
def test_peak_matmul(benchmark: Any, rng: np.random.Generator, impl: str, device: str, n: int) -> None:
    """bench_peak_matmul: an n x n matrix product, 2 n^3 FLOPs: float32 on the CPU, float16 on a GPU."""
    benchmark.group = f"peak-matmul-{device}"
    precision = "fp32" if device == "cpu" else "fp16"
    benchmark.extra_info.update({"kind": "peak", "impl": impl, "device": device, "precision": precision, "n": n,
                                 "flops": 2 * n ** 3})
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    if impl == "numpy":
        out = np.empty((n, n), np.float32)

        def run() -> Any:
            return np.matmul(a, b, out=out)
        benchmark.extra_info["threads"] = "BLAS default"
    elif device == "cpu":
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        tout = torch.empty((n, n))

        def run() -> Any:
            return torch.mm(ta, tb, out=tout)
        benchmark.extra_info["threads"] = torch.get_num_threads()
    else:
        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA device (torch.cuda.is_available() is False)")
        ta, tb = (torch.from_numpy(x).cuda().half() for x in (a, b))
        tout = torch.empty((n, n), device="cuda", dtype=torch.float16)

        def run() -> Any:
            torch.mm(ta, tb, out=tout)
            torch.cuda.synchronize()
            return tout
        benchmark.extra_info["gpu"] = torch.cuda.get_device_name()
    _warm(run)
    benchmark(run)
    _load_average(benchmark)
