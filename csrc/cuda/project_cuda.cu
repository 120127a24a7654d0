// project(x): x rescaled to norm (1 - eps)/sqrt(c) when it is longer (eps per dtype).
// Kernels: unary_forward/unary_backward in cuda/rowwise.cuh (the twin of cpu/rowwise.h); the scalar
// formula is common/math.h's project_coef, the same function the CPU kernel evaluates.
#include <torch/library.h>

#include "cuda/rowwise.cuh"

namespace hypops {
namespace cuda {
namespace {
struct ProjectOp {
  static constexpr const char* arg = "x";
  template <typename S, typename T> HYPOPS_HD static S coef(S xx, S c, T eps) { return project_coef(xx, c, eps); }
};
at::Tensor project_cuda(const at::Tensor& x, const at::Tensor& c) { return unary_forward<ProjectOp>("project", x, c); }
std::tuple<at::Tensor, at::Tensor> project_backward_cuda(const at::Tensor& g, const at::Tensor& x, const at::Tensor& c) {
  return unary_backward<ProjectOp>("project_backward", g, x, c);
}
}  // namespace

TORCH_LIBRARY_IMPL(hypops, CUDA, m) {
  m.impl("project", &project_cuda);
  m.impl("project_backward", &project_backward_cuda);
}
}  // namespace cuda
}  // namespace hypops
