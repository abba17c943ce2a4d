// imageproc: camera/photo pixels <-> network tensors, both directions, with an
// aspect-preserving letterbox.
//
// Forward (to_model_input): uint8 [h, w, 3] (BGR or RGB, rows may be padded) ->
//   float [3, H, W] RGB in [-1, 1]. The image is resampled into the content box
//   (box_x, box_y, box_width, box_height) of the model frame; the rest is `pad_value`.
// Inverse (from_model_output): float [3, H, W] RGB in [-1, 1] -> uint8 HWC (BGR or RGB),
//   either at the model size or un-letterboxed: the content box resampled back to [h, w].
//   Quantisation: u8 = clamp(floor((v + 1) * 127.5 + 0.5), 0, 255); NaN -> 0.
//
// Resampling is separable with a triangle filter whose support widens with the
// downscale factor (antialiased like PIL / torch antialias=True; exactly bilinear when
// upscaling). Pixel centres sit at i + 0.5: output pixel X of an axis with input range
// [start, start + in) and out pixels samples the input at start + (X + 0.5) * in / out.
// Taps outside the input range are dropped and the weights renormalised (edge replicate).
#pragma once

#include <cstdint>

#include "common.h"

#ifdef POSERT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace posert {

struct Letterbox {
  int64_t src_height = 0, src_width = 0;  // h, w of the photo/frame
  int64_t dst_height = 0, dst_width = 0;  // H, W of the model
  int64_t box_x = 0, box_y = 0;           // top-left of the content box in the model frame
  int64_t box_width = 0, box_height = 0;  // size of the content box
};

// The letterbox that fits [src_h, src_w] into [dst_h, dst_w]: scale = min(H/h, W/w),
// box size = round(size * scale) clamped to [1, dst], box centred (offsets floor((D - d) / 2)).
Letterbox make_letterbox(int64_t src_height, int64_t src_width, int64_t dst_height,
                         int64_t dst_width);

struct ToModelInputParams {
  Letterbox box;
  int64_t src_row_stride = 0;  // bytes between image rows (>= 3 * src_width)
  bool bgr = true;             // input channel order; output is always RGB
  float pad_value = 1.0f;      // value of the letterbox bars, in [-1, 1] units
};

struct FromModelOutputParams {
  Letterbox box;
  bool unletterbox = true;  // true: out is [h, w, 3]; false: out is [H, W, 3]
  bool bgr = true;          // output channel order; input is always RGB
};

// image: uint8 HWC; out: [3, H, W] float32 or float16 (uint16_t bit patterns).
void to_model_input_cpu(const uint8_t* image, float* out, const ToModelInputParams& params);
void to_model_input_cpu(const uint8_t* image, uint16_t* out_half, const ToModelInputParams& params);
// in: [3, H, W] float32 / float16; out: uint8 HWC, contiguous.
void from_model_output_cpu(const float* in, uint8_t* out, const FromModelOutputParams& params);
void from_model_output_cpu(const uint16_t* in_half, uint8_t* out, const FromModelOutputParams& params);

#ifdef POSERT_WITH_CUDA
cudaError_t launch_to_model_input(const uint8_t* image, void* out, DType dtype,
                                  const ToModelInputParams& params, cudaStream_t stream);
cudaError_t launch_from_model_output(const void* in, DType dtype, uint8_t* out,
                                     const FromModelOutputParams& params, cudaStream_t stream);
#endif

}  // namespace posert
