// attention: fused softmax attention with different key and value widths.
//
//   out[b, j, :] = sum_i softmax_i(scale * q[b, j, :] . k[b, i, :]) * v[b, i, :]
//
// softmax runs over the keys i. The N x N score matrix is never materialised: keys are
// visited in tiles with an online (running max, running sum) softmax, accumulated in fp32.
#pragma once

#include <cstdint>

#include "common.h"

#ifdef POSERT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace posert {

struct AttentionParams {
  int64_t batch = 0;    // B
  int64_t queries = 0;  // Nq
  int64_t keys = 0;     // Nk (>= 1 when queries >= 1)
  int64_t dk = 0;       // query/key width
  int64_t dv = 0;       // value width
  float scale = 1.0f;   // multiplies q . k before the softmax
};

// Contiguous buffers: q [B, Nq, Dk], k [B, Nk, Dk], v [B, Nk, Dv], out [B, Nq, Dv], float32.
void attention_cpu(const float* q, const float* k, const float* v, float* out,
                   const AttentionParams& params);

#ifdef POSERT_WITH_CUDA
// Device pointers of `dtype` (float or __half); fp32 accumulation either way. Runs on
// `stream` and returns the launch status (never synchronises).
cudaError_t launch_attention(const void* q, const void* k, const void* v, void* out, DType dtype,
                             const AttentionParams& params, cudaStream_t stream);
#endif

}  // namespace posert
