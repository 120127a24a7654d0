// expmap(x, u) = x (+) tanh(sqrt(c) lambda_x |u| / 2) u / (sqrt(c)|u|), projected. Formula: common/math.h.
#include <torch/library.h>

#include "cpu/rowwise.h"

namespace hypops {
namespace {
at::Tensor expmap_cpu(const at::Tensor& x, const at::Tensor& u, const at::Tensor& c) {
  return binary_forward<ExpmapOp>("expmap", x, u, c);
}
std::tuple<at::Tensor, at::Tensor, at::Tensor> expmap_backward_cpu(const at::Tensor& g, const at::Tensor& x,
                                                                    const at::Tensor& u, const at::Tensor& c) {
  return binary_backward<ExpmapOp>("expmap_backward", g, x, u, c);
}
}  // namespace

TORCH_LIBRARY_IMPL(hypops, CPU, m) {
  m.impl("expmap", &expmap_cpu);
  m.impl("expmap_backward", &expmap_backward_cpu);
}
}  // namespace hypops
