// Gyroplane 3D convolution (SPEC §2), forward and backward, for any device that has the gyroplane bank:
//
//   y[n, o, r] = sum_k dist2plane(x[n, :, r*s + k*dilation - padding], p[o, :, k], a[o, :, k])
//
// (signed, unscaled; the bias is added by the caller). For one kernel offset k the inner sum over the
// window is a gyroplane bank (csrc/common/gyroplane_bank.h and the bank kernels): the points are the
// input voxels that offset k reads, the planes are p[:, :, k], a[:, :, k]. So the convolution is a loop
// over (tiles of output voxels) x (offsets) of bank calls -- each one two GEMMs over D plus the fused
// per-(voxel, channel) scalar map of dist2plane_value -- accumulated into the tile's output rows.
//
// Memory: the input is copied once to channels-last with the origin padding (rows of D contiguous, what
// the GEMMs read). A tile of output rows is accumulated channels-last in its own buffer and copied into the
// channels-first output (backward: the tile's rows of the incoming gradient are copied out of it), so no
// output-sized temporary exists. Tiles are boxes of the output grid (whole batch items, or whole x-planes,
// y-rows or a z-range of one item: see output_tiles), so that a tile is a strided view of the
// channels-first tensors and the inputs that one offset reads for it a strided view of the padded input.
// Everything else lives for one (tile, offset) step and is bounded by tile_elems() entries per
// [rows, C_out] temporary, so the peak is O(input + output), never the unfolded k^3 x C_out x D window of
// the reference, and nothing per (voxel, offset) is kept for backward (backward recomputes the GEMMs of each
// step).
//
// Backward runs the same loop calling gyroplane_bank_backward: the input gradient of a step is added back
// onto the voxels it read through the same strided view (within one offset distinct output voxels read
// distinct input voxels, so no two rows collide), the plane gradients go to offset k, grad_c is summed.
//
// Tied weights (p, a [C_out, D], one plane for the whole window; the paper's eq. 7): the bank is evaluated
// once per padded input voxel, in chunks (whole batch items, or x-planes of one item), and each chunk's
// values are added into the outputs whose windows read them (the k^3 box sum, as strided views) -- k^3
// times less scalar work than repeating the plane per offset. Backward gathers each chunk voxel's output
// gradients over the same views and runs the bank backward once per voxel.
//
// The bank is called through the dispatcher, so this one driver serves the CPU and the CUDA kernels. What a
// tile does is a Steps object (below): by default these bank calls; the CPU's inside path
// (csrc/cpu/gyroplane_conv3d_cpu.cpp) replaces them, where every point and plane of a step is well inside
// the ball, by one GEMM per offset against a combined normal W' and a cheaper per-pair map.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>

#include <array>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "common/checks.h"

namespace hypops {
namespace conv3d {

// Entries of one [rows, C_out] temporary per step. CUDA: 2^16, so that a GEMM call and a kernel launch
// are amortised. CPU: a tenth of the op's input + output entries, clamped to [2^14, 2^16]: a backward step
// holds about five such arrays at once (bank steps: the gradient tile, the two GEMM outputs, the two
// per-pair partials; the CPU's inside path: three of up to 1.5x the tile's rows, plus the bank's where
// an offset falls back), which then stay below about half the input + output, so the op's peak stays within
// 2x (input + output) (SPEC §7) even where the output is as small as the paper decoder's (1.2 MiB; a
// fixed 2^16 made ~1.5 MiB of temporaries there; measured peaks: README). Smaller tiles cost time: each
// bank call carries ~20-40 us of dispatch and allocation (1 thread, paper decoder, tiles of 2^14 vs 2^16
// entries: fwd+bwd 5.5 vs 4.2 ms).
inline int64_t tile_elems(const at::Tensor& x, int64_t in_out_elems) {
  if (x.is_cuda()) return int64_t(1) << 16;
  return std::min(std::max(in_out_elems / 10, int64_t(1) << 14), int64_t(1) << 16);
}

using Triple = std::array<int64_t, 3>;

inline Triple triple(c10::IntArrayRef v, const char* name) {
  TORCH_CHECK(v.size() == 3, "hypops.gyroplane_conv3d: ", name, " must have 3 entries, got ", v.size());
  return {v[0], v[1], v[2]};
}

struct Geometry {
  int64_t B, D, C, K;           // batch, ball dimension, output channels, kernel offsets
  Triple in, padded, out, ks, stride, pad, dil;
  bool tied;
  int64_t n_vox() const { return out[0] * out[1] * out[2]; }  // output voxels per batch item
  int64_t n_out() const { return B * n_vox(); }
  int64_t n_pad() const { return B * padded[0] * padded[1] * padded[2]; }
};

inline Geometry geometry(const char* op, const at::Tensor& x, const at::Tensor& p, const at::Tensor& a,
                         const at::Tensor& c, c10::IntArrayRef stride, c10::IntArrayRef padding,
                         c10::IntArrayRef dilation, c10::IntArrayRef kernel_size) {
  for (const auto& [t, name] : std::vector<Named>{{&x, "x"}, {&p, "p"}, {&a, "a"}}) {
    TORCH_CHECK(t->defined() && is_float_dtype(t->scalar_type()), "hypops.", op, ": ", name,
                " must be a floating-point tensor (float16, bfloat16, float32 or float64)");
    TORCH_CHECK(t->scalar_type() == x.scalar_type(), "hypops.", op, ": x is ", x.scalar_type(), " but ", name,
                " is ", t->scalar_type());
    TORCH_CHECK(t->device() == x.device(), "hypops.", op, ": x is on ", x.device(), " but ", name, " is on ",
                t->device());
  }
  TORCH_CHECK(x.dim() == 5, "hypops.", op, ": x must be [B, D, X, Y, Z], got ", x.sizes());
  TORCH_CHECK(p.sizes() == a.sizes(), "hypops.", op, ": p and a must have one shape, got ", p.sizes(), " and ",
              a.sizes());
  TORCH_CHECK(p.dim() == 2 || p.dim() == 5, "hypops.", op, ": p must be [C_out, D, kx, ky, kz] or [C_out, D], got ",
              p.sizes());
  TORCH_CHECK(p.size(1) == x.size(1), "hypops.", op, ": x has D=", x.size(1), " but p has D=", p.size(1));
  check_c(op, c, x);
  Geometry g;
  g.tied = p.dim() == 2;
  g.B = x.size(0);
  g.D = x.size(1);
  g.C = p.size(0);
  g.ks = triple(kernel_size, "kernel_size");
  g.stride = triple(stride, "stride");
  g.pad = triple(padding, "padding");
  g.dil = triple(dilation, "dilation");
  g.K = g.ks[0] * g.ks[1] * g.ks[2];
  for (int i = 0; i < 3; ++i) {
    TORCH_CHECK(g.ks[i] >= 1 && g.stride[i] >= 1 && g.dil[i] >= 1 && g.pad[i] >= 0, "hypops.", op,
                ": kernel_size, stride and dilation must be >= 1 and padding >= 0");
    if (!g.tied)
      TORCH_CHECK(p.size(2 + i) == g.ks[i], "hypops.", op, ": kernel_size ", kernel_size, " disagrees with p's ",
                  p.sizes().slice(2));
    g.in[i] = x.size(2 + i);
    g.padded[i] = g.in[i] + 2 * g.pad[i];
    const int64_t span = g.dil[i] * (g.ks[i] - 1) + 1;
    TORCH_CHECK(g.padded[i] >= span, "hypops.", op, ": the padded input (", g.padded[i], " voxels in dim ", i,
                ") is smaller than the dilated kernel (", span, ")");
    g.out[i] = (g.padded[i] - span) / g.stride[i] + 1;
  }
  return g;
}

inline at::ScalarType acc_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// x [B, D, X, Y, Z] -> [B * Xp * Yp * Zp, D]: channels-last rows, padded with the origin (zeros).
inline at::Tensor padded_rows(const at::Tensor& x, const Geometry& g) {
  const at::Tensor xl = x.permute({0, 2, 3, 4, 1}).to(acc_type(x));
  return at::constant_pad_nd(xl, {0, 0, g.pad[2], g.pad[2], g.pad[1], g.pad[1], g.pad[0], g.pad[0]}, 0)
      .contiguous()
      .view({g.n_pad(), g.D});
}

// Kernel offset k as (kx, ky, kz): offsets are numbered kz fastest, as p's [C_out, D, kx, ky, kz] (planes()).
inline Triple kernel_offset(const Geometry& g, int64_t k) {
  return {k / (g.ks[2] * g.ks[1]), (k / g.ks[2]) % g.ks[1], k % g.ks[2]};
}

// Tied weights are evaluated in chunks of the padded input: several whole batch items [b0, b1), or padded
// x-planes [xp0, xp1) of one item (b1 = b0 + 1), as many as fit in T rows (at least one plane). Either way
// its rows are contiguous in the padded input, and the chunk's [rows, C] values (forward) or gradients
// (backward) are the only temporaries -- never a [padded input, C] array. (Chunks of planes alone would
// make small batch items cost one bank call and k^3 box-sum adds each.)
struct Chunk {
  int64_t b0, b1, xp0, xp1;
};
inline std::vector<Chunk> padded_chunks(const Geometry& g, int64_t T) {
  const int64_t plane = g.padded[1] * g.padded[2], item = g.padded[0] * plane;
  std::vector<Chunk> ch;
  if (item <= T) {
    const int64_t per = T / item;
    for (int64_t b = 0; b < g.B; b += per) ch.push_back({b, std::min(g.B, b + per), 0, g.padded[0]});
    return ch;
  }
  const int64_t nxp = std::max<int64_t>(1, T / plane);
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t x0 = 0; x0 < g.padded[0]; x0 += nxp) ch.push_back({b, b + 1, x0, std::min(g.padded[0], x0 + nxp)});
  return ch;
}
// The chunk's rows [r0, r1) of the padded input.
inline std::pair<int64_t, int64_t> chunk_rows(const Geometry& g, const Chunk& c) {
  const int64_t plane = g.padded[1] * g.padded[2];
  return {(c.b0 * g.padded[0] + c.xp0) * plane, ((c.b1 - 1) * g.padded[0] + c.xp1) * plane};
}
// A chunk's [rows, F] tensor as [nb, F, nxp, Yp, Zp] (rows must be [F, rows] in memory: see chunk_views).
inline at::Tensor chunk5(const at::Tensor& f_rows, const Geometry& g, const Chunk& c) {
  return f_rows.view({f_rows.size(0), c.b1 - c.b0, c.xp1 - c.xp0, g.padded[1], g.padded[2]}).permute({1, 0, 2, 3, 4});
}

// For kernel offset k, the part of a chunk [nb, F, nxp, Yp, Zp] that offset k reads, and the outputs
// [nb, F, n, OY, OZ] of the chunk's items ([nb, F, OX, OY, OZ]) that read it: the outputs ox with
// xp0 <= ox * stride + kx * dilation < xp1 (none: returns false). Channels-first on both sides, so that
// the box sums run along contiguous z (channels-last chunks against the channels-first output made those
// adds stride through memory by C: 3x slower for the whole tied forward at C = 32).
inline bool chunk_views(const Geometry& g, int64_t k, const Chunk& c, const at::Tensor& chunk,
                        const at::Tensor& out, at::Tensor& chunk_part, at::Tensor& out_part) {
  const Triple kk = kernel_offset(g, k);
  const int64_t s = g.stride[0], off = kk[0] * g.dil[0];
  if (c.xp1 - 1 - off < 0) return false;
  const int64_t ox0 = c.xp0 - off <= 0 ? 0 : (c.xp0 - off + s - 1) / s;
  const int64_t ox1 = std::min(g.out[0], (c.xp1 - 1 - off) / s + 1);
  if (ox1 <= ox0) return false;
  const int64_t src0 = ox0 * s + off - c.xp0;
  chunk_part = chunk.slice(2, src0, src0 + s * (ox1 - ox0 - 1) + 1, s);
  for (int i = 1; i < 3; ++i) {
    const int64_t start = kk[i] * g.dil[i];
    chunk_part = chunk_part.slice(2 + i, start, start + g.stride[i] * (g.out[i] - 1) + 1, g.stride[i]);
  }
  out_part = out.slice(2, ox0, ox1);
  return true;
}

// Per-offset planes [K, C, D] (contiguous rows for the bank); tied planes stay [C, D].
inline at::Tensor planes(const at::Tensor& p, const Geometry& g, at::ScalarType acc) {
  if (g.tied) return p.to(acc).contiguous();
  return p.to(acc).permute({2, 3, 4, 0, 1}).reshape({g.K, g.C, g.D}).contiguous();
}

inline int64_t tile_rows(const Geometry& g, const at::Tensor& x) {
  const int64_t in_out = g.B * g.D * g.in[0] * g.in[1] * g.in[2] + g.n_out() * g.C;
  return std::max<int64_t>(1, tile_elems(x, in_out) / std::max<int64_t>(g.C, 1));
}

// A tile of output voxels: the box [b0, b1) x lo[0]..hi[0] x lo[1]..hi[1] x lo[2]..hi[2] of the
// [B, OX, OY, OZ] output grid, at most T voxels, made of the largest unit that fits: whole batch items,
// else whole x-planes of one item, else whole y-rows of one x-plane, else a z-range of one row. As a box
// it is a strided view of the channels-first output and gradient (output_box), and the inputs that one
// kernel offset reads for it are a strided view of the padded input (input_box): the gathers, the
// gradient scatter-adds and the output copies run on views. (Tiles as flat voxel ranges needed an index
// per row; index_add_ sorts its indices: 80 us against 15 us for the strided add at 2048 rows x 32, ~5%
// of a D = 32 forward+backward.)
struct Tile {
  int64_t b0, b1;
  Triple lo, hi;
  int64_t rows() const { return (b1 - b0) * (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]); }
  std::vector<int64_t> box(int64_t F) const {  // [nb, nx, ny, nz, F]: the tile's rows as a box
    return {b1 - b0, hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], F};
  }
};
inline std::vector<Tile> output_tiles(const Geometry& g, int64_t T) {
  const int64_t OX = g.out[0], OY = g.out[1], OZ = g.out[2], plane = OY * OZ, V = OX * plane;
  std::vector<Tile> t;
  if (V <= T) {
    const int64_t per = T / std::max<int64_t>(V, 1);
    for (int64_t b = 0; b < g.B; b += per) t.push_back({b, std::min(g.B, b + per), {0, 0, 0}, {OX, OY, OZ}});
  } else if (plane <= T) {
    const int64_t n = T / plane;
    for (int64_t b = 0; b < g.B; ++b)
      for (int64_t x = 0; x < OX; x += n) t.push_back({b, b + 1, {x, 0, 0}, {std::min(OX, x + n), OY, OZ}});
  } else if (OZ <= T) {
    const int64_t n = T / OZ;
    for (int64_t b = 0; b < g.B; ++b)
      for (int64_t x = 0; x < OX; ++x)
        for (int64_t y = 0; y < OY; y += n) t.push_back({b, b + 1, {x, y, 0}, {x + 1, std::min(OY, y + n), OZ}});
  } else {
    for (int64_t b = 0; b < g.B; ++b)
      for (int64_t x = 0; x < OX; ++x)
        for (int64_t y = 0; y < OY; ++y)
          for (int64_t z = 0; z < OZ; z += T) t.push_back({b, b + 1, {x, y, z}, {x + 1, y + 1, std::min(OZ, z + T)}});
  }
  return t;
}
// The tile's part of a channels-first [B, F, OX, OY, OZ] tensor, as a [nb, nx, ny, nz, F] view (write it
// with copy_, read it with reshape).
inline at::Tensor output_box(const at::Tensor& bfxyz, const Tile& t) {
  return bfxyz.slice(0, t.b0, t.b1)
      .slice(2, t.lo[0], t.hi[0])
      .slice(3, t.lo[1], t.hi[1])
      .slice(4, t.lo[2], t.hi[2])
      .permute({0, 2, 3, 4, 1});
}
// The inputs that kernel offset k reads for the tile's outputs: a [nb, nx, ny, nz, D] view of the padded
// rows seen as [B, Xp, Yp, Zp, D] (output o reads padded voxel o * stride + k * dilation).
inline at::Tensor input_box(const at::Tensor& rows5, const Geometry& g, const Tile& t, int64_t k) {
  const Triple kk = kernel_offset(g, k);
  at::Tensor v = rows5.slice(0, t.b0, t.b1);
  for (int i = 0; i < 3; ++i) {
    const int64_t start = t.lo[i] * g.stride[i] + kk[i] * g.dil[i];
    v = v.slice(1 + i, start, start + (t.hi[i] - t.lo[i] - 1) * g.stride[i] + 1, g.stride[i]);
  }
  return v;
}
inline at::Tensor rows5(const at::Tensor& rows, const Geometry& g) {
  return rows.view({g.B, g.padded[0], g.padded[1], g.padded[2], g.D});
}

inline at::Tensor bank(const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("hypops::gyroplane_bank", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         bool, bool)>();
  return op.call(x, p, a, c, /*signed=*/true, /*scaled=*/false);
}

inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> bank_backward(const at::Tensor& grad,
                                                                               const at::Tensor& x,
                                                                               const at::Tensor& p,
                                                                               const at::Tensor& a,
                                                                               const at::Tensor& c) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("hypops::gyroplane_bank_backward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                           const at::Tensor&, bool, bool)>();
  return op.call(grad, x, p, a, c, /*signed=*/true, /*scaled=*/false);
}

// The gradients the backward accumulates: grows [n_pad, D] (the padded input's, gin5 its [B, Xp, Yp, Zp, D]
// view), gP, gA [K, C, D] and gc (double), in the accumulation type.
struct Grads {
  at::Tensor grows, gin5, gP, gA, gc;
};

// How a tile of the per-offset loops below runs. This default: offset by offset, a gyroplane bank call
// through the dispatcher (the CPU and CUDA kernels) on the inputs the offset reads, gathered. The CPU
// derives its inside path from it (csrc/cpu/gyroplane_conv3d_cpu.cpp), which falls back to these for what
// its gate refuses. rows: the padded input rows [n_pad, D]; P, A: the planes [K, C, D] and c, in the
// accumulation type.
struct Steps {
  const Geometry g;
  const at::Tensor rows, in5, P, A, c;
  Steps(const Geometry& g_, at::Tensor rows_, at::Tensor P_, at::Tensor A_, at::Tensor c_)
      : g(g_), rows(std::move(rows_)), in5(rows5(rows, g_)), P(std::move(P_)), A(std::move(A_)), c(std::move(c_)) {}
  virtual ~Steps() = default;
  // The inputs offset k reads for tile t, gathered [n, D].
  at::Tensor inputs(const Tile& t, int64_t k) const { return input_box(in5, g, t, k).reshape({t.rows(), g.D}); }
  // Offset k's values for tile t's outputs [n, C], channels-last.
  at::Tensor bank_fwd(const Tile& t, int64_t k) const { return bank(inputs(t, k), P[k], A[k], c); }
  // Offset k's share of the backward for tile t; gt [n, C]: the tile's rows of the incoming gradient.
  void bank_bwd(const at::Tensor& gt, const Tile& t, int64_t k, Grads& gr) const {
    auto [gx, gp, ga, gck] = bank_backward(gt, inputs(t, k), P[k], A[k], c);
    input_box(gr.gin5, g, t, k).add_(gx.reshape(t.box(g.D)));
    gr.gP[k].add_(gp);
    gr.gA[k].add_(ga);
    gr.gc.add_(gck);
  }
  // Tile t's output before the bias, as a [nb, nx, ny, nz, C] box (a view is fine).
  virtual at::Tensor fwd(const Tile& t) {
    at::Tensor o = bank_fwd(t, 0);
    for (int64_t k = 1; k < g.K; ++k) o.add_(bank_fwd(t, k));
    return o.view(t.box(g.C));
  }
  // Tile t's share of the backward; gbox: its [nb, nx, ny, nz, C] box of the incoming gradient (a view of
  // the channels-first grad).
  virtual void bwd(const at::Tensor& gbox, const Tile& t, Grads& gr) {
    const at::Tensor gt = gbox.to(rows.scalar_type()).reshape({t.rows(), g.C});  // one small copy per tile
    for (int64_t k = 0; k < g.K; ++k) bank_bwd(gt, t, k, gr);
  }
  // After the last tile of the backward: whatever the tiles kept, added into gr.
  virtual void finish(Grads& gr) {}
};
// Makes the steps of one call.
using MakeSteps = std::unique_ptr<Steps> (*)(const Geometry& g, const at::Tensor& rows, const at::Tensor& P,
                                             const at::Tensor& A, const at::Tensor& c);
inline std::unique_ptr<Steps> bank_steps(const Geometry& g, const at::Tensor& rows, const at::Tensor& P,
                                         const at::Tensor& A, const at::Tensor& c) {
  return std::make_unique<Steps>(g, rows, P, A, c);
}

inline at::Tensor forward_with(MakeSteps make_steps, const at::Tensor& x, const at::Tensor& p, const at::Tensor& a,
                               const at::Tensor& c, const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                               c10::IntArrayRef padding, c10::IntArrayRef dilation, c10::IntArrayRef kernel_size) {
  const Geometry g = geometry("gyroplane_conv3d", x, p, a, c, stride, padding, dilation, kernel_size);
  const bool has_bias = bias.has_value() && bias->defined();
  if (has_bias) {  // checked before any work is done
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == g.C, "hypops.gyroplane_conv3d: bias must be [C_out] = [", g.C,
                "], got ", bias->sizes());
    TORCH_CHECK(bias->device() == x.device(), "hypops.gyroplane_conv3d: bias is on ", bias->device(),
                " but x is on ", x.device());
  }
  const auto acc = acc_type(x);
  const at::Tensor rows = padded_rows(x, g), P = planes(p, g, acc), A = planes(a, g, acc);
  const at::Tensor cc = c.to(acc);
  const c10::optional<at::Tensor> bias_acc =
      has_bias ? c10::optional<at::Tensor>(bias->to(acc).view({1, g.C})) : c10::nullopt;
  if (!g.tied) {
    at::Tensor out = at::empty({g.B, g.C, g.out[0], g.out[1], g.out[2]}, x.options());
    const std::unique_ptr<Steps> steps = make_steps(g, rows, P, A, cc);
    for (const Tile& t : output_tiles(g, tile_rows(g, x))) {
      at::Tensor o = steps->fwd(t);
      if (bias_acc) o.add_(*bias_acc);
      output_box(out, t).copy_(o);
    }
    return out;
  }
  // Tied: every padded voxel of a chunk against the C planes once, then its share of the k^3 box sums,
  // added into the (channels-first) output of the outputs that read it. In the accumulation type (a copy
  // at the end for half types only).
  at::Tensor out = at::zeros({g.B, g.C, g.out[0], g.out[1], g.out[2]}, rows.options());
  at::Tensor chunk_part, out_part;
  for (const Chunk& ch : padded_chunks(g, tile_rows(g, x))) {
    const auto [r0, r1] = chunk_rows(g, ch);
    // [C, rows]: the chunk-sized transpose, see chunk_views
    const at::Tensor vox = chunk5(bank(rows.slice(0, r0, r1), P, A, cc).t().contiguous(), g, ch);
    const at::Tensor out_b = out.slice(0, ch.b0, ch.b1);
    for (int64_t k = 0; k < g.K; ++k)
      if (chunk_views(g, k, ch, vox, out_b, chunk_part, out_part)) out_part.add_(chunk_part);
  }
  if (bias_acc) out.add_(bias_acc->view({1, g.C, 1, 1, 1}));
  return out.to(x.scalar_type());
}

// Gradients for x, p, a and c (the bias gradient, a sum of grad, is left to the caller).
inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward_with(
    MakeSteps make_steps, const at::Tensor& grad, const at::Tensor& x, const at::Tensor& p, const at::Tensor& a,
    const at::Tensor& c, c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
    c10::IntArrayRef kernel_size) {
  const Geometry g = geometry("gyroplane_conv3d_backward", x, p, a, c, stride, padding, dilation, kernel_size);
  TORCH_CHECK(grad.dim() == 5 && grad.size(0) == g.B && grad.size(1) == g.C && grad.size(2) == g.out[0] &&
                  grad.size(3) == g.out[1] && grad.size(4) == g.out[2],
              "hypops.gyroplane_conv3d_backward: grad must be [", g.B, ", ", g.C, ", ", g.out[0], ", ", g.out[1],
              ", ", g.out[2], "], got ", grad.sizes());
  const auto acc = acc_type(x);
  at::Tensor rows = padded_rows(x, g);
  const at::Tensor P = planes(p, g, acc), A = planes(a, g, acc);
  const at::Tensor cc = c.to(acc);
  at::Tensor grows = at::zeros_like(rows), gP = at::zeros_like(P), gA = at::zeros_like(A);
  at::Tensor gc = at::zeros({}, c.options().dtype(at::kDouble));
  const int64_t T = tile_rows(g, x);
  if (g.tied) {
    // Per chunk of the padded input: the sum of the output gradients of every window that reads each voxel
    // (the transpose of the forward's box sums), then one bank backward for the chunk's voxels.
    const at::Tensor grad_acc = grad.to(acc);
    at::Tensor chunk_part, out_part;
    for (const Chunk& ch : padded_chunks(g, T)) {
      const auto [r0, r1] = chunk_rows(g, ch);
      at::Tensor gvox = at::zeros({g.C, r1 - r0}, rows.options());
      const at::Tensor gvox5 = chunk5(gvox, g, ch), grad_b = grad_acc.slice(0, ch.b0, ch.b1);
      for (int64_t k = 0; k < g.K; ++k)
        if (chunk_views(g, k, ch, gvox5, grad_b, chunk_part, out_part)) chunk_part.add_(out_part);
      auto [gx, gp, ga, gck] = bank_backward(gvox.t().contiguous(), rows.slice(0, r0, r1), P, A, cc);
      grows.slice(0, r0, r1).copy_(gx);
      gP.add_(gp);
      gA.add_(ga);
      gc.add_(gck);
    }
  } else {
    Grads gr{grows, rows5(grows, g), gP, gA, gc};
    const std::unique_ptr<Steps> steps = make_steps(g, rows, P, A, cc);
    for (const Tile& t : output_tiles(g, T)) steps->bwd(output_box(grad, t), t, gr);
    steps->finish(gr);
  }
  rows = at::Tensor();  // freed before the channels-first copy of grad_x below
  // Drop the padding (the origin is a constant) and return to channels-first.
  at::Tensor gx = grows.view({g.B, g.padded[0], g.padded[1], g.padded[2], g.D});
  for (int i = 0; i < 3; ++i) gx = gx.slice(1 + i, g.pad[i], g.pad[i] + g.in[i]);
  gx = gx.permute({0, 4, 1, 2, 3}).to(x.scalar_type()).contiguous();
  auto restore = [&](const at::Tensor& t) {
    if (g.tied) return t.to(p.scalar_type()).contiguous();
    return t.view({g.ks[0], g.ks[1], g.ks[2], g.C, g.D}).permute({3, 4, 0, 1, 2}).to(p.scalar_type()).contiguous();
  };
  return {gx, restore(gP), restore(gA), gc.to(c.scalar_type())};
}

// The op's kernels with the bank steps (what CUDA registers).
inline at::Tensor forward(const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
                          const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride, c10::IntArrayRef padding,
                          c10::IntArrayRef dilation, c10::IntArrayRef kernel_size) {
  return forward_with(&bank_steps, x, p, a, c, bias, stride, padding, dilation, kernel_size);
}
inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
    c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation, c10::IntArrayRef kernel_size) {
  return backward_with(&bank_steps, grad, x, p, a, c, stride, padding, dilation, kernel_size);
}

}  // namespace conv3d
}  // namespace hypops
