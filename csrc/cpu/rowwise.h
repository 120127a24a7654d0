// Row-wise CPU kernels for the ops whose output is a combination of the input rows:
//   unary:  out = k(|x|^2, c) x                       (project, expmap0, logmap0)
//   binary: out = A(r, c) x + B(r, c) y, r = (|x|^2, |y|^2, <x,y>, |x-y|^2)   (mobius_add, expmap, logmap)
// Each row is read once from memory: a first sweep computes the reductions, the formula in
// common/math.h (through cpu/row_ops.h) gives the coefficients, a second sweep (the row is now in
// L1/L2) writes the output.
//
// Backward evaluates the same formula on Dual numbers. With g the incoming gradient and
// l = A <g,x> + B <g,y>, the input gradients are
//   grad_x = A g + (dl/d|x|^2) 2x + (dl/d<x,y>) y + (dl/d|x-y|^2) 2(x - y)
//   grad_y = B g + (dl/d|y|^2) 2y + (dl/d<x,y>) x - (dl/d|x-y|^2) 2(x - y)
// and grad_c = sum over rows of dl/dc. (x - y) is formed per element, so the term stays accurate when
// x and y nearly coincide.
//
// Two paths compute the per-row coefficients (the "scalar stage" between the sweeps):
//  - vectorised (default): rows go in blocks (rows.h: for_row_blocks); sweep 1 stores each row's
//    reductions in small per-block arrays, one call to the per-ISA row kernels (cpu/simd/row_kernels.h)
//    evaluates the formula for the whole block with one row per SIMD lane, sweep 2 writes the rows;
//  - scalar (HYPOPS_CPU_KERNELS=scalar, or hypops._C._set_cpu_kernels("scalar")): the formula through
//    libm and Dual<double>, one row at a time -- the code before vectorisation, kept as the reference the
//    tests (tests/test_simd_kernels.py) and benchmarks compare the vectorised path with.
// Both paths share the sweeps below (compiled for the kernels' instruction set, cpu/rows.h: AVX2+FMA under the
// AVX2 kernels and "scalar-avx2", AVX-512 under the AVX-512 kernels with the same 32-byte reductions; the
// baseline under "baseline" and "scalar"), so kernels and their reference differ only in that stage.
#pragma once

#include <tuple>

#include "cpu/row_ops.h"
#include "cpu/rows.h"
#include "cpu/simd/row_kernels.h"

namespace hypops {

// --- the sweeps, shared by both paths --------------------------------------------------------------------
// Each helper is HYPOPS_SWEEP (always inlined) so that it is compiled into the AVX2 / AVX-512 sweeps of cpu/rows.h: a
// helper gcc chose not to inline ran its baseline (SSE2) code there (seen in mobius_add's per-row forward once
// its reductions grew).
template <typename acc_t, typename scalar_t> HYPOPS_SWEEP
inline acc_t row_sq(const scalar_t* xi, int64_t D) {
  return row_reductions<1, acc_t>(D, [](auto* s, auto x) HYPOPS_SWEEP { s[0] += x * x; }, xi)[0];
}
// o[d] = f(in[d]...) for one output row, f a generic HYPOPS_SWEEP lambda written once for both stores: with
// streaming stores (cpu/rows.h: stream_row, float/double rows) it is called on vectors (16 bytes and the sweep's
// width, Stores<I>) and scalars of the rows' type, else on acc_t values in a plain `omp simd` loop (half types are
// computed in float).
template <typename acc_t, typename scalar_t, simd::SweepIsa I, typename F, typename... In> HYPOPS_SWEEP
inline void write_row(scalar_t* o, int64_t D, Stores<I> st, const F& f, const In*... in) {
  if constexpr (kStreamable<scalar_t>) {
    if (st.stream) return stream_row<Stores<I>::kBytes>(o, D, f, in...);
  }
_Pragma("omp simd")
  for (int64_t d = 0; d < D; ++d) o[d] = scalar_t(f(acc_t(in[d])...));
}
template <typename acc_t, typename scalar_t, simd::SweepIsa I = simd::SweepIsa::baseline> HYPOPS_SWEEP
inline void row_scale(scalar_t* oi, const scalar_t* xi, acc_t k, int64_t D, Stores<I> st = {}) {
  write_row<acc_t>(oi, D, st, [k](auto x) HYPOPS_SWEEP { return k * x; }, xi);
}
// unary backward: |x|^2 and <g, x>
template <typename acc_t> struct UnaryBwdRed {
  acc_t xx, gx;
};
template <typename acc_t, typename scalar_t> HYPOPS_SWEEP
inline UnaryBwdRed<acc_t> unary_bwd_red(const scalar_t* gi, const scalar_t* xi, int64_t D) {
  const auto s = row_reductions<2, acc_t>(D, [](auto* s, auto g, auto x) HYPOPS_SWEEP {
    s[0] += x * x;
    s[1] += g * x;
  }, gi, xi);
  return {s[0], s[1]};
}
template <typename acc_t, typename scalar_t, simd::SweepIsa I = simd::SweepIsa::baseline> HYPOPS_SWEEP
inline void unary_bwd_out(scalar_t* o, const scalar_t* gi, const scalar_t* xi, acc_t a, acc_t b, int64_t D,
                          Stores<I> st = {}) {
  write_row<acc_t>(o, D, st, [a, b](auto g, auto x) HYPOPS_SWEEP { return a * g + b * x; }, gi, xi);
}
// binary: |x|^2, |y|^2, <x,y> and, when the formula reads it (kDD), |x - y|^2 (else 0)
template <typename acc_t> struct BinaryRed {
  acc_t xx, yy, xy, dd;
};
template <bool kDD, typename acc_t, typename scalar_t> HYPOPS_SWEEP
inline BinaryRed<acc_t> binary_red(const scalar_t* xi, const scalar_t* yi, int64_t D) {
  if constexpr (kDD) {
    const auto s = row_reductions<4, acc_t>(D, [](auto* s, auto x, auto y) HYPOPS_SWEEP {
      const auto df = x - y;
      s[0] += x * x;
      s[1] += y * y;
      s[2] += x * y;
      s[3] += df * df;
    }, xi, yi);
    return {s[0], s[1], s[2], s[3]};
  } else {
    const auto s = row_reductions<3, acc_t>(D, [](auto* s, auto x, auto y) HYPOPS_SWEEP {
      s[0] += x * x;
      s[1] += y * y;
      s[2] += x * y;
    }, xi, yi);
    return {s[0], s[1], s[2], acc_t(0)};
  }
}
template <typename acc_t, typename scalar_t, simd::SweepIsa I = simd::SweepIsa::baseline> HYPOPS_SWEEP
inline void binary_out(scalar_t* oi, const scalar_t* xi, const scalar_t* yi, acc_t a, acc_t b, int64_t D,
                       Stores<I> st = {}) {
  write_row<acc_t>(oi, D, st, [a, b](auto x, auto y) HYPOPS_SWEEP { return a * x + b * y; }, xi, yi);
}
// binary backward: the reductions and <g,x>, <g,y>. Without kDD (the op's formula does not read |x - y|^2:
// mobius_add, expmap) the difference is neither reduced here nor applied in binary_bwd_out, since its partial
// is zero: the sweeps then run 5 sums and 3 terms an element instead of 6 and 4, and the per-row stage carries
// 4 partials instead of 5. In one process against the 6-sum, 5-partial backward (bit-identical results):
// expmap 1.13-1.18x, mobius_add 1.15-1.31x at 2^20 x 64; 1.03-1.13x at 8192 x 1-16 and 4096 x 64.
template <typename acc_t> struct BinaryBwdRed {
  acc_t xx, yy, xy, dd, gx, gy;
};
template <bool kDD, typename acc_t, typename scalar_t> HYPOPS_SWEEP
inline BinaryBwdRed<acc_t> binary_bwd_red(const scalar_t* gi, const scalar_t* xi, const scalar_t* yi, int64_t D) {
  const auto s = row_reductions<kDD ? 6 : 5, acc_t>(D, [](auto* s, auto g, auto x, auto y) HYPOPS_SWEEP {
    s[0] += x * x;
    s[1] += y * y;
    s[2] += x * y;
    s[3] += g * x;
    s[4] += g * y;
    if constexpr (kDD) {
      const auto df = x - y;
      s[5] += df * df;
    }
  }, gi, xi, yi);
  acc_t dd = 0;
  if constexpr (kDD) dd = s[5];
  return {s[0], s[1], s[2], dd, s[3], s[4]};
}
// d2 is ignored without kDD.
template <bool kDD, typename acc_t, typename scalar_t, simd::SweepIsa I = simd::SweepIsa::baseline> HYPOPS_SWEEP
inline void binary_bwd_out(scalar_t* ox, scalar_t* oy, const scalar_t* gi, const scalar_t* xi, const scalar_t* yi,
                           acc_t A, acc_t B, acc_t x2, acc_t y2, acc_t xyc, acc_t d2, int64_t D,
                           Stores<I> st = {}) {
  if constexpr (kStreamable<scalar_t>) {
    if (st.stream) {
      constexpr int kBytes = Stores<I>::kBytes;
      if constexpr (kDD) {
        stream_row<kBytes>(ox, D, [=](auto g, auto x, auto y) HYPOPS_SWEEP { return A * g + x2 * x + xyc * y + d2 * (x - y); },
                           gi, xi, yi);
        stream_row<kBytes>(oy, D, [=](auto g, auto x, auto y) HYPOPS_SWEEP { return B * g + y2 * y + xyc * x - d2 * (x - y); },
                           gi, xi, yi);
      } else {
        stream_row<kBytes>(ox, D, [=](auto g, auto x, auto y) HYPOPS_SWEEP { return A * g + x2 * x + xyc * y; }, gi, xi, yi);
        stream_row<kBytes>(oy, D, [=](auto g, auto x, auto y) HYPOPS_SWEEP { return B * g + y2 * y + xyc * x; }, gi, xi, yi);
      }
      return;
    }
  }
  if constexpr (kDD) {
_Pragma("omp simd")
    for (int64_t d = 0; d < D; ++d) {
      const acc_t xv = acc_t(xi[d]), yv = acc_t(yi[d]), gv = acc_t(gi[d]);
      const acc_t diff = d2 * (xv - yv);
      ox[d] = scalar_t(A * gv + x2 * xv + xyc * yv + diff);
      oy[d] = scalar_t(B * gv + y2 * yv + xyc * xv - diff);
    }
  } else {
_Pragma("omp simd")
    for (int64_t d = 0; d < D; ++d) {
      const acc_t xv = acc_t(xi[d]), yv = acc_t(yi[d]), gv = acc_t(gi[d]);
      ox[d] = scalar_t(A * gv + x2 * xv + xyc * yv);
      oy[d] = scalar_t(B * gv + y2 * yv + xyc * xv);
    }
  }
}

// --- unary ---------------------------------------------------------------------------------------------
// Op (cpu/row_ops.h): static S coef(S xx, S c, T eps) for S in {acc_t, Dual, Lane, Dual<Lane>}; the blocked
// vectorised path only where Op::kBlocked, else the per-row loop whatever the kernels.
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
    const simd::RowKernels& kern = simd::row_kernels();
    if constexpr (Op::kBlocked) {
      if (kern.unary_fwd_f != nullptr) {
        const bool stream = stream_outputs(streamed_bytes(r.mats) + out.nbytes());
        for_row_blocks(r.N, D, [&](auto isa, int64_t b, int64_t e) HYPOPS_SWEEP {
          acc_t xx[kMaxRowBlock], k[kMaxRowBlock];
          for (int64_t i = b; i < e; ++i) xx[i - b] = row_sq<acc_t>(X(i), D);
          simd::run(kern, Op::kOp, simd::UnaryFwd<acc_t>{xx, k, c_, eps, e - b});
          for (int64_t i = b; i < e; ++i) row_scale(O + i * D, X(i), k[i - b], D, stores(isa, stream));
        }, kern.sweeps);
        return;
      }
    }
    for_rows(r.N, D, [&](int64_t i) HYPOPS_SWEEP {
      const acc_t k = Op::coef(row_sq<acc_t>(X(i), D), c_, eps);
      row_scale(O + i * D, X(i), k, D);
    }, kern.sweeps);
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
    const simd::RowKernels& kern = simd::row_kernels();
    if constexpr (Op::kBlocked) {
      if (kern.unary_bwd_f != nullptr) {
        // The next block's rows are prefetched as in the binary ops (cpu/rows.h: prefetch_row); the forward, which
        // reads one row a row, measured no gain from it (kPrefetchMinBytes).
        const bool prefetch = streamed_bytes(r.mats) >= kPrefetchMinBytes;
        const bool stream = stream_outputs(streamed_bytes(r.mats) + gx.nbytes());
        gc = sum_row_blocks(r.N, D, [&](auto isa, int64_t b, int64_t e) HYPOPS_SWEEP {
          acc_t xx[kMaxRowBlock], gxv[kMaxRowBlock], ka[kMaxRowBlock], kb[kMaxRowBlock];
          for (int64_t i = b; i < e; ++i) {
            const auto q = unary_bwd_red<acc_t>(G(i), X(i), D);
            xx[i - b] = q.xx;
            gxv[i - b] = q.gx;
          }
          const double s =
              simd::run(kern, Op::kOp, simd::UnaryBwd<acc_t>{xx, gxv, ka, kb, cv, double(eps), e - b});
          for (int64_t i = b; i < e; ++i) {
            if (prefetch) prefetch_row(i + (e - b), r.N, D, G, X);
            unary_bwd_out(GX + i * D, G(i), X(i), ka[i - b], kb[i - b], D, stores(isa, stream));
          }
          return s;
        }, kern.sweeps);
        return;
      }
    }
    gc = sum_rows(r.N, D, [&](int64_t i) HYPOPS_SWEEP {
      const auto q = unary_bwd_red<acc_t>(G(i), X(i), D);
      const Du k = Op::coef(Du::var(q.xx, 0), Du::var(cv, 1), double(eps));
      const acc_t a = k.v, b = acc_t(2) * q.gx * k.d[0];
      unary_bwd_out(GX + i * D, G(i), X(i), a, b, D);
      return q.gx * k.d[1];
    }, kern.sweeps);
  });
  return {reduce_to(gx, r.shape, x), grad_c_tensor(gc, c)};
}

// --- binary --------------------------------------------------------------------------------------------
// Op (cpu/row_ops.h): static Coef2<S> coef(S xx, S yy, S xy, S dd, S c, T eps); Op::kUsesDD says whether
// the formula reads |x - y|^2 (the forward skips that reduction otherwise); the forward takes the blocked
// vectorised path where Op::kBlockedForward, or where the rows it reads and writes fit in
// kBlockedForwardMaxBytes (the L2 of our machines: in cache the per-row evaluation of the coefficients is what
// costs, while on larger tensors memory does and the blocking's extra pass over a block does not pay; see
// MobiusAddOp). The backward always blocks.
constexpr int64_t kBlockedForwardMaxBytes = int64_t(2) << 20;
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
    const simd::RowKernels& kern = simd::row_kernels();
    const bool blocked = Op::kBlockedForward || 3 * r.N * D * int64_t(sizeof(scalar_t)) <= kBlockedForwardMaxBytes;
    if (blocked && kern.binary_fwd_f != nullptr) {
      const int64_t in_bytes = streamed_bytes(r.mats);
      const bool prefetch = in_bytes >= kPrefetchMinBytes;
      const bool stream = stream_outputs(in_bytes + out.nbytes());
      for_row_blocks(r.N, D, [&](auto isa, int64_t b, int64_t e) HYPOPS_SWEEP {
        acc_t xx[kMaxRowBlock], yy[kMaxRowBlock], xy[kMaxRowBlock], dd[kMaxRowBlock];
        acc_t ka[kMaxRowBlock], kb[kMaxRowBlock];
        for (int64_t i = b; i < e; ++i) {
          const auto q = binary_red<Op::kUsesDD, acc_t>(X(i), Y(i), D);
          xx[i - b] = q.xx;
          yy[i - b] = q.yy;
          xy[i - b] = q.xy;
          dd[i - b] = q.dd;
        }
        simd::run(kern, Op::kOp, simd::BinaryFwd<acc_t>{xx, yy, xy, dd, ka, kb, c_, eps, e - b});
        for (int64_t i = b; i < e; ++i) {
          if (prefetch) prefetch_row(i + (e - b), r.N, D, X, Y);
          binary_out(O + i * D, X(i), Y(i), ka[i - b], kb[i - b], D, stores(isa, stream));
        }
      }, kern.sweeps);
      return;
    }
    // One row at a time (the coefficients through Op::coef), in the blocks of the blocked path only so that the
    // sweep's instruction set reaches the streaming stores (Stores): mobius_add's forward on large tensors
    // (MobiusAddOp), and every binary forward under the "scalar" kernels. Streaming stores: in one process against
    // plain ones, mobius_add 1.14-1.19x at 2^20 x 64 (blocks of four calls, minima; 16-byte stores had measured
    // 0.89-0.99x). Rows one block's worth ahead are prefetched, as the blocked paths do (cpu/rows.h:
    // prefetch_row): in one process against no prefetch, mobius_add 1.21x at 2^18 and 2^20 x 64 (15 rounds;
    // 0.95-1.11x at 2^16 x 64, the first size that prefetches); two blocks ahead measured the same.
    const int64_t in_bytes = streamed_bytes(r.mats);
    const bool prefetch_ahead = in_bytes >= kPrefetchMinBytes;
    const bool stream = stream_outputs(in_bytes + out.nbytes());
    const int64_t ahead = row_block(D);
    for_row_blocks(r.N, D, [&](auto isa, int64_t b, int64_t e) HYPOPS_SWEEP {
      for (int64_t i = b; i < e; ++i) {
        if (prefetch_ahead) prefetch_row(i + ahead, r.N, D, X, Y);
        const auto q = binary_red<Op::kUsesDD, acc_t>(X(i), Y(i), D);
        const Coef2<acc_t> k = Op::coef(q.xx, q.yy, q.xy, q.dd, c_, eps);
        binary_out(O + i * D, X(i), Y(i), k.a, k.b, D, stores(isa, stream));
      }
    }, kern.sweeps);
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
    const simd::RowKernels& kern = simd::row_kernels();
    if (kern.binary_bwd_f != nullptr) {
      const int64_t in_bytes = streamed_bytes(r.mats);
      const bool prefetch = in_bytes >= kPrefetchMinBytes;
      const bool stream = stream_outputs(in_bytes + gx.nbytes() + gy.nbytes());
      gc = sum_row_blocks(r.N, D, [&](auto isa, int64_t b, int64_t e) HYPOPS_SWEEP {
        constexpr int64_t B = kMaxRowBlock;
        acc_t xx[B], yy[B], xy[B], dd[B], gxv[B], gyv[B];
        acc_t ka[B], kb[B], x2[B], y2[B], xyc[B], d2[B];
        for (int64_t i = b; i < e; ++i) {
          const auto q = binary_bwd_red<Op::kUsesDD, acc_t>(G(i), X(i), Y(i), D);
          const int64_t j = i - b;
          xx[j] = q.xx, yy[j] = q.yy, xy[j] = q.xy, dd[j] = q.dd, gxv[j] = q.gx, gyv[j] = q.gy;
        }
        const double s = simd::run(kern, Op::kOp, simd::BinaryBwd<acc_t>{xx, yy, xy, dd, gxv, gyv, ka, kb, x2, y2,
                                                                          xyc, d2, cv, double(eps), e - b});
        for (int64_t i = b; i < e; ++i) {
          if (prefetch) prefetch_row(i + (e - b), r.N, D, G, X, Y);
          const int64_t j = i - b;
          // d2[j] is written by the per-row stage only for ops that read |x - y|^2
          binary_bwd_out<Op::kUsesDD>(GX + i * D, GY + i * D, G(i), X(i), Y(i), ka[j], kb[j], x2[j], y2[j], xyc[j],
                                      Op::kUsesDD ? d2[j] : acc_t(0), D, stores(isa, stream));
        }
        return s;
      }, kern.sweeps);
      return;
    }
    gc = sum_rows(r.N, D, [&](int64_t i) HYPOPS_SWEEP {
      const auto q = binary_bwd_red<Op::kUsesDD, acc_t>(G(i), X(i), Y(i), D);
      const Coef2<Du> k = Op::coef(Du::var(q.xx, 0), Du::var(q.yy, 1), Du::var(q.xy, 2), Du::var(q.dd, 3),
                                   Du::var(cv, 4), double(eps));
      double l[5];
      for (int j = 0; j < 5; ++j) l[j] = k.a.d[j] * q.gx + k.b.d[j] * q.gy;
      binary_bwd_out<Op::kUsesDD>(GX + i * D, GY + i * D, G(i), X(i), Y(i), acc_t(k.a.v), acc_t(k.b.v), acc_t(2 * l[0]),
                     acc_t(2 * l[1]), acc_t(l[2]), acc_t(2 * l[3]), D);
      return l[4];
    }, kern.sweeps);
  });
  return {reduce_to(gx, r.shape, x), reduce_to(gy, r.shape, y), grad_c_tensor(gc, c)};
}

}  // namespace hypops
