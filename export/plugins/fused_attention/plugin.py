"""TensorRT definition of ``pyposert::FusedAttention`` (``tensorrt.plugin``, ahead-of-time).

ONNX node (domain "pyposert", op FusedAttention): inputs q [B, Nq, Dk], k [B, Nk, Dk],
v [B, Nk, Dv], all float32 or all float16; attribute ``scale`` (float); output [B, Nq, Dv] of
the inputs' type. The kernel is fused_attention_aot.cu, embedded in the engine as PTX.

AOT limits and how they are met:
- Integer kernel arguments only: ``scale`` is passed as the int32 bit pattern of its float32
  value and reinterpreted in the kernel (``__int_as_float``). Attributes are not serialised
  into AOT engines, so everything the kernel needs travels as these arguments.
- One launch per call, no host code: the kernel keeps its shared memory under the default
  48 KiB: 32-key tiles for Dk <= 64, 16-key tiles with 32 value columns ("narrow") for
  64 < Dk <= 128, the same limit as ``pyposert.ops.attention`` on CUDA. A Dk that is not a
  build-time constant gets the narrow kernel, which takes every Dk <= 128.
- csrc picks the value-column split (32 or 64) from the SM count; here both are tactics and
  TensorRT's autotuner picks per engine.
- The tiling constants are csrc's (csrc/attention.h, attention_tiles), read from pyposert._C.

Import this module only through ``export.plugins.register_plugins`` (it imports tensorrt).
"""

# No `from __future__ import annotations`: tensorrt.plugin checks these functions' type hints
# against each other, and postponed (string) annotations would not compare equal.
from typing import List, Tuple, Union

import tensorrt as trt
import tensorrt.plugin as trtp

from export.plugins import float_bits, plugin_ptx
from pyposert import _C

PLUGIN_ID = "pyposert::FusedAttention"
TACTIC_BD32 = 1  # 32 value columns per block: more blocks, for small batch x Nq
TACTIC_BD64 = 2  # 64 value columns per block: half the Q K^T recomputation
_TILES = _C.ATTENTION_TILES
MAX_DK: int = _TILES["max_dk"]


def _constant(expr: trtp.ShapeExpr) -> int | None:
    """The value of a shape expression known at build time, else None."""
    try:
        return expr.constant_value() if expr.is_constant else None
    except RuntimeError:  # a "fake" expression outside a shape context has no value to check
        return None


@trtp.register(PLUGIN_ID)
def fused_attention_desc(q: trtp.TensorDesc, k: trtp.TensorDesc, v: trtp.TensorDesc,
                         scale: float) -> trtp.TensorDesc:
    # out [B, Nq, Dv]: batch and queries of q, value width of v, q's type.
    return trtp.from_shape_expr((q.shape_expr[0], q.shape_expr[1], v.shape_expr[2]), dtype=q.dtype)


@trtp.autotune(PLUGIN_ID)
def fused_attention_autotune(q: trtp.TensorDesc, k: trtp.TensorDesc, v: trtp.TensorDesc,
                             outputs: Tuple[trtp.TensorDesc]) -> List[trtp.AutoTuneCombination]:
    # '|' ties the four positions together: all float32 or all float16 (the graph decides).
    return [trtp.AutoTuneCombination("FP32|FP16, FP32|FP16, FP32|FP16, FP32|FP16",
                                     tactics=[TACTIC_BD32, TACTIC_BD64])]


@trtp.aot_impl(PLUGIN_ID)
def fused_attention_aot_impl(
    q: trtp.TensorDesc, k: trtp.TensorDesc, v: trtp.TensorDesc, scale: float, outputs: Tuple[trtp.TensorDesc],
    tactic: int,
) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymExprs]:
    batch, queries, dk = q.shape_expr
    keys = k.shape_expr[1]
    dv = v.shape_expr[2]
    dk_value = _constant(dk)
    if dk_value is not None and dk_value > MAX_DK:
        raise ValueError(f"pyposert::FusedAttention supports Dk <= {MAX_DK}, got Dk = {dk_value}")
    dtype = "f16" if q.dtype == trt.float16 else "f32"
    if dk_value is not None and dk_value <= _TILES["plugin_wide_max_dk"]:
        bd, bk = (64 if tactic == TACTIC_BD64 else 32), _TILES["plugin_keys"]
        kernel = f"pyposert_fused_attention_{dtype}_bd{bd}"
    else:
        bd, bk = 32, _TILES["plugin_narrow_keys"]
        kernel = f"pyposert_fused_attention_{dtype}_narrow"
    bq = _TILES["block_queries"]

    launch = trtp.KernelLaunchParams()
    launch.grid_x = trtp.cdiv(queries, bq)
    launch.grid_y = trtp.cdiv(dv, bd)
    launch.grid_z = batch
    launch.block_x = _TILES["threads"]
    # csrc attention_tiles::smem_bytes: float32 qs [BQ][Dk+1] + ks [BK][Dk+1] + vs [BK][BD] + ps [BQ][BK+1]
    launch.shared_mem = (dk + 1) * (4 * (bq + bk)) + 4 * (bk * bd + bq * (bk + 1))

    # Kernel signature: (q, k, v, Nq, Nk, Dk, Dv, scale_bits, out).
    extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(e) for e in (queries, keys, dk, dv, float_bits(scale))])
    return kernel.encode(), plugin_ptx(PLUGIN_ID).encode(), launch, extra
