// Wrapped normal on the ball: rsample and log_prob, forward and backward (formulas: common/math.h,
// wrapped_normal_rsample_coef and wrapped_normal_log_prob_rows).
//
// std is diagonal [..., D] or isotropic [..., 1]; the isotropic case is read with a column stride of 0
// (template flag ISO) instead of being expanded to [..., D] in memory (row views: cpu/wrapped_normal_rows.h,
// shared with the CUDA kernels).
//
// rsample backward: with v = std * eps / 2 and l = A <g,mu> + B <g,v>,
//   grad_mu = A g + 2 l_mm mu + l_mv v,  grad_v = B g + 2 l_vv v + l_mv mu,
//   grad_std = grad_v * eps / 2,  grad_eps = grad_v * std / 2   (summed over the row when ISO).
// log_prob backward: with r the rows' reductions and g the incoming gradient,
//   grad_z   = g (2 l_zz z + 2 l_dd (z - mu) + 2 l_wdd (z - mu)/s^2 + l_wdm mu/s^2)
//   grad_mu  = g (2 l_mm mu - 2 l_dd (z - mu) - 2 l_wdd (z - mu)/s^2 + l_wdm (z - 2 mu)/s^2 + 2 l_wmm mu/s^2)
//   grad_std = g (-2 (l_wdd (z-mu)^2 + l_wdm (z-mu) mu + l_wmm mu^2)/s^3 - 1/s)
#include <torch/library.h>

#include <cmath>

#include "cpu/wrapped_normal_rows.h"

namespace hypops {
namespace {

template <typename scalar_t> inline int64_t srow_stride(const at::Tensor& s) {
  return s.size(0) > 1 ? s.stride(0) : 0;
}

template <typename scalar_t, bool ISO>
void rsample_fwd(const WnRows& w, at::Tensor& out, double cv) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto M = row_of<scalar_t>(w.r.mats[0]);
  const auto E = row_of<scalar_t>(w.r.mats[1]);
  const scalar_t* S = w.std_.data_ptr<scalar_t>();
  const int64_t ss = srow_stride<scalar_t>(w.std_);
  scalar_t* O = out.data_ptr<scalar_t>();
  const int64_t D = w.r.D;
  const acc_t c_ = acc_t(cv), eps = acc_t(proj_eps<scalar_t>());
  for_rows(w.r.N, D, [&](int64_t i) {
    const scalar_t *mi = M(i), *ei = E(i), *si = S + i * ss;
    acc_t mm = 0, vv = 0, mv = 0;
    _Pragma("omp simd reduction(+ : mm, vv, mv)") for (int64_t d = 0; d < D; ++d) {
      const acc_t m = acc_t(mi[d]), v = acc_t(si[ISO ? 0 : d]) * acc_t(ei[d]) / 2;
      mm += m * m;
      vv += v * v;
      mv += m * v;
    }
    const Coef2<acc_t> k = wrapped_normal_rsample_coef(mm, vv, mv, c_, eps);
    scalar_t* oi = O + i * D;
    _Pragma("omp simd") for (int64_t d = 0; d < D; ++d) {
      oi[d] = scalar_t(k.a * acc_t(mi[d]) + k.b * acc_t(si[ISO ? 0 : d]) * acc_t(ei[d]) / 2);
    }
  });
}

at::Tensor wrapped_normal_rsample_cpu(const at::Tensor& mu, const at::Tensor& std, const at::Tensor& eps,
                                      const at::Tensor& c) {
  WnRows w = wn_rows("wrapped_normal_rsample", mu, "mu", eps, "eps", std);
  check_c("wrapped_normal_rsample", c, mu);
  const double cv = read_c_cpu("wrapped_normal_rsample", c);
  at::Tensor out = at::empty(w.r.shape, mu.options());
  HYPOPS_DISPATCH_FLOATS(mu.scalar_type(), "wrapped_normal_rsample", [&] {
    if (w.iso) rsample_fwd<scalar_t, true>(w, out, cv);
    else rsample_fwd<scalar_t, false>(w, out, cv);
  });
  return out;
}

template <typename scalar_t, bool ISO>
double rsample_bwd(const WnRows& w, const at::Tensor& g, at::Tensor& gm, at::Tensor& gs, at::Tensor& ge, double cv) {
  using acc_t = at::opmath_type<scalar_t>;
  using Du = Dual<double, 4>;  // in double even for float rows (partials can exceed float range where values do not); partials: mm, vv, mv, c
  const auto M = row_of<scalar_t>(w.r.mats[0]);
  const auto E = row_of<scalar_t>(w.r.mats[1]);
  const auto G = row_of<scalar_t>(g);
  const scalar_t* S = w.std_.data_ptr<scalar_t>();
  const int64_t ss = srow_stride<scalar_t>(w.std_);
  scalar_t *GM = gm.data_ptr<scalar_t>(), *GS = gs.data_ptr<scalar_t>(), *GE = ge.data_ptr<scalar_t>();
  const int64_t D = w.r.D;
  const acc_t eps = acc_t(proj_eps<scalar_t>());
  return sum_rows(w.r.N, D, [&](int64_t i) {
    const scalar_t *mi = M(i), *ei = E(i), *si = S + i * ss, *gi = G(i);
    acc_t mm = 0, vv = 0, mv = 0, gmv = 0, gvv = 0;
    _Pragma("omp simd reduction(+ : mm, vv, mv, gmv, gvv)") for (int64_t d = 0; d < D; ++d) {
      const acc_t m = acc_t(mi[d]), v = acc_t(si[ISO ? 0 : d]) * acc_t(ei[d]) / 2, gv = acc_t(gi[d]);
      mm += m * m;
      vv += v * v;
      mv += m * v;
      gmv += gv * m;
      gvv += gv * v;
    }
    const Coef2<Du> k = wrapped_normal_rsample_coef(Du::var(mm, 0), Du::var(vv, 1), Du::var(mv, 2),
                                                    Du::var(cv, 3), double(eps));
    double l[4];
    for (int j = 0; j < 4; ++j) l[j] = k.a.d[j] * gmv + k.b.d[j] * gvv;
    const acc_t A = k.a.v, B = k.b.v;
    scalar_t *om = GM + i * D, *oe = GE + i * D;
    acc_t gstd_iso = 0;
    for (int64_t d = 0; d < D; ++d) {
      const acc_t m = acc_t(mi[d]), s = acc_t(si[ISO ? 0 : d]), e = acc_t(ei[d]), gv = acc_t(gi[d]);
      const acc_t v = s * e / 2;
      om[d] = scalar_t(A * gv + 2 * l[0] * m + l[2] * v);
      const acc_t grad_v = B * gv + 2 * l[1] * v + l[2] * m;
      oe[d] = scalar_t(grad_v * s / 2);
      if (ISO) gstd_iso += grad_v * e / 2;
      else GS[i * D + d] = scalar_t(grad_v * e / 2);
    }
    if (ISO) GS[i] = scalar_t(gstd_iso);
    return l[3];
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> wrapped_normal_rsample_backward_cpu(
    const at::Tensor& grad, const at::Tensor& mu, const at::Tensor& std, const at::Tensor& eps, const at::Tensor& c) {
  WnRows w = wn_rows("wrapped_normal_rsample_backward", mu, "mu", eps, "eps", std);
  check_c("wrapped_normal_rsample_backward", c, mu);
  const double cv = read_c_cpu("wrapped_normal_rsample_backward", c);
  at::Tensor g = grad.to(mu.scalar_type()).expand(w.r.shape).reshape({w.r.N, w.r.D});
  if (g.stride(1) != 1) g = g.contiguous();
  at::Tensor gm = at::empty({w.r.N, w.r.D}, mu.options()), ge = at::empty({w.r.N, w.r.D}, mu.options());
  at::Tensor gs = at::empty({w.r.N, w.iso ? 1 : w.r.D}, mu.options());
  double gc = 0;
  HYPOPS_DISPATCH_FLOATS(mu.scalar_type(), "wrapped_normal_rsample_backward", [&] {
    gc = w.iso ? rsample_bwd<scalar_t, true>(w, g, gm, gs, ge, cv) : rsample_bwd<scalar_t, false>(w, g, gm, gs, ge, cv);
  });
  return {reduce_to(gm, w.r.shape, mu), wn_std_grad(gs, w, std), reduce_to(ge, w.r.shape, eps), grad_c_tensor(gc, c)};
}

// log_prob: the row reductions.
template <typename acc_t> struct LpRed {
  acc_t mm = 0, zz = 0, dd = 0, wdd = 0, wdm = 0, wmm = 0, ls = 0;
};

template <typename scalar_t, bool ISO>
inline LpRed<at::opmath_type<scalar_t>> lp_reduce(const scalar_t* zi, const scalar_t* mi, const scalar_t* si,
                                                   int64_t D) {
  using acc_t = at::opmath_type<scalar_t>;
  acc_t mm = 0, zz = 0, dd = 0, wdd = 0, wdm = 0, wmm = 0, ls = 0;
  _Pragma("omp simd reduction(+ : mm, zz, dd, wdd, wdm, wmm)") for (int64_t d = 0; d < D; ++d) {
    const acc_t z = acc_t(zi[d]), m = acc_t(mi[d]), s = acc_t(si[ISO ? 0 : d]);
    const acc_t df = z - m, is2 = 1 / (s * s);
    mm += m * m;
    zz += z * z;
    dd += df * df;
    wdd += df * df * is2;
    wdm += df * m * is2;
    wmm += m * m * is2;
  }
  if (ISO) {
    ls = acc_t(D) * std::log(acc_t(si[0]));
  } else {
    for (int64_t d = 0; d < D; ++d) ls += std::log(acc_t(si[d]));
  }
  return {mm, zz, dd, wdd, wdm, wmm, ls};
}

constexpr double HALF_LOG_2PI = 0.91893853320467274178;

template <typename scalar_t, bool ISO> void log_prob_fwd(const WnRows& w, at::Tensor& out, double cv) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto Z = row_of<scalar_t>(w.r.mats[0]);
  const auto M = row_of<scalar_t>(w.r.mats[1]);
  const scalar_t* S = w.std_.data_ptr<scalar_t>();
  const int64_t ss = srow_stride<scalar_t>(w.std_);
  scalar_t* O = out.data_ptr<scalar_t>();
  const int64_t D = w.r.D;
  const acc_t c_ = acc_t(cv);
  for_rows(w.r.N, D, [&](int64_t i) {
    const auto q = lp_reduce<scalar_t, ISO>(Z(i), M(i), S + i * ss, D);
    const acc_t rows = wrapped_normal_log_prob_rows(q.mm, q.zz, q.dd, q.wdd, q.wdm, q.wmm, c_, D);
    O[i] = scalar_t(rows - q.ls - acc_t(D * HALF_LOG_2PI));
  });
}

at::Tensor wrapped_normal_log_prob_cpu(const at::Tensor& z, const at::Tensor& mu, const at::Tensor& std,
                                       const at::Tensor& c) {
  WnRows w = wn_rows("wrapped_normal_log_prob", z, "z", mu, "mu", std);
  check_c("wrapped_normal_log_prob", c, z);
  const double cv = read_c_cpu("wrapped_normal_log_prob", c);
  std::vector<int64_t> out_shape(w.r.shape.begin(), w.r.shape.end() - 1);
  at::Tensor out = at::empty(out_shape, z.options());
  HYPOPS_DISPATCH_FLOATS(z.scalar_type(), "wrapped_normal_log_prob", [&] {
    if (w.iso) log_prob_fwd<scalar_t, true>(w, out, cv);
    else log_prob_fwd<scalar_t, false>(w, out, cv);
  });
  return out;
}

template <typename scalar_t, bool ISO>
double log_prob_bwd(const WnRows& w, const at::Tensor& g, at::Tensor& gz, at::Tensor& gm, at::Tensor& gs, double cv) {
  using acc_t = at::opmath_type<scalar_t>;
  using Du = Dual<double, 7>;  // in double even for float rows (partials can exceed float range where values do not); partials: mm, zz, dd, wdd, wdm, wmm, c
  const auto Z = row_of<scalar_t>(w.r.mats[0]);
  const auto M = row_of<scalar_t>(w.r.mats[1]);
  const scalar_t* S = w.std_.data_ptr<scalar_t>();
  const int64_t ss = srow_stride<scalar_t>(w.std_);
  const scalar_t* G = g.data_ptr<scalar_t>();
  scalar_t *GZ = gz.data_ptr<scalar_t>(), *GM = gm.data_ptr<scalar_t>(), *GS = gs.data_ptr<scalar_t>();
  const int64_t D = w.r.D;
  return sum_rows(w.r.N, D, [&](int64_t i) {
    const scalar_t *zi = Z(i), *mi = M(i), *si = S + i * ss;
    const auto q = lp_reduce<scalar_t, ISO>(zi, mi, si, D);
    const Du l = wrapped_normal_log_prob_rows(Du::var(q.mm, 0), Du::var(q.zz, 1), Du::var(q.dd, 2),
                                              Du::var(q.wdd, 3), Du::var(q.wdm, 4), Du::var(q.wmm, 5),
                                              Du::var(cv, 6), D);
    const acc_t gi = acc_t(G[i]);
    const acc_t lmm = gi * l.d[0], lzz = gi * l.d[1], ldd = gi * l.d[2], lwdd = gi * l.d[3], lwdm = gi * l.d[4],
                lwmm = gi * l.d[5];
    scalar_t *oz = GZ + i * D, *om = GM + i * D;
    acc_t gstd_iso = 0;
    for (int64_t d = 0; d < D; ++d) {
      const acc_t z = acc_t(zi[d]), m = acc_t(mi[d]), s = acc_t(si[ISO ? 0 : d]);
      const acc_t df = z - m, is2 = 1 / (s * s);
      oz[d] = scalar_t(2 * lzz * z + 2 * ldd * df + 2 * lwdd * df * is2 + lwdm * m * is2);
      om[d] = scalar_t(2 * lmm * m - 2 * ldd * df - 2 * lwdd * df * is2 + lwdm * (df - m) * is2 + 2 * lwmm * m * is2);
      const acc_t gsd = -2 * (lwdd * df * df + lwdm * df * m + lwmm * m * m) * is2 / s - gi / s;
      if (ISO) gstd_iso += gsd;
      else GS[i * D + d] = scalar_t(gsd);
    }
    if (ISO) GS[i] = scalar_t(gstd_iso);
    return gi * l.d[6];
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> wrapped_normal_log_prob_backward_cpu(
    const at::Tensor& grad, const at::Tensor& z, const at::Tensor& mu, const at::Tensor& std, const at::Tensor& c) {
  WnRows w = wn_rows("wrapped_normal_log_prob_backward", z, "z", mu, "mu", std);
  check_c("wrapped_normal_log_prob_backward", c, z);
  const double cv = read_c_cpu("wrapped_normal_log_prob_backward", c);
  std::vector<int64_t> out_shape(w.r.shape.begin(), w.r.shape.end() - 1);
  at::Tensor g = grad.to(z.scalar_type()).expand(out_shape).reshape({w.r.N}).contiguous();
  at::Tensor gz = at::empty({w.r.N, w.r.D}, z.options()), gm = at::empty({w.r.N, w.r.D}, z.options());
  at::Tensor gs = at::empty({w.r.N, w.iso ? 1 : w.r.D}, z.options());
  double gc = 0;
  HYPOPS_DISPATCH_FLOATS(z.scalar_type(), "wrapped_normal_log_prob_backward", [&] {
    gc = w.iso ? log_prob_bwd<scalar_t, true>(w, g, gz, gm, gs, cv) : log_prob_bwd<scalar_t, false>(w, g, gz, gm, gs, cv);
  });
  return {reduce_to(gz, w.r.shape, z), reduce_to(gm, w.r.shape, mu), wn_std_grad(gs, w, std), grad_c_tensor(gc, c)};
}

}  // namespace

TORCH_LIBRARY_IMPL(hypops, CPU, m) {
  m.impl("wrapped_normal_rsample", &wrapped_normal_rsample_cpu);
  m.impl("wrapped_normal_rsample_backward", &wrapped_normal_rsample_backward_cpu);
  m.impl("wrapped_normal_log_prob", &wrapped_normal_log_prob_cpu);
  m.impl("wrapped_normal_log_prob_backward", &wrapped_normal_log_prob_backward_cpu);
}
}  // namespace hypops
