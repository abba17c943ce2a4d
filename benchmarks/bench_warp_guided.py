"""Warp-guided NRAM against the plain NRAM, end to end on this machine: the Engine per frame
(``Source.run``: target keypoints, heatmaps, the warp on the host, the network, back to a uint8
photo), same photo and synthetic driving motion as ``pyposert bench``, one group, two
implementations. The ratio column reads plain time / warp-guided time (< 1: the warp costs
that share). Real time is >= 30 FPS (``extra_info["fps"]``).

Bundles: POSERT_BENCH_WG_MODEL (default models/nram.plan, the warp-guided default) and
POSERT_BENCH_PLAIN_MODEL (default: a plain NRAM bundle, models/nram_plain.plan if present);
a bundle that is missing or of the other kind is skipped with the reason.
POSERT_BENCH_THREADS: the Engine's CPU threads (default: the physical cores); on a machine
shared with other jobs, 1 thread keeps ONNX Runtime's threads from waiting on a busy core.
The plain bundle is the previous default: ``python -m export models/checkpoints/nram_rt_cpu_ft
-o models/nram_plain.plan`` rebuilds it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_retarget import bench_per_frame  # noqa: E402  (the same per-frame loop)

REPO = Path(__file__).resolve().parents[1]
MODELS = {
    "pyposert": Path(os.environ.get("POSERT_BENCH_WG_MODEL", REPO / "models" / "nram.plan")),
    "plain nram": Path(os.environ.get("POSERT_BENCH_PLAIN_MODEL", REPO / "models" / "nram_plain.plan")),
}
THREADS = int(os.environ["POSERT_BENCH_THREADS"]) if os.environ.get("POSERT_BENCH_THREADS") else None


@pytest.mark.parametrize("impl", list(MODELS))
def test_engine_per_frame_warp_guided_vs_plain(benchmark: Any, impl: str) -> None:
    from pyposert import Engine
    from pyposert.bench import demo_photo
    from pyposert.model import WARP_INPUTS

    model = MODELS[impl]
    if not model.is_file():
        pytest.skip(f"no bundle at {model}")
    with Engine(model, threads=THREADS) as engine:
        warp_guided = all(engine.spec.has(n) for n in WARP_INPUTS)
        if warp_guided != (impl == "pyposert"):
            pytest.skip(f"{model} is {'' if warp_guided else 'not '}warp-guided; expected the "
                        f"{'warp-guided' if impl == 'pyposert' else 'plain'} NRAM")
        benchmark.group = f"engine {str(engine.device).split(':')[0]} nram rt per frame: warp-guided vs plain"
        photo, pose, description = demo_photo(model)
        timing = bench_per_frame(benchmark, engine, photo, pose)
        benchmark.extra_info.update({
            "model": model.name, "warp_guided": warp_guided, "backend": engine.backend, "device": engine.device,
            "model_size": list(engine.size), "threads": THREADS or "physical cores", "photo": description,
            "photo_size": list(photo.shape[:2]), "load_average_1m": os.getloadavg()[0], **timing})
