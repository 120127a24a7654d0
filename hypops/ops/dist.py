"""hypops.dist: the public function, and its native op's fake registration (autograd: csrc/autograd.cpp).

Kernels: csrc/cpu/dist_cpu.cpp (formula in csrc/common/math.h); reference: hypops.reference.dist.
"""

from __future__ import annotations

from .. import _backend, reference
from ._common import native_rowwise, prepare, register_rowwise


def dist(x, y, *, c=1.0, dim=-1, keepdim=False, backend=None):
    """Geodesic distance (2/sqrt(c)) artanh(sqrt(c)|(-x) (+) y|); reduces dim (keepdim keeps it).

    c: a positive float or 0-dim tensor (minus the curvature; the ball has radius 1/sqrt(c)); a tensor
    that requires grad gets its gradient. dim: the coordinate dimension; inputs broadcast like torch.
    backend: None (automatic), "native", "triton" or "torch" (see hypops._backend).
    """
    c = prepare("dist", dim, c, x=x, y=y)
    return _backend.select("dist", x.device, backend)(x, y, c=c, dim=dim, keepdim=keepdim)


def _native(x, y, *, c, dim, keepdim=False):
    return native_rowwise("dist", (x, y,), c, dim, reduces=True, keepdim=keepdim)


_backend.register("dist", "torch", reference.dist)
_backend.register("dist", "native", _native)
register_rowwise("dist", 2, reduces=True)
