// pybind11 bindings of the native core: the private module pyposert._C.
//
// User-facing validation (shapes, dtypes, devices, with "expected ..., got ..." messages)
// lives in pyposert/ops.py, in one place for numpy and CUDA arrays. The checks here are the
// memory-safety floor for anyone calling _C directly: they raise, never abort. CUDA entry
// points take raw device addresses and a stream (as ints), so any producer works (torch,
// cupy, DLPack) and the kernels stay framework-free.
//
// No iostreams or locales anywhere in the module, and error text is built only when an
// error is raised: formatting a number through std::ostream consults the process-wide
// locale, and where two copies of the C++ runtime meet in one process (a module that
// carries a static libstdc++ next to torch's or OpenCV's shared one) their facet tables
// disagree and `stream << long` calls into the wrong facet (a crash seen on a GCC 13 host).
// std::to_string on integers formats without a locale.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <type_traits>
#include <vector>

#include "attention.h"
#include "common.h"
#include "device.h"
#include "dlpack_abi.h"
#include "heatmaps.h"
#include "imageproc.h"
#include "simd.h"
#include "warp.h"

namespace py = pybind11;
using posert::DType;

namespace {

[[noreturn]] void fail(const std::string& message) { throw py::value_error(message); }

// require(ok, "fixed text") or require(ok, [&] { return built_text; }): the callable runs
// only when the check fails, so the hot path formats nothing.
inline void require(bool ok, const char* message) {
  if (!ok) fail(message);
}
template <typename MakeMessage, typename = std::enable_if_t<std::is_invocable_v<MakeMessage>>>
inline void require(bool ok, MakeMessage&& make_message) {
  if (!ok) fail(make_message());
}

std::string shape_of(const py::array& a) {
  std::string s = "[";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  return s + "]";
}

bool is_float32(const py::array& a) { return a.dtype().kind() == 'f' && a.itemsize() == 4; }
bool is_float16(const py::array& a) { return a.dtype().kind() == 'f' && a.itemsize() == 2; }
bool c_contiguous(const py::array& a) { return (a.flags() & py::array::c_style) != 0; }

void require_array(const py::array& a, const char* name, py::ssize_t ndim, bool float_any,
                   bool writable) {
  require(a.ndim() == ndim, [&] {
    return std::string(name) + " must have " + std::to_string(ndim) + " dimensions, got " + shape_of(a);
  });
  if (float_any) {
    require(is_float32(a) || is_float16(a), [&] { return std::string(name) + " must be float32 or float16"; });
  } else {
    require(is_float32(a), [&] { return std::string(name) + " must be float32"; });
  }
  require(c_contiguous(a), [&] { return std::string(name) + " must be C-contiguous"; });
  if (writable) require(a.writeable(), [&] { return std::string(name) + " must be writable"; });
}

// The CPU kernels' instruction set (simd.h): an invalid or unsupported POSERT_SIMD is an
// error at the first CPU call, never a silent fallback to another path.
void require_simd() {
  const auto& status = posert::simd_status();
  if (status.error != nullptr) fail(status.error);
}

// ---------------------------------------------------------------- CUDA plumbing
#ifdef POSERT_WITH_CUDA
const posert::DeviceStatus& device_status() {
  static const posert::DeviceStatus status = posert::cuda_device_status();
  return status;
}

void require_cuda_device() {
  const auto& status = device_status();
  if (status.device_count == 0) throw std::runtime_error(status.reason);
}

void check_launch(cudaError_t err, const char* op) {
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear non-sticky errors so the next call starts clean
    throw std::runtime_error(std::string(op) + " CUDA launch failed: " + cudaGetErrorString(err));
  }
}

cudaStream_t as_stream(std::uintptr_t stream) { return reinterpret_cast<cudaStream_t>(stream); }
#else
[[noreturn]] void no_cuda_build() {
  throw std::runtime_error(
      "no CUDA device: pyposert was built without CUDA (no nvcc at build time, or "
      "POSERT_WITH_CUDA=OFF); rebuild with nvcc on PATH to use CUDA arrays");
}
#endif

DType dtype_from_int(int code) {
  require(code == 0 || code == 1, "dtype code must be 0 (float32) or 1 (float16)");
  return static_cast<DType>(code);
}

posert::HeatmapParams heatmap_params(int64_t batch, int64_t joints, int64_t height, int64_t width,
                                     int64_t out_channels, int64_t channel_offset, int mode,
                                     float sigma, float radius, float scale_x, float scale_y,
                                     float offset_x, float offset_y) {
  require(batch >= 0 && joints >= 0 && height >= 0 && width >= 0, "sizes must be >= 0");
  require(mode == static_cast<int>(posert::HeatmapMode::kGaussian) || mode == static_cast<int>(posert::HeatmapMode::kDisk),
          "mode must be 0 (gaussian) or 1 (disk)");
  require(channel_offset >= 0 && channel_offset + joints <= out_channels,
          "channel_offset + joints must fit into the output channels");
  posert::HeatmapParams p;
  p.batch = batch;
  p.joints = joints;
  p.height = height;
  p.width = width;
  p.mode = static_cast<posert::HeatmapMode>(mode);
  p.sigma = sigma;
  p.radius = radius;
  p.scale_x = scale_x;
  p.scale_y = scale_y;
  p.offset_x = offset_x;
  p.offset_y = offset_y;
  p.out_batch_stride = out_channels * height * width;
  p.out_channel_offset = channel_offset * height * width;
  return p;
}

// ---------------------------------------------------------------- heatmaps
void heatmaps_cpu(const py::array& keypoints, py::array& out, int64_t channel_offset, int mode,
                  float sigma, float radius, float scale_x, float scale_y, float offset_x,
                  float offset_y) {
  require_simd();
  require_array(keypoints, "keypoints", 3, false, false);
  require(keypoints.shape(2) == 2, [&] { return "keypoints must be [B, K, 2], got " + shape_of(keypoints); });
  require_array(out, "out", 4, true, true);
  require(out.shape(0) == keypoints.shape(0), "out batch must match keypoints batch");
  const auto p = heatmap_params(keypoints.shape(0), keypoints.shape(1), out.shape(2), out.shape(3),
                                out.shape(1), channel_offset, mode, sigma, radius, scale_x, scale_y,
                                offset_x, offset_y);
  const float* kp = static_cast<const float*>(keypoints.data());
  if (is_float16(out)) {
    auto* dst = static_cast<uint16_t*>(out.mutable_data());
    py::gil_scoped_release release;
    posert::heatmaps_cpu(kp, dst, p);
  } else {
    auto* dst = static_cast<float*>(out.mutable_data());
    py::gil_scoped_release release;
    posert::heatmaps_cpu(kp, dst, p);
  }
}

void heatmaps_cuda(std::uintptr_t keypoints, std::uintptr_t out, int dtype, int64_t batch,
                   int64_t joints, int64_t height, int64_t width, int64_t out_channels,
                   int64_t channel_offset, int mode, float sigma, float radius, float scale_x,
                   float scale_y, float offset_x, float offset_y, std::uintptr_t stream) {
  const DType dt = dtype_from_int(dtype);
  const auto p = heatmap_params(batch, joints, height, width, out_channels, channel_offset, mode,
                                sigma, radius, scale_x, scale_y, offset_x, offset_y);
#ifdef POSERT_WITH_CUDA
  require_cuda_device();
  cudaError_t err;
  {
    py::gil_scoped_release release;
    err = posert::launch_heatmaps(reinterpret_cast<const float*>(keypoints),
                                  reinterpret_cast<void*>(out), dt, p, as_stream(stream));
  }
  check_launch(err, "heatmaps");
#else
  (void)keypoints, (void)out, (void)dt, (void)p, (void)stream;
  no_cuda_build();
#endif
}

// ---------------------------------------------------------------- attention
posert::AttentionParams attention_params(int64_t batch, int64_t queries, int64_t keys, int64_t dk,
                                         int64_t dv, float scale) {
  require(batch >= 0 && queries >= 0 && keys >= 0 && dk >= 1 && dv >= 0,
          "attention sizes must be batch, queries, keys, dv >= 0 and dk >= 1");
  require(keys >= 1 || queries == 0 || batch == 0, "attention needs at least one key per query");
  posert::AttentionParams p;
  p.batch = batch;
  p.queries = queries;
  p.keys = keys;
  p.dk = dk;
  p.dv = dv;
  p.scale = scale;
  return p;
}

// (batch, row) element strides of a [B, N, D] array whose last axis is unit-stride.
posert::RowStrides row_strides(const py::array& a, const char* name) {
  if (a.size() == 0) return posert::RowStrides{};  // nothing is read or written
  const auto item = static_cast<py::ssize_t>(a.itemsize());
  const bool unit = a.shape(2) <= 1 || a.strides(2) == item;
  require(unit && a.strides(0) % item == 0 && a.strides(1) % item == 0, [&] {
    return std::string(name) + " must have a unit-stride (C-contiguous) last axis and whole-element strides";
  });
  return posert::RowStrides{a.strides(0) / item, a.strides(1) / item};
}

// `out` [B, Nq, Dv] is written by many threads at once: no two of its elements may share memory.
// Sufficient: taking the batch and row axes (size 1 aside) from the smaller stride to the
// larger, each stride is positive and at least the extent of everything inside it (Dv
// elements for a row, n rows for the next axis), so the rows tile without touching.
void require_disjoint_out(const posert::AttentionParams& p) {
  if (p.batch == 0 || p.queries == 0 || p.dv == 0) return;
  std::array<std::pair<int64_t, int64_t>, 2> axes{{{p.out_strides.row, p.queries}, {p.out_strides.batch, p.batch}}};
  if (axes[1].second > 1 && (axes[0].second <= 1 || axes[1].first < axes[0].first)) std::swap(axes[0], axes[1]);
  int64_t extent = p.dv;
  bool ok = true;
  for (const auto& [stride, count] : axes) {
    if (count <= 1) continue;
    ok = ok && stride >= extent;
    extent = stride * count;
  }
  require(ok, "attention out must not overlap itself (its batch and row strides must keep rows apart)");
}

void attention_cpu(const py::array& q, const py::array& k, const py::array& v, py::array& out,
                   float scale) {
  require_simd();
  using Named = std::pair<const py::array*, const char*>;
  for (const auto& [a, name] : {Named{&q, "q"}, Named{&k, "k"}, Named{&v, "v"}, Named{&out, "out"}}) {
    require(a->ndim() == 3 && is_float32(*a),
            [&] { return std::string(name) + " must be a 3-D float32 array, got " + shape_of(*a); });
  }
  require(out.writeable(), "out must be writable");
  auto p = attention_params(q.shape(0), q.shape(1), k.shape(1), q.shape(2), v.shape(2), scale);
  require(k.shape(0) == p.batch && v.shape(0) == p.batch && out.shape(0) == p.batch,
          "q, k, v and out must share the batch size");
  require(k.shape(2) == p.dk, "k width must equal q width (Dk)");
  require(v.shape(1) == p.keys, "v must have as many rows as k");
  require(out.shape(1) == p.queries && out.shape(2) == p.dv, "out must be [B, Nq, Dv]");
  p.q_strides = row_strides(q, "q");
  p.k_strides = row_strides(k, "k");
  p.v_strides = row_strides(v, "v");
  p.out_strides = row_strides(out, "out");
  require_disjoint_out(p);
  const auto* qp = static_cast<const float*>(q.data());
  const auto* kp = static_cast<const float*>(k.data());
  const auto* vp = static_cast<const float*>(v.data());
  auto* op = static_cast<float*>(out.mutable_data());
  py::gil_scoped_release release;
  posert::attention_cpu(qp, kp, vp, op, p);
}

using StridePair = std::array<int64_t, 2>;  // (batch, row) in elements

void attention_cuda(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t out,
                    int dtype, int64_t batch, int64_t queries, int64_t keys, int64_t dk, int64_t dv,
                    float scale, StridePair q_strides, StridePair k_strides, StridePair v_strides,
                    StridePair out_strides, std::uintptr_t stream) {
  const DType dt = dtype_from_int(dtype);
  auto p = attention_params(batch, queries, keys, dk, dv, scale);
  require(dk <= posert::attention_tiles::kMaxDk, [&] {
    return "CUDA attention supports Dk up to " + std::to_string(posert::attention_tiles::kMaxDk) + ", got " +
           std::to_string(dk);
  });
  require(batch <= 65535, "CUDA attention supports batch up to 65535");
  p.q_strides = {q_strides[0], q_strides[1]};
  p.k_strides = {k_strides[0], k_strides[1]};
  p.v_strides = {v_strides[0], v_strides[1]};
  p.out_strides = {out_strides[0], out_strides[1]};
  require_disjoint_out(p);
#ifdef POSERT_WITH_CUDA
  require_cuda_device();
  cudaError_t err;
  {
    py::gil_scoped_release release;
    err = posert::launch_attention(reinterpret_cast<const void*>(q), reinterpret_cast<const void*>(k),
                                   reinterpret_cast<const void*>(v), reinterpret_cast<void*>(out), dt,
                                   p, as_stream(stream));
  }
  check_launch(err, "attention");
#else
  (void)q, (void)k, (void)v, (void)out, (void)dt, (void)p, (void)stream;
  no_cuda_build();
#endif
}

// ---------------------------------------------------------------- warp
posert::WarpParams warp_params(int64_t batch, int64_t channels, int64_t src_height, int64_t src_width,
                               int64_t height, int64_t width) {
  require(batch >= 0 && channels >= 0 && height >= 0 && width >= 0, "warp sizes must be >= 0");
  require(src_height >= 1 && src_width >= 1, "the warp's source image must be at least 1 x 1");
  posert::WarpParams p;
  p.batch = batch;
  p.channels = channels;
  p.src_height = src_height;
  p.src_width = src_width;
  p.height = height;
  p.width = width;
  return p;
}

void warp_cpu(const py::array& image, const py::array& source_keypoints, const py::array& target_keypoints,
              py::array& out, py::array& coverage) {
  require_simd();
  require_array(image, "image", 4, false, false);
  require_array(source_keypoints, "source_keypoints", 3, false, false);
  require_array(target_keypoints, "target_keypoints", 3, false, false);
  require_array(out, "out", 4, false, true);
  require_array(coverage, "coverage", 4, false, true);
  const int64_t batch = image.shape(0);
  for (const py::array* kp : {&source_keypoints, &target_keypoints}) {
    require(kp->shape(0) == batch && kp->shape(1) == posert::kWarpJoints && kp->shape(2) == 2,
            [&] { return "keypoints must be [B, 18, 2] with the image's batch, got " + shape_of(*kp); });
  }
  const auto p = warp_params(batch, image.shape(1), image.shape(2), image.shape(3), out.shape(2), out.shape(3));
  require(out.shape(0) == batch && out.shape(1) == p.channels, [&] { return "out must be [B, C, H, W], got " + shape_of(out); });
  require(coverage.shape(0) == batch && coverage.shape(1) == 1 && coverage.shape(2) == p.height &&
              coverage.shape(3) == p.width,
          [&] { return "coverage must be [B, 1, H, W], got " + shape_of(coverage); });
  const auto* img = static_cast<const float*>(image.data());
  const auto* skp = static_cast<const float*>(source_keypoints.data());
  const auto* tkp = static_cast<const float*>(target_keypoints.data());
  auto* dst = static_cast<float*>(out.mutable_data());
  auto* cov = static_cast<float*>(coverage.mutable_data());
  py::gil_scoped_release release;
  posert::warp_cpu(img, skp, tkp, dst, cov, p);
}

void warp_cuda(std::uintptr_t image, std::uintptr_t source_keypoints, std::uintptr_t target_keypoints,
               std::uintptr_t out, std::uintptr_t coverage, int dtype, int64_t batch, int64_t channels,
               int64_t src_height, int64_t src_width, int64_t height, int64_t width, std::uintptr_t stream) {
  const DType dt = dtype_from_int(dtype);
  const auto p = warp_params(batch, channels, src_height, src_width, height, width);
  require(batch <= 65535, "CUDA warp supports batch up to 65535");
#ifdef POSERT_WITH_CUDA
  require_cuda_device();
  cudaError_t err;
  {
    py::gil_scoped_release release;
    err = posert::launch_warp(reinterpret_cast<const void*>(image), reinterpret_cast<const float*>(source_keypoints),
                              reinterpret_cast<const float*>(target_keypoints), reinterpret_cast<void*>(out),
                              reinterpret_cast<void*>(coverage), dt, p, as_stream(stream));
  }
  check_launch(err, "warp");
#else
  (void)image, (void)source_keypoints, (void)target_keypoints, (void)out, (void)coverage, (void)dt, (void)p,
      (void)stream;
  no_cuda_build();
#endif
}

// ---------------------------------------------------------------- imageproc
posert::Letterbox letterbox(int64_t src_height, int64_t src_width, int64_t dst_height,
                            int64_t dst_width) {
  require(src_height >= 1 && src_width >= 1 && dst_height >= 1 && dst_width >= 1,
          "letterbox sizes must be >= 1");
  return posert::make_letterbox(src_height, src_width, dst_height, dst_width);
}

void to_model_input_cpu(const py::array& image, py::array& out, bool bgr, float pad_value) {
  require(image.ndim() == 3 && image.shape(2) == 3, [&] { return "image must be [h, w, 3], got " + shape_of(image); });
  require(image.dtype().kind() == 'u' && image.itemsize() == 1, "image must be uint8");
  require(image.strides(2) == 1 && image.strides(1) == 3 && image.strides(0) >= 3 * image.shape(1),
          "image pixels must be packed (strides [row, 3, 1])");
  require_array(out, "out", 3, true, true);
  require(out.shape(0) == 3, [&] { return "out must be [3, H, W], got " + shape_of(out); });
  posert::ToModelInputParams p;
  p.box = letterbox(image.shape(0), image.shape(1), out.shape(1), out.shape(2));
  p.src_row_stride = image.strides(0);
  p.bgr = bgr;
  p.pad_value = pad_value;
  const auto* src = static_cast<const uint8_t*>(image.data());
  if (is_float16(out)) {
    auto* dst = static_cast<uint16_t*>(out.mutable_data());
    py::gil_scoped_release release;
    posert::to_model_input_cpu(src, dst, p);
  } else {
    auto* dst = static_cast<float*>(out.mutable_data());
    py::gil_scoped_release release;
    posert::to_model_input_cpu(src, dst, p);
  }
}

void to_model_input_cuda(std::uintptr_t image, int64_t row_stride, int64_t src_height,
                         int64_t src_width, std::uintptr_t out, int dtype, int64_t dst_height,
                         int64_t dst_width, bool bgr, float pad_value, std::uintptr_t stream) {
  const DType dt = dtype_from_int(dtype);
  posert::ToModelInputParams p;
  p.box = letterbox(src_height, src_width, dst_height, dst_width);
  require(row_stride >= 3 * src_width, "image row stride must be >= 3 * width");
  p.src_row_stride = row_stride;
  p.bgr = bgr;
  p.pad_value = pad_value;
#ifdef POSERT_WITH_CUDA
  require_cuda_device();
  cudaError_t err;
  {
    py::gil_scoped_release release;
    err = posert::launch_to_model_input(reinterpret_cast<const uint8_t*>(image),
                                        reinterpret_cast<void*>(out), dt, p, as_stream(stream));
  }
  check_launch(err, "to_model_input");
#else
  (void)image, (void)out, (void)dt, (void)p, (void)stream;
  no_cuda_build();
#endif
}

void from_model_output_cpu(const py::array& in, py::array& out, int64_t src_height,
                           int64_t src_width, bool unletterbox, bool bgr) {
  require_array(in, "model output", 3, true, false);
  require(in.shape(0) == 3, [&] { return "model output must be [3, H, W], got " + shape_of(in); });
  require(out.ndim() == 3 && out.shape(2) == 3, [&] { return "out must be [h, w, 3], got " + shape_of(out); });
  require(out.dtype().kind() == 'u' && out.itemsize() == 1 && c_contiguous(out) && out.writeable(),
          "out must be a writable C-contiguous uint8 array");
  posert::FromModelOutputParams p;
  p.box = letterbox(src_height, src_width, in.shape(1), in.shape(2));
  p.unletterbox = unletterbox;
  p.bgr = bgr;
  const int64_t h = unletterbox ? src_height : in.shape(1), w = unletterbox ? src_width : in.shape(2);
  require(out.shape(0) == h && out.shape(1) == w, "out has the wrong size for this letterbox");
  auto* dst = static_cast<uint8_t*>(out.mutable_data());
  if (is_float16(in)) {
    const auto* src = static_cast<const uint16_t*>(in.data());
    py::gil_scoped_release release;
    posert::from_model_output_cpu(src, dst, p);
  } else {
    const auto* src = static_cast<const float*>(in.data());
    py::gil_scoped_release release;
    posert::from_model_output_cpu(src, dst, p);
  }
}

void from_model_output_cuda(std::uintptr_t in, int dtype, int64_t dst_height, int64_t dst_width,
                            std::uintptr_t out, int64_t src_height, int64_t src_width,
                            bool unletterbox, bool bgr, std::uintptr_t stream) {
  const DType dt = dtype_from_int(dtype);
  posert::FromModelOutputParams p;
  p.box = letterbox(src_height, src_width, dst_height, dst_width);
  p.unletterbox = unletterbox;
  p.bgr = bgr;
#ifdef POSERT_WITH_CUDA
  require_cuda_device();
  cudaError_t err;
  {
    py::gil_scoped_release release;
    err = posert::launch_from_model_output(reinterpret_cast<const void*>(in), dt,
                                           reinterpret_cast<uint8_t*>(out), p, as_stream(stream));
  }
  check_launch(err, "from_model_output");
#else
  (void)in, (void)out, (void)dt, (void)p, (void)stream;
  no_cuda_build();
#endif
}

// ---------------------------------------------------------------- DLPack
// Describe (without consuming) a "dltensor" capsule: address, shape, strides, dtype, device.
py::dict dlpack_describe(const py::capsule& capsule) {
  const char* capsule_name = capsule.name();
  require(capsule_name != nullptr && std::string(capsule_name) == "dltensor",
          "expected an unconsumed DLPack capsule named 'dltensor'");
  const auto* managed = capsule.get_pointer<posert::dlpack::ManagedTensor>();
  require(managed != nullptr, "DLPack capsule holds no tensor");
  const auto& t = managed->dl_tensor;
  require(t.ndim >= 0 && t.ndim <= 32, "DLPack tensor has an invalid rank");
  py::list shape, strides;
  for (int i = 0; i < t.ndim; ++i) shape.append(t.shape[i]);
  py::object strides_obj = py::none();
  if (t.strides != nullptr) {
    for (int i = 0; i < t.ndim; ++i) strides.append(t.strides[i]);
    strides_obj = py::tuple(strides);
  }
  py::dict d;
  d["data"] = reinterpret_cast<std::uintptr_t>(t.data) + t.byte_offset;
  d["shape"] = py::tuple(shape);
  d["strides"] = strides_obj;  // elements
  d["type_code"] = static_cast<int>(t.dtype.code);
  d["bits"] = static_cast<int>(t.dtype.bits);
  d["lanes"] = static_cast<int>(t.dtype.lanes);
  d["device_type"] = t.device.device_type;
  d["device_id"] = t.device.device_id;
  return d;
}

// ---------------------------------------------------------------- info
py::dict build_info() {
  py::dict info;
  info["version"] = POSERT_VERSION;
#ifdef POSERT_WITH_CUDA
  info["cuda_compiled"] = true;
  info["cuda_architectures"] = POSERT_CUDA_ARCHITECTURES;
  info["cuda_compiler_version"] = POSERT_CUDA_COMPILER_VERSION;
#else
  info["cuda_compiled"] = false;
  info["cuda_architectures"] = "";
  info["cuda_compiler_version"] = "";
#endif
#ifdef POSERT_WITH_OPENMP
  info["openmp"] = true;
#else
  info["openmp"] = false;
#endif
  info["cpu_threads"] = posert::get_num_threads();
  const auto& simd = posert::simd_status();
  info["simd_supported"] = posert::simd_name(simd.supported);
  info["simd"] = posert::simd_name(simd.active);
  info["simd_forced"] = simd.forced;
  info["simd_error"] = simd.error != nullptr ? py::object(py::str(simd.error)) : py::object(py::none());
  info["compiler"] = __VERSION__;
  return info;
}

py::dict cuda_status() {
  py::dict d;
#ifdef POSERT_WITH_CUDA
  const auto& s = device_status();
  d["device_count"] = s.device_count;
  d["runtime_version"] = s.runtime_version;
  d["driver_version"] = s.driver_version;
  d["compute_capability"] = s.compute_capability;
  d["device_name"] = s.device_name;
  d["reason"] = s.reason;
#else
  d["device_count"] = 0;
  d["runtime_version"] = 0;
  d["driver_version"] = 0;
  d["compute_capability"] = 0;
  d["device_name"] = "";
  d["reason"] = "no CUDA device: pyposert was built without CUDA";
#endif
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "pyposert native core (private; use pyposert.ops)";

  m.def("heatmaps_cpu", &heatmaps_cpu, py::arg("keypoints"), py::arg("out"), py::arg("channel_offset"),
        py::arg("mode"), py::arg("sigma"), py::arg("radius"), py::arg("scale_x"), py::arg("scale_y"),
        py::arg("offset_x"), py::arg("offset_y"));
  m.def("heatmaps_cuda", &heatmaps_cuda, py::arg("keypoints"), py::arg("out"), py::arg("dtype"),
        py::arg("batch"), py::arg("joints"), py::arg("height"), py::arg("width"),
        py::arg("out_channels"), py::arg("channel_offset"), py::arg("mode"), py::arg("sigma"),
        py::arg("radius"), py::arg("scale_x"), py::arg("scale_y"), py::arg("offset_x"),
        py::arg("offset_y"), py::arg("stream"));
  m.def("attention_cpu", &attention_cpu, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
        py::arg("scale"));
  m.def("attention_cuda", &attention_cuda, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
        py::arg("dtype"), py::arg("batch"), py::arg("queries"), py::arg("keys"), py::arg("dk"),
        py::arg("dv"), py::arg("scale"), py::arg("q_strides"), py::arg("k_strides"), py::arg("v_strides"),
        py::arg("out_strides"), py::arg("stream"));
  m.def("warp_cpu", &warp_cpu, py::arg("image"), py::arg("source_keypoints"), py::arg("target_keypoints"),
        py::arg("out"), py::arg("coverage"));
  m.def("warp_cuda", &warp_cuda, py::arg("image"), py::arg("source_keypoints"), py::arg("target_keypoints"),
        py::arg("out"), py::arg("coverage"), py::arg("dtype"), py::arg("batch"), py::arg("channels"),
        py::arg("src_height"), py::arg("src_width"), py::arg("height"), py::arg("width"), py::arg("stream"));
  m.def(
      "letterbox",
      [](int64_t sh, int64_t sw, int64_t dh, int64_t dw) {
        const auto b = letterbox(sh, sw, dh, dw);
        return py::make_tuple(b.box_x, b.box_y, b.box_width, b.box_height);
      },
      py::arg("src_height"), py::arg("src_width"), py::arg("dst_height"), py::arg("dst_width"));
  m.def("to_model_input_cpu", &to_model_input_cpu, py::arg("image"), py::arg("out"), py::arg("bgr"),
        py::arg("pad_value"));
  m.def("to_model_input_cuda", &to_model_input_cuda, py::arg("image"), py::arg("row_stride"),
        py::arg("src_height"), py::arg("src_width"), py::arg("out"), py::arg("dtype"),
        py::arg("dst_height"), py::arg("dst_width"), py::arg("bgr"), py::arg("pad_value"),
        py::arg("stream"));
  m.def("from_model_output_cpu", &from_model_output_cpu, py::arg("model_output"), py::arg("out"),
        py::arg("src_height"), py::arg("src_width"), py::arg("unletterbox"), py::arg("bgr"));
  m.def("from_model_output_cuda", &from_model_output_cuda, py::arg("model_output"), py::arg("dtype"),
        py::arg("dst_height"), py::arg("dst_width"), py::arg("out"), py::arg("src_height"),
        py::arg("src_width"), py::arg("unletterbox"), py::arg("bgr"), py::arg("stream"));
  m.def("dlpack_describe", &dlpack_describe, py::arg("capsule"));
  m.def("build_info", &build_info);
  m.def("cuda_status", &cuda_status);
  m.def("set_num_threads", &posert::set_num_threads, py::arg("n"));

  // Constants the kernels define and Python (pyposert.ops, the torch ops, the exporter and the
  // TensorRT plugins) reads, so that each is written once.
  py::dict heatmap_modes;
  heatmap_modes["gaussian"] = static_cast<int>(posert::HeatmapMode::kGaussian);
  heatmap_modes["disk"] = static_cast<int>(posert::HeatmapMode::kDisk);
  m.attr("HEATMAP_MODES") = heatmap_modes;
  py::dict dtypes;
  dtypes["float32"] = static_cast<int>(DType::kFloat32);
  dtypes["float16"] = static_cast<int>(DType::kFloat16);
  m.attr("DTYPES") = dtypes;
  namespace tiles = posert::attention_tiles;
  py::dict attention;
  attention["block_queries"] = tiles::kBlockQueries;
  attention["threads"] = tiles::kThreads;
  attention["max_dk"] = tiles::kMaxDk;
  attention["plugin_keys"] = tiles::kPluginKeys;
  attention["plugin_wide_max_dk"] = tiles::kPluginWideMaxDk;
  attention["plugin_narrow_keys"] = tiles::kPluginNarrowKeys;
  attention["plugin_smem_limit"] = tiles::kPluginSmemLimit;
  m.attr("ATTENTION_TILES") = attention;
  m.attr("WARP_JOINTS") = posert::kWarpJoints;
  m.def("get_num_threads", &posert::get_num_threads);
}
