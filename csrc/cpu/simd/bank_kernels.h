// Per-pair scalar stage of the gyroplane bank (csrc/cpu/gyroplane_bank_cpu.cpp), compiled once per
// instruction set (csrc/cpu/simd/bank_kernels.cpp, see there for why) and chosen at run time.
// Plain C++ (no ATen): the per-ISA translation units must not instantiate torch's inline functions with
// -mavx2 (the linker could pick those copies for the baseline code too).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace hypops {
namespace simd {

// Inputs of one bank call, all in the accumulation type T: per point xx = |x|^2 [N]; per pair
// xp = <x, p>, xa = <x, a> [N, P] row-major; per plane pp = |p|^2, aa = |a|^2, pa = <p, a> [P].
// plane_margin and inside: the gate and the per-plane factors of the inside form (below); the caller
// computes both once per call (plane_margin(), inside_plane_factors()).
template <typename T> struct BankFwd {
  const T *xx, *xp, *xa, *pp, *aa, *pa;
  T c;
  int64_t P;
  bool is_signed, scaled;
  double plane_margin;
  const T* inside;
};
// Backward adds the incoming gradient g [N, P] and writes, per pair, ldd = g l_dd, lda = g l_da, per point
// rx = sum_k 2 g (l_xx + l_dd), and adds to the per-plane column sums ([P] each, in T; the caller gives
// every task its own and moves them into double sums every kBankFlushRows rows, so that the loop carries
// no float -> double conversion and no T sum runs over more than that many rows) smp += 2 g (l_pp + l_dd),
// smpa += g (l_pa - l_da), sma += 2 g l_aa (the l_* are the partials of dist2plane_value; see
// gyroplane_bank_cpu.cpp). The column sums are all the input gradients need of those three, so they are
// never stored per pair. Double rows evaluate the partials in double;
// float rows in float where that is exact and safe (see bwd_plane_margin), else in double (the partials
// can exceed float's range near the sphere where the value does not). Rows inside the gate take the
// inside form, in T.
template <typename T> struct BankBwd {
  const T *xx, *xp, *xa, *pp, *aa, *pa, *g;
  double c;
  int64_t P;
  bool is_signed, scaled;
  T *ldd, *lda, *rx;
  T *smp, *smpa, *sma;
  double plane_margin;
  const T* inside;
};

constexpr int64_t kBankFlushRows = 16;

// The inside gate, per bank: min_k (1 - c|p_k|^2) when every plane has a finite |p|^2 inside the ball and
// a normal with INSIDE_MIN_AA < |a|^2 < 1e30 (else 0, which sends every row to the general formula). Row
// n is "inside" when (1 - c|x_n|^2) * margin > INSIDE_MIN_AB, i.e. AB = (1 - c|p|^2)(1 - c|x|^2) > 1/8
// for every plane.
constexpr double INSIDE_MIN_AB = 0.125;
constexpr double INSIDE_MIN_AA = 1e-6;
template <typename T> double plane_margin(const T* pp, const T* aa, int64_t P, double c) {
  double m = 1.0;
  for (int64_t k = 0; k < P; ++k) {
    const double A = 1.0 - c * double(pp[k]);
    if (!(A > 0.0 && A <= 1.0 && double(aa[k]) > INSIDE_MIN_AA && double(aa[k]) < 1e30)) return 0.0;
    m = A < m ? A : m;
  }
  return m;
}

// The inside form of dist2plane_value (common/math.h). There, with A = 1 - c|p|^2, B = 1 - c|x|^2,
// den = A B + c|x - p|^2, the argument of asinh is
//   z = 2 sqrt(c) <w, a> / ((1 - c|w|^2) |a|),  <w, a> = (A da - c dd pa) / den,  1 - c|w|^2 = A B / den,
// so den cancels:  z = (A da - c pa dd) * K / B  with the per-plane K = 2 sqrt(c) / (A |a|).
// Per pair that is two products and no division (the general form divides by den, by |a|, by the clamped
// denominator and takes sqrt(|a|^2)), which halves the forward's pair cost. It equals the general form
// wherever that form's clamps are inactive, which the gate guarantees: den >= AB > 1/8; 1 - c|w|^2 >= AB/5
// and |a| > 1e-3, so its clamped denominator is > 1e-5; and where |w|^2 is below MIN_NORM (x on p) the
// general form's clamped 1 - c MIN_NORM equals AB/den to within 1e-15 relative. Also |z| <= 768 there
// (|A da - c pa dd| <= 6|a|/sqrt(c), B > 1/8), so z^2 never overflows, even in float.
// Factors per plane, [INSIDE_FACTORS, P] in T, computed in double: A, c pa, K, |a|, c^2 pa / A, pa / A,
// 1 / (2|a|^2) (the last three for the backward's partials).
// (plane_margin, inside_plane_factors and inside_gate run in the caller's TU only: an ISA TU instantiating them would
// make an -mavx2 copy that the linker may pick for everyone.)
constexpr int INSIDE_FACTORS = 7;
template <typename T> void inside_plane_factors(const T* pp, const T* aa, const T* pa, int64_t P, double c, T* f) {
  const double sc = std::sqrt(c);
  for (int64_t k = 0; k < P; ++k) {
    const double A = 1.0 - c * double(pp[k]), an = std::sqrt(double(aa[k])), q = double(pa[k]);
    f[k] = T(A);
    f[P + k] = T(c * q);
    f[2 * P + k] = T(2.0 * sc / (A * an));
    f[3 * P + k] = T(an);
    f[4 * P + k] = T(c * c * q / A);
    f[5 * P + k] = T(q / A);
    f[6 * P + k] = T(0.5 / double(aa[k]));
  }
}

// The gate and the factors together, as a bank call needs them (factors empty when the gate is shut).
template <typename T> struct InsideGate {
  double margin;
  std::vector<T> factors;
};
template <typename T> InsideGate<T> inside_gate(const T* pp, const T* aa, const T* pa, int64_t P, double c) {
  InsideGate<T> g{plane_margin(pp, aa, P, c), {}};
  if (g.margin > 0) {
    g.factors.resize(INSIDE_FACTORS * P);
    inside_plane_factors(pp, aa, pa, P, c, g.factors.data());
  }
  return g;
}

// The gyroplane convolution's inside path (csrc/cpu/gyroplane_conv3d_cpu.cpp). Inside the gate the
// argument of asinh is linear in <x, p> and <x, a> with per-plane coefficients:
//   z = (A (<x,a> - pa) - c pa (|x|^2 - 2<x,p> + pp)) K / B = (<x, W'> + e' - f' |x|^2) / B,
//   W' = K (A a + 2 c pa p),  e' = -K (A pa + c pa pp),  f' = K c pa,
// so one contraction s = <x, W'> per pair replaces the bank's two (<x,p> and <x,a>), in the forward and in
// the backward (whose input gradients are then two GEMMs, not four). Rows [n0, n1) of a step of N rows
// against P planes; per row xb = (|x|^2, 1 / (1 - c|x|^2)) [N, 2]; per plane e', f'.
template <typename T> struct InsideFwd {
  const T *s, *xb, *e, *f;
  T inv_sc;  // 1 / sqrt(c)
  int64_t P;
};
// Backward adds the incoming gradient g [N, P] and writes lz = g d(value)/ds [N, P] (lz may be s) and per row
// r = sum_k 2 lz (c z - f'), so that grad_x = lz W' + x r; adds the column sums se += lz,
// sxx += lz |x|^2, swz += B lz z = g z d(value)/dz and sgc += the pair's d/dc through B, through 1/sqrt(c)
// and the K-part of the planes' (swz / (2c): summed per pair here, where it nearly cancels the 1/sqrt(c)
// term for small z, rather than formed from the GEMM sum lz^T x). The sums are [P] columns in T, which the
// caller flushes into double every kBankFlushRows rows, as the bank's: a per-row `omp simd reduction` would
// end each row with a serial chain of scalar adds (gcc's epilogue without -ffast-math); r, the one per-row
// sum, is summed as a tree by hand.
template <typename T> struct InsideBwd {
  const T *s, *g, *xb, *e, *f;
  T c, inv_sc;
  int64_t P;
  T *lz, *r, *se, *sxx, *swz, *sgc;
};

// One instruction set's kernels. fwd: row n of the output (P values) into out. bwd: row n of the
// outputs; returns that row's contribution to dL/dc.
struct BankKernels {
  const char* name;
  void (*fwd_f)(const BankFwd<float>&, int64_t n, float* out);
  void (*fwd_d)(const BankFwd<double>&, int64_t n, double* out);
  double (*bwd_f)(const BankBwd<float>&, int64_t n);
  double (*bwd_d)(const BankBwd<double>&, int64_t n);
  // asinh of the vectorised path over an array (tests compare it with libm's).
  void (*asinh_f)(const float* in, float* out, int64_t n);
  void (*asinh_d)(const double* in, double* out, int64_t n);
  // The conv's inside path: out[n, :] += values of rows [n0, n1); backward as InsideBwd says.
  void (*inside_fwd_f)(const InsideFwd<float>&, int64_t n0, int64_t n1, float* out);
  void (*inside_fwd_d)(const InsideFwd<double>&, int64_t n0, int64_t n1, double* out);
  void (*inside_bwd_f)(const InsideBwd<float>&, int64_t n0, int64_t n1);
  void (*inside_bwd_d)(const InsideBwd<double>&, int64_t n0, int64_t n1);
};

// Overloads picking the table entry for the accumulation type.
inline void run_fwd(const BankKernels& k, const BankFwd<float>& a, int64_t n, float* out) { k.fwd_f(a, n, out); }
inline void run_fwd(const BankKernels& k, const BankFwd<double>& a, int64_t n, double* out) { k.fwd_d(a, n, out); }
inline double run_bwd(const BankKernels& k, const BankBwd<float>& a, int64_t n) { return k.bwd_f(a, n); }
inline double run_bwd(const BankKernels& k, const BankBwd<double>& a, int64_t n) { return k.bwd_d(a, n); }
inline auto inside_fwd(const BankKernels& k, float) { return k.inside_fwd_f; }
inline auto inside_fwd(const BankKernels& k, double) { return k.inside_fwd_d; }
inline auto inside_bwd(const BankKernels& k, float) { return k.inside_bwd_f; }
inline auto inside_bwd(const BankKernels& k, double) { return k.inside_bwd_d; }

// Defined by each per-ISA translation unit.
namespace isa_baseline { extern const BankKernels kernels; }
namespace isa_avx2 { extern const BankKernels kernels; }
namespace isa_avx512 { extern const BankKernels kernels; }

// The kernels in use: AVX-512 (F, DQ, VL, BW, with FMA; 512-bit vectors) when the CPU has it, else
// AVX2+FMA, else the baseline x86-64 (SSE2) build. The environment variable HYPOPS_CPU_KERNELS (read
// once) may ask for "best" (the default), "avx512", "avx2", "baseline" or "scalar" (a table of null
// functions: the caller runs its plain
// libm loop, the reference for tests and benchmarks; "scalar-avx2" is the same with the row ops' sweeps in
// AVX2 code, simd_dispatch.cpp).
const BankKernels& bank_kernels();
// Name of the kernels in use ("avx512", "avx2", "baseline", "scalar" or "scalar-avx2").
const char* kernels_name();
// Switches the kernels (tests); returns false when the CPU cannot run the requested ones.
bool set_kernels(const char* name);

}  // namespace simd
}  // namespace hypops
