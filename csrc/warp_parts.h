// The warp's body parts (see warp.h): fitting each part's target -> source transform and
// its shape in the target frame, and the per-pixel weight. Shared by the CPU kernel, the
// CUDA kernel and (mirrored in numpy) the float64 reference in tests/reference.py.
// The fit runs once per batch item in double precision; the per-pixel math is float32.
#pragma once

#include <cmath>
#include <cstdint>

#include "warp.h"

#if defined(__CUDACC__)
#define POSERT_HD __host__ __device__ __forceinline__
#else
#define POSERT_HD inline
#endif

namespace posert {
namespace warp {

// COCO-18 joints.
enum Joint : int {
  kNose = 0, kNeck = 1, kRShoulder = 2, kRElbow = 3, kRWrist = 4, kLShoulder = 5, kLElbow = 6,
  kLWrist = 7, kRHip = 8, kRKnee = 9, kRAnkle = 10, kLHip = 11, kLKnee = 12, kLAnkle = 13,
  kREye = 14, kLEye = 15, kREar = 16, kLEar = 17
};

// Part slots in front-to-back compositing order: forearms 0-1, upper arms 2-3, head 4,
// shins 5-6, thighs 7-8, torso 9.
constexpr int kLimbs = 8;
struct Limb {
  int from, to;  // joints
  float core;    // core radius / body size
  int slot;
};
// A switch, not a table: the CUDA kernel fits parts on the device, where namespace-scope
// host arrays cannot be indexed.
POSERT_HD Limb limb(int l) {
  switch (l) {
    case 0: return {kRElbow, kRWrist, 0.08f, 0};
    case 1: return {kLElbow, kLWrist, 0.08f, 1};
    case 2: return {kRShoulder, kRElbow, 0.10f, 2};
    case 3: return {kLShoulder, kLElbow, 0.10f, 3};
    case 4: return {kRKnee, kRAnkle, 0.10f, 5};
    case 5: return {kLKnee, kLAnkle, 0.10f, 6};
    case 6: return {kRHip, kRKnee, 0.13f, 7};
    default: return {kLHip, kLKnee, 0.13f, 8};
  }
}
constexpr int kHeadSlot = 4;
constexpr int kTorsoSlot = 9;

constexpr float kFalloff = 0.06f;      // weight falloff / body size
constexpr float kHeadCore = 0.25f;     // minimum head radius / body size
constexpr float kTorsoCore = 0.06f;    // outside the quadrilateral
constexpr float kTorsoSegmentCore = 0.30f;  // torso as the neck -> mid-hip segment
constexpr float kCutoff = 4.0f;        // e >= 4: weight 0 (exp(-8) ~ 3e-4)
constexpr float kMinTransmittance = 1e-4f;
constexpr float kMinCoverage = 1e-6f;

// One part, ready for the per-pixel loop. Its shape is `segments` segments (1 or 4, the
// latter the torso quadrilateral, whose inside counts as distance 0); `inv_len2` is
// 1 / |b - a|^2, or 0 for a point (then the distance is to `a`).
struct Part {
  int valid = 0;
  int segments = 0;
  int polygon = 0;
  float ax[4] = {}, ay[4] = {}, bx[4] = {}, by[4] = {}, inv_len2[4] = {};
  float core = 0.0f, inv_falloff = 0.0f;
  float m[6] = {};  // source = (m0 x + m1 y + m2, m3 x + m4 y + m5)
};

// Present: finite and non-negative (x - x is NaN for inf and NaN; no -ffast-math here).
POSERT_HD bool present(const float* kp, int j) {
  const float x = kp[2 * j], y = kp[2 * j + 1];
  return x - x == 0.0f && y - y == 0.0f && x >= 0.0f && y >= 0.0f;
}

// Body size: neck to mid-hip, else 1.25 x shoulder width, else the longest limb; 0 if none.
POSERT_HD double body_size(const float* kp) {
  if (present(kp, kNeck) && (present(kp, kRHip) || present(kp, kLHip))) {
    double hx = 0.0, hy = 0.0;
    int n = 0;
    const int hips[2] = {kRHip, kLHip};
    for (int j : hips) {
      if (present(kp, j)) { hx += kp[2 * j]; hy += kp[2 * j + 1]; ++n; }
    }
    const double dx = hx / n - kp[2 * kNeck], dy = hy / n - kp[2 * kNeck + 1];
    const double len = sqrt(dx * dx + dy * dy);
    if (len >= 1.0) return len;
  }
  if (present(kp, kRShoulder) && present(kp, kLShoulder)) {
    const double dx = kp[2 * kRShoulder] - kp[2 * kLShoulder], dy = kp[2 * kRShoulder + 1] - kp[2 * kLShoulder + 1];
    const double len = 1.25 * sqrt(dx * dx + dy * dy);
    if (len >= 1.0) return len;
  }
  double longest = 0.0;
  for (int l = 0; l < kLimbs; ++l) {
    const int a = limb(l).from, b = limb(l).to;
    if (!present(kp, a) || !present(kp, b)) continue;
    const double dx = kp[2 * b] - kp[2 * a], dy = kp[2 * b + 1] - kp[2 * a + 1];
    const double len = 1.5 * sqrt(dx * dx + dy * dy);
    longest = len > longest ? len : longest;
  }
  return longest >= 1.0 ? longest : 0.0;
}

POSERT_HD void set_translation(Part& part, double tx, double ty, double sx, double sy, double scale) {
  // source = s + scale * (p - t)
  part.m[0] = static_cast<float>(scale);
  part.m[1] = 0.0f;
  part.m[2] = static_cast<float>(sx - scale * tx);
  part.m[3] = 0.0f;
  part.m[4] = static_cast<float>(scale);
  part.m[5] = static_cast<float>(sy - scale * ty);
}

// Least-squares similarity (rotation, uniform scale, translation) of n >= 1 correspondences
// target (tx, ty) -> source (sx, sy); a single point or coincident points: translation with
// `fallback_scale`.
POSERT_HD void fit_similarity(Part& part, const double* tx, const double* ty, const double* sx, const double* sy,
                              int n, double fallback_scale) {
  double tmx = 0, tmy = 0, smx = 0, smy = 0;
  for (int i = 0; i < n; ++i) { tmx += tx[i]; tmy += ty[i]; smx += sx[i]; smy += sy[i]; }
  tmx /= n; tmy /= n; smx /= n; smy /= n;
  double uu = 0, re = 0, im = 0;
  for (int i = 0; i < n; ++i) {
    const double ux = tx[i] - tmx, uy = ty[i] - tmy, vx = sx[i] - smx, vy = sy[i] - smy;
    uu += ux * ux + uy * uy;
    re += ux * vx + uy * vy;  // conj(u) * v
    im += ux * vy - uy * vx;
  }
  if (uu < 1.0) {  // the target points span less than a pixel
    set_translation(part, tmx, tmy, smx, smy, fallback_scale);
    return;
  }
  const double a = re / uu, b = im / uu;
  if (a * a + b * b < 1e-6) {  // the source points coincide
    set_translation(part, tmx, tmy, smx, smy, fallback_scale);
    return;
  }
  part.m[0] = static_cast<float>(a);
  part.m[1] = static_cast<float>(-b);
  part.m[2] = static_cast<float>(smx - a * tmx + b * tmy);
  part.m[3] = static_cast<float>(b);
  part.m[4] = static_cast<float>(a);
  part.m[5] = static_cast<float>(smy - b * tmx - a * tmy);
}

// Least-squares affine map of n >= 3 correspondences; false when the target points are
// (nearly) collinear or the map is implausible (area scale outside [rho^2 / 25, 25 rho^2],
// or a mirror), so that the caller falls back to a similarity.
POSERT_HD bool fit_affine(Part& part, const double* tx, const double* ty, const double* sx, const double* sy, int n,
                          double rho) {
  if (n < 3) return false;
  double tmx = 0, tmy = 0, smx = 0, smy = 0;
  for (int i = 0; i < n; ++i) { tmx += tx[i]; tmy += ty[i]; smx += sx[i]; smy += sy[i]; }
  tmx /= n; tmy /= n; smx /= n; smy /= n;
  double cxx = 0, cxy = 0, cyy = 0, vxx = 0, vxy = 0, vyx = 0, vyy = 0;
  for (int i = 0; i < n; ++i) {
    const double ux = tx[i] - tmx, uy = ty[i] - tmy, vx = sx[i] - smx, vy = sy[i] - smy;
    cxx += ux * ux; cxy += ux * uy; cyy += uy * uy;
    vxx += vx * ux; vxy += vx * uy; vyx += vy * ux; vyy += vy * uy;
  }
  const double det = cxx * cyy - cxy * cxy;
  const double trace = cxx + cyy;
  if (trace < 1.0 || det < 1e-3 * trace * trace) return false;
  // A = V C^-1 with V = sum v u^T, C = sum u u^T.
  const double i00 = cyy / det, i01 = -cxy / det, i11 = cxx / det;
  const double a00 = vxx * i00 + vxy * i01, a01 = vxx * i01 + vxy * i11;
  const double a10 = vyx * i00 + vyy * i01, a11 = vyx * i01 + vyy * i11;
  const double area = a00 * a11 - a01 * a10;
  if (!(area > rho * rho / 25.0 && area < 25.0 * rho * rho)) return false;
  part.m[0] = static_cast<float>(a00);
  part.m[1] = static_cast<float>(a01);
  part.m[2] = static_cast<float>(smx - a00 * tmx - a01 * tmy);
  part.m[3] = static_cast<float>(a10);
  part.m[4] = static_cast<float>(a11);
  part.m[5] = static_cast<float>(smy - a10 * tmx - a11 * tmy);
  return true;
}

POSERT_HD void set_segment(Part& part, int i, double ax, double ay, double bx, double by) {
  part.ax[i] = static_cast<float>(ax);
  part.ay[i] = static_cast<float>(ay);
  part.bx[i] = static_cast<float>(bx);
  part.by[i] = static_cast<float>(by);
  const double len2 = (bx - ax) * (bx - ax) + (by - ay) * (by - ay);
  part.inv_len2[i] = len2 > 1e-12 ? static_cast<float>(1.0 / len2) : 0.0f;
}

// Fits the ten parts of one batch item. src, dst: [18, 2] (x, y). `fallback_size` is the
// target body size to use when the target skeleton gives none (a fraction of the frame).
POSERT_HD void fit_parts(const float* src, const float* dst, double fallback_size, Part* parts) {
  for (int k = 0; k < kWarpParts; ++k) parts[k] = Part{};
  const double size_s = body_size(src), size_t_ = body_size(dst);
  const double size = size_t_ > 0.0 ? size_t_ : fallback_size;
  const double rho = (size_s > 0.0 && size_t_ > 0.0) ? size_s / size_t_ : 1.0;
  const float falloff = static_cast<float>(kFalloff * size > 1.0 ? kFalloff * size : 1.0);
  auto both = [&](int j) { return present(src, j) && present(dst, j); };

  for (int l = 0; l < kLimbs; ++l) {
    const Limb info = limb(l);
    const int a = info.from, b = info.to;
    if (!both(a) || !both(b)) continue;
    Part& part = parts[info.slot];
    const double tx[2] = {dst[2 * a], dst[2 * b]}, ty[2] = {dst[2 * a + 1], dst[2 * b + 1]};
    const double sx[2] = {src[2 * a], src[2 * b]}, sy[2] = {src[2 * a + 1], src[2 * b + 1]};
    fit_similarity(part, tx, ty, sx, sy, 2, rho);
    part.segments = 1;
    set_segment(part, 0, tx[0], ty[0], tx[1], ty[1]);
    part.core = static_cast<float>(info.core * size);
    part.inv_falloff = 1.0f / falloff;
    part.valid = 1;
  }

  {  // head: face points and the neck
    const int joints[6] = {kNose, kREye, kLEye, kREar, kLEar, kNeck};
    double tx[6], ty[6], sx[6], sy[6];
    int n = 0, face = 0;
    double cx = 0, cy = 0;
    for (int j : joints) {
      if (!both(j)) continue;
      tx[n] = dst[2 * j]; ty[n] = dst[2 * j + 1]; sx[n] = src[2 * j]; sy[n] = src[2 * j + 1];
      if (j != kNeck) { cx += tx[n]; cy += ty[n]; ++face; }
      ++n;
    }
    if (face > 0) {
      Part& part = parts[kHeadSlot];
      fit_similarity(part, tx, ty, sx, sy, n, rho);
      cx /= face; cy /= face;
      double radius = kHeadCore * size;
      for (int i = 0; i < n; ++i) {
        if (i == n - 1 && both(kNeck)) break;  // the neck is last when present: not a face point
        const double r = 1.1 * sqrt((tx[i] - cx) * (tx[i] - cx) + (ty[i] - cy) * (ty[i] - cy));
        radius = r > radius ? r : radius;
      }
      part.segments = 1;
      set_segment(part, 0, cx, cy, cx, cy);
      part.core = static_cast<float>(radius);
      part.inv_falloff = 1.0f / falloff;
      part.valid = 1;
    }
  }

  {  // torso: neck, shoulders, hips
    const int joints[5] = {kNeck, kRShoulder, kLShoulder, kRHip, kLHip};
    double tx[5], ty[5], sx[5], sy[5];
    int n = 0;
    for (int j : joints) {
      if (!both(j)) continue;
      tx[n] = dst[2 * j]; ty[n] = dst[2 * j + 1]; sx[n] = src[2 * j]; sy[n] = src[2 * j + 1];
      ++n;
    }
    const bool quad = present(dst, kRShoulder) && present(dst, kLShoulder) && present(dst, kRHip) &&
                      present(dst, kLHip);
    const bool neck_hip = present(dst, kNeck) && (present(dst, kRHip) || present(dst, kLHip));
    if (n >= 1 && (quad || neck_hip)) {
      Part& part = parts[kTorsoSlot];
      if (!fit_affine(part, tx, ty, sx, sy, n, rho)) fit_similarity(part, tx, ty, sx, sy, n, rho);
      if (quad) {
        const int corners[4] = {kRShoulder, kLShoulder, kLHip, kRHip};
        for (int i = 0; i < 4; ++i) {
          const int a = corners[i], b = corners[(i + 1) % 4];
          set_segment(part, i, dst[2 * a], dst[2 * a + 1], dst[2 * b], dst[2 * b + 1]);
        }
        part.segments = 4;
        part.polygon = 1;
        part.core = static_cast<float>(kTorsoCore * size);
      } else {
        double hx = 0, hy = 0;
        int h = 0;
        const int hips[2] = {kRHip, kLHip};
        for (int j : hips) {
          if (present(dst, j)) { hx += dst[2 * j]; hy += dst[2 * j + 1]; ++h; }
        }
        set_segment(part, 0, dst[2 * kNeck], dst[2 * kNeck + 1], hx / h, hy / h);
        part.segments = 1;
        part.core = static_cast<float>(kTorsoSegmentCore * size);
      }
      part.inv_falloff = 1.0f / falloff;
      part.valid = 1;
    }
  }
}

// Distance from (x, y) to segment i of `part`.
POSERT_HD float segment_distance(const Part& part, int i, float x, float y) {
  const float dx = part.bx[i] - part.ax[i], dy = part.by[i] - part.ay[i];
  const float px = x - part.ax[i], py = y - part.ay[i];
  float t = (px * dx + py * dy) * part.inv_len2[i];
  t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
  const float ex = px - t * dx, ey = py - t * dy;
  return sqrtf(ex * ex + ey * ey);
}

// The part's normalised distance e = max(0, d - core) / falloff at (x, y).
POSERT_HD float part_excess(const Part& part, float x, float y) {
  float d = segment_distance(part, 0, x, y);
  if (part.segments == 4) {
    bool inside = false;
    for (int i = 0; i < 4; ++i) {
      const float di = segment_distance(part, i, x, y);
      d = di < d ? di : d;
      // even-odd rule: does edge i cross the horizontal ray to the right of (x, y)?
      const float ay = part.ay[i], by = part.by[i];
      if ((ay > y) != (by > y)) {
        const float cross = part.ax[i] + (y - ay) * (part.bx[i] - part.ax[i]) / (by - ay);
        if (x < cross) inside = !inside;
      }
    }
    if (inside) d = 0.0f;
  }
  const float e = (d - part.core) * part.inv_falloff;
  return e > 0.0f ? e : 0.0f;
}

}  // namespace warp
}  // namespace posert
