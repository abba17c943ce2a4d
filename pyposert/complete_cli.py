"""``pyposert complete``: fashion image completion from the command line.

    pyposert complete --image me.jpg --pose me_keypoints.json --garment top --samples 4 \
        --output out.png --grid grid.png [--parsing me_parsing.png] [--model completion.plan]

Reads the photo (any image OpenCV reads, BGR), its pose (OpenPose .json or .npy (18, 2|3)
(x, y[, confidence]) pixels, as ``pyposert retarget --source-pose``; without ``--pose`` the
MediaPipe estimator of the pose extra finds it), its parsing (a single-channel PNG of class
indices 0..7, :data:`pyposert.completion.PARSING_CLASSES`; without ``--parsing`` the parser
model, ``--parser``, makes it from the photo and the pose) and optionally a mask (nonzero =
erase); runs :meth:`pyposert.Engine.complete`; writes ``OUT.png`` for one
sample, else ``OUT_0.png``, ``OUT_1.png``, ...; with ``--grid`` one picture: photo | erased
(grey region) | each sample, and under each its colour-coded parsing
(:data:`pyposert.completion.PARSING_PALETTE`). Prints one summary line. Bad input: one line
on stderr, exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import completion
from ._cli_args import count

__all__ = ["add_complete_parser", "cmd_complete", "grid_image", "output_paths"]

_GREY = 128  # uint8 grey of the erased region in the grid (0 in the network's [-1, 1] units)


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_complete_parser(subparsers: Any) -> None:
    """Register ``pyposert complete`` on an argparse sub-parser collection (used by cli.py)."""
    p = subparsers.add_parser(
        "complete", help="fashion image completion: erase one garment of a photo and generate completions")
    p.add_argument("--model", default="completion",
                   help="completion model: .plan bundle (task 'completion') or .onnx (default: the installed "
                        "'completion')")
    p.add_argument("--image", required=True, metavar="PHOTO", help="photo of the person (BGR image file)")
    p.add_argument("--parsing", metavar="PARSING.png",
                   help="its parsing: single-channel PNG of class indices 0..7 "
                        f"({', '.join(f'{i} {c}' for i, c in enumerate(completion.PARSING_CLASSES))}); "
                        "default: made from the photo by --parser")
    p.add_argument("--parser", default="parser", metavar="PARSER.plan",
                   help="parsing model used when --parsing is not given (default: the installed 'parser')")
    p.add_argument("--pose", metavar="POSE.json",
                   help="its pose: OpenPose .json (COCO-18 or BODY_25) or .npy (18, 2|3) (x, y[, conf]) pixels; "
                        "default: estimated with MediaPipe (the pose extra)")
    p.add_argument("--garment", choices=completion.GARMENTS,
                   help="garment to erase and complete (its box, grown by the model's margin); with --mask it only "
                        "says which garment the region replaces")
    p.add_argument("--mask", metavar="MASK.png", help="region to erase instead of the garment's box: nonzero = erase")
    p.add_argument("--samples", type=count(1), default=1, help="number of completions (default 1)")
    p.add_argument("--seed", type=_seed, default=0, help="noise seed, >= 0 (default 0); sample k is reproducible")
    p.add_argument("--no-framing", action="store_true",
                   help="letterbox the whole photo into the model instead of a crop around the person")
    p.add_argument("--output", required=True, metavar="OUT.png",
                   help="result; with several samples OUT_0.png, OUT_1.png, ...")
    p.add_argument("--grid", metavar="GRID.png", help="also write photo | erased | samples, parsings underneath")
    p.add_argument("--backend", default="auto", choices=("auto", "tensorrt", "torch", "onnxruntime"),
                   help="auto | tensorrt | torch | onnxruntime")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: the backend's choice)")
    p.set_defaults(fn=cmd_complete)


# ------------------------------------------------------------------ files
def _read_parsing(path: str) -> np.ndarray:
    """The parsing PNG as it is stored: [h, w] class indices (checked by the engine)."""
    import cv2

    if not Path(path).is_file():
        raise FileNotFoundError(f"--parsing not found: {path}")
    labels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise OSError(f"cannot read the parsing {path}")
    if labels.ndim == 3 and labels.shape[2] != 1:
        raise ValueError(f"the parsing {path} has {labels.shape[2]} channels; it must be a single-channel PNG of "
                         f"class indices 0..{completion.NUM_CLASSES - 1} (save it with "
                         f"cv2.imwrite(path, labels.astype(np.uint8))), not a colour-coded picture")
    return labels


def _read_mask(path: Optional[str]) -> Optional[np.ndarray]:
    """The mask PNG -> uint8 [h, w], 1 = erase (a colour mask: nonzero in any colour channel)."""
    import cv2

    if path is None:
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(f"--mask not found: {path}")
    mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise OSError(f"cannot read the mask {path}")
    if mask.ndim == 3:
        mask = mask[:, :, :3].any(axis=2)  # alpha ignored: painted masks are often opaque RGBA
    return (mask != 0).astype(np.uint8)


def output_paths(output: Path, samples: int) -> list[Path]:
    """OUT.png for one sample, else OUT_0.png, OUT_1.png, ... next to it."""
    if samples == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{k}{output.suffix}") for k in range(samples)]


def grid_image(photo: np.ndarray, parsing: np.ndarray, result: Any) -> np.ndarray:
    """uint8 [2h, (2 + samples) w, 3] BGR: photo | erased (grey region) | each sample on top,
    their colour-coded parsings underneath (the erased one with a grey region).

    photo: uint8 [h, w, 3] BGR; parsing: uint8 [h, w]; result: a source-size Completion.
    """
    inside = result.region.astype(bool)[:, :, None]
    erased = np.where(inside, np.uint8(_GREY), photo)
    parsing_erased = np.where(inside, np.uint8(_GREY), completion.colorize_parsing(parsing))
    top = [photo, erased] + list(result.images)
    bottom = [completion.colorize_parsing(parsing), parsing_erased] + [completion.colorize_parsing(p)
                                                                        for p in result.parsings]
    return np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)


def _write(path: Path, image: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path} (unknown image extension, or the folder is not writable)")


def _one_line(exc: BaseException) -> str:
    # Some messages (no usable backend) list one reason per line; the CLI promises one line.
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _estimate_pose(photo: np.ndarray) -> np.ndarray:
    """The photo's pose from the MediaPipe estimator of the pose extra, (18, 3) pixels."""
    from .estimators import MEDIAPIPE_INSTALL_HINT, default_estimator

    estimator = default_estimator(static_image_mode=True)
    if estimator is None:
        raise ValueError(f"give --pose POSE.json (the person's keypoints), or let pyposert find them: "
                         f"no pose estimator is installed: install the MediaPipe extra -- {MEDIAPIPE_INSTALL_HINT}")
    try:
        pose = estimator(photo)
    finally:
        estimator.close()
    if pose is None:
        raise ValueError("no person found in the photo by the pose estimator; give --pose POSE.json")
    return pose


# ------------------------------------------------------------------ command
def cmd_complete(args: argparse.Namespace) -> int:
    """``pyposert complete``: exit 0, or 2 with one line on stderr (bad or missing input,
    unusable model, no backend, unwritable output)."""
    import cv2

    from .engine import Engine
    from .retarget import check_output, load_source_pose

    try:
        output = check_output(args.output)
        grid_path = check_output(args.grid) if args.grid else None
        if args.garment is None and args.mask is None:
            raise ValueError(f"give --garment ({' | '.join(completion.GARMENTS)}) or --mask MASK.png")
        if not Path(args.image).is_file():
            raise FileNotFoundError(f"--image not found: {args.image}")
        photo = cv2.imread(args.image, cv2.IMREAD_COLOR)
        if photo is None:
            raise OSError(f"cannot read the photo {args.image}")
        mask = _read_mask(args.mask)
        pose = load_source_pose(args.pose, "--pose") if args.pose else _estimate_pose(photo)
        if args.parsing:
            parsing = _read_parsing(args.parsing)
        else:
            with Engine(args.parser, backend=args.backend, device=args.device) as parser:
                if parser.task != "parsing":
                    raise ValueError(f"--parser {args.parser} is a {parser.task} model, not a parsing model")
                parsing = parser.parse(photo, pose)
        with Engine(args.model, backend=args.backend, device=args.device) as engine:
            if engine.task != "completion":
                raise ValueError(f"{args.model} is a {engine.task} model; `pyposert complete` needs a completion "
                                 f"model (use `pyposert retarget` for pose transfer)")
            start = time.perf_counter()
            result = engine.complete(photo, parsing, pose, args.garment, mask=mask, seed=args.seed,
                                     samples=args.samples, framing=not args.no_framing)
            elapsed = time.perf_counter() - start
            backend, device = engine.backend, engine.device
        paths = output_paths(output, args.samples)
        for path, image in zip(paths, result.images):
            _write(path, image)
        if grid_path is not None:
            _write(grid_path, grid_image(photo, completion.check_parsing(parsing), result))
    except (OSError, ValueError, RuntimeError) as exc:  # PlanError, BackendUnavailable included
        print(f"pyposert complete: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    what = args.garment if args.mask is None else f"mask {args.mask}" + (f" ({args.garment})" if args.garment else "")
    if not args.parsing:
        what += f" (parsing by {Path(args.parser).name})"
    wrote = [str(p) for p in paths] + ([str(grid_path)] if grid_path is not None else [])
    print(f"pyposert complete: {Path(args.model).name} on {backend} ({device}), erased {what}, "
          f"{args.samples} sample{'s' if args.samples != 1 else ''} (seed {args.seed}), "
          f"{elapsed * 1e3 / args.samples:.1f} ms per sample; wrote {', '.join(wrote)}")
    return 0
