// The row ops whose output is a combination of the input rows, each as a thin adapter from the
// reductions a row kernel computes to its formula in common/math.h. Shared by the ATen row kernels
// (cpu/rowwise.h, on acc_t and Dual<double>) and the per-ISA vectorised kernels (cpu/simd/row_kernels.cpp,
// on Lane<T> and Dual<Lane<double>>), so both evaluate the same formula.
//
// Plain C++ without torch headers (the per-ISA TUs include it). The structs sit in an anonymous namespace
// on purpose: each TU gets its own copy, so the -mavx2 copy of an instantiation can never be merged by the
// linker with the baseline one (see cpu/simd/lane.h).
#pragma once

#include <cstdint>

#include "common/math.h"

namespace hypops {

// Which op a vectorised row kernel evaluates (the per-ISA TUs switch on it once per block). project is not
// among them: it runs the per-row path only (ProjectOp::kBlocked).
enum class RowOp : int32_t { expmap0, logmap0, mobius_add, expmap, logmap };

namespace {

// unary: out = coef(|x|^2, c) x.   static S coef(S xx, S c, T eps); kBlocked says whether the vectorised
// kernels evaluate coef over blocks of rows (cpu/rowwise.h), or every path evaluates it row by row.
//
// project's coef (a sqrt, a compare, a divide) costs less than the blocking does: the vectorised block path
// was 10-30% slower than the per-row one for any block size from 4 to 128 rows (2^20 x 64 float32, forward
// and backward), so project keeps the per-row loop.
struct ProjectOp {
  static constexpr const char* arg = "x";
  static constexpr bool kBlocked = false;
  template <typename S, typename T> static S coef(S xx, S c, T eps) { return project_coef(xx, c, eps); }
};
struct Expmap0Op {
  static constexpr const char* arg = "u";
  static constexpr bool kBlocked = true;
  static constexpr RowOp kOp = RowOp::expmap0;
  template <typename S, typename T> static S coef(S uu, S c, T eps) { return expmap0_coef(uu, c, eps); }
};
struct Logmap0Op {
  static constexpr const char* arg = "y";
  static constexpr bool kBlocked = true;
  static constexpr RowOp kOp = RowOp::logmap0;
  template <typename S, typename T> static S coef(S yy, S c, T) { return logmap0_coef(yy, c); }
};

// binary: out = A x + B y.   static Coef2<S> coef(S xx, S yy, S xy, S dd, S c, T eps); kUsesDD says
// whether the formula reads |x - y|^2 (the forward skips that reduction otherwise); kBlockedForward whether
// the forward evaluates coef over blocks of rows in the vectorised kernels at every size (else only for
// tensors that fit in cache: cpu/rowwise.h, kBlockedForwardMaxBytes; the backward always does).
//
// mobius_add's forward coef is a few multiply-adds and one divide, no transcendental: the blocked forward
// was 0.85x the per-row one on large tensors (2^20 x 64 float32, 1 thread, 7 rounds, git 13287a0; 0.92x at
// 2^18 x 64), but 1.14-1.27x faster when the rows are in cache (4096 x 16, 2048 x 32, 1024 x 64; in-process
// A/B, 5 rounds), so it takes the blocked path below kBlockedForwardMaxBytes (cpu/rowwise.h) only. With
// both paths prefetching (measured again), blocked was still 0.79-0.92x per-row at 2^16-2^20 x 64 and 2^18 x 16
// (in-process A/B, 15 rounds). Its backward, on dual numbers, always gains from blocking. Both paths stream their
// output rows past the last-level cache (cpu/rowwise.h).
struct MobiusAddOp {
  static constexpr const char* arg0 = "x";
  static constexpr const char* arg1 = "y";
  static constexpr RowOp kOp = RowOp::mobius_add;
  static constexpr bool kUsesDD = false;
  static constexpr bool kBlockedForward = false;
  template <typename S, typename T> static Coef2<S> coef(S xx, S yy, S xy, S, S c, T eps) {
    return mobius_add_coef(xx, yy, xy, c, eps);
  }
};
struct ExpmapOp {
  static constexpr const char* arg0 = "x";
  static constexpr const char* arg1 = "u";
  static constexpr RowOp kOp = RowOp::expmap;
  static constexpr bool kUsesDD = false;
  static constexpr bool kBlockedForward = true;
  template <typename S, typename T> static Coef2<S> coef(S xx, S yy, S xy, S, S c, T eps) {
    return expmap_coef(xx, yy, xy, c, eps);
  }
};
struct LogmapOp {
  static constexpr const char* arg0 = "x";
  static constexpr const char* arg1 = "y";
  static constexpr RowOp kOp = RowOp::logmap;
  static constexpr bool kUsesDD = true;
  static constexpr bool kBlockedForward = true;
  template <typename S, typename T> static Coef2<S> coef(S xx, S yy, S xy, S dd, S c, T) {
    return logmap_coef(xx, yy, xy, dd, c);
  }
};

}  // namespace
}  // namespace hypops
