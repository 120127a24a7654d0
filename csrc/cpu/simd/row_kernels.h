// The per-row scalar stage of the pointwise row kernels (cpu/rowwise.h, dist_cpu.cpp, dist2plane_cpu.cpp),
// vectorised across the rows of a block and compiled once per instruction set (csrc/cpu/simd/
// row_kernels.cpp), chosen at run time together with the bank kernels (simd_dispatch.cpp).
//
// A row kernel processes its rows in blocks: sweep 1 writes each row's reductions into the arrays below,
// one call here turns them into the row's coefficients (forward) or coefficients and their partials
// (backward), and sweep 2 writes the output rows. Plain C++ (no ATen), like bank_kernels.h.
//
// Types: T is the accumulation type of the rows (float for float/half/bfloat16 rows, double for double).
// Forward evaluates in T (as the scalar path does); backward evaluates in double for float rows too (the
// partials can exceed float's range where the values do not), and reduces the gradient of c in double.
#pragma once

#include <cstdint>

#include "cpu/row_ops.h"

namespace hypops {
namespace simd {

// The instruction set of the sweeps over the rows (cpu/rows.h).
enum class SweepIsa : int8_t { baseline, avx2, avx512 };

// unary (expmap0, logmap0; project runs per row, cpu/row_ops.h): k[i] = coef(xx[i], c).
template <typename T> struct UnaryFwd {
  const T* xx;
  T* k;
  T c, eps;
  int64_t n;
};
// unary backward, with gx[i] = <g_i, x_i>: a[i] = coef, b[i] = 2 gx dcoef/dxx; returns sum_i gx dcoef/dc.
template <typename T> struct UnaryBwd {
  const T *xx, *gx;
  T *a, *b;
  double c, eps;
  int64_t n;
};
// binary (mobius_add, expmap, logmap): out = a x + b y from xx, yy, xy = <x,y>, dd = |x - y|^2.
template <typename T> struct BinaryFwd {
  const T *xx, *yy, *xy, *dd;
  T *a, *b;
  T c, eps;
  int64_t n;
};
// binary backward, with gx = <g,x>, gy = <g,y> and l = a gx + b gy: writes a, b and x2 = 2 dl/dxx,
// y2 = 2 dl/dyy, xyc = dl/dxy, d2 = 2 dl/ddd (cpu/rowwise.h applies them); returns sum_i dl/dc. dd is read
// and d2 written only for ops whose formula reads |x - y|^2 (RowOp::logmap; Op::kUsesDD).
template <typename T> struct BinaryBwd {
  const T *xx, *yy, *xy, *dd, *gx, *gy;
  T *a, *b, *x2, *y2, *xyc, *d2;
  double c, eps;
  int64_t n;
};
// dist: out[i] = dist_value(xx, yy, dd, c).
template <typename T> struct DistFwd {
  const T *xx, *yy, *dd;
  T* out;
  T c;
  int64_t n;
};
// dist backward, g[i] the incoming gradient: x2 = 2 g dl/dxx, y2 = 2 g dl/dyy, d2 = 2 g dl/ddd;
// returns sum_i g dl/dc.
template <typename T> struct DistBwd {
  const T *xx, *yy, *dd, *g;
  T *x2, *y2, *d2;
  double c;
  int64_t n;
};
// dist2plane: out[i] = dist2plane_value(xx, pp, aa, pa, dd, da, c, is_signed, scaled).
template <typename T> struct PlaneFwd {
  const T *xx, *pp, *aa, *pa, *dd, *da;
  T* out;
  T c;
  int64_t n;
  bool is_signed, scaled;
};
// dist2plane backward: lxx = 2 g l_xx, lpp = 2 g l_pp, laa = 2 g l_aa, lpa = g l_pa, ldd = 2 g l_dd,
// lda = g l_da (dist2plane_cpu.cpp applies them); returns sum_i g l_c.
template <typename T> struct PlaneBwd {
  const T *xx, *pp, *aa, *pa, *dd, *da, *g;
  T *lxx, *lpp, *laa, *lpa, *ldd, *lda;
  double c;
  int64_t n;
  bool is_signed, scaled;
};

// Elementwise math of the vectorised path over an array (tests compare it with libm's).
enum class LaneFn : int32_t { asinh, tanh, atanh };

// One instruction set's row kernels. The op argument picks the formula for unary/binary.
struct RowKernels {
  const char* name;
  void (*unary_fwd_f)(RowOp, const UnaryFwd<float>&);
  void (*unary_fwd_d)(RowOp, const UnaryFwd<double>&);
  double (*unary_bwd_f)(RowOp, const UnaryBwd<float>&);
  double (*unary_bwd_d)(RowOp, const UnaryBwd<double>&);
  void (*binary_fwd_f)(RowOp, const BinaryFwd<float>&);
  void (*binary_fwd_d)(RowOp, const BinaryFwd<double>&);
  double (*binary_bwd_f)(RowOp, const BinaryBwd<float>&);
  double (*binary_bwd_d)(RowOp, const BinaryBwd<double>&);
  void (*dist_fwd_f)(const DistFwd<float>&);
  void (*dist_fwd_d)(const DistFwd<double>&);
  double (*dist_bwd_f)(const DistBwd<float>&);
  double (*dist_bwd_d)(const DistBwd<double>&);
  void (*plane_fwd_f)(const PlaneFwd<float>&);
  void (*plane_fwd_d)(const PlaneFwd<double>&);
  double (*plane_bwd_f)(const PlaneBwd<float>&);
  double (*plane_bwd_d)(const PlaneBwd<double>&);
  void (*math_f)(LaneFn, const float* in, float* out, int64_t n);
  void (*math_d)(LaneFn, const double* in, double* out, int64_t n);
  // The code the callers' sweeps over the rows run in (cpu/rows.h: the loops' isa argument): the kernels'
  // own instruction set (AVX2 and AVX-512 kernels run only on a CPU that has it); baseline for "scalar".
  SweepIsa sweeps;
};

// Overloads picking the table entry for the accumulation type.
inline void run(const RowKernels& k, RowOp op, const UnaryFwd<float>& a) { k.unary_fwd_f(op, a); }
inline void run(const RowKernels& k, RowOp op, const UnaryFwd<double>& a) { k.unary_fwd_d(op, a); }
inline double run(const RowKernels& k, RowOp op, const UnaryBwd<float>& a) { return k.unary_bwd_f(op, a); }
inline double run(const RowKernels& k, RowOp op, const UnaryBwd<double>& a) { return k.unary_bwd_d(op, a); }
inline void run(const RowKernels& k, RowOp op, const BinaryFwd<float>& a) { k.binary_fwd_f(op, a); }
inline void run(const RowKernels& k, RowOp op, const BinaryFwd<double>& a) { k.binary_fwd_d(op, a); }
inline double run(const RowKernels& k, RowOp op, const BinaryBwd<float>& a) { return k.binary_bwd_f(op, a); }
inline double run(const RowKernels& k, RowOp op, const BinaryBwd<double>& a) { return k.binary_bwd_d(op, a); }
inline void run(const RowKernels& k, const DistFwd<float>& a) { k.dist_fwd_f(a); }
inline void run(const RowKernels& k, const DistFwd<double>& a) { k.dist_fwd_d(a); }
inline double run(const RowKernels& k, const DistBwd<float>& a) { return k.dist_bwd_f(a); }
inline double run(const RowKernels& k, const DistBwd<double>& a) { return k.dist_bwd_d(a); }
inline void run(const RowKernels& k, const PlaneFwd<float>& a) { k.plane_fwd_f(a); }
inline void run(const RowKernels& k, const PlaneFwd<double>& a) { k.plane_fwd_d(a); }
inline double run(const RowKernels& k, const PlaneBwd<float>& a) { return k.plane_bwd_f(a); }
inline double run(const RowKernels& k, const PlaneBwd<double>& a) { return k.plane_bwd_d(a); }

// Defined by each per-ISA translation unit (row_kernels.cpp).
namespace isa_baseline { extern const RowKernels row_kernels; }
namespace isa_avx2 { extern const RowKernels row_kernels; }
namespace isa_avx512 { extern const RowKernels row_kernels; }

// The row kernels in use, chosen with the bank kernels (bank_kernels.h: kernels_name, set_kernels). For
// "scalar" every entry is null and the caller runs its plain per-row loop (libm, Dual<double>).
const RowKernels& row_kernels();

}  // namespace simd
}  // namespace hypops
