// warp: a skeleton-driven, part-wise warp of a source image into a target pose.
//
// Inputs: a source image [B, C, Hs, Ws], its COCO-18 keypoints and the target keypoints
// ([B, 18, 2] float32, (x, y) pixels, x first; pixel centres at integer coordinates; a joint
// is missing when x or y is negative, NaN or infinite, as everywhere in pyposert). Source
// keypoints are in source-image pixels, target keypoints in output pixels.
//
// Ten body parts (torso, head, upper and lower arms, upper and lower legs). For each part,
// from the joints present in both skeletons, a transform T_k from the target frame to the
// source frame (warp_parts.h):
//   limbs: the similarity mapping the target segment onto the source segment;
//   head:  the least-squares similarity of the face points and the neck;
//   torso: the least-squares affine map of neck, shoulders and hips (similarity when those
//          are collinear or the affine map is implausible).
// Degenerate correspondences (zero-length limbs, a single point) fall back to a translation
// scaled by the ratio of the two skeletons' body sizes. A part with too few joints drops out.
//
// Per target pixel p, each part has a soft weight from p's distance d to the part's shape in
// the target frame (a limb's segment, the torso's shoulder-hip quadrilateral, the head's
// disk): e = max(0, d - core_k) / falloff_k, w_k = exp(-e^2 / 2) for e < 4, else 0. The
// parts are composited front to back (forearms, upper arms, head, shins, thighs, torso:
// arms usually pass in front of the body), each sampling the source bilinearly at T_k(p)
// (only where T_k(p) lies inside the source image, [-0.5, Ws - 0.5] x [-0.5, Hs - 0.5], edge
// clamped), with transmittance t (starting at 1; a part with t < 1e-4 left is skipped):
//   acc += t * w_k * source(T_k(p)),  t *= 1 - w_k.
// Outputs: coverage = 1 - t in [0, 1] (how much of p the warp could explain) and
// warped = acc / coverage where coverage > 1e-6, else 0 (the composited source colour).
#pragma once

#include <cstdint>

#include "common.h"

#ifdef POSERT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace posert {

constexpr int kWarpJoints = 18;  // COCO-18
constexpr int kWarpParts = 10;

struct WarpParams {
  int64_t batch = 0;       // B
  int64_t channels = 0;    // C
  int64_t src_height = 0;  // Hs
  int64_t src_width = 0;   // Ws
  int64_t height = 0;      // H (output)
  int64_t width = 0;       // W (output)
};

// image [B, C, Hs, Ws], keypoints [B, 18, 2] (x, y), out [B, C, H, W], coverage [B, 1, H, W];
// all float32 and contiguous.
void warp_cpu(const float* image, const float* source_keypoints, const float* target_keypoints,
              float* out, float* coverage, const WarpParams& params);

#ifdef POSERT_WITH_CUDA
// Device pointers; image/out/coverage are float* or __half* by `dtype`, keypoints float32.
// Runs on `stream`, returns the launch status (never synchronises).
cudaError_t launch_warp(const void* image, const float* source_keypoints, const float* target_keypoints,
                        void* out, void* coverage, DType dtype, const WarpParams& params,
                        cudaStream_t stream);
#endif

}  // namespace posert
