#include "simd.h"

#include <cstdlib>
#include <cstring>

namespace posert {
namespace {

SimdLevel cpu_level() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  // The exact feature sets the AVX-512 / AVX2 kernels are compiled for (see the target
  // pragmas in heatmaps_cpu.cpp and attention_cpu.cpp).
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return SimdLevel::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return SimdLevel::kAvx2;
#endif
  return SimdLevel::kBaseline;
}

SimdStatus make_status() {
  SimdStatus s;
  s.supported = cpu_level();
  s.active = s.supported;
  const char* request = std::getenv("POSERT_SIMD");
  if (request == nullptr || request[0] == '\0') return s;
  SimdLevel wanted;
  if (std::strcmp(request, "baseline") == 0) {
    wanted = SimdLevel::kBaseline;
  } else if (std::strcmp(request, "avx2") == 0) {
    wanted = SimdLevel::kAvx2;
  } else if (std::strcmp(request, "avx512") == 0) {
    wanted = SimdLevel::kAvx512;
  } else {
    s.error = "POSERT_SIMD must be one of baseline, avx2, avx512 (or unset for the best this CPU has)";
    return s;
  }
  if (static_cast<int>(wanted) > static_cast<int>(s.supported)) {
    s.error = wanted == SimdLevel::kAvx512
                  ? "POSERT_SIMD=avx512 asks for AVX-512 (F, BW, VL, DQ), which this CPU does not have"
                  : "POSERT_SIMD=avx2 asks for AVX2 + FMA + F16C, which this CPU does not have";
    return s;
  }
  s.active = wanted;
  s.forced = true;
  return s;
}

}  // namespace

const SimdStatus& simd_status() {
  static const SimdStatus status = make_status();
  return status;
}

const char* simd_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512: return "avx512";
    case SimdLevel::kAvx2: return "avx2";
    case SimdLevel::kBaseline: break;
  }
  return "baseline";
}

}  // namespace posert
