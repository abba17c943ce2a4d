// CUDA heatmaps: one thread per output pixel, channels on the grid's y axis. The per-pixel
// math is heatmaps_kernel.cuh, shared with the TensorRT plugin.
#include <cuda_fp16.h>

#include "heatmaps.h"
#include "heatmaps_kernel.cuh"

namespace posert {
namespace {

using heatmaps_kernel::kThreads;

__device__ __forceinline__ void store(float* dst, float v) { *dst = v; }
__device__ __forceinline__ void store(__half* dst, float v) { *dst = __float2half_rn(v); }

template <typename T>
__global__ void __launch_bounds__(kThreads)
heatmaps_fwd_kernel(const float* __restrict__ keypoints,  // [B, K, 2] (x, y)
                    T* __restrict__ out, HeatmapParams p) {
  const int64_t plane = p.height * p.width;
  const int64_t pixel = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (pixel >= plane) return;
  const float px = static_cast<float>(pixel % p.width);
  const float py = static_cast<float>(pixel / p.width);
  const int64_t channels = p.batch * p.joints;
  for (int64_t c = blockIdx.y; c < channels; c += gridDim.y) {
    const int64_t b = c / p.joints, k = c % p.joints;
    T* dst = out + b * p.out_batch_stride + p.out_channel_offset + k * plane + pixel;
    const float value = heatmaps_kernel::pixel_value(__ldg(keypoints + 2 * c), __ldg(keypoints + 2 * c + 1),
                                                     p.scale_x, p.scale_y, p.offset_x, p.offset_y, px, py,
                                                     p.mode, p.sigma, p.radius);
    store(dst, value);
  }
}

}  // namespace

cudaError_t launch_heatmaps(const float* keypoints, void* out, DType dtype,
                            const HeatmapParams& params, cudaStream_t stream) {
  const int64_t plane = params.height * params.width;
  const int64_t channels = params.batch * params.joints;
  if (plane == 0 || channels == 0) return cudaSuccess;
  const dim3 block(kThreads);
  const dim3 grid(static_cast<unsigned>((plane + kThreads - 1) / kThreads),
                  static_cast<unsigned>(channels < 65535 ? channels : 65535));
  if (dtype == DType::kFloat16) {
    heatmaps_fwd_kernel<__half><<<grid, block, 0, stream>>>(keypoints, static_cast<__half*>(out), params);
  } else {
    heatmaps_fwd_kernel<float><<<grid, block, 0, stream>>>(keypoints, static_cast<float*>(out), params);
  }
  return cudaGetLastError();
}

}  // namespace posert
