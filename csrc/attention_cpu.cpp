// CPU fused attention (float32, multi-threaded).
//
// Work is split over (batch, 32-query tile). For every tile the keys are visited in tiles of
// 128: scores S = Q K^T for the tile, online-softmax update, then acc += P V. The last step
// is the bulk of the arithmetic (Dv >= Dk), so it gets a register-blocked micro-kernel
// (rows x 32 columns of fp32 accumulators, as many rows as the ISA's registers hold). K is pre-packed transposed and V padded to a
// multiple of 32 columns so the inner loops are unit-stride and vectorise.
// The tile routine (attention_cpu_tile.inc) is compiled for AVX-512, AVX2+FMA and baseline
// x86-64 and picked at run time from the CPU's features (simd.h; POSERT_SIMD forces a level),
// so one wheel runs everywhere at full speed. (GCC's target_clones("arch=x86-64-v4") is not
// used: its resolver matches CPU model names, and picks the baseline clone on CPUs it does
// not know, e.g. AMD EPYC.)
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "attention.h"
#include "parallel.h"
#include "simd.h"


namespace posert {
namespace {

constexpr int64_t kTileQ = 32;    // queries per work item
constexpr int64_t kTileK = 128;   // keys per inner tile
constexpr int64_t kBlockC = 32;   // micro-kernel columns (the value dim is padded to this)

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

struct Scratch {
  std::vector<float> s, acc, m, l;
  explicit Scratch(int64_t dvp) : s(kTileQ * kTileK), acc(kTileQ * dvp), m(kTileQ), l(kTileQ) {}
};

namespace baseline {
#include "attention_cpu_tile.inc"
}  // namespace baseline

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace avx2 {
#include "attention_cpu_tile.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")
namespace avx512 {
#include "attention_cpu_tile.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif

using TileFn = void (*)(const float*, int64_t, const float*, const float*, float*, int64_t, int64_t, int64_t,
                        int64_t, int64_t, int64_t, int64_t, float, Scratch&);

}  // namespace

void attention_cpu(const float* q, const float* k, const float* v, float* out,
                   const AttentionParams& p) {
  if (p.batch == 0 || p.queries == 0) return;
  const int64_t dvp = round_up(p.dv, kBlockC);
  const int64_t nk_pad = round_up(p.keys, kTileK);
  // Pack every batch item once: K transposed [dk, nk_pad] (zero-padded keys, so score
  // tiles are always full vectors), V with columns zero-padded to [Nk, dvp].
  std::vector<float> kt(static_cast<size_t>(p.batch * p.dk * nk_pad), 0.0f);
  std::vector<float> vp(static_cast<size_t>(p.batch * p.keys * dvp), 0.0f);
  // The packing is also where K's and V's strides are absorbed.
  parallel_for(p.batch * p.keys, [&](int64_t begin, int64_t end) {
    for (int64_t bi = begin; bi < end; ++bi) {
      const int64_t b = bi / p.keys, i = bi % p.keys;
      const float* krow = k + b * p.k_strides.batch + i * p.k_strides.row;
      float* ktb = kt.data() + b * p.dk * nk_pad;
      for (int64_t d = 0; d < p.dk; ++d) ktb[d * nk_pad + i] = krow[d];
      std::memcpy(vp.data() + bi * dvp, v + b * p.v_strides.batch + i * p.v_strides.row, sizeof(float) * p.dv);
    }
  });
  static const TileFn tile = POSERT_SIMD_VARIANT(attention_tile);
  const int64_t tiles = (p.queries + kTileQ - 1) / kTileQ;
  // A work item is one query tile against all keys; give a thread at least ~4 MFLOP.
  const int64_t flops_per_tile = 2 * kTileQ * p.keys * (p.dk + p.dv);
  const int64_t min_tiles = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(flops_per_tile, 1));
  parallel_for(p.batch * tiles, [&](int64_t begin, int64_t end) {
    Scratch scratch(dvp);
    for (int64_t w = begin; w < end; ++w) {
      const int64_t b = w / tiles, t = w % tiles;
      const int64_t q0 = t * kTileQ;
      const int64_t rows = p.queries - q0 < kTileQ ? p.queries - q0 : kTileQ;
      tile(q + b * p.q_strides.batch + q0 * p.q_strides.row, p.q_strides.row, kt.data() + b * p.dk * nk_pad,
           vp.data() + b * p.keys * dvp, out + b * p.out_strides.batch + q0 * p.out_strides.row,
           p.out_strides.row, rows, p.keys, nk_pad, p.dk, p.dv, dvp, p.scale, scratch);
    }
  }, min_tiles);
}

}  // namespace posert
