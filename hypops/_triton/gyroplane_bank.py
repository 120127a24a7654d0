"""Triton gyroplane bank: x [N, D], p and a [P, D] -> [N, P]. As in csrc/cpu/gyroplane_bank_cpu.cpp: torch
computes the two GEMMs X P^T, X A^T and the per-row/per-plane norms; a Triton kernel evaluates the dist2plane
formula (d2p_value / d2p_grad from dist2plane.py) over the [N, P] grid; the backward's sums over the bank are
again GEMMs:
  grad_x = x * rowsum(2 l_xx + 2 l_dd) - 2 L_dd P + L_da A
  grad_p = p * colsum(2 l_pp + 2 l_dd) + a * colsum(l_pa - l_da) - 2 L_dd^T X
  grad_a = a * colsum(2 l_aa) + p * colsum(l_pa - l_da) + L_da^T X"""

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from .. import _backend
from ._math import clamp_min, to_acc
from ._register import register_autograd
from .dist2plane import d2p_grad, d2p_value

BLOCK = 1024


@triton.jit
def _load(xx_ptr, pp_ptr, aa_ptr, pa_ptr, xp_ptr, xa_ptr, idx, mask, P, ACC64: tl.constexpr):
    n = idx // P
    k = idx % P
    xx = to_acc(tl.load(xx_ptr + n, mask=mask, other=0.0), ACC64)
    pp = to_acc(tl.load(pp_ptr + k, mask=mask, other=0.0), ACC64)
    aa = to_acc(tl.load(aa_ptr + k, mask=mask, other=1.0), ACC64)
    pa = to_acc(tl.load(pa_ptr + k, mask=mask, other=0.0), ACC64)
    xp = to_acc(tl.load(xp_ptr + idx, mask=mask, other=0.0), ACC64)
    xa = to_acc(tl.load(xa_ptr + idx, mask=mask, other=0.0), ACC64)
    dd = clamp_min(xx - 2.0 * xp + pp, 0.0)
    return xx, pp, aa, pa, dd, xa - pa


@triton.jit
def bank_fwd_kernel(xx_ptr, pp_ptr, aa_ptr, pa_ptr, xp_ptr, xa_ptr, out_ptr, c_ptr, total, P, SIGNED: tl.constexpr,
                    SCALED: tl.constexpr, ACC64: tl.constexpr, BLOCK: tl.constexpr):
    idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < total
    c = to_acc(tl.load(c_ptr), ACC64)
    xx, pp, aa, pa, dd, da = _load(xx_ptr, pp_ptr, aa_ptr, pa_ptr, xp_ptr, xa_ptr, idx, mask, P, ACC64)
    out = d2p_value(xx, pp, aa, pa, dd, da, c, SIGNED, SCALED)
    tl.store(out_ptr + idx, out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def bank_bwd_kernel(g_ptr, xx_ptr, pp_ptr, aa_ptr, pa_ptr, xp_ptr, xa_ptr, lx_ptr, ldd_ptr, lda_ptr, mp_ptr, mpa_ptr,
                    ma_ptr, gc_ptr, c_ptr, total, P, SIGNED: tl.constexpr, SCALED: tl.constexpr, ACC64: tl.constexpr,
                    BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    idx = pid * BLOCK + tl.arange(0, BLOCK)
    mask = idx < total
    c = to_acc(tl.load(c_ptr), ACC64)
    g = to_acc(tl.load(g_ptr + idx, mask=mask, other=0.0), ACC64)
    xx, pp, aa, pa, dd, da = _load(xx_ptr, pp_ptr, aa_ptr, pa_ptr, xp_ptr, xa_ptr, idx, mask, P, ACC64)
    lxx, lpp, laa, lpa, ldd, lda, lc = d2p_grad(xx, pp, aa, pa, dd, da, c, g, SIGNED, SCALED)
    tl.store(lx_ptr + idx, 2.0 * (lxx + ldd), mask=mask)
    tl.store(ldd_ptr + idx, ldd, mask=mask)
    tl.store(lda_ptr + idx, lda, mask=mask)
    tl.store(mp_ptr + idx, 2.0 * (lpp + ldd), mask=mask)
    tl.store(mpa_ptr + idx, lpa - lda, mask=mask)
    tl.store(ma_ptr + idx, 2.0 * laa, mask=mask)
    tl.store(gc_ptr + pid, tl.sum(tl.where(mask, lc, 0.0), 0))


def _pieces(x, p, a):
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    X, P, A = x.to(acc), p.to(acc), a.to(acc)
    return X, P, A, X.square().sum(1), P.square().sum(1), A.square().sum(1), (P * A).sum(1), X @ P.t(), X @ A.t()


@triton_op("hypops::gyroplane_bank_triton", mutates_args=())
def gyroplane_bank_triton(x: torch.Tensor, p: torch.Tensor, a: torch.Tensor, c: torch.Tensor, signed: bool,
                          scaled: bool) -> torch.Tensor:
    X, P, A, xx, pp, aa, pa, XP, XA = _pieces(x, p, a)
    N, Pn = x.shape[0], p.shape[0]
    out = torch.empty((N, Pn), dtype=x.dtype, device=x.device)
    total = N * Pn
    wrap_triton(bank_fwd_kernel)[(triton.cdiv(total, BLOCK),)](
        xx, pp, aa, pa, XP.contiguous(), XA.contiguous(), out, c, total, Pn, SIGNED=signed, SCALED=scaled,
        ACC64=X.dtype == torch.float64, BLOCK=BLOCK,
    )
    return out


@triton_op("hypops::gyroplane_bank_triton_backward", mutates_args=())
def gyroplane_bank_triton_backward(
    grad: torch.Tensor, x: torch.Tensor, p: torch.Tensor, a: torch.Tensor, c: torch.Tensor, signed: bool, scaled: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    X, P, A, xx, pp, aa, pa, XP, XA = _pieces(x, p, a)
    N, Pn = x.shape[0], p.shape[0]
    total = N * Pn
    G = grad.to(X.dtype).expand(N, Pn).contiguous()
    Lx, Ldd, Lda, Mp, Mpa, Ma = (torch.empty((N, Pn), dtype=X.dtype, device=x.device) for _ in range(6))
    n_prog = triton.cdiv(total, BLOCK)
    gc = torch.empty(n_prog, dtype=c.dtype, device=c.device)
    wrap_triton(bank_bwd_kernel)[(n_prog,)](
        G, xx, pp, aa, pa, XP.contiguous(), XA.contiguous(), Lx, Ldd, Lda, Mp, Mpa, Ma, gc, c, total, Pn,
        SIGNED=signed, SCALED=scaled, ACC64=X.dtype == torch.float64, BLOCK=BLOCK,
    )
    spa = Mpa.sum(0).unsqueeze(1)
    gx = X * Lx.sum(1, keepdim=True) - 2 * Ldd @ P + Lda @ A
    gp = P * Mp.sum(0).unsqueeze(1) + A * spa - 2 * Ldd.t() @ X
    ga = A * Ma.sum(0).unsqueeze(1) + P * spa + Lda.t() @ X
    return gx.to(x.dtype), gp.to(x.dtype), ga.to(x.dtype), gc.sum()


register_autograd("gyroplane_bank", 3)


def _impl(x, p, a, *, c, signed=True, scaled=False):
    lead = x.shape[:-1]
    out = torch.ops.hypops.gyroplane_bank_triton(x.reshape(-1, x.shape[-1]), p, a, c, signed, scaled)
    return out.reshape(*lead, p.shape[0])


_backend.register("gyroplane_bank", "triton", _impl)
