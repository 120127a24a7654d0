"""hypops.expmap: the public function, and its native op's fake registration (autograd: csrc/autograd.cpp).

Kernels: csrc/cpu/expmap_cpu.cpp (formula in csrc/common/math.h); reference: hypops.reference.expmap.
"""

from __future__ import annotations

from .. import _backend, reference
from ._common import native_rowwise, prepare, register_rowwise


def expmap(x, u, *, c=1.0, dim=-1, backend=None):
    """Exponential map at x: x (+) tanh(sqrt(c) lambda_x |u| / 2) u / (sqrt(c)|u|), projected; lambda_x = 2 / (1 - c|x|^2).

    c: a positive float or 0-dim tensor (minus the curvature; the ball has radius 1/sqrt(c)); a tensor
    that requires grad gets its gradient. dim: the coordinate dimension; inputs broadcast like torch.
    backend: None (automatic), "native", "triton" or "torch" (see hypops._backend).
    """
    c = prepare("expmap", dim, c, x=x, u=u)
    return _backend.select("expmap", x.device, backend)(x, u, c=c, dim=dim)


def _native(x, u, *, c, dim):
    return native_rowwise("expmap", (x, u,), c, dim, reduces=False)


_backend.register("expmap", "torch", reference.expmap)
_backend.register("expmap", "native", _native)
register_rowwise("expmap", 2, reduces=False)
