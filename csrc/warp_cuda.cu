// CUDA warp: the launcher. The device code is warp_kernel.cuh, shared with the TensorRT plugin.
#include "warp.h"
#include "warp_kernel.cuh"

namespace posert {
namespace {

using warp_kernel::kThreads;

template <typename T>
__global__ void __launch_bounds__(kThreads)
warp_fwd_kernel(const T* __restrict__ image, const float* __restrict__ source_keypoints,
                const float* __restrict__ target_keypoints, T* __restrict__ out, T* __restrict__ coverage,
                WarpParams p) {
  warp_kernel::warp_block<T>(image, source_keypoints, target_keypoints, out, coverage, p);
}

}  // namespace

cudaError_t launch_warp(const void* image, const float* source_keypoints, const float* target_keypoints,
                        void* out, void* coverage, DType dtype, const WarpParams& params,
                        cudaStream_t stream) {
  const int64_t plane = params.height * params.width;
  if (plane == 0 || params.batch == 0) return cudaSuccess;
  const dim3 block(kThreads);
  const dim3 grid(static_cast<unsigned>((plane + kThreads - 1) / kThreads), static_cast<unsigned>(params.batch));
  if (dtype == DType::kFloat16) {
    warp_fwd_kernel<__half><<<grid, block, 0, stream>>>(static_cast<const __half*>(image), source_keypoints,
                                                        target_keypoints, static_cast<__half*>(out),
                                                        static_cast<__half*>(coverage), params);
  } else {
    warp_fwd_kernel<float><<<grid, block, 0, stream>>>(static_cast<const float*>(image), source_keypoints,
                                                       target_keypoints, static_cast<float*>(out),
                                                       static_cast<float*>(coverage), params);
  }
  return cudaGetLastError();
}

}  // namespace posert
