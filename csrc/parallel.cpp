#include <atomic>

#include "parallel.h"

namespace posert {
namespace {
std::atomic<int> g_num_threads{0};
}

void set_num_threads(int n) { g_num_threads.store(n > 0 ? n : 0); }

int get_num_threads() {
  const int n = g_num_threads.load();
  if (n > 0) return n;
#ifdef POSERT_WITH_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace posert
