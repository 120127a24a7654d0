// mobius_add(x, y) = x (+) y, projected. Formula: common/math.h.
#include <torch/library.h>

#include "cpu/rowwise.h"

namespace hypops {
namespace {
at::Tensor mobius_add_cpu(const at::Tensor& x, const at::Tensor& y, const at::Tensor& c) {
  return binary_forward<MobiusAddOp>("mobius_add", x, y, c);
}
std::tuple<at::Tensor, at::Tensor, at::Tensor> mobius_add_backward_cpu(const at::Tensor& g, const at::Tensor& x,
                                                                    const at::Tensor& y, const at::Tensor& c) {
  return binary_backward<MobiusAddOp>("mobius_add_backward", g, x, y, c);
}
}  // namespace

TORCH_LIBRARY_IMPL(hypops, CPU, m) {
  m.impl("mobius_add", &mobius_add_cpu);
  m.impl("mobius_add_backward", &mobius_add_backward_cpu);
}
}  // namespace hypops
