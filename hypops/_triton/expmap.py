"""Triton expmap(x, u) = x (+) tanh(sqrt(c) lambda_x |u| / 2) u / (sqrt(c)|u|), projected. Same formula as
csrc/common/math.h: with ld = 1 - c|x|^2 (= 2/lambda_x), s = sqrt(c)|u| and z = s/ld, the second point is
t u with t = tanh(min(z, 15))/s = F(z)/ld, F(z) = tanh(min(z, 15))/z; then Möbius addition."""

import torch
import triton
import triton.language as tl
from torch.library import triton_op

from ._math import MIN_DENOM, clamp_min, safe_norm, tanh_over_z
from ._register import register_autograd, register_backend
from ._rowwise import binary_backward, binary_forward
from .mobius_add import mobius_add_bwd, mobius_add_fwd


@triton.jit
def expmap_coef(xx, uu, xu, dd, c, EPS: tl.constexpr):
    sc = tl.sqrt(c)
    ld = clamp_min(1.0 - c * xx, MIN_DENOM)
    n, _ = safe_norm(uu)
    F, _ = tanh_over_z(sc * n / ld)
    t = F / ld
    A, Bp = mobius_add_fwd(xx, t * t * uu, t * xu, c, EPS)
    return A, Bp * t


@triton.jit
def expmap_coef_bwd(xx, uu, xu, dd, c, EPS: tl.constexpr, gx, gu):
    sc = tl.sqrt(c)
    ld0 = 1.0 - c * xx
    lpass = ld0 >= MIN_DENOM
    ld = tl.where(lpass, ld0, MIN_DENOM)
    n, dn = safe_norm(uu)
    s = sc * n
    F, dF = tanh_over_z(s / ld)
    t = F / ld
    # l = A gx + B' (t gu): Möbius-addition partials with the second point v = t u held fixed...
    A, Bp, lxx, mvv, mxv, lc = mobius_add_bwd(xx, t * t * uu, t * xu, c, EPS, gx, t * gu)
    # ...then through |v|^2 = t^2 |u|^2, <x,v> = t <x,u> and the direct t in t gu
    lt = Bp * gu + mvv * 2.0 * t * uu + mxv * xu
    luu = mvv * t * t
    lxu = mxv * t
    # t = F(z)/ld with z = s/ld
    lz = lt * dF / ld
    lld = -lt * F / (ld * ld) - lz * s / (ld * ld)
    ls = lz / ld
    lc += ls * n / (2.0 * sc)
    luu += ls * sc * dn
    lxx += tl.where(lpass, -c * lld, 0.0)
    lc += tl.where(lpass, -xx * lld, 0.0)
    return A, Bp * t, lxx, luu, lxu, lxx * 0.0, lc


@triton_op("hypops::expmap_triton", mutates_args=())
def expmap_triton(x: torch.Tensor, u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return binary_forward(expmap_coef, x, u, c)


@triton_op("hypops::expmap_triton_backward", mutates_args=())
def expmap_triton_backward(
    grad: torch.Tensor, x: torch.Tensor, u: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return binary_backward(expmap_coef_bwd, grad, x, u, c)


register_autograd("expmap", 2)
register_backend("expmap", reduces=False)
