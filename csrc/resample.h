// Separable antialiased resampling taps, shared by the CPU and CUDA imageproc kernels so
// both compute identical weights (see imageproc.h for the convention).
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define POSERT_HD __host__ __device__ __forceinline__
#else
#define POSERT_HD inline
#endif

namespace posert {

// One axis: output pixels [0, out_size) sample input pixels [start, start + in_size).
struct ResampleAxis {
  int64_t start = 0;
  int64_t in_size = 1;
  int64_t out_size = 1;

  POSERT_HD float ratio() const { return static_cast<float>(in_size) / static_cast<float>(out_size); }
  POSERT_HD float support() const { return ratio() > 1.0f ? ratio() : 1.0f; }
  POSERT_HD float center(int64_t out_index) const {
    return static_cast<float>(start) + (static_cast<float>(out_index) + 0.5f) * ratio();
  }
  // Inclusive input index range that can have non-zero weight for output `out_index`.
  POSERT_HD void taps(int64_t out_index, int64_t* first, int64_t* last) const {
    const float c = center(out_index), s = support();
    int64_t lo = static_cast<int64_t>(floorf(c - s));
    int64_t hi = static_cast<int64_t>(ceilf(c + s));
    const int64_t end = start + in_size - 1;
    lo = lo < start ? start : lo;
    hi = hi > end ? end : hi;
    // Drop zero-weight end taps: 0 * NaN would otherwise leak a NaN into its neighbours.
    while (lo < hi && weight(lo, out_index) == 0.0f) ++lo;
    while (hi > lo && weight(hi, out_index) == 0.0f) --hi;
    *first = lo;
    *last = hi;
  }
  // Unnormalised triangle weight of input pixel i (centre at i + 0.5) for output `out_index`.
  POSERT_HD float weight(int64_t i, int64_t out_index) const {
    const float d = fabsf(static_cast<float>(i) + 0.5f - center(out_index)) / support();
    return d < 1.0f ? 1.0f - d : 0.0f;
  }
};

// uint8 value -> [-1, 1].
POSERT_HD float u8_to_unit(float v) { return v * (2.0f / 255.0f) - 1.0f; }

// [-1, 1] -> uint8 with round-half-up, clamping, NaN -> 0.
POSERT_HD uint8_t unit_to_u8(float v) {
  float t = (v + 1.0f) * 127.5f + 0.5f;
  t = t > 0.0f ? t : 0.0f;  // NaN compares false -> 0
  t = t < 255.0f ? t : 255.0f;
  return static_cast<uint8_t>(floorf(t));
}

}  // namespace posert
