"""Triton logmap(x, y) = (2 / (sqrt(c) lambda_x)) artanh(sqrt(c)|w|) w / |w|, w = (-x) (+) y. Same formula
as csrc/common/math.h: |w|^2 = |x-y|^2 / den, den = (1 - c|x|^2)(1 - c|y|^2) + c|x-y|^2, and
out = s (-(1 - 2c<x,y> + c|y|^2) x + (1 - c|x|^2) y) with s = (1 - c|x|^2) A(sqrt(c)|w|) / den."""

import torch
import triton
import triton.language as tl
from torch.library import triton_op

from ._math import MIN_DENOM, clamp_min, clamped_artanhc, safe_norm
from ._register import register_autograd, register_backend
from ._rowwise import binary_backward, binary_forward


@triton.jit
def logmap_coef(xx, yy, xy, dd, c, EPS: tl.constexpr):
    sc = tl.sqrt(c)
    den = clamp_min((1.0 - c * xx) * (1.0 - c * yy) + c * dd, MIN_DENOM)
    wn, _ = safe_norm(dd / den)
    omc = clamp_min(1.0 - c * xx, MIN_DENOM)
    Ac, _ = clamped_artanhc(sc * wn)
    s = omc * Ac / den
    return -s * (1.0 - 2.0 * c * xy + c * yy), s * (1.0 - c * xx)


@triton.jit
def logmap_coef_bwd(xx, yy, xy, dd, c, EPS: tl.constexpr, gx, gy):
    sc = tl.sqrt(c)
    P0 = (1.0 - c * xx) * (1.0 - c * yy) + c * dd
    dpass = P0 >= MIN_DENOM
    den = tl.where(dpass, P0, MIN_DENOM)
    q = dd / den
    wn, dwn = safe_norm(q)
    omc0 = 1.0 - c * xx
    opass = omc0 >= MIN_DENOM
    omc = tl.where(opass, omc0, MIN_DENOM)
    Ac, dAc = clamped_artanhc(sc * wn)
    s = omc * Ac / den
    na = 1.0 - 2.0 * c * xy + c * yy
    nb = 1.0 - c * xx
    # l = s (-na gx + nb gy)
    ls = -na * gx + nb * gy
    lna = -s * gx
    lnb = s * gy
    lc = lna * (-2.0 * xy + yy) - lnb * xx
    lxy = -2.0 * c * lna
    lyy = c * lna
    lxx = -c * lnb
    lomc = ls * Ac / den
    lz = ls * omc / den * dAc
    lden = -ls * s / den
    lq = lz * sc * dwn
    lc += lz * wn / (2.0 * sc)
    ldd = lq / den
    lden += -lq * q / den
    lxx += tl.where(opass, -c * lomc, 0.0)
    lc += tl.where(opass, -xx * lomc, 0.0)
    lden = tl.where(dpass, lden, 0.0)
    lxx += -lden * c * (1.0 - c * yy)
    lyy += -lden * c * (1.0 - c * xx)
    ldd += lden * c
    lc += lden * (dd - xx * (1.0 - c * yy) - yy * (1.0 - c * xx))
    return -s * na, s * nb, lxx, lyy, lxy, ldd, lc


@triton_op("hypops::logmap_triton", mutates_args=())
def logmap_triton(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return binary_forward(logmap_coef, x, y, c)


@triton_op("hypops::logmap_triton_backward", mutates_args=())
def logmap_triton_backward(
    grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return binary_backward(logmap_coef_bwd, grad, x, y, c)


register_autograd("logmap", 2)
register_backend("logmap", reduces=False)
