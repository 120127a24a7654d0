// A bank of P gyroplanes: x [N, D], p and a [P, D] -> out[n, k] = dist2plane(x[n], p[k], a[k]).
// Everything the formula needs is |x|^2 per point, |p|^2, |a|^2, <p,a> per plane, and the two GEMMs
// X P^T and X A^T; |x - p|^2 = |x|^2 - 2<x,p> + |p|^2 and <x - p, a> = <x,a> - <p,a>. So memory is
// O(N P) and never the [N, P, D] temporary of the reference. (Forming |x - p|^2 from the GEMM loses the
// accuracy of the pointwise op when a point nearly coincides with a plane's base point; the value is then
// near 0 and its absolute error stays at the float epsilon level.)
//
// Backward: per (n, k) the partials (csrc/cpu/simd/bank_kernels.cpp; Dual numbers on the scalar path) give l_xx, l_pp, l_aa, l_pa, l_dd, l_da (times the incoming
// gradient). Summing dist2plane's per-row gradient over the bank:
//   grad_x = x * rowsum(2 l_xx + 2 l_dd) - 2 L_dd P + L_da A
//   grad_p = p * colsum(2 l_pp + 2 l_dd) + a * colsum(l_pa - l_da) - 2 L_dd^T X
//   grad_a = a * colsum(2 l_aa) + p * colsum(l_pa - l_da) + L_da^T X
// i.e. again GEMMs plus O(N P) scalar work; the three column sums are accumulated by the per-pair kernel
// (per task: in the row type over kBankFlushRows rows, then in double), so only L_dd and L_da are stored
// per pair.
//
// That per-pair scalar work (forward and backward) runs in csrc/cpu/simd/bank_kernels.cpp, vectorised
// across planes and compiled per instruction set (AVX-512, AVX2+FMA or the SSE2 baseline, chosen at run
// time). The plain loops below evaluate the same formula through libm, one pair at a time; they run only
// when the kernels are set to "scalar" or "scalar-avx2" (HYPOPS_CPU_KERNELS or hypops._C._set_cpu_kernels),
// as the reference that tests and benchmarks compare the vectorised kernels with.
#include <torch/library.h>

#include <vector>

#include "common/gyroplane_bank.h"
#include "cpu/rows.h"
#include "cpu/rowwise.h"
#include "cpu/simd/bank_kernels.h"

namespace hypops {
namespace {

void check_bank(const char* op, const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c) {
  check_rows(op, {{&x, "x"}, {&p, "p"}, {&a, "a"}});
  TORCH_CHECK(x.dim() == 2, "hypops.", op, ": x must be [N, D], got ", x.dim(), " dims");
  TORCH_CHECK(p.dim() == 2 && a.dim() == 2 && p.sizes() == a.sizes(), "hypops.", op,
              ": p and a must both be [P, D], got ", p.sizes(), " and ", a.sizes());
  check_c(op, c, x);
}

at::ScalarType acc_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// |x|^2 per point and |p|^2, |a|^2, <p, a> per plane, in one pass of plain loops (the conv driver calls the
// bank once per tile and offset: four reductions as ATen ops there are a dozen small kernels and
// allocations per call). X, P, A: contiguous, in the accumulation type.
struct Norms {
  at::Tensor xx, pp, aa, pa;
};
Norms bank_norms(const at::Tensor& X, const at::Tensor& P, const at::Tensor& A) {
  const int64_t N = X.size(0), Pn = P.size(0), D = X.size(1);
  Norms r{at::empty({N}, X.options()), at::empty({Pn}, X.options()), at::empty({Pn}, X.options()),
          at::empty({Pn}, X.options())};
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "gyroplane_bank_norms", [&] {
    const scalar_t *x = X.data_ptr<scalar_t>(), *p = P.data_ptr<scalar_t>(), *a = A.data_ptr<scalar_t>();
    scalar_t *xx = r.xx.data_ptr<scalar_t>(), *pp = r.pp.data_ptr<scalar_t>(), *aa = r.aa.data_ptr<scalar_t>(),
             *pa = r.pa.data_ptr<scalar_t>();
    at::parallel_for(0, N, row_grain(D), [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n) {
        // row_sq's vector lanes: the plain loop here compiled to one serial chain of adds (8% of a D = 32 bank forward)
        xx[n] = row_sq<scalar_t>(x + n * D, D);
      }
    });
    for (int64_t k = 0; k < Pn; ++k) {
      scalar_t sp = 0, sa = 0, spa = 0;
      for (int64_t d = 0; d < D; ++d) {
        const scalar_t u = p[k * D + d], v = a[k * D + d];
        sp += u * u, sa += v * v, spa += u * v;
      }
      pp[k] = sp, aa[k] = sa, pa[k] = spa;
    }
  });
  return r;
}

at::Tensor gyroplane_bank_cpu(const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
                              bool is_signed, bool scaled) {
  check_bank("gyroplane_bank", x, p, a, c);
  const double cv = read_c_cpu("gyroplane_bank", c);
  const auto at_ = acc_type(x);
  const at::Tensor X = x.to(at_).contiguous(), P = p.to(at_).contiguous(), A = a.to(at_).contiguous();
  const at::Tensor XP = at::mm(X, P.t()).contiguous(), XA = at::mm(X, A.t()).contiguous();
  const auto [xx, pp, aa, pa] = bank_norms(X, P, A);
  const int64_t N = x.size(0), Pn = p.size(0);
  at::Tensor out = at::empty({N, Pn}, x.options());
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "gyroplane_bank", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t *xp = XP.data_ptr<acc_t>(), *xa = XA.data_ptr<acc_t>(), *xx_ = xx.data_ptr<acc_t>(),
                *pp_ = pp.data_ptr<acc_t>(), *aa_ = aa.data_ptr<acc_t>(), *pa_ = pa.data_ptr<acc_t>();
    scalar_t* O = out.data_ptr<scalar_t>();
    const acc_t c_ = acc_t(cv);
    const simd::BankKernels& kern = simd::bank_kernels();
    if (kern.fwd_f != nullptr) {
      const simd::InsideGate<acc_t> inside = simd::inside_gate(pp_, aa_, pa_, Pn, cv);
      const simd::BankFwd<acc_t> args{xx_, xp,     xa,           pp_, aa_, pa_, c_, Pn, is_signed,
                                      scaled, inside.margin, inside.factors.data()};
      at::parallel_for(0, N, row_grain(Pn), [&](int64_t b, int64_t e) {
        std::vector<acc_t> tmp;  // half types: a row in float, rounded on the way out
        if constexpr (!std::is_same_v<acc_t, scalar_t>) tmp.resize(Pn);
        for (int64_t n = b; n < e; ++n) {
          if constexpr (std::is_same_v<acc_t, scalar_t>) {
            simd::run_fwd(kern, args, n, reinterpret_cast<acc_t*>(O) + n * Pn);  // same type here
          } else {
            simd::run_fwd(kern, args, n, tmp.data());
            for (int64_t k = 0; k < Pn; ++k) O[n * Pn + k] = scalar_t(tmp[k]);
          }
        }
      });
      return;
    }
    for_rows(N, Pn, [&](int64_t n) {
      for (int64_t k = 0; k < Pn; ++k) {
        const int64_t j = n * Pn + k;
        const acc_t dd = std::max(xx_[n] - 2 * xp[j] + pp_[k], acc_t(0));
        O[j] = scalar_t(
            dist2plane_value(xx_[n], pp_[k], aa_[k], pa_[k], dd, acc_t(xa[j] - pa_[k]), c_, is_signed, scaled));
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> gyroplane_bank_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
    bool is_signed, bool scaled) {
  check_bank("gyroplane_bank_backward", x, p, a, c);
  const double cv = read_c_cpu("gyroplane_bank_backward", c);
  const auto at_ = acc_type(x);
  const at::Tensor X = x.to(at_).contiguous(), P = p.to(at_).contiguous(), A = a.to(at_).contiguous();
  const at::Tensor XP = at::mm(X, P.t()).contiguous(), XA = at::mm(X, A.t()).contiguous();
  const auto [xx, pp, aa, pa] = bank_norms(X, P, A);
  const int64_t N = x.size(0), Pn = p.size(0);
  const at::Tensor G = grad.to(at_).expand({N, Pn}).contiguous();
  auto opts = X.options();
  at::Tensor Ldd = at::empty({N, Pn}, opts), Lda = at::empty({N, Pn}, opts), Rx = at::empty({N}, opts);
  // The column sums of Mp, Mpa, Ma ([3P]) and dL/dc, in double, without an [N, P] array for those three.
  at::Tensor sums;
  AT_DISPATCH_FLOATING_TYPES(at_, "gyroplane_bank_backward", [&] {
    using acc_t = scalar_t;
    using Du = Dual<double, 7>;  // in double even for float rows (partials can exceed float range where values do not); partials: xx, pp, aa, pa, dd, da, c
    const acc_t *xp = XP.data_ptr<acc_t>(), *xa = XA.data_ptr<acc_t>(), *xx_ = xx.data_ptr<acc_t>(),
                *pp_ = pp.data_ptr<acc_t>(), *aa_ = aa.data_ptr<acc_t>(), *pa_ = pa.data_ptr<acc_t>(),
                *g = G.data_ptr<acc_t>();
    acc_t *ldd = Ldd.data_ptr<acc_t>(), *lda = Lda.data_ptr<acc_t>(), *rx = Rx.data_ptr<acc_t>();
    const simd::BankKernels& kern = simd::bank_kernels();
    if (kern.bwd_d != nullptr) {
      const simd::InsideGate<acc_t> inside = simd::inside_gate(pp_, aa_, pa_, Pn, cv);
      sums = flushed_column_sums<acc_t>(N, row_grain(Pn), 3 * Pn, simd::kBankFlushRows,
                                        [&](acc_t* cs, int64_t f0, int64_t f1) {
        const simd::BankBwd<acc_t> args{xx_,    xp,  xa,  pp_, aa_,       pa_,          g,           cv,
                                        Pn,     is_signed, scaled, ldd, lda, rx, cs, cs + Pn, cs + 2 * Pn,
                                        inside.margin, inside.factors.data()};
        double gcs = 0;
        for (int64_t n = f0; n < f1; ++n) gcs += simd::run_bwd(kern, args, n);
        return gcs;
      });
      return;
    }
    // The "scalar" kernels: the plain loop on Dual numbers, one row at a time (the reference; serial).
    sums = at::zeros({3 * Pn + 1}, at::kDouble);
    double *smp = sums.data_ptr<double>(), *smpa = smp + Pn, *sma = smpa + Pn;
    for (int64_t n = 0; n < N; ++n) {
      double gcn = 0;
      acc_t rxn = 0;
      for (int64_t k = 0; k < Pn; ++k) {
        const int64_t j = n * Pn + k;
        const acc_t dd = std::max(xx_[n] - 2 * xp[j] + pp_[k], acc_t(0));
        const Du l = dist2plane_value(Du::var(xx_[n], 0), Du::var(pp_[k], 1), Du::var(aa_[k], 2),
                                      Du::var(pa_[k], 3), Du::var(dd, 4), Du::var(acc_t(xa[j] - pa_[k]), 5),
                                      Du::var(cv, 6), is_signed, scaled);
        const acc_t gj = g[j];
        ldd[j] = gj * l.d[4];
        lda[j] = gj * l.d[5];
        smp[k] += double(acc_t(2 * gj * (l.d[1] + l.d[4])));
        smpa[k] += double(acc_t(gj * (l.d[3] - l.d[5])));
        sma[k] += double(acc_t(2 * gj * l.d[2]));
        rxn += 2 * gj * (l.d[0] + l.d[4]);
        gcn += double(gj * l.d[6]);
      }
      rx[n] = rxn;
      sma[Pn] += gcn;
    }
  });
  // Then the GEMMs of common/gyroplane_bank.h.
  const double gc = sums[3 * Pn].item<double>();
  const at::Tensor sM = sums.narrow(0, 0, 3 * Pn).to(at_);
  const auto [gx, gp, ga] =
      bank_input_grads(X, P, A, Rx, Ldd, Lda, sM.narrow(0, 0, Pn), sM.narrow(0, Pn, Pn), sM.narrow(0, 2 * Pn, Pn));
  return {gx.to(x.scalar_type()), gp.to(x.scalar_type()), ga.to(x.scalar_type()), grad_c_tensor(gc, c)};
}

}  // namespace

TORCH_LIBRARY_IMPL(hypops, CPU, m) {
  m.impl("gyroplane_bank", &gyroplane_bank_cpu);
  m.impl("gyroplane_bank_backward", &gyroplane_bank_backward_cpu);
}
}  // namespace hypops
