// Lane<T>: one SIMD lane of T, a scalar type that the formulas of common/math.h can be evaluated on
// inside a `#pragma omp simd` loop, so that gcc vectorises the per-pair (per-row) scalar stage across
// pairs. Included only by the per-ISA translation units in csrc/cpu/simd/ (see bank_kernels.cpp there for
// why this approach and not at::vec).
//
// Why a wrapper type and not plain float/double: the scalar helpers of math.h (h_sqrt, h_asinh, ...)
// call libm (::sqrt sets errno, ::asinh is an opaque call), which stops the vectoriser. For Lane<T> the
// same formulas resolve, by overload and ADL, to
//   - sqrt: __builtin_sqrt, a single instruction (the TU is built with -fno-math-errno);
//   - asinh/log: the branch-free implementations below (bit tricks + a polynomial), which gcc
//     vectorises like any arithmetic.
// Everything else (+ - * /, comparisons, the ternaries of max_c/abs_c/safe_norm) is the plain IEEE
// arithmetic of T, so results differ from the scalar path only by the rounding of asinh/log (about
// 1 ulp; libm's are < 1 ulp) and by FMA contraction where the ISA has FMA.
//
// The types live in an anonymous namespace: every template instantiated with them (the math.h
// formulas, Dual<Lane<double>, 7>) then has internal linkage, so the copy compiled with -mavx2 can never
// be merged by the linker with the baseline copy (the classic one-definition-rule trap of per-ISA TUs,
// which would put AVX2 instructions on the fallback path).
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace hypops {
namespace {

template <typename T> struct Lane {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "Lane<float> or Lane<double>");
  T v;
  Lane() = default;
  // Implicit from any arithmetic constant (math.h writes T(1), T(MIN_DENOM), ... with T = Lane).
  template <typename U, typename = std::enable_if_t<std::is_arithmetic_v<U>>>
  inline Lane(U x) : v(T(x)) {}  // NOLINT
};

#define HYPOPS_LANE_BINOP(op)                                                                        \
  template <typename T> inline Lane<T> operator op(Lane<T> a, Lane<T> b) { return Lane<T>(a.v op b.v); } \
  template <typename T> inline Lane<T>& operator op##=(Lane<T>& a, Lane<T> b) {                          \
    a.v = a.v op b.v;                                                                                    \
    return a;                                                                                            \
  }
HYPOPS_LANE_BINOP(+)
HYPOPS_LANE_BINOP(-)
HYPOPS_LANE_BINOP(*)
HYPOPS_LANE_BINOP(/)
#undef HYPOPS_LANE_BINOP
template <typename T> inline Lane<T> operator-(Lane<T> a) { return Lane<T>(-a.v); }
template <typename T> inline bool operator<(Lane<T> a, Lane<T> b) { return a.v < b.v; }
template <typename T> inline bool operator>(Lane<T> a, Lane<T> b) { return a.v > b.v; }

// --- bit-level helpers ------------------------------------------------------------------------------
template <typename T> struct Bits;
template <> struct Bits<double> {
  using U = uint64_t;
  static constexpr int MANT = 52;
  static constexpr U ONE = 0x3FF0000000000000ull;   // bits of 1.0
  static constexpr U MANT_MASK = (U(1) << 52) - 1;
  static constexpr U MAGIC = 0x4330000000000000ull; // bits of 2^52: 2^52 + e is exact for e < 2^52
  static constexpr double MAGIC_BIAS = 4503599627370496.0 + 1023.0;
};
template <> struct Bits<float> {
  using U = uint32_t;
  static constexpr int MANT = 23;
  static constexpr U ONE = 0x3F800000u;
  static constexpr U MANT_MASK = (U(1) << 23) - 1;
  static constexpr U MAGIC = 0x4B000000u;  // 2^23
  static constexpr float MAGIC_BIAS = 8388608.0f + 127.0f;
};
template <typename T> inline typename Bits<T>::U to_bits(T x) {
  typename Bits<T>::U u;
  std::memcpy(&u, &x, sizeof(T));
  return u;
}
template <typename T> inline T from_bits(typename Bits<T>::U u) {
  T x;
  std::memcpy(&x, &u, sizeof(T));
  return x;
}

inline double sqrt_t(double x) { return __builtin_sqrt(x); }  // one instruction with -fno-math-errno
inline float sqrt_t(float x) { return __builtin_sqrtf(x); }

// log(x) for x >= 1 (finite, or +Inf/NaN, which are returned as they are). Written for the vectoriser:
// no calls, no int<->float conversion instructions (AVX2 has none for 64-bit lanes), selects only.
//   x = 2^k m, m in [1, 2), folded to [sqrt(1/2), sqrt(2)) with k adjusted;
//   log m = 2 artanh(s), s = (m - 1)/(m + 1), |s| <= 0.1716, as the Taylor series
//   2 s (1 + s^2/3 + s^4/5 + ...), cut where the next term is below the type's epsilon
//   (double: through s^20/21, next 0.0294^11/23 ~ 6e-19; float: through s^10/11, next ~1e-10);
//   log x = k ln2_hi + (log m + k ln2_lo), ln2_hi with 20 significant bits so k ln2_hi is exact.
// m - 1 is exact (Sterbenz) and the division is correctly rounded, so the error is about 1-2 ulp.
// Only x >= 1 is needed here (asinh below); zero, negatives and subnormals are not handled.
template <typename T> inline T log_ge1(T x) {
  using B = Bits<T>;
  using U = typename B::U;
  const U b = to_bits(x);
  const U ebits = b >> B::MANT;                                       // biased exponent (sign is 0)
  T k = from_bits<T>(B::MAGIC | ebits) - T(B::MAGIC_BIAS);            // exponent as T, exactly
  T m = from_bits<T>((b & B::MANT_MASK) | B::ONE);                    // mantissa in [1, 2)
  const bool fold = m > T(1.4142135623730951);
  m = fold ? m * T(0.5) : m;
  k = fold ? k + T(1) : k;
  const T f = m - T(1);
  const T s = f / (m + T(1));
  const T z = s * s;
  T poly;
  if constexpr (std::is_same_v<T, double>) {
    poly = T(1.0 / 21);
    poly = poly * z + T(1.0 / 19);
    poly = poly * z + T(1.0 / 17);
    poly = poly * z + T(1.0 / 15);
    poly = poly * z + T(1.0 / 13);
    poly = poly * z + T(1.0 / 11);
    poly = poly * z + T(1.0 / 9);
    poly = poly * z + T(1.0 / 7);
    poly = poly * z + T(1.0 / 5);
    poly = poly * z + T(1.0 / 3);
  } else {
    poly = T(1.0 / 11);
    poly = poly * z + T(1.0 / 9);
    poly = poly * z + T(1.0 / 7);
    poly = poly * z + T(1.0 / 5);
    poly = poly * z + T(1.0 / 3);
  }
  const T logm = T(2) * s + T(2) * s * z * poly;
  const T r = k * T(0.69314670562744140625) + (logm + k * T(4.749325039031672e-07));
  // +Inf and NaN: the bit trick would give a finite number; keep them (as libm does).
  return x < std::numeric_limits<T>::infinity() ? r : x;
}

// log1p(y) for y >= 0: log(u) with u = 1 + y, corrected by the rounding of u (to first order,
// log1p(y) = log(u) + (y - (u - 1))/u; u - 1 is exact). Accurate for tiny y too (u = 1 gives y).
template <typename T> inline T log1p_ge0(T y) {
  const T u = T(1) + y;
  return log_ge1(u) - ((u - T(1)) - y) / u;
}

// asinh, odd and accurate over the whole range (math.h's contract: asinh(-1e4) = -9.90, not geoopt's
// -34.5):
//   |z| <= BIG: asinh|z| = log1p(|z| + z^2 / (1 + sqrt(1 + z^2)))   (no cancellation, no overflow)
//   |z| >  BIG: asinh|z| = log|z| + ln 2                             (1 + z^2 rounds to z^2 there)
// BIG = 2^28 (double) / 2^12 (float). Both branches are computed and one is selected; each branch
// gets a harmless argument in the lanes where it is not used, so no Inf/NaN is formed even transiently.
template <typename T> inline T asinh_lane(T z) {
  const T big_at = std::is_same_v<T, double> ? T(268435456.0) : T(4096.0f);
  const T a = z < T(0) ? -z : z;
  const bool big = a > big_at;
  const T as = big ? T(0) : a;
  // Both branches need a log (log1p_ge0's is log(1 + y)): one log_ge1 of the selected argument serves
  // both, then each branch adds its own term (a vectorised loop evaluates both arms of a select, so
  // two logs would cost two divisions and two polynomials per lane).
  const T y = as + as * as / (T(1) + sqrt_t(T(1) + as * as));
  const T u = T(1) + y;
  const T l = log_ge1(big ? a : u);
  const T r = big ? l + T(0.6931471805599453) : l - ((u - T(1)) - y) / u;  // the second: log1p_ge0's correction
  return z < T(0) ? -r : r;
}
// asinh(z) for |z| <= BIG given root = sqrt(1 + z^2): the small branch of asinh_lane above, for callers
// that need the root anyway (the bank's backward: d asinh(z)/dz = 1/root), so the lane takes one sqrt.
template <typename T> inline T asinh_with_root(T z, T root) {
  const T a = z < T(0) ? -z : z;
  const T y = a + a * a / (T(1) + root);
  const T u = T(1) + y;
  const T r = log_ge1(u) - ((u - T(1)) - y) / u;
  return z < T(0) ? -r : r;
}
// exp(y) - 1 for 0 <= y <= 40 (tanh below needs no more), written like log_ge1 for the vectoriser:
//   y = k ln2 + r with k = round(y / ln2) and |r| <= ln2/2 (Cody-Waite: k ln2_hi is exact because ln2_hi
//   has few significant bits and k <= 58, and r = (y - k ln2_hi) - k ln2_lo loses nothing);
//   expm1(r) as its Taylor series, cut where the next term is below the type's epsilon
//   (double: through r^13/13!, next 0.347^14/14! ~ 4e-18; float: through r^8/8!, next ~ 1e-10);
//   expm1(y) = 2^k expm1(r) + (2^k - 1), where 2^k - 1 is exact: no cancellation for small y (k = 0
//   gives expm1(r) itself), about 1-2 ulp overall.
// round(y / ln2) and 2^k come from the MAGIC trick: adding 2^52 (2^23) rounds to an integer that then sits
// in the low mantissa bits, so k and 2^k need no int<->float conversion instruction.
template <typename T> inline T expm1_0to40(T y) {
  using B = Bits<T>;
  using U = typename B::U;
  constexpr bool dbl = std::is_same_v<T, double>;
  const T magic = from_bits<T>(B::MAGIC);
  const T t = y * T(1.4426950408889634) + magic;
  const T k = t - magic;
  const T ln2_hi = dbl ? T(0.69314670562744140625) : T(0.693145751953125);
  const T ln2_lo = dbl ? T(4.749325039031672e-07) : T(1.4286068202862268e-06);
  const T r = (y - k * ln2_hi) - k * ln2_lo;
  T poly;  // expm1(r) = r + r^2 (1/2! + r (1/3! + ...))
  if constexpr (dbl) {
    poly = T(1.0 / 6227020800.0);
    poly = poly * r + T(1.0 / 479001600.0);
    poly = poly * r + T(1.0 / 39916800.0);
    poly = poly * r + T(1.0 / 3628800.0);
    poly = poly * r + T(1.0 / 362880.0);
    poly = poly * r + T(1.0 / 40320.0);
    poly = poly * r + T(1.0 / 5040.0);
    poly = poly * r + T(1.0 / 720.0);
    poly = poly * r + T(1.0 / 120.0);
    poly = poly * r + T(1.0 / 24.0);
    poly = poly * r + T(1.0 / 6.0);
    poly = poly * r + T(0.5);
  } else {
    poly = T(1.0 / 40320.0);
    poly = poly * r + T(1.0 / 5040.0);
    poly = poly * r + T(1.0 / 720.0);
    poly = poly * r + T(1.0 / 120.0);
    poly = poly * r + T(1.0 / 24.0);
    poly = poly * r + T(1.0 / 6.0);
    poly = poly * r + T(0.5);
  }
  const T em = r + r * r * poly;
  const U kbits = to_bits(t) - B::MAGIC;  // k as an integer (0 <= k <= 58)
  const U exp_bias = dbl ? U(1023) : U(127);
  const T scale = from_bits<T>((kbits + exp_bias) << B::MANT);  // 2^k
  return scale * em + (scale - T(1));
}

// tanh, odd: tanh|x| = e / (e + 2) with e = expm1(2|x|) (no cancellation at small |x|, where e ~ 2|x|).
// |x| is capped at 20 first: tanh is 1 in double beyond ~19.1 (in float beyond ~9), and the cap keeps
// expm1 in its range (math.h's safe_tanh has already clamped to TANH_CLAMP = 15; the cap is for safety).
template <typename T> inline T tanh_lane(T x) {
  T a = x < T(0) ? -x : x;
  a = a > T(20) ? T(20) : a;
  const T e = expm1_0to40(T(2) * a);
  const T r = e / (e + T(2));
  return x < T(0) ? -r : r;
}

// artanh, odd, for |z| < 1 (math.h's safe_artanh clamps to 1 - ARTANH_CLAMP first):
//   artanh|z| = log1p(2|z| / (1 - |z|)) / 2,
// exact to a few ulp: 1 - |z| is exact for |z| >= 1/2 (Sterbenz) and log1p_ge0 keeps small arguments.
template <typename T> inline T atanh_lane(T z) {
  const T a = z < T(0) ? -z : z;
  const T r = T(0.5) * log1p_ge0(T(2) * a / (T(1) - a));
  return z < T(0) ? -r : r;
}

// The overloads math.h's formulas reach through ADL.
template <typename T> inline Lane<T> h_sqrt(Lane<T> x) { return Lane<T>(sqrt_t(x.v)); }
template <typename T> inline Lane<T> h_asinh(Lane<T> x) { return Lane<T>(asinh_lane(x.v)); }
template <typename T> inline Lane<T> h_tanh(Lane<T> x) { return Lane<T>(tanh_lane(x.v)); }
template <typename T> inline Lane<T> h_atanh(Lane<T> x) { return Lane<T>(atanh_lane(x.v)); }

}  // namespace
}  // namespace hypops
