// dist(x, y) = (2/sqrt(c)) artanh(sqrt(c)|(-x) (+) y|), from |x|^2, |y|^2 and |x - y|^2
// (common/math.h: dist_value, the function the CPU kernel evaluates). [..., D] -> [...].
//
// Backward: with l = dist_value(r, c) and g the incoming gradient,
//   grad_x = g (2 dl/d|x|^2 x + 2 dl/d|x-y|^2 (x - y)),  grad_y = g (2 dl/d|y|^2 y - 2 dl/d|x-y|^2 (x - y)).
//
// Thread mapping as in cuda/rows.cuh: G lanes per row reduce the row, lane 0 of the group writes the
// scalar output (forward); in backward every lane reads the row's g (one broadcast load per group).
#include <torch/library.h>

#include "cuda/rows.cuh"

namespace hypops {
namespace cuda {
namespace {

template <typename scalar_t, int G>
__global__ void __launch_bounds__(kThreads)
    dist_forward_kernel(RowPtr<scalar_t> X, RowPtr<scalar_t> Y, scalar_t* __restrict__ out, int64_t N, int64_t D,
                        Curv curv) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t c = acc_t(curv.load());
  const GroupIdx g = group_idx<G>(N);
  for (int64_t i = g.first; i < g.bound; i += g.step) {
    const bool active = i < N;
    acc_t xx = 0, yy = 0, dd = 0;
    if (active) {
      const scalar_t *xi = X(i), *yi = Y(i);
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t xv = static_cast<acc_t>(xi[d]), yv = static_cast<acc_t>(yi[d]);
        xx += xv * xv;
        yy += yv * yv;
        dd += (xv - yv) * (xv - yv);
      }
    }
    xx = group_sum<G>(xx);
    yy = group_sum<G>(yy);
    dd = group_sum<G>(dd);
    if (active && g.lane == 0) out[i] = static_cast<scalar_t>(dist_value(xx, yy, dd, c));
  }
}

template <typename scalar_t, int G>
__global__ void __launch_bounds__(kThreads)
    dist_backward_kernel(const scalar_t* __restrict__ Gr, RowPtr<scalar_t> X, RowPtr<scalar_t> Y,
                         scalar_t* __restrict__ gx, scalar_t* __restrict__ gy, int64_t N, int64_t D, Curv curv,
                         double* __restrict__ partials) {
  using acc_t = at::opmath_type<scalar_t>;
  using Du = Dual<acc_t, 4>;  // partials: |x|^2, |y|^2, |x-y|^2, c
  const acc_t c = acc_t(curv.load());
  const GroupIdx g = group_idx<G>(N);
  double gc = 0;
  for (int64_t i = g.first; i < g.bound; i += g.step) {
    const bool active = i < N;
    acc_t xx = 0, yy = 0, dd = 0;
    if (active) {
      const scalar_t *xi = X(i), *yi = Y(i);
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t xv = static_cast<acc_t>(xi[d]), yv = static_cast<acc_t>(yi[d]);
        xx += xv * xv;
        yy += yv * yv;
        dd += (xv - yv) * (xv - yv);
      }
    }
    xx = group_sum<G>(xx);
    yy = group_sum<G>(yy);
    dd = group_sum<G>(dd);
    if (active) {
      const scalar_t *xi = X(i), *yi = Y(i);
      const Du l = dist_value(Du::var(xx, 0), Du::var(yy, 1), Du::var(dd, 2), Du::var(c, 3));
      const acc_t gi = static_cast<acc_t>(Gr[i]);
      const acc_t x2 = 2 * gi * l.d[0], y2 = 2 * gi * l.d[1], d2 = 2 * gi * l.d[2];
      scalar_t* ox = gx + i * D;
      scalar_t* oy = gy + i * D;
      for (int64_t d = g.lane; d < D; d += G) {
        const acc_t xv = static_cast<acc_t>(xi[d]), yv = static_cast<acc_t>(yi[d]);
        const acc_t diff = d2 * (xv - yv);
        ox[d] = static_cast<scalar_t>(x2 * xv + diff);
        oy[d] = static_cast<scalar_t>(y2 * yv - diff);
      }
      if (g.lane == 0) gc += double(gi * l.d[3]);
    }
  }
  block_partial(gc, partials);
}

at::Tensor dist_cuda(const at::Tensor& x, const at::Tensor& y, const at::Tensor& c) {
  check_rows("dist", {{&x, "x"}, {&y, "y"}});
  check_c("dist", c, x);
  const c10::cuda::CUDAGuard guard(x.device());
  const CurvArg cv = curv_arg("dist", c);
  Rows r = make_rows({x, y});
  std::vector<int64_t> out_shape(r.shape.begin(), r.shape.end() - 1);
  at::Tensor out = at::empty(out_shape, x.options());
  if (r.N == 0) return out;
  const int64_t blocks = blocks_for(r.N, group_width(r.D), x.get_device());
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "dist_cuda", [&] {
    with_group_width(r.D, [&](auto gw) {
      constexpr int G = decltype(gw)::value;
      dist_forward_kernel<scalar_t, G><<<unsigned(blocks), kThreads, 0, stream()>>>(
          row_ptr<scalar_t>(r.mats[0]), row_ptr<scalar_t>(r.mats[1]), out.data_ptr<scalar_t>(), r.N, r.D, cv.k);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dist_backward_cuda(const at::Tensor& grad, const at::Tensor& x,
                                                                  const at::Tensor& y, const at::Tensor& c) {
  check_rows("dist_backward", {{&x, "x"}, {&y, "y"}});
  check_c("dist_backward", c, x);
  check_cuda("dist_backward", x, "x", grad, "grad");
  const c10::cuda::CUDAGuard guard(x.device());
  const CurvArg cv = curv_arg("dist_backward", c);
  Rows r = make_rows({x, y});
  std::vector<int64_t> out_shape(r.shape.begin(), r.shape.end() - 1);
  at::Tensor g = grad.to(x.scalar_type()).expand(out_shape).reshape({r.N}).contiguous();
  at::Tensor gx = at::empty({r.N, r.D}, x.options());
  at::Tensor gy = at::empty({r.N, r.D}, x.options());
  const int64_t blocks = r.N > 0 ? blocks_for(r.N, group_width(r.D), x.get_device()) : 0;
  at::Tensor partials = partials_for(blocks, x);
  if (blocks > 0) {
    HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "dist_backward_cuda", [&] {
      with_group_width(r.D, [&](auto gw) {
        constexpr int G = decltype(gw)::value;
        dist_backward_kernel<scalar_t, G><<<unsigned(blocks), kThreads, 0, stream()>>>(
            g.data_ptr<scalar_t>(), row_ptr<scalar_t>(r.mats[0]), row_ptr<scalar_t>(r.mats[1]),
            gx.data_ptr<scalar_t>(), gy.data_ptr<scalar_t>(), r.N, r.D, cv.k, partials.data_ptr<double>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  return {reduce_to(gx, r.shape, x), reduce_to(gy, r.shape, y), finish_grad_c(partials, c)};
}

}  // namespace

TORCH_LIBRARY_IMPL(hypops, CUDA, m) {
  m.impl("dist", &dist_cuda);
  m.impl("dist_backward", &dist_backward_cuda);
}
}  // namespace cuda
}  // namespace hypops
