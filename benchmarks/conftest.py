"""Benchmarks (pytest-benchmark), not tests: every group measures pyposert side by side with
the alternatives in one run; `python benchmarks/report.py RESULTS.json -o REPORT.md` turns the
JSON into the report (`make bench` does both). Competitors are used only when installed."""

from __future__ import annotations

import platform

import pytest

import pyposert


def pytest_benchmark_update_machine_info(config, machine_info):
    info = pyposert.build_info()
    machine_info["pyposert"] = {k: info[k] for k in ("version", "cuda_compiled", "openmp", "cpu_threads")}
    machine_info["cuda_device"] = info["cuda"]["device_name"] or "none"
    machine_info["cpu_model"] = platform.processor() or _cpu_model()


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


@pytest.fixture
def rng():
    import numpy as np
    return np.random.default_rng(0)
