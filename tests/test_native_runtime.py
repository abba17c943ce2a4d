"""The native module and the C++ runtime it shares a process with.

What once went wrong: on a host with GCC 13, pyposert._C carried its own (static) copy of
libstdc++. Such a copy exports its locale facet ids as STB_GNU_UNIQUE symbols, which the
dynamic linker merges with those of the shared libstdc++ that numpy, torch or OpenCV load,
so the module's locale and the ids it looks facets up by come from two different runtimes.
The argument checks formatted shapes with `std::ostringstream << long` on every call; that
called into the wrong facet and crashed the interpreter (on GCC 12 the same mix silently
truncates the text). These tests pin the intended linking, rebuild the module the way that
failed and check it now survives, and run every op next to the other runtimes a user loads.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pyposert
from pyposert import _C

REPO = Path(__file__).resolve().parents[1]
MODULE = Path(_C.__file__)

# Exercises every CPU op once on a good input and once on a bad one, and checks that the
# error text (which formats integers) arrived whole. argv: modules to import first, then
# optionally the path of a _C build to load instead of pyposert's.
PROBE = textwrap.dedent(
    """
    import importlib, importlib.util, sys
    for name in [m for m in sys.argv[1].split(",") if m]:
        importlib.import_module(name)
    import numpy as np
    if len(sys.argv) > 2:
        spec = importlib.util.spec_from_file_location("_C", sys.argv[2])
        C = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(C)
    else:
        from pyposert import _C as C

    img = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    x = np.zeros((3, 8, 8), np.float32)
    C.to_model_input_cpu(img, x, True, 1.0)
    y = np.zeros((8, 8, 3), np.uint8)
    C.from_model_output_cpu(x, y, 8, 8, True, True)
    hm = np.zeros((1, 2, 8, 8), np.float32)
    C.heatmaps_cpu(np.full((1, 2, 2), 3.0, np.float32), hm, 0, 0, 2.0, 1.0, 1.0, 1.0, 0.0, 0.0)
    q = np.ones((1, 4, 8), np.float32)
    out = np.zeros((1, 4, 5), np.float32)
    C.attention_cpu(q, q, np.ones((1, 4, 5), np.float32), out, 1.0)
    assert abs(hm.max() - 1.0) < 1e-6 and abs(out - 1.0).max() < 1e-6
    checks = [
        (lambda: C.to_model_input_cpu(np.zeros((8, 8, 4), np.uint8), x, True, 1.0), "got [8, 8, 4]"),
        (lambda: C.heatmaps_cpu(np.zeros((1, 2, 3), np.float32), hm, 0, 0, 2.0, 1.0, 1.0, 1.0, 0.0, 0.0),
         "got [1, 2, 3]"),
        (lambda: C.from_model_output_cpu(np.zeros((4, 8, 8), np.float32), y, 8, 8, True, True), "got [4, 8, 8]"),
        (lambda: C.attention_cpu(q[0], q, q, out, 1.0), "got [4, 8]"),
    ]
    for call, expected in checks:
        try:
            call()
        except ValueError as exc:
            assert expected in str(exc), f"error text damaged: {exc!r}"
        else:
            raise AssertionError("bad input accepted")
    print("PROBE-OK", C.build_info()["compiler"])
    """
)


def run_probe(preload: list[str], module: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-c", PROBE, ",".join(preload)] + ([str(module)] if module else [])
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=REPO)


def importable(name: str) -> bool:
    probe = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, timeout=300)
    return probe.returncode == 0


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"{name} is not installed (binutils / the build tools)")
    return found


def dynamic_needed(path: Path) -> list[str]:
    out = subprocess.run([tool("readelf"), "-d", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def defined_symbols(path: Path, table: str) -> list[tuple[str, str]]:
    """(binding, mangled name) of every defined symbol in `table` (".dynsym" or ".symtab")."""
    out = subprocess.run([tool("readelf"), "-W", "--syms", str(path)], capture_output=True, text=True,
                         check=True).stdout
    symbols, current = [], None
    for line in out.splitlines():
        m = re.match(r"Symbol table '([^']+)'", line)
        if m:
            current = m.group(1)
            continue
        fields = line.split()
        if current == table and len(fields) >= 8 and fields[0][:-1].isdigit() and fields[6] != "UND":
            symbols.append((fields[4], fields[7]))
    return symbols


def build_id(path: Path) -> str:
    out = subprocess.run([tool("readelf"), "-n", str(path)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    return m.group(1) if m else ""


def module_with_symbols() -> Path | None:
    """The loaded module, or the unstripped build-tree copy of it (an installed module is
    stripped: its function names live only in the build tree); None if neither is here."""
    if defined_symbols(MODULE, ".symtab"):
        return MODULE
    wanted = build_id(MODULE)
    for candidate in sorted(REPO.glob("build/*/_C*.so")):
        if wanted and build_id(candidate) == wanted:
            return candidate
    return None


def unstripped_module() -> Path:
    module = module_with_symbols()
    if module is None:
        pytest.skip("the installed module is stripped and its build tree is not here (function names unknown)")
    return module


FACET_ID = re.compile(r"^_ZN(St|St7__cxx11)\d+\w*2idE$")  # std::<facet>::id
LIBSTDCXX_LOCALE = re.compile(r"^_ZNSt6locale")  # std::locale members


def test_module_links_the_shared_cxx_runtime_and_carries_no_copy_of_it() -> None:
    needed = dynamic_needed(MODULE)
    assert any(lib.startswith("libstdc++.so") or lib.startswith("libc++.so") for lib in needed), needed
    full = module_with_symbols() or MODULE
    own = [name for _, name in defined_symbols(full, ".symtab") + defined_symbols(MODULE, ".dynsym")
           if FACET_ID.match(name) or LIBSTDCXX_LOCALE.match(name)]
    assert not own, f"the module defines C++ runtime locale symbols itself: {own[:5]}"


def test_module_exports_nothing_but_its_init_function() -> None:
    """csrc/exports.map: no symbol of the module can be merged with or interposed by another
    library (C++ template instantiations are exported by default, -fvisibility=hidden or not)."""
    exported = [name for binding, name in defined_symbols(MODULE, ".dynsym") if binding != "LOCAL"]
    assert exported == ["PyInit__C"], f"exported symbols: {exported[:10]}"


def test_wide_registers_appear_only_in_the_simd_variants() -> None:
    """The portable code (and any C++ library code instantiated next to the AVX variants)
    must not contain AVX instructions, or a CPU without them would fault in it."""
    module = unstripped_module()
    out = subprocess.run([tool("objdump"), "-d", "--no-show-raw-insn", "-C", "-j", ".text", str(module)],
                         capture_output=True, text=True, check=True).stdout
    offenders, function = set(), ""
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if m:
            function = m.group(1)
        elif re.search(r"%[yz]mm\d|%k[1-7]\b", line) and "avx" not in function:
            offenders.add(function)
    assert not offenders, f"AVX registers in non-SIMD functions: {sorted(offenders)[:10]}"


OTHER_RUNTIMES = ["cv2", "onnxruntime", "torch", "mediapipe"]


@pytest.mark.parametrize("order", ["others-first", "pyposert-first"])
def test_every_cpu_op_works_next_to_the_other_runtimes(order: str) -> None:
    present = [name for name in OTHER_RUNTIMES if importable(name)]
    if not present:
        pytest.skip("none of cv2, onnxruntime, torch, mediapipe is installed")
    preload = present if order == "others-first" else ["pyposert", *present]
    proc = run_probe(preload)
    assert proc.returncode == 0 and "PROBE-OK" in proc.stdout, (
        f"preloaded {preload}: exit {proc.returncode}\n{proc.stderr[-3000:]}")


@pytest.mark.slow
def test_a_build_with_a_static_cxx_runtime_is_safe_next_to_the_shared_one(tmp_path: Path) -> None:
    """Reproduces the failing configuration: LDFLAGS=-static-libstdc++ puts a private C++
    runtime into the module. Before the fix this module, loaded after OpenCV or torch, wrote
    `got [` instead of `got [8, 8, 4]` here (GCC 12) or crashed (GCC 13)."""
    preload = [name for name in ("cv2", "torch") if importable(name)]
    if not preload:
        pytest.skip("needs cv2 or torch, whose shared libstdc++ the module must coexist with")
    cmake = tool("cmake")
    import pybind11

    env = dict(os.environ, LDFLAGS="-static-libstdc++ -static-libgcc")
    configure = [cmake, "-S", str(REPO), "-B", str(tmp_path), "-DPOSERT_WITH_CUDA=OFF",
                 f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", f"-DPython_EXECUTABLE={sys.executable}"]
    if shutil.which("ninja") or shutil.which("ninja", path=str(Path(sys.executable).parent)):
        configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={tool('ninja')}"]
    proc = subprocess.run(configure, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "contains -static-libstdc++" in proc.stderr, "CMake did not warn about the static C++ runtime"
    proc = subprocess.run([cmake, "--build", str(tmp_path), "-j", "2"], env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    (module,) = tmp_path.glob("_C*.so")

    assert not any(lib.startswith("libstdc++") for lib in dynamic_needed(module)), "expected a static runtime"
    leaked = [name for binding, name in defined_symbols(module, ".dynsym")
              if binding == "UNIQUE" and FACET_ID.match(name)]
    assert not leaked, f"facet ids exported for the dynamic linker to merge: {leaked[:5]}"
    for order in (preload, []):
        proc = run_probe(order, module)
        assert proc.returncode == 0 and "PROBE-OK" in proc.stdout, (
            f"static-runtime module after {order}: exit {proc.returncode}\n{proc.stderr[-3000:]}")


@pytest.mark.slow
def test_module_works_with_the_oldest_supported_numpy(tmp_path: Path) -> None:
    """Built against this environment's numpy 2, the module must still work under numpy 1.24
    (pybind11 reaches numpy through its run-time API, not compiled-in headers)."""
    if sys.version_info >= (3, 12):
        pytest.skip("numpy 1.24 has no wheels for Python 3.12 and later")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--retries", "1", "--timeout", "20",
                              "--only-binary=:all:", "numpy==1.24.4"], capture_output=True, text=True, timeout=600)
    if install.returncode != 0:
        pytest.skip(f"numpy 1.24.4 could not be installed here: {install.stderr.strip()[-300:]}")
    module = module_with_symbols() or MODULE
    proc = subprocess.run([str(python), "-c", PROBE, "", str(module)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "PROBE-OK" in proc.stdout, proc.stderr[-3000:]
    version = subprocess.run([str(python), "-c", "import numpy; print(numpy.__version__)"], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert version == "1.24.4"
