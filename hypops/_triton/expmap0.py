"""Triton expmap0(u) = tanh(sqrt(c)|u|) u / (sqrt(c)|u|), projected. Same formula as csrc/common/math.h."""

import torch
import triton
import triton.language as tl
from torch.library import triton_op

from ._math import safe_norm, tanh_over_z
from ._register import register_autograd, register_backend
from ._rowwise import unary_backward, unary_forward


@triton.jit
def expmap0_coef(uu, c, EPS: tl.constexpr):
    sc = tl.sqrt(c)
    n, _ = safe_norm(uu)
    t, _ = tanh_over_z(sc * n)
    m = (1.0 - EPS) / sc
    return tl.where(t * n > m, m / n, t)  # projected: t * m / (t n) = m / n


@triton.jit
def expmap0_coef_bwd(uu, c, EPS: tl.constexpr, gu):
    # k = t(z), z = sqrt(c) n  (not projected);  k = m/n, m = (1-eps)/sqrt(c)  (projected)
    sc = tl.sqrt(c)
    n, dn = safe_norm(uu)
    t, dt = tanh_over_z(sc * n)
    m = (1.0 - EPS) / sc
    proj = t * n > m
    k = tl.where(proj, m / n, t)
    kuu = tl.where(proj, -m / (n * n) * dn, dt * sc * dn)
    kc = tl.where(proj, -m / (2.0 * c * n), dt * n / (2.0 * sc))
    return k, gu * kuu, gu * kc


@triton_op("hypops::expmap0_triton", mutates_args=())
def expmap0_triton(u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return unary_forward(expmap0_coef, u, c)


@triton_op("hypops::expmap0_triton_backward", mutates_args=())
def expmap0_triton_backward(grad: torch.Tensor, u: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return unary_backward(expmap0_coef_bwd, grad, u, c)


register_autograd("expmap0", 1)
register_backend("expmap0", reduces=False)
