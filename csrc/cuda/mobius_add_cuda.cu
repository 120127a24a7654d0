// mobius_add(x, y) = x (+) y, projected.
// Kernels: binary_forward/binary_backward in cuda/rowwise.cuh (the twin of cpu/rowwise.h); the scalar
// formula is common/math.h's mobius_add_coef, the same function the CPU kernel evaluates.
#include <torch/library.h>

#include "cuda/rowwise.cuh"

namespace hypops {
namespace cuda {
namespace {
struct MobiusAddOp {
  static constexpr const char* arg0 = "x";
  static constexpr const char* arg1 = "y";
  static constexpr bool kUsesDD = false;
  template <typename S, typename T> HYPOPS_HD static Coef2<S> coef(S xx, S yy, S xy, S dd, S c, T eps) {
    (void)dd;
    return mobius_add_coef(xx, yy, xy, c, eps);
  }
};
at::Tensor mobius_add_cuda(const at::Tensor& x, const at::Tensor& y, const at::Tensor& c) {
  return binary_forward<MobiusAddOp>("mobius_add", x, y, c);
}
std::tuple<at::Tensor, at::Tensor, at::Tensor> mobius_add_backward_cuda(const at::Tensor& g, const at::Tensor& x,
                                                                 const at::Tensor& y, const at::Tensor& c) {
  return binary_backward<MobiusAddOp>("mobius_add_backward", g, x, y, c);
}
}  // namespace

TORCH_LIBRARY_IMPL(hypops, CUDA, m) {
  m.impl("mobius_add", &mobius_add_cuda);
  m.impl("mobius_add_backward", &mobius_add_backward_cuda);
}
}  // namespace cuda
}  // namespace hypops
