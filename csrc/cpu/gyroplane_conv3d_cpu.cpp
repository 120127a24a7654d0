// Gyroplane 3D convolution on the CPU: the tiled (output voxels x offsets) loop of csrc/common/gyroplane_conv3d.h
// with the CPU's own per-offset steps, the inside path below; the steps its gate refuses, and the tied
// weights, run the gyroplane bank (csrc/cpu/gyroplane_bank_cpu.cpp: two GEMMs + the per-pair map).
//
// The inside path (bank_kernels.h: InsideFwd): where every input row of a step and every plane of its offset
// are inside the bank's gate (AB > 1/8), the argument of asinh is z = (<x, W'> + e' - f'|x|^2) / B with
// per-plane W', e', f' made from p, a and c once per call. So a step is one GEMM against W' plus the per-pair
// asinh (the bank: two GEMMs, against p and a), and its backward three GEMMs (the recomputed contraction,
// grad_x = lz W' + x r, grad_W' += lz^T x) where the bank's took six. The gradients of W', e' and f' reach
// p, a and c once per call, per plane (finish), in double.
#include <torch/library.h>

#include <algorithm>
#include <cmath>

#include "common/gyroplane_conv3d.h"
#include "cpu/rows.h"
#include "cpu/rowwise.h"
#include "cpu/simd/bank_kernels.h"

namespace hypops {
namespace {

// Per-plane quantities of the inside form, in double, planes flattened to [K * C] (offset-major as P).
struct InsidePlanes {
  at::Tensor p, a, pp, aa, pa, A, f, K, W, e;  // W = A a + 2 f p, e = -(A pa + f pp), f = c pa
  std::vector<double> margin;                   // per offset: the bank's plane_margin over its C planes (0: gate shut)
  at::Tensor on;                                // [K * C] bool: the plane's offset has its gate open
};

InsidePlanes inside_planes(const at::Tensor& P, const at::Tensor& Aw, double c) {
  const int64_t K = P.size(0), C = P.size(1), D = P.size(2);
  InsidePlanes q;
  q.p = P.to(at::kDouble).reshape({K * C, D});
  q.a = Aw.to(at::kDouble).reshape({K * C, D});
  q.pp = (q.p * q.p).sum(1);
  q.aa = (q.a * q.a).sum(1);
  q.pa = (q.p * q.a).sum(1);
  q.A = 1 - c * q.pp;
  q.f = c * q.pa;
  q.K = 2 * std::sqrt(c) / (q.A * q.aa.sqrt());
  q.W = q.A.unsqueeze(1) * q.a + 2 * q.f.unsqueeze(1) * q.p;
  q.e = -(q.A * q.pa + q.f * q.pp);
  const double *pp = q.pp.data_ptr<double>(), *aa = q.aa.data_ptr<double>();
  for (int64_t k = 0; k < K; ++k) q.margin.push_back(simd::plane_margin(pp + k * C, aa + k * C, C, c));
  q.on = at::empty({K * C}, at::kBool);
  for (int64_t k = 0; k < K; ++k) q.on.narrow(0, k * C, C).fill_(q.margin[k] > 0);
  return q;
}

template <typename T> struct InsideSteps final : conv3d::Steps {
  const simd::BankKernels& kern;
  const double c;
  InsidePlanes q;
  at::Tensor Wp, ep, fp;  // W' = K W, e' = K e, f' = K f [K, C(, D)] in T
  at::Tensor xb;          // (|x|^2, 1 / (1 - c|x|^2)) per padded input row [n_pad, 2] in T
  // backward: lz^T x per offset [K, C, D] in T; column sums of lz, lz |x|^2 and B lz z [K * C] (double); r
  // per padded row [n_pad] in T (grad_x = lz W' + x r, the second term added once in finish); the pairs' d/dc
  at::Tensor gWp, se, sxx, swz, R;
  double gc_rows = 0;

  InsideSteps(const conv3d::Geometry& g_, const at::Tensor& rows_, const at::Tensor& P_, const at::Tensor& A_,
              const at::Tensor& c_, double cv)
      : Steps(g_, rows_, P_, A_, c_), kern(simd::bank_kernels()), c(cv), q(inside_planes(P, A, cv)) {
    const auto T_ = P.scalar_type();
    Wp = (q.K.unsqueeze(1) * q.W).to(T_).view({g.K, g.C, g.D});
    ep = (q.K * q.e).to(T_).view({g.K, g.C});
    fp = (q.K * q.f).to(T_).view({g.K, g.C});
    // once per padded row rather than per step: each row is read by every offset
    const int64_t N = rows.size(0), D = g.D;
    xb = at::empty({N, 2}, rows.options());
    const T* x = rows.data_ptr<T>();
    T* v = xb.data_ptr<T>();
    at::parallel_for(0, N, row_grain(D), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T s = row_sq<T>(x + i * D, D);
        v[2 * i] = s;
        v[2 * i + 1] = T(1.0 / (1.0 - c * double(s)));
      }
    });
  }

  // With stride 1, a tile of whole z-rows (whole (y, z) planes if it spans several x-planes, whole items if
  // several items) reads, for each offset, a contiguous range of padded rows: row r of the tile's
  // "extended" rows, the output voxel at padded-grid position r past the tile's first one, reads padded row
  // first + r with first = base + (offset of k). The extended rows include the positions with y >= OY or
  // z >= OZ (and, in tiles of several items, x >= OX), computed and thrown away (valid() picks the rest):
  // (Yp Zp) / (OY OZ) times the work at 32^3 with padding 1 (1.13), against a gather of [n, D] per step that
  // cost as much as its GEMM. Returns false for other tiles (z-ranges of one row) and where the extended
  // rows would be more than 1.5x the tile's (small grids with padding: 4^3 with k = 3, padding 1, is 3.4x):
  // the bank steps run those.
  bool extended(const conv3d::Tile& t, int64_t& base, int64_t& L) const {
    const auto &out = g.out, &pad = g.padded;
    const int64_t plane = pad[1] * pad[2], nb = t.b1 - t.b0, nx = t.hi[0] - t.lo[0], ny = t.hi[1] - t.lo[1];
    const bool whole_rows = t.lo[2] == 0 && t.hi[2] == out[2], whole_planes = t.lo[1] == 0 && t.hi[1] == out[1];
    if (!whole_rows || (nx > 1 && !whole_planes) || (nb > 1 && (t.lo[0] != 0 || t.hi[0] != out[0] || !whole_planes)))
      return false;
    base = ((t.b0 * pad[0] + t.lo[0]) * pad[1] + t.lo[1]) * pad[2];
    L = ((nb - 1) * pad[0] + nx - 1) * plane + (ny - 1) * pad[2] + out[2];
    return 2 * L <= 3 * t.rows();
  }
  // Calls run(n0, n1) for each run of rows of [f0, f1) that valid() keeps (one z-row's OZ outputs at most)
  // and skip(n0, n1) for the runs between them: the per-pair kernels need not evaluate the thrown-away
  // rows (1 - 1/1.13 of the pairs at 32^3 with padding 1), whereas the GEMMs read the whole range in place.
  template <typename Run, typename Skip>
  void valid_runs(const conv3d::Tile& t, int64_t base, int64_t f0, int64_t f1, const Run& run, const Skip& skip) const {
    const auto &out = g.out, &pad = g.padded;
    for (int64_t n = f0; n < f1;) {
      const int64_t q = base + n, z = q % pad[2], y = q / pad[2] % pad[1], x = q / (pad[1] * pad[2]) % pad[0];
      const bool ok = z < out[2] && y >= t.lo[1] && y < t.hi[1] && x >= t.lo[0] && x < t.hi[0];
      const int64_t end = std::min(f1, n + (ok ? out[2] : pad[2]) - z);
      ok ? run(n, end) : skip(n, end);
      n = end;
    }
  }
  int64_t offset_rows(int64_t k) const {
    const conv3d::Triple kk = conv3d::kernel_offset(g, k);
    return (kk[0] * g.dil[0] * g.padded[1] + kk[1] * g.dil[1]) * g.padded[2] + kk[2] * g.dil[2];
  }
  // The valid rows of an extended [L, F] array, as tile t's [nb, nx, OY, OZ, F] box.
  at::Tensor valid(const at::Tensor& ext, const conv3d::Tile& t) const {
    const int64_t F = ext.size(1), plane = g.padded[1] * g.padded[2];
    return ext.as_strided(t.box(F), {g.padded[0] * plane * F, plane * F, g.padded[2] * F, F, 1}, ext.storage_offset());
  }
  // Whether padded rows [first, first + L) are all inside the gate of offset k (false for NaN too).
  bool inside(int64_t k, int64_t first, int64_t L) const {
    const double m = q.margin[k];
    if (!(m > 0)) return false;
    const T* v = xb.data_ptr<T>() + 2 * first;
    bool ok = true;
    for (int64_t i = 0; i < L; ++i) ok = ok && (1.0 - c * double(v[2 * i])) * m > simd::INSIDE_MIN_AB;
    return ok;
  }

  at::Tensor fwd(const conv3d::Tile& t) override {
    int64_t base, L;
    if (!extended(t, base, L)) return Steps::fwd(t);
    const int64_t C = g.C;
    at::Tensor o = at::zeros({L, C}, rows.options()), s = at::empty({L, C}, rows.options());
    for (int64_t k = 0; k < g.K; ++k) {
      const int64_t first = base + offset_rows(k);
      if (!inside(k, first, L)) {
        valid(o, t).add_(bank_fwd(t, k).view(t.box(C)));
        continue;
      }
      at::mm_out(s, rows.narrow(0, first, L), Wp[k].t());
      const simd::InsideFwd<T> args{s.data_ptr<T>(), xb.data_ptr<T>() + 2 * first, ep[k].data_ptr<T>(),
                                    fp[k].data_ptr<T>(), T(1.0 / std::sqrt(c)), C};
      T* out = o.data_ptr<T>();
      const auto run = simd::inside_fwd(kern, T());
      at::parallel_for(0, L, row_grain(C), [&](int64_t b, int64_t e) {
        valid_runs(t, base, b, e, [&](int64_t n0, int64_t n1) { run(args, n0, n1, out); }, [](int64_t, int64_t) {});
      });
    }
    return valid(o, t);
  }

  void bwd(const at::Tensor& gbox, const conv3d::Tile& t, conv3d::Grads& gr) override {
    int64_t base, L;
    if (!extended(t, base, L)) return Steps::bwd(gbox, t, gr);
    const int64_t C = g.C, K = g.K;
    if (!gWp.defined()) {
      gWp = at::zeros_like(Wp);
      se = at::zeros({K * C}, Wp.options().dtype(at::kDouble));
      sxx = at::zeros_like(se);
      swz = at::zeros_like(se);
      R = at::zeros({rows.size(0)}, rows.options());
    }
    at::Tensor gt = at::zeros({L, C}, rows.options());  // 0 on the rows valid() leaves out: they add nothing
    valid(gt, t).copy_(gbox);
    at::Tensor gt_rows;  // the bank steps' [n, C] copy, made if one is needed
    // lz overwrites s in place (the kernel reads s[n, k] before it writes lz[n, k]): one [L, C] array less
    at::Tensor s = at::empty({L, C}, rows.options()), r = at::empty({L}, rows.options());
    const at::Tensor& lz = s;
    const auto run = simd::inside_bwd(kern, T());
    for (int64_t k = 0; k < K; ++k) {
      const int64_t first = base + offset_rows(k);
      if (!inside(k, first, L)) {
        if (!gt_rows.defined()) gt_rows = gbox.to(rows.scalar_type()).reshape({t.rows(), C});
        bank_bwd(gt_rows, t, k, gr);
        continue;
      }
      const at::Tensor X = rows.narrow(0, first, L);
      at::mm_out(s, X, Wp[k].t());
      // the pointers are taken once per step: ep[k] and friends are at::select calls (~0.3 us each), and the
      // lambda runs once per kBankFlushRows rows (~250 k selects per backward at D = 32 when it indexed them)
      T *sp = s.data_ptr<T>(), *gtp = gt.data_ptr<T>(), *lzp = lz.data_ptr<T>(), *rp = r.data_ptr<T>();
      const T *xbp = xb.data_ptr<T>() + 2 * first, *epk = ep.data_ptr<T>() + k * C, *fpk = fp.data_ptr<T>() + k * C;
      const T cT = T(c), inv_sc = T(1.0 / std::sqrt(c));
      const at::Tensor sums = flushed_column_sums<T>(L, row_grain(C), 4 * C, simd::kBankFlushRows,
                                                     [&](T* cs, int64_t f0, int64_t f1) {
        const simd::InsideBwd<T> args{sp,  gtp, xbp, epk, fpk, cT, inv_sc, C, lzp, rp, cs, cs + C, cs + 2 * C,
                                      cs + 3 * C};
        // rows valid() leaves out have g = 0 and so lz = 0, r = 0: written, not evaluated (lz holds s there)
        valid_runs(t, base, f0, f1, [&](int64_t n0, int64_t n1) { run(args, n0, n1); },
                   [&](int64_t n0, int64_t n1) {
                     std::fill(lzp + n0 * C, lzp + n1 * C, T(0));
                     std::fill(rp + n0, rp + n1, T(0));
                   });
        return 0.0;
      });
      se.narrow(0, k * C, C).add_(sums.narrow(0, 0, C));
      sxx.narrow(0, k * C, C).add_(sums.narrow(0, C, C));
      swz.narrow(0, k * C, C).add_(sums.narrow(0, 2 * C, C));
      gc_rows += sums.narrow(0, 3 * C, C).sum().item<double>();
      // within one offset distinct rows read distinct padded rows: plain in-place GEMMs into the slices
      gr.grows.narrow(0, first, L).addmm_(lz, Wp[k]);
      R.narrow(0, first, L).add_(r);
      gWp[k].addmm_(lz.t(), X);
    }
  }

  // x r into grad_x; then from the gradients of W' = K W, e' = K e, f' = K f to p, a and c, per plane, by the
  // chain rule through K = 2 sqrt(c) / (A |a|), W = A a + 2 f p, e = -(A pa + f pp), f = c pa, A = 1 - c pp
  // (double). K's own gradient comes as K dL/dK = sum over pairs of B lz z (swz; = <dL/dW', W'> + e' dL/de' +
  // f' dL/df', which formed from the float GEMM sum lz^T x lost up to 1e-5 of grad c to cancellation).
  void finish(conv3d::Grads& gr) override {
    if (!gWp.defined()) return;  // every tile took the bank
    // Only the rows an inside step read (R != 0): x R elsewhere would turn an infinite or NaN voxel that
    // only bank steps (or no output) read into a NaN gradient.
    {
      const int64_t D = g.D;
      const T *x = rows.data_ptr<T>(), *r = R.data_ptr<T>();
      T* gx = gr.grows.data_ptr<T>();
      at::parallel_for(0, rows.size(0), row_grain(D), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          if (r[i] != T(0))
            for (int64_t d = 0; d < D; ++d) gx[i * D + d] += x[i * D + d] * r[i];
      });
    }
    const int64_t KC = q.p.size(0);
    const at::Tensor gWp64 = gWp.to(at::kDouble).view({KC, g.D});
    const at::Tensor gep = se, gfp = -sxx;  // d/de' = sum lz, d/df' = -sum lz |x|^2
    const at::Tensor& gKK = swz;  // K dL/dK
    const at::Tensor gW = q.K.unsqueeze(1) * gWp64, ge = q.K * gep, gf_ = q.K * gfp;
    const at::Tensor gA_ = (gW * q.a).sum(1) - ge * q.pa - gKK / q.A;
    const at::Tensor gf = 2 * (gW * q.p).sum(1) - ge * q.pp + gf_;
    const at::Tensor gpa = -q.A * ge + c * gf, gpp = -q.f * ge - c * gA_, gaa = -gKK / (2 * q.aa);
    const at::Tensor gp = 2 * q.f.unsqueeze(1) * gW + 2 * q.p * gpp.unsqueeze(1) + q.a * gpa.unsqueeze(1);
    const at::Tensor ga = q.A.unsqueeze(1) * gW + 2 * q.a * gaa.unsqueeze(1) + q.p * gpa.unsqueeze(1);
    // Offsets whose gate is shut never took this path, and their K, A may be inf or NaN: masked out.
    const at::Tensor on = q.on.unsqueeze(1), zero = at::zeros({}, gW.options());
    gr.gP.add_(at::where(on, gp, zero).view(gr.gP.sizes()).to(gr.gP.scalar_type()));
    gr.gA.add_(at::where(on, ga, zero).view(gr.gA.sizes()).to(gr.gA.scalar_type()));
    gr.gc.add_(at::where(q.on, q.pa * gf - q.pp * gA_, zero).sum() + gc_rows);  // (the K part is in gc_rows)
  }
};

// The inside path where the SIMD kernels run (the "scalar" kernels, the reference, keep the bank).
std::unique_ptr<conv3d::Steps> cpu_steps(const conv3d::Geometry& g, const at::Tensor& rows, const at::Tensor& P,
                                         const at::Tensor& A, const at::Tensor& c) {
  // (tied weights have their own path in the driver; other strides read no contiguous ranges: see extended())
  if (simd::bank_kernels().inside_fwd_f == nullptr || g.tied || g.stride != conv3d::Triple{1, 1, 1})
    return conv3d::bank_steps(g, rows, P, A, c);
  const double cv = read_c_cpu("gyroplane_conv3d", c);
  if (P.scalar_type() == at::kDouble) return std::make_unique<InsideSteps<double>>(g, rows, P, A, c, cv);
  return std::make_unique<InsideSteps<float>>(g, rows, P, A, c, cv);
}

at::Tensor forward_cpu(const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
                       const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride, c10::IntArrayRef padding,
                       c10::IntArrayRef dilation, c10::IntArrayRef kernel_size) {
  return conv3d::forward_with(&cpu_steps, x, p, a, c, bias, stride, padding, dilation, kernel_size);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& p, const at::Tensor& a, const at::Tensor& c,
    c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation, c10::IntArrayRef kernel_size) {
  return conv3d::backward_with(&cpu_steps, grad, x, p, a, c, stride, padding, dilation, kernel_size);
}

}  // namespace

TORCH_LIBRARY_IMPL(hypops, CPU, m) {
  m.impl("gyroplane_conv3d", &forward_cpu);
  m.impl("gyroplane_conv3d_backward", &backward_cpu);
}

}  // namespace hypops
