"""Triton mobius_add(x, y) = ((1 + 2c<x,y> + c|y|^2) x + (1 - c|x|^2) y) / (1 + 2c<x,y> + c^2|x|^2|y|^2),
projected. Same formula as csrc/common/math.h; mobius_add_fwd/bwd are reused by expmap."""

import torch
import triton
import triton.language as tl
from torch.library import triton_op

from ._math import MIN_DENOM, clamp_min, safe_norm
from ._register import register_autograd, register_backend
from ._rowwise import binary_backward, binary_forward


@triton.jit
def mobius_add_fwd(xx, yy, xy, c, EPS: tl.constexpr):
    den = clamp_min(1.0 + 2.0 * c * xy + c * c * xx * yy, MIN_DENOM)
    a = (1.0 + 2.0 * c * xy + c * yy) / den
    b = (1.0 - c * xx) / den
    N, _ = safe_norm(clamp_min(a * a * xx + 2.0 * a * b * xy + b * b * yy, 0.0))
    m = (1.0 - EPS) / tl.sqrt(c)
    f = tl.where(N > m, m / N, 1.0)
    return a * f, b * f


@triton.jit
def mobius_add_bwd(xx, yy, xy, c, EPS: tl.constexpr, gx, gy):
    """(A, B, l_xx, l_yy, l_xy, l_c) for l = A gx + B gy (reverse mode through the forward steps)."""
    den0 = 1.0 + 2.0 * c * xy + c * c * xx * yy
    dpass = den0 >= MIN_DENOM
    den = tl.where(dpass, den0, MIN_DENOM)
    na = 1.0 + 2.0 * c * xy + c * yy
    nb = 1.0 - c * xx
    a = na / den
    b = nb / den
    S0 = a * a * xx + 2.0 * a * b * xy + b * b * yy
    spass = S0 >= 0.0
    N, dN = safe_norm(tl.where(spass, S0, 0.0))
    m = (1.0 - EPS) / tl.sqrt(c)
    proj = N > m
    f = tl.where(proj, m / N, 1.0)
    P = a * gx + b * gy
    la = f * gx
    lb = f * gy
    lN = tl.where(proj, -P * m / (N * N), 0.0)
    lc = tl.where(proj, -P * m / (2.0 * c * N), 0.0)
    lS = tl.where(spass, lN * dN, 0.0)
    la += lS * (2.0 * a * xx + 2.0 * b * xy)
    lb += lS * (2.0 * a * xy + 2.0 * b * yy)
    lxx = lS * a * a
    lxy = lS * 2.0 * a * b
    lyy = lS * b * b
    lna = la / den
    lnb = lb / den
    lden = tl.where(dpass, -(la * a + lb * b) / den, 0.0)
    lc += lna * (2.0 * xy + yy) - lnb * xx + lden * (2.0 * xy + 2.0 * c * xx * yy)
    lxy += lna * 2.0 * c + lden * 2.0 * c
    lyy += lna * c + lden * c * c * xx
    lxx += -lnb * c + lden * c * c * yy
    return a * f, b * f, lxx, lyy, lxy, lc


@triton.jit
def mobius_add_coef(xx, yy, xy, dd, c, EPS: tl.constexpr):
    return mobius_add_fwd(xx, yy, xy, c, EPS)


@triton.jit
def mobius_add_coef_bwd(xx, yy, xy, dd, c, EPS: tl.constexpr, gx, gy):
    A, B, lxx, lyy, lxy, lc = mobius_add_bwd(xx, yy, xy, c, EPS, gx, gy)
    return A, B, lxx, lyy, lxy, lxx * 0.0, lc


@triton_op("hypops::mobius_add_triton", mutates_args=())
def mobius_add_triton(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return binary_forward(mobius_add_coef, x, y, c)


@triton_op("hypops::mobius_add_triton_backward", mutates_args=())
def mobius_add_triton_backward(
    grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return binary_backward(mobius_add_coef_bwd, grad, x, y, c)


register_autograd("mobius_add", 2)
register_backend("mobius_add", reduces=False)
