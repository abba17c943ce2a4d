// CPU heatmaps. The Gaussian is separable, exp(-(dx^2 + dy^2) / 2s^2) =
// exp(-dx^2 / 2s^2) * exp(-dy^2 / 2s^2): per joint we evaluate W + H exponentials and fill
// the H x W channel with products, instead of H * W exponentials. The product of the two
// float32 factors differs from the single exponential by at most a couple of ulp.
// The row fill (the whole cost: it is a stream of stores) has AVX-512 and AVX2/F16C
// versions picked at run time; float16 uses the hardware conversion (round to nearest
// even, bit-exact with the portable float_to_half).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define POSERT_X86 1
#endif

#include "heatmaps.h"
#include "parallel.h"
#include "simd.h"

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

namespace baseline {
#include "heatmaps_cpu_axis.inc"
}  // namespace baseline
#ifdef POSERT_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "heatmaps_cpu_axis.inc"
}  // namespace avx2
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
namespace avx512 {
#include "heatmaps_cpu_axis.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif

// row[x] = gx[x] * fy for x < n.
using RowF32 = void (*)(float*, const float*, float, int64_t);
using RowF16 = void (*)(uint16_t*, const float*, float, int64_t);

void row_f32_portable(float* row, const float* gx, float fy, int64_t n) {
  for (int64_t x = 0; x < n; ++x) row[x] = gx[x] * fy;
}
void row_f16_portable(uint16_t* row, const float* gx, float fy, int64_t n) {
  for (int64_t x = 0; x < n; ++x) row[x] = float_to_half(gx[x] * fy);
}

#ifdef POSERT_X86
__attribute__((target("avx2,f16c")))
void row_f32_avx2(float* row, const float* gx, float fy, int64_t n) {
  const __m256 f = _mm256_set1_ps(fy);
  int64_t x = 0;
  for (; x + 8 <= n; x += 8) _mm256_storeu_ps(row + x, _mm256_mul_ps(_mm256_loadu_ps(gx + x), f));
  for (; x < n; ++x) row[x] = gx[x] * fy;
}
__attribute__((target("avx2,f16c")))
void row_f16_avx2(uint16_t* row, const float* gx, float fy, int64_t n) {
  const __m256 f = _mm256_set1_ps(fy);
  int64_t x = 0;
  for (; x + 8 <= n; x += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(gx + x), f), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(row + x), h);
  }
  for (; x < n; ++x) row[x] = float_to_half(gx[x] * fy);
}
// numpy's large arrays start 16 bytes past a page (malloc's header), so without peeling
// every 64-byte store would straddle two cache lines: peel to the first aligned element.
__attribute__((target("avx512f")))
void row_f32_avx512(float* row, const float* gx, float fy, int64_t n) {
  const __m512 f = _mm512_set1_ps(fy);
  int64_t x = 0;
  const int64_t misaligned = static_cast<int64_t>((reinterpret_cast<uintptr_t>(row) & 63u) / sizeof(float));
  if (misaligned != 0) {
    const int64_t head = std::min<int64_t>(16 - misaligned, n);
    const __mmask16 m = static_cast<__mmask16>((1u << head) - 1u);
    _mm512_mask_storeu_ps(row, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, gx), f));
    x = head;
  }
  if ((reinterpret_cast<uintptr_t>(row + x) & 63u) == 0) {
    for (; x + 16 <= n; x += 16) _mm512_store_ps(row + x, _mm512_mul_ps(_mm512_loadu_ps(gx + x), f));
  }
  for (; x + 16 <= n; x += 16) _mm512_storeu_ps(row + x, _mm512_mul_ps(_mm512_loadu_ps(gx + x), f));
  if (x < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - x)) - 1u);
    _mm512_mask_storeu_ps(row + x, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, gx + x), f));
  }
}
__attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
void row_f16_avx512(uint16_t* row, const float* gx, float fy, int64_t n) {
  const __m512 f = _mm512_set1_ps(fy);
  int64_t x = 0;
  for (; x + 16 <= n; x += 16) {
    const __m256i h = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_loadu_ps(gx + x), f), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + x), h);
  }
  for (; x < n; ++x) row[x] = float_to_half(gx[x] * fy);
}
#endif

struct RowFill {
  RowF32 f32 = row_f32_portable;
  RowF16 f16 = row_f16_portable;
  void (*axis)(float*, int64_t, float, float) = baseline::gaussian_axis;
};

RowFill select_row_fill(SimdLevel level) {
  RowFill fill;
#ifdef POSERT_X86
  if (level == SimdLevel::kAvx512) {
    fill.f32 = row_f32_avx512;
    fill.f16 = row_f16_avx512;
    fill.axis = avx512::gaussian_axis;
  } else if (level == SimdLevel::kAvx2) {
    fill.f32 = row_f32_avx2;
    fill.f16 = row_f16_avx2;
    fill.axis = avx2::gaussian_axis;
  }
#else
  (void)level;
#endif
  return fill;
}

// One table per level, built once; simd_level() is fixed for the process.
const RowFill& row_fill() {
  static const RowFill fill = select_row_fill(simd_level());
  return fill;
}

inline void fill_row(float* row, const float* gx, float fy, int64_t n) { row_fill().f32(row, gx, fy, n); }
inline void fill_row(uint16_t* row, const float* gx, float fy, int64_t n) { row_fill().f16(row, gx, fy, n); }

template <typename T>
void gaussian_channel(T* channel, float kx, float ky, const HeatmapParams& p,
                      std::vector<float>& gx, std::vector<float>& gy) {
  // For a tiny sigma, 2 sigma^2 underflows and inv becomes -inf; the joint's own pixel then
  // computes 0 * -inf = NaN. Clamped to the largest finite value, that pixel gets exp(0) = 1
  // and every other pixel an exponent far below -87 (an exact 0): the limit of the Gaussian.
  const float inv = std::max(-1.0f / (2.0f * p.sigma * p.sigma), -std::numeric_limits<float>::max());
  row_fill().axis(gx.data(), p.width, kx, inv);
  row_fill().axis(gy.data(), p.height, ky, inv);
  for (int64_t y = 0; y < p.height; ++y) {
    T* row = channel + y * p.width;
    const float fy = gy[y];
    if (fy == 0.0f) {
      fill_zero(row, p.width);
      continue;
    }
    fill_row(row, gx.data(), fy, p.width);
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
  // Threads only for outputs of >= 2M elements per thread: below that (two poses at
  // 256 x 176 is 1.6M) a call takes ~0.1 ms on one core, and waking a second thread on a
  // busy machine (capture, ONNX Runtime) can cost more than the whole call.
  const int64_t min_channels = std::max<int64_t>(1, (int64_t{1} << 21) / std::max<int64_t>(plane, 1));
  parallel_for(channels, [&](int64_t begin, int64_t end) {
    // Room for whole 16-lane vectors in the axis tables.
    std::vector<float> gx(static_cast<size_t>((p.width + 15) / 16 * 16));
    std::vector<float> gy(static_cast<size_t>((p.height + 15) / 16 * 16));
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
  }, min_channels);
}

}  // namespace

void heatmaps_cpu(const float* keypoints, float* out, const HeatmapParams& params) {
  heatmaps_impl(keypoints, out, params);
}

void heatmaps_cpu(const float* keypoints, uint16_t* out_half, const HeatmapParams& params) {
  heatmaps_impl(keypoints, out_half, params);
}

}  // namespace posert
