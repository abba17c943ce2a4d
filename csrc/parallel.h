// Minimal CPU parallelism for the kernels: run body(begin, end) over chunks of [0, n) on the
// OpenMP team (serially without OpenMP, or inside another parallel region).
//
// Chunks are handed out dynamically (an atomic counter, ~8 chunks per thread) rather than
// split statically: on a busy machine one of our threads may be descheduled for a whole
// time slice, and with static halves the call would wait for it; with small chunks the
// running threads take over its share. The body never throws.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#ifdef POSERT_WITH_OPENMP
#include <omp.h>
#endif

#include "common.h"

namespace posert {

// `min_chunk`: the smallest piece worth a thread (in units of the index range).
template <typename Body>
void parallel_for(int64_t n, const Body& body, int64_t min_chunk = 1) {
  if (n <= 0) return;
#ifdef POSERT_WITH_OPENMP
  const int64_t max_threads = std::min<int64_t>(get_num_threads(), n / std::max<int64_t>(min_chunk, 1));
  if (max_threads > 1 && !omp_in_parallel()) {
    const int64_t chunk = std::max<int64_t>(min_chunk, n / (8 * max_threads));
    std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(static_cast<int>(max_threads))
    {
      for (;;) {
        const int64_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
        if (begin >= n) break;
        body(begin, std::min(n, begin + chunk));
      }
    }
    return;
  }
#endif
  body(0, n);
}

}  // namespace posert
