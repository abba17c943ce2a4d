"""The `pyposert` command line: `info` (what this machine can run, backends included) and `demo`.

`demo` currently exercises the native kernels on real poses (the retargeting demo replaces
it once the Engine and the shipped model exist).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

import pyposert
from pyposert import ops

# A standing person in COCO-18 order, (x, y) pixels of a 256 x 176 frame: the fallback
# when the real pose files are not beside the checkout.
STANDING_POSE = np.array([
    [88, 40], [88, 64], [64, 64], [56, 100], [52, 134], [112, 64], [120, 100], [124, 134], [72, 134],
    [70, 180], [68, 226], [104, 134], [106, 180], [108, 226], [82, 34], [94, 34], [76, 38], [100, 38],
], np.float32)


def _real_poses(count: int) -> np.ndarray:
    """Up to `count` real DeepFashion poses [N, 18, 2] (x, y) in the 256 x 176 frame.

    The annotation files (../shared/data/poses, y first) are in the original 256 x 256
    frame; the 256 x 176 images are its centre crop, so x moves left by 40 and joints that
    fall outside the crop become missing (-1)."""
    csv = Path(__file__).resolve().parents[2] / "shared" / "data" / "poses" / "fasion-annotation-test.csv"
    if not csv.exists():
        return STANDING_POSE[None]
    poses = []
    for line in csv.read_text().splitlines()[1:]:
        _, ys, xs = line.split(":")
        y = np.array(json.loads(ys), np.float32)
        x = np.array(json.loads(xs), np.float32)
        present = (x >= 0) & (y >= 0) & (x - 40 >= 0) & (x - 40 < 176)
        x, y = np.where(present, x - 40, -1), np.where(present, y, -1)
        if present.sum() >= 14:
            poses.append(np.stack([x, y], -1))
        if len(poses) == count:
            break
    return np.array(poses) if poses else STANDING_POSE[None]


def cmd_info(_: argparse.Namespace) -> int:
    info = pyposert.build_info()
    print(f"pyposert {info['version']}")
    print(f"  native core : compiled with {info['compiler']}, OpenMP {'on' if info['openmp'] else 'off'}, "
          f"{info['cpu_threads']} CPU threads")
    if info["cuda_compiled"]:
        print(f"  CUDA kernels: compiled (nvcc {info['cuda_compiler_version']}, archs {info['cuda_architectures']})")
    else:
        print("  CUDA kernels: not compiled (no nvcc at build time, or POSERT_WITH_CUDA=OFF)")
    cuda = info["cuda"]
    if info["cuda_available"]:
        print(f"  CUDA device : {cuda['device_name']} (sm_{cuda['compute_capability']})")
    else:
        print(f"  CUDA device : none — {cuda['reason']}")
    from pyposert.backends import backends_report

    for row in backends_report():
        print(f"  backend {row['name']:<12}: {'yes' if row['available'] else 'no '}  {row['reason']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    poses = _real_poses(8)
    height, width = 256, 176
    start = time.perf_counter()
    maps = ops.heatmaps(poses, height, width, sigma=6.0)
    elapsed = time.perf_counter() - start
    # One tile per pose: the max over the 18 joint channels, as a grey image.
    tiles = (np.clip(maps.max(axis=1), 0, 1) * 255).astype(np.uint8)
    grid = np.concatenate(list(tiles), axis=1)
    path = out_dir / "demo_heatmaps.png"
    try:
        import cv2
    except ImportError:
        print("opencv-python-headless is not installed: cannot write PNG (pip install pyposert[runtime])",
              file=sys.stderr)
        return 1
    if not cv2.imwrite(str(path), cv2.applyColorMap(grid, cv2.COLORMAP_INFERNO)):
        print(f"could not write {path}", file=sys.stderr)
        return 1
    cmd_info(args)
    print(f"rendered {len(poses)} real poses x 18 joints at {height}x{width} in {elapsed * 1e3:.2f} ms")
    print(f"wrote {path.resolve()}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="pyposert", description="real-time human pose transfer")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="what this machine can run, and why a backend is missing").set_defaults(fn=cmd_info)
    demo = sub.add_parser("demo", help="run the demo (for now: the native kernels on real poses)")
    demo.add_argument("--output", default="out", help="folder for the demo's files (default: out)")
    demo.set_defaults(fn=cmd_demo)
    from pyposert.retarget import add_retarget_parser

    add_retarget_parser(sub)
    args = parser.parse_args(argv)
    return int(args.fn(args))
