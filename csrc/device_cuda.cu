// Device queries for build_info()/cuda_available(); the only place that asks the driver
// what is present, so a machine without a GPU gets a reason instead of a crash.
#include <cuda_runtime_api.h>

#include <string>

#include "device.h"

namespace posert {

DeviceStatus cuda_device_status() {
  DeviceStatus status;
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  status.runtime_version = runtime;
  status.driver_version = driver;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    status.reason = driver == 0 ? std::string("no CUDA device: no NVIDIA driver was found (libcuda)")
                                : std::string("no CUDA device: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error so later queries start clean
    return status;
  }
  if (count == 0) {
    status.reason = "no CUDA device: the driver reports 0 devices";
    return status;
  }
  status.device_count = count;
  int device = 0;
  cudaGetDevice(&device);
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
    status.device_name = prop.name;
    status.compute_capability = prop.major * 10 + prop.minor;
  }
  return status;
}

const char* cuda_error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // namespace posert
