"""End-to-end retargeting on this machine with the shipped model (models/nram.plan; override
with POSERT_BENCH_MODEL=path): the whole ``retarget()`` loop over 50 synthetic-motion frames
writing a side-by-side .mp4 into a temporary folder, and the Engine alone per frame
(``Source.run``), in one run. Same photo and motion as ``pyposert bench``
(:mod:`pyposert.bench`).

Groups follow the report's convention (one group per measurement, implementation "pyposert"; there is no
competitor to divide by, so the ratio column reads 1.00x). ``extra_info`` holds what a report
needs beyond the timing: frames per round, FPS, the loop's per-stage p50 (ms) and each
stage's share of the end-to-end p50 (pose, smooth, engine, write; queue too), all measured
in the benchmark's own rounds.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL = Path(os.environ.get("POSERT_BENCH_MODEL", REPO / "models" / "nram.plan"))
FRAMES = 50
STAGES = ("queue", "pose", "smooth", "engine", "write")

pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason=f"the shipped model is missing: {MODEL}")


@pytest.fixture(scope="module")
def setup() -> Iterator[dict[str, Any]]:
    from pyposert import Engine
    from pyposert.bench import demo_photo

    engine = Engine(MODEL)
    photo, pose, description = demo_photo(MODEL)
    yield {"engine": engine, "photo": photo, "pose": pose, "photo_source": description}
    engine.close()


def _where(engine: Any) -> str:
    """Device kind for the group name, "cpu" or "cuda" (backend "auto" takes a GPU where there is one)."""
    return str(engine.device).split(":")[0]


def _info(benchmark: Any, setup: dict[str, Any]) -> None:
    engine = setup["engine"]
    benchmark.extra_info.update({"model": MODEL.name, "backend": engine.backend, "device": engine.device,
                                 "model_size": list(engine.size), "photo": setup["photo_source"],
                                 "photo_size": list(setup["photo"].shape[:2])})


@pytest.mark.parametrize("impl", ["pyposert"])
def test_retarget_end_to_end(benchmark: Any, setup: dict[str, Any], tmp_path: Path, impl: str) -> None:
    from pyposert.bench import driving_motion
    from pyposert.retarget import retarget

    engine = setup["engine"]
    benchmark.group = f"retarget {_where(engine)} {MODEL.stem} {FRAMES} frames side-by-side mp4"
    runs: list[dict[str, Any]] = []

    def run() -> None:
        driving, _ = driving_motion(FRAMES, seed=len(runs))
        runs.append(retarget(engine, setup["photo"], setup["pose"], driving, output=tmp_path / "bench.mp4",
                             layout="side-by-side", progress=False))

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    measured = runs[1:] if len(runs) > 1 else runs  # the first call is the warm-up round (--benchmark-disable: once)
    assert all(r["frames_written"] == FRAMES for r in measured)
    _info(benchmark, setup)
    _, description = driving_motion(FRAMES)
    p50 = {s: float(np.median([r["latency"][s]["p50_ms"] for r in measured])) for s in STAGES + ("end_to_end",)}
    benchmark.extra_info.update({
        "frames_per_round": FRAMES,
        "driving": description,
        "fps": round(float(np.median([r["fps"] for r in measured])), 3),
        "stage_p50_ms": {s: round(v, 3) for s, v in p50.items()},
        "stage_p99_ms": {s: round(float(np.median([r["latency"][s]["p99_ms"] for r in measured])), 3)
                         for s in STAGES + ("end_to_end",)},
        # Share of the wall time each stage costs: its total time (mean x count) / the round's
        # wall time, medians over the measured rounds. The writer runs in its own thread, so the
        # shares of pose + smooth + engine (main thread) and write can add up to more than the
        # main thread's share; "queue" (frames read ahead, waiting) is latency, not a cost.
        "stage_share": {s: round(float(np.median([r["latency"][s]["mean_ms"] * r["latency"][s]["count"]
                                                  / (r["wall_s"] * 1e3) for r in measured])), 4)
                        for s in STAGES if s != "queue"},
    })


def bench_per_frame(benchmark: Any, engine: Any, photo: np.ndarray, pose: np.ndarray) -> dict[str, Any]:
    """Benchmark ``Source.run`` of ``engine`` on ``photo`` over the synthetic driving motion (5
    warm-up frames first; output at the photo's size); returns {"driving", "fps"} for extra_info."""
    from pyposert.bench import driving_motion

    driving, description = driving_motion(FRAMES)
    frames = [f for f in driving if f.keypoints is not None]
    src = engine.source(photo, pose)
    poses = itertools.cycle(frames)

    def one() -> np.ndarray:
        frame = next(poses)
        return src.run(frame.keypoints, pose_size=frame.frame_size, output_size="source")

    for _ in range(5):
        one()
    out = benchmark(one)
    assert out.shape == photo.shape and out.dtype == np.uint8
    median = benchmark.stats.stats.median if benchmark.stats is not None else None
    return {"driving": description, "fps": round(1.0 / median, 3) if median else None}


@pytest.mark.parametrize("impl", ["pyposert"])
def test_engine_per_frame(benchmark: Any, setup: dict[str, Any], impl: str) -> None:
    engine = setup["engine"]
    benchmark.group = f"engine {_where(engine)} {MODEL.stem} per frame"
    timing = bench_per_frame(benchmark, engine, setup["photo"], setup["pose"])
    _info(benchmark, setup)
    benchmark.extra_info.update(timing)
