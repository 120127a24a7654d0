// The per-pair scalar stage of the gyroplane bank, vectorised across the P planes of a point.
// Compiled once per instruction set (CMakeLists.txt): HYPOPS_ISA names the namespace (isa_baseline:
// the x86-64 baseline, SSE2; isa_avx2: -mavx2 -mfma; isa_avx512: AVX-512 F/DQ/VL/BW with 512-bit vectors),
// and simd_dispatch.cpp picks one at run time.
//
// How (and why not the alternatives):
//  - Rows well inside the ball (bank_kernels.h: the inside gate, AB > 1/8 for every plane) take the
//    inside form, where the Mobius denominator cancels: a few products, asinh, and for backward one
//    sqrt, per pair, in the row's type (fwd_row_inside, bwd_row_inside). Every other row (points on
//    or beyond the sphere, normals ~ 0, NaNs) takes the general form: the loops below evaluate the
//    very same dist2plane_value of common/math.h (forward, on Lane<T>) and its hand-derived partials
//    dist2plane_grad (backward, on Lane<double>), one (point, plane) pair per iteration under
//    `#pragma omp simd`.
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
//    math.h (tested against the Dual evaluation, which the "scalar" kernels still run). Float rows outside
//    the inside gate get their partials in double (they can overflow float near the sphere where the
//    value does not).
//
// Build flags of this TU: -fno-math-errno (sqrt without the errno call) and -fno-trapping-math (lets
// gcc evaluate both arms of a clamp and select; we never read FP exception flags). Not -ffast-math:
// that would assume no NaN/Inf and reassociate, breaking the clamps and the accurate forms of math.h.
#include "cpu/simd/bank_kernels.h"

#include <algorithm>
#include <cmath>

#include "common/math.h"
#include "cpu/simd/lane.h"

#ifndef HYPOPS_ISA
#error "HYPOPS_ISA must name the instruction-set namespace (isa_baseline, isa_avx2, isa_avx512)"
#endif

namespace hypops {
namespace simd {
namespace HYPOPS_ISA {
namespace {

// The vector width this TU is compiled for (CMakeLists.txt: 512-bit vectors preferred under AVX-512).
#if defined(__AVX512F__)
constexpr int64_t kVectorBytes = 64;
#elif defined(__AVX2__)
constexpr int64_t kVectorBytes = 32;
#else
constexpr int64_t kVectorBytes = 16;
#endif

// A row of the inside form (bank_kernels.h): rows with (1 - c|x|^2) * plane_margin > INSIDE_MIN_AB.
template <typename T, bool SIGNED, bool SCALED> void fwd_row_inside(const BankFwd<T>& a, int64_t n, T* out) {
  const int64_t P = a.P;
  const T xx = a.xx[n];
  const T inv_b = T(1) / (T(1) - a.c * xx), inv_sc = T(1) / sqrt_t(a.c);
  const T *xp = a.xp + n * P, *xa = a.xa + n * P, *pp = a.pp, *pa = a.pa;
  const T *fA = a.inside, *fcpa = fA + P, *fK = fA + 2 * P, *fan = fA + 3 * P;
#pragma omp simd
  for (int64_t k = 0; k < P; ++k) {
    T dd = xx - T(2) * xp[k] + pp[k];
    dd = dd < T(0) ? T(0) : dd;  // |x - p|^2 from the GEMM can round below 0
    T z = (fA[k] * (xa[k] - pa[k]) - fcpa[k] * dd) * (fK[k] * inv_b);
    if (!SIGNED) z = z < T(0) ? -z : z;
    T v = asinh_with_root(z, sqrt_t(T(1) + z * z)) * inv_sc;  // |z| <= 768: asinh's small branch is enough
    if (SCALED) v = v * fan[k];
    out[k] = v;
  }
}

// The general form: any row (points on or beyond the sphere, planes with a ~ 0, NaNs). flatten: inline
// everything the loop calls (gcc otherwise keeps the Dual instantiation of dist2plane_value out of line,
// and a call in the loop body stops the vectoriser).
template <typename T, bool SIGNED, bool SCALED> __attribute__((flatten)) void fwd_row(const BankFwd<T>& a, int64_t n, T* out) {
  if ((1.0 - double(a.c) * double(a.xx[n])) * a.plane_margin > INSIDE_MIN_AB)
    return fwd_row_inside<T, SIGNED, SCALED>(a, n, out);
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

// A row of the inside form (bank_kernels.h), its partials in T (float rows too: inside the gate every
// intermediate is bounded, |z| <= 768), with z = (A da - c pa dd) K / B and out = asinh(z) / sqrt(c):
//   dz/dda = A K/B, dz/ddd = -c pa K/B, dz/dpa = -c dd K/B, dz/dxx = c z/B, dz/dpp = -(c^2 pa/A) dd K/B,
//   dz/daa = -z/(2|a|^2), dz/dc = z (1/(2c) + xx/B) - (pa/A) dd K/B;  dout/dz = 1/(sqrt(c) sqrt(1 + z^2)),
//   dout/dc also has -out/(2c). Unsigned: |z| and sign(z) (sign(0) = 0, as the general form). Scaled:
//   out |a|, every partial times |a|, and dout/daa gains out/(2|a|).
template <typename T, bool SIGNED, bool SCALED> double bwd_row_inside(const BankBwd<T>& a, int64_t n) {
  const int64_t P = a.P;
  const T xx = a.xx[n], c = T(a.c);
  const T inv_b = T(1) / (T(1) - c * xx), inv_sc = T(1) / sqrt_t(c), half_inv_c = T(0.5) / c;
  const T c_inv_b = c * inv_b, zc_factor = half_inv_c + xx * inv_b;
  const T *xp = a.xp + n * P, *xa = a.xa + n * P, *g = a.g + n * P, *pp = a.pp, *pa = a.pa;
  const T *fA = a.inside, *fcpa = fA + P, *fK = fA + 2 * P, *fan = fA + 3 * P, *fcpaA = fA + 4 * P,
          *fpaA = fA + 5 * P, *fhaa = fA + 6 * P;
  T *ldd = a.ldd + n * P, *lda = a.lda + n * P;
  T *smp = a.smp, *smpa = a.smpa, *sma = a.sma;
  // The row's sums in T (P terms each): double accumulators would halve the vectors and add conversions.
  T rxn = 0, gcn = 0;
#pragma omp simd reduction(+ : rxn, gcn)
  for (int64_t k = 0; k < P; ++k) {
    T dd = xx - T(2) * xp[k] + pp[k];
    dd = dd < T(0) ? T(0) : dd;
    const T kb = fK[k] * inv_b;
    const T z = (fA[k] * (xa[k] - pa[k]) - fcpa[k] * dd) * kb;
    const T s = SIGNED ? T(1) : (z < T(0) ? T(-1) : (z > T(0) ? T(1) : T(0)));
    const T root = sqrt_t(T(1) + z * z);                            // |z| <= 768 inside the gate
    const T u = asinh_with_root(SIGNED ? z : z * s, root) * inv_sc;  // the unscaled value
    const T gs = SCALED ? g[k] * fan[k] : g[k];                      // g d(value)/d(unscaled value)
    const T w = gs * s * inv_sc / root;                              // g d(value)/dz
    const T l_dd = -w * fcpa[k] * kb, l_da = w * fA[k] * kb;
    T l_aa = -w * z * fhaa[k];
    if (SCALED) l_aa = l_aa + g[k] * u * fan[k] * fhaa[k];  // out/(2|a|) = u |a| / (2|a|^2)
    ldd[k] = l_dd;
    lda[k] = l_da;
    smp[k] += T(2) * (-w * dd * fcpaA[k] * kb + l_dd);
    smpa[k] += -w * c * dd * kb - l_da;
    sma[k] += T(2) * l_aa;
    rxn += T(2) * (w * z * c_inv_b + l_dd);
    gcn += w * (z * zc_factor - dd * fpaA[k] * kb) - gs * u * half_inv_c;
  }
  a.rx[n] = rxn;
  return double(gcn);
}

template <typename T, bool SIGNED, bool SCALED> __attribute__((flatten)) double bwd_row(const BankBwd<T>& a, int64_t n) {
  if ((1.0 - a.c * double(a.xx[n])) * a.plane_margin > INSIDE_MIN_AB) return bwd_row_inside<T, SIGNED, SCALED>(a, n);
  using L = Lane<double>;  // double for float rows too: partials can exceed float's range
  const int64_t P = a.P;
  const T xx = a.xx[n];
  const T *xp = a.xp + n * P, *xa = a.xa + n * P, *g = a.g + n * P, *pp = a.pp, *aa = a.aa, *pa = a.pa;
  T *ldd = a.ldd + n * P, *lda = a.lda + n * P;
  T *smp = a.smp, *smpa = a.smpa, *sma = a.sma;
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
    smp[k] += T(2 * gk * (l.pp.v + l.dd.v));
    smpa[k] += T(gk * (l.pa.v - l.da.v));
    sma[k] += T(2 * gk * l.aa.v);
    rxn += 2 * gk * (l.xx.v + l.dd.v);
    gcn += gk * l.c.v;
  }
  a.rx[n] = T(rxn);
  return gcn;
}

// The conv's inside path (bank_kernels.h: InsideFwd, InsideBwd): z = (s + e' - f' |x|^2) / B per pair;
// every row is inside the gate (the caller checks), so |z| <= 768 and T is exact enough, as in
// fwd_row_inside, and asinh needs only its small-|z| branch (asinh_with_root; asinh_lane's other branch is
// for |z| > 4096 in float, 2^28 in double, and its selects would be work for nothing).
template <typename T> void inside_fwd_rows(const InsideFwd<T>& a, int64_t n0, int64_t n1, T* out) {
  const int64_t P = a.P;
  const T *e = a.e, *f = a.f, inv_sc = a.inv_sc;
  for (int64_t n = n0; n < n1; ++n) {
    const T xx = a.xb[2 * n], inv_b = a.xb[2 * n + 1];
    const T* s = a.s + n * P;
    T* o = out + n * P;
#pragma omp simd
    for (int64_t k = 0; k < P; ++k) {
      const T z = (s[k] + e[k] - f[k] * xx) * inv_b;
      o[k] += asinh_with_root(z, sqrt_t(T(1) + z * z)) * inv_sc;
    }
  }
}

// value = asinh(z) / sqrt(c), w = g d(value)/dz = g / (sqrt(c) sqrt(1 + z^2)); lz = w / B (dz/ds = 1/B);
// d|x|^2 of z: (c z - f') / B; d/dc: z |x|^2 / B through B, -value / (2c) through 1/sqrt(c), z / (2c)
// through K (K = 2 sqrt(c) / (A |a|) scales z).
// r, the one per-row sum, is summed by hand: lane j of a vector accumulates the pairs k = j (mod W), then a
// tree of log2(W) steps, where `reduction(+ : r)` ended each row with W serial scalar adds (~3.5% of the
// conv's fwd+bwd at D = 32 for the same chain of d/dc, now a column sum).
template <typename T> void inside_bwd_rows(const InsideBwd<T>& a, int64_t n0, int64_t n1) {
  constexpr int64_t W = kVectorBytes / sizeof(T);
  const int64_t P = a.P;
  const T *e = a.e, *f = a.f, c = a.c, inv_sc = a.inv_sc, half_inv_c = T(0.5) / a.c;
  T *se = a.se, *sxx = a.sxx, *swz = a.swz, *sgc = a.sgc;
  for (int64_t n = n0; n < n1; ++n) {
    const T xx = a.xb[2 * n], inv_b = a.xb[2 * n + 1];
    T part[W] = {};
    for (int64_t k0 = 0; k0 < P; k0 += W) {
      const int64_t m = std::min(W, P - k0), nk = n * P + k0;
      const T *s = a.s + nk, *g = a.g + nk, *ek = e + k0, *fk = f + k0;
      T* lz = a.lz + nk;
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) {
        const int64_t k = k0 + j;
        const T z = (s[j] + ek[j] - fk[j] * xx) * inv_b;
        const T root = sqrt_t(T(1) + z * z);
        const T w = g[j] * inv_sc / root, l = w * inv_b;
        lz[j] = l;
        se[k] += l;
        sxx[k] += l * xx;
        swz[k] += w * z;
        sgc[k] += l * z * xx + (w * z - g[j] * asinh_with_root(z, root) * inv_sc) * half_inv_c;
        part[j] += T(2) * l * (c * z - fk[j]);
      }
    }
    for (int64_t h = W / 2; h > 0; h /= 2)
      for (int64_t j = 0; j < h; ++j) part[j] += part[j + h];
    a.r[n] = part[0];
  }
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
                             &asinh_array<double>,
                             &inside_fwd_rows<float>,
                             &inside_fwd_rows<double>,
                             &inside_bwd_rows<float>,
                             &inside_bwd_rows<double>};

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
namespace isa_avx512 {
extern const BankKernels kernels;
const BankKernels kernels = isa_baseline::kernels;
}  // namespace isa_avx512
}  // namespace simd
}  // namespace hypops
#endif
