// pyposert::FusedAttention as a TensorRT ahead-of-time plugin kernel (compiled to PTX, embedded
// in the engine).
//
//   out[b, j, :] = sum_i softmax_i(scale * q[b, j, :] . k[b, i, :]) * v[b, i, :]
//
// Same algorithm as csrc/attention_cuda.cu's attention_fwd_kernel (64-query tiles, 256 threads
// = four lanes per query row, online softmax over key tiles, fp32 accumulation for float and
// half storage, value columns split across blocks so batch 1 still fills the GPU). What the
// AOT plugin API changes, and why this is a separate entry point:
//  * Arguments: TensorRT passes (inputs..., int32 scalars..., outputs...) -- raw pointers and
//    integers, no params struct; `scale` arrives as the bit pattern of its float32 value.
//  * One launch, no host code: csrc's launcher raises the kernel's dynamic shared memory limit
//    (cudaFuncSetAttribute) for 64-key tiles; a plugin cannot, so its tiles stay under the
//    default 48 KiB: 32 keys for Dk <= 64 (all pyposert models: PoNA paper 64 and 32, rt 16
//    and 8), 16 keys with 32 value columns for 64 < Dk <= 128 (csrc/attention.h,
//    attention_tiles, checks both at compile time). Operands are packed.
//  * csrc picks the value split (32 or 64 columns) from the SM count on the host; here both
//    are compiled and offered to TensorRT as tactics, which times them and keeps the faster.
// The kernel body is csrc's: csrc/attention_kernel.cuh's attention_block, instantiated here
// with the plugin's key tiles; these entry points only unpack TensorRT's arguments.
//
// Grid: (ceil(Nq / 64), ceil(Dv / BD), B); block 256; dynamic shared memory
// attention_tiles::smem_bytes(Dk, BD, BK) = 4 * ((64 + BK) * (Dk + 1) + BK * BD + 64 * (BK + 1)) bytes.
#include <cuda_fp16.h>

#include <cstdint>

#include "attention.h"
#include "attention_kernel.cuh"

namespace {

using posert::attention_kernel::kThreads;
namespace tiles = posert::attention_tiles;

template <typename T, int kBD, int kBK>
__device__ __forceinline__ void run(const T* q, const T* k, const T* v, int queries, int keys, int dk, int dv,
                                    int scale_bits, T* out) {
  posert::AttentionParams p;
  p.batch = gridDim.z;
  p.queries = queries;
  p.keys = keys;
  p.dk = dk;
  p.dv = dv;
  p.scale = __int_as_float(scale_bits);
  p.set_packed_strides();
  posert::attention_kernel::attention_block<T, kBD, kBK>(q, k, v, out, p);
}

}  // namespace

// Entry points: pyposert_fused_attention_<f32|f16>_<bd32|bd64|narrow>; "narrow" is the 16-key,
// 32-column tile for 64 < Dk <= 128. Scalars: Nq, Nk, Dk, Dv, scale bits.
#define POSERT_ATTENTION_ENTRY(NAME, T, BD, BK)                                                        \
  extern "C" __global__ void __launch_bounds__(kThreads)                                              \
  NAME(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, int queries, int keys, \
       int dk, int dv, int scale_bits, T* __restrict__ out) {                                         \
    run<T, BD, BK>(q, k, v, queries, keys, dk, dv, scale_bits, out);                                  \
  }

POSERT_ATTENTION_ENTRY(pyposert_fused_attention_f32_bd32, float, 32, tiles::kPluginKeys)
POSERT_ATTENTION_ENTRY(pyposert_fused_attention_f32_bd64, float, 64, tiles::kPluginKeys)
POSERT_ATTENTION_ENTRY(pyposert_fused_attention_f32_narrow, float, 32, tiles::kPluginNarrowKeys)
POSERT_ATTENTION_ENTRY(pyposert_fused_attention_f16_bd32, __half, 32, tiles::kPluginKeys)
POSERT_ATTENTION_ENTRY(pyposert_fused_attention_f16_bd64, __half, 64, tiles::kPluginKeys)
POSERT_ATTENTION_ENTRY(pyposert_fused_attention_f16_narrow, __half, 32, tiles::kPluginNarrowKeys)
