// The gyroplane bank's input gradients from its per-(point, plane) partials, shared by the CPU and CUDA
// kernels (device-agnostic ATen ops: GEMMs and sums). With the incoming gradient folded into the partials,
//   grad_x = x * Rx - 2 L_dd P + L_da A,             Rx = rowsum(2 l_xx + 2 l_dd)
//   grad_p = p * colsum(Mp) + a * colsum(Mpa) - 2 L_dd^T X,   Mp = 2 l_pp + 2 l_dd, Mpa = l_pa - l_da
//   grad_a = a * colsum(Ma) + p * colsum(Mpa) + L_da^T X,      Ma = 2 l_aa
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace hypops {

inline std::tuple<at::Tensor, at::Tensor, at::Tensor> bank_input_grads(
    const at::Tensor& X, const at::Tensor& P, const at::Tensor& A, const at::Tensor& Rx, const at::Tensor& Ldd,
    const at::Tensor& Lda, const at::Tensor& Mp, const at::Tensor& Mpa, const at::Tensor& Ma) {
  const at::Tensor spa = Mpa.sum(0).unsqueeze(1);
  at::Tensor gx = X * Rx.unsqueeze(1) - 2 * at::mm(Ldd, P) + at::mm(Lda, A);
  at::Tensor gp = P * Mp.sum(0).unsqueeze(1) + A * spa - 2 * at::mm(Ldd.t(), X);
  at::Tensor ga = A * Ma.sum(0).unsqueeze(1) + P * spa + at::mm(Lda.t(), X);
  return {gx, gp, ga};
}

}  // namespace hypops
