"""Triton logmap0(y) = artanh(sqrt(c)|y|) y / (sqrt(c)|y|). Same formula as csrc/common/math.h."""

import torch
import triton
import triton.language as tl
from torch.library import triton_op

from ._math import clamped_artanhc, safe_norm
from ._register import register_autograd, register_backend
from ._rowwise import unary_backward, unary_forward


@triton.jit
def logmap0_coef(yy, c, EPS: tl.constexpr):
    n, _ = safe_norm(yy)
    k, _ = clamped_artanhc(tl.sqrt(c) * n)
    return k


@triton.jit
def logmap0_coef_bwd(yy, c, EPS: tl.constexpr, gy):
    # k = A(z), z = sqrt(c) n: dk/d|y|^2 = A'(z) sqrt(c) dn, dk/dc = A'(z) n / (2 sqrt(c))
    sc = tl.sqrt(c)
    n, dn = safe_norm(yy)
    k, dk = clamped_artanhc(sc * n)
    return k, gy * dk * sc * dn, gy * dk * n / (2.0 * sc)


@triton_op("hypops::logmap0_triton", mutates_args=())
def logmap0_triton(y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return unary_forward(logmap0_coef, y, c)


@triton_op("hypops::logmap0_triton_backward", mutates_args=())
def logmap0_triton_backward(grad: torch.Tensor, y: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return unary_backward(logmap0_coef_bwd, grad, y, c)


register_autograd("logmap0", 1)
register_backend("logmap0", reduces=False)
