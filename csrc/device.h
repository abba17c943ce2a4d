// What CUDA this process can use (only meaningful in a CUDA build).
#pragma once

#include <string>

namespace posert {

struct DeviceStatus {
  int device_count = 0;
  int runtime_version = 0;  // e.g. 13000
  int driver_version = 0;   // 0 when no driver is installed
  int compute_capability = 0;  // of the current device, e.g. 90
  std::string device_name;
  std::string reason;  // why no device is usable (empty when one is)
};

#ifdef POSERT_WITH_CUDA
DeviceStatus cuda_device_status();
const char* cuda_error_string(int code);
#endif

}  // namespace posert
