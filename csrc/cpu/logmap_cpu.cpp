// logmap(x, y) = (2 / (sqrt(c) lambda_x)) artanh(sqrt(c)|w|) w / |w|, w = (-x) (+) y. Formula: common/math.h.
#include <torch/library.h>

#include "cpu/rowwise.h"

namespace hypops {
namespace {
at::Tensor logmap_cpu(const at::Tensor& x, const at::Tensor& y, const at::Tensor& c) {
  return binary_forward<LogmapOp>("logmap", x, y, c);
}
std::tuple<at::Tensor, at::Tensor, at::Tensor> logmap_backward_cpu(const at::Tensor& g, const at::Tensor& x,
                                                                    const at::Tensor& y, const at::Tensor& c) {
  return binary_backward<LogmapOp>("logmap_backward", g, x, y, c);
}
}  // namespace

TORCH_LIBRARY_IMPL(hypops, CPU, m) {
  m.impl("logmap", &logmap_cpu);
  m.impl("logmap_backward", &logmap_backward_cpu);
}
}  // namespace hypops
