// Row-wise CUDA kernels for the ops whose output is a combination of the input rows; the GPU twin of
// cpu/rowwise.h (same reductions, same formula functions from common/math.h, same backward):
//   unary:  out = k(|x|^2, c) x                       (project, expmap0, logmap0)
//   binary: out = A(r, c) x + B(r, c) y, r = (|x|^2, |y|^2, <x,y>, |x-y|^2)   (mobius_add, expmap, logmap)
// Backward evaluates the formula on Dual numbers; with g the incoming gradient and
// l = A <g,x> + B <g,y>:
//   grad_x = A g + (dl/d|x|^2) 2x + (dl/d<x,y>) y + (dl/d|x-y|^2) 2(x - y)
//   grad_y = B g + (dl/d|y|^2) 2y + (dl/d<x,y>) x - (dl/d|x-y|^2) 2(x - y)
// and grad_c = sum over rows of dl/dc.
//
// Thread mapping (rows.cuh): a group of G = min(32, pow2 >= D) lanes per row. Each lane strides over
// the row accumulating its partial reductions in acc_t (float for half types, as on the CPU), the group
// butterflies them, every lane evaluates the scalar formula, then the lanes write their coordinates.
// grad_c: lane 0 of each group adds its row's term to a per-thread double; a block reduction writes one
// double per block; ATen sums those (no atomics, so the result is deterministic).
#pragma once

#include <tuple>

#include "cuda/rows.cuh"

namespace hypops {
namespace cuda {

// --- kernels ---------------------------------------------------------------------------------------------

template <typename Op, typename scalar_t, int G>
__global__ void __launch_bounds__(kThreads)
    unary_forward_kernel(RowPtr<scalar_t> X, scalar_t* __restrict__ out, int64_t N, int64_t D, Curv curv,
                         at::opmath_type<scalar_t> eps) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t c = acc_t(curv.load());
  const GroupIdx g = group_idx<G>(N);
  for (int64_t i = g.first; i < g.bound; i += g.step) {
    const bool active = i < N;
    acc_t xx = 0;
    if (active) {
      const scalar_t* xi = X(i);
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t v = static_cast<acc_t>(xi[d]);
        xx += v * v;
      }
    }
    xx = group_sum<G>(xx);
    if (active) {
      const scalar_t* xi = X(i);
      const acc_t k = Op::coef(xx, c, eps);
      scalar_t* oi = out + i * D;
      for (int64_t d = g.lane; d < D; d += G) oi[d] = static_cast<scalar_t>(k * static_cast<acc_t>(xi[d]));
    }
  }
}

template <typename Op, typename scalar_t, int G>
__global__ void __launch_bounds__(kThreads)
    unary_backward_kernel(RowPtr<scalar_t> Gr, RowPtr<scalar_t> X, scalar_t* __restrict__ gx, int64_t N, int64_t D,
                          Curv curv, at::opmath_type<scalar_t> eps, double* __restrict__ partials) {
  using acc_t = at::opmath_type<scalar_t>;
  using Du = Dual<acc_t, 2>;  // partials: |x|^2, c
  const acc_t c = acc_t(curv.load());
  const GroupIdx g = group_idx<G>(N);
  double gc = 0;
  for (int64_t i = g.first; i < g.bound; i += g.step) {
    const bool active = i < N;
    acc_t xx = 0, gxv = 0;
    if (active) {
      const scalar_t *gi = Gr(i), *xi = X(i);
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t xv = static_cast<acc_t>(xi[d]);
        xx += xv * xv;
        gxv += static_cast<acc_t>(gi[d]) * xv;
      }
    }
    xx = group_sum<G>(xx);
    gxv = group_sum<G>(gxv);
    if (active) {
      const scalar_t *gi = Gr(i), *xi = X(i);
      const Du k = Op::coef(Du::var(xx, 0), Du::var(c, 1), eps);
      const acc_t a = k.v, b = acc_t(2) * gxv * k.d[0];
      scalar_t* o = gx + i * D;
      for (int64_t d = g.lane; d < D; d += G)
        o[d] = static_cast<scalar_t>(a * static_cast<acc_t>(gi[d]) + b * static_cast<acc_t>(xi[d]));
      if (g.lane == 0) gc += double(gxv * k.d[1]);
    }
  }
  block_partial(gc, partials);
}

template <typename Op, typename scalar_t, int G>
__global__ void __launch_bounds__(kThreads)
    binary_forward_kernel(RowPtr<scalar_t> X, RowPtr<scalar_t> Y, scalar_t* __restrict__ out, int64_t N, int64_t D,
                          Curv curv, at::opmath_type<scalar_t> eps) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t c = acc_t(curv.load());
  const GroupIdx g = group_idx<G>(N);
  for (int64_t i = g.first; i < g.bound; i += g.step) {
    const bool active = i < N;
    acc_t xx = 0, yy = 0, xy = 0, dd = 0;
    if (active) {
      const scalar_t *xi = X(i), *yi = Y(i);
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t xv = static_cast<acc_t>(xi[d]), yv = static_cast<acc_t>(yi[d]);
        xx += xv * xv;
        yy += yv * yv;
        xy += xv * yv;
        if constexpr (Op::kUsesDD) dd += (xv - yv) * (xv - yv);
      }
    }
    xx = group_sum<G>(xx);
    yy = group_sum<G>(yy);
    xy = group_sum<G>(xy);
    if constexpr (Op::kUsesDD) dd = group_sum<G>(dd);
    if (active) {
      const scalar_t *xi = X(i), *yi = Y(i);
      const Coef2<acc_t> k = Op::coef(xx, yy, xy, dd, c, eps);
      scalar_t* oi = out + i * D;
      for (int64_t d = g.lane; d < D; d += G)
        oi[d] = static_cast<scalar_t>(k.a * static_cast<acc_t>(xi[d]) + k.b * static_cast<acc_t>(yi[d]));
    }
  }
}

template <typename Op, typename scalar_t, int G>
__global__ void __launch_bounds__(kThreads)
    binary_backward_kernel(RowPtr<scalar_t> Gr, RowPtr<scalar_t> X, RowPtr<scalar_t> Y, scalar_t* __restrict__ gx,
                           scalar_t* __restrict__ gy, int64_t N, int64_t D, Curv curv, at::opmath_type<scalar_t> eps,
                           double* __restrict__ partials) {
  using acc_t = at::opmath_type<scalar_t>;
  using Du = Dual<acc_t, 5>;  // partials: |x|^2, |y|^2, <x,y>, |x-y|^2, c
  const acc_t c = acc_t(curv.load());
  const GroupIdx g = group_idx<G>(N);
  double gc = 0;
  for (int64_t i = g.first; i < g.bound; i += g.step) {
    const bool active = i < N;
    acc_t xx = 0, yy = 0, xy = 0, dd = 0, gxv = 0, gyv = 0;
    if (active) {
      const scalar_t *gi = Gr(i), *xi = X(i), *yi = Y(i);
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t xv = static_cast<acc_t>(xi[d]), yv = static_cast<acc_t>(yi[d]), gv = static_cast<acc_t>(gi[d]);
        xx += xv * xv;
        yy += yv * yv;
        xy += xv * yv;
        dd += (xv - yv) * (xv - yv);
        gxv += gv * xv;
        gyv += gv * yv;
      }
    }
    xx = group_sum<G>(xx);
    yy = group_sum<G>(yy);
    xy = group_sum<G>(xy);
    dd = group_sum<G>(dd);
    gxv = group_sum<G>(gxv);
    gyv = group_sum<G>(gyv);
    if (active) {
      const scalar_t *gi = Gr(i), *xi = X(i), *yi = Y(i);
      const Coef2<Du> k =
          Op::coef(Du::var(xx, 0), Du::var(yy, 1), Du::var(xy, 2), Du::var(dd, 3), Du::var(c, 4), eps);
      acc_t l[5];
#pragma unroll
      for (int j = 0; j < 5; ++j) l[j] = k.a.d[j] * gxv + k.b.d[j] * gyv;
      const acc_t A = k.a.v, B = k.b.v;
      const acc_t x2 = acc_t(2) * l[0], y2 = acc_t(2) * l[1], xyc = l[2], d2 = acc_t(2) * l[3];
      scalar_t* ox = gx + i * D;
      scalar_t* oy = gy + i * D;
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t xv = static_cast<acc_t>(xi[d]), yv = static_cast<acc_t>(yi[d]), gv = static_cast<acc_t>(gi[d]);
        const acc_t diff = d2 * (xv - yv);
        ox[d] = static_cast<scalar_t>(A * gv + x2 * xv + xyc * yv + diff);
        oy[d] = static_cast<scalar_t>(B * gv + y2 * yv + xyc * xv - diff);
      }
      if (g.lane == 0) gc += double(l[4]);
    }
  }
  block_partial(gc, partials);
}

// --- host entry points (the same checks and broadcasting as cpu/rowwise.h) -----------------------------

// Op: static HYPOPS_HD S coef(S xx, S c, T eps) for S in {acc_t, Dual}.
template <typename Op> at::Tensor unary_forward(const char* name, const at::Tensor& x, const at::Tensor& c) {
  check_rows(name, {{&x, Op::arg}});
  check_c(name, c, x);
  const c10::cuda::CUDAGuard guard(x.device());
  const CurvArg cv = curv_arg(name, c);
  Rows r = make_rows({x});
  at::Tensor out = at::empty(r.shape, x.options());
  if (r.N == 0) return out;
  const int64_t blocks = blocks_for(r.N, group_width(r.D), x.get_device());
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "hypops_rowwise_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_group_width(r.D, [&](auto gw) {
      constexpr int G = decltype(gw)::value;
      unary_forward_kernel<Op, scalar_t, G><<<unsigned(blocks), kThreads, 0, stream()>>>(
          row_ptr<scalar_t>(r.mats[0]), out.data_ptr<scalar_t>(), r.N, r.D, cv.k, acc_t(proj_eps<scalar_t>()));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

template <typename Op>
std::tuple<at::Tensor, at::Tensor> unary_backward(const char* name, const at::Tensor& grad, const at::Tensor& x,
                                                  const at::Tensor& c) {
  check_rows(name, {{&grad, "grad"}, {&x, Op::arg}});
  check_c(name, c, x);
  const c10::cuda::CUDAGuard guard(x.device());
  const CurvArg cv = curv_arg(name, c);
  Rows r = make_rows({grad, x});
  at::Tensor gx = at::empty({r.N, r.D}, x.options());
  const int64_t blocks = r.N > 0 ? blocks_for(r.N, group_width(r.D), x.get_device()) : 0;
  at::Tensor partials = partials_for(blocks, x);
  if (blocks > 0) {
    HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "hypops_rowwise_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      with_group_width(r.D, [&](auto gw) {
        constexpr int G = decltype(gw)::value;
        unary_backward_kernel<Op, scalar_t, G><<<unsigned(blocks), kThreads, 0, stream()>>>(
            row_ptr<scalar_t>(r.mats[0]), row_ptr<scalar_t>(r.mats[1]), gx.data_ptr<scalar_t>(), r.N, r.D, cv.k,
            acc_t(proj_eps<scalar_t>()), partials.data_ptr<double>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  return {reduce_to(gx, r.shape, x), finish_grad_c(partials, c)};
}

// Op: static HYPOPS_HD Coef2<S> coef(S xx, S yy, S xy, S dd, S c, T eps); Op::kUsesDD says whether the
// formula reads |x - y|^2 (the forward skips that reduction otherwise).
template <typename Op>
at::Tensor binary_forward(const char* name, const at::Tensor& x, const at::Tensor& y, const at::Tensor& c) {
  check_rows(name, {{&x, Op::arg0}, {&y, Op::arg1}});
  check_c(name, c, x);
  const c10::cuda::CUDAGuard guard(x.device());
  const CurvArg cv = curv_arg(name, c);
  Rows r = make_rows({x, y});
  at::Tensor out = at::empty(r.shape, x.options());
  if (r.N == 0) return out;
  const int64_t blocks = blocks_for(r.N, group_width(r.D), x.get_device());
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "hypops_rowwise_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_group_width(r.D, [&](auto gw) {
      constexpr int G = decltype(gw)::value;
      binary_forward_kernel<Op, scalar_t, G><<<unsigned(blocks), kThreads, 0, stream()>>>(
          row_ptr<scalar_t>(r.mats[0]), row_ptr<scalar_t>(r.mats[1]), out.data_ptr<scalar_t>(), r.N, r.D, cv.k,
          acc_t(proj_eps<scalar_t>()));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

template <typename Op>
std::tuple<at::Tensor, at::Tensor, at::Tensor> binary_backward(const char* name, const at::Tensor& grad,
                                                               const at::Tensor& x, const at::Tensor& y,
                                                               const at::Tensor& c) {
  check_rows(name, {{&grad, "grad"}, {&x, Op::arg0}, {&y, Op::arg1}});
  check_c(name, c, x);
  const c10::cuda::CUDAGuard guard(x.device());
  const CurvArg cv = curv_arg(name, c);
  Rows r = make_rows({grad, x, y});
  at::Tensor gx = at::empty({r.N, r.D}, x.options());
  at::Tensor gy = at::empty({r.N, r.D}, x.options());
  const int64_t blocks = r.N > 0 ? blocks_for(r.N, group_width(r.D), x.get_device()) : 0;
  at::Tensor partials = partials_for(blocks, x);
  if (blocks > 0) {
    HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "hypops_rowwise_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      with_group_width(r.D, [&](auto gw) {
        constexpr int G = decltype(gw)::value;
        binary_backward_kernel<Op, scalar_t, G><<<unsigned(blocks), kThreads, 0, stream()>>>(
            row_ptr<scalar_t>(r.mats[0]), row_ptr<scalar_t>(r.mats[1]), row_ptr<scalar_t>(r.mats[2]),
            gx.data_ptr<scalar_t>(), gy.data_ptr<scalar_t>(), r.N, r.D, cv.k, acc_t(proj_eps<scalar_t>()),
            partials.data_ptr<double>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  return {reduce_to(gx, r.shape, x), reduce_to(gy, r.shape, y), finish_grad_c(partials, c)};
}

}  // namespace cuda
}  // namespace hypops
