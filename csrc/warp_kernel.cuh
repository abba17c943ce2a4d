// The device side of the warp kernel, shared by csrc/warp_cuda.cu (the pybind11 / torch path)
// and export/plugins/warp (the TensorRT AOT plugin, PTX): one thread per output pixel, batch
// items on the grid's y axis. Each block fits its batch item's parts once (thread 0, double
// precision, into shared memory: a few hundred flops against the block's 256 pixels x 10
// parts), then every thread composites its pixel with the same per-pixel math as the CPU
// kernel (warp_parts.h).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "warp.h"
#include "warp_parts.h"

namespace posert {
namespace warp_kernel {

constexpr int kThreads = 256;

__device__ __forceinline__ float load(const float* p) { return __ldg(p); }
__device__ __forceinline__ float load(const __half* p) { return __half2float(__ldg(p)); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }

// Grid (ceil(H * W / kThreads), B), block kThreads, static shared memory only.
template <typename T>
__device__ __forceinline__ void warp_block(const T* __restrict__ image,                 // [B, C, Hs, Ws]
                                           const float* __restrict__ source_keypoints,  // [B, 18, 2]
                                           const float* __restrict__ target_keypoints,  // [B, 18, 2]
                                           T* __restrict__ out,                         // [B, C, H, W]
                                           T* __restrict__ coverage,                    // [B, 1, H, W]
                                           const WarpParams& p) {
  __shared__ warp::Part parts[kWarpParts];
  const int64_t b = blockIdx.y;
  if (threadIdx.x == 0) {
    const double fallback_size = 0.25 * static_cast<double>(p.height > p.width ? p.height : p.width);
    warp::fit_parts(source_keypoints + b * kWarpJoints * 2, target_keypoints + b * kWarpJoints * 2,
                    fallback_size, parts);
  }
  __syncthreads();
  const int64_t plane = p.height * p.width, src_plane = p.src_height * p.src_width;
  const int64_t pixel = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (pixel >= plane) return;
  const float x = static_cast<float>(pixel % p.width), y = static_cast<float>(pixel / p.width);
  const float max_x = static_cast<float>(p.src_width) - 0.5f, max_y = static_cast<float>(p.src_height) - 0.5f;
  const T* src = image + b * p.channels * src_plane;

  constexpr int kMaxChannels = 4;  // larger C: the pixel is composited in chunks of 4 channels
  float t_final = 1.0f;
  for (int64_t c0 = 0; c0 < p.channels; c0 += kMaxChannels) {
    float acc[kMaxChannels] = {0.0f, 0.0f, 0.0f, 0.0f};
    float t = 1.0f;
    for (int k = 0; k < kWarpParts; ++k) {
      const warp::Part& part = parts[k];
      if (!part.valid || t < warp::kMinTransmittance) continue;
      const float e = warp::part_excess(part, x, y);
      if (!(e < warp::kCutoff)) continue;
      const float alpha = __expf(-0.5f * e * e);
      const float fx = part.m[0] * x + part.m[1] * y + part.m[2];
      const float fy = part.m[3] * x + part.m[4] * y + part.m[5];
      if (!(fx >= -0.5f && fx <= max_x && fy >= -0.5f && fy <= max_y)) continue;
      const float flx = floorf(fx), fly = floorf(fy);
      const float ux = fx - flx, uy = fy - fly;
      const int64_t ix = static_cast<int64_t>(flx), iy = static_cast<int64_t>(fly);
      const int64_t xa = ix < 0 ? 0 : ix, xb = ix + 1 > p.src_width - 1 ? p.src_width - 1 : ix + 1;
      const int64_t ya = iy < 0 ? 0 : iy, yb = iy + 1 > p.src_height - 1 ? p.src_height - 1 : iy + 1;
      const float w00 = (1.0f - ux) * (1.0f - uy), w01 = ux * (1.0f - uy), w10 = (1.0f - ux) * uy, w11 = ux * uy;
      const float gain = t * alpha;
#pragma unroll
      for (int c = 0; c < kMaxChannels; ++c) {
        if (c0 + c >= p.channels) break;
        const T* s = src + (c0 + c) * src_plane;
        acc[c] += gain * (w00 * load(s + ya * p.src_width + xa) + w01 * load(s + ya * p.src_width + xb) +
                          w10 * load(s + yb * p.src_width + xa) + w11 * load(s + yb * p.src_width + xb));
      }
      t *= 1.0f - alpha;
    }
    const float cov = 1.0f - t;
#pragma unroll
    for (int c = 0; c < kMaxChannels; ++c) {
      if (c0 + c >= p.channels) break;
      store(out + (b * p.channels + c0 + c) * plane + pixel, cov > warp::kMinCoverage ? acc[c] / cov : 0.0f);
    }
    t_final = t;
  }
  store(coverage + b * plane + pixel, 1.0f - t_final);
}

}  // namespace warp_kernel
}  // namespace posert
