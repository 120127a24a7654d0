// dist(x, y) = (2/sqrt(c)) artanh(sqrt(c)|(-x) (+) y|), computed from |x|^2, |y|^2 and |x - y|^2
// (common/math.h: dist_value), so it stays accurate for nearby points. [..., D] -> [...].
//
// Backward: with l = dist_value(r, c) and g the incoming gradient,
//   grad_x = g (2 dl/d|x|^2 x + 2 dl/d|x-y|^2 (x - y)),  grad_y = g (2 dl/d|y|^2 y - 2 dl/d|x-y|^2 (x - y)).
//
// The per-row formula runs vectorised over blocks of rows (cpu/simd/row_kernels.h; the scheme is described
// in cpu/rowwise.h) unless the kernels are set to "scalar", which runs the plain per-row loop below.
#include <torch/library.h>

#include "cpu/rows.h"
#include "cpu/simd/row_kernels.h"

namespace hypops {
namespace {

template <typename acc_t> struct DistRed {
  acc_t xx, yy, dd;
};
template <typename acc_t, typename scalar_t> HYPOPS_SWEEP
inline DistRed<acc_t> dist_red(const scalar_t* xi, const scalar_t* yi, int64_t D) {
  const auto s = row_reductions<3, acc_t>(D, [](auto* s, auto x, auto y) HYPOPS_SWEEP {
    const auto df = x - y;
    s[0] += x * x;
    s[1] += y * y;
    s[2] += df * df;
  }, xi, yi);
  return {s[0], s[1], s[2]};
}
template <typename acc_t, typename scalar_t, simd::SweepIsa I = simd::SweepIsa::baseline> HYPOPS_SWEEP
inline void dist_bwd_out(scalar_t* ox, scalar_t* oy, const scalar_t* xi, const scalar_t* yi, acc_t x2, acc_t y2,
                         acc_t d2, int64_t D, Stores<I> st = {}) {
  if constexpr (kStreamable<scalar_t>) {
    if (st.stream) {
      stream_row<Stores<I>::kBytes>(ox, D, [=](auto x, auto y) HYPOPS_SWEEP { return x2 * x + d2 * (x - y); }, xi, yi);
      stream_row<Stores<I>::kBytes>(oy, D, [=](auto x, auto y) HYPOPS_SWEEP { return y2 * y - d2 * (x - y); }, xi, yi);
      return;
    }
  }
_Pragma("omp simd")
  for (int64_t d = 0; d < D; ++d) {
    const acc_t xv = acc_t(xi[d]), yv = acc_t(yi[d]);
    const acc_t diff = d2 * (xv - yv);
    ox[d] = scalar_t(x2 * xv + diff);
    oy[d] = scalar_t(y2 * yv - diff);
  }
}

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
    const simd::RowKernels& kern = simd::row_kernels();
    if (kern.dist_fwd_f != nullptr) {
      for_row_blocks(r.N, D, [&](auto isa, int64_t b, int64_t e) HYPOPS_SWEEP {
        acc_t xx[kMaxRowBlock], yy[kMaxRowBlock], dd[kMaxRowBlock], o[kMaxRowBlock];
        for (int64_t i = b; i < e; ++i) {
          const auto q = dist_red<acc_t>(X(i), Y(i), D);
          xx[i - b] = q.xx, yy[i - b] = q.yy, dd[i - b] = q.dd;
        }
        simd::run(kern, simd::DistFwd<acc_t>{xx, yy, dd, o, c_, e - b});
        for (int64_t i = b; i < e; ++i) O[i] = scalar_t(o[i - b]);
      }, kern.sweeps);
      return;
    }
    for_rows(r.N, D, [&](int64_t i) HYPOPS_SWEEP {
      const auto q = dist_red<acc_t>(X(i), Y(i), D);
      O[i] = scalar_t(dist_value(q.xx, q.yy, q.dd, c_));
    }, kern.sweeps);
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
    const simd::RowKernels& kern = simd::row_kernels();
    if (kern.dist_bwd_f != nullptr) {
      // the next block's rows while this block's gradients are written (cpu/rows.h: prefetch_row): in one
      // process against no prefetch, 1.03-1.21x at 2^18 and 2^20 x 64 (four runs)
      const int64_t in_bytes = streamed_bytes(r.mats);
      const bool prefetch = in_bytes >= kPrefetchMinBytes;
      const bool stream = stream_outputs(in_bytes + gx.nbytes() + gy.nbytes());
      gc = sum_row_blocks(r.N, D, [&](auto isa, int64_t b, int64_t e) HYPOPS_SWEEP {
        acc_t xx[kMaxRowBlock], yy[kMaxRowBlock], dd[kMaxRowBlock], gi[kMaxRowBlock];
        acc_t x2[kMaxRowBlock], y2[kMaxRowBlock], d2[kMaxRowBlock];
        for (int64_t i = b; i < e; ++i) {
          const auto q = dist_red<acc_t>(X(i), Y(i), D);
          xx[i - b] = q.xx, yy[i - b] = q.yy, dd[i - b] = q.dd, gi[i - b] = acc_t(G[i]);
        }
        const double s = simd::run(kern, simd::DistBwd<acc_t>{xx, yy, dd, gi, x2, y2, d2, cv, e - b});
        for (int64_t i = b; i < e; ++i) {
          if (prefetch) prefetch_row(i + (e - b), r.N, D, X, Y);
          dist_bwd_out(GX + i * D, GY + i * D, X(i), Y(i), x2[i - b], y2[i - b], d2[i - b], D, stores(isa, stream));
        }
        return s;
      }, kern.sweeps);
      return;
    }
    gc = sum_rows(r.N, D, [&](int64_t i) HYPOPS_SWEEP {
      const auto q = dist_red<acc_t>(X(i), Y(i), D);
      const Du l = dist_value(Du::var(q.xx, 0), Du::var(q.yy, 1), Du::var(q.dd, 2), Du::var(cv, 3));
      const acc_t gi = acc_t(G[i]);
      const acc_t x2 = 2 * gi * l.d[0], y2 = 2 * gi * l.d[1], d2 = 2 * gi * l.d[2];
      dist_bwd_out(GX + i * D, GY + i * D, X(i), Y(i), x2, y2, d2, D);
      return gi * l.d[3];
    }, kern.sweeps);
  });
  return {reduce_to(gx, r.shape, x), reduce_to(gy, r.shape, y), grad_c_tensor(gc, c)};
}

}  // namespace

TORCH_LIBRARY_IMPL(hypops, CPU, m) {
  m.impl("dist", &dist_cpu);
  m.impl("dist_backward", &dist_backward_cpu);
}
}  // namespace hypops
