"""CLI: ``python -m training.data.synthetic --bench`` (pairs/s on one core) / ``--grid out.png``."""

from __future__ import annotations

import argparse
import os
import time
from typing import Sequence

import cv2
import numpy as np

from pyposert.poses import draw_skeleton

from .. import poses as P
from .pairs import SyntheticPairs


# Joint dots of the preview: the person's right side red, the rest blue (RGB).
_RIGHT_SIDE = (P.R_SHOULDER, P.R_ELBOW, P.R_WRIST, P.R_HIP, P.R_KNEE, P.R_ANKLE, P.R_EYE, P.R_EAR)
_JOINT_COLOURS = tuple((255, 0, 0) if j in _RIGHT_SIDE else (0, 0, 255) for j in range(P.NUM_JOINTS))


def sample_grid(pairs: SyntheticPairs, n: int, start: int = 0, with_pose: bool = False) -> np.ndarray:
    """uint8 RGB grid: each cell is source | target (| target with keypoints) of one pair."""
    cells = []
    for i in range(start, start + n):
        p = pairs.pair(i)
        row = [p["source_image"], p["target_image"]]
        if with_pose:
            row.append(draw_skeleton(p["target_pose"], p["target_image"].copy(), limb_colour=(0, 255, 0), thickness=1,
                                      joint_colour=_JOINT_COLOURS, joint_radius=1, limbs=P.LIMBS))
        sep = np.full((pairs.height, 2, 3), 255, np.uint8)
        cell = np.concatenate([x for r in row for x in (r, sep)][:-1], axis=1)
        cells.append(cell)
    cols = 4 if not with_pose else 3
    while len(cells) % cols:
        cells.append(np.zeros_like(cells[0]))
    rows = []
    for r in range(0, len(cells), cols):
        pad = np.full((cells[0].shape[0], 6, 3), 0, np.uint8)
        rows.append(np.concatenate([x for c in cells[r:r + cols] for x in (c, pad)][:-1], axis=1))
        rows.append(np.full((6, rows[-1].shape[1], 3), 0, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def benchmark(pairs: SyntheticPairs, n: int = 1000, start: int = 0, chunks: int = 5,
              warmup: int = 200) -> dict[str, float]:
    """Measure ``pairs.pair(i)`` throughput in this process (set threads / affinity first).

    Runs ``warmup`` pairs (imports, caches, the clutter bank fills up over training anyway),
    then ``n`` pairs in ``chunks`` equal chunks. Returns pairs/s: 'wall' over all n pairs,
    'best_chunk' (the least disturbed chunk on a shared machine) and 'cpu' (by process CPU time).
    """
    for i in range(start, start + warmup):
        pairs.pair(i)
    i0 = start + warmup
    per = max(n // chunks, 1)
    best = 0.0
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    for c in range(chunks):
        t = time.perf_counter()
        for i in range(i0 + c * per, i0 + (c + 1) * per):
            pairs.pair(i)
        best = max(best, per / (time.perf_counter() - t))
    wall = per * chunks / (time.perf_counter() - t_wall)
    cpu = per * chunks / max(time.process_time() - t_cpu, 1e-9)
    return {"wall": wall, "best_chunk": best, "cpu": cpu}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.data.synthetic",
                                 description="Synthetic pose-transfer pairs: benchmark / preview.")
    ap.add_argument("--bench", action="store_true", help="measure pairs/s on one core")
    ap.add_argument("--n", type=int, default=1000, help="pairs timed by --bench")
    ap.add_argument("--cells", type=int, default=24, help="pairs shown by --grid")
    ap.add_argument("--grid", type=str, default=None, help="write a PNG grid of samples here")
    ap.add_argument("--size", type=str, default="128x88", help="H x W, e.g. 256x176")
    ap.add_argument("--split", default="train", choices=["train", "eval"])
    ap.add_argument("--background", default="mixed", choices=["plain", "cluttered", "mixed"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--pose", action="store_true", help="grid: add the target with its keypoints")
    args = ap.parse_args(argv)
    # One core: OpenCV's own thread pool off, and the process pinned to a single CPU (numpy
    # elementwise work is single-threaded; run with OMP_NUM_THREADS=1 for any BLAS too).
    cv2.setNumThreads(1)
    cpu = None
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    h, w = (int(v) for v in args.size.lower().split("x"))
    pairs = SyntheticPairs(h, w, split=args.split, seed=args.seed, background=args.background)
    if args.grid:
        grid = sample_grid(pairs, args.cells, args.start, args.pose)
        cv2.imwrite(args.grid, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        print(f"wrote {args.grid} ({grid.shape[1]}x{grid.shape[0]})")
    if args.bench or not args.grid:
        r = benchmark(pairs, args.n, args.start)
        where = f"pinned to CPU {cpu}" if cpu is not None else "1 thread"
        print(f"{r['wall']:.1f} pairs/s at {h}x{w} ({args.background} backgrounds, {args.n} pairs, one core, "
              f"{where}); best chunk {r['best_chunk']:.1f} pairs/s; by CPU time {r['cpu']:.1f} pairs/s")
    return 0

