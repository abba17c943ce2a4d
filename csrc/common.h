// Shared definitions of the pyposert native core. Framework-free: raw pointers, sizes and
// (for CUDA) a stream. Validation of user input happens once, in bindings.cpp; the kernels
// assume validated arguments and never abort.
#pragma once

#include <cstdint>

// Small helpers that the CUDA kernels and the host code share (sizes, strides, tile maths).
#ifdef __CUDACC__
#define POSERT_HOST_DEVICE __host__ __device__
#else
#define POSERT_HOST_DEVICE
#endif

namespace posert {

// Element type of a float tensor crossing the boundary (keypoints are always float32).
enum class DType : int { kFloat32 = 0, kFloat16 = 1 };

// IEEE-754 binary16 <-> binary32 conversion for the CPU paths (round to nearest even,
// overflow to inf, NaN kept). Bit-exact with numpy's astype(np.float16).
inline uint16_t float_to_half(float value) {
  uint32_t x;
  __builtin_memcpy(&x, &value, sizeof(x));
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) {  // rounds to >= 65520: overflow to inf
    return static_cast<uint16_t>(sign | 0x7c00u);
  }
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25 rounds to 0
    const uint32_t exponent = abs >> 23;
    const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - exponent;  // 14..24 -> value = mantissa >> (shift - 0)
    const uint32_t rounded = mantissa >> shift;
    const uint32_t remainder = mantissa & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1u);
    uint32_t result = rounded;
    if (remainder > halfway || (remainder == halfway && (rounded & 1u))) ++result;
    return static_cast<uint16_t>(sign | result);
  }
  // Normal: rebias exponent, round mantissa 23 -> 10 bits to nearest even.
  uint32_t half = ((abs - 0x38000000u) >> 13);
  const uint32_t remainder = abs & 0x1fffu;
  if (remainder > 0x1000u || (remainder == 0x1000u && (half & 1u))) ++half;
  return static_cast<uint16_t>(sign | half);
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t x;
  if (exponent == 0x1fu) {
    x = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent == 0) {
    if (mantissa == 0) {
      x = sign;
    } else {  // subnormal half -> normal float
      exponent = 113;
      while ((mantissa & 0x400u) == 0) {
        mantissa <<= 1;
        --exponent;
      }
      x = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
    }
  } else {
    x = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  }
  float value;
  __builtin_memcpy(&value, &x, sizeof(value));
  return value;
}

// Worker threads used by the CPU kernels (0 = the OpenMP default, i.e. all cores).
void set_num_threads(int n);
int get_num_threads();

}  // namespace posert
