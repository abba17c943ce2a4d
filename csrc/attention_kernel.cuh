// The device side of the fused attention kernel, shared by csrc/attention_cuda.cu (the
// pybind11 / torch path) and export/plugins/fused_attention (the TensorRT AOT plugin, PTX).
// One tile routine, instantiated by each entry point with its own key-tile size: csrc uses
// 64-key tiles and raises the dynamic shared-memory limit from its launcher; a plugin kernel
// has no host code, so it uses smaller key tiles that stay under the default 48 KiB
// (attention_tiles in attention.h).
//
// Block = (64-query tile, kBD value columns, batch item). Splitting the value dimension
// across blocks is what fills a large GPU at B = 1: with N = 2816 and Dv = 256 the grid has
// 44 x 4 (kBD = 64) or 44 x 8 (kBD = 32) blocks instead of 44. Each split recomputes the
// cheap Q K^T (Dk << Dv) for its columns. 256 threads: four per query row; a row's scores,
// max and sum are reduced with shuffles inside those four lanes, which share a warp.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "attention.h"

namespace posert {
namespace attention_kernel {

using attention_tiles::kLanesPerRow;
using attention_tiles::kThreads;
using attention_tiles::smem_bytes;
constexpr int kBQ = attention_tiles::kBlockQueries;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ void store(float* dst, float v) { *dst = v; }
__device__ __forceinline__ void store(__half* dst, float v) { *dst = __float2half_rn(v); }

// Grid (ceil(Nq / kBQ), ceil(Dv / kBD), B), block kThreads, smem_bytes(dk, kBD, kBK).
// Operands are laid out as p's strides say (unit stride on the last axis).
template <typename T, int kBD, int kBK>
__device__ __forceinline__ void attention_block(const T* __restrict__ q,  // [B, Nq, Dk]
                                                const T* __restrict__ k,  // [B, Nk, Dk]
                                                const T* __restrict__ v,  // [B, Nk, Dv]
                                                T* __restrict__ out,      // [B, Nq, Dv]
                                                const AttentionParams& p) {
  constexpr int kScoresPerLane = kBK / kLanesPerRow;
  extern __shared__ float smem[];
  const int dk = static_cast<int>(p.dk);
  const int ld = dk + 1;
  float* qs = smem;
  float* ks = qs + kBQ * ld;
  float* vs = ks + kBK * ld;
  float* ps = vs + kBK * kBD;

  const int tid = threadIdx.x;
  const int row = tid / kLanesPerRow;
  const int lane = tid % kLanesPerRow;
  const int64_t b = blockIdx.z;
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kBQ;
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * kBD;
  const T* qb = q + b * p.q_strides.batch;
  const T* kb = k + b * p.k_strides.batch;
  const T* vb = v + b * p.v_strides.batch;

  for (int i = tid; i < kBQ * dk; i += kThreads) {
    const int r = i / dk, d = i % dk;
    qs[r * ld + d] = q0 + r < p.queries ? to_float(qb[(q0 + r) * p.q_strides.row + d]) * p.scale : 0.0f;
  }

  float acc[kBD / kLanesPerRow];
#pragma unroll
  for (int c = 0; c < kBD / kLanesPerRow; ++c) acc[c] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  for (int64_t k0 = 0; k0 < p.keys; k0 += kBK) {
    __syncthreads();  // previous tile fully consumed (and qs visible on the first pass)
    for (int i = tid; i < kBK * dk; i += kThreads) {
      const int j = i / dk, d = i % dk;
      ks[j * ld + d] = k0 + j < p.keys ? to_float(kb[(k0 + j) * p.k_strides.row + d]) : 0.0f;
    }
    for (int i = tid; i < kBK * kBD; i += kThreads) {
      const int j = i / kBD, c = i % kBD;
      vs[i] = (k0 + j < p.keys && c0 + c < p.dv) ? to_float(vb[(k0 + j) * p.v_strides.row + c0 + c]) : 0.0f;
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
      for (int c = 0; c < kBD / kLanesPerRow; ++c)
        acc[c] = fmaf(pj, vs[j * kBD + lane + kLanesPerRow * c], acc[c]);
    }
  }

  const int64_t qi = q0 + row;
  if (qi >= p.queries) return;
  const float inv = 1.0f / l;
  T* orow = out + b * p.out_strides.batch + qi * p.out_strides.row;
#pragma unroll
  for (int c = 0; c < kBD / kLanesPerRow; ++c) {
    const int64_t col = c0 + lane + kLanesPerRow * c;
    if (col < p.dv) store(orow + col, acc[c] * inv);
  }
}

}  // namespace attention_kernel
}  // namespace posert
