// The Python module hypops._C. Importing it loads the op library (TORCH_LIBRARY in csrc/ops.cpp);
// the module itself only exposes how it was built, for hypops.info().
#include <pybind11/pybind11.h>

#include <pybind11/stl.h>

#include <vector>

#include "common/math.h"
#include "cpu/rows.h"
#include "cpu/simd/bank_kernels.h"
#include "cpu/simd/row_kernels.h"

#ifndef HYPOPS_WITH_CUDA
#define HYPOPS_WITH_CUDA 0
#endif

namespace py = pybind11;

static const char* simd_level() {
#if defined(__AVX512F__)
  return "AVX512";
#elif defined(__AVX2__)
  return "AVX2";
#elif defined(__AVX__)
  return "AVX";
#elif defined(__SSE2__)
  return "SSE2";
#elif defined(__ARM_NEON)
  return "NEON";
#else
  return "scalar";
#endif
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "hypops compiled kernels (ops are registered under torch.ops.hypops)";
  m.attr("has_cuda") = bool(HYPOPS_WITH_CUDA);
#ifdef _OPENMP
  m.attr("has_openmp") = true;
#else
  m.attr("has_openmp") = false;
#endif
  m.attr("simd") = simd_level();  // what the build targets; the hot loops dispatch at run time:
  // which per-ISA CPU kernels run (csrc/cpu/simd/): "avx512", "avx2", "baseline", "scalar" or "scalar-avx2".
  m.def("cpu_kernels", [] { return std::string(hypops::simd::kernels_name()); });
  m.def("_set_cpu_kernels", [](const std::string& name) {
    if (!hypops::simd::set_kernels(name.c_str())) {
      throw py::value_error("hypops: CPU kernels '" + name + "' are unknown or unsupported by this CPU");
    }
  }, "Switch the CPU kernels (tests and benchmarks): 'avx512', 'avx2', 'baseline', 'scalar' or 'scalar-avx2'.");
  // Output rows are written with streaming (non-temporal) stores when an op's rows exceed this many bytes
  // (csrc/cpu/rows.h: stream_outputs; the last-level cache's size; -1: never).
  m.attr("has_stream_stores") = bool(HYPOPS_STREAM_STORES);  // x86-64 only
  m.def("stream_min_bytes", [] { return hypops::stream_min_bytes(); });
  m.def("_set_stream_min_bytes", [](int64_t bytes) {
    if (bytes < -2) throw py::value_error("hypops: stream_min_bytes must be >= 0, -1 (never) or -2 (the cache's size)");
    hypops::stream_min_bytes_override() = bytes;
  }, "Set the streaming-store threshold (tests): bytes >= 0, -1 never, -2 the last-level cache's size (default).");
  // The vectorised asinh of the kernels in use, over a list (tests compare it with libm's).
  m.def("_kernel_asinh", [](const std::vector<double>& xs, bool as_float) {
    const auto& k = hypops::simd::bank_kernels();
    if (k.asinh_d == nullptr) throw py::value_error("hypops: the scalar kernels have no vectorised asinh");
    const int64_t n = int64_t(xs.size());
    std::vector<double> out(xs.size());
    if (as_float) {
      std::vector<float> in(xs.begin(), xs.end()), o(xs.size());
      k.asinh_f(in.data(), o.data(), n);
      out.assign(o.begin(), o.end());
    } else {
      k.asinh_d(xs.data(), out.data(), n);
    }
    return out;
  });
  // The vectorised tanh / atanh / asinh of the row kernels in use ("tanh", "atanh", "asinh"), likewise.
  m.def("_kernel_math", [](const std::string& fn, const std::vector<double>& xs, bool as_float) {
    const auto& k = hypops::simd::row_kernels();
    if (k.math_d == nullptr) throw py::value_error("hypops: the scalar kernels have no vectorised math");
    using hypops::simd::LaneFn;
    LaneFn f;
    if (fn == "tanh") {
      f = LaneFn::tanh;
    } else if (fn == "atanh") {
      f = LaneFn::atanh;
    } else if (fn == "asinh") {
      f = LaneFn::asinh;
    } else {
      throw py::value_error("hypops: _kernel_math knows tanh, atanh, asinh, not '" + fn + "'");
    }
    const int64_t n = int64_t(xs.size());
    std::vector<double> out(xs.size());
    if (as_float) {
      std::vector<float> in(xs.begin(), xs.end()), o(xs.size());
      k.math_f(f, in.data(), o.data(), n);
      out.assign(o.begin(), o.end());
    } else {
      k.math_d(f, xs.data(), out.data(), n);
    }
    return out;
  });
  m.attr("compiler") = HYPOPS_COMPILER;
  py::dict constants;
  constants["MIN_NORM"] = hypops::MIN_NORM;
  constants["ARTANH_CLAMP"] = hypops::ARTANH_CLAMP;
  constants["TANH_CLAMP"] = hypops::TANH_CLAMP;
  constants["MIN_DENOM"] = hypops::MIN_DENOM;
  constants["PROJ_EPS_FLOAT64"] = hypops::PROJ_EPS_FLOAT64;
  constants["PROJ_EPS_FLOAT32"] = hypops::PROJ_EPS_FLOAT32;
  constants["PROJ_EPS_FLOAT16"] = hypops::PROJ_EPS_FLOAT16;
  constants["PROJ_EPS_BFLOAT16"] = hypops::PROJ_EPS_BFLOAT16;
  m.attr("constants") = constants;
}
