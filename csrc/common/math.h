// Scalar math shared by the CPU and CUDA kernels: constants, clamps, and each op's per-row formula.
//
// Every pointwise op is written once here as a function of a few per-row reductions (squared norms,
// dot products) and c. The kernels compute the reductions in one pass over a row, call the function
// here, then write the output as a linear combination of the row's vectors.
//
// Backward uses the same functions evaluated on Dual numbers (forward-mode derivatives with respect to
// every reduction and c at once), so a formula and its gradient can never disagree. The gradient of a
// reduction with respect to a row vector is itself a combination of the row's vectors
// (d<x,y>/dx = y, d|x-p|^2/dx = 2(x-p), ...), which the kernels apply in a second pass.
//
// The constants below are mirrored in hypops/_constants.py; tests/test_constants.py pins them together.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define HYPOPS_HD __host__ __device__ __forceinline__
#else
#define HYPOPS_HD inline
#endif

namespace hypops {

// --- constants (geoopt's, so results agree) ----------------------------------------------------------
// Norms are floored at MIN_NORM before dividing by them (geoopt's clamp_min(1e-15)).
constexpr double MIN_NORM = 1e-15;
// artanh's argument is clamped to +-(1 - ARTANH_CLAMP): the hyperbolic radius saturates instead of
// becoming Inf when float rounding puts a point on the sphere of radius 1/sqrt(c).
constexpr double ARTANH_CLAMP = 1e-7;
// tanh's argument is clamped to +-TANH_CLAMP (tanh is already 1 in float64 there; the clamp keeps
// derivative expressions finite for tangent norms up to 1e6 and beyond).
constexpr double TANH_CLAMP = 15.0;
// Denominators that are positive inside the ball (1 + 2c<x,y> + c^2|x|^2|y|^2, (1 - c|w|^2)|a|) are
// floored at MIN_DENOM so points on or outside the sphere give large finite values, not Inf/NaN.
constexpr double MIN_DENOM = 1e-15;
// Projection radius (1 - eps)/sqrt(c), eps per storage dtype. float32/float64 are geoopt's values.
// Half types compute in float32, but the returned point is rounded to the half type afterwards; eps is
// chosen so that rounding (relative error 2^-11 for float16, 2^-8 for bfloat16) still leaves the
// point strictly inside the ball (geoopt uses 1e-5 for both, and its "projected" points land outside).
constexpr double PROJ_EPS_FLOAT64 = 1e-5;
constexpr double PROJ_EPS_FLOAT32 = 4e-3;
constexpr double PROJ_EPS_FLOAT16 = 4e-3;
constexpr double PROJ_EPS_BFLOAT16 = 8e-3;

// --- scalar helpers, overloaded for float/double and for Dual below --------------------------------
HYPOPS_HD float h_sqrt(float x) { return ::sqrtf(x); }
HYPOPS_HD double h_sqrt(double x) { return ::sqrt(x); }
HYPOPS_HD float h_tanh(float x) { return ::tanhf(x); }
HYPOPS_HD double h_tanh(double x) { return ::tanh(x); }
HYPOPS_HD float h_atanh(float x) { return ::atanhf(x); }
HYPOPS_HD double h_atanh(double x) { return ::atanh(x); }
HYPOPS_HD float h_asinh(float x) { return ::asinhf(x); }
HYPOPS_HD double h_asinh(double x) { return ::asinh(x); }
HYPOPS_HD float h_log(float x) { return ::logf(x); }
HYPOPS_HD double h_log(double x) { return ::log(x); }

HYPOPS_HD float h_exp(float x) { return ::expf(x); }
HYPOPS_HD double h_exp(double x) { return ::exp(x); }
HYPOPS_HD float h_log1p(float x) { return ::log1pf(x); }
HYPOPS_HD double h_log1p(double x) { return ::log1p(x); }

template <typename T> HYPOPS_HD T value(T x) { return x; }

// Forward-mode dual number carrying N partial derivatives. Only the operations the formulas below use.
template <typename T, int N>
struct Dual {
  T v;
  T d[N];
  HYPOPS_HD Dual() : v(0) {
    for (int i = 0; i < N; ++i) d[i] = 0;
  }
  HYPOPS_HD Dual(T x) : v(x) {  // NOLINT: implicit from a constant, like a float
    for (int i = 0; i < N; ++i) d[i] = 0;
  }
  // A variable: value x, derivative 1 with respect to input `slot`.
  HYPOPS_HD static Dual var(T x, int slot) {
    Dual r(x);
    r.d[slot] = T(1);
    return r;
  }
};
template <typename T, int N> HYPOPS_HD T value(const Dual<T, N>& x) { return x.v; }

// Chain rule helper: f(x) with f'(x) = df.
template <typename T, int N> HYPOPS_HD Dual<T, N> chain(const Dual<T, N>& x, T f, T df) {
  Dual<T, N> r(f);
  for (int i = 0; i < N; ++i) r.d[i] = df * x.d[i];
  return r;
}
template <typename T, int N> HYPOPS_HD Dual<T, N> operator+(const Dual<T, N>& a, const Dual<T, N>& b) {
  Dual<T, N> r(a.v + b.v);
  for (int i = 0; i < N; ++i) r.d[i] = a.d[i] + b.d[i];
  return r;
}
template <typename T, int N> HYPOPS_HD Dual<T, N> operator-(const Dual<T, N>& a, const Dual<T, N>& b) {
  Dual<T, N> r(a.v - b.v);
  for (int i = 0; i < N; ++i) r.d[i] = a.d[i] - b.d[i];
  return r;
}
template <typename T, int N> HYPOPS_HD Dual<T, N> operator-(const Dual<T, N>& a) {
  Dual<T, N> r(-a.v);
  for (int i = 0; i < N; ++i) r.d[i] = -a.d[i];
  return r;
}
template <typename T, int N> HYPOPS_HD Dual<T, N> operator*(const Dual<T, N>& a, const Dual<T, N>& b) {
  Dual<T, N> r(a.v * b.v);
  for (int i = 0; i < N; ++i) r.d[i] = a.d[i] * b.v + a.v * b.d[i];
  return r;
}
template <typename T, int N> HYPOPS_HD Dual<T, N> operator/(const Dual<T, N>& a, const Dual<T, N>& b) {
  const T inv = T(1) / b.v;
  const T q = a.v * inv;
  Dual<T, N> r(q);
  for (int i = 0; i < N; ++i) r.d[i] = (a.d[i] - q * b.d[i]) * inv;
  return r;
}
// Mixed forms with a plain constant.
template <typename T, int N> HYPOPS_HD Dual<T, N> operator+(const Dual<T, N>& a, T b) { return a + Dual<T, N>(b); }
template <typename T, int N> HYPOPS_HD Dual<T, N> operator+(T a, const Dual<T, N>& b) { return Dual<T, N>(a) + b; }
template <typename T, int N> HYPOPS_HD Dual<T, N> operator-(const Dual<T, N>& a, T b) { return a - Dual<T, N>(b); }
template <typename T, int N> HYPOPS_HD Dual<T, N> operator-(T a, const Dual<T, N>& b) { return Dual<T, N>(a) - b; }
template <typename T, int N> HYPOPS_HD Dual<T, N> operator*(const Dual<T, N>& a, T b) {
  Dual<T, N> r(a.v * b);
  for (int i = 0; i < N; ++i) r.d[i] = a.d[i] * b;
  return r;
}
template <typename T, int N> HYPOPS_HD Dual<T, N> operator*(T a, const Dual<T, N>& b) { return b * a; }
template <typename T, int N> HYPOPS_HD Dual<T, N> operator/(const Dual<T, N>& a, T b) { return a * (T(1) / b); }
template <typename T, int N> HYPOPS_HD Dual<T, N> operator/(T a, const Dual<T, N>& b) { return Dual<T, N>(a) / b; }

template <typename T, int N> HYPOPS_HD Dual<T, N> h_sqrt(const Dual<T, N>& x) {
  const T s = h_sqrt(x.v);
  return chain(x, s, T(0.5) / s);
}
template <typename T, int N> HYPOPS_HD Dual<T, N> h_tanh(const Dual<T, N>& x) {
  const T t = h_tanh(x.v);
  return chain(x, t, T(1) - t * t);
}
template <typename T, int N> HYPOPS_HD Dual<T, N> h_atanh(const Dual<T, N>& x) {
  return chain(x, h_atanh(x.v), T(1) / ((T(1) - x.v) * (T(1) + x.v)));
}
template <typename T, int N> HYPOPS_HD Dual<T, N> h_asinh(const Dual<T, N>& x) {
  // 1/sqrt(1 + x^2) written as (1/|x|)/sqrt(1 + 1/x^2) for large |x| so x^2 cannot overflow.
  const T ax = x.v < T(0) ? -x.v : x.v;
  const T dv = ax > T(1) ? (T(1) / ax) / h_sqrt(T(1) + T(1) / (ax * ax)) : T(1) / h_sqrt(T(1) + x.v * x.v);
  return chain(x, h_asinh(x.v), dv);
}
template <typename T, int N> HYPOPS_HD Dual<T, N> h_log(const Dual<T, N>& x) {
  return chain(x, h_log(x.v), T(1) / x.v);
}
template <typename T, int N> HYPOPS_HD Dual<T, N> h_exp(const Dual<T, N>& x) {
  const T e = h_exp(x.v);
  return chain(x, e, e);
}
template <typename T, int N> HYPOPS_HD Dual<T, N> h_log1p(const Dual<T, N>& x) {
  return chain(x, h_log1p(x.v), T(1) / (T(1) + x.v));
}

// Branching helpers. Like torch's clamp, the derivative follows the branch taken.
template <typename S, typename T> HYPOPS_HD S max_c(const S& x, T lo) { return value(x) < lo ? S(lo) : x; }
template <typename S, typename T> HYPOPS_HD S min_c(const S& x, T hi) { return value(x) > hi ? S(hi) : x; }
template <typename S, typename T> HYPOPS_HD S clamp_c(const S& x, T lo, T hi) {
  return value(x) < lo ? S(lo) : (value(x) > hi ? S(hi) : x);
}
// |x| with derivative sign(x) and sign(0) = 0, as torch.abs.
template <typename S> HYPOPS_HD S abs_c(const S& x) {
  using T = decltype(value(x));
  return value(x) < T(0) ? -x : (value(x) > T(0) ? x : x * T(0));
}
// sqrt floored at MIN_NORM: a norm that is exactly zero gets derivative 0 (as torch's norm does),
// not the Inf of sqrt'(0).
template <typename S> HYPOPS_HD S safe_norm(const S& sq) {
  using T = decltype(value(sq));
  return value(sq) > T(MIN_NORM * MIN_NORM) ? h_sqrt(sq) : S(T(MIN_NORM));
}
template <typename S> HYPOPS_HD S safe_tanh(const S& x) {
  using T = decltype(value(x));
  return h_tanh(clamp_c(x, T(-TANH_CLAMP), T(TANH_CLAMP)));
}
template <typename S> HYPOPS_HD S safe_artanh(const S& x) {
  using T = decltype(value(x));
  return h_atanh(clamp_c(x, T(-1 + ARTANH_CLAMP), T(1 - ARTANH_CLAMP)));
}

// Factor that scales a point of norm `norm` back onto the projection sphere (1 - eps)/sqrt(c) when it
// lies beyond it (geoopt's projx: strictly greater -> rescale).
template <typename S, typename T> HYPOPS_HD S project_factor(const S& norm, const S& sqrt_c, T eps) {
  const S maxnorm = (T(1) - eps) / sqrt_c;
  return value(norm) > value(maxnorm) ? maxnorm / norm : S(T(1));
}

// --- per-op row formulas ------------------------------------------------------------------------------
// Names: xx = |x|^2, xy = <x,y>, dd = |x - y|^2 (computed from the difference vector, so it stays
// accurate when x and y nearly coincide), c = curvature (> 0).

// project(x) = x * min(1, maxnorm/|x|).
template <typename S, typename T> HYPOPS_HD S project_coef(S xx, S c, T eps) {
  return project_factor(safe_norm(xx), h_sqrt(c), eps);
}

// expmap0(u) = tanh(sqrt(c)|u|) u / (sqrt(c)|u|), projected. Returns the coefficient of u.
template <typename S, typename T> HYPOPS_HD S expmap0_coef(S uu, S c, T eps) {
  const S sc = h_sqrt(c);
  const S n = safe_norm(uu);
  const S t = safe_tanh(sc * n) / (sc * n);
  return t * project_factor(t * n, sc, eps);
}

// logmap0(y) = artanh(sqrt(c)|y|) y / (sqrt(c)|y|). Returns the coefficient of y.
template <typename S> HYPOPS_HD S logmap0_coef(S yy, S c) {
  const S sc = h_sqrt(c);
  const S n = safe_norm(yy);
  return safe_artanh(sc * n) / (sc * n);
}

// x (+) y = ((1 + 2c<x,y> + c|y|^2) x + (1 - c|x|^2) y) / (1 + 2c<x,y> + c^2 |x|^2 |y|^2).
template <typename S> struct Coef2 {
  S a;  // coefficient of the first vector
  S b;  // coefficient of the second vector
};
template <typename S> HYPOPS_HD Coef2<S> mobius_add_raw(S xx, S yy, S xy, S c) {
  using T = decltype(value(c));
  const S den = max_c(T(1) + T(2) * c * xy + c * c * xx * yy, T(MIN_DENOM));
  return {(T(1) + T(2) * c * xy + c * yy) / den, (T(1) - c * xx) / den};
}
// Squared norm of a x + b y from the reductions (clamped at 0 against rounding).
template <typename S> HYPOPS_HD S combo_sq(const Coef2<S>& k, S xx, S yy, S xy) {
  using T = decltype(value(xx));
  return max_c(k.a * k.a * xx + T(2) * k.a * k.b * xy + k.b * k.b * yy, T(0));
}
template <typename S, typename T> HYPOPS_HD Coef2<S> mobius_add_coef(S xx, S yy, S xy, S c, T eps) {
  Coef2<S> k = mobius_add_raw(xx, yy, xy, c);
  const S f = project_factor(safe_norm(combo_sq(k, xx, yy, xy)), h_sqrt(c), eps);
  return {k.a * f, k.b * f};
}

// expmap(x, u) = x (+) tanh(sqrt(c) lambda_x |u| / 2) u / (sqrt(c)|u|), projected;
// lambda_x = 2 / (1 - c|x|^2). Returns the coefficients of x and u.
template <typename S, typename T> HYPOPS_HD Coef2<S> expmap_coef(S xx, S uu, S xu, S c, T eps) {
  const S sc = h_sqrt(c);
  const S lam = T(2) / max_c(T(1) - c * xx, T(MIN_DENOM));
  const S n = safe_norm(uu);
  const S t = safe_tanh(sc * lam * n / T(2)) / (sc * n);
  // second point v = t u: |v|^2 = t^2 |u|^2, <x, v> = t <x, u>. Written t * (t * |u|^2): for x outside the
  // ball lambda_x is clamped to ~2e15 and t reaches 1e15; (t * t) * |u|^2 would overflow float32 in the
  // dual parts (Inf * 0 = NaN in the gradient) where t * (t * |u|^2) stays finite.
  const S vv = t * (t * uu);
  Coef2<S> k = mobius_add_raw(xx, vv, t * xu, c);
  const S f = project_factor(safe_norm(combo_sq(k, xx, vv, t * xu)), sc, eps);
  return {k.a * f, k.b * t * f};
}

// w = (-x) (+) y written with the accurate pieces: its squared norm is |x - y|^2 / den with
// den = 1 - 2c<x,y> + c^2|x|^2|y|^2 = (1 - c|x|^2)(1 - c|y|^2) + c|x - y|^2 (the second form has no
// cancellation when x and y are close, and is >= 0 up to rounding).
template <typename S> HYPOPS_HD S mobius_sub_den(S xx, S yy, S dd, S c) {
  using T = decltype(value(c));
  return max_c((T(1) - c * xx) * (T(1) - c * yy) + c * dd, T(MIN_DENOM));
}

// logmap(x, y) = (2 / (sqrt(c) lambda_x)) artanh(sqrt(c)|w|) w / |w|, w = (-x) (+) y.
// With w = (-(1 - 2c<x,y> + c|y|^2) x + (1 - c|x|^2) y) / den, returns the coefficients of x and y.
template <typename S> HYPOPS_HD Coef2<S> logmap_coef(S xx, S yy, S xy, S dd, S c) {
  using T = decltype(value(c));
  const S sc = h_sqrt(c);
  const S den = mobius_sub_den(xx, yy, dd, c);
  const S wn = safe_norm(dd / den);
  const S one_m_cxx = max_c(T(1) - c * xx, T(MIN_DENOM));  // = 2 / lambda_x
  const S s = one_m_cxx * safe_artanh(sc * wn) / (sc * wn * den);
  return {-s * (T(1) - T(2) * c * xy + c * yy), s * (T(1) - c * xx)};
}

// dist(x, y) = (2/sqrt(c)) artanh(sqrt(c)|(-x) (+) y|).
template <typename S> HYPOPS_HD S dist_value(S xx, S yy, S dd, S c) {
  using T = decltype(value(c));
  const S sc = h_sqrt(c);
  const S wn = safe_norm(dd / mobius_sub_den(xx, yy, dd, c));
  return T(2) * safe_artanh(sc * wn) / sc;
}

// dist2plane(x, p, a) = (1/sqrt(c)) asinh(2 sqrt(c) <w, a> / ((1 - c|w|^2) |a|)), w = (-p) (+) x.
// Reductions: xx, pp, aa, pa = <p, a>, dd = |x - p|^2, da = <x - p, a>.
// <w, a> = ((1 - c|p|^2) <x - p, a> - c |x - p|^2 <p, a>) / den, exact and free of cancellation
// when x is near p; |w|^2 = |x - p|^2 / den. asinh is the odd, accurate one (geoopt's
// log(z + sqrt(1 + z^2)) returns -34.5 at z = -1e4).
template <typename S> HYPOPS_HD S dist2plane_value(S xx, S pp, S aa, S pa, S dd, S da, S c, bool is_signed,
                                                 bool scaled) {
  using T = decltype(value(c));
  const S sc = h_sqrt(c);
  const S den = mobius_sub_den(pp, xx, dd, c);
  // 1 - c|w|^2 = (1 - c|p|^2)(1 - c|x|^2) / den exactly: formed as 1 - c|w|^2 it cancels to nothing when x
  // and p are both near the sphere. Below geoopt's clamp_min(1e-15) on |w|^2 the clamped value is used.
  const S one_m_cww = value(dd / den) < T(MIN_NORM) ? S(T(1) - c * T(MIN_NORM))
                                                    : (T(1) - c * pp) * (T(1) - c * xx) / den;
  S wa = ((T(1) - c * pp) * da - c * dd * pa) / den;
  if (!is_signed) wa = abs_c(wa);
  const S an = safe_norm(aa);
  const S denom = max_c(one_m_cww * an, T(MIN_DENOM));
  S out = h_asinh(T(2) * sc * wa / denom) / sc;
  if (scaled) out = out * an;
  return out;
}

// dist2plane_value and its partial derivatives with respect to (xx, pp, aa, pa, dd, da, c), derived by
// hand from the formula above, step by step in the same order, with the same branches (a clamp that is
// active has derivative 0; sign(0) = 0 for the unsigned distance) and the same division forms
// ((a' - q b') / b), so it agrees with dist2plane_value on Dual<S, 7> to rounding. It exists for speed:
// the Dual evaluation carries 7 partials through every operation (~10x the arithmetic), which makes
// the vectorised CPU backward of the gyroplane bank (csrc/cpu/simd/bank_kernels.cpp) run out of
// registers. S: a plain scalar type (no Dual). tests/test_simd_kernels.py compares the two.
template <typename S> struct Dist2PlaneGrad {
  S value, xx, pp, aa, pa, dd, da, c;
};
template <typename S> HYPOPS_HD Dist2PlaneGrad<S> dist2plane_grad(S xx, S pp, S aa, S pa, S dd, S da, S c,
                                                                  bool is_signed, bool scaled) {
  using T = decltype(value(c));
  const S zero = S(T(0));
  const S sc = h_sqrt(c);
  const S sc_c = T(0.5) / sc;
  // den = max((1 - c pp)(1 - c xx) + c dd, MIN_DENOM)   (mobius_sub_den(pp, xx, dd, c))
  const S A = T(1) - c * pp, B = T(1) - c * xx;
  const S den_raw = A * B + c * dd;
  const bool den_on = !(value(den_raw) < T(MIN_DENOM));
  const S den = den_on ? den_raw : S(T(MIN_DENOM));
  const S inv_den = T(1) / den;
  const S den_xx = den_on ? -(c * A) : zero, den_pp = den_on ? -(c * B) : zero, den_dd = den_on ? c : zero;
  const S den_c = den_on ? dd - (pp * B + xx * A) : zero;
  // O = 1 - c|w|^2 = A B / den, or 1 - c MIN_NORM where |w|^2 = dd / den is below MIN_NORM
  const bool o_on = !(value(dd * inv_den) < T(MIN_NORM));
  const S AB = A * B;
  const S O = o_on ? AB * inv_den : S(T(1) - c * T(MIN_NORM));
  const S O_xx = o_on ? (-(c * A) - O * den_xx) * inv_den : zero;
  const S O_pp = o_on ? (-(c * B) - O * den_pp) * inv_den : zero;
  const S O_dd = o_on ? -(O * den_dd) * inv_den : zero;
  const S O_c = o_on ? (-(pp * B + xx * A) - O * den_c) * inv_den : S(-T(MIN_NORM));
  // wa = <w, a> = (A da - c dd pa) / den
  S wa = (A * da - c * dd * pa) * inv_den;
  S wa_xx = -(wa * den_xx) * inv_den;
  S wa_pp = (-(c * da) - wa * den_pp) * inv_den;
  S wa_pa = -(c * dd) * inv_den;
  S wa_dd = (-(c * pa) - wa * den_dd) * inv_den;
  S wa_da = A * inv_den;
  S wa_c = (-(pp * da + dd * pa) - wa * den_c) * inv_den;
  if (!is_signed) {
    const S sg = value(wa) < T(0) ? S(T(-1)) : (value(wa) > T(0) ? S(T(1)) : zero);
    wa = wa * sg;
    wa_xx = wa_xx * sg, wa_pp = wa_pp * sg, wa_pa = wa_pa * sg, wa_dd = wa_dd * sg, wa_da = wa_da * sg;
    wa_c = wa_c * sg;
  }
  // an = |a| (floored), denom = max(O an, MIN_DENOM)
  const bool an_on = value(aa) > T(MIN_NORM * MIN_NORM);
  const S an = an_on ? h_sqrt(aa) : S(T(MIN_NORM));
  const S an_aa = an_on ? T(0.5) / an : zero;
  const S denom_raw = O * an;
  const bool dn_on = !(value(denom_raw) < T(MIN_DENOM));
  const S denom = dn_on ? denom_raw : S(T(MIN_DENOM));
  const S inv_dn = T(1) / denom;
  // z = 2 sc wa / denom
  const S sc2 = T(2) * sc;
  const S z = sc2 * wa * inv_dn;
  const S z_xx = (sc2 * wa_xx - z * (dn_on ? O_xx * an : zero)) * inv_dn;
  const S z_pp = (sc2 * wa_pp - z * (dn_on ? O_pp * an : zero)) * inv_dn;
  const S z_aa = -(z * (dn_on ? O * an_aa : zero)) * inv_dn;
  const S z_pa = sc2 * wa_pa * inv_dn;
  const S z_dd = (sc2 * wa_dd - z * (dn_on ? O_dd * an : zero)) * inv_dn;
  const S z_da = sc2 * wa_da * inv_dn;
  const S z_c = (T(2) * sc_c * wa + sc2 * wa_c - z * (dn_on ? O_c * an : zero)) * inv_dn;
  // out = asinh(z) / sc; asinh'(z) = 1/sqrt(1 + z^2), as u/sqrt(1 + u^2) with u = 1/|z| where |z| > 1 so
  // that z^2 cannot overflow (h_asinh's Dual writes the same; here one division and one sqrt serve both
  // branches, since a vectorised loop evaluates both arms of a select)
  const S az = value(z) < T(0) ? -z : z;
  const bool zbig = value(az) > T(1);
  const S u = zbig ? T(1) / az : z;
  const S hd = (zbig ? u : S(T(1))) / h_sqrt(T(1) + u * u);
  const S inv_sc = T(1) / sc;
  const S out = h_asinh(z) * inv_sc;
  const S k = hd * inv_sc;
  Dist2PlaneGrad<S> r{out, k * z_xx, k * z_pp, k * z_aa, k * z_pa, k * z_dd, k * z_da,
                      (hd * z_c - out * sc_c) * inv_sc};
  if (scaled) {
    r.value = out * an;
    r.xx = r.xx * an, r.pp = r.pp * an, r.pa = r.pa * an, r.dd = r.dd * an, r.da = r.da * an, r.c = r.c * an;
    r.aa = r.aa * an + out * an_aa;
  }
  return r;
}

// --- wrapped normal ---------------------------------------------------------------------------------------

// log(sinh(x)/x) for x >= 0: a series below 0.05 (the closed form cancels there; the next term,
// x^8/37800, is below float64 epsilon), x + log1p(-e^-2x) - log 2 - log x above (no overflow).
template <typename S> HYPOPS_HD S log_sinhc(S x) {
  using T = decltype(value(x));
  if (value(x) < T(0.05)) {
    const S x2 = x * x;
    return x2 * (T(1) / T(6) - x2 * (T(1) / T(180) - x2 * (T(1) / T(2835))));
  }
  return x + h_log1p(-h_exp(T(-2) * x)) - T(0.6931471805599453) - h_log(x);
}

// wrapped_normal_rsample(mu, std, eps) = mu (+) expmap0(v), v = std * eps / 2, projected (the inner
// expmap0 is not projected: geoopt's/pvae's expmap(mu, transp0(mu, v)) is the same point).
// Reductions mm = |mu|^2, vv = |v|^2, mv = <mu, v>. Returns the coefficients of mu and v.
template <typename S, typename T> HYPOPS_HD Coef2<S> wrapped_normal_rsample_coef(S mm, S vv, S mv, S c, T eps) {
  const S sc = h_sqrt(c);
  const S n = safe_norm(vv);
  const S t = safe_tanh(sc * n) / (sc * n);
  const Coef2<S> k = mobius_add_coef(mm, t * t * vv, t * mv, c, eps);
  return {k.a, k.b * t};
}

// The part of wrapped_normal_log_prob(z, mu, std) that depends on the rows (the -sum log std and
// -(D/2) log 2 pi terms are added by the kernel):
//   -|v / std|^2 / 2 - (D - 1) log(sinh(sqrt(c) d) / (sqrt(c) d)),  d = dist(mu, z), v = lambda_mu logmap(mu, z).
// With logmap's pieces (see logmap_coef), v = (2 A(sqrt(c)|w|) / den) ((1 - c|mu|^2)(z - mu) - c|z - mu|^2 mu),
// so |v / std|^2 needs only the std-weighted reductions wdd = sum (z-mu)^2/std^2, wdm = sum (z-mu) mu/std^2,
// wmm = sum mu^2/std^2 -- free of cancellation when z is near mu.
template <typename S>
HYPOPS_HD S wrapped_normal_log_prob_rows(S mm, S zz, S dd, S wdd, S wdm, S wmm, S c, int64_t D) {
  using T = decltype(value(c));
  const S sc = h_sqrt(c);
  const S den = mobius_sub_den(mm, zz, dd, c);
  const S wn = safe_norm(dd / den);
  const S at = safe_artanh(sc * wn);
  const S k = T(2) * at / (sc * wn * den);
  const S a = T(1) - c * mm;
  const S b = c * dd;
  const S q = k * k * (a * a * wdd - T(2) * a * b * wdm + b * b * wmm);
  // sqrt(c) d = 2 artanh(sqrt(c) |w|), the artanh k already needs: calling dist_value would redo den, the
  // sqrt and the artanh per row (equal up to rounding: dist_value returns 2 artanh / sqrt(c))
  return T(-0.5) * q - T(D - 1) * log_sinhc(T(2) * at);
}

}  // namespace hypops
