"""Build the benchmark report (markdown + PNG plots) from pytest-benchmark JSON files.

    python benchmarks/report.py RESULTS.json [more.json ...] -o benchmarks/REPORT.md [--note TEXT]

Writes REPORT.md and, next to it, ``plots/fps.png`` (FPS per model, backend and resolution,
grouped bars) and ``plots/latency_hist.png`` (the pyposert Engine's per-frame latency per
model, from the round data). Every number in the report is computed from the JSON; the only
text not from it is ``--note`` (say there what the JSON cannot: e.g. "the machine was busy").
Several files (say a CPU run and a GPU run) are kept apart as runs named after the files.

Sections, each present only when the JSON has such benchmarks:

- machine: CPU model, cores, CUDA device, pyposert build info, Python, date, commit, and the
  1-minute load average recorded by the benchmarks (``extra_info["load_average_1m"]``);
- kernels (``bench_heatmaps.py``, ``bench_attention.py``, anything unclassified): median,
  p99 and pyposert's speed-up = other median / pyposert median per group;
- peak (``extra_info["kind"] == "peak"``): GFLOP/s = extra_info["flops"] / mean;
- backends (``kind == "backend"``), one table per group (model and size): FPS = 1 / mean,
  p50 = median, p99, achieved GFLOP/s = extra_info["gflops"] / mean, % of the best peak
  of the same run, device kind and precision, and mean / Engine mean (> 1: the pyposert
  Engine is that many times faster; the Engine's time includes pre/post-processing);
- end-to-end retargeting (``bench_retarget.py``, ``kind == "retarget"`` or a group starting
  with "retarget"): FPS (extra_info["frames_per_round"] or ["frames"] / mean when one call
  renders several frames, else 1 / mean), p50, p99 and the per-stage shares found in extra_info (any entry whose key
  contains "share": a {stage: fraction} dict or a number), other extra_info as given.

Percentiles: p99 is numpy's 99th percentile (linear interpolation) of ``stats["data"]``,
the per-round times that ``--benchmark-json`` always stores (``--benchmark-save-data`` is
only for ``--benchmark-save``); a round of several iterations contributes its average.
With few rounds p99 is close to the maximum: the tables give the round count.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Result", "Run", "load_run", "load_runs", "build_report", "main"]

ENGINE = "pyposert"  # the backend / implementation name of pyposert itself
# Bar order in the FPS plot; backends not listed follow alphabetically.
BACKEND_ORDER = ("torch_eager", "torch_compile", "onnxruntime", ENGINE, "torch_cuda_fp16", "torch_cuda_graph")


# ------------------------------------------------------------------ data
@dataclass(frozen=True)
class Result:
    """One benchmark of one run: times in seconds per call (per iteration)."""

    run: str
    group: str
    name: str
    fullname: str
    impl: str
    mean: float
    median: float
    fastest: float
    rounds: int
    iterations: int
    data: tuple[float, ...]
    extra: dict[str, Any]

    @property
    def kind(self) -> str:
        """"peak", "backend", "retarget" or "kernel"."""
        declared = self.extra.get("kind")
        if declared in ("peak", "backend", "retarget"):
            return str(declared)
        if "bench_retarget" in self.fullname or self.group.startswith("retarget"):
            return "retarget"
        return "kernel"

    @property
    def fps(self) -> float:
        """Calls per second, 1 / mean (frames per second for one frame per call)."""
        return 1.0 / self.mean

    @property
    def p99(self) -> float | None:
        """99th percentile of the round times (s), None without round data."""
        return float(np.percentile(self.data, 99)) if self.data else None

    @property
    def device_kind(self) -> str:
        """"cpu" or "cuda" (from extra_info["device"], default "cpu")."""
        return "cuda" if str(self.extra.get("device", "cpu")).startswith("cuda") else "cpu"


@dataclass
class Run:
    """One JSON file: its label, machine and commit info, date and results."""

    label: str
    path: Path
    machine: dict[str, Any]
    commit: dict[str, Any]
    datetime: str
    results: list[Result] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Result]:
        return [r for r in self.results if r.kind == kind]

    def peaks(self) -> dict[tuple[str, str], float]:
        """Best measured GFLOP/s per (device kind, precision) among the peak benchmarks."""
        best: dict[tuple[str, str], float] = {}
        for r in self.of_kind("peak"):
            key = (r.device_kind, str(r.extra.get("precision", "fp32")))
            best[key] = max(best.get(key, 0.0), float(r.extra["flops"]) / r.mean / 1e9)
        return best


def _impl(bench: dict[str, Any]) -> str:
    params = bench.get("params") or {}
    for key in ("backend", "impl"):
        if isinstance(params.get(key), str):
            return str(params[key])
    extra = bench.get("extra_info") or {}
    if isinstance(extra.get("backend"), str):
        return str(extra["backend"])
    match = re.search(r"\[([A-Za-z_]+)", bench["name"])
    return match.group(1) if match else bench["name"]


def load_run(path: Path, label: str) -> Run:
    """Read one pytest-benchmark JSON file."""
    doc = json.loads(Path(path).read_text())
    run = Run(label, Path(path), doc.get("machine_info", {}), doc.get("commit_info", {}), doc.get("datetime", ""))
    for bench in doc.get("benchmarks", []):
        stats = bench["stats"]
        run.results.append(Result(
            run=label, group=bench.get("group") or bench["name"], name=bench["name"],
            fullname=bench.get("fullname", bench["name"]), impl=_impl(bench), mean=float(stats["mean"]),
            median=float(stats["median"]), fastest=float(stats.get("min", stats["median"])),
            rounds=int(stats.get("rounds", 0)),
            iterations=int(stats.get("iterations", 1)), data=tuple(float(x) for x in stats.get("data") or ()),
            extra=dict(bench.get("extra_info") or {})))
    return run


def load_runs(paths: Sequence[Path]) -> list[Run]:
    """Every file as a run labelled by its file name (made unique)."""
    runs: list[Run] = []
    seen: set[str] = set()
    for path in paths:
        label = Path(path).stem
        n = 2
        while label in seen:
            label = f"{Path(path).stem}-{n}"
            n += 1
        seen.add(label)
        runs.append(load_run(Path(path), label))
    return runs


# ------------------------------------------------------------------ formatting
def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], align: str | None = None) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align or "---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _cpu_model(machine: dict[str, Any]) -> str:
    return str(machine.get("cpu_model") or machine.get("cpu", {}).get("brand_raw") or "unknown")


def _title(run: Run, runs: Sequence[Run]) -> str:
    return f" (run {run.label})" if len(runs) > 1 else ""


# ------------------------------------------------------------------ sections
def machine_section(runs: Sequence[Run]) -> list[str]:
    rows = []
    for run in runs:
        m = run.machine
        build = m.get("pyposert", {})
        build_text = (f"{build.get('version', '?')}, CUDA compiled {build.get('cuda_compiled', '?')}, "
                      f"OpenMP {build.get('openmp', '?')}, CPU threads {build.get('cpu_threads', '?')}"
                      if build else "-")
        loads = [float(r.extra["load_average_1m"]) for r in run.results if "load_average_1m" in r.extra]
        load = f"{min(loads):.2f} - {max(loads):.2f}" if loads else "-"
        commit = run.commit.get("id", "")
        commit_text = (commit[:10] + (" (dirty)" if run.commit.get("dirty") else "")) if commit else "-"
        rows.append([run.label, _cpu_model(m), str(m.get("cpu", {}).get("count", "?")),
                     str(m.get("cuda_device", "?")), build_text, str(m.get("python_version", "?")),
                     run.datetime[:19] or "-", commit_text, load])
    headers = ["run", "CPU", "logical cores", "CUDA device", "pyposert build", "Python", "date (UTC)", "commit",
               "1-min load average during the benchmarks (min - max)"]
    return ["## Machine", ""] + _table(headers, rows)


def kernel_section(runs: Sequence[Run]) -> list[str]:
    out: list[str] = []
    for run in runs:
        results = run.of_kind("kernel")
        if not results:
            continue
        groups: dict[str, list[Result]] = {}
        for r in results:
            groups.setdefault(r.group, []).append(r)
        rows = []
        for group in sorted(groups):
            ours = next((r for r in groups[group] if r.impl == ENGINE), None)
            for r in sorted(groups[group], key=lambda x: x.median):
                rows.append([group, r.impl, _ms(r.median), _ms(r.p99), str(r.rounds),
                             _ratio(r.median / ours.median if ours else None)])
        out += [f"### Kernels{_title(run, runs)}", "",
                "Speed-up = that implementation's median / pyposert's median (> 1: pyposert is faster).", ""]
        out += _table(["group", "implementation", "median ms", "p99 ms", "rounds", "pyposert speed-up"], rows)
    return (["## Kernels", ""] + out) if out else []


def peak_section(runs: Sequence[Run]) -> list[str]:
    out: list[str] = []
    for run in runs:
        results = run.of_kind("peak")
        if not results:
            continue
        rows = [[r.impl, r.device_kind, str(r.extra.get("precision", "?")), str(r.extra.get("n", "?")),
                 _ms(r.mean), _ms(r.median), _num(float(r.extra["flops"]) / r.mean / 1e9)]
                for r in sorted(results, key=lambda x: (x.device_kind, x.mean))]
        out += [f"### Measured peak{_title(run, runs)}", "",
                "A square matrix product of 2 n^3 FLOPs; GFLOP/s = FLOPs / mean time. The best per device "
                "and precision is the peak the backends are compared with.", ""]
        out += _table(["implementation", "device", "precision", "n", "mean ms", "median ms", "GFLOP/s"], rows)
    return out


def backend_rows(run: Run, group: list[Result]) -> list[list[str]]:
    """Rows of one backends group (see the module docstring for the columns)."""
    peaks = run.peaks()
    engine = next((r for r in group if r.impl == ENGINE), None)
    rows = []
    for r in sorted(group, key=lambda x: _backend_order(x.impl)):
        gflops = r.extra.get("gflops")
        achieved = float(gflops) / r.mean if gflops is not None else None
        peak = peaks.get((r.device_kind, str(r.extra.get("precision", "fp32"))))
        share = 100.0 * achieved / peak if achieved is not None and peak else None
        rows.append([r.impl, str(r.extra.get("device", "?")), str(r.extra.get("precision", "?")),
                     str(r.extra.get("threads") or "-"), _num(r.fps), _ms(r.mean), _ms(r.fastest), _ms(r.median),
                     _ms(r.p99), str(r.rounds), _num(achieved),
                     _num(share) + ("%" if share is not None else ""),
                     _ratio(r.mean / engine.mean if engine else None)])
    return rows


def backend_section(runs: Sequence[Run]) -> list[str]:
    out: list[str] = []
    for run in runs:
        results = run.of_kind("backend")
        if not results:
            continue
        groups: dict[str, list[Result]] = {}
        for r in results:
            groups.setdefault(r.group, []).append(r)
        for name in sorted(groups, key=lambda g: _group_order(groups[g][0])):
            group = groups[name]
            first = group[0].extra
            out += [f"### {first.get('model', name)} {first.get('size', '')} "
                    f"({first.get('height', '?')} x {first.get('width', '?')}), "
                    f"{_num(first.get('gflops'), 2)} GFLOPs/frame{_title(run, runs)}", ""]
            out += _table(["backend", "device", "precision", "threads", "FPS", "mean ms", "min ms", "p50 ms",
                           "p99 ms", "rounds", "GFLOP/s", "% of peak", "mean / Engine mean"],
                          backend_rows(run, group))
            out += _notes(group, "timed", "timed") + _notes(group, "compile", "compiled")
            out += _notes(group, "weights", "weights") + [""]
    return out


BACKENDS_INTRO = [
    "## Backends (batch 1)", "",
    "FPS = 1 / mean; min = the fastest round; p50 = median; achieved GFLOP/s = GFLOPs per frame / mean; "
    "% of peak = that / the best measured matrix-product GFLOP/s of the same run, device and precision; "
    "mean / Engine mean > 1 means the pyposert Engine is that many times faster. The Engine's time includes "
    "its pre/post-processing, the others time the network alone.", ""]


def _notes(group: list[Result], key: str, label: str) -> list[str]:
    """Bullets "- label (impl, impl): text", one per distinct extra_info[key] text in the group."""
    texts: dict[str, list[str]] = {}
    for r in sorted(group, key=lambda x: _backend_order(x.impl)):
        if r.extra.get(key):
            texts.setdefault(str(r.extra[key]), []).append(r.impl)
    return [f"- {label} ({', '.join(impls)}): {text}" for text, impls in texts.items()]


def _backend_order(impl: str) -> tuple[int, str]:
    return (BACKEND_ORDER.index(impl) if impl in BACKEND_ORDER else len(BACKEND_ORDER), impl)


def _group_order(r: Result) -> tuple[int, str, str]:
    return (0 if r.extra.get("size") == "rt" else 1, str(r.extra.get("model", "")), r.group)


def _shares(extra: dict[str, Any]) -> dict[str, float]:
    """Per-stage shares from extra_info: dict entries whose key contains "share", and numbers
    under such keys (named by the key)."""
    shares: dict[str, float] = {}
    for key, value in extra.items():
        if "share" not in key:
            continue
        if isinstance(value, dict):
            shares.update({str(k): float(v) for k, v in value.items() if isinstance(v, (int, float))})
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            shares[key] = float(value)
    return shares


def _format_shares(shares: dict[str, float]) -> str:
    if not shares:
        return "-"
    fractions = all(0.0 <= v <= 1.0 for v in shares.values())
    return ", ".join(f"{k} {v * 100:.1f}%" if fractions else f"{k} {v:g}" for k, v in shares.items())


def _format_extra(extra: dict[str, Any]) -> str:
    skip = {"kind", "load_average_1m"}
    parts = []
    for key, value in extra.items():
        if key in skip or "share" in key:
            continue
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        elif isinstance(value, dict):
            inner = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
            parts.append(f"{key}: {{{inner}}}")
        else:
            parts.append(f"{key}={value}")
    return "; ".join(parts).replace("|", "/") or "-"


FRAMES_KEYS = ("frames_per_round", "frames")  # extra_info keys saying how many frames one call renders


def retarget_fps(r: Result) -> float:
    """Frames per second: extra_info["frames_per_round"] (or ["frames"]) / mean when given, else 1 / mean."""
    for key in FRAMES_KEYS:
        frames = r.extra.get(key)
        if isinstance(frames, (int, float)) and not isinstance(frames, bool) and frames > 0:
            return float(frames) / r.mean
    return r.fps


def retarget_section(runs: Sequence[Run]) -> list[str]:
    out: list[str] = []
    for run in runs:
        results = run.of_kind("retarget")
        if not results:
            continue
        rows = [[r.group, r.name, _num(retarget_fps(r)), _ms(r.mean), _ms(r.median), _ms(r.p99), str(r.rounds),
                 _format_shares(_shares(r.extra)), _format_extra(r.extra)]
                for r in sorted(results, key=lambda x: (x.group, x.name))]
        out += [f"### Retargeting{_title(run, runs)}", ""]
        out += _table(["group", "benchmark", "FPS", "mean ms / call", "p50 ms", "p99 ms", "rounds", "stage shares",
                       "other extra_info"], rows)
    if not out:
        return []
    return ["## End-to-end retargeting", "",
            "FPS = frames per call / mean (1 / mean when a call is one frame); stage shares as the benchmark "
            "recorded them.", ""] + out


# ------------------------------------------------------------------ plots
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_fps(runs: Sequence[Run], path: Path) -> bool:
    """Grouped bars: one group per model/size (and run), one bar per backend. False if nothing to draw."""
    results = [r for run in runs for r in run.of_kind("backend")]
    if not results:
        return False
    plt = _pyplot()
    several = len({r.run for r in results}) > 1

    def category(r: Result) -> str:
        text = f"{r.extra.get('model', r.group)} {r.extra.get('size', '')}".strip()
        return f"{text}\n{r.run}" if several else text

    categories = sorted({category(r) for r in results},
                        key=lambda c: next(_group_order(r) + (r.run,) for r in results if category(r) == c))
    backends = sorted({r.impl for r in results}, key=_backend_order)
    fps = {(category(r), r.impl): r.fps for r in results}
    width = 0.8 / max(len(backends), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(categories) + 2), 4.5))
    x = np.arange(len(categories))
    for i, backend in enumerate(backends):
        values = [fps.get((c, backend), 0.0) for c in categories]
        bars = ax.bar(x + (i - (len(backends) - 1) / 2) * width, values, width, label=backend)
        ax.bar_label(bars, labels=[_fps_label(v) for v in values], fontsize=7, padding=1)
    values = [v for v in fps.values() if v > 0]
    if values and max(values) / min(values) > 50:
        ax.set_yscale("log")
    ax.set_xticks(x, categories)
    ax.set_ylabel("frames per second (1 / mean), batch 1")
    ax.set_title("Generator FPS per backend")
    ax.legend(fontsize=8, ncol=min(len(backends), 6), loc="upper center", bbox_to_anchor=(0.5, -0.12 * (1 + several)))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _fps_label(value: float) -> str:
    return "" if value <= 0 else f"{value:.1f}" if value < 10 else f"{value:.0f}"


def plot_latency(runs: Sequence[Run], path: Path) -> bool:
    """Histogram of the Engine's per-frame latency, one panel per model/size (and run), from
    the round data. False if no Engine benchmark has round data."""
    results = sorted((r for run in runs for r in run.of_kind("backend") if r.impl == ENGINE and r.data),
                     key=lambda r: _group_order(r) + (r.run,))
    if not results:
        return False
    plt = _pyplot()
    several = len({r.run for r in results}) > 1
    fig, axes = plt.subplots(1, len(results), figsize=(max(6.0, 4.2 * len(results)), 3.8), squeeze=False)
    for ax, r in zip(axes[0], results):
        ms = np.asarray(r.data) * 1e3
        ax.hist(ms, bins=min(40, max(5, len(ms) // 3)), color="tab:blue", alpha=0.8)
        ax.axvline(r.median * 1e3, color="black", linestyle="--", label=f"p50 {r.median * 1e3:.1f} ms")
        ax.axvline(float(np.percentile(ms, 99)), color="tab:red", linestyle=":",
                   label=f"p99 {np.percentile(ms, 99):.1f} ms")
        title = f"{r.extra.get('model', r.group)} {r.extra.get('size', '')}"
        ax.set_title(f"{title} ({r.run})" if several else title)
        ax.set_xlabel(f"ms per frame ({len(ms)} rounds)")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("rounds")
    fig.suptitle("pyposert Engine: Source.run per frame, pre/post-processing included", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_section(runs: Sequence[Run], out: Path) -> list[str]:
    plots = out.parent / "plots"
    try:
        _pyplot()
    except ImportError:
        return ["## Plots", "", "Not drawn: matplotlib is not installed (`pip install matplotlib`).", ""]
    lines = ["## Plots", ""]
    if plot_fps(runs, plots / "fps.png"):
        lines += ["![FPS per model, backend and resolution](plots/fps.png)", ""]
    if plot_latency(runs, plots / "latency_hist.png"):
        lines += ["![pyposert Engine latency histogram](plots/latency_hist.png)", ""]
    return lines if len(lines) > 2 else []


# ------------------------------------------------------------------ the report
def build_report(runs: Sequence[Run], out: Path, notes: Sequence[str] = ()) -> str:
    """The markdown of the report; draws the plots under ``out.parent / "plots"``."""
    lines = ["# pyposert benchmarks", ""]
    lines += [line for note in notes for line in (f"> {note}", ">")][:-1] + ([""] if notes else [])
    sources = ", ".join(f"`{run.path.name}`" for run in runs)
    lines += [f"Generated by `benchmarks/report.py` from {sources}; every number below is computed from "
              "those pytest-benchmark JSON files.", ""]
    lines += machine_section(runs)
    lines += kernel_section(runs)
    peak = peak_section(runs)
    backends = backend_section(runs)
    if peak or backends:
        lines += BACKENDS_INTRO + peak + backends
    lines += retarget_section(runs)
    lines += plot_section(runs, out)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", type=Path, help="pytest-benchmark JSON files (--benchmark-json)")
    ap.add_argument("-o", "--output", type=Path, default=Path("benchmarks/REPORT.md"),
                    help="markdown file to write; plots go to plots/ beside it (default benchmarks/REPORT.md)")
    ap.add_argument("--note", action="append", default=[],
                    help="a line quoted under the title (conditions the JSON does not record); repeatable")
    args = ap.parse_args(argv)
    runs = load_runs(args.results)
    text = build_report(runs, args.output, args.note)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
