"""``pyposert bench``: how fast this machine runs a model -- the engine alone, and inside the
whole retargeting loop -- with p50 / p99 latency per stage and each stage's share.

    pyposert bench [--model nram] [--backend auto] [--frames 200] [--warmup 20]
                   [--threads N] [--json out.json]

(a) engine alone: ``Source.run`` per driving pose, split (host backends, through its
    ``on_stage`` hook, :data:`pyposert.source.STAGES`) into keypoints (parse + letterbox into
    model pixels), heatmaps (the network inputs: target heatmaps or keypoints), network, and
    output (back to uint8 BGR at the photo's size); GPU backends that keep the frame on the
    device are timed as one "engine" stage.
(b) the retargeting loop (:func:`pyposert.retarget.retarget`): pose source -> One-Euro
    smoothing -> engine -> side-by-side layout -> .mp4 writer (a temporary file), with the
    loop's own stage timings (queue, pose, smooth, engine, write, end_to_end).

Share of a stage = its p50 / the end-to-end p50 (the whole ``Source.run`` for (a), capture ->
written for (b)). Medians do not add up exactly; in (b) the rest is queueing, the layout and
the hand-offs between the capture, main and writer threads.

Inputs: the photo is ``<model folder>/demo/person.png`` with its pose
``<model folder>/demo/person_pose.json`` (OpenPose JSON or an (18, 2|3) list) when both exist
(else the installed demo media), else a generated grey 256 x 176 image of a standing stick
figure with its pose. Driving poses: motion through real DeepFashion poses
(:class:`~pyposert.pose_sources.SyntheticMotionSource`; the set that ships with pyposert, or
``$POSERT_POSES_DIR``), else the standing pose, swaying and jittered. Everything is measured; nothing is
estimated.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np

from ._cli_args import count
from .pose_sources import PoseFrame, PoseSource
from .source import STAGES

__all__ = ["add_bench_parser", "cmd_bench", "demo_photo", "driving_motion", "bench_engine", "bench_retarget",
           "JitteredPoseSource"]

FRAME_SIZE = (256, 176)  # (h, w) of the generated photo and of the fallback driving poses
RETARGET_STAGES = ("queue", "pose", "smooth", "engine", "write")


def _percentiles_ms(seconds: list[float]) -> dict[str, Any]:
    ms = np.asarray(seconds, np.float64) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "count": int(ms.size)}


def _with_shares(latency: dict[str, dict[str, Any]], total: str) -> dict[str, dict[str, Any]]:
    """Adds ``share`` = stage p50 / ``total``'s p50 to every stage (None when unmeasured)."""
    denom = latency.get(total, {}).get("p50_ms")
    out = {}
    for stage, lat in latency.items():
        p50 = lat.get("p50_ms")
        share = round(p50 / denom, 4) if p50 is not None and denom else None
        out[stage] = {**lat, "share": share}
    return out


# ------------------------------------------------------------------ inputs
def _stick_figure(pose: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [h, w, 3] BGR mid-grey image with a lighter stick figure along ``pose`` (18, 2)
    (x, y) pixels: something person-shaped where the keypoints are."""
    import cv2

    from .poses import draw_skeleton

    h, w = size
    image = draw_skeleton(pose, np.full((h, w, 3), 128, np.uint8), limb_colour=(200, 190, 180),
                          joint_colour=None, thickness=max(2, w // 22))
    present = (pose >= 0).all(-1)
    if present[0]:
        cv2.circle(image, (int(pose[0][0]), int(pose[0][1])), max(3, w // 14), (170, 180, 210), -1, cv2.LINE_AA)
    return image


def demo_photo(model_path: Union[str, Path]) -> tuple[np.ndarray, np.ndarray, str]:
    """The benchmark photo: (uint8 [h, w, 3] BGR, its pose float32 (18, 2) (x, y) pixels with
    missing (-1, -1), a description). ``<model folder>/demo/person.png`` + ``person_pose.json``
    when both exist, else the installed demo media (:func:`pyposert.resources.demo_dir`), else a generated 256 x 176
    grey image with a standing stick figure."""
    import cv2

    from .poses import STANDING_POSE
    from .poses import parse_pose

    from .resources import demo_dir

    for folder in (Path(model_path).parent / "demo", demo_dir()):
        photo_path, pose_path = folder / "person.png", folder / "person_pose.json"
        if photo_path.is_file() and pose_path.is_file():
            break
    else:
        pose = STANDING_POSE.copy()
        return _stick_figure(pose, FRAME_SIZE), pose, "generated grey image, standing stick figure"
    photo = cv2.imread(str(photo_path), cv2.IMREAD_COLOR)
    if photo is None:
        raise OSError(f"cannot read the demo photo {photo_path}")
    try:
        data = json.loads(pose_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{pose_path}: not valid JSON: {exc}") from None
    return photo, parse_pose(data, name=str(pose_path)), str(photo_path)


class JitteredPoseSource(PoseSource):
    """``frames`` poses at ``fps``: ``pose`` (18, 2) (x, y) pixels of a ``frame_size`` = (h, w)
    frame, swaying sideways (+-12 px, 2 s period) with Gaussian jitter (sigma 1.5 px, seeded);
    joints stay inside the frame. The fallback driving motion when no real poses are here."""

    def __init__(self, pose: np.ndarray, frame_size: tuple[int, int], frames: int, fps: float = 25.0,
                 seed: int = 0) -> None:
        if frames < 1 or not fps > 0:
            raise ValueError(f"need frames >= 1 and fps > 0, got {frames}, {fps}")
        h, w = frame_size
        rng = np.random.default_rng(seed)
        t = np.arange(frames) / fps
        poses = np.repeat(pose[None].astype(np.float32), frames, axis=0)
        poses[..., 0] += (12.0 * np.sin(2 * math.pi * t / 2.0))[:, None].astype(np.float32)
        poses += rng.normal(0.0, 1.5, poses.shape).astype(np.float32)
        poses[..., 0] = np.clip(poses[..., 0], 0, w - 1)
        poses[..., 1] = np.clip(poses[..., 1], 0, h - 1)
        poses[:, (pose < 0).any(-1)] = -1.0  # missing stays missing
        self.poses, self.frame_size = poses, (int(h), int(w))
        self.fps, self.frame_count = float(fps), int(frames)

    def frames(self) -> Iterator[PoseFrame]:
        for index, kp in enumerate(self.poses):
            yield PoseFrame(index, index / self.fps, kp.copy(), None, self.frame_size)


def driving_motion(frames: int, fps: float = 25.0, seed: int = 0) -> tuple[PoseSource, str]:
    """(a file-like driving source of ``frames`` poses, a description): synthetic motion
    through real poses when present, else :class:`JitteredPoseSource`."""
    from .poses import STANDING_POSE
    from .pose_sources import SyntheticMotionSource, default_poses_csv

    csv = default_poses_csv()
    if csv.is_file():
        return SyntheticMotionSource(csv, frames=frames, fps=fps, seed=seed), f"synthetic motion through {csv.name}"
    return (JitteredPoseSource(STANDING_POSE, FRAME_SIZE, frames, fps, seed),
            "a standing pose, swaying and jittered (no pose CSV found)")


def _poses(source: PoseSource) -> tuple[list[Optional[np.ndarray]], Optional[tuple[int, int]]]:
    frames = list(source)
    return [f.keypoints for f in frames], frames[0].frame_size if frames else None


# ------------------------------------------------------------------ (a) engine alone
def bench_engine(engine: Any, photo: np.ndarray, photo_pose: np.ndarray, poses: list[Optional[np.ndarray]],
                 frame_size: Optional[tuple[int, int]], warmup: int) -> dict[str, Any]:
    """``Source.run`` on each pose after ``warmup`` untimed runs (cycling through ``poses``).

    Returns {frames, warmup, fps, split, latency: {stage: {p50_ms, p99_ms, count, share}}};
    stages keypoints, heatmaps, network, output, total (host backends) or engine, total
    (device frames). fps = timed frames / their summed wall time.
    """
    src = engine.source(photo, photo_pose)
    usable = [p for p in poses if p is not None]
    if not usable:
        raise ValueError("no driving pose to run the engine on")
    # Host backends report each step of Source.run (its on_stage hook); GPU backends that keep
    # the frame on the device run it as one step, timed whole as "engine".
    seen: list[str] = []
    src.run(usable[0], pose_size=frame_size, output_size="source", on_stage=lambda stage, _: seen.append(stage))
    split = "network" in seen
    stages = STAGES if split else ("engine",)
    times: dict[str, list[float]] = {s: [] for s in stages + ("total",)}
    n = len(usable)
    for i in range(warmup):
        src.run(usable[i % n], pose_size=frame_size, output_size="source")
    count = len(poses)
    record = (lambda stage, seconds: times[stage].append(seconds)) if split else None
    for i in range(count):
        t0 = time.perf_counter()
        src.run(usable[i % n], pose_size=frame_size, output_size="source", on_stage=record)
        times["total"].append(time.perf_counter() - t0)
        if not split:
            times["engine"].append(times["total"][-1])
    wall = float(np.sum(times["total"]))
    latency = _with_shares({s: _percentiles_ms(v) for s, v in times.items()}, "total")
    return {"frames": count, "warmup": warmup, "fps": round(count / wall, 3) if wall > 0 else None,
            "split": split, "latency": latency}


# ------------------------------------------------------------------ (b) the retargeting loop
def bench_retarget(engine: Any, photo: np.ndarray, photo_pose: np.ndarray, driving: PoseSource,
                   layout: str = "side-by-side") -> dict[str, Any]:
    """The whole :func:`~pyposert.retarget.retarget` loop, writing an .mp4 into a temporary
    folder (deleted afterwards). Returns {frames, fps, wall_s, frames_written, layout,
    latency: {stage: {p50_ms, p99_ms, count, share}}} with shares of the end-to-end p50."""
    from .retarget import retarget

    with tempfile.TemporaryDirectory(prefix="pyposert-bench-") as folder:
        stats = retarget(engine, photo, photo_pose, driving, output=Path(folder) / "bench.mp4", layout=layout,
                         progress=False)
    latency = {s: stats["latency"][s] for s in RETARGET_STAGES + ("end_to_end",)}
    return {"frames": stats["frames_processed"], "fps": stats["fps"], "wall_s": stats["wall_s"],
            "frames_written": stats["frames_written"], "layout": layout,
            "latency": _with_shares(latency, "end_to_end")}


# ------------------------------------------------------------------ command line
def add_bench_parser(subparsers: Any) -> None:
    """Register ``pyposert bench`` on an argparse sub-parser collection (used by cli.py)."""
    p = subparsers.add_parser("bench", help="FPS and per-stage p50/p99 latency: the engine alone and the whole "
                                            "retargeting loop")
    p.add_argument("--model", default="nram",
                   help="model file (.plan, .onnx) or installed model name (default: nram; see `pyposert models`)")
    p.add_argument("--backend", default="auto", choices=("auto", "tensorrt", "torch", "onnxruntime"),
                   help="auto | tensorrt | torch | onnxruntime")
    p.add_argument("--frames", type=count(1), default=200, help="timed frames per part (default 200)")
    p.add_argument("--warmup", type=count(0), default=20, help="untimed engine runs first (default 20)")
    p.add_argument("--threads", type=count(1), help="CPU threads for the network and pyposert's kernels "
                                                     "(default: the physical cores)")
    p.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    p.set_defaults(fn=cmd_bench)


def _table(latency: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"    {'stage':<12}{'p50 ms':>10}{'p99 ms':>10}{'share of p50':>14}"]
    for stage, lat in latency.items():
        share = "" if lat["share"] is None else f"{100 * lat['share']:.1f}%"
        p50 = "-" if lat["p50_ms"] is None else f"{lat['p50_ms']:.3f}"
        p99 = "-" if lat["p99_ms"] is None else f"{lat['p99_ms']:.3f}"
        lines.append(f"    {stage:<12}{p50:>10}{p99:>10}{share:>14}")
    return lines


def cmd_bench(args: argparse.Namespace) -> int:
    """``pyposert bench``: prints the results (and writes --json); exit 0, or 1 with the
    message on stderr (model missing or unusable, backend unavailable, bad inputs)."""
    import pyposert

    from .engine import Engine

    from .resources import find_model

    try:
        model = find_model(args.model)  # a path, or an installed model's name
        if args.threads is not None:
            pyposert.set_num_threads(args.threads)
        photo, photo_pose, photo_desc = demo_photo(model)
        with Engine(model, backend=args.backend, threads=args.threads) as engine:
            poses, frame_size = _poses(driving_motion(args.frames, seed=0)[0])
            alone = bench_engine(engine, photo, photo_pose, poses, frame_size, args.warmup)
            driving, driving_desc = driving_motion(args.frames, seed=1)
            loop = bench_retarget(engine, photo, photo_pose, driving)
            results = {
                "model": str(model), "backend": engine.backend, "device": engine.device,
                "model_size": list(engine.size), "threads": args.threads,
                "photo": {"source": photo_desc, "size": [int(photo.shape[0]), int(photo.shape[1])]},
                "driving": {"source": driving_desc, "frame_size": list(frame_size) if frame_size else None},
                "engine_alone": alone, "retarget": loop,
            }
    except (OSError, ValueError, RuntimeError) as exc:  # PlanError, BackendUnavailable included
        print(f"pyposert bench: error: {'; '.join(line.strip() for line in str(exc).splitlines() if line.strip())}",
              file=sys.stderr)
        return 1
    threads = args.threads if args.threads is not None else "default"
    print(f"pyposert bench: {model.name} on {results['backend']} ({results['device']}), model "
          f"{results['model_size'][0]} x {results['model_size'][1]}, threads {threads}")
    print(f"  photo: {photo_desc}, {photo.shape[0]} x {photo.shape[1]}; driving: {driving_desc}")
    print(f"(a) engine alone (Source.run), {alone['frames']} frames after {alone['warmup']} warm-up: "
          f"{alone['fps']} FPS")
    print("\n".join(_table(alone["latency"])))
    print(f"(b) retargeting loop (pose -> smoothing -> engine -> {loop['layout']} -> .mp4), {loop['frames']} frames: "
          f"{loop['fps']} FPS")
    print("\n".join(_table(loop["latency"])))
    if loop["fps"]:
        print(f"    frame time (1 / FPS): {1e3 / loop['fps']:.3f} ms")
    print("  share = stage p50 / end-to-end p50; medians do not add up exactly. In (b) end-to-end runs from capture "
          "to written: 'queue' is a frame's wait after it was read (file sources read ahead up to 4 frames; a camera "
          "keeps only the newest), the rest is the layout and hand-offs between threads.")
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"pyposert bench: error: cannot write {args.json}: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.json}")
    return 0
