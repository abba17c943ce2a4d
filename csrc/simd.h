// Run-time choice of the CPU kernels' instruction set.
//
// Every CPU kernel with SIMD variants (heatmaps, attention) asks simd_level() which one to
// run. By default that is the best level this CPU supports. The environment variable
// POSERT_SIMD=baseline|avx2|avx512, read once at the first call, forces a level, so the
// tests can run every path the CPU has against the portable one. A request the CPU cannot
// honour (or a misspelt one) is not silently downgraded: simd_status().error says why, and
// the bindings raise it as a Python error before any kernel runs.
#pragma once

namespace posert {

enum class SimdLevel : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

struct SimdStatus {
  SimdLevel supported = SimdLevel::kBaseline;  // best level this CPU (and build) can run
  SimdLevel active = SimdLevel::kBaseline;     // level the kernels run
  bool forced = false;                         // POSERT_SIMD was set (and valid)
  const char* error = nullptr;                 // non-null: POSERT_SIMD is invalid or unsupported
};

// Computed once (thread-safe static initialisation); never throws.
const SimdStatus& simd_status();
inline SimdLevel simd_level() { return simd_status().active; }
const char* simd_name(SimdLevel level);

// The variant for `level` of something compiled once per ISA.
template <typename T>
T simd_pick(SimdLevel level, T baseline, T avx2, T avx512) {
  return level == SimdLevel::kAvx512 ? avx512 : (level == SimdLevel::kAvx2 ? avx2 : baseline);
}

}  // namespace posert

// The variant of `name` for simd_level(), where the kernel file compiled `name` in the
// namespaces baseline, avx2 and avx512 (x86-64; elsewhere only baseline exists).
#if defined(__x86_64__) && defined(__GNUC__)
#define POSERT_SIMD_VARIANT(name) \
  ::posert::simd_pick(::posert::simd_level(), baseline::name, avx2::name, avx512::name)
#else
#define POSERT_SIMD_VARIANT(name) (baseline::name)
#endif
