// CPU heatmaps. The Gaussian is separable, exp(-(dx^2 + dy^2) / 2s^2) =
// exp(-dx^2 / 2s^2) * exp(-dy^2 / 2s^2): per joint we evaluate W + H exponentials and fill
// the H x W channel with products, instead of H * W exponentials. The product of the two
// float32 factors differs from the single exponential by at most a couple of ulp.
#include <cmath>
#include <cstring>
#include <vector>

#include "heatmaps.h"
#include "parallel.h"

namespace posert {
namespace {

inline bool joint_missing(float x, float y) {
  return !(std::isfinite(x) && std::isfinite(y)) || x < 0.0f || y < 0.0f;
}

inline void store(float* dst, float v) { *dst = v; }
inline void store(uint16_t* dst, float v) { *dst = float_to_half(v); }

template <typename T>
void fill_zero(T* channel, int64_t count) {
  std::memset(channel, 0, static_cast<size_t>(count) * sizeof(T));
}

template <typename T>
void gaussian_channel(T* channel, float kx, float ky, const HeatmapParams& p,
                      std::vector<float>& gx, std::vector<float>& gy) {
  const float inv = -1.0f / (2.0f * p.sigma * p.sigma);
  for (int64_t x = 0; x < p.width; ++x) {
    const float d = static_cast<float>(x) - kx;
    gx[x] = std::exp(d * d * inv);
  }
  for (int64_t y = 0; y < p.height; ++y) {
    const float d = static_cast<float>(y) - ky;
    gy[y] = std::exp(d * d * inv);
  }
  for (int64_t y = 0; y < p.height; ++y) {
    T* row = channel + y * p.width;
    const float fy = gy[y];
    if (fy == 0.0f) {
      fill_zero(row, p.width);
      continue;
    }
    for (int64_t x = 0; x < p.width; ++x) store(row + x, gx[x] * fy);
  }
}

template <typename T>
void disk_channel(T* channel, float kx, float ky, const HeatmapParams& p) {
  const float r2 = p.radius * p.radius;
  for (int64_t y = 0; y < p.height; ++y) {
    T* row = channel + y * p.width;
    const float dy = static_cast<float>(y) - ky;
    const float rem = r2 - dy * dy;
    fill_zero(row, p.width);
    if (!(rem >= 0.0f)) continue;  // also false for NaN/inf arithmetic
    // Candidate span from the real-valued solution, widened by one pixel and then tested
    // with the exact inequality so the set equals the per-pixel definition.
    const float half = std::sqrt(rem);
    const float lo_f = std::floor(kx - half) - 1.0f;
    const float hi_f = std::ceil(kx + half) + 1.0f;
    if (hi_f < 0.0f || lo_f > static_cast<float>(p.width - 1)) continue;
    const int64_t lo = lo_f < 0.0f ? 0 : static_cast<int64_t>(lo_f);
    const int64_t hi = hi_f > static_cast<float>(p.width - 1) ? p.width - 1 : static_cast<int64_t>(hi_f);
    for (int64_t x = lo; x <= hi; ++x) {
      const float dx = static_cast<float>(x) - kx;
      if (dx * dx + dy * dy <= r2) store(row + x, 1.0f);
    }
  }
}

template <typename T>
void heatmaps_impl(const float* keypoints, T* out, const HeatmapParams& p) {
  const int64_t plane = p.height * p.width;
  const int64_t channels = p.batch * p.joints;
  parallel_for(channels, [&](int64_t begin, int64_t end) {
    std::vector<float> gx(static_cast<size_t>(p.width)), gy(static_cast<size_t>(p.height));
    for (int64_t c = begin; c < end; ++c) {
      const int64_t b = c / p.joints, k = c % p.joints;
      T* channel = out + b * p.out_batch_stride + p.out_channel_offset + k * plane;
      const float x = keypoints[2 * c], y = keypoints[2 * c + 1];
      if (joint_missing(x, y)) {
        fill_zero(channel, plane);
        continue;
      }
      const float kx = x * p.scale_x + p.offset_x;
      const float ky = y * p.scale_y + p.offset_y;
      if (p.mode == HeatmapMode::kGaussian) {
        gaussian_channel(channel, kx, ky, p, gx, gy);
      } else {
        disk_channel(channel, kx, ky, p);
      }
    }
  });
}

}  // namespace

void heatmaps_cpu(const float* keypoints, float* out, const HeatmapParams& params) {
  heatmaps_impl(keypoints, out, params);
}

void heatmaps_cpu(const float* keypoints, uint16_t* out_half, const HeatmapParams& params) {
  heatmaps_impl(keypoints, out_half, params);
}

}  // namespace posert
