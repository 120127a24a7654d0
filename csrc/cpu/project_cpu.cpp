// project(x): x rescaled to norm (1 - eps)/sqrt(c) when it is longer. Formula: common/math.h.
#include <torch/library.h>

#include "cpu/rowwise.h"

namespace hypops {
namespace {
at::Tensor project_cpu(const at::Tensor& x, const at::Tensor& c) { return unary_forward<ProjectOp>("project", x, c); }
std::tuple<at::Tensor, at::Tensor> project_backward_cpu(const at::Tensor& g, const at::Tensor& x, const at::Tensor& c) {
  return unary_backward<ProjectOp>("project_backward", g, x, c);
}
}  // namespace

TORCH_LIBRARY_IMPL(hypops, CPU, m) {
  m.impl("project", &project_cpu);
  m.impl("project_backward", &project_backward_cpu);
}
}  // namespace hypops
