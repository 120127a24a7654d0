"""Generic Triton row kernels, the counterpart of csrc/cpu/rowwise.h:
  unary:  out = k(|x|^2, c) x                                   (project, expmap0, logmap0)
  binary: out = A x + B y with A, B functions of |x|^2, |y|^2, <x,y>, |x-y|^2 and c   (mobius_add, expmap, logmap)

Each op supplies two @triton.jit formula functions (passed as constexpr arguments):
  forward:  COEF(xx, c, EPS) -> k                     /  COEF(xx, yy, xy, dd, c, EPS) -> (A, B)
  backward: COEF_BWD(xx, c, EPS, gx) -> (k, l_xx, l_c) /  COEF_BWD(xx, yy, xy, dd, c, EPS, gx, gy)
            -> (A, B, l_xx, l_yy, l_xy, l_dd, l_c)
where gx = <g, x>, gy = <g, y>, l = A gx + B gy and l_r = dl/dr (hand-derived in each op's file and
tested against the native kernels, whose derivatives come from dual numbers). The kernels then form
  grad_x = A g + 2 l_xx x + l_xy y + 2 l_dd (x - y),   grad_y = B g + 2 l_yy y + l_xy x - 2 l_dd (x - y).

Layout: a program owns BLOCK_M rows; it sweeps the row in BLOCK_D chunks twice (reductions, then the
output), so any D works and memory is read once per sweep. The gradient of c is reduced per program
into a small buffer and summed by torch (deterministic).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from .._constants import PROJ_EPS
from ._math import to_acc


def rows(*tensors):
    """Broadcast to one shape and view each as [N, D] with unit column stride (row stride 0 kept)."""
    shape = torch.broadcast_shapes(*(t.shape for t in tensors))
    D = shape[-1]
    N = 1
    for s in shape[:-1]:
        N *= s
    mats = []
    for t in tensors:
        m = t.expand(shape).reshape(N, D)
        if m.stride(1) != 1 and D > 1:
            m = m.contiguous()
        mats.append(m)
    return shape, N, D, mats


def row_stride(m):
    return m.stride(0) if m.shape[0] > 1 else 0


def blocks(N, D):
    block_d = min(triton.next_power_of_2(D), 1024)
    block_m = max(1, min(triton.next_power_of_2(max(N, 1)), 4096 // block_d))
    return block_m, block_d


def acc64(t):
    return t.dtype == torch.float64


def eps_of(t):
    return PROJ_EPS[t.dtype]


@triton.jit
def _zeros(BLOCK_M: tl.constexpr, ACC64: tl.constexpr):
    if ACC64:
        return tl.zeros([BLOCK_M], dtype=tl.float64)
    else:
        return tl.zeros([BLOCK_M], dtype=tl.float32)


@triton.jit
def _tile(ptr, rows, stride, cols, mask, ACC64: tl.constexpr):
    return to_acc(tl.load(ptr + rows[:, None] * stride + cols[None, :], mask=mask, other=0.0), ACC64)


@triton.jit
def unary_fwd_kernel(x_ptr, out_ptr, c_ptr, N, D, sx, EPS: tl.constexpr, COEF: tl.constexpr,
                     ACC64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    r = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = r < N
    c = to_acc(tl.load(c_ptr), ACC64)
    xx = _zeros(BLOCK_M, ACC64)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        x = _tile(x_ptr, r, sx, cols, m, ACC64)
        xx += tl.sum(x * x, 1)
    k = COEF(xx, c, EPS)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        x = _tile(x_ptr, r, sx, cols, m, ACC64)
        o = k[:, None] * x
        tl.store(out_ptr + r[:, None] * D + cols[None, :], o.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def unary_bwd_kernel(g_ptr, x_ptr, gx_ptr, gc_ptr, c_ptr, N, D, sg, sx, EPS: tl.constexpr,
                     COEF_BWD: tl.constexpr, ACC64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    r = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = r < N
    c = to_acc(tl.load(c_ptr), ACC64)
    xx = _zeros(BLOCK_M, ACC64)
    gxv = _zeros(BLOCK_M, ACC64)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        x = _tile(x_ptr, r, sx, cols, m, ACC64)
        g = _tile(g_ptr, r, sg, cols, m, ACC64)
        xx += tl.sum(x * x, 1)
        gxv += tl.sum(g * x, 1)
    k, lxx, lc = COEF_BWD(xx, c, EPS, gxv)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        x = _tile(x_ptr, r, sx, cols, m, ACC64)
        g = _tile(g_ptr, r, sg, cols, m, ACC64)
        o = k[:, None] * g + (2.0 * lxx)[:, None] * x
        tl.store(gx_ptr + r[:, None] * D + cols[None, :], o.to(gx_ptr.dtype.element_ty), mask=m)
    tl.store(gc_ptr + pid, tl.sum(tl.where(rmask, lc, 0.0), 0))


@triton.jit
def binary_fwd_kernel(x_ptr, y_ptr, out_ptr, c_ptr, N, D, sx, sy, EPS: tl.constexpr, COEF: tl.constexpr,
                      ACC64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    r = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = r < N
    c = to_acc(tl.load(c_ptr), ACC64)
    xx = _zeros(BLOCK_M, ACC64)
    yy = _zeros(BLOCK_M, ACC64)
    xy = _zeros(BLOCK_M, ACC64)
    dd = _zeros(BLOCK_M, ACC64)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        x = _tile(x_ptr, r, sx, cols, m, ACC64)
        y = _tile(y_ptr, r, sy, cols, m, ACC64)
        xx += tl.sum(x * x, 1)
        yy += tl.sum(y * y, 1)
        xy += tl.sum(x * y, 1)
        dd += tl.sum((x - y) * (x - y), 1)
    A, B = COEF(xx, yy, xy, dd, c, EPS)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        x = _tile(x_ptr, r, sx, cols, m, ACC64)
        y = _tile(y_ptr, r, sy, cols, m, ACC64)
        o = A[:, None] * x + B[:, None] * y
        tl.store(out_ptr + r[:, None] * D + cols[None, :], o.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def binary_bwd_kernel(g_ptr, x_ptr, y_ptr, gx_ptr, gy_ptr, gc_ptr, c_ptr, N, D, sg, sx, sy, EPS: tl.constexpr,
                      COEF_BWD: tl.constexpr, ACC64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    r = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = r < N
    c = to_acc(tl.load(c_ptr), ACC64)
    xx = _zeros(BLOCK_M, ACC64)
    yy = _zeros(BLOCK_M, ACC64)
    xy = _zeros(BLOCK_M, ACC64)
    dd = _zeros(BLOCK_M, ACC64)
    gxv = _zeros(BLOCK_M, ACC64)
    gyv = _zeros(BLOCK_M, ACC64)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        x = _tile(x_ptr, r, sx, cols, m, ACC64)
        y = _tile(y_ptr, r, sy, cols, m, ACC64)
        g = _tile(g_ptr, r, sg, cols, m, ACC64)
        xx += tl.sum(x * x, 1)
        yy += tl.sum(y * y, 1)
        xy += tl.sum(x * y, 1)
        dd += tl.sum((x - y) * (x - y), 1)
        gxv += tl.sum(g * x, 1)
        gyv += tl.sum(g * y, 1)
    A, B, lxx, lyy, lxy, ldd, lc = COEF_BWD(xx, yy, xy, dd, c, EPS, gxv, gyv)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        x = _tile(x_ptr, r, sx, cols, m, ACC64)
        y = _tile(y_ptr, r, sy, cols, m, ACC64)
        g = _tile(g_ptr, r, sg, cols, m, ACC64)
        diff = (2.0 * ldd)[:, None] * (x - y)
        ox = A[:, None] * g + (2.0 * lxx)[:, None] * x + lxy[:, None] * y + diff
        oy = B[:, None] * g + (2.0 * lyy)[:, None] * y + lxy[:, None] * x - diff
        off = r[:, None] * D + cols[None, :]
        tl.store(gx_ptr + off, ox.to(gx_ptr.dtype.element_ty), mask=m)
        tl.store(gy_ptr + off, oy.to(gy_ptr.dtype.element_ty), mask=m)
    tl.store(gc_ptr + pid, tl.sum(tl.where(rmask, lc, 0.0), 0))


def _grad_c_buffer(n_programs, c):
    return torch.empty(n_programs, dtype=torch.float64 if c.dtype == torch.float64 else torch.float32, device=c.device)


def unary_forward(coef, x, c):
    shape, N, D, (xm,) = rows(x)
    out = torch.empty(shape, dtype=x.dtype, device=x.device)
    bm, bd = blocks(N, D)
    wrap_triton(unary_fwd_kernel)[(triton.cdiv(N, bm),)](
        xm, out, c, N, D, row_stride(xm), EPS=eps_of(x), COEF=coef, ACC64=acc64(x), BLOCK_M=bm, BLOCK_D=bd
    )
    return out


def unary_backward(coef_bwd, grad, x, c):
    shape, N, D, (gm, xm) = rows(grad, x)
    gx = torch.empty((N, D), dtype=x.dtype, device=x.device)
    bm, bd = blocks(N, D)
    n_prog = triton.cdiv(N, bm)
    gc = _grad_c_buffer(n_prog, c)
    wrap_triton(unary_bwd_kernel)[(n_prog,)](
        gm, xm, gx, gc, c, N, D, row_stride(gm), row_stride(xm), EPS=eps_of(x), COEF_BWD=coef_bwd,
        ACC64=acc64(x), BLOCK_M=bm, BLOCK_D=bd,
    )
    return gx.view(shape).sum_to_size(x.shape), gc.sum().to(c.dtype)


def binary_forward(coef, x, y, c):
    shape, N, D, (xm, ym) = rows(x, y)
    out = torch.empty(shape, dtype=x.dtype, device=x.device)
    bm, bd = blocks(N, D)
    wrap_triton(binary_fwd_kernel)[(triton.cdiv(N, bm),)](
        xm, ym, out, c, N, D, row_stride(xm), row_stride(ym), EPS=eps_of(x), COEF=coef, ACC64=acc64(x),
        BLOCK_M=bm, BLOCK_D=bd,
    )
    return out


def binary_backward(coef_bwd, grad, x, y, c):
    shape, N, D, (gm, xm, ym) = rows(grad, x, y)
    gx = torch.empty((N, D), dtype=x.dtype, device=x.device)
    gy = torch.empty((N, D), dtype=x.dtype, device=x.device)
    bm, bd = blocks(N, D)
    n_prog = triton.cdiv(N, bm)
    gc = _grad_c_buffer(n_prog, c)
    wrap_triton(binary_bwd_kernel)[(n_prog,)](
        gm, xm, ym, gx, gy, gc, c, N, D, row_stride(gm), row_stride(xm), row_stride(ym), EPS=eps_of(x),
        COEF_BWD=coef_bwd, ACC64=acc64(x), BLOCK_M=bm, BLOCK_D=bd,
    )
    return gx.view(shape).sum_to_size(x.shape), gy.view(shape).sum_to_size(y.shape), gc.sum().to(c.dtype)
