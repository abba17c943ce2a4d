"""Every SIMD path of the CPU kernels that this CPU can run, against the portable path.

The CPU kernels (heatmaps, attention, warp) have baseline x86-64, AVX2 and AVX-512 versions picked
at run time. POSERT_SIMD=baseline|avx2|avx512 forces one; the level is fixed per process, so
each level runs in its own subprocess on the same inputs and the results are compared here
with the baseline path's and with the float64 references. Levels this CPU lacks are skipped
with that reason (CI's CPU has no AVX-512; a machine that has it runs all three).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import pyposert
from reference import attention_ref, heatmaps_ref

LEVELS = ("baseline", "avx2", "avx512")
SUPPORTED = pyposert.build_info()["simd_supported"]
AVAILABLE = LEVELS[: LEVELS.index(SUPPORTED) + 1]

HEATMAP_CASES = [  # (batch, joints, height, width, mode, sigma, misaligned out)
    (2, 18, 256, 176, "gaussian", 6.0, False),
    (1, 18, 37, 53, "gaussian", 1.5, True),  # rows that are not whole vectors; unaligned out
    (3, 5, 64, 17, "gaussian", 20.0, False),
    (2, 18, 40, 33, "disk", 4.0, True),
]
ATTENTION_CASES = [  # (batch, queries, keys, dk, dv)
    (1, 33, 70, 8, 40),
    (2, 128, 300, 32, 256),
    (1, 5, 1, 16, 7),
    (3, 64, 129, 64, 33),
]

# Runs under one POSERT_SIMD level: reads the inputs, writes every kernel's outputs.
SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import pyposert
    from pyposert import ops

    src, dst = sys.argv[1], sys.argv[2]
    inputs = np.load(src)
    results = {"simd": np.array(pyposert.build_info()["simd"])}
    for name in inputs.files:
        if name.startswith("kp_"):
            _, i, mode, sigma, h, w, mis = name.split("|")
            kp = inputs[name]
            h, w, sigma = int(h), int(w), float(sigma)
            for dtype in ("float32", "float16"):
                shape = (kp.shape[0], kp.shape[1], h, w)
                out = None
                if mis == "1":  # C-contiguous but 4 bytes off a 64-byte boundary
                    n = int(np.prod(shape))
                    out = np.empty(n + 16, dtype)[1 : n + 1].reshape(shape)
                hm = ops.heatmaps(kp, h, w, mode=mode, sigma=sigma, radius=sigma, scale=(0.5, 0.5),
                                  offset=(1.0, -2.0), dtype=dtype, out=out)
                results[f"hm|{i}|{dtype}"] = np.asarray(hm)
        elif name == "warp_image":
            out, cov = ops.warp(inputs[name], inputs["warp_src"], inputs["warp_dst"], 80, 72)
            results["warp"], results["warp_cov"] = out, cov
        elif name.startswith("q_"):
            i = name.split("|")[1]
            q, k, v = inputs[name], inputs[f"k_|{i}"], inputs[f"v_|{i}"]
            results[f"att|{i}"] = ops.attention(q, k, v, scale=float(q.shape[2]) ** -0.5)
    np.savez(dst, **results)
    """
)


@pytest.fixture(scope="module")
def kernel_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    seed = int(os.environ.get("POSERT_TEST_SEED", np.random.SeedSequence().entropy % 2**32))
    print(f"POSERT_TEST_SEED={seed}")
    rng = np.random.default_rng(seed)
    inputs: dict[str, np.ndarray] = {}
    for i, (b, k, h, w, mode, sigma, mis) in enumerate(HEATMAP_CASES):
        kp = np.stack([rng.uniform(-10, 2 * w + 10, (b, k)), rng.uniform(-10, 2 * h + 10, (b, k))], -1)
        kp = kp.astype(np.float32)
        kp[0, 0] = (-1.0, 5.0)  # missing
        kp[-1, -1] = (np.nan, 3.0)  # missing
        kp[0, 1] = (2.0 * (w // 2) - 2.0, 2.0 * (h // 2) + 4.0)  # exactly on a pixel centre
        inputs[f"kp_|{i}|{mode}|{sigma}|{h}|{w}|{int(mis)}"] = kp
    for i, (b, nq, nk, dk, dv) in enumerate(ATTENTION_CASES):
        inputs[f"q_|{i}"] = rng.standard_normal((b, nq, dk), dtype=np.float32)
        inputs[f"k_|{i}"] = rng.standard_normal((b, nk, dk), dtype=np.float32)
        inputs[f"v_|{i}"] = rng.standard_normal((b, nk, dv), dtype=np.float32)
    from reference import warp_inputs as pair

    inputs["warp_image"], inputs["warp_src"], inputs["warp_dst"] = pair(rng, 2, 96, 64, 80, 72)
    path = tmp_path_factory.mktemp("simd") / "inputs.npz"
    np.savez(path, **inputs)
    return path, inputs


def run_level(level: str, inputs_path: Path) -> dict[str, np.ndarray]:
    out = inputs_path.with_name(f"out_{level}.npz")
    env = dict(os.environ, POSERT_SIMD=level)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(inputs_path), str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"POSERT_SIMD={level} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    with np.load(out) as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def baseline_results(kernel_inputs: tuple[Path, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return run_level("baseline", kernel_inputs[0])


@pytest.mark.parametrize("level", LEVELS)
def test_simd_level_matches_the_portable_path_and_the_reference(
    level: str, kernel_inputs: tuple[Path, dict[str, np.ndarray]], baseline_results: dict[str, np.ndarray]
) -> None:
    if level not in AVAILABLE:
        pytest.skip(f"this CPU has no {level} (it supports up to {SUPPORTED})")
    path, inputs = kernel_inputs
    results = baseline_results if level == "baseline" else run_level(level, path)
    assert str(results["simd"]) == level, "POSERT_SIMD did not select the requested path"

    for name, kp in inputs.items():
        if not name.startswith("kp_"):
            continue
        _, i, mode, sigma, h, w, _ = name.split("|")
        ref = heatmaps_ref(kp, int(h), int(w), mode=mode, sigma=float(sigma), radius=float(sigma),
                           scale=(0.5, 0.5), offset=(1.0, -2.0))
        f32, base32 = results[f"hm|{i}|float32"], baseline_results[f"hm|{i}|float32"]
        assert np.isfinite(f32).all() and f32.min() >= 0.0 and f32.max() <= 1.0
        if mode == "disk":  # float32 vs float64 may disagree on pixels exactly on the rim
            assert (f32 != ref).mean() < 1e-3, f"{level} disk heatmaps vs float64, {name}"
        else:
            np.testing.assert_allclose(f32, ref, rtol=1e-5, atol=2e-6, err_msg=f"{level} heatmaps vs float64, {name}")
        np.testing.assert_allclose(f32, base32, rtol=1e-6, atol=1e-7, err_msg=f"{level} vs baseline, {name}")
        f16, base16 = results[f"hm|{i}|float16"], baseline_results[f"hm|{i}|float16"]
        assert f16.dtype == np.float16
        # Hardware and portable conversions both round to nearest even: one ulp at most
        # (from the float32 product's own last-ulp difference).
        ulp = np.spacing(np.abs(base16)).astype(np.float32)
        assert (np.abs(f16.astype(np.float32) - base16.astype(np.float32)) <= ulp).all(), name

    # The warp: every path agrees with the portable one to float32 rounding (a pixel on a
    # weight-cutoff edge may flip, hence the quantiles).
    for key in ("warp", "warp_cov"):
        err = np.abs(results[key] - baseline_results[key])
        assert np.isfinite(results[key]).all()
        assert np.quantile(err, 0.999) < 1e-4 and err.mean() < 1e-5, f"{level} {key}: {err.max():.2e}"

    for i, (_, _, _, dk, _) in enumerate(ATTENTION_CASES):
        q, k, v = inputs[f"q_|{i}"], inputs[f"k_|{i}"], inputs[f"v_|{i}"]
        ref = attention_ref(q, k, v, scale=float(dk) ** -0.5)
        got = results[f"att|{i}"]
        err = np.abs(got - ref).max() / np.abs(ref).max()
        assert err < 1e-5, f"{level} attention case {i}: relative error {err:.2e}"
        np.testing.assert_allclose(got, baseline_results[f"att|{i}"], rtol=1e-4, atol=1e-5)


def _call_heatmaps_with(simd: str) -> subprocess.CompletedProcess[str]:
    code = ("import numpy as np; from pyposert import ops; "
            "ops.heatmaps(np.zeros((1, 1, 2), np.float32), 4, 4)")
    return subprocess.run([sys.executable, "-c", code], env=dict(os.environ, POSERT_SIMD=simd),
                          capture_output=True, text=True, timeout=120)


def test_a_misspelt_simd_level_is_a_clear_error() -> None:
    proc = _call_heatmaps_with("avx3")
    assert proc.returncode == 1
    assert "ValueError: POSERT_SIMD must be one of baseline, avx2, avx512" in proc.stderr


def test_a_simd_level_the_cpu_lacks_is_an_error_not_a_silent_fallback() -> None:
    missing = [level for level in LEVELS if level not in AVAILABLE]
    if not missing:
        pytest.skip("this CPU supports every SIMD level (nothing to refuse)")
    proc = _call_heatmaps_with(missing[-1])
    assert proc.returncode == 1
    assert f"POSERT_SIMD={missing[-1]} asks for" in proc.stderr and "this CPU does not have" in proc.stderr


def test_build_info_reports_the_simd_level() -> None:
    info = pyposert.build_info()
    assert info["simd_supported"] in LEVELS and info["simd"] in LEVELS
    assert LEVELS.index(info["simd"]) <= LEVELS.index(info["simd_supported"])
    if not os.environ.get("POSERT_SIMD"):
        assert info["simd"] == info["simd_supported"] and info["simd_error"] is None
