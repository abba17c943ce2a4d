// pyposert::PoseHeatmap as a TensorRT ahead-of-time plugin kernel (compiled to PTX, embedded
// in the engine).
//
// TensorRT launches an AOT plugin kernel with (inputs..., int32 scalars..., outputs...), one
// launch per plugin call, so this entry point takes raw pointers and int32 scalars; sigma and
// radius arrive as the bit patterns of their float32 values (the AOT API passes integers only).
// The per-pixel math is csrc's (csrc/heatmaps_kernel.cuh, pixel_value) with identity
// scale/offset (the keypoints are already in model pixels): one thread per output pixel,
// Gaussian exp(-d^2 / (2 sigma^2)) or a solid disk d^2 <= radius^2, missing joint -> 0.
//
// Grid: (ceil(H*W / 256), 2K, B); block 256. Channel c < K reads source joint c, c >= K
// target joint c - K: both poses in one launch, source channels first.
#include <cstdint>

#include "heatmaps.h"
#include "heatmaps_kernel.cuh"

namespace {

using posert::heatmaps_kernel::kThreads;

}  // namespace

extern "C" __global__ void __launch_bounds__(kThreads)
pyposert_pose_heatmap_f32(const float* __restrict__ source,  // [B, K, 2] (x, y) model pixels
                          const float* __restrict__ target,  // [B, K, 2]
                          int joints, int height, int width, int mode, int sigma_bits, int radius_bits,
                          float* __restrict__ out) {         // [B, 2K, H, W]
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int64_t pixel = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (pixel >= plane) return;
  const int channel = static_cast<int>(blockIdx.y);  // 0 .. 2K-1
  const int64_t b = blockIdx.z;
  const bool is_source = channel < joints;
  const int k = is_source ? channel : channel - joints;
  const float* kp = (is_source ? source : target) + (b * joints + k) * 2;
  const float px = static_cast<float>(pixel % width);
  const float py = static_cast<float>(pixel / width);
  const float value = posert::heatmaps_kernel::pixel_value(
      __ldg(kp), __ldg(kp + 1), 1.0f, 1.0f, 0.0f, 0.0f, px, py, static_cast<posert::HeatmapMode>(mode),
      __int_as_float(sigma_bits), __int_as_float(radius_bits));
  out[(b * 2 * joints + channel) * plane + pixel] = value;
}
