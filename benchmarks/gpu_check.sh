#!/usr/bin/env bash
# make gpu-check: validate pyposert on a machine with an NVIDIA GPU, in one command.
#
# Uses the system python3 as it is (it must have torch with CUDA, pytest, pytest-xdist,
# pytest-benchmark, pybind11 and scikit-build-core): no virtual environment, nothing
# downloaded. It builds the package in place with the CUDA kernels, then runs
#   1. the native checks: CUDA kernels vs CPU vs float64, every SIMD path of this CPU, the
#      C++ runtime linking checks;
#   2. the whole test suite under pytest-xdist, so that a crashing test kills one worker
#      and is reported, while the rest still run;
#   3. the GPU benchmarks (kernels side by side with numpy and torch, CPU and GPU; the
#      networks on torch CUDA eager and in a CUDA graph; the matmul peak);
#   4. `pyposert bench` on a bundle with a GPU payload (exported here from the shipped
#      NRAM checkpoint with --torch-export).
# Everything lands in GPU_CHECK_OUT (default gpu-check/): one log per step, JUnit XML,
# benchmark JSON, REPORT-gpu.md, the environment and link reports, and summary.json.
# Exit status 0 only when every step passed with no failed and no crashed test.
# Sized for under 8 minutes on an H200 host (16 cores); GPU_CHECK_JOBS sets the workers.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
OUT=${GPU_CHECK_OUT:-gpu-check}
JOBS=${GPU_CHECK_JOBS:-8}
mkdir -p "$OUT"
: >"$OUT/steps.txt"
export PYTHONUNBUFFERED=1
started=$(date +%s)

# step NAME SECONDS CMD...: run CMD with a time limit, log to $OUT/NAME.log, record the result.
step() {
  local name=$1 limit=$2 t0 rc
  shift 2
  printf '== %-10s ' "$name"
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  printf '%s rc=%d %ds\n' "$name" "$rc" "$(($(date +%s) - t0))" | tee -a "$OUT/steps.txt"
  tail -n 2 "$OUT/$name.log" | sed 's/^/   /'
  return "$rc"
}

environment() {
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi: none"
  "$PYTHON" -VV
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
  "$PYTHON" -m pip list 2>/dev/null | grep -iE '^(numpy|pybind11|scikit-build-core|onnxruntime|onnx|opencv|pytest|cmake|ninja) ' || true
  ${CXX:-c++} --version | head -n 1
  nvcc --version 2>/dev/null | tail -n 1 || echo "nvcc: none"
  grep -m1 'model name' /proc/cpuinfo
  echo "cpu flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx512(f|bw|vl|dq))$' | tr '\n' ' ')"
  # Build flags the environment injects (CMake reads LDFLAGS/CXXFLAGS into its defaults).
  for v in CC CXX CFLAGS CXXFLAGS LDFLAGS CMAKE_ARGS CUDACXX; do echo "$v=${!v-<unset>}"; done
}

# How the module links the C++ runtime (tests/test_native_runtime.py pins the intended way).
link_report() {
  local module built
  module=$("$PYTHON" -c "from pyposert import _C; print(_C.__file__)")
  built=$(ls build/*/_C*.so 2>/dev/null | head -n 1)
  echo "installed module: $module"
  readelf -d "$module" | grep -E 'NEEDED|RUNPATH|RPATH'
  echo "exported symbols:"
  readelf -W --dyn-syms "$module" | awk '$7 != "UND" && $5 != "LOCAL" && NR > 3 {print "  " $5, $8}'
  if [ -n "$built" ]; then
    echo "C++ runtime locale symbols defined inside $built (0 = none, as intended):"
    nm -C "$built" 2>/dev/null | grep -cE ' [TtWwVvuR] std::(locale|.*::id$)' || true
  fi
  echo "CMake linker flags:"
  grep -hE '^CMAKE_(MODULE|SHARED)_LINKER_FLAGS:|^CMAKE_CXX_FLAGS:|^CMAKE_CXX_COMPILER:' build/*/CMakeCache.txt 2>/dev/null
}

environment >"$OUT/environment.txt" 2>&1
head -n 3 "$OUT/environment.txt"

ok=1
export POSERT_WITH_CUDA=ON  # a GPU check without the CUDA kernels is no check: fail the build instead
step build 420 "$PYTHON" -m pip install --no-build-isolation --no-deps -v -e . || ok=0
if [ "$ok" = 1 ]; then
  link_report >"$OUT/link.txt" 2>&1
  "$PYTHON" -c "import json, pyposert; print(json.dumps(pyposert.build_info(), indent=1))" >"$OUT/build_info.json" 2>&1
  step native 300 "$PYTHON" -m pytest tests/test_cuda.py tests/test_simd.py tests/test_native_runtime.py \
    -v -p no:cacheprovider --junitxml="$OUT/native.xml" || ok=0
  step suite 420 "$PYTHON" -m pytest tests -q -p no:cacheprovider -p xdist -n "$JOBS" --max-worker-restart=1000 \
    --junitxml="$OUT/suite.xml" || ok=0
  step bench 420 "$PYTHON" -m pytest benchmarks/bench_attention.py benchmarks/bench_heatmaps.py \
    benchmarks/bench_backends.py -q -p no:cacheprovider -m "not slow" -k "not test_backend_cpu" \
    --benchmark-json="$OUT/bench.json" || ok=0
  [ -f "$OUT/bench.json" ] && "$PYTHON" benchmarks/report.py "$OUT/bench.json" -o "$OUT/REPORT-gpu.md" \
    >>"$OUT/bench.log" 2>&1
  if step export 300 "$PYTHON" -m export models/checkpoints/nram_rt_cpu_ft --torch-export \
    -o "$OUT/nram_gpu.plan"; then
    step pyposert-bench 300 "$PYTHON" -m pyposert bench --model "$OUT/nram_gpu.plan" --backend torch \
      --frames 300 --json "$OUT/pyposert_bench.json" || ok=0
  else
    ok=0
  fi
fi

# summary.json: per JUnit file, and the suite's crashed workers (a crash shows up as an error
# "worker 'gwN' crashed while running ...").
"$PYTHON" - "$OUT" "$ok" "$started" <<'EOF'
import json, sys, time, xml.etree.ElementTree as ET
from pathlib import Path
out, ok, started = Path(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
summary = {"steps": (out / "steps.txt").read_text().splitlines(), "seconds": int(time.time()) - started}
for name in ("native", "suite"):
    path = out / f"{name}.xml"
    if not path.exists():
        summary[name] = "missing"
        ok = False
        continue
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in ET.parse(path).getroot().iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    log = (out / f"{name}.log").read_text(errors="replace") if (out / f"{name}.log").exists() else ""
    counts["crashed"] = log.count("crashed while running")
    summary[name] = counts
    ok = ok and counts["failures"] == 0 and counts["errors"] == 0 and counts["crashed"] == 0
summary["ok"] = ok
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
print(json.dumps({k: summary[k] for k in ("native", "suite", "seconds", "ok")}))
sys.exit(0 if ok else 1)
EOF
