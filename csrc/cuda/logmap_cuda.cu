// logmap(x, y) = (2 / (sqrt(c) lambda_x)) artanh(sqrt(c)|w|) w / |w|, w = (-x) (+) y (no projection).
// Kernels: binary_forward/binary_backward in cuda/rowwise.cuh (the twin of cpu/rowwise.h); the scalar
// formula is common/math.h's logmap_coef, the same function the CPU kernel evaluates.
#include <torch/library.h>

#include "cuda/rowwise.cuh"

namespace hypops {
namespace cuda {
namespace {
struct LogmapOp {
  static constexpr const char* arg0 = "x";
  static constexpr const char* arg1 = "y";
  static constexpr bool kUsesDD = true;
  template <typename S, typename T> HYPOPS_HD static Coef2<S> coef(S xx, S yy, S xy, S dd, S c, T eps) {
    (void)eps;
    return logmap_coef(xx, yy, xy, dd, c);
  }
};
at::Tensor logmap_cuda(const at::Tensor& x, const at::Tensor& y, const at::Tensor& c) {
  return binary_forward<LogmapOp>("logmap", x, y, c);
}
std::tuple<at::Tensor, at::Tensor, at::Tensor> logmap_backward_cuda(const at::Tensor& g, const at::Tensor& x,
                                                                 const at::Tensor& y, const at::Tensor& c) {
  return binary_backward<LogmapOp>("logmap_backward", g, x, y, c);
}
}  // namespace

TORCH_LIBRARY_IMPL(hypops, CUDA, m) {
  m.impl("logmap", &logmap_cuda);
  m.impl("logmap_backward", &logmap_backward_cuda);
}
}  // namespace cuda
}  // namespace hypops
