"""hypops.mobius_add: the public function, and its native op's fake registration (autograd: csrc/autograd.cpp).

Kernels: csrc/cpu/mobius_add_cpu.cpp (formula in csrc/common/math.h); reference: hypops.reference.mobius_add.
"""

from __future__ import annotations

from .. import _backend, reference
from ._common import native_rowwise, prepare, register_rowwise


def mobius_add(x, y, *, c=1.0, dim=-1, backend=None):
    """Möbius addition x (+) y = ((1 + 2c<x,y> + c|y|^2) x + (1 - c|x|^2) y) / (1 + 2c<x,y> + c^2|x|^2|y|^2), projected.

    c: a positive float or 0-dim tensor (minus the curvature; the ball has radius 1/sqrt(c)); a tensor
    that requires grad gets its gradient. dim: the coordinate dimension; inputs broadcast like torch.
    backend: None (automatic), "native", "triton" or "torch" (see hypops._backend).
    """
    c = prepare("mobius_add", dim, c, x=x, y=y)
    return _backend.select("mobius_add", x.device, backend)(x, y, c=c, dim=dim)


def _native(x, y, *, c, dim):
    return native_rowwise("mobius_add", (x, y,), c, dim, reduces=False)


_backend.register("mobius_add", "torch", reference.mobius_add)
_backend.register("mobius_add", "native", _native)
register_rowwise("mobius_add", 2, reduces=False)
