// The per-pair scalar stage of the gyroplane bank, vectorised across the P planes of a point.
// Compiled once per instruction set (CMakeLists.txt): HYPOPS_ISA names the namespace (isa_baseline:
// the x86-64 baseline, SSE2; isa_avx2: -mavx2 -mfma), and simd_dispatch.cpp picks one at run time.
//
// How (and why not the alternatives):
//  - The loops below evaluate the very same dist2plane_value of common/math.h (forward, on Lane<T>) and
//    its hand-derived partials dist2plane_grad (backward, on Lane<double>), one (point, plane) pair
//    per iteration under `#pragma omp simd`.
//    Lane<T> (lane.h) is a scalar wrapper whose sqrt is an instruction and whose asinh is branch-free
//    arithmetic, so gcc if-converts math.h's clamps (plain ternaries) and vectorises the whole formula.
//    The math stays written once, for CPU and CUDA; only sqrt/asinh/log have a second, vectorisable
//    implementation, tested against libm (tests/test_simd_kernels.py).
//  - at::vec::Vectorized (option a): in a TU built without -mavx2 (our baseline) it is the generic
//    fallback of vec_base.h, an array with element loops calling std::asinh (no gain); in an -mavx2 TU
//    with CPU_CAPABILITY_AVX2 it is real AVX2, and the Sleef symbols it needs (Sleef_asinhd4_u10, ...)
//    are exported by libtorch_cpu.so. But its comparisons return masks, not bool, so math.h's clamps
//    (`value(x) < lo ? S(lo) : x`) cannot be instantiated on it: the formula would need a second,
//    select()-based definition. Lane keeps one definition and gets the same SIMD width.
//  - libmvec (glibc's _ZGVdN4v_asinh, ...): present here (glibc 2.36), but the vector asinh needs
//    glibc >= 2.35 and gcc only calls it under -ffast-math (which breaks the NaN/Inf-free clamps);
//    a 20-line log is portable and exact enough (about 1-2 ulp).
//  - Backward (option c): dist2plane_value on Dual<Lane<double>, 7> vectorises too, but carries 8
//    values per lane through every operation and spills registers: measured 53-70 ns/pair with AVX2
//    (scalar Dual: 240-270), against a few ns/pair for dist2plane_grad, the hand-derived partials in
//    math.h (tested against the Dual evaluation, which the "scalar" kernels still run). Float rows get
//    their partials in float where every pair is well inside the ball (bwd_row_f), in double elsewhere
//    (they can overflow float near the sphere where the value does not).
//
// Build flags of this TU: -fno-math-errno (sqrt without the errno call) and -fno-trapping-math (lets
// gcc evaluate both arms of a clamp and select; we never read FP exception flags). Not -ffast-math:
// that would assume no NaN/Inf and reassociate, breaking the clamps and the accurate forms of math.h.
#include "cpu/simd/bank_kernels.h"

#include <cmath>

#include "common/math.h"
#include "cpu/simd/lane.h"

#ifndef HYPOPS_ISA
#error "HYPOPS_ISA must name the instruction-set namespace (isa_baseline, isa_avx2)"
#endif

namespace hypops {
namespace simd {
namespace HYPOPS_ISA {
namespace {

// flatten: inline everything the loop calls (gcc otherwise keeps the Dual instantiation of
// dist2plane_value out of line, and a call in the loop body stops the vectoriser).
template <typename T, bool SIGNED, bool SCALED> __attribute__((flatten)) void fwd_row(const BankFwd<T>& a, int64_t n, T* out) {
  using L = Lane<T>;
  const int64_t P = a.P;
  const T xx = a.xx[n];
  const T *xp = a.xp + n * P, *xa = a.xa + n * P, *pp = a.pp, *aa = a.aa, *pa = a.pa;
  const T cv = a.c;  // made a Lane inside the loop (see bwd_row)
#pragma omp simd
  for (int64_t k = 0; k < P; ++k) {
    T dd = xx - T(2) * xp[k] + pp[k];
    dd = dd < T(0) ? T(0) : dd;  // |x - p|^2 from the GEMM can round below 0
    out[k] = dist2plane_value(L(xx), L(pp[k]), L(aa[k]), L(pa[k]), L(dd), L(xa[k] - pa[k]), L(cv), SIGNED, SCALED).v;
  }
}

template <typename T, bool SIGNED, bool SCALED> __attribute__((flatten)) double bwd_row(const BankBwd<T>& a, int64_t n) {
  using L = Lane<double>;  // double for float rows too: partials can exceed float's range
  const int64_t P = a.P;
  const T xx = a.xx[n];
  const T *xp = a.xp + n * P, *xa = a.xa + n * P, *g = a.g + n * P, *pp = a.pp, *aa = a.aa, *pa = a.pa;
  T *ldd = a.ldd + n * P, *lda = a.lda + n * P;
  double *smp = a.smp, *smpa = a.smpa, *sma = a.sma;
  const double cv = a.c;  // a Lane made in the loop: a Lane local outside it is copied as an aggregate,
                          // which stops the vectoriser ("more than one data ref in stmt")
  double rxn = 0, gcn = 0;
#pragma omp simd reduction(+ : rxn, gcn)
  for (int64_t k = 0; k < P; ++k) {
    T dd = xx - T(2) * xp[k] + pp[k];
    dd = dd < T(0) ? T(0) : dd;
    const T da = xa[k] - pa[k];
    const Dist2PlaneGrad<L> l = dist2plane_grad(L(xx), L(pp[k]), L(aa[k]), L(pa[k]), L(dd), L(da), L(cv), SIGNED, SCALED);
    const double gk = double(g[k]);
    ldd[k] = T(gk * l.dd.v);
    lda[k] = T(gk * l.da.v);
    smp[k] += double(T(2 * gk * (l.pp.v + l.dd.v)));
    smpa[k] += double(T(gk * (l.pa.v - l.da.v)));
    sma[k] += double(T(2 * gk * l.aa.v));
    rxn += 2 * gk * (l.xx.v + l.dd.v);
    gcn += gk * l.c.v;
  }
  a.rx[n] = T(rxn);
  return gcn;
}

// Float rows: the partials in float (8 lanes per AVX2 vector and float divisions and square roots: a few
// times the pair rate of the double loop above). Float is exact enough where the point and the plane's
// base point are well inside the ball; near the sphere the formula amplifies rounding by
// 1/((1 - c|p|^2)(1 - c|x|^2)) = 1/AB and its intermediates (1/den, 1/denom) can leave float's range. So
// a row runs here only when AB > BWD_F_MIN_AB = 1/8 for every plane and every |a|^2 > BWD_F_MIN_AA
// (bwd_plane_margin; then den >= AB, denom >= AB/5 |a|: nothing overflows and the rounding is amplified
// at most ~8x), and in the double loop otherwise. rx and dL/dc and the column sums accumulate in double.
template <bool SIGNED, bool SCALED> __attribute__((flatten)) double bwd_row_f(const BankBwd<float>& a, int64_t n) {
  using L = Lane<float>;
  const int64_t P = a.P;
  const float xx = a.xx[n];
  if (!((1.0 - a.c * double(xx)) * a.plane_margin > BWD_F_MIN_AB)) return bwd_row<float, SIGNED, SCALED>(a, n);
  const float *xp = a.xp + n * P, *xa = a.xa + n * P, *g = a.g + n * P, *pp = a.pp, *aa = a.aa, *pa = a.pa;
  float *ldd = a.ldd + n * P, *lda = a.lda + n * P;
  double *smp = a.smp, *smpa = a.smpa, *sma = a.sma;
  const float cv = float(a.c);
  double rxn = 0, gcn = 0;
#pragma omp simd reduction(+ : rxn, gcn)
  for (int64_t k = 0; k < P; ++k) {
    float dd = xx - 2.0f * xp[k] + pp[k];
    dd = dd < 0.0f ? 0.0f : dd;
    const float da = xa[k] - pa[k];
    const Dist2PlaneGrad<L> l = dist2plane_grad(L(xx), L(pp[k]), L(aa[k]), L(pa[k]), L(dd), L(da), L(cv), SIGNED, SCALED);
    const float gk = g[k];
    ldd[k] = gk * l.dd.v;
    lda[k] = gk * l.da.v;
    smp[k] += double(2.0f * gk * (l.pp.v + l.dd.v));
    smpa[k] += double(gk * (l.pa.v - l.da.v));
    sma[k] += double(2.0f * gk * l.aa.v);
    rxn += double(2.0f * gk * (l.xx.v + l.dd.v));
    gcn += double(gk * l.c.v);
  }
  a.rx[n] = float(rxn);
  return gcn;
}

// signed/scaled become template arguments so that the loops carry no run-time branch.
template <typename T> void fwd(const BankFwd<T>& a, int64_t n, T* out) {
  if (a.is_signed) {
    a.scaled ? fwd_row<T, true, true>(a, n, out) : fwd_row<T, true, false>(a, n, out);
  } else {
    a.scaled ? fwd_row<T, false, true>(a, n, out) : fwd_row<T, false, false>(a, n, out);
  }
}
template <typename T> double bwd(const BankBwd<T>& a, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (a.is_signed) return a.scaled ? bwd_row_f<true, true>(a, n) : bwd_row_f<true, false>(a, n);
    return a.scaled ? bwd_row_f<false, true>(a, n) : bwd_row_f<false, false>(a, n);
  }
  if (a.is_signed) return a.scaled ? bwd_row<T, true, true>(a, n) : bwd_row<T, true, false>(a, n);
  return a.scaled ? bwd_row<T, false, true>(a, n) : bwd_row<T, false, false>(a, n);
}

template <typename T> void asinh_array(const T* in, T* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = asinh_lane(in[i]);
}

}  // namespace

#define HYPOPS_STR2(x) #x
#define HYPOPS_STR(x) HYPOPS_STR2(x)
extern const BankKernels kernels;
const BankKernels kernels = {HYPOPS_STR(HYPOPS_ISA) + 4,  // "isa_avx2" -> "avx2"
                             &fwd<float>,
                             &fwd<double>,
                             &bwd<float>,
                             &bwd<double>,
                             &asinh_array<float>,
                             &asinh_array<double>};

}  // namespace HYPOPS_ISA
}  // namespace simd
}  // namespace hypops

#if defined(HYPOPS_ISA_ALIAS_AVX2)
// Non-x86 builds compile only the baseline TU; the dispatcher never chooses AVX2 there
// (__builtin_cpu_supports is x86-only), but its table must exist for the link.
namespace hypops {
namespace simd {
namespace isa_avx2 {
extern const BankKernels kernels;
const BankKernels kernels = isa_baseline::kernels;
}  // namespace isa_avx2
}  // namespace simd
}  // namespace hypops
#endif
