// CPU fused attention (float32, multi-threaded).
//
// Work is split over (batch, 32-query tile). For every tile the keys are visited in tiles of
// 128: scores S = Q K^T for the tile, online-softmax update, then acc += P V. The last step
// is the bulk of the arithmetic (Dv >= Dk), so it gets a register-blocked micro-kernel
// (4 rows x 32 columns of fp32 accumulators). K is pre-packed transposed and V padded to a
// multiple of 32 columns so the inner loops are unit-stride and vectorise.
// The tile routine is compiled for AVX-512, AVX2+FMA and baseline x86-64 and picked at load
// time (GCC target_clones), so one wheel runs everywhere at full speed.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "attention.h"
#include "parallel.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define POSERT_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define POSERT_MULTIVERSION
#endif

namespace posert {
namespace {

constexpr int64_t kTileQ = 32;    // queries per work item
constexpr int64_t kTileK = 128;   // keys per inner tile
constexpr int64_t kBlockR = 4;    // micro-kernel rows
constexpr int64_t kBlockC = 32;   // micro-kernel columns (value dim is padded to this)

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// exp(x) for x <= 0 (softmax arguments), branch-free so the loop vectorises.
// Range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 Taylor: relative error < 2e-7.
// NaN propagates (comparisons against NaN keep NaN; only the exponent part is sanitised).
inline float softmax_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693145751953125f;  // ln2 high part
  r = r - n * 1.42860682030941723e-06f;  // ln2 low part
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float n_safe = (n == n) ? n : 0.0f;
  const int32_t bits = (static_cast<int32_t>(n_safe) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof(two_n));
  return p * two_n;
}

struct Scratch {
  std::vector<float> q, s, acc, m, l;
  Scratch(int64_t dk, int64_t dvp)
      : q(kTileQ * dk), s(kTileQ * kTileK), acc(kTileQ * dvp), m(kTileQ), l(kTileQ) {}
};

// acc[rows, dvp] += P[rows, nk] V[nk, dvp] for `Rows` <= kBlockR rows.
template <int Rows>
inline void pv_block(const float* p, int64_t p_stride, const float* v, int64_t dvp, int64_t nk,
                     float* acc) {
  for (int64_t c0 = 0; c0 < dvp; c0 += kBlockC) {
    float a[Rows][kBlockC];
    for (int r = 0; r < Rows; ++r)
      for (int64_t c = 0; c < kBlockC; ++c) a[r][c] = acc[r * dvp + c0 + c];
    for (int64_t j = 0; j < nk; ++j) {
      const float* vrow = v + j * dvp + c0;
#pragma GCC unroll 4
      for (int r = 0; r < Rows; ++r) {
        const float pr = p[r * p_stride + j];
#pragma GCC unroll 32
        for (int64_t c = 0; c < kBlockC; ++c) a[r][c] += pr * vrow[c];
      }
    }
    for (int r = 0; r < Rows; ++r)
      for (int64_t c = 0; c < kBlockC; ++c) acc[r * dvp + c0 + c] = a[r][c];
  }
}

// One (batch item, query tile). kt: K packed [dk, nk_total]; vp: V packed [nk_total, dvp].
POSERT_MULTIVERSION
void attention_tile(const float* q, const float* kt, const float* vp, float* out, int64_t rows,
                    int64_t nk_total, int64_t dk, int64_t dv, int64_t dvp, float scale,
                    Scratch& scratch) {
  float* qs = scratch.q.data();
  float* s = scratch.s.data();
  float* acc = scratch.acc.data();
  float* m = scratch.m.data();
  float* l = scratch.l.data();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t d = 0; d < dk; ++d) qs[r * dk + d] = q[r * dk + d] * scale;
    m[r] = -std::numeric_limits<float>::infinity();
    l[r] = 0.0f;
  }
  std::memset(acc, 0, sizeof(float) * rows * dvp);

  for (int64_t k0 = 0; k0 < nk_total; k0 += kTileK) {
    const int64_t nk = nk_total - k0 < kTileK ? nk_total - k0 : kTileK;
    // Scores: S[r, c] = sum_d qs[r, d] * K^T[d, k0 + c].
    for (int64_t r = 0; r < rows; ++r) {
      float* srow = s + r * kTileK;
      for (int64_t c = 0; c < nk; ++c) srow[c] = 0.0f;
      for (int64_t d = 0; d < dk; ++d) {
        const float qd = qs[r * dk + d];
        const float* krow = kt + d * nk_total + k0;
        for (int64_t c = 0; c < nk; ++c) srow[c] += qd * krow[c];
      }
    }
    // Online softmax: rescale what was accumulated under the old running max.
    for (int64_t r = 0; r < rows; ++r) {
      float* srow = s + r * kTileK;
      float tile_max = srow[0];
      for (int64_t c = 1; c < nk; ++c) tile_max = srow[c] > tile_max ? srow[c] : tile_max;
      const float m_new = m[r] > tile_max ? m[r] : tile_max;
      const float alpha = std::exp(m[r] - m_new);  // exp(-inf) = 0 on the first tile
      for (int64_t c = 0; c < nk; ++c) srow[c] = softmax_exp(srow[c] - m_new);
      float sum = 0.0f;
      for (int64_t c = 0; c < nk; ++c) sum += srow[c];
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
      if (alpha != 1.0f) {
        float* arow = acc + r * dvp;
        for (int64_t c = 0; c < dvp; ++c) arow[c] *= alpha;
      }
    }
    const float* vtile = vp + k0 * dvp;
    int64_t r = 0;
    for (; r + kBlockR <= rows; r += kBlockR)
      pv_block<kBlockR>(s + r * kTileK, kTileK, vtile, dvp, nk, acc + r * dvp);
    for (; r < rows; ++r) pv_block<1>(s + r * kTileK, kTileK, vtile, dvp, nk, acc + r * dvp);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float inv = 1.0f / l[r];
    for (int64_t c = 0; c < dv; ++c) out[r * dv + c] = acc[r * dvp + c] * inv;
  }
}

}  // namespace

void attention_cpu(const float* q, const float* k, const float* v, float* out,
                   const AttentionParams& p) {
  if (p.batch == 0 || p.queries == 0) return;
  const int64_t dvp = round_up(p.dv, kBlockC);
  // Pack every batch item once: K transposed [dk, Nk], V zero-padded [Nk, dvp].
  std::vector<float> kt(static_cast<size_t>(p.batch * p.dk * p.keys));
  std::vector<float> vp(static_cast<size_t>(p.batch * p.keys * dvp), 0.0f);
  parallel_for(p.batch * p.keys, [&](int64_t begin, int64_t end) {
    for (int64_t bi = begin; bi < end; ++bi) {
      const int64_t b = bi / p.keys, i = bi % p.keys;
      const float* krow = k + bi * p.dk;
      float* ktb = kt.data() + b * p.dk * p.keys;
      for (int64_t d = 0; d < p.dk; ++d) ktb[d * p.keys + i] = krow[d];
      std::memcpy(vp.data() + bi * dvp, v + bi * p.dv, sizeof(float) * p.dv);
    }
  });
  const int64_t tiles = (p.queries + kTileQ - 1) / kTileQ;
  parallel_for(p.batch * tiles, [&](int64_t begin, int64_t end) {
    Scratch scratch(p.dk, dvp);
    for (int64_t w = begin; w < end; ++w) {
      const int64_t b = w / tiles, t = w % tiles;
      const int64_t q0 = t * kTileQ;
      const int64_t rows = p.queries - q0 < kTileQ ? p.queries - q0 : kTileQ;
      attention_tile(q + (b * p.queries + q0) * p.dk, kt.data() + b * p.dk * p.keys,
                     vp.data() + b * p.keys * dvp, out + (b * p.queries + q0) * p.dv, rows,
                     p.keys, p.dk, p.dv, dvp, p.scale, scratch);
    }
  });
}

}  // namespace posert
