// logmap0(y) = artanh(sqrt(c)|y|) y / (sqrt(c)|y|) (no projection). Formula: common/math.h.
#include <torch/library.h>

#include "cpu/rowwise.h"

namespace hypops {
namespace {
at::Tensor logmap0_cpu(const at::Tensor& y, const at::Tensor& c) { return unary_forward<Logmap0Op>("logmap0", y, c); }
std::tuple<at::Tensor, at::Tensor> logmap0_backward_cpu(const at::Tensor& g, const at::Tensor& y, const at::Tensor& c) {
  return unary_backward<Logmap0Op>("logmap0_backward", g, y, c);
}
}  // namespace

TORCH_LIBRARY_IMPL(hypops, CPU, m) {
  m.impl("logmap0", &logmap0_cpu);
  m.impl("logmap0_backward", &logmap0_backward_cpu);
}
}  // namespace hypops
