// CPU plumbing shared by the row-wise kernels: broadcasting inputs to [N, D] row views, the
// row-parallel loop, and the per-dtype projection eps.
#pragma once

#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include "common/checks.h"
#include "common/math.h"
#if !defined(__CUDACC__)
#include "cpu/simd/row_kernels.h"  // SweepIsa (the row loops below, hidden from nvcc like them)
#endif

#if defined(__x86_64__) && !defined(__CUDACC__)
#include <emmintrin.h>  // _mm_stream_ps / _mm_stream_pd / _mm_sfence: SSE2, in every x86-64 build
#include <immintrin.h>  // declares gcc's AVX / AVX-512 builtins (stream_vec), used only in those sweeps
#include <unistd.h>     // sysconf: the last-level cache's size
#define HYPOPS_STREAM_STORES 1
#else
#define HYPOPS_STREAM_STORES 0
#endif

namespace hypops {

// Inputs broadcast to one shape and viewed as [N, D] with unit column stride. A row stride of 0 is
// kept (a broadcast row is read, never copied); anything else that cannot be viewed is copied.
struct Rows {
  std::vector<int64_t> shape;
  int64_t N = 0;
  int64_t D = 0;
  std::vector<at::Tensor> mats;
};

inline Rows make_rows(const std::vector<at::Tensor>& ts) {
  Rows r;
  std::vector<int64_t> shape = ts[0].sizes().vec();
  for (size_t i = 1; i < ts.size(); ++i) shape = at::infer_size(shape, ts[i].sizes());
  r.shape = shape;
  r.D = shape.back();
  r.N = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) r.N *= shape[i];
  for (const auto& t : ts) {
    at::Tensor m = t.expand(shape).reshape({r.N, r.D});
    if (m.stride(1) != 1 && r.D > 1) m = m.contiguous();
    r.mats.push_back(m);
  }
  return r;
}

template <typename scalar_t> struct Row {
  const scalar_t* base;
  int64_t stride;
  const scalar_t* operator()(int64_t i) const { return base + i * stride; }
};
template <typename scalar_t> Row<scalar_t> row_of(const at::Tensor& m) {
  return {m.data_ptr<scalar_t>(), m.size(0) > 1 ? m.stride(0) : 0};
}

// Rows per task: enough work per task (~32K elements) that scheduling costs nothing.
inline int64_t row_grain(int64_t D) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(D, 1)); }

// The sweeps over the rows in AVX2+FMA or AVX-512 code. This module is compiled for the x86-64 baseline (SSE2: 4
// floats a vector, no FMA), so the sweeps of the row ops (the reductions over a row and the writing of the output
// rows) ran 4 floats at a time. Where the CPU has more (the caller passes the row kernels' RowKernels::sweeps:
// SweepIsa::avx2 for the AVX2 kernels, avx512 for the AVX-512 ones, which run only on a CPU that has those
// instructions), the loops below run the caller's function inside a function with target("avx2,fma") or the
// AVX-512 target; that function is an always_inline lambda (HYPOPS_SWEEP), so gcc compiles its body once more
// there, with 8-float vectors and FMA (16-float for the omp simd output loops under AVX-512; row_reductions keeps
// its 32-byte vectors). (A callee that is not inlined keeps its baseline code, so nothing compiled for AVX2 or
// AVX-512 is reachable without the check.) In one process against the baseline sweeps, expmap forward and
// backward: 1.1x at 4096 x 16, 1.2-1.4x at 2048 x 32 to 1024 x 128, 1.13x at 2^18 x 64. AVX-512 against AVX2
// sweeps (both with the AVX-512 row kernels, at 690c692 with a temporary switch, in one process): backward
// 1.01-1.33x in cache (8192 x 16, 4096 x 64: mobius_add 1.33x / 1.14x, dist 1.09x / 1.15x, logmap 1.09x / 1.09x,
// expmap 1.01x / 1.10x, dist2plane 1.05x / 1.04x, expmap0 1.03x / 1.04x), and 0.88-1.09x at 2^18-2^20 x 64, where
// memory bounds them; forward 0.91-1.13x, no consistent difference. 64-byte vectors in row_reductions measured
// 0.36-0.6x under AVX2 (gcc splits them through memory) and 0.87-1.08x under AVX-512, so it stays at 32 bytes.
// (The first AVX-512 trial, with the omp simd reductions that row_reductions replaced, was 0.77-0.84x of the
// baseline at D = 16.)
#if defined(__GNUC__) && defined(__x86_64__)
#define HYPOPS_AVX2_TARGET __attribute__((target("avx2,fma")))
#if defined(__clang__)  // clang takes no prefer-vector-width in target(), and would drop the whole attribute
#define HYPOPS_AVX512_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")))
#else
#define HYPOPS_AVX512_TARGET \
  __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma,prefer-vector-width=512")))
#endif
#define HYPOPS_SWEEP __attribute__((always_inline))
#else
#define HYPOPS_AVX2_TARGET
#define HYPOPS_AVX512_TARGET
#define HYPOPS_SWEEP
#endif
// The blocked loops (for_row_blocks, sum_row_blocks) call f(isa, b, e) with isa a SweepTag of the sweep's
// instruction set, a compile-time value: the streaming stores pick their vector width from it (Stores below),
// which the code cannot otherwise know (the same lambda is compiled into the loops of every target).
#if !defined(__CUDACC__)
template <simd::SweepIsa I> using SweepTag = std::integral_constant<simd::SweepIsa, I>;
#endif
// The four loops of the sweeps (rows, blocks, and their sums) once per target.
#define HYPOPS_SWEEP_LOOPS(isa, target)                                                                \
  template <typename F> target void each_row_##isa(const F& f, int64_t b, int64_t e) {                 \
    for (int64_t i = b; i < e; ++i) f(i);                                                              \
  }                                                                                                    \
  template <typename F> target void each_block_##isa(const F& f, int64_t b, int64_t e, int64_t B) {    \
    for (int64_t i = b; i < e; i += B) f(SweepTag<simd::SweepIsa::isa>{}, i, std::min(e, i + B));      \
  }                                                                                                    \
  template <typename F> target double sum_rows_##isa(const F& f, int64_t b, int64_t e) {               \
    double acc = 0;                                                                                    \
    for (int64_t i = b; i < e; ++i) acc += double(f(i));                                               \
    return acc;                                                                                        \
  }                                                                                                    \
  template <typename F> target double sum_blocks_##isa(const F& f, int64_t b, int64_t e, int64_t B) {  \
    double acc = 0;                                                                                    \
    for (int64_t i = b; i < e; i += B) acc += f(SweepTag<simd::SweepIsa::isa>{}, i, std::min(e, i + B)); \
    return acc;                                                                                        \
  }
#if !defined(__CUDACC__)  // CPU code, like the row loops below that call them
HYPOPS_SWEEP_LOOPS(baseline, )
HYPOPS_SWEEP_LOOPS(avx2, HYPOPS_AVX2_TARGET)
HYPOPS_SWEEP_LOOPS(avx512, HYPOPS_AVX512_TARGET)
#endif
#undef HYPOPS_SWEEP_LOOPS

// K sums over one row at once (the reductions of a sweep: |x|^2, <x,y>, ...): step(s, v...) adds the terms of one
// position to s[0..K) given the rows' values v there (unit column stride, as make_rows gives). It is called on
// 32-byte vectors of acc_t (gcc's vector extension: one register in the AVX2 and AVX-512 sweeps, two SSE2 ones in
// the baseline build; float16/bfloat16 rows are converted lane by lane) and then on scalars for the last D % lanes
// positions; each sum is one vector of lanes, added up once at the end. Why not `omp simd reduction`: gcc
// implements that reduction through a per-lane array on the stack, summed lane by lane in a scalar loop after the
// vector loop (perf: in expmap's backward at 1024 x 64 that epilogue cost about as much as the vector loop itself;
// in-process A/B against it: backward 1.05-1.19x, forward at D = 16 1.1-1.38x). Not in nvcc's view (cpu/rows.h is
// also included by the CUDA files, which do not use this).
#if !defined(__CUDACC__)
#if defined(__GNUC__)
// gcc warns (-Wpsabi) that 32-byte vector arguments change the ABI without AVX; these helpers are only
// called inlined (HYPOPS_SWEEP on x86-64), so no call ever crosses that ABI.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
template <typename T> struct Lanes {
  typedef T vec __attribute__((vector_size(32)));
  static constexpr int64_t kWidth = 32 / sizeof(T);
  static_assert(kWidth == 4 || kWidth == 8, "lanes of float or double");
};
template <typename T, typename S> HYPOPS_SWEEP inline typename Lanes<T>::vec load_lanes(const S* p) {
  typename Lanes<T>::vec v;
  if constexpr (std::is_same_v<T, S>) {
    std::memcpy(&v, p, sizeof(v));
  } else {
    for (int64_t l = 0; l < Lanes<T>::kWidth; ++l) v[l] = T(p[l]);
  }
  return v;
}
template <typename T> HYPOPS_SWEEP inline T sum_lanes(typename Lanes<T>::vec v) {
#if defined(__clang__) || __GNUC__ >= 12  // __builtin_shufflevector: gcc 12 and later
  if constexpr (Lanes<T>::kWidth == 8) {
    const auto h = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
    const auto q = __builtin_shufflevector(h, h, 0, 1) + __builtin_shufflevector(h, h, 2, 3);
    return q[0] + q[1];
  } else {
    const auto h = __builtin_shufflevector(v, v, 0, 1) + __builtin_shufflevector(v, v, 2, 3);
    return h[0] + h[1];
  }
#else  // the same pairs, through memory
  T l[Lanes<T>::kWidth];
  std::memcpy(l, &v, sizeof(v));
  if constexpr (Lanes<T>::kWidth == 8) return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
  else return (l[0] + l[2]) + (l[1] + l[3]);
#endif
}
#endif  // __GNUC__
template <int K, typename acc_t, typename F, typename scalar_t, typename... R>
HYPOPS_SWEEP inline std::array<acc_t, K> row_reductions(int64_t D, const F& step, const scalar_t* r0, const R*... rs) {
  static_assert((std::is_same_v<R, scalar_t> && ...), "rows of one type");
  std::array<acc_t, K> out{};
  int64_t d = 0;
#if defined(__GNUC__)
  using V = typename Lanes<acc_t>::vec;
  constexpr int64_t W = Lanes<acc_t>::kWidth;
  V s[K] = {};
  for (; d + W <= D; d += W) step(s, load_lanes<acc_t>(r0 + d), load_lanes<acc_t>(rs + d)...);
  for (int k = 0; k < K; ++k) out[k] = sum_lanes<acc_t>(s[k]);
#endif
  acc_t t[K] = {};
  for (; d < D; ++d) step(t, acc_t(r0[d]), acc_t(rs[d])...);
  for (int k = 0; k < K; ++k) out[k] += t[k];
  return out;
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#endif  // !__CUDACC__

// Software prefetch of row i of each of rows, ahead of its use: the blocked sweeps prefetch row j of the next block
// while writing row j of the current one (dist2plane's forward, which writes one value a row, during its first sweep),
// mobius_add's per-row forward one block's worth of rows ahead. A block of rows is about one 4 KiB page per input, and
// the hardware's L2 streamer does not prefetch across a page boundary, so each block started with its first lines' full
// memory latency, not overlapped with the per-row math. Spread over the output sweep: prefetching a whole block at its
// start was slower (0.8-0.9x at 2^18 x 64). It pays only past the caches, so callers prefetch when their streamed input
// rows (streamed_bytes: broadcast ones are not streamed) total kPrefetchMinBytes or more. In one process against no
// prefetch, expmap / logmap forward (two inputs): 1.14x / 1.15x at 2^18 x 64, 1.14x / 1.23x at 2^20 x 64, expmap
// 1.11-1.36x at 2^16 x 64 (32 MiB of inputs), 0.92-1.01x at 2^14-2^15 x 64 (8-16 MiB), 0.82-0.90x at 4096 x 64 (in L2);
// backward (three inputs; expmap, mobius_add) 1.03-1.13x at 2^18-2^20 x 64, 1.08x at 2^16 x 64, 0.89-1.0x at 4096-32768
// x 64; mobius_add's per-row forward 1.21x and dist's backward 1.03-1.21x at 2^18-2^20 x 64.
// The prefetches go to L2 (prefetcht1), not L1 (prefetcht0, until 1243838): on the AMD EPYC host (Zen 4, 32 KiB L1)
// perf put 30-40% of the backward's samples on prefetcht0 (likely waiting for one of L1's few miss buffers before
// it retires; after the change, 8% on prefetcht1), and the next block's first sweep finds its rows in L2. In one process, the
// hint switched between calls (15 alternating rounds, two runs, 2^20 x 64 float32, 1 thread), prefetcht1 against
// prefetcht0, medians: backward expmap 1.16-1.24x, mobius_add 1.16-1.29x, logmap 1.05-1.19x, dist 1.01-1.18x,
// dist2plane 1.04-1.14x; forward logmap 1.12-1.16x, dist2plane 1.12-1.66x, expmap 0.97-1.08x, mobius_add
// 1.02-1.06x, dist 1.0x; with the order of the two calls reversed (two more runs): backward 1.03-1.22x, forward
// 1.10-1.26x; at 2^16-2^18 x 64 0.9-1.1x, within the noise. prefetcht2 measured the same as prefetcht1,
// prefetchnta the same as prefetcht0, two or three blocks ahead the same as one. Not measured on the Intel host.
// With prefetcht1 the backward of expmap0 and logmap0 (two inputs) prefetches too (same A/B, against none, both
// orders, two runs each): 1.13-1.36x; their forward (one input) 0.97-1.06x and project's per-row backward
// (prefetching a block's worth of rows ahead) 0.74-1.25x, so those do not.

constexpr int64_t kPrefetchMinBytes = int64_t(32) << 20;
inline int64_t streamed_bytes(const std::vector<at::Tensor>& mats) {
  int64_t bytes = 0;
  for (const auto& m : mats)
    if (m.size(0) > 1 && m.stride(0) != 0) bytes += m.numel() * int64_t(m.element_size());
  return bytes;
}
#if !defined(__CUDACC__)
template <typename scalar_t, typename... R>
HYPOPS_SWEEP inline void prefetch_row(int64_t i, int64_t N, int64_t D, const Row<scalar_t>& r0, const R&... rs) {
  if (i >= N) return;  // past the last row (the last block of the tensor)
  for (const Row<scalar_t>* r : {&r0, &rs...}) {
    if (r->stride == 0) continue;  // a broadcast row: read once, already cached
    // every cache line the row touches, also when it does not start on one
    const uintptr_t first = reinterpret_cast<uintptr_t>((*r)(i)) & ~uintptr_t(63);
    const uintptr_t end = reinterpret_cast<uintptr_t>((*r)(i) + D);
    // locality 2 (prefetcht1: into L2, not L1) -- see kPrefetchMinBytes
    for (uintptr_t a = first; a < end; a += 64) __builtin_prefetch(reinterpret_cast<const void*>(a), 0, 2);
  }
}

// Non-temporal ("streaming") stores of output rows. A plain store first reads the line it writes
// (read-for-ownership), so an op whose rows do not fit in cache moves each output byte twice; a streaming
// store writes the line without reading it. They are used where the rows an op reads and writes together
// exceed the last-level cache (stream_outputs), by the blocked sweeps that gained from them (in one process
// against plain stores at 2^20 x 64 float32, 1 thread, alternating calls: forward expmap 1.18-1.26x, logmap
// 1.15-1.19x, logmap0 1.15x, expmap0 1.03x; backward dist 1.31-1.51x (one run 0.86x), expmap 1.10-1.23x (one
// run 0.92x), logmap 1.12x, expmap0 1.09x, mobius_add 1.08x, logmap0 1.06x; in blocks of four consecutive
// calls, which bill each side its own write-backs, forward+backward expmap 1.10x, mobius_add 1.14x, dist
// 1.24x, expmap forward 1.05x; all in 16-byte vectors then, wider since: Stores below). Two measured no gain
// until the stores were wide: mobius_add's per-row forward (0.89-0.99x with 16-byte vectors, 1.14-1.19x with
// 64-byte ones: cpu/rowwise.h) and dist2plane's backward (three outputs; 0.98-1.04x, then 1.26-1.38x:
// dist2plane_cpu.cpp). Below the cache's size an output may still be cached for whoever reads it next, and a
// streaming store would send it to memory.
inline int64_t last_level_cache_bytes() {
  static const int64_t bytes = [] {
    long b = -1;
#if HYPOPS_STREAM_STORES && defined(_SC_LEVEL3_CACHE_SIZE)
    b = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    return b > 0 ? int64_t(b) : int64_t(-1);  // unknown (or not x86-64): never stream
  }();
  return bytes;
}
// The threshold in bytes, -1 for never; tests lower it (hypops._C._set_stream_min_bytes) to run the
// streaming stores on small tensors.
inline int64_t& stream_min_bytes_override() {
  static int64_t bytes = -2;  // -2: the last-level cache's size
  return bytes;
}
inline int64_t stream_min_bytes() {
  if (!HYPOPS_STREAM_STORES) return -1;
  const int64_t o = stream_min_bytes_override();
  return o == -2 ? last_level_cache_bytes() : o;
}
inline bool stream_outputs(int64_t bytes) {
  const int64_t min = stream_min_bytes();
  return min >= 0 && bytes > min;
}
// The end of a task: streaming stores are weakly ordered, so each task fences them before it reports done.
inline void store_fence() {
#if HYPOPS_STREAM_STORES
  _mm_sfence();
#endif
}
#if HYPOPS_STREAM_STORES
template <typename T> constexpr bool kStreamable = std::is_same_v<T, float> || std::is_same_v<T, double>;
// One streaming store of a Bytes-wide vector (gcc's vector extension) to p, which must be aligned to Bytes.
// Wider than 16 bytes only inside the AVX2 / AVX-512 sweeps (Stores<I>): gcc checks a builtin's instruction
// set where it is expanded, i.e. in the sweep function it was inlined into, which has that target; the
// intrinsics (_mm256_stream_ps, ...) would refuse to inline into the target-less lambdas in between. clang has
// a generic builtin for every width.
template <int Bytes, typename T, typename V> HYPOPS_SWEEP inline void stream_vec(T* p, V v) {
#if defined(__clang__)
  __builtin_nontemporal_store(v, reinterpret_cast<V*>(p));
#else
  if constexpr (Bytes == 16) {
    if constexpr (std::is_same_v<T, float>) _mm_stream_ps(p, (__m128)v);
    else _mm_stream_pd(p, (__m128d)v);
  } else if constexpr (Bytes == 32) {
    if constexpr (std::is_same_v<T, float>) __builtin_ia32_movntps256(p, v);
    else __builtin_ia32_movntpd256(p, v);
  } else {
    static_assert(Bytes == 64, "16-, 32- or 64-byte vectors");
    if constexpr (std::is_same_v<T, float>) __builtin_ia32_movntps512(p, v);
    else __builtin_ia32_movntpd512(p, v);
  }
#endif
}
// o[d] = f(in[d]...) for d in [k, D), vectors of Bytes from k on while whole ones fit; returns where it stopped.
template <int Bytes, typename T, typename F, typename... In>
HYPOPS_SWEEP inline int64_t stream_vectors(T* o, int64_t k, int64_t D, const F& f, const In*... in) {
  typedef T V __attribute__((vector_size(Bytes)));
  constexpr int64_t W = Bytes / sizeof(T);
  const auto load = [](const T* p) HYPOPS_SWEEP {
    V v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  for (; k + W <= D; k += W) stream_vec<Bytes>(o + k, f(load(in + k)...));
  return k;
}
// o[d] = f(in[d]...) for d in [0, D) with streaming stores in vectors of Bytes (the sweep's width: 16 in the
// baseline code, 32 under AVX2, 64 under AVX-512), which need an address aligned to their size: the row's first
// elements until a 16-byte boundary are stored plainly, then 16-byte vectors until a Bytes boundary, and after the
// last whole Bytes vector 16-byte ones and plain stores again. f is called on vectors of 16 and Bytes bytes (gcc's
// vector extension) and on scalars of the rows' type.
template <int Bytes, typename T, typename F, typename... In>
HYPOPS_SWEEP inline void stream_row(T* o, int64_t D, const F& f, const In*... in) {
  static_assert(kStreamable<T> && (std::is_same_v<In, T> && ...), "float or double rows of one type");
  const auto aligned = [o](int64_t d, int64_t bytes) HYPOPS_SWEEP {
    return reinterpret_cast<uintptr_t>(o + d) % uintptr_t(bytes) == 0;
  };
  int64_t d = 0;
  for (; d < D && !aligned(d, 16); ++d) o[d] = f(in[d]...);
  if constexpr (Bytes > 16) {
    constexpr int64_t W = 16 / sizeof(T);
    for (; d + W <= D && !aligned(d, Bytes); d += W) stream_vectors<16>(o, d, d + W, f, in...);
    d = stream_vectors<Bytes>(o, d, D, f, in...);
  }
  d = stream_vectors<16>(o, d, D, f, in...);
  for (; d < D; ++d) o[d] = f(in[d]...);
}
#else
template <typename T> constexpr bool kStreamable = false;
// Declared only: the callers name it with a template argument under `if constexpr (kStreamable<...>)`, which
// C++17 must look up even where the branch is discarded; never defined, never called.
template <int Bytes, typename T, typename F, typename... In>
void stream_row(T* o, int64_t D, const F& f, const In*... in);
#endif
// How a sweep writes its output rows: with streaming stores where `stream` (stream_outputs), in vectors of the
// width of I, the sweep's instruction set (the blocked loops pass it as a SweepTag; stores(isa, stream) makes
// one). Helpers called where nothing streams (the per-row loops of for_rows) take the default. Until the sweeps
// knew their width here, every streaming store was a 16-byte one, also in the AVX-512 code: 4 floats of f a
// vector where the plain loops ran 16. In one process against that (2^20 x 64 float32, 1 thread, temporary
// switch, results bit-identical): AVX-512, forward expmap0 1.16-1.18x, logmap0 1.14-1.17x, expmap 1.05x,
// logmap 1.02-1.07x; backward expmap0 1.17x, logmap0 1.12-1.15x, expmap 1.08x, logmap 1.08-1.19x, mobius_add
// 1.01-1.17x, dist 1.16-1.19x; AVX2 (32 bytes) 1.05-1.19x (expmap0, expmap forward, logmap and dist backward).
template <simd::SweepIsa I = simd::SweepIsa::baseline> struct Stores {
  static constexpr int kBytes = I == simd::SweepIsa::avx512 ? 64 : I == simd::SweepIsa::avx2 ? 32 : 16;
  bool stream = false;
};
template <simd::SweepIsa I> constexpr Stores<I> stores(SweepTag<I>, bool stream) { return {stream}; }

// One task's share of the sweeps in the code of `isa` (see "The sweeps over the rows" above; f must be a
// HYPOPS_SWEEP lambda unless isa is baseline).
#define HYPOPS_BY_ISA(isa, fn, ...)                                       \
  (isa == simd::SweepIsa::avx512 ? fn##avx512(__VA_ARGS__)                \
   : isa == simd::SweepIsa::avx2 ? fn##avx2(__VA_ARGS__) : fn##baseline(__VA_ARGS__))

// f(i) for every row, the sweeps in the code of `isa`.
template <typename F> void for_rows(int64_t N, int64_t D, const F& f, simd::SweepIsa isa = simd::SweepIsa::baseline) {
  at::parallel_for(0, N, row_grain(D), [&](int64_t b, int64_t e) {
    HYPOPS_BY_ISA(isa, each_row_, f, b, e);
    store_fence();
  });
}

// Rows per block of the vectorised row kernels (cpu/rowwise.h, dist_cpu.cpp, dist2plane_cpu.cpp): sweep 1
// computes a block's reductions, one vectorised call (cpu/simd/row_kernels.h) its coefficients, sweep 2
// its outputs. ~1024 elements per input per block (4 KiB of float rows): a block's inputs and outputs
// (up to 3 inputs and 2 outputs in backward) then stay in L1 for sweep 2. Blocks of ~8192 elements
// (32 KiB per input) overflowed the 48 KiB L1 and made every op slower, the cheap ones (mobius_add
// forward) slower than the per-row path: at 2^20 x 64 float32, 16-row blocks took 0.75-1.0x the time of
// 128-row ones for expmap0, logmap0, expmap, logmap, mobius_add and dist, forward and backward (8 and 32
// rows about the same as 16; dist2plane not measured). At least 16 rows so the vectorised stage runs
// full vectors (16 floats = two AVX2 vectors), at most kMaxRowBlock so the per-row arrays live on the
// stack.
constexpr int64_t kMaxRowBlock = 256;
inline int64_t row_block(int64_t D) {
  return std::min<int64_t>(kMaxRowBlock, std::max<int64_t>(16, 1024 / std::max<int64_t>(D, 1)));
}

// f(b, e) over consecutive blocks [b, e) of at most row_block(D) rows, the tasks split as for_rows does;
// isa as for for_rows.
template <typename F>
void for_row_blocks(int64_t N, int64_t D, const F& f, simd::SweepIsa isa = simd::SweepIsa::baseline) {
  const int64_t B = row_block(D);
  at::parallel_for(0, N, std::max(row_grain(D), B), [&](int64_t b, int64_t e) {
    HYPOPS_BY_ISA(isa, each_block_, f, b, e, B);
    store_fence();
  });
}
// Sum over blocks of f(b, e) (a double: the gradient of c), accumulated in double per task.
template <typename F>
double sum_row_blocks(int64_t N, int64_t D, const F& f, simd::SweepIsa isa = simd::SweepIsa::baseline) {
  const int64_t B = row_block(D);
  return at::parallel_reduce(
      0, N, std::max(row_grain(D), B), 0.0,
      [&](int64_t b, int64_t e, double acc) {
        acc += HYPOPS_BY_ISA(isa, sum_blocks_, f, b, e, B);
        store_fence();
        return acc;
      },
      std::plus<double>());
}

// Sum over rows of f(i) (the gradient of c), accumulated in double per task.
template <typename F> double sum_rows(int64_t N, int64_t D, const F& f, simd::SweepIsa isa = simd::SweepIsa::baseline) {
  return at::parallel_reduce(
      0, N, row_grain(D), 0.0,
      [&](int64_t b, int64_t e, double acc) {
        acc += HYPOPS_BY_ISA(isa, sum_rows_, f, b, e);
        store_fence();
        return acc;
      },
      std::plus<double>());
}
#undef HYPOPS_BY_ISA

// Column sums over rows [0, N) for the per-pair backward kernels (the gyroplane bank's and the conv's inside
// path): chunks of `grain` rows in parallel, each with its own `ncols` sums cs in T; run(cs, f0, f1) adds rows
// [f0, f1) into cs and returns a double. Every `flush` rows cs moves into the chunk's double sums, so the
// kernel's loop carries no float -> double conversion and no T sum runs over more than `flush` rows.
// Returns [ncols + 1] doubles: the column sums, then the sum of run's returns.
template <typename T, typename F>
at::Tensor flushed_column_sums(int64_t N, int64_t grain, int64_t ncols, int64_t flush, const F& run) {
  const int64_t nchunk = std::max<int64_t>(1, (N + grain - 1) / grain);
  at::Tensor S = at::zeros({nchunk, ncols + 1}, at::kDouble);
  double* s0 = S.data_ptr<double>();
  at::parallel_for(0, nchunk, 1, [&](int64_t cb, int64_t ce) {
    std::vector<T> cs(ncols, T(0));
    for (int64_t ch = cb; ch < ce; ++ch) {
      double* sd = s0 + ch * (ncols + 1);
      const int64_t n1 = std::min(N, (ch + 1) * grain);
      for (int64_t f0 = ch * grain; f0 < n1; f0 += flush) {
        sd[ncols] += run(cs.data(), f0, std::min(n1, f0 + flush));
        for (int64_t j = 0; j < ncols; ++j) sd[j] += double(cs[j]), cs[j] = T(0);
      }
    }
  });
  return S.sum(0);
}
#endif  // !__CUDACC__: prefetch, streaming stores and the row-parallel loops are CPU code, hidden from nvcc

template <typename scalar_t> constexpr double proj_eps() {
  if constexpr (std::is_same_v<scalar_t, double>) return PROJ_EPS_FLOAT64;
  if constexpr (std::is_same_v<scalar_t, float>) return PROJ_EPS_FLOAT32;
  if constexpr (std::is_same_v<scalar_t, at::Half>) return PROJ_EPS_FLOAT16;
  return PROJ_EPS_BFLOAT16;
}

// Gradient of a broadcast input: reduce the [N, D] full-size gradient to the input's shape.
inline at::Tensor reduce_to(const at::Tensor& full, const std::vector<int64_t>& shape, const at::Tensor& like) {
  return full.view(shape).sum_to_size(like.sizes()).contiguous();
}

inline at::Tensor grad_c_tensor(double g, const at::Tensor& c) { return at::full({}, g, c.options()); }

#define HYPOPS_DISPATCH_FLOATS(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

}  // namespace hypops
