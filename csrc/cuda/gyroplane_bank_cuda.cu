// A bank of P gyroplanes: x [N, D], p and a [P, D] -> out[n, k] = dist2plane(x[n], p[k], a[k])
// (common/math.h: dist2plane_value), exactly as csrc/cpu/gyroplane_bank_cpu.cpp: the formula needs
// |x|^2 per point, |p|^2, |a|^2, <p,a> per plane, and the GEMMs X P^T and X A^T (at::mm, cuBLAS);
// |x - p|^2 = |x|^2 - 2<x,p> + |p|^2 and <x - p, a> = <x,a> - <p,a>. Memory is O(N P), never [N, P, D].
// GEMMs and the small reductions run in the accumulation type (float for half types, as on the CPU).
//
// Backward: per (n, k) the Dual partials give l_xx, l_pp, l_aa, l_pa, l_dd, l_da (times the incoming
// gradient); summing dist2plane's per-row gradient over the bank:
//   grad_x = x * rowsum(2 l_xx + 2 l_dd) - 2 L_dd P + L_da A
//   grad_p = p * colsum(2 l_pp + 2 l_dd) + a * colsum(l_pa - l_da) - 2 L_dd^T X
//   grad_a = a * colsum(2 l_aa) + p * colsum(l_pa - l_da) + L_da^T X
// The scalar work is the kernels below; the GEMMs and column sums are ATen calls, as on the CPU.
//
// Thread mapping. Forward is purely elementwise over [N, P]: one thread per entry, consecutive threads
// on consecutive k (coalesced on every [N, P] array; the per-plane vectors are small and cached).
// Backward also needs rowsum over k, so it uses the row-group mapping of cuda/rows.cuh with P as the row
// length: G = min(32, pow2 >= P) lanes per point n stride over the planes and butterfly the row sum;
// grad_c goes through per-thread doubles and per-block partials, like the other kernels.
#include <torch/library.h>

#include "common/gyroplane_bank.h"
#include "cuda/rows.cuh"

namespace hypops {
namespace cuda {
namespace {

void check_bank(const char* op, const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c) {
  check_rows(op, {{&x, "x"}, {&p, "p"}, {&a, "a"}});
  TORCH_CHECK(x.dim() == 2, "hypops.", op, ": x must be [N, D], got ", x.dim(), " dims");
  TORCH_CHECK(p.dim() == 2 && a.dim() == 2 && p.sizes() == a.sizes(), "hypops.", op,
              ": p and a must both be [P, D], got ", p.sizes(), " and ", a.sizes());
  check_c(op, c, x);
}

at::ScalarType acc_type(const at::Tensor& x) { return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// |x|^2 - 2<x,p> + |p|^2 floored at 0 against rounding (std::max(v, 0) of the CPU kernel, NaN included).
template <typename acc_t> __device__ __forceinline__ acc_t bank_dd(acc_t xx, acc_t xp, acc_t pp) {
  const acc_t v = xx - 2 * xp + pp;
  return v < acc_t(0) ? acc_t(0) : v;
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    bank_forward_kernel(const at::opmath_type<scalar_t>* __restrict__ xp, const at::opmath_type<scalar_t>* __restrict__ xa,
                        const at::opmath_type<scalar_t>* __restrict__ xx, const at::opmath_type<scalar_t>* __restrict__ pp,
                        const at::opmath_type<scalar_t>* __restrict__ aa, const at::opmath_type<scalar_t>* __restrict__ pa,
                        scalar_t* __restrict__ out, int64_t N, int64_t Pn, Curv curv, bool is_signed, bool scaled) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t c = acc_t(curv.load());
  const int64_t total = N * Pn;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < total; j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = j / Pn, k = j % Pn;
    const acc_t dd = bank_dd(xx[n], xp[j], pp[k]);
    out[j] = static_cast<scalar_t>(
        dist2plane_value(xx[n], pp[k], aa[k], pa[k], dd, acc_t(xa[j] - pa[k]), c, is_signed, scaled));
  }
}

// acc_t is float or double here (the CPU kernel dispatches the backward on the accumulation type too).
template <typename acc_t, int G>
__global__ void __launch_bounds__(kThreads)
    bank_backward_kernel(const acc_t* __restrict__ xp, const acc_t* __restrict__ xa, const acc_t* __restrict__ xx,
                         const acc_t* __restrict__ pp, const acc_t* __restrict__ aa, const acc_t* __restrict__ pa,
                         const acc_t* __restrict__ gr, acc_t* __restrict__ ldd, acc_t* __restrict__ lda,
                         acc_t* __restrict__ mp, acc_t* __restrict__ mpa, acc_t* __restrict__ ma, acc_t* __restrict__ rx,
                         int64_t N, int64_t Pn, Curv curv, bool is_signed, bool scaled, double* __restrict__ partials) {
  using Du = Dual<acc_t, 7>;  // partials: xx, pp, aa, pa, dd, da, c
  const acc_t c = acc_t(curv.load());
  const GroupIdx g = group_idx<G>(N);
  double gc = 0;
  for (int64_t n = g.first; n < g.bound; n += g.step) {
    const bool active = n < N;
    acc_t rxn = 0;
    if (active) {
      const acc_t xxn = xx[n];
      for (int64_t k = g.lane; k < Pn; k += G) {
        const int64_t j = n * Pn + k;
        const acc_t dd = bank_dd(xxn, xp[j], pp[k]);
        const Du l = dist2plane_value(Du::var(xxn, 0), Du::var(pp[k], 1), Du::var(aa[k], 2), Du::var(pa[k], 3),
                                      Du::var(dd, 4), Du::var(acc_t(xa[j] - pa[k]), 5), Du::var(c, 6), is_signed,
                                      scaled);
        const acc_t gj = gr[j];
        ldd[j] = gj * l.d[4];
        lda[j] = gj * l.d[5];
        mp[j] = 2 * gj * (l.d[1] + l.d[4]);
        mpa[j] = gj * (l.d[3] - l.d[5]);
        ma[j] = 2 * gj * l.d[2];
        rxn += 2 * gj * (l.d[0] + l.d[4]);
        gc += double(gj * l.d[6]);
      }
    }
    rxn = group_sum<G>(rxn);
    if (active && g.lane == 0) rx[n] = rxn;
  }
  block_partial(gc, partials);
}

struct BankInputs {
  at::Tensor X, P, A, XP, XA, xx, pp, aa, pa;
};
BankInputs bank_inputs(const at::Tensor& x, const at::Tensor& p, const at::Tensor& a) {
  const auto at_ = acc_type(x);
  BankInputs b;
  b.X = x.to(at_);
  b.P = p.to(at_);
  b.A = a.to(at_);
  b.XP = at::mm(b.X, b.P.t()).contiguous();
  b.XA = at::mm(b.X, b.A.t()).contiguous();
  b.xx = b.X.square().sum(1).contiguous();
  b.pp = b.P.square().sum(1).contiguous();
  b.aa = b.A.square().sum(1).contiguous();
  b.pa = (b.P * b.A).sum(1).contiguous();
  return b;
}

at::Tensor gyroplane_bank_cuda(const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
                               bool is_signed, bool scaled) {
  check_bank("gyroplane_bank", x, p, a, c);
  const c10::cuda::CUDAGuard guard(x.device());
  const CurvArg cv = curv_arg("gyroplane_bank", c);
  const int64_t N = x.size(0), Pn = p.size(0);
  at::Tensor out = at::empty({N, Pn}, x.options());
  if (N == 0 || Pn == 0) return out;
  const BankInputs b = bank_inputs(x, p, a);
  const int64_t blocks = blocks_for(N * Pn, 1, x.get_device());
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "gyroplane_bank_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    bank_forward_kernel<scalar_t><<<unsigned(blocks), kThreads, 0, stream()>>>(
        b.XP.data_ptr<acc_t>(), b.XA.data_ptr<acc_t>(), b.xx.data_ptr<acc_t>(), b.pp.data_ptr<acc_t>(),
        b.aa.data_ptr<acc_t>(), b.pa.data_ptr<acc_t>(), out.data_ptr<scalar_t>(), N, Pn, cv.k, is_signed, scaled);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> gyroplane_bank_backward_cuda(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
    bool is_signed, bool scaled) {
  check_bank("gyroplane_bank_backward", x, p, a, c);
  check_cuda("gyroplane_bank_backward", x, "x", grad, "grad");
  const c10::cuda::CUDAGuard guard(x.device());
  const CurvArg cv = curv_arg("gyroplane_bank_backward", c);
  const auto at_ = acc_type(x);
  const BankInputs b = bank_inputs(x, p, a);
  const int64_t N = x.size(0), Pn = p.size(0);
  const at::Tensor G = grad.to(at_).expand({N, Pn}).contiguous();
  auto opts = b.X.options();
  at::Tensor Ldd = at::empty({N, Pn}, opts), Lda = at::empty({N, Pn}, opts), Mp = at::empty({N, Pn}, opts),
             Mpa = at::empty({N, Pn}, opts), Ma = at::empty({N, Pn}, opts), Rx = at::empty({N}, opts);
  const int64_t blocks = (N > 0 && Pn > 0) ? blocks_for(N, group_width(Pn), x.get_device()) : 0;
  at::Tensor partials = partials_for(blocks, x);
  if (blocks > 0) {
    AT_DISPATCH_FLOATING_TYPES(at_, "gyroplane_bank_backward_cuda", [&] {
      using acc_t = scalar_t;
      with_group_width(Pn, [&](auto gw) {
        constexpr int Gw = decltype(gw)::value;
        bank_backward_kernel<acc_t, Gw><<<unsigned(blocks), kThreads, 0, stream()>>>(
            b.XP.data_ptr<acc_t>(), b.XA.data_ptr<acc_t>(), b.xx.data_ptr<acc_t>(), b.pp.data_ptr<acc_t>(),
            b.aa.data_ptr<acc_t>(), b.pa.data_ptr<acc_t>(), G.data_ptr<acc_t>(), Ldd.data_ptr<acc_t>(),
            Lda.data_ptr<acc_t>(), Mp.data_ptr<acc_t>(), Mpa.data_ptr<acc_t>(), Ma.data_ptr<acc_t>(),
            Rx.data_ptr<acc_t>(), N, Pn, cv.k, is_signed, scaled, partials.data_ptr<double>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  } else {
    // No points or no planes: every partial is an empty sum.
    Ldd.zero_();
    Lda.zero_();
    Mp.zero_();
    Mpa.zero_();
    Ma.zero_();
    Rx.zero_();
  }
  const at::Tensor &X = b.X, &P = b.P, &A = b.A;
  const auto [gx, gp, ga] = bank_input_grads(X, P, A, Rx, Ldd, Lda, Mp.sum(0), Mpa.sum(0), Ma.sum(0));
  return {gx.to(x.scalar_type()), gp.to(x.scalar_type()), ga.to(x.scalar_type()), finish_grad_c(partials, c)};
}

}  // namespace

TORCH_LIBRARY_IMPL(hypops, CUDA, m) {
  m.impl("gyroplane_bank", &gyroplane_bank_cuda);
  m.impl("gyroplane_bank_backward", &gyroplane_bank_backward_cuda);
}
}  // namespace cuda
}  // namespace hypops
