// attention: fused softmax attention with different key and value widths.
//
//   out[b, j, :] = sum_i softmax_i(scale * q[b, j, :] . k[b, i, :]) * v[b, i, :]
//
// softmax runs over the keys i. The N x N score matrix is never materialised: keys are
// visited in tiles with an online (running max, running sum) softmax, accumulated in fp32.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common.h"

#ifdef POSERT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace posert {

// Tiling of the CUDA kernel (attention_kernel.cuh), shared with the TensorRT plugin
// (export/plugins/fused_attention), which reads these through pyposert._C.
namespace attention_tiles {
constexpr int kBlockQueries = 64;  // queries per block
constexpr int kThreads = 256;      // 4 per query row
constexpr int kLanesPerRow = 4;
constexpr int kMaxDk = 128;        // largest query/key width of the CUDA kernel and the plugin
constexpr int kLaunchKeys = 64;    // keys per tile in csrc's launcher (raises the smem limit)
// A TensorRT AOT plugin cannot raise a kernel's shared-memory limit, so it stays under the
// default 48 KiB: 32-key tiles up to Dk = kPluginWideMaxDk, then 16-key tiles with 32 value
// columns per block up to kMaxDk.
constexpr size_t kPluginSmemLimit = 48 * 1024;
constexpr int kPluginKeys = 32;
constexpr int kPluginWideMaxDk = 64;
constexpr int kPluginNarrowKeys = 16;

// Dynamic shared memory of one block, in bytes: qs [kBlockQueries][dk+1] + ks [bk][dk+1] +
// vs [bk][bd] + ps [kBlockQueries][bk+1] floats (the +1 pads avoid bank conflicts).
POSERT_HOST_DEVICE constexpr size_t smem_bytes(int64_t dk, int bd, int bk) {
  return sizeof(float) * (static_cast<size_t>(kBlockQueries + bk) * static_cast<size_t>(dk + 1) +
                          static_cast<size_t>(bk) * bd + static_cast<size_t>(kBlockQueries) * (bk + 1));
}

static_assert(smem_bytes(kPluginWideMaxDk, 64, kPluginKeys) <= kPluginSmemLimit, "plugin wide tiles");
static_assert(smem_bytes(kMaxDk, 32, kPluginNarrowKeys) <= kPluginSmemLimit, "plugin narrow tiles");
}  // namespace attention_tiles

// Element strides of one [B, N, D] operand; the last axis (D) is always unit-stride.
struct RowStrides {
  int64_t batch = 0;
  int64_t row = 0;
};

// The strides of a packed (C-contiguous) [B, rows, width] buffer.
POSERT_HOST_DEVICE constexpr RowStrides packed_strides(int64_t rows, int64_t width) {
  return RowStrides{rows * width, width};
}

struct AttentionParams {
  int64_t batch = 0;    // B
  int64_t queries = 0;  // Nq
  int64_t keys = 0;     // Nk (>= 1 when queries >= 1)
  int64_t dk = 0;       // query/key width
  int64_t dv = 0;       // value width
  float scale = 1.0f;   // multiplies q . k before the softmax
  // Layouts of q [B, Nq, Dk], k [B, Nk, Dk], v [B, Nk, Dv], out [B, Nq, Dv]: a head slice or a
  // transposed-batch view is read and written in place. The inputs may alias or broadcast
  // (a zero batch stride); `out` must not overlap itself or the inputs.
  RowStrides q_strides, k_strides, v_strides, out_strides;

  // Every operand packed; call after setting the sizes.
  POSERT_HOST_DEVICE void set_packed_strides() {
    q_strides = packed_strides(queries, dk);
    k_strides = packed_strides(keys, dk);
    v_strides = packed_strides(keys, dv);
    out_strides = packed_strides(queries, dv);
  }
};

// Host buffers, float32, laid out as `params` says.
void attention_cpu(const float* q, const float* k, const float* v, float* out,
                   const AttentionParams& params);

#ifdef POSERT_WITH_CUDA
// Device pointers of `dtype` (float or __half); fp32 accumulation either way. Runs on
// `stream` and returns the launch status (never synchronises).
cudaError_t launch_attention(const void* q, const void* k, const void* v, void* out, DType dtype,
                             const AttentionParams& params, cudaStream_t stream);
#endif

}  // namespace posert
