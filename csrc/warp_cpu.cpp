// CPU warp (float32, multi-threaded over output rows). Per row, each part's weights and
// source positions are computed for the span of the row its shape can reach
// (warp_cpu_row.inc, compiled for AVX-512, AVX2+FMA and baseline x86-64 and picked by
// simd.h), then the parts are composited front to back with bilinear source samples.
#include <algorithm>
#include <cmath>
#include <vector>

#include "parallel.h"
#include "simd.h"
#include "warp.h"
#include "warp_parts.h"

namespace posert {
namespace {

namespace baseline {
#include "warp_cpu_row.inc"
}  // namespace baseline
#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "warp_cpu_row.inc"
}  // namespace avx2
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
namespace avx512 {
#include "warp_cpu_row.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif

using PartRowFn = void (*)(const warp::Part&, float, int64_t, int64_t, float*, float*, float*);

// Where a part's weight can be non-zero: its shape's bounding box grown by core + cutoff.
struct Reach {
  float x0, x1, y0, y1;
};

Reach reach_of(const warp::Part& part) {
  float x0 = part.ax[0], x1 = part.ax[0], y0 = part.ay[0], y1 = part.ay[0];
  for (int i = 0; i < part.segments; ++i) {
    x0 = std::min({x0, part.ax[i], part.bx[i]});
    x1 = std::max({x1, part.ax[i], part.bx[i]});
    y0 = std::min({y0, part.ay[i], part.by[i]});
    y1 = std::max({y1, part.ay[i], part.by[i]});
  }
  const float grow = part.core + warp::kCutoff / part.inv_falloff + 1.0f;
  return {x0 - grow, x1 + grow, y0 - grow, y1 + grow};
}

}  // namespace

void warp_cpu(const float* image, const float* source_keypoints, const float* target_keypoints,
              float* out, float* coverage, const WarpParams& p) {
  const int64_t plane = p.height * p.width, src_plane = p.src_height * p.src_width;
  if (p.batch == 0 || plane == 0) return;
  // Parts per batch item (tiny: done serially, in double precision).
  const double fallback_size = 0.25 * static_cast<double>(std::max(p.height, p.width));
  std::vector<warp::Part> parts(static_cast<size_t>(p.batch * kWarpParts));
  std::vector<Reach> reach(parts.size());
  for (int64_t b = 0; b < p.batch; ++b) {
    warp::fit_parts(source_keypoints + b * kWarpJoints * 2, target_keypoints + b * kWarpJoints * 2,
                    fallback_size, parts.data() + b * kWarpParts);
    for (int k = 0; k < kWarpParts; ++k) {
      if (parts[b * kWarpParts + k].valid) reach[b * kWarpParts + k] = reach_of(parts[b * kWarpParts + k]);
    }
  }
  static const PartRowFn part_row = POSERT_SIMD_VARIANT(part_row);
  const float max_x = static_cast<float>(p.src_width) - 0.5f, max_y = static_cast<float>(p.src_height) - 0.5f;

  // ~64k output pixels per thread at least: below that a second thread costs more than it saves.
  const int64_t min_rows = std::max<int64_t>(1, 65536 / std::max<int64_t>(p.width, 1));
  parallel_for(p.batch * p.height, [&](int64_t begin, int64_t end) {
    const int64_t w = p.width;
    std::vector<float> weight(w), sx(w), sy(w), trans(w), acc(static_cast<size_t>(p.channels * w));
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / p.height, row = r % p.height;
      const float y = static_cast<float>(row);
      std::fill(trans.begin(), trans.end(), 1.0f);
      std::fill(acc.begin(), acc.end(), 0.0f);
      const float* src = image + b * p.channels * src_plane;
      for (int k = 0; k < kWarpParts; ++k) {
        const warp::Part& part = parts[b * kWarpParts + k];
        if (!part.valid) continue;
        const Reach& reach_k = reach[b * kWarpParts + k];
        if (y < reach_k.y0 || y > reach_k.y1 || reach_k.x1 < 0.0f || reach_k.x0 > static_cast<float>(w - 1)) continue;
        const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(reach_k.x0)));
        const int64_t x1 = std::min<int64_t>(w, static_cast<int64_t>(std::ceil(reach_k.x1)) + 1);
        part_row(part, y, x0, x1, weight.data(), sx.data(), sy.data());
        for (int64_t x = x0; x < x1; ++x) {
          const float alpha = weight[x], t = trans[x];
          if (alpha == 0.0f || t < warp::kMinTransmittance) continue;
          const float fx = sx[x], fy = sy[x];
          if (!(fx >= -0.5f && fx <= max_x && fy >= -0.5f && fy <= max_y)) continue;
          // Bilinear, pixel centres at integers, edge clamped.
          const float flx = std::floor(fx), fly = std::floor(fy);
          const float ux = fx - flx, uy = fy - fly;
          const int64_t ix = static_cast<int64_t>(flx), iy = static_cast<int64_t>(fly);
          const int64_t xa = std::max<int64_t>(ix, 0), xb = std::min<int64_t>(ix + 1, p.src_width - 1);
          const int64_t ya = std::max<int64_t>(iy, 0), yb = std::min<int64_t>(iy + 1, p.src_height - 1);
          const float w00 = (1.0f - ux) * (1.0f - uy), w01 = ux * (1.0f - uy), w10 = (1.0f - ux) * uy, w11 = ux * uy;
          const float gain = t * alpha;
          for (int64_t c = 0; c < p.channels; ++c) {
            const float* s = src + c * src_plane;
            const float v = w00 * s[ya * p.src_width + xa] + w01 * s[ya * p.src_width + xb] +
                            w10 * s[yb * p.src_width + xa] + w11 * s[yb * p.src_width + xb];
            acc[c * w + x] += gain * v;
          }
          trans[x] = t * (1.0f - alpha);
        }
      }
      float* cov = coverage + b * plane + row * w;
      for (int64_t x = 0; x < w; ++x) cov[x] = 1.0f - trans[x];
      for (int64_t c = 0; c < p.channels; ++c) {
        float* dst = out + (b * p.channels + c) * plane + row * w;
        const float* a = acc.data() + c * w;
        for (int64_t x = 0; x < w; ++x) dst[x] = cov[x] > warp::kMinCoverage ? a[x] / cov[x] : 0.0f;
      }
    }
  }, min_rows);
}

}  // namespace posert
