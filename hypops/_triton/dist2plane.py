"""Triton dist2plane(x, p, a) = (1/sqrt(c)) asinh(2 sqrt(c) <w, a> / ((1 - c|w|^2)|a|)), w = (-p) (+) x,
from |x|^2, |p|^2, |a|^2, <p,a>, |x-p|^2, <x-p,a> (csrc/common/math.h: dist2plane_value). The value and
its hand-derived gradient (d2p_value / d2p_grad) are shared with the gyroplane bank. [..., D] -> [...]."""

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._math import MIN_DENOM, MIN_NORM, asinh_and_grad, clamp_min, safe_norm, to_acc
from ._register import register_autograd, register_backend
from ._rowwise import _tile, _zeros, acc64, blocks, row_stride, rows


@triton.jit
def d2p_value(xx, pp, aa, pa, dd, da, c, SIGNED: tl.constexpr, SCALED: tl.constexpr):
    sc = tl.sqrt(c)
    den = clamp_min((1.0 - c * pp) * (1.0 - c * xx) + c * dd, MIN_DENOM)
    # 1 - c|w|^2 = (1 - c|p|^2)(1 - c|x|^2)/den exactly (no cancellation near the sphere); geoopt's clamp below 1e-15
    omw = tl.where(dd / den >= MIN_NORM, (1.0 - c * pp) * (1.0 - c * xx) / den, 1.0 - c * MIN_NORM)
    wa = ((1.0 - c * pp) * da - c * dd * pa) / den
    if not SIGNED:
        wa = tl.abs(wa)
    an, _ = safe_norm(aa)
    dn = clamp_min(omw * an, MIN_DENOM)
    v, _ = asinh_and_grad(2.0 * sc * wa / dn)
    out = v / sc
    if SCALED:
        out = out * an
    return out


@triton.jit
def d2p_grad(xx, pp, aa, pa, dd, da, c, g, SIGNED: tl.constexpr, SCALED: tl.constexpr):
    """(l_xx, l_pp, l_aa, l_pa, l_dd, l_da, l_c) for l = g * d2p_value(...), reverse mode."""
    sc = tl.sqrt(c)
    P0 = (1.0 - c * pp) * (1.0 - c * xx) + c * dd
    dpass = P0 >= MIN_DENOM
    den = tl.where(dpass, P0, MIN_DENOM)
    wpass = dd / den >= MIN_NORM
    omw = tl.where(wpass, (1.0 - c * pp) * (1.0 - c * xx) / den, 1.0 - c * MIN_NORM)
    N1 = (1.0 - c * pp) * da - c * dd * pa
    wa0 = N1 / den
    if SIGNED:
        wa = wa0
    else:
        wa = tl.abs(wa0)
    an, dan = safe_norm(aa)
    dn0 = omw * an
    npass = dn0 >= MIN_DENOM
    dn = tl.where(npass, dn0, MIN_DENOM)
    arg = 2.0 * sc * wa / dn
    v, dv = asinh_and_grad(arg)
    out0 = v / sc
    if SCALED:
        lout0 = g * an
        lan = g * out0
    else:
        lout0 = g
        lan = g * 0.0
    larg = lout0 * dv / sc
    lsc = -lout0 * out0 / sc + larg * 2.0 * wa / dn
    lwa = larg * 2.0 * sc / dn
    ldn = tl.where(npass, -larg * arg / dn, 0.0)
    lomw = ldn * an
    lan += ldn * omw
    laa = lan * dan
    if SIGNED:
        lwa0 = lwa
    else:
        lwa0 = tl.where(wa0 > 0, lwa, tl.where(wa0 < 0, -lwa, 0.0))
    lN1 = lwa0 / den
    lden = -lwa0 * wa0 / den
    lpp = lN1 * (-c * da)
    lda = lN1 * (1.0 - c * pp)
    ldd = lN1 * (-c * pa)
    lpa = lN1 * (-c * dd)
    lc = lN1 * (-pp * da - dd * pa)
    # omw = (1 - c pp)(1 - c xx)/den where dd/den >= MIN_NORM, else 1 - c MIN_NORM
    lw = tl.where(wpass, lomw, 0.0)
    lpp += lw * (-c * (1.0 - c * xx) / den)
    lxx = lw * (-c * (1.0 - c * pp) / den)
    lden += -lw * omw / den
    lc += tl.where(wpass, lw * (-pp * (1.0 - c * xx) - xx * (1.0 - c * pp)) / den, -lomw * MIN_NORM)
    lden = tl.where(dpass, lden, 0.0)
    lpp += -lden * c * (1.0 - c * xx)
    lxx += -lden * c * (1.0 - c * pp)
    ldd += lden * c
    lc += lden * (dd - pp * (1.0 - c * xx) - xx * (1.0 - c * pp))
    lc += lsc / (2.0 * sc)
    return lxx, lpp, laa, lpa, ldd, lda, lc


@triton.jit
def _reduce(x_ptr, p_ptr, a_ptr, r, rmask, D, sx, sp, sa, ACC64: tl.constexpr, BLOCK_M: tl.constexpr,
            BLOCK_D: tl.constexpr):
    xx = _zeros(BLOCK_M, ACC64)
    pp = _zeros(BLOCK_M, ACC64)
    aa = _zeros(BLOCK_M, ACC64)
    pa = _zeros(BLOCK_M, ACC64)
    dd = _zeros(BLOCK_M, ACC64)
    da = _zeros(BLOCK_M, ACC64)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        x = _tile(x_ptr, r, sx, cols, m, ACC64)
        p = _tile(p_ptr, r, sp, cols, m, ACC64)
        a = _tile(a_ptr, r, sa, cols, m, ACC64)
        df = x - p
        xx += tl.sum(x * x, 1)
        pp += tl.sum(p * p, 1)
        aa += tl.sum(a * a, 1)
        pa += tl.sum(p * a, 1)
        dd += tl.sum(df * df, 1)
        da += tl.sum(df * a, 1)
    return xx, pp, aa, pa, dd, da


@triton.jit
def dist2plane_fwd_kernel(x_ptr, p_ptr, a_ptr, out_ptr, c_ptr, N, D, sx, sp, sa, SIGNED: tl.constexpr,
                          SCALED: tl.constexpr, ACC64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    r = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = r < N
    c = to_acc(tl.load(c_ptr), ACC64)
    xx, pp, aa, pa, dd, da = _reduce(x_ptr, p_ptr, a_ptr, r, rmask, D, sx, sp, sa, ACC64, BLOCK_M, BLOCK_D)
    out = d2p_value(xx, pp, aa, pa, dd, da, c, SIGNED, SCALED)
    tl.store(out_ptr + r, out.to(out_ptr.dtype.element_ty), mask=rmask)


@triton.jit
def dist2plane_bwd_kernel(g_ptr, x_ptr, p_ptr, a_ptr, gx_ptr, gp_ptr, ga_ptr, gc_ptr, c_ptr, N, D, sx, sp, sa,
                          SIGNED: tl.constexpr, SCALED: tl.constexpr, ACC64: tl.constexpr, BLOCK_M: tl.constexpr,
                          BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    r = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = r < N
    c = to_acc(tl.load(c_ptr), ACC64)
    g = to_acc(tl.load(g_ptr + r, mask=rmask, other=0.0), ACC64)
    xx, pp, aa, pa, dd, da = _reduce(x_ptr, p_ptr, a_ptr, r, rmask, D, sx, sp, sa, ACC64, BLOCK_M, BLOCK_D)
    lxx, lpp, laa, lpa, ldd, lda, lc = d2p_grad(xx, pp, aa, pa, dd, da, c, g, SIGNED, SCALED)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        x = _tile(x_ptr, r, sx, cols, m, ACC64)
        p = _tile(p_ptr, r, sp, cols, m, ACC64)
        a = _tile(a_ptr, r, sa, cols, m, ACC64)
        df = x - p
        ox = (2.0 * lxx)[:, None] * x + (2.0 * ldd)[:, None] * df + lda[:, None] * a
        op = (2.0 * lpp)[:, None] * p + (lpa - lda)[:, None] * a - (2.0 * ldd)[:, None] * df
        oa = (2.0 * laa)[:, None] * a + lpa[:, None] * p + lda[:, None] * df
        off = r[:, None] * D + cols[None, :]
        tl.store(gx_ptr + off, ox.to(gx_ptr.dtype.element_ty), mask=m)
        tl.store(gp_ptr + off, op.to(gp_ptr.dtype.element_ty), mask=m)
        tl.store(ga_ptr + off, oa.to(ga_ptr.dtype.element_ty), mask=m)
    tl.store(gc_ptr + pid, tl.sum(tl.where(rmask, lc, 0.0), 0))


@triton_op("hypops::dist2plane_triton", mutates_args=())
def dist2plane_triton(x: torch.Tensor, p: torch.Tensor, a: torch.Tensor, c: torch.Tensor, signed: bool,
                      scaled: bool) -> torch.Tensor:
    shape, N, D, (xm, pm, am) = rows(x, p, a)
    out = torch.empty(shape[:-1], dtype=x.dtype, device=x.device)
    bm, bd = blocks(N, D)
    wrap_triton(dist2plane_fwd_kernel)[(triton.cdiv(N, bm),)](
        xm, pm, am, out, c, N, D, row_stride(xm), row_stride(pm), row_stride(am), SIGNED=signed, SCALED=scaled,
        ACC64=acc64(x), BLOCK_M=bm, BLOCK_D=bd,
    )
    return out


@triton_op("hypops::dist2plane_triton_backward", mutates_args=())
def dist2plane_triton_backward(
    grad: torch.Tensor, x: torch.Tensor, p: torch.Tensor, a: torch.Tensor, c: torch.Tensor, signed: bool, scaled: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    shape, N, D, (xm, pm, am) = rows(x, p, a)
    g = grad.to(x.dtype).expand(shape[:-1]).reshape(N).contiguous()
    gx, gp, ga = (torch.empty((N, D), dtype=x.dtype, device=x.device) for _ in range(3))
    bm, bd = blocks(N, D)
    n_prog = triton.cdiv(N, bm)
    gc = torch.empty(n_prog, dtype=c.dtype, device=c.device)
    wrap_triton(dist2plane_bwd_kernel)[(n_prog,)](
        g, xm, pm, am, gx, gp, ga, gc, c, N, D, row_stride(xm), row_stride(pm), row_stride(am), SIGNED=signed,
        SCALED=scaled, ACC64=acc64(x), BLOCK_M=bm, BLOCK_D=bd,
    )
    return (gx.view(shape).sum_to_size(x.shape), gp.view(shape).sum_to_size(p.shape),
            ga.view(shape).sum_to_size(a.shape), gc.sum())


register_autograd("dist2plane", 3)
register_backend("dist2plane", reduces=True, flags=("signed", "scaled"))
