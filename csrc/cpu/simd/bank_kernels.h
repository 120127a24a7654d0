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
// Backward adds the incoming gradient g [N, P] and writes, per pair, ldd = g l_dd, lda = g l_da,
// mp = 2 g (l_pp + l_dd), mpa = g (l_pa - l_da), ma = 2 g l_aa, and per point rx = sum_k 2 g (l_xx + l_dd)
// (the l_* are the partials of dist2plane_value; see gyroplane_bank_cpu.cpp). The partials are
// evaluated in double for float rows too (they can exceed float's range where the value does not).
template <typename T> struct BankBwd {
  const T *xx, *xp, *xa, *pp, *aa, *pa, *g;
  double c;
  int64_t P;
  bool is_signed, scaled;
  T *ldd, *lda, *mp, *mpa, *ma, *rx;
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
