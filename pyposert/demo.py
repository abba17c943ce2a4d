"""``pyposert demo``: the retargeting demo on the shipped default model, no camera needed.

The photographed person (``demo/person.png`` among the installed models, see
:mod:`pyposert.resources`: a synthetic person the shipped models never saw, with its pose in
``person_pose.json``) is driven through smooth motion eased between real DeepFashion test
poses (``demo/driving-poses.csv``). Writes

- ``OUT/demo.mp4``: driving skeleton | result, one frame per driving frame, 25 FPS;
- ``OUT/demo_preview.png``: the photo, then a row of driving skeletons over their results;
- ``OUT/demo_stats.json``: the loop's summary (frames, FPS, per-stage latency);
- ``OUT/demo_completion.png`` when a ``completion`` model is installed: the same photo with
  its top erased and completed four times (seeds 0..3 of one call), parsings underneath.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ._cli_args import count, one_line
from .backends import BACKEND_NAMES

__all__ = ["default_model", "run_demo", "add_demo_parser"]


def default_model() -> Path:
    """The default pose-transfer model: ``nram`` from ``$POSERT_MODELS`` or the package
    (:func:`pyposert.resources.find_model`). FileNotFoundError when neither has it."""
    from .resources import find_model

    return find_model(None)


def _preview(photo: np.ndarray, photo_pose: np.ndarray, source: Any, poses: np.ndarray,
             pose_size: tuple[int, int]) -> np.ndarray:
    """uint8 BGR: [photo | result_1 | ... | result_n] over [its skeleton | skeleton_1 | ... ]."""
    from .poses import draw_skeleton

    h, w = photo.shape[:2]
    results = source.run_batch(list(poses), pose_size=pose_size, output_size="source")
    gap = np.full((h, 4, 3), 255, np.uint8)
    top = [photo] + [x for r in results for x in (gap, r)]
    bottom = [draw_skeleton(photo_pose, (h, w))] + [x for p in poses for x in (gap, _fit(draw_skeleton(p, pose_size), h, w))]
    return np.concatenate([np.concatenate(top, axis=1), np.full((4, sum(t.shape[1] for t in top), 3), 255, np.uint8),
                           np.concatenate(bottom, axis=1)], axis=0)


def _fit(image: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2

    return image if image.shape[:2] == (h, w) else cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def run_demo(output: Path, model: Optional[Path] = None, frames: int = 150, backend: str = "auto",
             progress: bool = True) -> dict[str, Any]:
    """Run the demo; returns the retarget summary plus the paths written.

    Raises FileNotFoundError (model or demo media missing, with what to run), ValueError,
    OSError (output not writable).
    """
    import cv2

    from .engine import Engine
    from .pose_sources import SyntheticMotionSource
    from .poses import parse_pose
    from .retarget import retarget

    from .resources import demo_dir, find_model

    model = find_model(model)  # explicit path, else $POSERT_MODELS, else the package's nram.plan
    media = demo_dir()
    for name in ("person.png", "person_pose.json", "driving-poses.csv"):
        if not (media / name).is_file():
            raise FileNotFoundError(f"demo media missing: {media / name} (no such file; reinstall pyposert)")
    photo = cv2.imread(str(media / "person.png"), cv2.IMREAD_COLOR)
    if photo is None:
        raise OSError(f"cannot read {media / 'person.png'}")
    photo_pose = json.loads((media / "person_pose.json").read_text(encoding="utf-8"))
    output.mkdir(parents=True, exist_ok=True)
    driving = SyntheticMotionSource(media / "driving-poses.csv", frames=frames, fps=25.0, seconds_per_pose=0.8)
    with Engine(model, backend=backend) as engine:
        stats = retarget(engine, photo, photo_pose, driving, output=output / "demo.mp4", layout="side-by-side",
                         stats_path=output / "demo_stats.json", progress=progress)
        source = engine.source(photo, photo_pose)
        picks = driving.poses[np.linspace(0, len(driving.poses) - 1, 6).round().astype(int)]
        grid = _preview(photo, parse_pose(photo_pose, name="person_pose.json"), source, picks, driving.frame_size)
        stats["backend"], stats["device"] = engine.backend, engine.device
    preview = output / "demo_preview.png"
    if not cv2.imwrite(str(preview), grid):
        raise OSError(f"cannot write {preview}")
    stats["preview"] = str(preview)
    stats["model"] = str(model)
    try:
        completion_plan: Optional[Path] = find_model("completion")
    except OSError:
        completion_plan = None  # no completion model installed: the demo is pose transfer only
    if completion_plan is not None and (media / "person_parsing.png").is_file():
        stats["completion"] = _complete(completion_plan, photo, media / "person_parsing.png", photo_pose,
                                        output / "demo_completion.png", backend)
    return stats


def _complete(plan: Path, photo: np.ndarray, parsing_path: Path, pose: Any, out: Path, backend: str) -> dict[str, Any]:
    """Complete the demo person's top 4 times with ``plan``; write the grid to ``out``."""
    import time

    import cv2

    from .complete_cli import grid_image
    from .engine import Engine

    parsing = cv2.imread(str(parsing_path), cv2.IMREAD_UNCHANGED)
    with Engine(plan, backend=backend) as engine:
        t0 = time.perf_counter()
        result = engine.complete(photo, parsing, pose, "top", seed=0, samples=4)
        ms = (time.perf_counter() - t0) * 1000.0 / 4
    if not cv2.imwrite(str(out), grid_image(photo, parsing, result)):
        raise OSError(f"cannot write {out}")
    return {"output": str(out), "model": str(plan), "samples": 4, "ms_per_sample": round(ms, 1)}


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        try:
            Path(args.output).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create the output folder {args.output}: {exc.strerror or exc}") from None
        stats = run_demo(Path(args.output), Path(args.model) if args.model else None, args.frames, args.backend)
    except (OSError, ValueError, RuntimeError) as exc:  # PlanError, BackendUnavailable included
        print(f"pyposert demo: error: {one_line(exc)}", file=sys.stderr)
        return 1
    lat = stats["latency"]
    print(f"model {stats['model']} on {stats['backend']} ({stats['device']})")
    print(f"frames read {stats['frames_read']}, written {stats['frames_written']}, dropped {stats['frames_dropped']}; "
          f"{stats['fps']} FPS end to end; engine p50 {lat['engine']['p50_ms']} ms, "
          f"p99 {lat['engine']['p99_ms']} ms per frame")
    print(f"wrote {Path(stats['output']).resolve()} (driving skeleton | result)")
    print(f"wrote {Path(stats['preview']).resolve()} (photo, then results over their driving poses)")
    if "completion" in stats:
        c = stats["completion"]
        print(f"wrote {Path(c['output']).resolve()} (photo | top erased | {c['samples']} completions, "
              f"{c['ms_per_sample']} ms each, parsings below) with {c['model']}")
    return 0


def add_demo_parser(subparsers: Any) -> None:
    """Register ``pyposert demo`` (used by cli.py)."""
    p = subparsers.add_parser("demo", help="retarget the shipped demo person with the shipped default model")
    p.add_argument("--output", default="out", help="folder for demo.mp4, demo_preview.png, demo_stats.json")
    p.add_argument("--model", help="model file or installed model name (default: nram; see `pyposert models`)")
    p.add_argument("--frames", type=count(1), default=150, help="driving frames, >= 1 (25 FPS; default 150)")
    p.add_argument("--backend", default="auto", choices=BACKEND_NAMES, help="auto | tensorrt | torch | onnxruntime")
    p.set_defaults(fn=cmd_demo)
