// Wrapped normal on the ball, CUDA: rsample and log_prob, forward and backward. The formulas are the CPU
// kernel's (common/math.h: wrapped_normal_rsample_coef, wrapped_normal_log_prob_rows; the chain rule through
// the row reductions is written out at the top of cpu/wrapped_normal_cpu.cpp), the thread mapping is
// cuda/rows.cuh's (G lanes per row, butterfly reductions, every lane evaluates the scalar formula).
//
// std is diagonal [..., D] or isotropic [..., 1] (ISO: one value per row, read by every lane; its gradient is
// the group sum of the per-coordinate one). The backward's dual numbers are double even for float rows, as
// on the CPU: with std down to 1e-5 the partials of log_prob (~|z - mu|^2 / std^4) leave float's range where
// the value does not.
#include <torch/library.h>

#include "cpu/wrapped_normal_rows.h"
#include "cuda/rows.cuh"

namespace hypops {
namespace cuda {
namespace {

constexpr double kHalfLog2Pi = 0.91893853320467274178;

template <typename scalar_t, bool ISO>
__device__ __forceinline__ at::opmath_type<scalar_t> std_at(const scalar_t* si, int64_t d) {
  return static_cast<at::opmath_type<scalar_t>>(si[ISO ? 0 : d]);
}

// --- rsample ------------------------------------------------------------------------------------------------
template <typename scalar_t, int G, bool ISO>
__global__ void __launch_bounds__(kThreads)
    rsample_forward_kernel(RowPtr<scalar_t> M, RowPtr<scalar_t> S, RowPtr<scalar_t> E, scalar_t* __restrict__ out,
                           int64_t N, int64_t D, Curv curv, at::opmath_type<scalar_t> eps) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t c = acc_t(curv.load());
  const GroupIdx g = group_idx<G>(N);
  for (int64_t i = g.first; i < g.bound; i += g.step) {
    const bool active = i < N;
    acc_t mm = 0, vv = 0, mv = 0;
    if (active) {
      const scalar_t *mi = M(i), *si = S(i), *ei = E(i);
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t m = static_cast<acc_t>(mi[d]);
        const acc_t v = std_at<scalar_t, ISO>(si, d) * static_cast<acc_t>(ei[d]) / 2;
        mm += m * m;
        vv += v * v;
        mv += m * v;
      }
    }
    mm = group_sum<G>(mm);
    vv = group_sum<G>(vv);
    mv = group_sum<G>(mv);
    if (active) {
      const scalar_t *mi = M(i), *si = S(i), *ei = E(i);
      const Coef2<acc_t> k = wrapped_normal_rsample_coef(mm, vv, mv, c, eps);
      scalar_t* oi = out + i * D;
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t v = std_at<scalar_t, ISO>(si, d) * static_cast<acc_t>(ei[d]) / 2;
        oi[d] = static_cast<scalar_t>(k.a * static_cast<acc_t>(mi[d]) + k.b * v);
      }
    }
  }
}

template <typename scalar_t, int G, bool ISO>
__global__ void __launch_bounds__(kThreads)
    rsample_backward_kernel(RowPtr<scalar_t> Gr, RowPtr<scalar_t> M, RowPtr<scalar_t> S, RowPtr<scalar_t> E,
                            scalar_t* __restrict__ gm, scalar_t* __restrict__ gs, scalar_t* __restrict__ ge, int64_t N,
                            int64_t D, Curv curv, at::opmath_type<scalar_t> eps, double* __restrict__ partials) {
  using acc_t = at::opmath_type<scalar_t>;
  using Du = Dual<double, 4>;  // partials: |mu|^2, |v|^2, <mu,v>, c
  const double c = curv.load();
  const GroupIdx g = group_idx<G>(N);
  double gc = 0;
  for (int64_t i = g.first; i < g.bound; i += g.step) {
    const bool active = i < N;
    acc_t mm = 0, vv = 0, mv = 0, gmv = 0, gvv = 0;
    if (active) {
      const scalar_t *mi = M(i), *si = S(i), *ei = E(i), *gi = Gr(i);
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t m = static_cast<acc_t>(mi[d]), gv = static_cast<acc_t>(gi[d]);
        const acc_t v = std_at<scalar_t, ISO>(si, d) * static_cast<acc_t>(ei[d]) / 2;
        mm += m * m;
        vv += v * v;
        mv += m * v;
        gmv += gv * m;
        gvv += gv * v;
      }
    }
    mm = group_sum<G>(mm);
    vv = group_sum<G>(vv);
    mv = group_sum<G>(mv);
    gmv = group_sum<G>(gmv);
    gvv = group_sum<G>(gvv);
    acc_t gs_iso = 0;
    if (active) {
      const scalar_t *mi = M(i), *si = S(i), *ei = E(i), *gi = Gr(i);
      const Coef2<Du> k = wrapped_normal_rsample_coef(Du::var(mm, 0), Du::var(vv, 1), Du::var(mv, 2), Du::var(c, 3),
                                                      double(eps));
      double l[4];
      for (int j = 0; j < 4; ++j) l[j] = k.a.d[j] * gmv + k.b.d[j] * gvv;
      const acc_t A = acc_t(k.a.v), B = acc_t(k.b.v), lmm2 = acc_t(2 * l[0]), lvv2 = acc_t(2 * l[1]),
                  lmv = acc_t(l[2]);
      scalar_t *om = gm + i * D, *oe = ge + i * D;
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t m = static_cast<acc_t>(mi[d]), s = std_at<scalar_t, ISO>(si, d), e = static_cast<acc_t>(ei[d]);
        const acc_t gv = static_cast<acc_t>(gi[d]);
        const acc_t v = s * e / 2;
        om[d] = static_cast<scalar_t>(A * gv + lmm2 * m + lmv * v);
        const acc_t grad_v = B * gv + lvv2 * v + lmv * m;
        oe[d] = static_cast<scalar_t>(grad_v * s / 2);
        if (ISO) gs_iso += grad_v * e / 2;
        else gs[i * D + d] = static_cast<scalar_t>(grad_v * e / 2);
      }
      if (g.lane == 0) gc += l[3];
    }
    if (ISO) {
      gs_iso = group_sum<G>(gs_iso);
      if (active && g.lane == 0) gs[i] = static_cast<scalar_t>(gs_iso);
    }
  }
  block_partial(gc, partials);
}

at::Tensor wrapped_normal_rsample_cuda(const at::Tensor& mu, const at::Tensor& std, const at::Tensor& eps,
                                       const at::Tensor& c) {
  const char* op = "wrapped_normal_rsample";
  WnRows w = wn_rows(op, mu, "mu", eps, "eps", std);
  check_c(op, c, mu);
  check_cuda(op, mu, "mu", eps, "eps");
  const c10::cuda::CUDAGuard guard(mu.device());
  const CurvArg cv = curv_arg(op, c);
  at::Tensor out = at::empty(w.r.shape, mu.options());
  if (w.r.N == 0) return out;
  const int64_t blocks = blocks_for(w.r.N, group_width(w.r.D), mu.get_device());
  HYPOPS_DISPATCH_FLOATS(mu.scalar_type(), "wrapped_normal_rsample_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_group_width(w.r.D, [&](auto gw) {
      constexpr int G = decltype(gw)::value;
      auto launch = [&](auto iso) {
        rsample_forward_kernel<scalar_t, G, decltype(iso)::value><<<unsigned(blocks), kThreads, 0, stream()>>>(
            row_ptr<scalar_t>(w.r.mats[0]), row_ptr<scalar_t>(w.std_), row_ptr<scalar_t>(w.r.mats[1]),
            out.data_ptr<scalar_t>(), w.r.N, w.r.D, cv.k, acc_t(proj_eps<scalar_t>()));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      };
      if (w.iso) launch(std::true_type{});
      else launch(std::false_type{});
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> wrapped_normal_rsample_backward_cuda(
    const at::Tensor& grad, const at::Tensor& mu, const at::Tensor& std, const at::Tensor& eps, const at::Tensor& c) {
  const char* op = "wrapped_normal_rsample_backward";
  WnRows w = wn_rows(op, mu, "mu", eps, "eps", std);
  check_c(op, c, mu);
  check_cuda(op, mu, "mu", grad, "grad");
  const c10::cuda::CUDAGuard guard(mu.device());
  const CurvArg cv = curv_arg(op, c);
  at::Tensor g = grad.to(mu.scalar_type()).expand(w.r.shape).reshape({w.r.N, w.r.D});
  if (g.stride(1) != 1) g = g.contiguous();
  at::Tensor gm = at::empty({w.r.N, w.r.D}, mu.options()), ge = at::empty({w.r.N, w.r.D}, mu.options());
  at::Tensor gs = at::empty({w.r.N, w.iso ? 1 : w.r.D}, mu.options());
  const int64_t blocks = w.r.N > 0 ? blocks_for(w.r.N, group_width(w.r.D), mu.get_device()) : 0;
  at::Tensor partials = partials_for(blocks, mu);
  if (blocks > 0) {
    HYPOPS_DISPATCH_FLOATS(mu.scalar_type(), "wrapped_normal_rsample_backward_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      with_group_width(w.r.D, [&](auto gw) {
        constexpr int G = decltype(gw)::value;
        auto launch = [&](auto iso) {
          rsample_backward_kernel<scalar_t, G, decltype(iso)::value><<<unsigned(blocks), kThreads, 0, stream()>>>(
              row_ptr<scalar_t>(g), row_ptr<scalar_t>(w.r.mats[0]), row_ptr<scalar_t>(w.std_),
              row_ptr<scalar_t>(w.r.mats[1]), gm.data_ptr<scalar_t>(), gs.data_ptr<scalar_t>(),
              ge.data_ptr<scalar_t>(), w.r.N, w.r.D, cv.k, acc_t(proj_eps<scalar_t>()), partials.data_ptr<double>());
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        };
        if (w.iso) launch(std::true_type{});
        else launch(std::false_type{});
      });
    });
  }
  return {reduce_to(gm, w.r.shape, mu), wn_std_grad(gs, w, std), reduce_to(ge, w.r.shape, eps),
          finish_grad_c(partials, c)};
}

// --- log_prob -----------------------------------------------------------------------------------------------
// The row reductions of one row, summed over the group: |mu|^2, |z|^2, |z-mu|^2, the std-weighted
// sum (z-mu)^2/s^2, sum (z-mu) mu/s^2, sum mu^2/s^2, and sum log s.
template <typename acc_t> struct LpRed {
  acc_t mm, zz, dd, wdd, wdm, wmm, ls;
};

template <typename scalar_t, int G, bool ISO>
__device__ __forceinline__ LpRed<at::opmath_type<scalar_t>> lp_reduce(const RowPtr<scalar_t>& Z,
                                                                      const RowPtr<scalar_t>& M,
                                                                      const RowPtr<scalar_t>& S, int64_t i,
                                                                      bool active, int lane, int64_t D) {
  using acc_t = at::opmath_type<scalar_t>;
  LpRed<acc_t> q{0, 0, 0, 0, 0, 0, 0};
  if (active) {
    const scalar_t *zi = Z(i), *mi = M(i), *si = S(i);
    for (int64_t d = lane; d < D; d += G) {
      const acc_t z = static_cast<acc_t>(zi[d]), m = static_cast<acc_t>(mi[d]), s = std_at<scalar_t, ISO>(si, d);
      const acc_t df = z - m, is2 = 1 / (s * s);
      q.mm += m * m;
      q.zz += z * z;
      q.dd += df * df;
      q.wdd += df * df * is2;
      q.wdm += df * m * is2;
      q.wmm += m * m * is2;
      if (!ISO) q.ls += h_log(s);
    }
    if (ISO && lane == 0) q.ls = acc_t(D) * h_log(std_at<scalar_t, ISO>(si, 0));
  }
  q.mm = group_sum<G>(q.mm);
  q.zz = group_sum<G>(q.zz);
  q.dd = group_sum<G>(q.dd);
  q.wdd = group_sum<G>(q.wdd);
  q.wdm = group_sum<G>(q.wdm);
  q.wmm = group_sum<G>(q.wmm);
  q.ls = group_sum<G>(q.ls);
  return q;
}

template <typename scalar_t, int G, bool ISO>
__global__ void __launch_bounds__(kThreads)
    log_prob_forward_kernel(RowPtr<scalar_t> Z, RowPtr<scalar_t> M, RowPtr<scalar_t> S, scalar_t* __restrict__ out,
                            int64_t N, int64_t D, Curv curv) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t c = acc_t(curv.load());
  const GroupIdx g = group_idx<G>(N);
  for (int64_t i = g.first; i < g.bound; i += g.step) {
    const bool active = i < N;
    const LpRed<acc_t> q = lp_reduce<scalar_t, G, ISO>(Z, M, S, i, active, g.lane, D);
    if (active && g.lane == 0) {
      const acc_t rows = wrapped_normal_log_prob_rows(q.mm, q.zz, q.dd, q.wdd, q.wdm, q.wmm, c, D);
      out[i] = static_cast<scalar_t>(rows - q.ls - acc_t(double(D) * kHalfLog2Pi));
    }
  }
}

template <typename scalar_t, int G, bool ISO>
__global__ void __launch_bounds__(kThreads)
    log_prob_backward_kernel(const scalar_t* __restrict__ Gr, RowPtr<scalar_t> Z, RowPtr<scalar_t> M,
                             RowPtr<scalar_t> S, scalar_t* __restrict__ gz, scalar_t* __restrict__ gm,
                             scalar_t* __restrict__ gs, int64_t N, int64_t D, Curv curv,
                             double* __restrict__ partials) {
  using acc_t = at::opmath_type<scalar_t>;
  using Du = Dual<double, 7>;  // partials: mm, zz, dd, wdd, wdm, wmm, c
  const double c = curv.load();
  const GroupIdx g = group_idx<G>(N);
  double gc = 0;
  for (int64_t i = g.first; i < g.bound; i += g.step) {
    const bool active = i < N;
    const LpRed<acc_t> q = lp_reduce<scalar_t, G, ISO>(Z, M, S, i, active, g.lane, D);
    acc_t gs_iso = 0;
    if (active) {
      const Du l = wrapped_normal_log_prob_rows(Du::var(q.mm, 0), Du::var(q.zz, 1), Du::var(q.dd, 2),
                                                Du::var(q.wdd, 3), Du::var(q.wdm, 4), Du::var(q.wmm, 5),
                                                Du::var(c, 6), D);
      const acc_t gi = static_cast<acc_t>(Gr[i]);
      const acc_t lmm = acc_t(gi * l.d[0]), lzz = acc_t(gi * l.d[1]), ldd = acc_t(gi * l.d[2]),
                  lwdd = acc_t(gi * l.d[3]), lwdm = acc_t(gi * l.d[4]), lwmm = acc_t(gi * l.d[5]);
      const scalar_t *zi = Z(i), *mi = M(i), *si = S(i);
      scalar_t *oz = gz + i * D, *om = gm + i * D;
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t z = static_cast<acc_t>(zi[d]), m = static_cast<acc_t>(mi[d]), s = std_at<scalar_t, ISO>(si, d);
        const acc_t df = z - m, is2 = 1 / (s * s);
        oz[d] = static_cast<scalar_t>(2 * lzz * z + 2 * ldd * df + 2 * lwdd * df * is2 + lwdm * m * is2);
        om[d] = static_cast<scalar_t>(2 * lmm * m - 2 * ldd * df - 2 * lwdd * df * is2 + lwdm * (df - m) * is2 +
                                      2 * lwmm * m * is2);
        const acc_t gsd = -2 * (lwdd * df * df + lwdm * df * m + lwmm * m * m) * is2 / s - gi / s;
        if (ISO) gs_iso += gsd;
        else gs[i * D + d] = static_cast<scalar_t>(gsd);
      }
      if (g.lane == 0) gc += double(gi) * l.d[6];
    }
    if (ISO) {
      gs_iso = group_sum<G>(gs_iso);
      if (active && g.lane == 0) gs[i] = static_cast<scalar_t>(gs_iso);
    }
  }
  block_partial(gc, partials);
}

at::Tensor wrapped_normal_log_prob_cuda(const at::Tensor& z, const at::Tensor& mu, const at::Tensor& std,
                                        const at::Tensor& c) {
  const char* op = "wrapped_normal_log_prob";
  WnRows w = wn_rows(op, z, "z", mu, "mu", std);
  check_c(op, c, z);
  check_cuda(op, z, "z", mu, "mu");
  const c10::cuda::CUDAGuard guard(z.device());
  const CurvArg cv = curv_arg(op, c);
  std::vector<int64_t> out_shape(w.r.shape.begin(), w.r.shape.end() - 1);
  at::Tensor out = at::empty(out_shape, z.options());
  if (w.r.N == 0) return out;
  const int64_t blocks = blocks_for(w.r.N, group_width(w.r.D), z.get_device());
  HYPOPS_DISPATCH_FLOATS(z.scalar_type(), "wrapped_normal_log_prob_cuda", [&] {
    with_group_width(w.r.D, [&](auto gw) {
      constexpr int G = decltype(gw)::value;
      auto launch = [&](auto iso) {
        log_prob_forward_kernel<scalar_t, G, decltype(iso)::value><<<unsigned(blocks), kThreads, 0, stream()>>>(
            row_ptr<scalar_t>(w.r.mats[0]), row_ptr<scalar_t>(w.r.mats[1]), row_ptr<scalar_t>(w.std_),
            out.data_ptr<scalar_t>(), w.r.N, w.r.D, cv.k);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      };
      if (w.iso) launch(std::true_type{});
      else launch(std::false_type{});
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> wrapped_normal_log_prob_backward_cuda(
    const at::Tensor& grad, const at::Tensor& z, const at::Tensor& mu, const at::Tensor& std, const at::Tensor& c) {
  const char* op = "wrapped_normal_log_prob_backward";
  WnRows w = wn_rows(op, z, "z", mu, "mu", std);
  check_c(op, c, z);
  check_cuda(op, z, "z", grad, "grad");
  const c10::cuda::CUDAGuard guard(z.device());
  const CurvArg cv = curv_arg(op, c);
  std::vector<int64_t> out_shape(w.r.shape.begin(), w.r.shape.end() - 1);
  at::Tensor g = grad.to(z.scalar_type()).expand(out_shape).reshape({w.r.N}).contiguous();
  at::Tensor gz = at::empty({w.r.N, w.r.D}, z.options()), gm = at::empty({w.r.N, w.r.D}, z.options());
  at::Tensor gs = at::empty({w.r.N, w.iso ? 1 : w.r.D}, z.options());
  const int64_t blocks = w.r.N > 0 ? blocks_for(w.r.N, group_width(w.r.D), z.get_device()) : 0;
  at::Tensor partials = partials_for(blocks, z);
  if (blocks > 0) {
    HYPOPS_DISPATCH_FLOATS(z.scalar_type(), "wrapped_normal_log_prob_backward_cuda", [&] {
      with_group_width(w.r.D, [&](auto gw) {
        constexpr int G = decltype(gw)::value;
        auto launch = [&](auto iso) {
          log_prob_backward_kernel<scalar_t, G, decltype(iso)::value><<<unsigned(blocks), kThreads, 0, stream()>>>(
              g.data_ptr<scalar_t>(), row_ptr<scalar_t>(w.r.mats[0]), row_ptr<scalar_t>(w.r.mats[1]),
              row_ptr<scalar_t>(w.std_), gz.data_ptr<scalar_t>(), gm.data_ptr<scalar_t>(), gs.data_ptr<scalar_t>(),
              w.r.N, w.r.D, cv.k, partials.data_ptr<double>());
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        };
        if (w.iso) launch(std::true_type{});
        else launch(std::false_type{});
      });
    });
  }
  return {reduce_to(gz, w.r.shape, z), reduce_to(gm, w.r.shape, mu), wn_std_grad(gs, w, std),
          finish_grad_c(partials, c)};
}

}  // namespace

TORCH_LIBRARY_IMPL(hypops, CUDA, m) {
  m.impl("wrapped_normal_rsample", &wrapped_normal_rsample_cuda);
  m.impl("wrapped_normal_rsample_backward", &wrapped_normal_rsample_backward_cuda);
  m.impl("wrapped_normal_log_prob", &wrapped_normal_log_prob_cuda);
  m.impl("wrapped_normal_log_prob_backward", &wrapped_normal_log_prob_backward_cuda);
}
}  // namespace cuda
}  // namespace hypops
