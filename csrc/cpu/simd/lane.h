// Lane<T>: one SIMD lane of T, a scalar type that the formulas of common/math.h can be evaluated on
// inside a `#pragma omp simd` loop, so that gcc vectorises the per-pair (per-row) scalar stage across
// pairs. Included only by the per-ISA translation units in csrc/cpu/simd/ (see kernels.cpp there for
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
  const T small_r = log1p_ge0(as + as * as / (T(1) + sqrt_t(T(1) + as * as)));
  const T big_r = log_ge1(big ? a : T(1)) + T(0.6931471805599453);
  const T r = big ? big_r : small_r;
  return z < T(0) ? -r : r;
}
// The overloads math.h's formulas reach through ADL.
template <typename T> inline Lane<T> h_sqrt(Lane<T> x) { return Lane<T>(sqrt_t(x.v)); }
template <typename T> inline Lane<T> h_asinh(Lane<T> x) { return Lane<T>(asinh_lane(x.v)); }

}  // namespace
}  // namespace hypops
