"""Triton dist(x, y) = (2/sqrt(c)) artanh(sqrt(c)|(-x) (+) y|) = 2 A(z) |w| with z = sqrt(c)|w|,
A(z) = artanh(min(z, 1 - 1e-7))/z and |w|^2 = |x-y|^2 / ((1 - c|x|^2)(1 - c|y|^2) + c|x-y|^2)
(csrc/common/math.h: dist_value). [..., D] -> [...]."""

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._math import MIN_DENOM, clamp_min, clamped_artanhc, safe_norm, to_acc
from ._register import register_autograd, register_backend
from ._rowwise import _tile, _zeros, acc64, blocks, row_stride, rows


@triton.jit
def _reduce(x_ptr, y_ptr, r, rmask, D, sx, sy, ACC64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    xx = _zeros(BLOCK_M, ACC64)
    yy = _zeros(BLOCK_M, ACC64)
    dd = _zeros(BLOCK_M, ACC64)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        x = _tile(x_ptr, r, sx, cols, m, ACC64)
        y = _tile(y_ptr, r, sy, cols, m, ACC64)
        xx += tl.sum(x * x, 1)
        yy += tl.sum(y * y, 1)
        dd += tl.sum((x - y) * (x - y), 1)
    return xx, yy, dd


@triton.jit
def dist_fwd_kernel(x_ptr, y_ptr, out_ptr, c_ptr, N, D, sx, sy, ACC64: tl.constexpr, BLOCK_M: tl.constexpr,
                    BLOCK_D: tl.constexpr):
    r = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = r < N
    c = to_acc(tl.load(c_ptr), ACC64)
    xx, yy, dd = _reduce(x_ptr, y_ptr, r, rmask, D, sx, sy, ACC64, BLOCK_M, BLOCK_D)
    den = clamp_min((1.0 - c * xx) * (1.0 - c * yy) + c * dd, MIN_DENOM)
    wn, _ = safe_norm(dd / den)
    A, _ = clamped_artanhc(tl.sqrt(c) * wn)
    tl.store(out_ptr + r, (2.0 * A * wn).to(out_ptr.dtype.element_ty), mask=rmask)


@triton.jit
def dist_bwd_kernel(g_ptr, x_ptr, y_ptr, gx_ptr, gy_ptr, gc_ptr, c_ptr, N, D, sx, sy, ACC64: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    r = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = r < N
    c = to_acc(tl.load(c_ptr), ACC64)
    g = to_acc(tl.load(g_ptr + r, mask=rmask, other=0.0), ACC64)
    xx, yy, dd = _reduce(x_ptr, y_ptr, r, rmask, D, sx, sy, ACC64, BLOCK_M, BLOCK_D)
    sc = tl.sqrt(c)
    P0 = (1.0 - c * xx) * (1.0 - c * yy) + c * dd
    dpass = P0 >= MIN_DENOM
    den = tl.where(dpass, P0, MIN_DENOM)
    q = dd / den
    wn, dwn = safe_norm(q)
    A, dA = clamped_artanhc(sc * wn)
    # out = 2 A(sqrt(c) wn) wn
    lq = g * (2.0 * A + 2.0 * sc * wn * dA) * dwn
    lc = g * wn * wn * dA / sc
    ldd = lq / den
    lden = tl.where(dpass, -lq * q / den, 0.0)
    lxx = -lden * c * (1.0 - c * yy)
    lyy = -lden * c * (1.0 - c * xx)
    ldd += lden * c
    lc += lden * (dd - xx * (1.0 - c * yy) - yy * (1.0 - c * xx))
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        x = _tile(x_ptr, r, sx, cols, m, ACC64)
        y = _tile(y_ptr, r, sy, cols, m, ACC64)
        diff = (2.0 * ldd)[:, None] * (x - y)
        off = r[:, None] * D + cols[None, :]
        tl.store(gx_ptr + off, ((2.0 * lxx)[:, None] * x + diff).to(gx_ptr.dtype.element_ty), mask=m)
        tl.store(gy_ptr + off, ((2.0 * lyy)[:, None] * y - diff).to(gy_ptr.dtype.element_ty), mask=m)
    tl.store(gc_ptr + pid, tl.sum(tl.where(rmask, lc, 0.0), 0))


@triton_op("hypops::dist_triton", mutates_args=())
def dist_triton(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    shape, N, D, (xm, ym) = rows(x, y)
    out = torch.empty(shape[:-1], dtype=x.dtype, device=x.device)
    bm, bd = blocks(N, D)
    wrap_triton(dist_fwd_kernel)[(triton.cdiv(N, bm),)](
        xm, ym, out, c, N, D, row_stride(xm), row_stride(ym), ACC64=acc64(x), BLOCK_M=bm, BLOCK_D=bd
    )
    return out


@triton_op("hypops::dist_triton_backward", mutates_args=())
def dist_triton_backward(
    grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    shape, N, D, (xm, ym) = rows(x, y)
    g = grad.to(x.dtype).expand(shape[:-1]).reshape(N).contiguous()
    gx = torch.empty((N, D), dtype=x.dtype, device=x.device)
    gy = torch.empty((N, D), dtype=x.dtype, device=x.device)
    bm, bd = blocks(N, D)
    n_prog = triton.cdiv(N, bm)
    gc = torch.empty(n_prog, dtype=c.dtype, device=c.device)
    wrap_triton(dist_bwd_kernel)[(n_prog,)](
        g, xm, ym, gx, gy, gc, c, N, D, row_stride(xm), row_stride(ym), ACC64=acc64(x), BLOCK_M=bm, BLOCK_D=bd
    )
    return gx.view(shape).sum_to_size(x.shape), gy.view(shape).sum_to_size(y.shape), gc.sum()


register_autograd("dist", 2)
register_backend("dist", reduces=True)
