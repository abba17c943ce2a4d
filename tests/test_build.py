"""The build and the package surface: what was compiled, feature queries, and the CUDA entry
points on a machine without a GPU (they must raise a clear error, never crash)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import pyposert
from pyposert import ops


class FakeCudaArray:
    """Claims device memory through __cuda_array_interface__ (address 0x1000, never touched
    unless a GPU is present, in which case these tests are skipped)."""

    def __init__(self, shape, typestr, strides=None):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "data": (0x1000, False),
                                         "version": 3, "strides": strides, "stream": None}


def test_build_info_reports_the_configuration():
    info = pyposert.build_info()
    for key in ("version", "cuda_compiled", "cuda_architectures", "openmp", "cpu_threads", "cuda", "cuda_available"):
        assert key in info
    assert info["version"] == pyposert.__version__
    assert isinstance(pyposert.cuda_available(), bool)
    if not pyposert.cuda_available():
        assert info["cuda"]["reason"].startswith("no CUDA device")


def test_cuda_is_compiled_where_nvcc_exists():
    """CI and this machine have nvcc: the CUDA sources must have been compiled, not skipped."""
    if os.environ.get("POSERT_WITH_CUDA", "AUTO").upper() == "OFF":
        pytest.skip("POSERT_WITH_CUDA=OFF")
    if not (shutil.which("nvcc") or os.environ.get("CUDACXX")):
        pytest.skip("no nvcc on this machine")
    info = pyposert.build_info()
    assert info["cuda_compiled"], info
    assert "90" in info["cuda_architectures"]


def test_import_does_not_pull_in_torch():
    code = "import sys, pyposert, pyposert.ops; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        pyposert.set_num_threads(-1)


needs_no_gpu = pytest.mark.skipif(pyposert.cuda_available(), reason="checks the no-GPU error path")


@needs_no_gpu
def test_cuda_heatmaps_without_a_device_raise_runtime_error():
    kp = FakeCudaArray((1, 18, 2), "<f4")
    out = FakeCudaArray((1, 18, 8, 8), "<f4")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        ops.heatmaps(kp, 8, 8, out=out)


@needs_no_gpu
def test_cuda_attention_and_imageproc_without_a_device_raise_runtime_error():
    q = FakeCudaArray((1, 10, 8), "<f2")
    v = FakeCudaArray((1, 10, 16), "<f2")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        ops.attention(q, q, v, out=FakeCudaArray((1, 10, 16), "<f2"))
    image = FakeCudaArray((20, 10, 3), "|u1")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        ops.to_model_input(image, 16, 8, out=FakeCudaArray((3, 16, 8), "<f4"))
    box = ops.letterbox(20, 10, 16, 8)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        ops.from_model_output(FakeCudaArray((3, 16, 8), "<f4"), box, out=FakeCudaArray((20, 10, 3), "|u1"))


def test_cuda_arrays_are_validated_before_any_launch():
    with pytest.raises(ValueError, match=r"keypoints must be \[B, K, 2\] float32.*got \[1, 18, 2\] float16 on cuda:0"):
        ops.heatmaps(FakeCudaArray((1, 18, 2), "<f2"), 8, 8)
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.heatmaps(FakeCudaArray((1, 18, 2), "<f4", strides=(144, 4, 72)), 8, 8)
    with pytest.raises(ValueError, match="one device"):
        ops.attention(FakeCudaArray((1, 10, 8), "<f4"), np.zeros((1, 10, 8), np.float32),
                      np.zeros((1, 10, 8), np.float32))
    with pytest.raises(ValueError, match=r"Dk <= 128"):
        ops.attention(FakeCudaArray((1, 10, 200), "<f4"), FakeCudaArray((1, 10, 200), "<f4"),
                      FakeCudaArray((1, 10, 8), "<f4"))
    with pytest.raises(ValueError, match="pass out="):
        ops.heatmaps(FakeCudaArray((1, 18, 2), "<f4"), 8, 8)  # unknown producer: cannot allocate


def test_private_module_never_aborts_on_inconsistent_arguments():
    from pyposert import _C
    with pytest.raises(ValueError):
        _C.heatmaps_cpu(np.zeros((1, 18, 2), np.float32), np.zeros((2, 18, 4, 4), np.float32), 0, 0, 1.0, 1.0,
                        1.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        _C.attention_cpu(np.zeros((1, 4, 8), np.float32), np.zeros((1, 5, 8), np.float32),
                         np.zeros((1, 4, 3), np.float32), np.zeros((1, 4, 3), np.float32), 1.0)
    with pytest.raises(TypeError):
        _C.dlpack_describe(_C.build_info)  # not a capsule
