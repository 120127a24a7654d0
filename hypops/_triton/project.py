"""Triton project(x) = x min(1, m/|x|), m = (1 - eps)/sqrt(c). Same formula as csrc/common/math.h."""

import torch
import triton
import triton.language as tl
from torch.library import triton_op

from ._math import safe_norm
from ._register import register_autograd, register_backend
from ._rowwise import unary_backward, unary_forward


@triton.jit
def project_coef(xx, c, EPS: tl.constexpr):
    n, _ = safe_norm(xx)
    m = (1.0 - EPS) / tl.sqrt(c)
    return tl.where(n > m, m / n, 1.0)


@triton.jit
def project_coef_bwd(xx, c, EPS: tl.constexpr, gx):
    # projected: k = m/n with m = (1-eps)/sqrt(c): dk/dn = -m/n^2, dk/dc = -m/(2 c n); else k = 1
    n, dn = safe_norm(xx)
    m = (1.0 - EPS) / tl.sqrt(c)
    proj = n > m
    k = tl.where(proj, m / n, 1.0)
    lxx = tl.where(proj, gx * (-m / (n * n)) * dn, 0.0)
    lc = tl.where(proj, gx * (-m / (2.0 * c * n)), 0.0)
    return k, lxx, lc


@triton_op("hypops::project_triton", mutates_args=())
def project_triton(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return unary_forward(project_coef, x, c)


@triton_op("hypops::project_triton_backward", mutates_args=())
def project_triton_backward(grad: torch.Tensor, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return unary_backward(project_coef_bwd, grad, x, c)


register_autograd("project", 1)
register_backend("project", reduces=False)
