"""Turn a pytest-benchmark JSON into the ratio table: for every group, each implementation's
median time and its speed relative to pyposert (> 1 means pyposert is that many times faster).

    python benchmarks/ratios.py benchmarks/results.json
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict


def impl_of(name: str) -> str:
    match = re.search(r"\[([a-z_]+)", name)
    return match.group(1) if match else name


def table(path: str) -> str:
    data = json.load(open(path))
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        groups[bench["group"]][impl_of(bench["name"])] = bench["stats"]["median"]
    machine = data.get("machine_info", {})
    lines = [f"machine: {machine.get('cpu_model', machine.get('cpu', {}).get('brand_raw', '?'))}, "
             f"CUDA device: {machine.get('cuda_device', 'none')}", "",
             "| benchmark | implementation | median | pyposert speed-up |", "|---|---|---|---|"]
    for group in sorted(groups):
        impls = groups[group]
        ours = impls.get("pyposert")
        for impl, median in sorted(impls.items(), key=lambda kv: kv[1]):
            ratio = f"{median / ours:.2f}x" if ours else "-"
            lines.append(f"| {group} | {impl} | {median * 1e3:.3f} ms | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results.json"))
