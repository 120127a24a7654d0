// expmap0(u) = tanh(sqrt(c)|u|) u / (sqrt(c)|u|), projected. Formula: common/math.h.
#include <torch/library.h>

#include "cpu/rowwise.h"

namespace hypops {
namespace {
at::Tensor expmap0_cpu(const at::Tensor& u, const at::Tensor& c) { return unary_forward<Expmap0Op>("expmap0", u, c); }
std::tuple<at::Tensor, at::Tensor> expmap0_backward_cpu(const at::Tensor& g, const at::Tensor& u, const at::Tensor& c) {
  return unary_backward<Expmap0Op>("expmap0_backward", g, u, c);
}
}  // namespace

TORCH_LIBRARY_IMPL(hypops, CPU, m) {
  m.impl("expmap0", &expmap0_cpu);
  m.impl("expmap0_backward", &expmap0_backward_cpu);
}
}  // namespace hypops
