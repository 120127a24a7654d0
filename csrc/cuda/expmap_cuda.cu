// expmap(x, u) = x (+) tanh(sqrt(c) lambda_x |u| / 2) u / (sqrt(c)|u|), projected.
// Kernels: binary_forward/binary_backward in cuda/rowwise.cuh (the twin of cpu/rowwise.h); the scalar
// formula is common/math.h's expmap_coef, the same function the CPU kernel evaluates.
#include <torch/library.h>

#include "cuda/rowwise.cuh"

namespace hypops {
namespace cuda {
namespace {
struct ExpmapOp {
  static constexpr const char* arg0 = "x";
  static constexpr const char* arg1 = "u";
  static constexpr bool kUsesDD = false;
  template <typename S, typename T> HYPOPS_HD static Coef2<S> coef(S xx, S yy, S xy, S dd, S c, T eps) {
    (void)dd;
    return expmap_coef(xx, yy, xy, c, eps);
  }
};
at::Tensor expmap_cuda(const at::Tensor& x, const at::Tensor& u, const at::Tensor& c) {
  return binary_forward<ExpmapOp>("expmap", x, u, c);
}
std::tuple<at::Tensor, at::Tensor, at::Tensor> expmap_backward_cuda(const at::Tensor& g, const at::Tensor& x,
                                                                 const at::Tensor& u, const at::Tensor& c) {
  return binary_backward<ExpmapOp>("expmap_backward", g, x, u, c);
}
}  // namespace

TORCH_LIBRARY_IMPL(hypops, CUDA, m) {
  m.impl("expmap", &expmap_cuda);
  m.impl("expmap_backward", &expmap_backward_cuda);
}
}  // namespace cuda
}  // namespace hypops
