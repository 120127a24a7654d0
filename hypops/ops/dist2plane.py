"""hypops.dist2plane: the public function, and its native op's fake registration (autograd: csrc/autograd.cpp).

Kernels: csrc/cpu/dist2plane_cpu.cpp (formula in csrc/common/math.h); reference: hypops.reference.dist2plane.
"""

from __future__ import annotations

from .. import _backend, reference
from ._common import native_rowwise, prepare, register_rowwise


def dist2plane(x, p, a, *, c=1.0, dim=-1, keepdim=False, signed=False, scaled=False, backend=None):
    """Distance from x to the gyroplane through p with normal a: (1/sqrt(c)) asinh(2 sqrt(c) <w, a> / ((1 - c|w|^2)|a|)), w = (-p) (+) x; reduces dim. signed=False takes |<w, a>|; scaled=True multiplies by |a| (geoopt's conventions).

    c: a positive float or 0-dim tensor (minus the curvature; the ball has radius 1/sqrt(c)); a tensor
    that requires grad gets its gradient. dim: the coordinate dimension; inputs broadcast like torch.
    backend: None (automatic), "native", "triton" or "torch" (see hypops._backend).
    """
    c = prepare("dist2plane", dim, c, x=x, p=p, a=a)
    return _backend.select("dist2plane", x.device, backend)(x, p, a, c=c, dim=dim, keepdim=keepdim, signed=signed, scaled=scaled)


def _native(x, p, a, *, c, dim, keepdim=False, signed=False, scaled=False):
    return native_rowwise("dist2plane", (x, p, a,), c, dim, flags=(signed, scaled), reduces=True, keepdim=keepdim)


_backend.register("dist2plane", "torch", reference.dist2plane)
_backend.register("dist2plane", "native", _native)
register_rowwise("dist2plane", 3, reduces=True)
