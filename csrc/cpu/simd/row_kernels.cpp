// The per-row scalar stage of the pointwise row kernels, vectorised across the rows of a block (one row
// per SIMD lane) and compiled once per instruction set, exactly like bank_kernels.cpp (see there for the
// choice of Lane<T> over at::vec / libmvec, and for the build flags): HYPOPS_ISA names the namespace.
//
// Forward: the op's formula from common/math.h (through cpu/row_ops.h) on Lane<T>.
// Backward: the same formula on Dual<Lane<double>, N> (N = 2 unary, 5 binary (4 without |x-y|^2), 4 dist),
// i.e. the very evaluation the scalar path does on Dual<double, N>, one row per lane; dist2plane uses its hand-derived
// partials dist2plane_grad (7 partials on Dual spill registers, bank_kernels.cpp measured it).
// The outputs and the rounding steps (which products are formed in double, where they are rounded to T)
// follow the scalar loops of cpu/rowwise.h, dist_cpu.cpp and dist2plane_cpu.cpp, so the two paths differ
// only by the rounding of tanh/artanh/asinh/log (lane.h, 1-3 ulp) and FMA contraction.
//
// Every loop takes its constants as plain T/double and makes Lanes inside the loop: a Lane local outside
// it is copied as an aggregate, which stops the vectoriser (bank_kernels.cpp). `flatten` inlines the whole
// formula into the loop body (a call would stop the vectoriser too).
#include "cpu/simd/row_kernels.h"

#include <cmath>

#include "common/math.h"
#include "cpu/row_ops.h"
#include "cpu/simd/lane.h"

#ifndef HYPOPS_ISA
#error "HYPOPS_ISA must name the instruction-set namespace (isa_baseline, isa_avx2, isa_avx512)"
#endif

namespace hypops {
namespace simd {
namespace HYPOPS_ISA {
namespace {

template <typename Op, typename T> __attribute__((flatten)) void unary_fwd(const UnaryFwd<T>& a) {
  using L = Lane<T>;
  const T *xx = a.xx, c = a.c, eps = a.eps;
  T* k = a.k;
#pragma omp simd
  for (int64_t i = 0; i < a.n; ++i) k[i] = Op::coef(L(xx[i]), L(c), L(eps)).v;
}

template <typename Op, typename T> __attribute__((flatten)) double unary_bwd(const UnaryBwd<T>& a) {
  using L = Lane<double>;
  using Du = Dual<L, 2>;  // partials: |x|^2, c
  const T *xx = a.xx, *gx = a.gx;
  T *ka = a.a, *kb = a.b;
  const double c = a.c, eps = a.eps;
  double gc = 0;
#pragma omp simd reduction(+ : gc)
  for (int64_t i = 0; i < a.n; ++i) {
    const Du k = Op::coef(Du::var(L(double(xx[i])), 0), Du::var(L(c), 1), L(eps));
    const double g = double(gx[i]);
    ka[i] = T(k.v.v);
    kb[i] = T(2.0 * g * k.d[0].v);
    gc += g * k.d[1].v;
  }
  return gc;
}

template <typename Op, typename T> __attribute__((flatten)) void binary_fwd(const BinaryFwd<T>& a) {
  using L = Lane<T>;
  const T *xx = a.xx, *yy = a.yy, *xy = a.xy, *dd = a.dd, c = a.c, eps = a.eps;
  T *ka = a.a, *kb = a.b;
#pragma omp simd
  for (int64_t i = 0; i < a.n; ++i) {
    // dd is left unwritten by the forward sweeps of ops that do not read it (kUsesDD): pass 0 then
    const T ddi = Op::kUsesDD ? dd[i] : T(0);
    const Coef2<L> k = Op::coef(L(xx[i]), L(yy[i]), L(xy[i]), L(ddi), L(c), L(eps));
    ka[i] = k.a.v;
    kb[i] = k.b.v;
  }
}

// Ops whose formula does not read |x - y|^2 (not Op::kUsesDD: mobius_add, expmap) carry four partials, not
// five: a dd slot would stay zero but cost its share of every dual operation (0 * v is not folded, v may be
// Inf), and dd[i], d2[i] are neither read nor written (cpu/rowwise.h skips that reduction and term).
template <typename Op, typename T> __attribute__((flatten)) double binary_bwd(const BinaryBwd<T>& a) {
  using L = Lane<double>;
  constexpr bool kDD = Op::kUsesDD;
  constexpr int kC = kDD ? 4 : 3;           // slot of c
  using Du = Dual<L, kC + 1>;               // partials: |x|^2, |y|^2, <x,y>, [|x-y|^2,] c
  const T *xx = a.xx, *yy = a.yy, *xy = a.xy, *dd = a.dd, *gx = a.gx, *gy = a.gy;
  T *ka = a.a, *kb = a.b, *x2 = a.x2, *y2 = a.y2, *xyc = a.xyc, *d2 = a.d2;
  const double c = a.c, eps = a.eps;
  double gc = 0;
#pragma omp simd reduction(+ : gc)
  for (int64_t i = 0; i < a.n; ++i) {
    // Without kDD the formula ignores its dd argument (slot 3 is then c's, harmlessly): dd[i] is not read.
    // A select between two Duals here (dd's variable or a constant) left logmap's loop unvectorised.
    const double ddi = kDD ? double(dd[i]) : 0.0;
    const Coef2<Du> k = Op::coef(Du::var(L(double(xx[i])), 0), Du::var(L(double(yy[i])), 1),
                                 Du::var(L(double(xy[i])), 2), Du::var(L(ddi), 3), Du::var(L(c), kC), L(eps));
    const double g1 = double(gx[i]), g2 = double(gy[i]);
    ka[i] = T(k.a.v.v);
    kb[i] = T(k.b.v.v);
    x2[i] = T(2.0 * (k.a.d[0].v * g1 + k.b.d[0].v * g2));
    y2[i] = T(2.0 * (k.a.d[1].v * g1 + k.b.d[1].v * g2));
    xyc[i] = T(k.a.d[2].v * g1 + k.b.d[2].v * g2);
    if constexpr (kDD) d2[i] = T(2.0 * (k.a.d[3].v * g1 + k.b.d[3].v * g2));
    gc += k.a.d[kC].v * g1 + k.b.d[kC].v * g2;
  }
  return gc;
}

template <typename T> __attribute__((flatten)) void dist_fwd(const DistFwd<T>& a) {
  using L = Lane<T>;
  const T *xx = a.xx, *yy = a.yy, *dd = a.dd, c = a.c;
  T* out = a.out;
#pragma omp simd
  for (int64_t i = 0; i < a.n; ++i) out[i] = dist_value(L(xx[i]), L(yy[i]), L(dd[i]), L(c)).v;
}

template <typename T> __attribute__((flatten)) double dist_bwd(const DistBwd<T>& a) {
  using L = Lane<double>;
  using Du = Dual<L, 4>;  // partials: |x|^2, |y|^2, |x-y|^2, c
  const T *xx = a.xx, *yy = a.yy, *dd = a.dd, *g = a.g;
  T *x2 = a.x2, *y2 = a.y2, *d2 = a.d2;
  const double c = a.c;
  double gc = 0;
#pragma omp simd reduction(+ : gc)
  for (int64_t i = 0; i < a.n; ++i) {
    const Du l = dist_value(Du::var(L(double(xx[i])), 0), Du::var(L(double(yy[i])), 1),
                            Du::var(L(double(dd[i])), 2), Du::var(L(c), 3));
    const double gi2 = double(T(2) * g[i]);  // 2 g formed in T, as the scalar loop does (exact)
    x2[i] = T(gi2 * l.d[0].v);
    y2[i] = T(gi2 * l.d[1].v);
    d2[i] = T(gi2 * l.d[2].v);
    gc += double(g[i]) * l.d[3].v;
  }
  return gc;
}

template <typename T, bool SIGNED, bool SCALED> __attribute__((flatten)) void plane_fwd_t(const PlaneFwd<T>& a) {
  using L = Lane<T>;
  const T *xx = a.xx, *pp = a.pp, *aa = a.aa, *pa = a.pa, *dd = a.dd, *da = a.da, c = a.c;
  T* out = a.out;
#pragma omp simd
  for (int64_t i = 0; i < a.n; ++i) {
    out[i] = dist2plane_value(L(xx[i]), L(pp[i]), L(aa[i]), L(pa[i]), L(dd[i]), L(da[i]), L(c), SIGNED, SCALED).v;
  }
}

template <typename T, bool SIGNED, bool SCALED> __attribute__((flatten)) double plane_bwd_t(const PlaneBwd<T>& a) {
  using L = Lane<double>;
  const T *xx = a.xx, *pp = a.pp, *aa = a.aa, *pa = a.pa, *dd = a.dd, *da = a.da, *g = a.g;
  T *lxx = a.lxx, *lpp = a.lpp, *laa = a.laa, *lpa = a.lpa, *ldd = a.ldd, *lda = a.lda;
  const double c = a.c;
  double gc = 0;
#pragma omp simd reduction(+ : gc)
  for (int64_t i = 0; i < a.n; ++i) {
    const Dist2PlaneGrad<L> l = dist2plane_grad(L(double(xx[i])), L(double(pp[i])), L(double(aa[i])),
                                                L(double(pa[i])), L(double(dd[i])), L(double(da[i])), L(c),
                                                SIGNED, SCALED);
    const double gi = double(g[i]);
    const double gi2 = double(T(2) * g[i]);
    lxx[i] = T(gi2 * l.xx.v);
    lpp[i] = T(gi2 * l.pp.v);
    laa[i] = T(gi2 * l.aa.v);
    lpa[i] = T(gi * l.pa.v);
    ldd[i] = T(gi2 * l.dd.v);
    lda[i] = T(gi * l.da.v);
    gc += gi * l.c.v;
  }
  return gc;
}

// The op and the flags become template arguments here, once per block, so the loops carry no branch.
template <typename T> void unary_fwd_any(RowOp op, const UnaryFwd<T>& a) {
  switch (op) {
    case RowOp::expmap0: return unary_fwd<Expmap0Op>(a);
    default: return unary_fwd<Logmap0Op>(a);
  }
}
template <typename T> double unary_bwd_any(RowOp op, const UnaryBwd<T>& a) {
  switch (op) {
    case RowOp::expmap0: return unary_bwd<Expmap0Op>(a);
    default: return unary_bwd<Logmap0Op>(a);
  }
}
// mobius_add's forward is kept here although cpu/rowwise.h does not call it today (MobiusAddOp::
// kBlockedForward): flipping that flag is how to re-measure it on another CPU.
template <typename T> void binary_fwd_any(RowOp op, const BinaryFwd<T>& a) {
  switch (op) {
    case RowOp::mobius_add: return binary_fwd<MobiusAddOp>(a);
    case RowOp::expmap: return binary_fwd<ExpmapOp>(a);
    default: return binary_fwd<LogmapOp>(a);
  }
}
template <typename T> double binary_bwd_any(RowOp op, const BinaryBwd<T>& a) {
  switch (op) {
    case RowOp::mobius_add: return binary_bwd<MobiusAddOp>(a);
    case RowOp::expmap: return binary_bwd<ExpmapOp>(a);
    default: return binary_bwd<LogmapOp>(a);
  }
}
template <typename T> void plane_fwd(const PlaneFwd<T>& a) {
  if (a.is_signed) {
    a.scaled ? plane_fwd_t<T, true, true>(a) : plane_fwd_t<T, true, false>(a);
  } else {
    a.scaled ? plane_fwd_t<T, false, true>(a) : plane_fwd_t<T, false, false>(a);
  }
}
template <typename T> double plane_bwd(const PlaneBwd<T>& a) {
  if (a.is_signed) return a.scaled ? plane_bwd_t<T, true, true>(a) : plane_bwd_t<T, true, false>(a);
  return a.scaled ? plane_bwd_t<T, false, true>(a) : plane_bwd_t<T, false, false>(a);
}

template <typename T> void math_array(LaneFn fn, const T* in, T* out, int64_t n) {
  switch (fn) {
    case LaneFn::asinh:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) out[i] = asinh_lane(in[i]);
      return;
    case LaneFn::tanh:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) out[i] = tanh_lane(in[i]);
      return;
    default:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) out[i] = atanh_lane(in[i]);
      return;
  }
}

}  // namespace

#define HYPOPS_STR2(x) #x
#define HYPOPS_STR(x) HYPOPS_STR2(x)
extern const RowKernels row_kernels;
const RowKernels row_kernels = {
    HYPOPS_STR(HYPOPS_ISA) + 4,  // "isa_avx2" -> "avx2"
    &unary_fwd_any<float>,  &unary_fwd_any<double>,  &unary_bwd_any<float>,  &unary_bwd_any<double>,
    &binary_fwd_any<float>, &binary_fwd_any<double>, &binary_bwd_any<float>, &binary_bwd_any<double>,
    &dist_fwd<float>,       &dist_fwd<double>,       &dist_bwd<float>,       &dist_bwd<double>,
    &plane_fwd<float>,      &plane_fwd<double>,      &plane_bwd<float>,      &plane_bwd<double>,
    &math_array<float>,     &math_array<double>,
#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512VL__) && defined(__AVX512BW__)
    SweepIsa::avx512};
#elif defined(__AVX2__) && defined(__FMA__)
    SweepIsa::avx2};
#else
    SweepIsa::baseline};
#endif

}  // namespace HYPOPS_ISA
}  // namespace simd
}  // namespace hypops

#if defined(HYPOPS_ISA_ALIAS_AVX2)
// Non-x86 builds compile only the baseline TU (see bank_kernels.cpp).
namespace hypops {
namespace simd {
namespace isa_avx2 {
extern const RowKernels row_kernels;
const RowKernels row_kernels = isa_baseline::row_kernels;
}  // namespace isa_avx2
namespace isa_avx512 {
extern const RowKernels row_kernels;
const RowKernels row_kernels = isa_baseline::row_kernels;
}  // namespace isa_avx512
}  // namespace simd
}  // namespace hypops
#endif
