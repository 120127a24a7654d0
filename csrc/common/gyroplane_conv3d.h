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
// the GEMMs read); the output is accumulated channels-last and transposed once at the end. Everything else
// lives for one (tile, offset) step and is bounded by TILE_ELEMS entries per [rows, C_out] temporary, so
// the peak is O(input + output), never the unfolded k^3 x C_out x D window of the reference, and nothing
// per offset is kept for backward (backward recomputes the two GEMMs of each step).
//
// Backward runs the same loop calling gyroplane_bank_backward: the input gradient of a step is scattered
// back to the voxels it read (index_add_: within one offset distinct output voxels read distinct input
// voxels, so no two rows collide), the plane gradients go to offset k, grad_c is summed.
//
// Tied weights (p, a [C_out, D], one plane for the whole window; the paper's eq. 7): the bank is evaluated
// once per padded input voxel, then the window sum is a k^3 box filter over strided views -- k^3 times
// less scalar work than repeating the plane per offset. Backward spreads the output gradient back over the
// box and runs the bank backward once per voxel.
//
// The bank is called through the dispatcher, so this one driver serves the CPU and the CUDA kernels.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>

#include <array>
#include <tuple>
#include <vector>

#include "common/checks.h"

namespace hypops {
namespace conv3d {

// Entries of one [rows, C_out] temporary per step: large enough that a GEMM call and a kernel launch
// are amortised, small enough (256 KiB in float) to stay in cache between the bank's passes.
constexpr int64_t TILE_ELEMS = 1 << 16;

using Triple = std::array<int64_t, 3>;

inline Triple triple(c10::IntArrayRef v, const char* name) {
  TORCH_CHECK(v.size() == 3, "hypops.gyroplane_conv3d: ", name, " must have 3 entries, got ", v.size());
  return {v[0], v[1], v[2]};
}

struct Geometry {
  int64_t B, D, C, K;           // batch, ball dimension, output channels, kernel offsets
  Triple in, padded, out, ks, stride, pad, dil;
  bool tied;
  int64_t n_out() const { return B * out[0] * out[1] * out[2]; }
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

// Row of the padded input read by offset 0 for every output voxel (flattened [B, OX, OY, OZ] order).
inline at::Tensor window_base(const Geometry& g, const at::TensorOptions& opts) {
  const auto o = opts.dtype(at::kLong);
  const int64_t sy = g.padded[2], sx = g.padded[1] * sy, sb = g.padded[0] * sx;
  return (at::arange(g.B, o).mul(sb).view({-1, 1, 1, 1}) +
          at::arange(g.out[0], o).mul(g.stride[0] * sx).view({1, -1, 1, 1}) +
          at::arange(g.out[1], o).mul(g.stride[1] * sy).view({1, 1, -1, 1}) +
          at::arange(g.out[2], o).mul(g.stride[2]).view({1, 1, 1, -1}))
      .reshape({-1});
}

// Row shift of kernel offset k = (kx, ky, kz) in the padded input.
inline int64_t offset_shift(const Geometry& g, int64_t k) {
  const int64_t kz = k % g.ks[2], ky = (k / g.ks[2]) % g.ks[1], kx = k / (g.ks[2] * g.ks[1]);
  const int64_t sy = g.padded[2], sx = g.padded[1] * sy;
  return kx * g.dil[0] * sx + ky * g.dil[1] * sy + kz * g.dil[2];
}

// Strided view [B, OX, OY, OZ, F] of a padded channels-last [B, Xp, Yp, Zp, F] tensor: the voxels offset k
// reads (tied path).
inline at::Tensor offset_view(const at::Tensor& padded5, const Geometry& g, int64_t k) {
  const int64_t kk[3] = {k / (g.ks[2] * g.ks[1]), (k / g.ks[2]) % g.ks[1], k % g.ks[2]};
  at::Tensor v = padded5;
  for (int i = 0; i < 3; ++i) {
    const int64_t start = kk[i] * g.dil[i];
    v = v.slice(1 + i, start, start + g.stride[i] * (g.out[i] - 1) + 1, g.stride[i]);
  }
  return v;
}

// Per-offset planes [K, C, D] (contiguous rows for the bank); tied planes stay [C, D].
inline at::Tensor planes(const at::Tensor& p, const Geometry& g, at::ScalarType acc) {
  if (g.tied) return p.to(acc).contiguous();
  return p.to(acc).permute({2, 3, 4, 0, 1}).reshape({g.K, g.C, g.D}).contiguous();
}

inline int64_t tile_rows(const Geometry& g) { return std::max<int64_t>(1, TILE_ELEMS / std::max<int64_t>(g.C, 1)); }

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

// [B*OX*OY*OZ, C] channels-last accumulator -> [B, C, OX, OY, OZ] in the output dtype.
inline at::Tensor to_output(const at::Tensor& acc, const Geometry& g, at::ScalarType dtype) {
  return acc.view({g.B, g.out[0], g.out[1], g.out[2], g.C}).permute({0, 4, 1, 2, 3}).to(dtype).contiguous();
}

inline at::Tensor forward(const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
                          const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride, c10::IntArrayRef padding,
                          c10::IntArrayRef dilation, c10::IntArrayRef kernel_size) {
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
  at::Tensor out = at::zeros({g.n_out(), g.C}, rows.options());
  if (g.tied) {
    // Every padded voxel against the C planes once, then the box sum of k^3 strided views.
    at::Tensor vox = at::empty({g.n_pad(), g.C}, rows.options());
    const int64_t T = tile_rows(g);
    for (int64_t t0 = 0; t0 < g.n_pad(); t0 += T) {
      const int64_t t1 = std::min(g.n_pad(), t0 + T);
      vox.slice(0, t0, t1).copy_(bank(rows.slice(0, t0, t1), P, A, cc));
    }
    const at::Tensor vox5 = vox.view({g.B, g.padded[0], g.padded[1], g.padded[2], g.C});
    at::Tensor out5 = out.view({g.B, g.out[0], g.out[1], g.out[2], g.C});
    for (int64_t k = 0; k < g.K; ++k) out5.add_(offset_view(vox5, g, k));
  } else {
    const at::Tensor base = window_base(g, rows.options());
    const int64_t T = tile_rows(g);
    for (int64_t t0 = 0; t0 < g.n_out(); t0 += T) {
      const int64_t t1 = std::min(g.n_out(), t0 + T);
      const at::Tensor idx = base.slice(0, t0, t1);
      at::Tensor o = out.slice(0, t0, t1);
      for (int64_t k = 0; k < g.K; ++k)
        o.add_(bank(rows.index_select(0, idx + offset_shift(g, k)), P[k], A[k], cc));
    }
  }
  if (has_bias) out.add_(bias->to(acc).view({1, g.C}));
  return to_output(out, g, x.scalar_type());
}

// Gradients for x, p, a and c (the bias gradient, a sum of grad, is left to the caller).
inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
    c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation, c10::IntArrayRef kernel_size) {
  const Geometry g = geometry("gyroplane_conv3d_backward", x, p, a, c, stride, padding, dilation, kernel_size);
  TORCH_CHECK(grad.dim() == 5 && grad.size(0) == g.B && grad.size(1) == g.C && grad.size(2) == g.out[0] &&
                  grad.size(3) == g.out[1] && grad.size(4) == g.out[2],
              "hypops.gyroplane_conv3d_backward: grad must be [", g.B, ", ", g.C, ", ", g.out[0], ", ", g.out[1],
              ", ", g.out[2], "], got ", grad.sizes());
  const auto acc = acc_type(x);
  const at::Tensor rows = padded_rows(x, g), P = planes(p, g, acc), A = planes(a, g, acc);
  const at::Tensor cc = c.to(acc);
  // grad as channels-last [B, OX, OY, OZ, C] (a view; copied per tile where rows are needed)
  const at::Tensor G5 = grad.permute({0, 2, 3, 4, 1}).to(acc);
  at::Tensor grows = at::zeros_like(rows), gP = at::zeros_like(P), gA = at::zeros_like(A);
  at::Tensor gc = at::zeros({}, c.options().dtype(at::kDouble));
  const int64_t T = tile_rows(g);
  if (g.tied) {
    // Spread each output gradient over the voxels of its window, then one bank backward per voxel.
    at::Tensor gvox = at::zeros({g.B, g.padded[0], g.padded[1], g.padded[2], g.C}, rows.options());
    for (int64_t k = 0; k < g.K; ++k) offset_view(gvox, g, k).add_(G5);
    const at::Tensor gv = gvox.view({g.n_pad(), g.C});
    for (int64_t t0 = 0; t0 < g.n_pad(); t0 += T) {
      const int64_t t1 = std::min(g.n_pad(), t0 + T);
      auto [gx, gp, ga, gck] = bank_backward(gv.slice(0, t0, t1), rows.slice(0, t0, t1), P, A, cc);
      grows.slice(0, t0, t1).copy_(gx);
      gP.add_(gp);
      gA.add_(ga);
      gc.add_(gck);
    }
  } else {
    const at::Tensor base = window_base(g, rows.options());
    const at::Tensor Grows = G5.reshape({g.n_out(), g.C});  // one copy: grad is channels-first
    for (int64_t t0 = 0; t0 < g.n_out(); t0 += T) {
      const int64_t t1 = std::min(g.n_out(), t0 + T);
      const at::Tensor gt = Grows.slice(0, t0, t1), idx0 = base.slice(0, t0, t1);
      for (int64_t k = 0; k < g.K; ++k) {
        const at::Tensor idx = idx0 + offset_shift(g, k);
        auto [gx, gp, ga, gck] = bank_backward(gt, rows.index_select(0, idx), P[k], A[k], cc);
        grows.index_add_(0, idx, gx);
        gP[k].add_(gp);
        gA[k].add_(ga);
        gc.add_(gck);
      }
    }
  }
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

}  // namespace conv3d
}  // namespace hypops
