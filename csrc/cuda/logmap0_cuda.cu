// logmap0(y) = artanh(sqrt(c)|y|) y / (sqrt(c)|y|) (no projection).
// Kernels: unary_forward/unary_backward in cuda/rowwise.cuh (the twin of cpu/rowwise.h); the scalar
// formula is common/math.h's logmap0_coef, the same function the CPU kernel evaluates.
#include <torch/library.h>

#include "cuda/rowwise.cuh"

namespace hypops {
namespace cuda {
namespace {
struct Logmap0Op {
  static constexpr const char* arg = "y";
  template <typename S, typename T> HYPOPS_HD static S coef(S yy, S c, T) { return logmap0_coef(yy, c); }
};
at::Tensor logmap0_cuda(const at::Tensor& y, const at::Tensor& c) { return unary_forward<Logmap0Op>("logmap0", y, c); }
std::tuple<at::Tensor, at::Tensor> logmap0_backward_cuda(const at::Tensor& g, const at::Tensor& y, const at::Tensor& c) {
  return unary_backward<Logmap0Op>("logmap0_backward", g, y, c);
}
}  // namespace

TORCH_LIBRARY_IMPL(hypops, CUDA, m) {
  m.impl("logmap0", &logmap0_cuda);
  m.impl("logmap0_backward", &logmap0_backward_cuda);
}
}  // namespace cuda
}  // namespace hypops
