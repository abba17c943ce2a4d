// pyposert::Warp as a TensorRT ahead-of-time plugin kernel (compiled to PTX, embedded in the
// engine).
//
// TensorRT launches an AOT plugin kernel with (inputs..., int32 scalars..., outputs...), one
// launch per plugin call, so these entry points take raw pointers and int32 sizes and build
// csrc's WarpParams from them; the batch is the grid's y extent. The kernel body is csrc's
// (csrc/warp_kernel.cuh, warp_block): every block fits its batch item's ten parts into static
// shared memory, then one thread per output pixel composites the parts front to back.
//
// Grid: (ceil(H*W / 256), B); block 256; no dynamic shared memory.
#include <cuda_fp16.h>

#include <cstdint>

#include "warp.h"
#include "warp_kernel.cuh"

namespace {

using posert::warp_kernel::kThreads;

template <typename T>
__device__ __forceinline__ void run(const T* image, const float* source, const float* target, int channels,
                                    int src_height, int src_width, int height, int width, T* out, T* coverage) {
  const posert::WarpParams p{gridDim.y, channels, src_height, src_width, height, width};  // B, C, Hs, Ws, H, W
  posert::warp_kernel::warp_block<T>(image, source, target, out, coverage, p);
}

}  // namespace

// Entry points: pyposert_warp_<f32|f16>. Scalars: C, Hs, Ws, H, W.
#define POSERT_WARP_ENTRY(NAME, T)                                                                      \
  extern "C" __global__ void __launch_bounds__(kThreads)                                               \
  NAME(const T* __restrict__ image, const float* __restrict__ source, const float* __restrict__ target, \
       int channels, int src_height, int src_width, int height, int width, T* __restrict__ out,        \
       T* __restrict__ coverage) {                                                                     \
    run<T>(image, source, target, channels, src_height, src_width, height, width, out, coverage);       \
  }

POSERT_WARP_ENTRY(pyposert_warp_f32, float)
POSERT_WARP_ENTRY(pyposert_warp_f16, __half)
