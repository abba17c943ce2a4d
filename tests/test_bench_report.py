"""benchmarks/report.py on small hand-written pytest-benchmark JSON files: the tables hold the
numbers computed from the JSON (FPS = 1 / mean, p99 from the round data, GFLOP/s, % of peak,
ratios), the plots are drawn, and a CPU-only JSON (no GPU, no torch.compile, no round data)
works too."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

REPORT_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "report.py"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    """benchmarks/report.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_report", REPORT_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


def bench(group: str, name: str, params: dict[str, Any], data: list[float] | None,
          extra: dict[str, Any] | None = None, mean: float | None = None) -> dict[str, Any]:
    """One pytest-benchmark entry; stats from ``data`` unless ``mean`` is given (no data)."""
    if data is not None:
        stats: dict[str, Any] = {"mean": float(np.mean(data)), "median": float(np.median(data)),
                                 "min": min(data), "max": max(data), "rounds": len(data), "iterations": 1,
                                 "data": data}
    else:
        assert mean is not None
        stats = {"mean": mean, "median": mean, "min": mean, "max": mean, "rounds": 7, "iterations": 1}
    return {"group": group, "name": name, "fullname": f"benchmarks/bench_x.py::{name}", "params": params,
            "param": "-".join(map(str, params.values())), "extra_info": extra or {}, "options": {}, "stats": stats}


MACHINE = {"cpu": {"brand_raw": "Test CPU", "count": 2}, "cpu_model": "Test CPU 9000", "cuda_device": "none",
           "python_version": "3.11.7",
           "pyposert": {"version": "0.1.0", "cuda_compiled": False, "openmp": True, "cpu_threads": 2}}
ENGINE_DATA = [0.020, 0.022, 0.024, 0.026, 0.028, 0.030, 0.032, 0.034, 0.036, 0.100]  # mean 0.0352
ORT_DATA = [0.015, 0.016, 0.017, 0.018, 0.019]  # mean 0.017
PEAK_FLOPS = 2 * 2048 ** 3


def backend(name: str, data: list[float] | None, mean: float | None = None, **extra: Any) -> dict[str, Any]:
    info = {"kind": "backend", "model": "nram", "size": "rt", "height": 128, "width": 88, "backend": name,
            "device": "cpu", "precision": "fp32", "gflops": 3.5, "threads": 2, "load_average_1m": 1.5, **extra}
    return bench("backend-nram-rt", f"test_backend_cpu[nram-rt-{name}]", {"model": "nram", "size": "rt",
                                                                          "backend": name}, data, info, mean)


def full_json() -> dict[str, Any]:
    return {"machine_info": MACHINE, "commit_info": {"id": "0123456789abcdef", "dirty": False},
            "datetime": "2026-11-30T10:00:00+00:00", "version": "5.3.1", "benchmarks": [
                bench("heatmaps cpu 2x18 128x88", "test_heatmaps_cpu[pyposert-128-88]",
                      {"impl": "pyposert", "height": 128, "width": 88}, [0.0001, 0.0001, 0.0001]),
                bench("heatmaps cpu 2x18 128x88", "test_heatmaps_cpu[numpy-128-88]",
                      {"impl": "numpy", "height": 128, "width": 88}, [0.0008, 0.0008, 0.0008]),
                bench("peak-matmul-cpu", "test_peak_matmul[numpy-cpu]", {"impl": "numpy", "device": "cpu", "n": 2048},
                      [0.2, 0.2, 0.2], {"kind": "peak", "impl": "numpy", "device": "cpu", "precision": "fp32",
                                        "n": 2048, "flops": PEAK_FLOPS}),
                backend("torch_eager", [0.05, 0.05, 0.05, 0.05]),
                backend("torch_compile", [0.04, 0.04, 0.04, 0.04]),
                backend("onnxruntime", ORT_DATA),
                backend("pyposert", ENGINE_DATA),
                backend("torch_cuda_fp16", [0.002, 0.002, 0.002], device="cuda:0", precision="fp16"),
                bench("retarget-synthetic", "test_retarget[nram]", {"model": "nram"}, [1.0, 1.0, 1.0],
                      {"frames_per_round": 50, "stage_share": {"pose": 0.1, "engine": 0.8, "write": 0.1},
                       "stage_p50_ms": {"pose": 2.0, "engine": 16.0}}),
            ]}


def cpu_only_json() -> dict[str, Any]:
    """No GPU, no torch.compile, no peak, no round data: what an older or minimal run holds."""
    return {"machine_info": {"cpu": {"brand_raw": "Other CPU", "count": 4}}, "commit_info": {},
            "datetime": "2026-11-30T11:00:00+00:00", "benchmarks": [
                backend("torch_eager", None, mean=0.08), backend("onnxruntime", None, mean=0.025),
                backend("pyposert", None, mean=0.05)]}


def row(text: str, *cells: str) -> list[str]:
    """The cells of the first table row whose first cells are ``cells``."""
    for line in text.splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if line.startswith("|") and parts[:len(cells)] == list(cells):
            return parts
    raise AssertionError(f"no row starting with {cells} in:\n{text}")


def write(tmp_path: Path, name: str, doc: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_tables_numbers(report: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "REPORT.md"
    assert report.main([str(write(tmp_path, "run.json", full_json())), "-o", str(out), "--note", "busy machine"]) == 0
    text = out.read_text()
    assert "> busy machine" in text
    assert "Test CPU 9000" in text and "0.1.0, CUDA compiled False, OpenMP True, CPU threads 2" in text
    assert "0123456789" in text

    # kernels: ratio = other median / pyposert median
    assert row(text, "heatmaps cpu 2x18 128x88", "numpy")[-1] == "8.00x"
    assert row(text, "heatmaps cpu 2x18 128x88", "pyposert")[-1] == "1.00x"

    # peak: 2 n^3 / mean
    peak = PEAK_FLOPS / 0.2 / 1e9
    assert row(text, "numpy", "cpu", "fp32", "2048")[-1] == f"{peak:.1f}"

    # backends: FPS = 1 / mean, p50 = median, p99 from the data, GFLOP/s, % of peak, vs the Engine
    engine_mean = float(np.mean(ENGINE_DATA))
    cells = row(text, "pyposert", "cpu", "fp32")
    headers = row(text, "backend", "device", "precision")
    got = dict(zip(headers, cells))
    assert got["FPS"] == f"{1 / engine_mean:.1f}"
    assert got["mean ms"] == f"{engine_mean * 1e3:.2f}"
    assert got["min ms"] == f"{min(ENGINE_DATA) * 1e3:.2f}"
    assert got["p50 ms"] == f"{np.median(ENGINE_DATA) * 1e3:.2f}"
    assert got["p99 ms"] == f"{np.percentile(ENGINE_DATA, 99) * 1e3:.2f}"
    assert got["rounds"] == str(len(ENGINE_DATA))
    assert got["GFLOP/s"] == f"{3.5 / engine_mean:.1f}"
    assert got["% of peak"] == f"{100 * (3.5 / engine_mean) / peak:.1f}%"
    assert got["mean / Engine mean"] == "1.00x"
    ort = dict(zip(headers, row(text, "onnxruntime", "cpu", "fp32")))
    assert ort["FPS"] == f"{1 / np.mean(ORT_DATA):.1f}"
    assert ort["mean / Engine mean"] == f"{np.mean(ORT_DATA) / engine_mean:.2f}x"
    # the GPU entry has no fp16 GPU peak in this run: no % of peak, but FPS and GFLOP/s
    cuda = dict(zip(headers, row(text, "torch_cuda_fp16", "cuda:0", "fp16")))
    assert cuda["FPS"] == "500.0" and cuda["% of peak"] == "-" and cuda["GFLOP/s"] == f"{3.5 / 0.002:.1f}"

    # retargeting: frames / mean and the stage shares
    retarget = row(text, "retarget-synthetic", "test_retarget[nram]")
    assert retarget[2] == "50.0"
    assert "engine 80.0%" in retarget[7] and "pose 10.0%" in retarget[7]
    assert "stage_p50_ms: {pose=2, engine=16}" in retarget[8]


def test_plots(report: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "report" / "REPORT.md"
    report.main([str(write(tmp_path, "run.json", full_json())), "-o", str(out)])
    text = out.read_text()
    for name in ("fps.png", "latency_hist.png"):
        png = out.parent / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"(plots/{name})" in text


def test_cpu_only_json_and_two_runs(report: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "REPORT.md"
    minimal = write(tmp_path, "cpu.json", cpu_only_json())
    report.main([str(minimal), "-o", str(out)])
    text = out.read_text()
    got = dict(zip(row(text, "backend", "device"), row(text, "onnxruntime", "cpu")))
    assert got["FPS"] == "40.0" and got["p99 ms"] == "-" and got["% of peak"] == "-"
    assert got["mean / Engine mean"] == "0.50x"
    assert "torch_compile" not in text and "cuda" not in text.split("## Backends")[1]
    assert "## Kernels" not in text and "## End-to-end" not in text
    assert "latency_hist.png" not in text  # no round data: no histogram

    # two files are two runs, each compared with its own Engine
    report.main([str(minimal), str(write(tmp_path, "full.json", full_json())), "-o", str(out)])
    text = out.read_text()
    assert "(run cpu)" in text and "(run full)" in text
    assert row(text, "cpu", "Other CPU")[2] == "4"
