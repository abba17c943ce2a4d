"""TensorRT definition of ``pyposert::FusedAttention`` (``tensorrt.plugin``, ahead-of-time).

ONNX node (domain "pyposert", op FusedAttention): inputs q [B, Nq, Dk], k [B, Nk, Dk],
v [B, Nk, Dv], all float32 or all float16; attribute ``scale`` (float); output [B, Nq, Dv] of
the inputs' type. The kernel is fused_attention_aot.cu, embedded in the engine as PTX.

AOT limits and how they are met:
- Integer kernel arguments only: ``scale`` is passed as the int32 bit pattern of its float32
  value and reinterpreted in the kernel (``__int_as_float``). Attributes are not serialised
  into AOT engines, so everything the kernel needs travels as these arguments.
- One launch per call, no host code: the kernel keeps its shared memory under 48 KiB
  (32-key tiles), which bounds Dk to 64; larger Dk is refused at build time.
- csrc picks the value-column split (32 or 64) from the SM count; here both are tactics and
  TensorRT's autotuner picks per engine.

Import this module only through ``export.plugins.register_plugins`` (it imports tensorrt).
"""

# No `from __future__ import annotations`: tensorrt.plugin checks these functions' type hints
# against each other, and postponed (string) annotations would not compare equal.
import struct
from typing import List, Tuple, Union

import tensorrt as trt
import tensorrt.plugin as trtp

PLUGIN_ID = "pyposert::FusedAttention"
MAX_DK = 64
TACTIC_BD32 = 1  # 32 value columns per block: more blocks, for small batch x Nq
TACTIC_BD64 = 2  # 64 value columns per block: half the Q K^T recomputation
_BQ, _BK, _THREADS = 64, 32, 256  # must match fused_attention_aot.cu

_ptx: str | None = None


def set_ptx(ptx: str) -> None:
    """The PTX of fused_attention_aot.cu (export.plugins.compile_ptx) used by the next builds."""
    global _ptx
    _ptx = ptx


def float_bits(value: float) -> int:
    """The IEEE-754 float32 bit pattern of ``value`` as a signed int32."""
    return struct.unpack("<i", struct.pack("<f", float(value)))[0]


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
    if _ptx is None:
        raise RuntimeError("pyposert::FusedAttention has no PTX: call export.plugins.register_plugins(ptx) first")
    batch, queries, dk = q.shape_expr
    keys = k.shape_expr[1]
    dv = v.shape_expr[2]
    try:
        dk_value = dk.constant_value() if dk.is_constant else None
    except RuntimeError:  # a "fake" expression outside a shape context has no value to check
        dk_value = None
    if dk_value is not None and dk_value > MAX_DK:
        raise ValueError(f"pyposert::FusedAttention supports Dk <= {MAX_DK} (shared memory of one launch), "
                         f"got Dk = {dk_value}")
    bd = 64 if tactic == TACTIC_BD64 else 32
    dtype = "f16" if q.dtype == trt.float16 else "f32"
    kernel = f"pyposert_fused_attention_{dtype}_bd{bd}"

    launch = trtp.KernelLaunchParams()
    launch.grid_x = trtp.cdiv(queries, _BQ)
    launch.grid_y = trtp.cdiv(dv, bd)
    launch.grid_z = batch
    launch.block_x = _THREADS
    # float32 shared memory: qs [BQ][Dk+1] + ks [BK][Dk+1] + vs [BK][BD] + ps [BQ][BK+1]
    launch.shared_mem = (dk + 1) * (4 * (_BQ + _BK)) + 4 * (_BK * bd + _BQ * (_BK + 1))

    # Kernel signature: (q, k, v, Nq, Nk, Dk, Dv, scale_bits, out).
    extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(e) for e in (queries, keys, dk, dv, float_bits(scale))])
    return kernel.encode(), _ptx.encode(), launch, extra
