// CPU imageproc: two separable passes (rows, then columns) with precomputed tap tables.
#include <algorithm>
#include <cmath>
#include <vector>

#include "imageproc.h"
#include "parallel.h"
#include "resample.h"

namespace posert {
namespace {

// Normalised taps of one axis: for output o, weights[o * max_taps + t] applies to input
// index first[o] + t, for t < count[o].
struct TapTable {
  std::vector<int64_t> first, count;
  std::vector<float> weights;
  int64_t max_taps = 0;

  explicit TapTable(const ResampleAxis& axis) : first(axis.out_size), count(axis.out_size) {
    for (int64_t o = 0; o < axis.out_size; ++o) {
      int64_t lo, hi;
      axis.taps(o, &lo, &hi);
      first[o] = lo;
      count[o] = hi - lo + 1;
      max_taps = std::max(max_taps, count[o]);
    }
    weights.assign(static_cast<size_t>(axis.out_size * max_taps), 0.0f);
    for (int64_t o = 0; o < axis.out_size; ++o) {
      float sum = 0.0f;
      for (int64_t t = 0; t < count[o]; ++t) sum += axis.weight(first[o] + t, o);
      for (int64_t t = 0; t < count[o]; ++t)
        weights[o * max_taps + t] = axis.weight(first[o] + t, o) / sum;
    }
  }
};

// Rows per thread so that each thread gets >= 256K values: smaller jobs run on the calling
// thread (waking a second one on a busy machine can cost more than the job).
inline int64_t min_rows(int64_t values_per_row) {
  return std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(values_per_row, 1));
}

inline void store(float* dst, float v) { *dst = v; }
inline void store(uint16_t* dst, float v) { *dst = float_to_half(v); }
inline float load(const float* src) { return *src; }
inline float load(const uint16_t* src) { return half_to_float(*src); }

template <typename T>
void to_model_input_impl(const uint8_t* image, T* out, const ToModelInputParams& p) {
  const Letterbox& b = p.box;
  const int64_t plane = b.dst_height * b.dst_width;
  const ResampleAxis ax{0, b.src_width, b.box_width}, ay{0, b.src_height, b.box_height};
  const TapTable tx(ax), ty(ay);
  // Horizontal pass over the source rows the vertical taps touch: tmp[y][X][c], RGB order.
  const int64_t y_first = ty.first.front();
  const int64_t y_last = ty.first.back() + ty.count.back() - 1;
  const int64_t rows = y_last - y_first + 1;
  std::vector<float> tmp(static_cast<size_t>(rows * b.box_width * 3));
  const int c0 = p.bgr ? 2 : 0, c2 = p.bgr ? 0 : 2;  // source channel feeding R and B
  parallel_for(rows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const uint8_t* src = image + (y_first + r) * p.src_row_stride;
      float* dst = tmp.data() + r * b.box_width * 3;
      for (int64_t X = 0; X < b.box_width; ++X) {
        const float* w = tx.weights.data() + X * tx.max_taps;
        const uint8_t* px = src + tx.first[X] * 3;
        float red = 0.0f, green = 0.0f, blue = 0.0f;
        for (int64_t t = 0; t < tx.count[X]; ++t) {
          red += w[t] * px[3 * t + c0];
          green += w[t] * px[3 * t + 1];
          blue += w[t] * px[3 * t + c2];
        }
        dst[3 * X] = red;
        dst[3 * X + 1] = green;
        dst[3 * X + 2] = blue;
      }
    }
  }, min_rows(b.box_width * 3));
  // Vertical pass into the model frame; letterbox bars get the pad value.
  parallel_for(b.dst_height, [&](int64_t begin, int64_t end) {
    for (int64_t Y = begin; Y < end; ++Y) {
      const int64_t yb = Y - b.box_y;
      for (int64_t X = 0; X < b.dst_width; ++X) {
        const int64_t xb = X - b.box_x;
        const bool inside = yb >= 0 && yb < b.box_height && xb >= 0 && xb < b.box_width;
        for (int c = 0; c < 3; ++c) {
          float v = p.pad_value;
          if (inside) {
            const float* w = ty.weights.data() + yb * ty.max_taps;
            const float* col = tmp.data() + ((ty.first[yb] - y_first) * b.box_width + xb) * 3 + c;
            float acc = 0.0f;
            for (int64_t t = 0; t < ty.count[yb]; ++t) acc += w[t] * col[t * b.box_width * 3];
            v = u8_to_unit(acc);
          }
          store(out + c * plane + Y * b.dst_width + X, v);
        }
      }
    }
  }, min_rows(b.dst_width * 3));
}

template <typename T>
void from_model_output_impl(const T* in, uint8_t* out, const FromModelOutputParams& p) {
  const Letterbox& b = p.box;
  const int64_t plane = b.dst_height * b.dst_width;
  const int r_out = p.bgr ? 2 : 0, b_out = p.bgr ? 0 : 2;  // where R and B land
  if (!p.unletterbox) {
    parallel_for(b.dst_height, [&](int64_t begin, int64_t end) {
      for (int64_t Y = begin; Y < end; ++Y) {
        for (int64_t X = 0; X < b.dst_width; ++X) {
          const int64_t i = Y * b.dst_width + X;
          uint8_t* px = out + i * 3;
          px[r_out] = unit_to_u8(load(in + i));
          px[1] = unit_to_u8(load(in + plane + i));
          px[b_out] = unit_to_u8(load(in + 2 * plane + i));
        }
      }
    }, min_rows(b.dst_width * 3));
    return;
  }
  const ResampleAxis ax{b.box_x, b.box_width, b.src_width}, ay{b.box_y, b.box_height, b.src_height};
  const TapTable tx(ax), ty(ay);
  // Horizontal pass over the content rows: tmp[c][Y - box_y][x].
  const int64_t rows = b.box_height;
  std::vector<float> tmp(static_cast<size_t>(3 * rows * b.src_width));
  parallel_for(3 * rows, [&](int64_t begin, int64_t end) {
    for (int64_t cr = begin; cr < end; ++cr) {
      const int64_t c = cr / rows, r = cr % rows;
      const T* src = in + c * plane + (b.box_y + r) * b.dst_width;
      float* dst = tmp.data() + cr * b.src_width;
      for (int64_t x = 0; x < b.src_width; ++x) {
        const float* w = tx.weights.data() + x * tx.max_taps;
        float acc = 0.0f;
        for (int64_t t = 0; t < tx.count[x]; ++t) acc += w[t] * load(src + tx.first[x] + t);
        dst[x] = acc;
      }
    }
  }, min_rows(b.src_width));
  parallel_for(b.src_height, [&](int64_t begin, int64_t end) {
    for (int64_t y = begin; y < end; ++y) {
      const float* w = ty.weights.data() + y * ty.max_taps;
      const int64_t r0 = ty.first[y] - b.box_y;
      for (int64_t x = 0; x < b.src_width; ++x) {
        float rgb[3];
        for (int c = 0; c < 3; ++c) {
          const float* col = tmp.data() + (c * rows + r0) * b.src_width + x;
          float acc = 0.0f;
          for (int64_t t = 0; t < ty.count[y]; ++t) acc += w[t] * col[t * b.src_width];
          rgb[c] = acc;
        }
        uint8_t* px = out + (y * b.src_width + x) * 3;
        px[r_out] = unit_to_u8(rgb[0]);
        px[1] = unit_to_u8(rgb[1]);
        px[b_out] = unit_to_u8(rgb[2]);
      }
    }
  }, min_rows(b.src_width * 3));
}

}  // namespace

Letterbox make_letterbox(int64_t src_height, int64_t src_width, int64_t dst_height,
                         int64_t dst_width) {
  Letterbox b;
  b.src_height = src_height;
  b.src_width = src_width;
  b.dst_height = dst_height;
  b.dst_width = dst_width;
  const double scale = std::min(static_cast<double>(dst_height) / static_cast<double>(src_height),
                                static_cast<double>(dst_width) / static_cast<double>(src_width));
  b.box_width = std::clamp<int64_t>(std::llround(src_width * scale), 1, dst_width);
  b.box_height = std::clamp<int64_t>(std::llround(src_height * scale), 1, dst_height);
  b.box_x = (dst_width - b.box_width) / 2;
  b.box_y = (dst_height - b.box_height) / 2;
  return b;
}

void to_model_input_cpu(const uint8_t* image, float* out, const ToModelInputParams& params) {
  to_model_input_impl(image, out, params);
}
void to_model_input_cpu(const uint8_t* image, uint16_t* out_half, const ToModelInputParams& params) {
  to_model_input_impl(image, out_half, params);
}
void from_model_output_cpu(const float* in, uint8_t* out, const FromModelOutputParams& params) {
  from_model_output_impl(in, out, params);
}
void from_model_output_cpu(const uint16_t* in_half, uint8_t* out, const FromModelOutputParams& params) {
  from_model_output_impl(in_half, out, params);
}

}  // namespace posert
