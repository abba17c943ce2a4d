"""The `pyposert` command line: `info` (what this machine can run, backends included), `demo`
(pyposert.demo: the retargeting demo on the shipped default model), `retarget`
(pyposert.retarget) and `bench` (pyposert.bench: FPS and per-stage latency).
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

import pyposert


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="pyposert", description="real-time human pose transfer")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="what this machine can run, and why a backend is missing").set_defaults(fn=cmd_info)
    from pyposert.bench import add_bench_parser
    from pyposert.demo import add_demo_parser
    from pyposert.retarget import add_retarget_parser

    add_demo_parser(sub)
    add_retarget_parser(sub)
    add_bench_parser(sub)
    args = parser.parse_args(argv)
    return int(args.fn(args))
