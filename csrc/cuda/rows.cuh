// CUDA plumbing shared by the row-wise kernels: the curvature as the kernels read it, the thread
// mapping (a group of G lanes per row), group and block reductions, the launch geometry, and the
// per-block partial sums of grad_c.
//
// Host-side logic is reused, not copied: make_rows (broadcasting to [N, D] row views), proj_eps,
// reduce_to, the checks and HYPOPS_DISPATCH_FLOATS come from cpu/rows.h. Everything there is
// device-independent host code (expand/reshape/sum_to_size work on CUDA tensors); its at::parallel_for
// helpers are simply unused here.
//
// Thread mapping. A row of D coordinates is handled by a group of G lanes of one warp, G the smallest
// power of two >= D capped at 32: one warp per row when D >= 17 (lanes stride over the row, so a warp
// reads 32 consecutive coordinates per step: coalesced), 32/G rows per warp for small D (D = 2, the
// paper's latent size, puts 16 rows in a warp; consecutive rows are adjacent in memory, so the warp's
// loads stay coalesced and at most G - D lanes of a group idle). Reductions are G-wide butterflies of
// __shfl_xor_sync, so every lane of the group ends with the row's sums and computes the (cheap) scalar
// formula itself — no shared memory, no second broadcast. A row is read twice (reductions, then the
// output sweep); the second read hits L1/L2, which is what lets D be unbounded without holding the
// row in registers. Limits of this choice: one warp per row however long the row, so a few very long
// rows (D in the 10^5s, N below the number of resident warps) leave most of the GPU idle; loads are
// scalar (no 128-bit vector loads), which is the first thing to try if a bandwidth measurement on the
// H100 falls short of the 80%-of-peak target.
//
// Curvature. c is read from device memory by every thread (one cached load), never with .item(): no
// host synchronisation. So c <= 0 or NaN cannot raise on CUDA: the Python layer validates a float c and
// a CPU tensor c (hypops/_checks.py) and leaves a CUDA tensor c unchecked, as any check would sync.
// A CPU c passed directly to torch.ops.hypops.* is read on the host (read_c_cpu, which does check it).
#pragma once

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <type_traits>

#include "common/math.h"
#include "cpu/rows.h"

namespace hypops {
namespace cuda {

constexpr int kThreads = 256;  // threads per block (8 warps)
constexpr unsigned kFullMask = 0xffffffffu;

// --- curvature --------------------------------------------------------------------------------------
// c as the kernels see it: a device pointer to a float or double c (read in the kernel, so no extra
// conversion launch for the dtypes the Python layer passes), or, when c lives on the CPU, its value.
struct Curv {
  const void* ptr;
  int kind;  // 0: the value in `host`; 1: ptr is a float; 2: ptr is a double
  double host;
  __device__ __forceinline__ double load() const {
    return kind == 2 ? *static_cast<const double*>(ptr)
                     : (kind == 1 ? double(*static_cast<const float*>(ptr)) : host);
  }
};
// Owns what the Curv points to for as long as the launch needs it (a converted copy is freed into the
// caching allocator, which orders its reuse after the kernels already queued on this stream).
struct CurvArg {
  at::Tensor hold;
  Curv k;
};
inline CurvArg curv_arg(const char* op, const at::Tensor& c) {
  if (c.is_cpu()) return {at::Tensor(), Curv{nullptr, 0, read_c_cpu(op, c)}};
  if (c.scalar_type() == at::kDouble) return {c, Curv{c.data_ptr<double>(), 2, 0.0}};
  if (c.scalar_type() == at::kFloat) return {c, Curv{c.data_ptr<float>(), 1, 0.0}};
  at::Tensor cd = c.to(at::kDouble);  // half types: a queued conversion on the current stream, no sync
  return {cd, Curv{cd.data_ptr<double>(), 2, 0.0}};
}

// The CUDA kernels are registered for the CUDA key, which the dispatcher also picks when only some
// argument is on the GPU; say so by name rather than fail inside CUDAGuard.
inline void check_cuda(const char* op, const at::Tensor& x, const char* name, const at::Tensor& other,
                       const char* other_name) {
  TORCH_CHECK(x.is_cuda(), "hypops.", op, ": ", name, " must be a CUDA tensor here, got ", x.device());
  TORCH_CHECK(other.device() == x.device(), "hypops.", op, ": ", name, " is on ", x.device(), " but ", other_name,
              " is on ", other.device());
}

// --- row views ---------------------------------------------------------------------------------------
// A [N, D] view with unit column stride (make_rows guarantees it); stride 0 is a broadcast row.
template <typename scalar_t> struct RowPtr {
  const scalar_t* __restrict__ base;
  int64_t stride;
  __device__ __forceinline__ const scalar_t* operator()(int64_t i) const { return base + i * stride; }
};
template <typename scalar_t> RowPtr<scalar_t> row_ptr(const at::Tensor& m) {
  return {m.data_ptr<scalar_t>(), m.size(0) > 1 ? m.stride(0) : 0};
}

// --- reductions ------------------------------------------------------------------------------------------
// Sum over the G lanes of a group (G a power of two <= 32; groups are aligned within the warp, so the
// xor partner never leaves the group). Every lane of the warp must call it (full mask).
template <int G, typename T> __device__ __forceinline__ T group_sum(T v) {
#pragma unroll
  for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// Sum of one double per thread over the block, written to out[blockIdx.x] (the per-block partials of
// grad_c; ATen sums them afterwards — deterministic, no atomics). Every thread of the block must call it.
__device__ __forceinline__ void block_partial(double v, double* __restrict__ out) {
  __shared__ double warp_sums[kThreads / 32];
  v = group_sum<32>(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? warp_sums[lane] : 0.0;
    v = group_sum<32>(v);
    if (lane == 0) out[blockIdx.x] = v;
  }
}

// --- geometry -------------------------------------------------------------------------------------------
// Loop over the rows of this thread's group. The bound is rounded up to whole warps so that all 32
// lanes of a warp run the same iterations (their shuffles then always see the full warp); `active`
// says whether the group's row exists (the last partial warp of the grid has groups past N).
struct GroupIdx {
  int lane;          // lane within the group, 0..G-1
  int64_t first;     // first row of this group
  int64_t step;      // rows per grid sweep
  int64_t bound;     // N rounded up to whole warps
};
template <int G> __device__ __forceinline__ GroupIdx group_idx(int64_t N) {
  constexpr int kRowsPerWarp = 32 / G;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  return {int(threadIdx.x % G), tid / G, int64_t(gridDim.x) * blockDim.x / G,
          (N + kRowsPerWarp - 1) / kRowsPerWarp * kRowsPerWarp};
}

// Smallest power of two >= D, capped at 32.
inline int group_width(int64_t D) {
  int g = 1;
  while (g < D && g < 32) g *= 2;
  return g;
}

// Calls f(std::integral_constant<int, G>{}) for the group width of D.
template <typename F> void with_group_width(int64_t D, F&& f) {
  switch (group_width(D)) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    case 16: f(std::integral_constant<int, 16>{}); break;
    default: f(std::integral_constant<int, 32>{}); break;
  }
}

// Multiprocessor count of a device, queried once (cudaDeviceGetAttribute, no CUDAContext.h needed).
inline int sm_count(int device) {
  static std::array<std::atomic<int>, 64> cache{};
  if (device >= 0 && device < 64) {
    const int v = cache[device].load(std::memory_order_relaxed);
    if (v > 0) return v;
  }
  int v = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device));
  if (device >= 0 && device < 64) cache[device].store(v, std::memory_order_relaxed);
  return v;
}

// Blocks for `rows` rows with G lanes per row: one row per group until the grid fills the device
// (2048 resident threads per SM on sm_80/sm_90), then a grid-stride loop. Never 0 for rows > 0.
inline int64_t blocks_for(int64_t rows, int G, int device) {
  const int64_t rows_per_block = kThreads / G;
  const int64_t need = (rows + rows_per_block - 1) / rows_per_block;
  const int64_t cap = int64_t(sm_count(device)) * (2048 / kThreads);
  return std::max<int64_t>(1, std::min(need, cap));
}

inline cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// grad_c from the per-block partials (double), in c's dtype and on c's device. A CPU c (only from a
// direct torch.ops call; the Python layer moves c to the points' device) costs a device-to-host copy.
inline at::Tensor finish_grad_c(const at::Tensor& partials, const at::Tensor& c) {
  return partials.sum().to(c.options());
}
// One double per block, each written by its block; with no rows (no launch) a single zero.
inline at::Tensor partials_for(int64_t blocks, const at::Tensor& like) {
  const auto opts = like.options().dtype(at::kDouble);
  return blocks > 0 ? at::empty({blocks}, opts) : at::zeros({1}, opts);
}

}  // namespace cuda
}  // namespace hypops
