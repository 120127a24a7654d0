// The Python module hypops._C. Importing it loads the op library (TORCH_LIBRARY in csrc/ops.cpp);
// the module itself only exposes how it was built, for hypops.info().
#include <pybind11/pybind11.h>

#include "common/math.h"

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
  m.attr("simd") = simd_level();
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
