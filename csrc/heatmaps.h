// heatmaps: keypoints -> one channel per joint (Gaussian or solid disk).
//
// Keypoints are (x, y) pixel coordinates, x first. A joint is missing when its original x
// or y is negative, NaN or infinite: its channel is all zero. Present joints are first
// mapped into the output frame, x' = x * scale_x + offset_x (y likewise), then
//   Gaussian: out[py, px] = exp(-((px - x')^2 + (py - y')^2) / (2 sigma^2))
//   disk:     out[py, px] = 1 if (px - x')^2 + (py - y')^2 <= radius^2 else 0
// on the integer pixel grid px in [0, W), py in [0, H) (the PATN/PoNA and PG2 conventions).
#pragma once

#include <cstdint>

#include "common.h"

#ifdef POSERT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace posert {

enum class HeatmapMode : int { kGaussian = 0, kDisk = 1 };

struct HeatmapParams {
  int64_t batch = 0;   // B
  int64_t joints = 0;  // K
  int64_t height = 0;  // H
  int64_t width = 0;   // W
  HeatmapMode mode = HeatmapMode::kGaussian;
  float sigma = 6.0f;   // Gaussian standard deviation, output pixels (> 0)
  float radius = 4.0f;  // disk radius, output pixels (>= 0)
  float scale_x = 1.0f, scale_y = 1.0f;    // annotation frame -> output frame
  float offset_x = 0.0f, offset_y = 0.0f;  // added after scaling
  // Layout of the output buffer: item b, joint k starts at
  //   out + b * out_batch_stride + out_channel_offset + k * H * W.
  // The plain call uses out_batch_stride = K*H*W and offset 0; the source+target variant
  // writes two poses into one [B, 2K, H, W] buffer with stride 2K*H*W and offsets 0 / K*H*W.
  int64_t out_batch_stride = 0;
  int64_t out_channel_offset = 0;
};

// keypoints: [B, K, 2] float32 (x, y), contiguous. out: see HeatmapParams.
void heatmaps_cpu(const float* keypoints, float* out, const HeatmapParams& params);
void heatmaps_cpu(const float* keypoints, uint16_t* out_half, const HeatmapParams& params);

#ifdef POSERT_WITH_CUDA
// Device pointers; `out` is float* or __half* by `dtype`. Runs on `stream`, returns the
// launch status (never synchronises).
cudaError_t launch_heatmaps(const float* keypoints, void* out, DType dtype,
                            const HeatmapParams& params, cudaStream_t stream);
#endif

}  // namespace posert
