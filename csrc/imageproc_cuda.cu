// CUDA imageproc: one thread per output pixel; the separable taps are evaluated on the fly
// (the same ResampleAxis as the CPU path, so both use identical weights).
#include <cuda_fp16.h>

#include "imageproc.h"
#include "resample.h"

namespace posert {
namespace {

constexpr int kBlockX = 32, kBlockY = 8;

__device__ __forceinline__ void store(float* dst, float v) { *dst = v; }
__device__ __forceinline__ void store(__half* dst, float v) { *dst = __float2half_rn(v); }
__device__ __forceinline__ float load(const float* src) { return *src; }
__device__ __forceinline__ float load(const __half* src) { return __half2float(*src); }

__device__ __forceinline__ float weight_sum(const ResampleAxis& axis, int64_t o, int64_t lo, int64_t hi) {
  float sum = 0.0f;
  for (int64_t i = lo; i <= hi; ++i) sum += axis.weight(i, o);
  return sum;
}

template <typename T>
__global__ void to_model_input_kernel(const uint8_t* __restrict__ image, T* __restrict__ out,
                                      ToModelInputParams p) {
  const Letterbox& b = p.box;
  const int64_t X = static_cast<int64_t>(blockIdx.x) * kBlockX + threadIdx.x;
  const int64_t Y = static_cast<int64_t>(blockIdx.y) * kBlockY + threadIdx.y;
  if (X >= b.dst_width || Y >= b.dst_height) return;
  const int64_t plane = b.dst_height * b.dst_width;
  T* dst = out + Y * b.dst_width + X;
  const int64_t xb = X - b.box_x, yb = Y - b.box_y;
  if (xb < 0 || xb >= b.box_width || yb < 0 || yb >= b.box_height) {
    for (int c = 0; c < 3; ++c) store(dst + c * plane, p.pad_value);
    return;
  }
  const ResampleAxis ax{0, b.src_width, b.box_width}, ay{0, b.src_height, b.box_height};
  int64_t x_lo, x_hi, y_lo, y_hi;
  ax.taps(xb, &x_lo, &x_hi);
  ay.taps(yb, &y_lo, &y_hi);
  const float norm = 1.0f / (weight_sum(ax, xb, x_lo, x_hi) * weight_sum(ay, yb, y_lo, y_hi));
  float rgb[3] = {0.0f, 0.0f, 0.0f};
  const int c_red = p.bgr ? 2 : 0, c_blue = p.bgr ? 0 : 2;
  for (int64_t y = y_lo; y <= y_hi; ++y) {
    const float wy = ay.weight(y, yb);
    if (wy == 0.0f) continue;
    const uint8_t* src_row = image + y * p.src_row_stride;
    for (int64_t x = x_lo; x <= x_hi; ++x) {
      const float w = wy * ax.weight(x, xb);
      const uint8_t* px = src_row + 3 * x;
      rgb[0] = fmaf(w, static_cast<float>(px[c_red]), rgb[0]);
      rgb[1] = fmaf(w, static_cast<float>(px[1]), rgb[1]);
      rgb[2] = fmaf(w, static_cast<float>(px[c_blue]), rgb[2]);
    }
  }
  for (int c = 0; c < 3; ++c) store(dst + c * plane, u8_to_unit(rgb[c] * norm));
}

template <typename T>
__global__ void from_model_output_kernel(const T* __restrict__ in, uint8_t* __restrict__ out,
                                         FromModelOutputParams p) {
  const Letterbox& b = p.box;
  const int64_t out_w = p.unletterbox ? b.src_width : b.dst_width;
  const int64_t out_h = p.unletterbox ? b.src_height : b.dst_height;
  const int64_t x = static_cast<int64_t>(blockIdx.x) * kBlockX + threadIdx.x;
  const int64_t y = static_cast<int64_t>(blockIdx.y) * kBlockY + threadIdx.y;
  if (x >= out_w || y >= out_h) return;
  const int64_t plane = b.dst_height * b.dst_width;
  float rgb[3];
  if (!p.unletterbox) {
    for (int c = 0; c < 3; ++c) rgb[c] = load(in + c * plane + y * b.dst_width + x);
  } else {
    const ResampleAxis ax{b.box_x, b.box_width, b.src_width}, ay{b.box_y, b.box_height, b.src_height};
    int64_t x_lo, x_hi, y_lo, y_hi;
    ax.taps(x, &x_lo, &x_hi);
    ay.taps(y, &y_lo, &y_hi);
    const float norm = 1.0f / (weight_sum(ax, x, x_lo, x_hi) * weight_sum(ay, y, y_lo, y_hi));
    rgb[0] = rgb[1] = rgb[2] = 0.0f;
    for (int64_t Y = y_lo; Y <= y_hi; ++Y) {
      const float wy = ay.weight(Y, y);
      if (wy == 0.0f) continue;
      for (int64_t X = x_lo; X <= x_hi; ++X) {
        const float w = wy * ax.weight(X, x);
        const int64_t i = Y * b.dst_width + X;
        for (int c = 0; c < 3; ++c) rgb[c] = fmaf(w, load(in + c * plane + i), rgb[c]);
      }
    }
    for (int c = 0; c < 3; ++c) rgb[c] *= norm;
  }
  uint8_t* px = out + (y * out_w + x) * 3;
  px[p.bgr ? 2 : 0] = unit_to_u8(rgb[0]);
  px[1] = unit_to_u8(rgb[1]);
  px[p.bgr ? 0 : 2] = unit_to_u8(rgb[2]);
}

dim3 grid_for(int64_t width, int64_t height) {
  return dim3(static_cast<unsigned>((width + kBlockX - 1) / kBlockX),
              static_cast<unsigned>((height + kBlockY - 1) / kBlockY));
}

}  // namespace

cudaError_t launch_to_model_input(const uint8_t* image, void* out, DType dtype,
                                  const ToModelInputParams& params, cudaStream_t stream) {
  const Letterbox& b = params.box;
  if (b.dst_width == 0 || b.dst_height == 0) return cudaSuccess;
  const dim3 block(kBlockX, kBlockY), grid = grid_for(b.dst_width, b.dst_height);
  if (dtype == DType::kFloat16) {
    to_model_input_kernel<__half><<<grid, block, 0, stream>>>(image, static_cast<__half*>(out), params);
  } else {
    to_model_input_kernel<float><<<grid, block, 0, stream>>>(image, static_cast<float*>(out), params);
  }
  return cudaGetLastError();
}

cudaError_t launch_from_model_output(const void* in, DType dtype, uint8_t* out,
                                     const FromModelOutputParams& params, cudaStream_t stream) {
  const Letterbox& b = params.box;
  const int64_t w = params.unletterbox ? b.src_width : b.dst_width;
  const int64_t h = params.unletterbox ? b.src_height : b.dst_height;
  if (w == 0 || h == 0) return cudaSuccess;
  const dim3 block(kBlockX, kBlockY), grid = grid_for(w, h);
  if (dtype == DType::kFloat16) {
    from_model_output_kernel<__half><<<grid, block, 0, stream>>>(static_cast<const __half*>(in), out, params);
  } else {
    from_model_output_kernel<float><<<grid, block, 0, stream>>>(static_cast<const float*>(in), out, params);
  }
  return cudaGetLastError();
}

}  // namespace posert
