// dist2plane(x, p, a) = (1/sqrt(c)) asinh(2 sqrt(c) <w, a> / ((1 - c|w|^2) |a|)), w = (-p) (+) x,
// from the reductions |x|^2, |p|^2, |a|^2, <p,a>, |x-p|^2, <x-p,a> (common/math.h: dist2plane_value,
// the function the CPU kernel evaluates). [..., D] -> [...].
//
// Backward: with l the formula and g the incoming gradient (partials written l_xx, ...),
//   grad_x = g (2 l_xx x + 2 l_dd (x - p) + l_da a)
//   grad_p = g (2 l_pp p + (l_pa - l_da) a - 2 l_dd (x - p))
//   grad_a = g (2 l_aa a + l_pa p + l_da (x - p))
//
// Thread mapping as in cuda/rows.cuh: G lanes per row; lane 0 of the group writes the scalar output.
// p and a are usually one plane broadcast over many points: their row stride is then 0 and every group
// reads the same (cached) row.
#include <torch/library.h>

#include "cuda/rows.cuh"

namespace hypops {
namespace cuda {
namespace {

template <typename acc_t> struct PlaneRed {
  acc_t xx, pp, aa, pa, dd, da;
};

// This lane's share of the six reductions, then the group's sums (every lane of the warp must call it;
// an inactive row contributes zeros).
template <int G, typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
__device__ __forceinline__ PlaneRed<acc_t> plane_reductions(bool active, const scalar_t* xi, const scalar_t* pi,
                                                             const scalar_t* ai, int64_t D, int lane) {
  acc_t xx = 0, pp = 0, aa = 0, pa = 0, dd = 0, da = 0;
  if (active) {
    for (int64_t d = lane; d < D; d += G) {
      const acc_t xv = static_cast<acc_t>(xi[d]), pv = static_cast<acc_t>(pi[d]), av = static_cast<acc_t>(ai[d]);
      const acc_t df = xv - pv;
      xx += xv * xv;
      pp += pv * pv;
      aa += av * av;
      pa += pv * av;
      dd += df * df;
      da += df * av;
    }
  }
  return {group_sum<G>(xx), group_sum<G>(pp), group_sum<G>(aa), group_sum<G>(pa), group_sum<G>(dd), group_sum<G>(da)};
}

template <typename scalar_t, int G>
__global__ void __launch_bounds__(kThreads)
    dist2plane_forward_kernel(RowPtr<scalar_t> X, RowPtr<scalar_t> P, RowPtr<scalar_t> A, scalar_t* __restrict__ out,
                              int64_t N, int64_t D, Curv curv, bool is_signed, bool scaled) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t c = acc_t(curv.load());
  const GroupIdx g = group_idx<G>(N);
  for (int64_t i = g.first; i < g.bound; i += g.step) {
    const bool active = i < N;
    const int64_t ii = active ? i : 0;  // row pointers of an inactive group are formed, never read
    const auto q = plane_reductions<G, scalar_t>(active, X(ii), P(ii), A(ii), D, g.lane);
    if (active && g.lane == 0)
      out[i] = static_cast<scalar_t>(dist2plane_value(q.xx, q.pp, q.aa, q.pa, q.dd, q.da, c, is_signed, scaled));
  }
}

template <typename scalar_t, int G>
__global__ void __launch_bounds__(kThreads)
    dist2plane_backward_kernel(const scalar_t* __restrict__ Gr, RowPtr<scalar_t> X, RowPtr<scalar_t> P,
                               RowPtr<scalar_t> A, scalar_t* __restrict__ gx, scalar_t* __restrict__ gp,
                               scalar_t* __restrict__ ga, int64_t N, int64_t D, Curv curv, bool is_signed,
                               bool scaled, double* __restrict__ partials) {
  using acc_t = at::opmath_type<scalar_t>;
  using Du = Dual<acc_t, 7>;  // partials: xx, pp, aa, pa, dd, da, c
  const acc_t c = acc_t(curv.load());
  const GroupIdx g = group_idx<G>(N);
  double gc = 0;
  for (int64_t i = g.first; i < g.bound; i += g.step) {
    const bool active = i < N;
    const int64_t ii = active ? i : 0;
    const scalar_t *xi = X(ii), *pi = P(ii), *ai = A(ii);
    const auto q = plane_reductions<G, scalar_t>(active, xi, pi, ai, D, g.lane);
    if (active) {
      const Du l = dist2plane_value(Du::var(q.xx, 0), Du::var(q.pp, 1), Du::var(q.aa, 2), Du::var(q.pa, 3),
                                    Du::var(q.dd, 4), Du::var(q.da, 5), Du::var(c, 6), is_signed, scaled);
      const acc_t gi = static_cast<acc_t>(Gr[i]);
      const acc_t lxx = 2 * gi * l.d[0], lpp = 2 * gi * l.d[1], laa = 2 * gi * l.d[2], lpa = gi * l.d[3],
                  ldd = 2 * gi * l.d[4], lda = gi * l.d[5];
      scalar_t *ox = gx + i * D, *op = gp + i * D, *oa = ga + i * D;
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t xv = static_cast<acc_t>(xi[d]), pv = static_cast<acc_t>(pi[d]), av = static_cast<acc_t>(ai[d]);
        const acc_t df = xv - pv;
        ox[d] = static_cast<scalar_t>(lxx * xv + ldd * df + lda * av);
        op[d] = static_cast<scalar_t>(lpp * pv + (lpa - lda) * av - ldd * df);
        oa[d] = static_cast<scalar_t>(laa * av + lpa * pv + lda * df);
      }
      if (g.lane == 0) gc += double(gi * l.d[6]);
    }
  }
  block_partial(gc, partials);
}

at::Tensor dist2plane_cuda(const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
                           bool is_signed, bool scaled) {
  check_rows("dist2plane", {{&x, "x"}, {&p, "p"}, {&a, "a"}});
  check_c("dist2plane", c, x);
  const c10::cuda::CUDAGuard guard(x.device());
  const CurvArg cv = curv_arg("dist2plane", c);
  Rows r = make_rows({x, p, a});
  std::vector<int64_t> out_shape(r.shape.begin(), r.shape.end() - 1);
  at::Tensor out = at::empty(out_shape, x.options());
  if (r.N == 0) return out;
  const int64_t blocks = blocks_for(r.N, group_width(r.D), x.get_device());
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "dist2plane_cuda", [&] {
    with_group_width(r.D, [&](auto gw) {
      constexpr int G = decltype(gw)::value;
      dist2plane_forward_kernel<scalar_t, G><<<unsigned(blocks), kThreads, 0, stream()>>>(
          row_ptr<scalar_t>(r.mats[0]), row_ptr<scalar_t>(r.mats[1]), row_ptr<scalar_t>(r.mats[2]),
          out.data_ptr<scalar_t>(), r.N, r.D, cv.k, is_signed, scaled);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> dist2plane_backward_cuda(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
    bool is_signed, bool scaled) {
  check_rows("dist2plane_backward", {{&x, "x"}, {&p, "p"}, {&a, "a"}});
  check_c("dist2plane_backward", c, x);
  check_cuda("dist2plane_backward", x, "x", grad, "grad");
  const c10::cuda::CUDAGuard guard(x.device());
  const CurvArg cv = curv_arg("dist2plane_backward", c);
  Rows r = make_rows({x, p, a});
  std::vector<int64_t> out_shape(r.shape.begin(), r.shape.end() - 1);
  at::Tensor g = grad.to(x.scalar_type()).expand(out_shape).reshape({r.N}).contiguous();
  at::Tensor gx = at::empty({r.N, r.D}, x.options());
  at::Tensor gp = at::empty({r.N, r.D}, x.options());
  at::Tensor ga = at::empty({r.N, r.D}, x.options());
  const int64_t blocks = r.N > 0 ? blocks_for(r.N, group_width(r.D), x.get_device()) : 0;
  at::Tensor partials = partials_for(blocks, x);
  if (blocks > 0) {
    HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "dist2plane_backward_cuda", [&] {
      with_group_width(r.D, [&](auto gw) {
        constexpr int G = decltype(gw)::value;
        dist2plane_backward_kernel<scalar_t, G><<<unsigned(blocks), kThreads, 0, stream()>>>(
            g.data_ptr<scalar_t>(), row_ptr<scalar_t>(r.mats[0]), row_ptr<scalar_t>(r.mats[1]),
            row_ptr<scalar_t>(r.mats[2]), gx.data_ptr<scalar_t>(), gp.data_ptr<scalar_t>(), ga.data_ptr<scalar_t>(),
            r.N, r.D, cv.k, is_signed, scaled, partials.data_ptr<double>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  return {reduce_to(gx, r.shape, x), reduce_to(gp, r.shape, p), reduce_to(ga, r.shape, a),
          finish_grad_c(partials, c)};
}

}  // namespace

TORCH_LIBRARY_IMPL(hypops, CUDA, m) {
  m.impl("dist2plane", &dist2plane_cuda);
  m.impl("dist2plane_backward", &dist2plane_backward_cuda);
}
}  // namespace cuda
}  // namespace hypops
