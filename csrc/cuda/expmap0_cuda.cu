// expmap0(u) = tanh(sqrt(c)|u|) u / (sqrt(c)|u|), projected.
// Kernels: unary_forward/unary_backward in cuda/rowwise.cuh (the twin of cpu/rowwise.h); the scalar
// formula is common/math.h's expmap0_coef, the same function the CPU kernel evaluates.
#include <torch/library.h>

#include "cuda/rowwise.cuh"

namespace hypops {
namespace cuda {
namespace {
struct Expmap0Op {
  static constexpr const char* arg = "u";
  template <typename S, typename T> HYPOPS_HD static S coef(S xx, S c, T eps) { return expmap0_coef(xx, c, eps); }
};
at::Tensor expmap0_cuda(const at::Tensor& u, const at::Tensor& c) { return unary_forward<Expmap0Op>("expmap0", u, c); }
std::tuple<at::Tensor, at::Tensor> expmap0_backward_cuda(const at::Tensor& g, const at::Tensor& u, const at::Tensor& c) {
  return unary_backward<Expmap0Op>("expmap0_backward", g, u, c);
}
}  // namespace

TORCH_LIBRARY_IMPL(hypops, CUDA, m) {
  m.impl("expmap0", &expmap0_cuda);
  m.impl("expmap0_backward", &expmap0_backward_cuda);
}
}  // namespace cuda
}  // namespace hypops
