"""pyposert.torch_ops: each torch custom op registered once, forward through the native kernels;
the warp's ONNX node; the constants the kernels share with Python and the TensorRT plugins."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pyposert import _C, ops

torch = pytest.importorskip("torch")

from pyposert import torch_ops  # noqa: E402


def skeleton(rng: np.random.Generator, batch: int, h: int, w: int) -> np.ndarray:
    kp = np.stack([rng.uniform(0.1 * w, 0.9 * w, (batch, 18)), rng.uniform(0.1 * h, 0.9 * h, (batch, 18))], -1)
    kp[rng.random((batch, 18)) < 0.15] = -1
    return kp.astype(np.float32)


def test_importing_the_registry_does_not_import_torch() -> None:
    code = "import sys, pyposert.torch_ops; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registration_is_idempotent_and_shared_with_training() -> None:
    first = torch_ops.register_all()
    assert torch_ops.register_all() is first
    import training.ops  # noqa: F401 - attaches autograd to the same op, registers nothing

    q = torch.randn(1, 5, 4, requires_grad=True)
    out = torch.ops.pyposert.attention(q, q, torch.randn(1, 5, 3), 1.0)
    out.sum().backward()  # training's autograd formula on the runtime's op
    assert q.grad is not None and q.grad.shape == q.shape


def test_attention_op_runs_the_native_kernel_on_strided_views(rng: np.random.Generator) -> None:
    pyposert = torch_ops.register_attention()
    heads = torch.from_numpy(rng.standard_normal((2, 30, 24)).astype(np.float32))
    q, k, v = heads[:, :, :8], heads[:, :, 8:16], heads[:, :, 8:]
    got = pyposert.attention(q, k, v, 0.5)
    want = ops.attention(*(np.ascontiguousarray(t.numpy()) for t in (q, k, v)), scale=0.5)
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("batch", [0, 1, 3])
def test_warp_op_equals_ops_warp(rng: np.random.Generator, batch: int) -> None:
    pyposert = torch_ops.register_warp()
    image = rng.standard_normal((batch, 3, 40, 30)).astype(np.float32)
    src, tgt = skeleton(rng, batch, 40, 30), skeleton(rng, batch, 32, 24)
    warped, coverage = pyposert.warp(torch.from_numpy(image), torch.from_numpy(src), torch.from_numpy(tgt), 32, 24)
    want_warped, want_coverage = ops.warp(image, src, tgt, 32, 24)
    assert warped.shape == (batch, 3, 32, 24) and coverage.shape == (batch, 1, 32, 24)
    np.testing.assert_array_equal(warped.numpy(), want_warped)
    np.testing.assert_array_equal(coverage.numpy(), want_coverage)
    half, _ = pyposert.warp(torch.from_numpy(image).half(), torch.from_numpy(src), torch.from_numpy(tgt), 32, 24)
    assert half.dtype == torch.float16


def test_warp_op_fake_and_errors() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    pyposert = torch_ops.register_warp()
    with FakeTensorMode():
        warped, coverage = pyposert.warp(torch.empty(2, 4, 9, 7), torch.empty(2, 18, 2), torch.empty(2, 18, 2), 5, 6)
        assert warped.shape == (2, 4, 5, 6) and coverage.shape == (2, 1, 5, 6)
    with pytest.raises(ValueError, match=r"source_keypoints \[2, 18, 2\]"):
        pyposert.warp(torch.zeros(2, 3, 9, 7), torch.zeros(2, 17, 2), torch.zeros(2, 18, 2), 5, 6)


def test_warp_exports_as_one_pyposert_node() -> None:
    pytest.importorskip("onnxscript")
    from export import onnx_export as ox
    from export.torch_ops import WARP_NODE, warp

    class Warp(torch.nn.Module):
        def forward(self, image: torch.Tensor, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
            warped, coverage = warp(image, src, tgt, 32, 24)
            return warped * coverage

    args = (torch.randn(2, 3, 40, 30), torch.rand(2, 18, 2) * 20, torch.rand(2, 18, 2) * 20)
    model = torch.onnx.export(Warp(), args, dynamo=True, custom_translation_table=ox._translation_table(),
                              verbose=False).model_proto
    (node,) = [n for n in model.graph.node if n.domain == "pyposert"]
    assert node.op_type == WARP_NODE and len(node.input) == 3 and len(node.output) == 2
    assert {a.name: a.i for a in node.attribute} == {"height": 32, "width": 24}
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 32, 24]


def test_constants_come_from_the_kernels() -> None:
    assert torch_ops.HEATMAP_MODES == {"gaussian": 0, "disk": 1} == _C.HEATMAP_MODES
    from export.torch_ops import HEATMAP_MODE_CODES
    from training.ops import HEATMAP_MODES

    assert HEATMAP_MODE_CODES == torch_ops.HEATMAP_MODES and HEATMAP_MODES == ("gaussian", "disk")


def test_plugin_and_ops_share_the_attention_dk_limit() -> None:
    """ops.attention (CUDA) and the FusedAttention plugin both take Dk <= 128, and the plugin's
    tiles fit one launch's default 48 KiB of shared memory at their largest Dk."""
    t = _C.ATTENTION_TILES
    assert ops.ATTENTION_MAX_DK == t["max_dk"] == 128

    def smem(dk: int, bd: int, bk: int) -> int:
        return 4 * ((t["block_queries"] + bk) * (dk + 1) + bk * bd + t["block_queries"] * (bk + 1))

    assert smem(t["plugin_wide_max_dk"], 64, t["plugin_keys"]) <= t["plugin_smem_limit"]
    assert smem(t["max_dk"], 32, t["plugin_narrow_keys"]) <= t["plugin_smem_limit"]
    from export.plugins import PLUGINS

    kernels = PLUGINS["pyposert::FusedAttention"].kernels
    assert {"pyposert_fused_attention_f32_narrow", "pyposert_fused_attention_f16_narrow"} <= set(kernels)


@pytest.mark.tensorrt
def test_warp_plugin_registers_with_tensorrt() -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (it cannot be installed here): the "
                                           "pyposert::Warp plugin is only byte-compiled and its PTX built")
    from export.plugins import compile_all, register_plugins

    register_plugins(compile_all("compute_75"))
    import tensorrt as trt

    assert trt.get_plugin_registry().get_creator("Warp", "1", "pyposert") is not None
