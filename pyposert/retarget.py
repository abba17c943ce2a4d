"""The retargeting loop: driving frames -> pose -> smoothing -> Engine -> video writer / window.

    engine = pyposert.Engine("nram")
    stats = retarget(engine, photo_bgr, photo_pose, VideoPoseSource(0, estimator), show=True)

Threads and queues (all bounded by ``max_queue``):

    capture thread --(frames)--> main thread: pose, smoothing, engine, overlay, window
                                     --(images)--> writer thread: cv2.VideoWriter

- Live sources (cameras, ``live=True``): the capture queue keeps only the *newest* frame --
  when the engine is slower than the camera, stale frames are dropped (and counted) instead of
  piling up into ever-growing lag, the webcam complaint in DESIGN.md. Pose estimation runs
  after that decision, so dropped frames cost nothing.
- Files (video, JSON, CSV, synthetic): lossless -- the capture thread blocks instead of
  dropping; the output has every frame, at the source's own frame rate.
- Ctrl-C (KeyboardInterrupt) or a failing source: the writer is drained and released in a
  ``finally``, so the file written so far stays playable; errors are re-raised afterwards.

Poses are COCO-18 float32 (18, 2) (x, y) pixels of the driving frame, missing (-1, -1). A
driving frame without the neck and both hips (:data:`pyposert.poses.REQUIRED_JOINTS`) counts
as a frame without a person: the last pose is kept.
Images are uint8 [h, w, 3] BGR. The result is at the photo's size (``output_size="source"``).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ._cli_args import frame_size, one_line, positive_float
from .backends import BACKEND_NAMES
from .pose_sources import PoseFrame, PoseSource
from .poses import REQUIRED_JOINTS, draw_skeleton, has_minimum
from .smoothing import PoseSmoother

__all__ = ["retarget", "draw_skeleton", "LAYOUTS", "add_retarget_parser", "cmd_retarget"]

LAYOUTS = ("result", "side-by-side")
STAGES = ("queue", "pose", "smooth", "engine", "write", "end_to_end")

_END = object()  # end-of-stream marker in both queues


def _side_by_side(left: np.ndarray, result: np.ndarray) -> np.ndarray:
    """left panel scaled to the result's height (aspect kept) | result."""
    import cv2

    h = result.shape[0]
    w = max(1, round(left.shape[1] * h / left.shape[0]))
    if left.shape[:2] != (h, w):
        left = cv2.resize(left, (w, h), interpolation=cv2.INTER_AREA)
    return np.concatenate([left, result], axis=1)


def check_output(output: Union[str, os.PathLike]) -> Path:
    """Fail early (OSError) on an output path that cannot be written."""
    p = Path(output)
    if p.is_dir():
        raise IsADirectoryError(f"output {p} is a directory; give a file name such as out.mp4")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise PermissionError(f"output {p} cannot be written (permission denied)")
    return p


class _Writer(threading.Thread):
    """Writes images from a bounded queue to a video (:func:`pyposert.video.open_writer`: H.264
    for .mp4, opened on the first image, whose size fixes the video's); always closes it
    (finally) so the file is finalised."""

    def __init__(self, path: Path, fps: float, max_queue: int) -> None:
        super().__init__(name="pyposert-writer", daemon=True)
        self.path, self.fps = path, fps
        self.queue: "queue.Queue[Any]" = queue.Queue(maxsize=max_queue)
        self.written = 0
        self.times: list[float] = []  # write durations, s
        self.end_to_end: list[float] = []  # capture -> written, s
        self.error: Optional[BaseException] = None
        self.codec: Optional[str] = None

    def run(self) -> None:
        from .video import open_writer

        writer = None
        try:
            while True:
                item = self.queue.get()
                if item is _END:
                    return
                if self.error is not None:
                    continue  # keep draining so the producer never blocks
                image, captured = item
                t0 = time.perf_counter()
                if writer is None:
                    try:
                        writer = open_writer(self.path, self.fps, (image.shape[0], image.shape[1]))
                    except OSError as exc:
                        self.error = exc
                        continue
                    self.codec = writer.codec
                writer.write(image)
                done = time.perf_counter()
                self.written += 1
                self.times.append(done - t0)
                self.end_to_end.append(done - captured)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            self.error = exc
        finally:
            if writer is not None:
                writer.close()


_NO_HANDLER = object()


def _install_sigint(interrupt: threading.Event) -> Any:
    """First Ctrl-C: set ``interrupt`` (the loop finishes its frame and finalises the file);
    a second one raises KeyboardInterrupt as usual. Why not just catch KeyboardInterrupt: it
    can land inside a queue's lock and leave it held, deadlocking the writer's drain. Only
    possible from the main thread; elsewhere KeyboardInterrupt is caught as a fallback."""
    if threading.current_thread() is not threading.main_thread():
        return _NO_HANDLER

    def handler(signum: int, frame: Any) -> None:
        if interrupt.is_set():
            raise KeyboardInterrupt
        interrupt.set()

    try:
        return signal.signal(signal.SIGINT, handler)
    except (ValueError, OSError):
        return _NO_HANDLER


def _restore_sigint(previous: Any) -> None:
    if previous is not _NO_HANDLER:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _percentiles(values: list[float]) -> dict[str, Optional[float]]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "mean_ms": None, "count": 0}
    ms = np.asarray(values) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 4), "count": len(values)}


def retarget(engine: Any, source_image_bgr: np.ndarray, source_pose: Any, driving: PoseSource,
             output: Optional[Union[str, os.PathLike]] = None, show: bool = False, layout: str = "result",
             stats_path: Optional[Union[str, os.PathLike]] = None, smoothing: bool = True, max_queue: int = 4,
             live: Optional[bool] = None, *, overlay: bool = False, progress: bool = True,
             max_frames: Optional[int] = None, start_s: float = 0.0, normalize: Optional[bool] = None,
             keep_bone_lengths: bool = False, framing: Optional[bool] = None,
             normalize_size: str = "height") -> dict[str, Any]:
    """Drive the photographed person with ``driving``'s poses; write and/or show the result.

    Args:
        engine: a :class:`pyposert.Engine` (anything with ``source(image, pose) -> obj`` whose
            ``obj.run(pose, pose_size=(h, w), output_size="source")`` returns uint8 BGR).
        source_image_bgr: the photo, uint8 [h, w, 3] BGR.
        source_pose: its pose, (18, 2|3) (x, y[, conf]) pixels of the photo, or OpenPose JSON;
            None: the engine's pose estimator.
        driving: a :class:`~pyposert.pose_sources.PoseSource`.
        output: video path (.mp4 / .m4v / .mov: H.264, or mp4v with a warning where PyAV is
            missing -- :mod:`pyposert.video`; .avi: MJPG) or None (nothing written). Written at
            ``driving.fps``, one output frame per processed driving frame.
        show: display in an OpenCV window ('q' or Esc stops). Needs a GUI build of OpenCV.
        layout: "result" or "side-by-side" (driving frame -- or its skeleton for pose-only
            sources -- | result).
        stats_path: also write the summary as JSON there.
        smoothing: One-Euro smoothing of the driving pose (:mod:`pyposert.smoothing`).
        max_queue: bound of the frame and writer queues (live sources keep only 1 frame queued).
        live: drop stale frames (keep the newest)? None: ``driving.live``.
        overlay: draw FPS and end-to-end latency on the frames.
        progress: tqdm progress bar (files only).
        max_frames: stop after this many driving frames (None: all), counted from ``start_s``.
        start_s: skip the driving frames before this time in seconds (files only; skipped
            frames are decoded but not estimated or rendered).
        normalize: map each driving pose onto the photo's person (:mod:`pyposert.normalize`:
            where they stand, their size); None: ``driving.normalize`` (True for videos,
            cameras and OpenPose folders).
        keep_bone_lengths: with ``normalize``, keep the photo person's bone lengths and take
            only the driver's joint angles.
        framing: passed to ``engine.source`` (crop the photo around the person); None: the
            engine's default.
        normalize_size: how normalisation sizes the figure: "height" (the driver's measured
            size, frame by frame: any camera) or "feet" (Everybody Dance Now's function of
            how high the feet are: a static camera).

    Returns:
        Summary dict: frames_read, frames_processed, frames_written, frames_dropped, no_person,
        fps (processed frames per wall second), output_fps, wall_s, interrupted, normalized,
        video_codec ("h264", "mp4v", "MJPG" or None),
        latency = {stage: {p50_ms, p99_ms, mean_ms, count}} for stages queue (capture -> picked up),
        pose, smooth, engine, write and end_to_end (capture -> written, or -> rendered when
        nothing is written).

    Raises:
        ValueError (bad layout, arguments, malformed pose files), OSError (camera, video or
        output problems). The output written so far stays playable in every case. Ctrl-C is
        not an error: the output is finalised and the summary returned with interrupted=True.
    """
    import cv2

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if max_queue < 1:
        raise ValueError(f"max_queue must be >= 1, got {max_queue!r}")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames must be an integer >= 1, got {max_frames!r}")
    start_s = float(start_s)
    if not (start_s >= 0 and np.isfinite(start_s)):
        raise ValueError(f"start must be a time >= 0 in seconds, got {start_s!r}")
    live = bool(driving.live) if live is None else bool(live)
    if start_s > 0 and live:
        raise ValueError("start needs a file to skip into; a camera starts now")
    out_path = check_output(output) if output is not None else None
    # once per photo: fails fast on bad input
    src = (engine.source(source_image_bgr, source_pose) if framing is None
           else engine.source(source_image_bgr, source_pose, framing=framing))
    photo_size = (int(source_image_bgr.shape[0]), int(source_image_bgr.shape[1]))
    normalize = bool(getattr(driving, "normalize", False)) if normalize is None else bool(normalize)
    normalizer = None
    if normalize:
        from .normalize import SkeletonNormalizer

        normalizer = SkeletonNormalizer(src.photo_keypoints, photo_size, keep_bone_lengths=keep_bone_lengths,
                                        size=normalize_size)
    smoother = PoseSmoother(enabled=smoothing)
    last_result: Optional[np.ndarray] = None  # the last frame rendered, shown again for a frame without a usable pose
    required = tuple(getattr(engine, "required_joints", REQUIRED_JOINTS))  # the engine's minimum
    fps_out = float(driving.fps) if driving.fps and driving.fps > 0 else 25.0

    frames_q: "queue.Queue[Any]" = queue.Queue(maxsize=1 if live else max_queue)
    stop = threading.Event()
    counters = {"read": 0, "dropped": 0}
    capture_error: list[BaseException] = []

    def capture() -> None:
        try:
            for frame in driving.frames():
                if stop.is_set():
                    return
                if frame.time_s < start_s - 1e-9:
                    continue  # before --start: not counted, estimated or rendered
                counters["read"] += 1
                item = (frame, time.perf_counter())
                if live:
                    # Keep only the newest: replace a frame nobody has picked up yet.
                    while True:
                        try:
                            frames_q.put_nowait(item)
                            break
                        except queue.Full:
                            try:
                                frames_q.get_nowait()
                                counters["dropped"] += 1
                            except queue.Empty:
                                pass
                else:
                    while not stop.is_set():  # lossless: wait for room
                        try:
                            frames_q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            pass
                if max_frames is not None and counters["read"] >= max_frames:
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised by the main thread
            capture_error.append(exc)
        finally:
            while True:  # the end marker must arrive even if the queue is full
                try:
                    frames_q.put(_END, timeout=0.1)
                    break
                except queue.Full:
                    if stop.is_set():
                        break

    writer = _Writer(out_path, fps_out, max_queue) if out_path is not None else None
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    processed = 0
    interrupted = False
    bar = None
    if progress and not live:
        try:
            import sys

            from tqdm import tqdm

            # A terminal only: in a log (pipe, file) the bar's redraws would land between the
            # summary lines. Whatever was printed before goes out first, for the same reason.
            sys.stdout.flush()
            bar = tqdm(total=driving.frame_count, unit="frame", desc="retarget", leave=False, file=sys.stderr,
                       disable=not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()))
        except ImportError:  # tqdm is optional at runtime
            bar = None
    recent: list[float] = []  # render timestamps, for the FPS overlay
    start = time.perf_counter()
    reader = threading.Thread(target=capture, name="pyposert-capture", daemon=True)
    interrupt = threading.Event()
    previous_handler = _install_sigint(interrupt)
    if writer is not None:
        writer.start()
    reader.start()
    try:
        while True:
            if interrupt.is_set():
                interrupted = True
                break
            try:
                item = frames_q.get(timeout=0.1)
            except queue.Empty:
                if not reader.is_alive() and frames_q.empty():
                    break
                continue
            if item is _END:
                break
            if writer is not None and writer.error is not None:
                raise writer.error
            frame, captured = item
            t0 = time.perf_counter()
            stages["queue"].append(t0 - captured)
            frame = driving.pose(frame)
            keypoints = frame.keypoints
            if keypoints is not None and not has_minimum(keypoints, required):
                keypoints = None  # no neck or hips to place the body: as a frame without a person
            t1 = time.perf_counter()
            pose = smoother(keypoints, frame.time_s)
            # Normalised poses are in the photo's pixels; others in the driving frame's.
            target, target_size = (normalizer(pose), None) if normalizer is not None else (pose, frame.frame_size)
            t2 = time.perf_counter()
            if target is not None and not has_minimum(target, required):
                # Fitted onto the photo, a neck or hip can land above or left of it (negative:
                # missing); such a frame is shown like the last one instead of stopping the run.
                target = None
            if target is None:  # nobody seen yet (or no usable pose): the last result, or the photo
                result = last_result if last_result is not None else np.ascontiguousarray(source_image_bgr)
            else:
                result = last_result = src.run(target, pose_size=target_size, output_size="source")
            t3 = time.perf_counter()
            stages["pose"].append(t1 - t0)
            stages["smooth"].append(t2 - t1)
            stages["engine"].append(t3 - t2)
            if layout == "side-by-side":
                # Pose-only sources: draw the (smoothed) pose the engine was actually given.
                if frame.frame_bgr is not None:
                    left = frame.frame_bgr
                elif normalizer is not None:
                    left = draw_skeleton(target, photo_size)
                else:
                    left = draw_skeleton(pose, frame.frame_size or photo_size)
                image = _side_by_side(left, result)
            else:
                image = result
            if overlay:
                recent.append(t3)
                del recent[:-30]
                fps_now = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
                image = image.copy()
                text = f"{fps_now:5.1f} fps  {(t3 - captured) * 1e3:6.1f} ms"
                cv2.putText(image, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(image, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            processed += 1
            if writer is None:
                stages["end_to_end"].append(t3 - captured)
            else:
                while True:  # bounded: blocks when the disk is slower than the engine
                    try:
                        writer.queue.put((image, captured), timeout=0.1)
                        break
                    except queue.Full:
                        if writer.error is not None or not writer.is_alive():
                            raise writer.error or OSError(f"the writer of {out_path} stopped")
            if show:
                try:
                    cv2.imshow("pyposert", image)
                    key = cv2.waitKey(1) & 0xFF
                except cv2.error as exc:
                    raise OSError(f"cannot open a window ({exc.msg.strip() if hasattr(exc, 'msg') else exc}); "
                                  f"this OpenCV has no GUI (opencv-python-headless): use --output instead") from None
                if key in (ord("q"), 27):
                    break
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stop.set()
        _restore_sigint(previous_handler)
        reader.join(timeout=2.0)
        if writer is not None:
            writer.queue.put(_END)  # drains what is queued, then releases the VideoWriter
            writer.join()
        driving.close()
        if bar is not None:
            bar.close()
        if show:
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass

    wall = time.perf_counter() - start
    if writer is not None:
        stages["write"] = writer.times
        stages["end_to_end"] = writer.end_to_end
    stats: dict[str, Any] = {
        "frames_read": counters["read"],
        "frames_processed": processed,
        "frames_written": writer.written if writer is not None else 0,
        "frames_dropped": counters["dropped"],
        "no_person": smoother.no_person,
        "fps": round(processed / wall, 3) if wall > 0 else None,
        "output_fps": fps_out if writer is not None else None,
        "wall_s": round(wall, 4),
        "live": live,
        "layout": layout,
        "interrupted": interrupted,
        "normalized": normalizer is not None,
        "video_codec": writer.codec if writer is not None else None,
        "output": str(out_path) if out_path is not None else None,
        "latency": {s: _percentiles(v) for s, v in stages.items()},
    }
    if stats_path is not None:
        Path(stats_path).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    if capture_error:
        raise capture_error[0]
    if writer is not None and writer.error is not None:
        raise writer.error
    return stats  # after Ctrl-C too (interrupted=True): the caller gets the summary


# ------------------------------------------------------------------ command line
def add_retarget_parser(subparsers: Any) -> None:
    """Register ``pyposert retarget`` on an argparse sub-parser collection (used by cli.py)."""
    p = subparsers.add_parser(
        "retarget", help="drive a photographed person with a video, camera, OpenPose folder or pose CSV")
    p.add_argument("--source", required=True, metavar="PHOTO", help="photo of the person (any size, BGR image file)")
    p.add_argument("--source-pose", metavar="FILE",
                   help="the photo's pose: OpenPose .json, or .npy (18, 2|3) (x, y[, conf]) pixels; "
                        "without it the pose extra estimates it")
    p.add_argument("--driving", required=True, metavar="VIDEO|CAMERA_INDEX|POSE_DIR|POSE_CSV",
                   help="video file, camera index (0), folder of OpenPose *_keypoints.json, annotation .csv "
                        "(y first), or synthetic[:N]")
    p.add_argument("--output", metavar="OUT.mp4", help="video to write (.mp4 or .avi)")
    p.add_argument("--show", action="store_true", help="show the result in a window ('q' or Esc stops)")
    p.add_argument("--model", default="nram",
                   help="model file (.plan, .onnx) or installed model name (default: nram; see `pyposert models`)")
    p.add_argument("--layout", choices=LAYOUTS, default="result", help="result, or driving | result")
    p.add_argument("--stats", metavar="STATS.json", help="write the summary (frames, drops, latency) as JSON")
    p.add_argument("--fps", type=positive_float, help="frame rate of pose folders / CSVs, > 0 (default 25)")
    p.add_argument("--driving-size", metavar="HxW", type=frame_size,
                   help="frame size of OpenPose/CSV poses, e.g. 720x1280 (default: unknown / from the CSV name)")
    p.add_argument("--no-smoothing", action="store_true", help="disable One-Euro smoothing")
    p.add_argument("--person", default="largest", metavar="largest|center|N",
                   help="which person when the photo's pose file or the driver has several: the largest, the one "
                        "nearest the centre, or index N (0-based, file order); video drivers then track that "
                        "person from frame to frame (default: largest)")
    p.add_argument("--source-person", metavar="largest|center|N", help="--person for the photo only")
    p.add_argument("--driving-person", metavar="largest|center|N", help="--person for the driver only")
    p.add_argument("--no-normalize", action="store_true",
                   help="use the driver's skeleton in its own pixels instead of fitting it onto the photo's person "
                        "(normalisation is on for videos, cameras and OpenPose folders)")
    p.add_argument("--keep-bone-lengths", action="store_true",
                   help="normalising: keep the photo person's bone lengths, take only the driver's joint angles")
    p.add_argument("--static-camera", action="store_true",
                   help="normalising: size the figure by how high the driver's feet are (Everybody Dance Now; "
                        "steadier for a fixed camera) instead of the driver's measured size (any camera)")
    p.add_argument("--no-framing", action="store_true",
                   help="letterbox the whole photo into the model instead of a crop around the person")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N driving frames")
    p.add_argument("--start", type=float, default=0.0, metavar="S",
                   help="start S seconds into the driving video / pose sequence (files only)")
    p.add_argument("--overlay", action="store_true", help="draw FPS and latency on the frames")
    p.add_argument("--backend", default="auto", choices=BACKEND_NAMES, help="auto | tensorrt | torch | onnxruntime")
    p.set_defaults(fn=cmd_retarget)


def load_source_pose(path: Optional[str], flag: str = "--source-pose") -> Any:
    """A pose file given on the command line (``flag`` names it in errors): .npy -> the
    array ((18, 2|3) (x, y[, confidence]) pixels), else the path (OpenPose .json, parsed and
    checked by the engine); None -> None. FileNotFoundError when missing."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{flag} not found: {p} (no such file)")
    if not p.is_file():
        raise IsADirectoryError(f"{flag} {p} is a folder; give one pose file (OpenPose .json or .npy)")
    if p.suffix.lower() == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{flag} {p} is not a readable .npy array ({exc})") from None
    return p  # OpenPose .json: parsed (and checked) by the engine


SOURCE_POSE_ADVICE = ('the photo\'s pose is needed: pass --source-pose FILE (OpenPose .json, or .npy (18, 2|3) '
                      '(x, y[, confidence]) pixels), or install the pose extra to estimate it: '
                      'pip install "pyposert[runtime,pose]"')
VIDEO_POSE_ADVICE = ('a video or camera needs the pose extra to find the driver\'s pose: pip install '
                     '"pyposert[runtime,pose]"; or drive from pose files (OpenPose folder, .csv) or synthetic:N')


def cmd_retarget(args: Any) -> int:
    """``pyposert retarget``: prints the summary; exit 0, 1 on an error (one line on stderr),
    2 when there is nothing to do (neither --output nor --show), 130 after Ctrl-C (the output
    is still finalised)."""
    import sys
    import warnings

    from ._files import read_image
    from .engine import Engine, NoPoseEstimator
    from .pose_sources import open_driving
    from .poses import check_person, parse_pose

    if not args.output and not args.show:
        print("pyposert retarget: error: nothing to do: give --output OUT.mp4 (a video to write) and/or --show "
              "(a window)", file=sys.stderr)
        return 2
    try:
        photo_person = check_person(args.source_person or args.person)
        driving_person = check_person(args.driving_person or args.person)
        if args.max_frames is not None and args.max_frames < 1:
            raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
        if not args.start >= 0:
            raise ValueError(f"--start must be >= 0 seconds, got {args.start}")
        photo = read_image(args.source, "--source photo")
        photo_pose = load_source_pose(args.source_pose)
        if photo_pose is not None:  # one person of the file, chosen here
            photo_pose = parse_pose(photo_pose, person=photo_person, image_size=photo.shape[:2], name="--source-pose")
        try:
            driving = open_driving(args.driving, fps=args.fps, frame_size=args.driving_size, person=driving_person)
        except NoPoseEstimator:
            raise ValueError(VIDEO_POSE_ADVICE) from None
        with Engine(args.model, backend=args.backend, person=photo_person) as engine, \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                stats = retarget(engine, photo, photo_pose, driving, output=args.output,
                                 show=args.show, layout=args.layout, stats_path=args.stats,
                                 smoothing=not args.no_smoothing, overlay=args.overlay, max_frames=args.max_frames,
                                 start_s=args.start, normalize=False if args.no_normalize else None,
                                 keep_bone_lengths=args.keep_bone_lengths,
                                 framing=False if args.no_framing else None,
                                 normalize_size="feet" if args.static_camera else "height")
            except NoPoseEstimator:
                raise ValueError(SOURCE_POSE_ADVICE) from None
        for warning in caught:  # e.g. no H.264 encoder: said once, in the user's terms
            print(f"pyposert retarget: warning: {warning.message}", file=sys.stderr)
    except (OSError, ValueError, RuntimeError) as exc:  # PlanError, BackendUnavailable included
        print(f"pyposert retarget: error: {one_line(exc)}", file=sys.stderr)
        return 1
    lat = stats["latency"]["end_to_end"]
    print(f"frames read {stats['frames_read']}, written {stats['frames_written']}, dropped {stats['frames_dropped']}, "
          f"no person {stats['no_person']}; {stats['fps']} fps; end-to-end p50 {lat['p50_ms']} ms, "
          f"p99 {lat['p99_ms']} ms" + (f"; wrote {stats['output']} ({stats['video_codec']})" if stats["output"]
                                       else ""))
    return 130 if stats["interrupted"] else 0
