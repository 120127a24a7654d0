// Per-pair scalar stage of the gyroplane bank (csrc/cpu/gyroplane_bank_cpu.cpp), compiled once per
// instruction set (csrc/cpu/simd/bank_kernels.cpp, see there for why) and chosen at run time.
// Plain C++ (no ATen): the per-ISA translation units must not instantiate torch's inline functions with
// -mavx2 (the linker could pick those copies for the baseline code too).
#pragma once

#include <cstdint>

namespace hypops {
namespace simd {

// Inputs of one bank call, all in the accumulation type T: per point xx = |x|^2 [N]; per pair
// xp = <x, p>, xa = <x, a> [N, P] row-major; per plane pp = |p|^2, aa = |a|^2, pa = <p, a> [P].
template <typename T> struct BankFwd {
  const T *xx, *xp, *xa, *pp, *aa, *pa;
  T c;
  int64_t P;
  bool is_signed, scaled;
};
// Backward adds the incoming gradient g [N, P] and writes, per pair, ldd = g l_dd, lda = g l_da, per point
// rx = sum_k 2 g (l_xx + l_dd), and adds to the per-plane column sums (double, [P] each; the caller gives
// every task its own) smp += 2 g (l_pp + l_dd), smpa += g (l_pa - l_da), sma += 2 g l_aa (the l_* are the
// partials of dist2plane_value; see gyroplane_bank_cpu.cpp). The column sums are all the input gradients
// need of those three, so they are never stored per pair. Double rows evaluate the partials in double;
// float rows in float where that is exact and safe (see bwd_plane_margin), else in double (the partials
// can exceed float's range near the sphere where the value does not).
template <typename T> struct BankBwd {
  const T *xx, *xp, *xa, *pp, *aa, *pa, *g;
  double c;
  int64_t P;
  bool is_signed, scaled;
  T *ldd, *lda, *rx;
  double *smp, *smpa, *sma;
  double plane_margin;  // bwd_plane_margin(pp, aa, P, c) (float rows; unused for double rows)
};

// The float backward's gate, per bank: min_k (1 - c|p_k|^2) when every plane has a finite |p|^2 inside the
// ball and a normal with |a|^2 > BWD_F_MIN_AA (else 0, which sends every row to the double loop). A row
// runs in float when (1 - c|x|^2) * margin > BWD_F_MIN_AB.
constexpr double BWD_F_MIN_AB = 0.125;
constexpr double BWD_F_MIN_AA = 1e-6;
template <typename T> double bwd_plane_margin(const T* pp, const T* aa, int64_t P, double c) {
  double m = 1.0;
  for (int64_t k = 0; k < P; ++k) {
    const double A = 1.0 - c * double(pp[k]);
    if (!(A > 0.0 && A <= 1.0 && double(aa[k]) > BWD_F_MIN_AA && double(aa[k]) < 1e30)) return 0.0;
    m = A < m ? A : m;
  }
  return m;
}

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
};

// Overloads picking the table entry for the accumulation type.
inline void run_fwd(const BankKernels& k, const BankFwd<float>& a, int64_t n, float* out) { k.fwd_f(a, n, out); }
inline void run_fwd(const BankKernels& k, const BankFwd<double>& a, int64_t n, double* out) { k.fwd_d(a, n, out); }
inline double run_bwd(const BankKernels& k, const BankBwd<float>& a, int64_t n) { return k.bwd_f(a, n); }
inline double run_bwd(const BankKernels& k, const BankBwd<double>& a, int64_t n) { return k.bwd_d(a, n); }

// Defined by each per-ISA translation unit.
namespace isa_baseline { extern const BankKernels kernels; }
namespace isa_avx2 { extern const BankKernels kernels; }

// The kernels in use: AVX2+FMA when the CPU has both, else the baseline x86-64 (SSE2) build. The
// environment variable HYPOPS_CPU_KERNELS (read once) may ask for "baseline" or "scalar" (a table of
// null functions: the caller runs its plain libm loop, the reference for tests and benchmarks).
const BankKernels& bank_kernels();
// Name of the kernels in use ("avx2", "baseline" or "scalar").
const char* kernels_name();
// Switches the kernels (tests); returns false when the CPU cannot run the requested ones.
bool set_kernels(const char* name);

}  // namespace simd
}  // namespace hypops
