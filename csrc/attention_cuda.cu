// CUDA fused attention (float32 or float16 storage, fp32 math): the launcher. The device
// code is attention_kernel.cuh, shared with the TensorRT plugin.
#include "attention.h"
#include "attention_kernel.cuh"

namespace posert {
namespace {

using attention_kernel::kBQ;
using attention_kernel::kThreads;
constexpr int kBK = attention_tiles::kLaunchKeys;  // the launcher raises the smem limit for it

template <typename T, int kBD>
__global__ void __launch_bounds__(kThreads)
attention_fwd_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                     T* __restrict__ out, AttentionParams p) {
  attention_kernel::attention_block<T, kBD, kBK>(q, k, v, out, p);
}

int multiprocessor_count() {
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) return 0;
  return count;
}

template <typename T, int kBD>
cudaError_t launch_typed(const void* q, const void* k, const void* v, void* out,
                         const AttentionParams& p, cudaStream_t stream) {
  const size_t smem = attention_kernel::smem_bytes(p.dk, kBD, kBK);
  auto kernel = attention_fwd_kernel<T, kBD>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem));
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>((p.queries + kBQ - 1) / kBQ),
                  static_cast<unsigned>((p.dv + kBD - 1) / kBD), static_cast<unsigned>(p.batch));
  kernel<<<grid, kThreads, smem, stream>>>(static_cast<const T*>(q), static_cast<const T*>(k),
                                           static_cast<const T*>(v), static_cast<T*>(out), p);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_for_type(const void* q, const void* k, const void* v, void* out,
                            const AttentionParams& p, cudaStream_t stream) {
  // Narrower value splits when the wide ones would leave SMs idle (two blocks per SM).
  const int64_t wide_blocks = p.batch * ((p.queries + kBQ - 1) / kBQ) * ((p.dv + 63) / 64);
  if (wide_blocks < 2 * static_cast<int64_t>(multiprocessor_count()) || p.dv <= 32)
    return launch_typed<T, 32>(q, k, v, out, p, stream);
  return launch_typed<T, 64>(q, k, v, out, p, stream);
}

}  // namespace

cudaError_t launch_attention(const void* q, const void* k, const void* v, void* out, DType dtype,
                             const AttentionParams& params, cudaStream_t stream) {
  if (params.batch == 0 || params.queries == 0 || params.dv == 0) return cudaSuccess;
  if (params.keys == 0 || params.batch > 65535) return cudaErrorInvalidValue;
  if (dtype == DType::kFloat16) return launch_for_type<__half>(q, k, v, out, params, stream);
  return launch_for_type<float>(q, k, v, out, params, stream);
}

}  // namespace posert
