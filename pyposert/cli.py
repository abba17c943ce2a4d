"""The `pyposert` command line: `info` (what this machine can run, backends included; with
``--model`` also what a model file is and does), `models` (the installed models and where they
are), `demo` (pyposert.demo: the retargeting demo on the shipped default model), `retarget`
(pyposert.retarget), `complete` (pyposert.complete_cli: fashion image completion) and `bench`
(pyposert.bench: FPS and per-stage latency).

Every command: errors are one line on stderr with a non-zero exit; output piped into a
program that stops reading (``pyposert info | head -1``) ends quietly with exit 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

# OpenCV logs warnings (e.g. for unreadable files) straight to the terminal; the CLI reports
# problems itself, in one line. Must be set before cv2 is first imported.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import pyposert  # noqa: E402 - after the environment switch above
from pyposert._cli_args import one_line  # noqa: E402


def describe_model(path: str) -> list[str]:
    """Lines saying what a model file is: kind, task (and which Engine method runs it), model
    frame, heatmaps, completion parameters, payloads. A bundle is described from its manifest
    (nothing is run); a bare .onnx is opened with ONNX Runtime on the CPU to read its inputs.

    Raises FileNotFoundError, PlanError (unusable file), BackendUnavailable (a bare .onnx
    without onnxruntime).
    """
    from pyposert.model import TASK_METHODS, load_model

    model = load_model(path)
    if model.kind == "bundle":
        b = model.bundle
        spec = b.input_spec
        lines = [f"  model       : {model.path} (bundle: {b.model_name} {b.model_version})",
                 f"  task        : {b.task} (Engine.{TASK_METHODS[b.task]})",
                 f"  model frame : {spec.height} x {spec.width}, heatmaps {spec.heatmap.mode} sigma "
                 f"{spec.heatmap.sigma:g} radius {spec.heatmap.radius:g}"]
        comp = b.completion_spec
        payloads = ", ".join(f"{p.name} ({p.kind})" for p in b.payloads) or "none"
    else:
        with pyposert.Engine(model.path, backend="onnxruntime", device="cpu", threads=1) as engine:
            hm = engine.spec.heatmap
            lines = [f"  model       : {model.path} (bare ONNX)",
                     f"  task        : {engine.task} (Engine.{TASK_METHODS[engine.task]})",
                     f"  model frame : {engine.spec.height} x {engine.spec.width}, heatmaps {hm.mode} sigma "
                     f"{hm.sigma:g} radius {hm.radius:g} (defaults of a bare file)"]
            comp = engine.spec.completion
        payloads = None
    if comp is not None:
        lines.append(f"  completion  : garment crops {comp.crop_size} x {comp.crop_size}, latent {comp.latent}, "
                     f"erase margin {comp.margin:g} + {comp.pad} px")
    if payloads is not None:
        lines.append(f"  payloads    : {payloads}")
    return lines


def cmd_info(args: argparse.Namespace) -> int:
    model_lines: list[str] = []
    if getattr(args, "model", None):
        from pyposert.errors import BackendUnavailable

        try:
            model_lines = describe_model(args.model)
        except (OSError, ValueError, BackendUnavailable) as exc:  # PlanError is a ValueError
            print(f"pyposert info: error: {one_line(exc)}", file=sys.stderr)
            return 1
    info = pyposert.build_info()
    print(f"pyposert {info['version']}")
    print(f"  native core : compiled with {info['compiler']}, OpenMP {'on' if info['openmp'] else 'off'}, "
          f"{info['cpu_threads']} CPU threads")
    simd = info["simd_error"] or (f"{info['simd']} (set by POSERT_SIMD; this CPU has up to {info['simd_supported']})"
                                  if info["simd_forced"] else f"{info['simd']} (the best this CPU has)")
    print(f"  CPU kernels : {simd}")
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
    for line in model_lines:
        print(line)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """``pyposert models``: where models are looked for, and every model found there."""
    from pyposert.resources import ENV_VAR, demo_dir, list_models, search_path

    print("models are looked up: an explicit --model path, then " +
          " -> ".join(f"{origin} ({folder}{'' if folder.is_dir() else ': not a folder'})"
                      for origin, folder in search_path()))
    if ENV_VAR not in os.environ:
        print(f"  (set {ENV_VAR}=FOLDER to add your own; a model there with the same name wins)")
    entries = list_models()
    if not entries:
        print("no models installed")
        return 1
    width = max(len(e.name) for e in entries)
    for e in entries:
        marks = " (default)" if e.default else (" (hidden by the one above)" if e.shadowed else "")
        print(f"  {e.name:<{width}}  {e.size_bytes / 2**20:5.1f} MiB  {e.path}{marks}")
        print(f"  {'':<{width}}             {e.description}")
    print(f"demo media: {demo_dir()}")
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyposert", description="real-time human pose transfer (and fashion "
                                                                    "image completion)")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="what this machine can run, and why a backend is missing")
    info.add_argument("--model", help="also describe this model file (.plan bundle, .onnx): task, size, payloads")
    info.set_defaults(fn=cmd_info)
    models = sub.add_parser("models", help="the installed models, and where pyposert looks for them")
    models.set_defaults(fn=cmd_models)
    from pyposert.bench import add_bench_parser
    from pyposert.complete_cli import add_complete_parser
    from pyposert.demo import add_demo_parser
    from pyposert.retarget import add_retarget_parser

    add_demo_parser(sub)
    add_retarget_parser(sub)
    add_complete_parser(sub)
    add_bench_parser(sub)
    from pyposert.signing import add_sign_parsers

    add_sign_parsers(sub)
    return parser


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null, so the interpreter's final flush of
    what is still buffered cannot fail again ("Exception ignored ... BrokenPipeError")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real stdout (captured in tests)
        pass


def _import_advice(exc: ImportError) -> str:
    """One line for a dependency that cannot be imported, with the usual fix."""
    text = one_line(exc)
    if "libGL" in text or "libgthread" in text or "libglib" in text:
        return (f"OpenCV cannot start: {text}; install the system libraries it needs "
                f"(Debian/Ubuntu: apt-get install libgl1 libglib2.0-0)")
    return f"{text} (is pyposert installed with its runtime extra? pip install \"pyposert[runtime]\")"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; returns the exit status."""
    try:
        try:
            args = _build_parser().parse_args(argv)
        except SystemExit:
            # --help and usage errors exit from inside argparse; flush here, where a closed
            # pipe is still caught below (at interpreter exit it would print a warning, exit 120).
            sys.stdout.flush()
            raise
        try:
            code = int(args.fn(args))
        except (OSError, ValueError, RuntimeError, RecursionError, MemoryError) as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            # Each command reports its own expected errors; this is the net under them, so no
            # command ends in a traceback (PlanError and BackendUnavailable are among these types).
            print(f"pyposert {args.command}: error: {one_line(exc)}", file=sys.stderr)
            return 1
        except ImportError as exc:
            print(f"pyposert {args.command}: error: {_import_advice(exc)}", file=sys.stderr)
            return 1
        sys.stdout.flush()  # here, not at exit: a broken pipe must be caught below
        return code
    except BrokenPipeError:
        # The reader went away (`pyposert info | head -1`): that is how pipes end, not an error.
        _silence_stdout()
        return 0
