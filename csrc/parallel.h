// Minimal CPU parallelism for the kernels: split [0, n) into contiguous chunks and run
// them on the OpenMP team (or serially when built without OpenMP). The body never throws.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef POSERT_WITH_OPENMP
#include <omp.h>
#endif

#include "common.h"

namespace posert {

template <typename Body>
void parallel_for(int64_t n, const Body& body) {
  if (n <= 0) return;
#ifdef POSERT_WITH_OPENMP
  const int64_t threads = std::min<int64_t>(get_num_threads(), n);
  if (threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(static_cast<int>(threads))
    {
      const int64_t t = omp_get_thread_num(), count = omp_get_num_threads();
      const int64_t begin = n * t / count, end = n * (t + 1) / count;
      if (begin < end) body(begin, end);
    }
    return;
  }
#endif
  body(0, n);
}

}  // namespace posert
