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
//    (cudaFuncSetAttribute) for 64-key tiles; a plugin cannot, so the key tile is 32 here and
//    the shared memory stays under the default 48 KiB for Dk <= 64 (all pyposert models:
//    PoNA paper 64 and 32, rt 16 and 8). The plugin refuses larger Dk at build time.
//  * csrc picks the value split (32 or 64 columns) from the SM count on the host; here both
//    are compiled and offered to TensorRT as tactics, which times them and keeps the faster.
// csrc's kernel sits in an anonymous namespace behind its launcher, so it cannot be reused
// from this translation unit; attention.h's AttentionParams is the shared contract.
//
// Grid: (ceil(Nq / 64), ceil(Dv / BD), B); block 256; dynamic shared memory
// 4 * ((64 + 32) * (Dk + 1) + 32 * BD + 64 * (32 + 1)) bytes.
#include <cuda_fp16.h>

#include <cstdint>

#include "attention.h"

namespace {

constexpr int kBQ = 64;        // queries per block
constexpr int kBK = 32;        // keys per shared-memory tile
constexpr int kThreads = 256;  // 4 per query row
constexpr int kLanesPerRow = 4;
constexpr int kScoresPerLane = kBK / kLanesPerRow;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ void store(float* dst, float v) { *dst = v; }
__device__ __forceinline__ void store(__half* dst, float v) { *dst = __float2half_rn(v); }

template <typename T, int kBD>
__device__ __forceinline__ void attention_tile(const T* __restrict__ q,  // [B, Nq, Dk]
                                               const T* __restrict__ k,  // [B, Nk, Dk]
                                               const T* __restrict__ v,  // [B, Nk, Dv]
                                               T* __restrict__ out,      // [B, Nq, Dv]
                                               const posert::AttentionParams& p) {
  extern __shared__ float smem[];
  const int dk = static_cast<int>(p.dk);
  const int ld = dk + 1;  // +1 pads avoid shared-memory bank conflicts
  float* qs = smem;               // [kBQ][dk + 1], pre-scaled
  float* ks = qs + kBQ * ld;      // [kBK][dk + 1]
  float* vs = ks + kBK * ld;      // [kBK][kBD]
  float* ps = vs + kBK * kBD;     // [kBQ][kBK + 1] probabilities of the current tile

  const int tid = threadIdx.x;
  const int row = tid / kLanesPerRow;
  const int lane = tid % kLanesPerRow;
  const int64_t b = blockIdx.z;
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kBQ;
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * kBD;
  const T* qb = q + b * p.queries * p.dk;
  const T* kb = k + b * p.keys * p.dk;
  const T* vb = v + b * p.keys * p.dv;

  for (int i = tid; i < kBQ * dk; i += kThreads) {
    const int r = i / dk, d = i % dk;
    qs[r * ld + d] = q0 + r < p.queries ? to_float(qb[(q0 + r) * p.dk + d]) * p.scale : 0.0f;
  }

  float acc[kBD / kLanesPerRow];
#pragma unroll
  for (int c = 0; c < kBD / kLanesPerRow; ++c) acc[c] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  for (int64_t k0 = 0; k0 < p.keys; k0 += kBK) {
    __syncthreads();  // previous tile consumed (and qs visible on the first pass)
    for (int i = tid; i < kBK * dk; i += kThreads) {
      const int j = i / dk, d = i % dk;
      ks[j * ld + d] = k0 + j < p.keys ? to_float(kb[(k0 + j) * p.dk + d]) : 0.0f;
    }
    for (int i = tid; i < kBK * kBD; i += kThreads) {
      const int j = i / kBD, c = i % kBD;
      vs[i] = (k0 + j < p.keys && c0 + c < p.dv) ? to_float(vb[(k0 + j) * p.dv + c0 + c]) : 0.0f;
    }
    __syncthreads();

    float s[kScoresPerLane];
    float tile_max = -INFINITY;
#pragma unroll
    for (int t = 0; t < kScoresPerLane; ++t) {
      const int j = lane + kLanesPerRow * t;
      float dot = 0.0f;
      for (int d = 0; d < dk; ++d) dot = fmaf(qs[row * ld + d], ks[j * ld + d], dot);
      s[t] = k0 + j < p.keys ? dot : -INFINITY;
      tile_max = fmaxf(tile_max, s[t]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
    const float m_new = fmaxf(m, tile_max);  // finite: every tile has at least one valid key
    const float alpha = __expf(m - m_new);   // 0 on the first tile (m = -inf)
    float sum = 0.0f;
#pragma unroll
    for (int t = 0; t < kScoresPerLane; ++t) {
      const float e = __expf(s[t] - m_new);
      sum += e;
      ps[row * (kBK + 1) + lane + kLanesPerRow * t] = e;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    l = l * alpha + sum;
    m = m_new;
    __syncwarp();  // the row's probabilities were written by the four lanes of this warp
#pragma unroll
    for (int c = 0; c < kBD / kLanesPerRow; ++c) acc[c] *= alpha;
    for (int j = 0; j < kBK; ++j) {
      const float pj = ps[row * (kBK + 1) + j];
#pragma unroll
      for (int c = 0; c < kBD / kLanesPerRow; ++c) acc[c] = fmaf(pj, vs[j * kBD + lane + kLanesPerRow * c], acc[c]);
    }
  }

  const int64_t qi = q0 + row;
  if (qi >= p.queries) return;
  const float inv = 1.0f / l;
  T* orow = out + (b * p.queries + qi) * p.dv;
#pragma unroll
  for (int c = 0; c < kBD / kLanesPerRow; ++c) {
    const int64_t col = c0 + lane + kLanesPerRow * c;
    if (col < p.dv) store(orow + col, acc[c] * inv);
  }
}

template <typename T, int kBD>
__device__ __forceinline__ void run(const T* q, const T* k, const T* v, int queries, int keys, int dk, int dv,
                                    int scale_bits, T* out) {
  posert::AttentionParams p;
  p.batch = gridDim.z;
  p.queries = queries;
  p.keys = keys;
  p.dk = dk;
  p.dv = dv;
  p.scale = __int_as_float(scale_bits);
  attention_tile<T, kBD>(q, k, v, out, p);
}

}  // namespace

// Entry points: pyposert_fused_attention_<f32|f16>_bd<32|64>. Scalars: Nq, Nk, Dk, Dv, scale bits.
#define POSERT_ATTENTION_ENTRY(NAME, T, BD)                                                            \
  extern "C" __global__ void __launch_bounds__(kThreads)                                              \
  NAME(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, int queries, int keys, \
       int dk, int dv, int scale_bits, T* __restrict__ out) {                                         \
    run<T, BD>(q, k, v, queries, keys, dk, dv, scale_bits, out);                                      \
  }

POSERT_ATTENTION_ENTRY(pyposert_fused_attention_f32_bd32, float, 32)
POSERT_ATTENTION_ENTRY(pyposert_fused_attention_f32_bd64, float, 64)
POSERT_ATTENTION_ENTRY(pyposert_fused_attention_f16_bd32, __half, 32)
POSERT_ATTENTION_ENTRY(pyposert_fused_attention_f16_bd64, __half, 64)
