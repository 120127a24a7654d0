// dist2plane(x, p, a) = (1/sqrt(c)) asinh(2 sqrt(c) <w, a> / ((1 - c|w|^2) |a|)), w = (-p) (+) x,
// from the reductions |x|^2, |p|^2, |a|^2, <p,a>, |x-p|^2, <x-p,a> (common/math.h: dist2plane_value).
// [..., D] -> [...].
//
// Backward: with l the formula and g the incoming gradient (partials written l_xx, ...),
//   grad_x = g (2 l_xx x + 2 l_dd (x - p) + l_da a)
//   grad_p = g (2 l_pp p + (l_pa - l_da) a - 2 l_dd (x - p))
//   grad_a = g (2 l_aa a + l_pa p + l_da (x - p))
//
// The per-row formula runs vectorised over blocks of rows (cpu/simd/row_kernels.h; the scheme is described
// in cpu/rowwise.h; backward through the hand-derived partials dist2plane_grad of common/math.h) unless the
// kernels are set to "scalar", which runs the plain per-row loops below (Dual numbers in backward).
#include <torch/library.h>

#include "cpu/rows.h"
#include "cpu/simd/row_kernels.h"

namespace hypops {
namespace {

template <typename scalar_t, typename acc_t> struct PlaneRed {
  acc_t xx = 0, pp = 0, aa = 0, pa = 0, dd = 0, da = 0;
};

template <typename scalar_t, typename acc_t> HYPOPS_SWEEP
inline PlaneRed<scalar_t, acc_t> plane_reductions(const scalar_t* xi, const scalar_t* pi, const scalar_t* ai,
                                                  int64_t D) {
  const auto s = row_reductions<6, acc_t>(D, [](auto* s, auto x, auto p, auto a) HYPOPS_SWEEP {
    const auto df = x - p;
    s[0] += x * x;
    s[1] += p * p;
    s[2] += a * a;
    s[3] += p * a;
    s[4] += df * df;
    s[5] += df * a;
  }, xi, pi, ai);
  return {s[0], s[1], s[2], s[3], s[4], s[5]};
}

template <typename acc_t, typename scalar_t, simd::SweepIsa I = simd::SweepIsa::baseline> HYPOPS_SWEEP
inline void plane_bwd_out(scalar_t* ox, scalar_t* op, scalar_t* oa, const scalar_t* xi, const scalar_t* pi,
                          const scalar_t* ai, acc_t lxx, acc_t lpp, acc_t laa, acc_t lpa, acc_t ldd, acc_t lda,
                          int64_t D, Stores<I> st = {}) {
  if constexpr (kStreamable<scalar_t>) {
    if (st.stream) {
      constexpr int kBytes = Stores<I>::kBytes;
      const acc_t lpa_da = lpa - lda;
      stream_row<kBytes>(ox, D, [=](auto x, auto p, auto a) HYPOPS_SWEEP { return lxx * x + ldd * (x - p) + lda * a; },
                         xi, pi, ai);
      stream_row<kBytes>(op, D, [=](auto x, auto p, auto a) HYPOPS_SWEEP { return lpp * p + lpa_da * a - ldd * (x - p); },
                         xi, pi, ai);
      stream_row<kBytes>(oa, D, [=](auto x, auto p, auto a) HYPOPS_SWEEP { return laa * a + lpa * p + lda * (x - p); },
                         xi, pi, ai);
      return;
    }
  }
_Pragma("omp simd")
  for (int64_t d = 0; d < D; ++d) {
    const acc_t xv = acc_t(xi[d]), pv = acc_t(pi[d]), av = acc_t(ai[d]);
    const acc_t df = xv - pv;
    ox[d] = scalar_t(lxx * xv + ldd * df + lda * av);
    op[d] = scalar_t(lpp * pv + (lpa - lda) * av - ldd * df);
    oa[d] = scalar_t(laa * av + lpa * pv + lda * df);
  }
}

at::Tensor dist2plane_cpu(const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
                          bool is_signed, bool scaled) {
  check_rows("dist2plane", {{&x, "x"}, {&p, "p"}, {&a, "a"}});
  check_c("dist2plane", c, x);
  const double cv = read_c_cpu("dist2plane", c);
  Rows r = make_rows({x, p, a});
  std::vector<int64_t> out_shape(r.shape.begin(), r.shape.end() - 1);
  at::Tensor out = at::empty(out_shape, x.options());
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "dist2plane", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto X = row_of<scalar_t>(r.mats[0]);
    const auto P = row_of<scalar_t>(r.mats[1]);
    const auto A = row_of<scalar_t>(r.mats[2]);
    scalar_t* O = out.data_ptr<scalar_t>();
    const acc_t c_ = acc_t(cv);
    const simd::RowKernels& kern = simd::row_kernels();
    if (kern.plane_fwd_f != nullptr) {
      // the next block's rows, prefetched during this block's first sweep (cpu/rows.h: prefetch_row; the
      // output is one value a row, so there is no output sweep to spread them over): in one process
      // against no prefetch, 1.10x at 2^18 x 64 and 1.12x at 2^20 x 64 (the backward prefetches in its output
      // sweep: see there)
      const bool prefetch = streamed_bytes(r.mats) >= kPrefetchMinBytes;
      for_row_blocks(r.N, r.D, [&](auto isa, int64_t b, int64_t e) HYPOPS_SWEEP {
        constexpr int64_t B = kMaxRowBlock;
        acc_t xx[B], pp[B], aa[B], pa[B], dd[B], da[B], o[B];
        for (int64_t i = b; i < e; ++i) {
          if (prefetch) prefetch_row(i + (e - b), r.N, r.D, X, P, A);
          const auto q = plane_reductions<scalar_t, acc_t>(X(i), P(i), A(i), r.D);
          const int64_t j = i - b;
          xx[j] = q.xx, pp[j] = q.pp, aa[j] = q.aa, pa[j] = q.pa, dd[j] = q.dd, da[j] = q.da;
        }
        simd::run(kern, simd::PlaneFwd<acc_t>{xx, pp, aa, pa, dd, da, o, c_, e - b, is_signed, scaled});
        for (int64_t i = b; i < e; ++i) O[i] = scalar_t(o[i - b]);
      }, kern.sweeps);
      return;
    }
    for_rows(r.N, r.D, [&](int64_t i) HYPOPS_SWEEP {
      const auto q = plane_reductions<scalar_t, acc_t>(X(i), P(i), A(i), r.D);
      O[i] = scalar_t(dist2plane_value(q.xx, q.pp, q.aa, q.pa, q.dd, q.da, c_, is_signed, scaled));
    }, kern.sweeps);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> dist2plane_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
    bool is_signed, bool scaled) {
  check_rows("dist2plane_backward", {{&x, "x"}, {&p, "p"}, {&a, "a"}});
  check_c("dist2plane_backward", c, x);
  const double cv = read_c_cpu("dist2plane_backward", c);
  Rows r = make_rows({x, p, a});
  std::vector<int64_t> out_shape(r.shape.begin(), r.shape.end() - 1);
  at::Tensor g = grad.to(x.scalar_type()).expand(out_shape).reshape({r.N}).contiguous();
  at::Tensor gx = at::empty({r.N, r.D}, x.options());
  at::Tensor gp = at::empty({r.N, r.D}, x.options());
  at::Tensor ga = at::empty({r.N, r.D}, x.options());
  double gc = 0;
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "dist2plane_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    using Du = Dual<double, 7>;  // in double even for float rows (partials can exceed float range where values do not); partials: xx, pp, aa, pa, dd, da, c
    const auto X = row_of<scalar_t>(r.mats[0]);
    const auto P = row_of<scalar_t>(r.mats[1]);
    const auto A = row_of<scalar_t>(r.mats[2]);
    const scalar_t* G = g.data_ptr<scalar_t>();
    scalar_t *GX = gx.data_ptr<scalar_t>(), *GP = gp.data_ptr<scalar_t>(), *GA = ga.data_ptr<scalar_t>();
    const int64_t D = r.D;
    const simd::RowKernels& kern = simd::row_kernels();
    if (kern.plane_bwd_f != nullptr) {
      // three output rows a row, so past the cache plain stores would read three lines for ownership (a
      // floor of 4x clone for forward+backward); streaming ones measured 1.26-1.38x (2^20 x 64 float32, in one
      // process, 64-byte vectors; 16-byte ones had measured 0.98-1.04x), and prefetching the next block's rows on
      // top of them 1.02-1.10x (2^18 and 2^20 x 64; without streaming stores it had measured 0.97-1.01x)
      const int64_t in_bytes = streamed_bytes(r.mats);
      const bool prefetch = in_bytes >= kPrefetchMinBytes;
      const bool stream = stream_outputs(in_bytes + gx.nbytes() + gp.nbytes() + ga.nbytes());
      gc = sum_row_blocks(r.N, D, [&](auto isa, int64_t b, int64_t e) HYPOPS_SWEEP {
        constexpr int64_t B = kMaxRowBlock;
        acc_t xx[B], pp[B], aa[B], pa[B], dd[B], da[B], gi[B];
        acc_t lxx[B], lpp[B], laa[B], lpa[B], ldd[B], lda[B];
        for (int64_t i = b; i < e; ++i) {
          const auto q = plane_reductions<scalar_t, acc_t>(X(i), P(i), A(i), D);
          const int64_t j = i - b;
          xx[j] = q.xx, pp[j] = q.pp, aa[j] = q.aa, pa[j] = q.pa, dd[j] = q.dd, da[j] = q.da, gi[j] = acc_t(G[i]);
        }
        const double s = simd::run(kern, simd::PlaneBwd<acc_t>{xx, pp, aa, pa, dd, da, gi, lxx, lpp, laa, lpa, ldd,
                                                               lda, cv, e - b, is_signed, scaled});
        for (int64_t i = b; i < e; ++i) {
          const int64_t j = i - b;
          if (prefetch) prefetch_row(i + (e - b), r.N, D, X, P, A);
          plane_bwd_out(GX + i * D, GP + i * D, GA + i * D, X(i), P(i), A(i), lxx[j], lpp[j], laa[j], lpa[j], ldd[j],
                        lda[j], D, stores(isa, stream));
        }
        return s;
      }, kern.sweeps);
      return;
    }
    gc = sum_rows(r.N, D, [&](int64_t i) HYPOPS_SWEEP {
      const scalar_t *xi = X(i), *pi = P(i), *ai = A(i);
      const auto q = plane_reductions<scalar_t, acc_t>(xi, pi, ai, D);
      const Du l = dist2plane_value(Du::var(q.xx, 0), Du::var(q.pp, 1), Du::var(q.aa, 2), Du::var(q.pa, 3),
                                    Du::var(q.dd, 4), Du::var(q.da, 5), Du::var(cv, 6), is_signed, scaled);
      const acc_t gi = acc_t(G[i]);
      const acc_t lxx = 2 * gi * l.d[0], lpp = 2 * gi * l.d[1], laa = 2 * gi * l.d[2], lpa = gi * l.d[3],
                  ldd = 2 * gi * l.d[4], lda = gi * l.d[5];
      plane_bwd_out(GX + i * D, GP + i * D, GA + i * D, xi, pi, ai, lxx, lpp, laa, lpa, ldd, lda, D);
      return gi * l.d[6];
    }, kern.sweeps);
  });
  return {reduce_to(gx, r.shape, x), reduce_to(gp, r.shape, p), reduce_to(ga, r.shape, a), grad_c_tensor(gc, c)};
}

}  // namespace

TORCH_LIBRARY_IMPL(hypops, CPU, m) {
  m.impl("dist2plane", &dist2plane_cpu);
  m.impl("dist2plane_backward", &dist2plane_backward_cpu);
}
}  // namespace hypops
