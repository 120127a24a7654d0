// dist(x, y) = (2/sqrt(c)) artanh(sqrt(c)|(-x) (+) y|), computed from |x|^2, |y|^2 and |x - y|^2
// (common/math.h: dist_value), so it stays accurate for nearby points. [..., D] -> [...].
//
// Backward: with l = dist_value(r, c) and g the incoming gradient,
//   grad_x = g (2 dl/d|x|^2 x + 2 dl/d|x-y|^2 (x - y)),  grad_y = g (2 dl/d|y|^2 y - 2 dl/d|x-y|^2 (x - y)).
#include <torch/library.h>

#include "cpu/rows.h"

namespace hypops {
namespace {

at::Tensor dist_cpu(const at::Tensor& x, const at::Tensor& y, const at::Tensor& c) {
  check_rows("dist", {{&x, "x"}, {&y, "y"}});
  check_c("dist", c, x);
  const double cv = read_c_cpu("dist", c);
  Rows r = make_rows({x, y});
  std::vector<int64_t> out_shape(r.shape.begin(), r.shape.end() - 1);
  at::Tensor out = at::empty(out_shape, x.options());
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "dist", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto X = row_of<scalar_t>(r.mats[0]);
    const auto Y = row_of<scalar_t>(r.mats[1]);
    scalar_t* O = out.data_ptr<scalar_t>();
    const int64_t D = r.D;
    const acc_t c_ = acc_t(cv);
    for_rows(r.N, D, [&](int64_t i) {
      const scalar_t *xi = X(i), *yi = Y(i);
      acc_t xx = 0, yy = 0, dd = 0;
_Pragma("omp simd reduction(+ : xx, yy, dd)")
      for (int64_t d = 0; d < D; ++d) {
        const acc_t xv = acc_t(xi[d]), yv = acc_t(yi[d]);
        xx += xv * xv;
        yy += yv * yv;
        dd += (xv - yv) * (xv - yv);
      }
      O[i] = scalar_t(dist_value(xx, yy, dd, c_));
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dist_backward_cpu(const at::Tensor& grad, const at::Tensor& x,
                                                                 const at::Tensor& y, const at::Tensor& c) {
  check_rows("dist_backward", {{&x, "x"}, {&y, "y"}});
  check_c("dist_backward", c, x);
  const double cv = read_c_cpu("dist_backward", c);
  Rows r = make_rows({x, y});
  std::vector<int64_t> out_shape(r.shape.begin(), r.shape.end() - 1);
  at::Tensor g = grad.to(x.scalar_type()).expand(out_shape).reshape({r.N}).contiguous();
  at::Tensor gx = at::empty({r.N, r.D}, x.options());
  at::Tensor gy = at::empty({r.N, r.D}, x.options());
  double gc = 0;
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "dist_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    using Du = Dual<double, 4>;  // in double even for float rows (partials can exceed float range where values do not); partials: |x|^2, |y|^2, |x-y|^2, c
    const auto X = row_of<scalar_t>(r.mats[0]);
    const auto Y = row_of<scalar_t>(r.mats[1]);
    const scalar_t* G = g.data_ptr<scalar_t>();
    scalar_t* GX = gx.data_ptr<scalar_t>();
    scalar_t* GY = gy.data_ptr<scalar_t>();
    const int64_t D = r.D;
    gc = sum_rows(r.N, D, [&](int64_t i) {
      const scalar_t *xi = X(i), *yi = Y(i);
      acc_t xx = 0, yy = 0, dd = 0;
_Pragma("omp simd reduction(+ : xx, yy, dd)")
      for (int64_t d = 0; d < D; ++d) {
        const acc_t xv = acc_t(xi[d]), yv = acc_t(yi[d]);
        xx += xv * xv;
        yy += yv * yv;
        dd += (xv - yv) * (xv - yv);
      }
      const Du l = dist_value(Du::var(xx, 0), Du::var(yy, 1), Du::var(dd, 2), Du::var(cv, 3));
      const acc_t gi = acc_t(G[i]);
      const acc_t x2 = 2 * gi * l.d[0], y2 = 2 * gi * l.d[1], d2 = 2 * gi * l.d[2];
      scalar_t* ox = GX + i * D;
      scalar_t* oy = GY + i * D;
_Pragma("omp simd")
      for (int64_t d = 0; d < D; ++d) {
        const acc_t xv = acc_t(xi[d]), yv = acc_t(yi[d]);
        const acc_t diff = d2 * (xv - yv);
        ox[d] = scalar_t(x2 * xv + diff);
        oy[d] = scalar_t(y2 * yv - diff);
      }
      return gi * l.d[3];
    });
  });
  return {reduce_to(gx, r.shape, x), reduce_to(gy, r.shape, y), grad_c_tensor(gc, c)};
}

}  // namespace

TORCH_LIBRARY_IMPL(hypops, CPU, m) {
  m.impl("dist", &dist_cpu);
  m.impl("dist_backward", &dist_backward_cpu);
}
}  // namespace hypops
