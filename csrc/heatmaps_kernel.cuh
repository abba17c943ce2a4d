// The device side of the heatmap kernel: the value of one pixel for one joint. Shared by
// csrc/heatmaps_cuda.cu and export/plugins/pose_heatmap (the TensorRT AOT plugin, PTX).
#pragma once

#include <cstdint>

#include "heatmaps.h"

namespace posert {
namespace heatmaps_kernel {

constexpr int kThreads = 256;  // one thread per output pixel

// (x, y): the joint as annotated; (kx, ky) = (x, y) * scale + offset, in output pixels.
// Missing joint (x or y negative, NaN or inf) -> 0.
__device__ __forceinline__ float pixel_value(float x, float y, float scale_x, float scale_y, float offset_x,
                                             float offset_y, float px, float py, HeatmapMode mode, float sigma,
                                             float radius) {
  if (!(isfinite(x) && isfinite(y)) || x < 0.0f || y < 0.0f) return 0.0f;
  const float dx = px - (x * scale_x + offset_x);
  const float dy = py - (y * scale_y + offset_y);
  const float d2 = dx * dx + dy * dy;
  if (mode == HeatmapMode::kGaussian) {
    // The joint's own pixel is exactly 1 even when 2 sigma^2 underflows to 0 (0 / 0 = NaN);
    // elsewhere -d2 / 0 = -inf gives exp = 0, the limit of a vanishing Gaussian.
    if (d2 == 0.0f) return 1.0f;
    return expf(-d2 / (2.0f * sigma * sigma));
  }
  return d2 <= radius * radius ? 1.0f : 0.0f;
}

}  // namespace heatmaps_kernel
}  // namespace posert
