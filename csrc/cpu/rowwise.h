// Row-wise CPU kernels for the ops whose output is a combination of the input rows:
//   unary:  out = k(|x|^2, c) x                       (project, expmap0, logmap0)
//   binary: out = A(r, c) x + B(r, c) y, r = (|x|^2, |y|^2, <x,y>, |x-y|^2)   (mobius_add, expmap, logmap)
// Each row is read once from memory: a first sweep computes the reductions, the formula in
// common/math.h gives the coefficients, a second sweep (the row is now in L1) writes the output.
//
// Backward evaluates the same formula on Dual numbers. With g the incoming gradient and
// l = A <g,x> + B <g,y>, the input gradients are
//   grad_x = A g + (dl/d|x|^2) 2x + (dl/d<x,y>) y + (dl/d|x-y|^2) 2(x - y)
//   grad_y = B g + (dl/d|y|^2) 2y + (dl/d<x,y>) x - (dl/d|x-y|^2) 2(x - y)
// and grad_c = sum over rows of dl/dc. (x - y) is formed per element, so the term stays accurate when
// x and y nearly coincide.
#pragma once

#include <tuple>

#include "cpu/rows.h"

namespace hypops {

// Op: static S coef(S xx, S c, double eps) for S in {acc_t, Dual}.
template <typename Op> at::Tensor unary_forward(const char* name, const at::Tensor& x, const at::Tensor& c) {
  check_rows(name, {{&x, Op::arg}});
  check_c(name, c, x);
  const double cv = read_c_cpu(name, c);
  Rows r = make_rows({x});
  at::Tensor out = at::empty(r.shape, x.options());
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "hypops_rowwise", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto X = row_of<scalar_t>(r.mats[0]);
    scalar_t* O = out.data_ptr<scalar_t>();
    const int64_t D = r.D;
    const acc_t c_ = acc_t(cv);
    const acc_t eps = acc_t(proj_eps<scalar_t>());
    for_rows(r.N, D, [&](int64_t i) {
      const scalar_t* xi = X(i);
      acc_t xx = 0;
_Pragma("omp simd reduction(+ : xx)")
      for (int64_t d = 0; d < D; ++d) xx += acc_t(xi[d]) * acc_t(xi[d]);
      const acc_t k = Op::coef(xx, c_, eps);
      scalar_t* oi = O + i * D;
_Pragma("omp simd")
      for (int64_t d = 0; d < D; ++d) oi[d] = scalar_t(k * acc_t(xi[d]));
    });
  });
  return out;
}

template <typename Op>
std::tuple<at::Tensor, at::Tensor> unary_backward(const char* name, const at::Tensor& grad, const at::Tensor& x,
                                                  const at::Tensor& c) {
  check_rows(name, {{&grad, "grad"}, {&x, Op::arg}});
  check_c(name, c, x);
  const double cv = read_c_cpu(name, c);
  Rows r = make_rows({grad, x});
  at::Tensor gx = at::empty({r.N, r.D}, x.options());
  double gc = 0;
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "hypops_rowwise", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    using Du = Dual<double, 2>;  // in double even for float rows (partials can exceed float range where values do not); partials: |x|^2, c
    const auto G = row_of<scalar_t>(r.mats[0]);
    const auto X = row_of<scalar_t>(r.mats[1]);
    scalar_t* GX = gx.data_ptr<scalar_t>();
    const int64_t D = r.D;
    const acc_t eps = acc_t(proj_eps<scalar_t>());
    gc = sum_rows(r.N, D, [&](int64_t i) {
      const scalar_t *gi = G(i), *xi = X(i);
      acc_t xx = 0, gxv = 0;
_Pragma("omp simd reduction(+ : xx, gxv)")
      for (int64_t d = 0; d < D; ++d) {
        const acc_t xv = acc_t(xi[d]);
        xx += xv * xv;
        gxv += acc_t(gi[d]) * xv;
      }
      const Du k = Op::coef(Du::var(xx, 0), Du::var(cv, 1), double(eps));
      const acc_t a = k.v, b = acc_t(2) * gxv * k.d[0];
      scalar_t* o = GX + i * D;
_Pragma("omp simd")
      for (int64_t d = 0; d < D; ++d) o[d] = scalar_t(a * acc_t(gi[d]) + b * acc_t(xi[d]));
      return gxv * k.d[1];
    });
  });
  return {reduce_to(gx, r.shape, x), grad_c_tensor(gc, c)};
}

// Op: static Coef2<S> coef(S xx, S yy, S xy, S dd, S c, double eps); Op::kUsesDD says whether the
// formula reads |x - y|^2 (the forward skips that reduction otherwise).
template <typename Op>
at::Tensor binary_forward(const char* name, const at::Tensor& x, const at::Tensor& y, const at::Tensor& c) {
  check_rows(name, {{&x, Op::arg0}, {&y, Op::arg1}});
  check_c(name, c, x);
  const double cv = read_c_cpu(name, c);
  Rows r = make_rows({x, y});
  at::Tensor out = at::empty(r.shape, x.options());
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "hypops_rowwise", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto X = row_of<scalar_t>(r.mats[0]);
    const auto Y = row_of<scalar_t>(r.mats[1]);
    scalar_t* O = out.data_ptr<scalar_t>();
    const int64_t D = r.D;
    const acc_t c_ = acc_t(cv);
    const acc_t eps = acc_t(proj_eps<scalar_t>());
    for_rows(r.N, D, [&](int64_t i) {
      const scalar_t *xi = X(i), *yi = Y(i);
      acc_t xx = 0, yy = 0, xy = 0, dd = 0;
      if constexpr (Op::kUsesDD) {
_Pragma("omp simd reduction(+ : xx, yy, xy, dd)")
        for (int64_t d = 0; d < D; ++d) {
          const acc_t xv = acc_t(xi[d]), yv = acc_t(yi[d]);
          xx += xv * xv;
          yy += yv * yv;
          xy += xv * yv;
          dd += (xv - yv) * (xv - yv);
        }
      } else {
_Pragma("omp simd reduction(+ : xx, yy, xy)")
        for (int64_t d = 0; d < D; ++d) {
          const acc_t xv = acc_t(xi[d]), yv = acc_t(yi[d]);
          xx += xv * xv;
          yy += yv * yv;
          xy += xv * yv;
        }
      }
      const Coef2<acc_t> k = Op::coef(xx, yy, xy, dd, c_, eps);
      scalar_t* oi = O + i * D;
_Pragma("omp simd")
      for (int64_t d = 0; d < D; ++d) oi[d] = scalar_t(k.a * acc_t(xi[d]) + k.b * acc_t(yi[d]));
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
  const double cv = read_c_cpu(name, c);
  Rows r = make_rows({grad, x, y});
  at::Tensor gx = at::empty({r.N, r.D}, x.options());
  at::Tensor gy = at::empty({r.N, r.D}, x.options());
  double gc = 0;
  HYPOPS_DISPATCH_FLOATS(x.scalar_type(), "hypops_rowwise", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    using Du = Dual<double, 5>;  // in double even for float rows (partials can exceed float range where values do not); partials: |x|^2, |y|^2, <x,y>, |x-y|^2, c
    const auto G = row_of<scalar_t>(r.mats[0]);
    const auto X = row_of<scalar_t>(r.mats[1]);
    const auto Y = row_of<scalar_t>(r.mats[2]);
    scalar_t* GX = gx.data_ptr<scalar_t>();
    scalar_t* GY = gy.data_ptr<scalar_t>();
    const int64_t D = r.D;
    const acc_t eps = acc_t(proj_eps<scalar_t>());
    gc = sum_rows(r.N, D, [&](int64_t i) {
      const scalar_t *gi = G(i), *xi = X(i), *yi = Y(i);
      acc_t xx = 0, yy = 0, xy = 0, dd = 0, gxv = 0, gyv = 0;
_Pragma("omp simd reduction(+ : xx, yy, xy, dd, gxv, gyv)")
      for (int64_t d = 0; d < D; ++d) {
        const acc_t xv = acc_t(xi[d]), yv = acc_t(yi[d]), gv = acc_t(gi[d]);
        xx += xv * xv;
        yy += yv * yv;
        xy += xv * yv;
        dd += (xv - yv) * (xv - yv);
        gxv += gv * xv;
        gyv += gv * yv;
      }
      const Coef2<Du> k = Op::coef(Du::var(xx, 0), Du::var(yy, 1), Du::var(xy, 2), Du::var(dd, 3),
                                   Du::var(cv, 4), double(eps));
      double l[5];
      for (int j = 0; j < 5; ++j) l[j] = k.a.d[j] * gxv + k.b.d[j] * gyv;
      const acc_t A = k.a.v, B = k.b.v;
      const acc_t x2 = acc_t(2) * l[0], y2 = acc_t(2) * l[1], xyc = l[2], d2 = acc_t(2) * l[3];
      scalar_t* ox = GX + i * D;
      scalar_t* oy = GY + i * D;
_Pragma("omp simd")
      for (int64_t d = 0; d < D; ++d) {
        const acc_t xv = acc_t(xi[d]), yv = acc_t(yi[d]), gv = acc_t(gi[d]);
        const acc_t diff = d2 * (xv - yv);
        ox[d] = scalar_t(A * gv + x2 * xv + xyc * yv + diff);
        oy[d] = scalar_t(B * gv + y2 * yv + xyc * xv - diff);
      }
      return l[4];
    });
  });
  return {reduce_to(gx, r.shape, x), reduce_to(gy, r.shape, y), grad_c_tensor(gc, c)};
}

}  // namespace hypops
