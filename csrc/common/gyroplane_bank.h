// The gyroplane bank's input gradients from its per-(point, plane) partials, shared by the CPU and CUDA
// kernels (device-agnostic ATen ops: GEMMs and sums). With the incoming gradient folded into the partials,
//   grad_x = x * Rx - 2 L_dd P + L_da A,             Rx = rowsum(2 l_xx + 2 l_dd)
//   grad_p = p * colsum(Mp) + a * colsum(Mpa) - 2 L_dd^T X,   Mp = 2 l_pp + 2 l_dd, Mpa = l_pa - l_da
//   grad_a = a * colsum(Ma) + p * colsum(Mpa) + L_da^T X,      Ma = 2 l_aa
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace hypops {

// From the column sums sMp = colsum(Mp), sMpa = colsum(Mpa), sMa = colsum(Ma) ([P] each).
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> bank_input_grads_from_sums(
    const at::Tensor& X, const at::Tensor& P, const at::Tensor& A, const at::Tensor& Rx, const at::Tensor& Ldd,
    const at::Tensor& Lda, const at::Tensor& sMp, const at::Tensor& sMpa, const at::Tensor& sMa) {
  const at::Tensor spa = sMpa.unsqueeze(1);
  at::Tensor gx = at::addmm(X * Rx.unsqueeze(1), Ldd, P, 1, -2).addmm_(Lda, A);
  at::Tensor gp = at::addmm(P * sMp.unsqueeze(1) + A * spa, Ldd.t(), X, 1, -2);
  at::Tensor ga = at::addmm(A * sMa.unsqueeze(1) + P * spa, Lda.t(), X);
  return {gx, gp, ga};
}

inline std::tuple<at::Tensor, at::Tensor, at::Tensor> bank_input_grads(
    const at::Tensor& X, const at::Tensor& P, const at::Tensor& A, const at::Tensor& Rx, const at::Tensor& Ldd,
    const at::Tensor& Lda, const at::Tensor& Mp, const at::Tensor& Mpa, const at::Tensor& Ma) {
  return bank_input_grads_from_sums(X, P, A, Rx, Ldd, Lda, Mp.sum(0), Mpa.sum(0), Ma.sum(0));
}

}  // namespace hypops
