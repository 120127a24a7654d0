"""hypops.expmap0: the public function, and its native op's fake registration (autograd: csrc/autograd.cpp).

Kernels: csrc/cpu/expmap0_cpu.cpp (formula in csrc/common/math.h); reference: hypops.reference.expmap0.
"""

from __future__ import annotations

from .. import _backend, reference
from ._common import native_rowwise, prepare, register_rowwise


def expmap0(u, *, c=1.0, dim=-1, backend=None):
    """Exponential map at the origin: tanh(sqrt(c)|u|) u / (sqrt(c)|u|), projected into the ball.

    c: a positive float or 0-dim tensor (minus the curvature; the ball has radius 1/sqrt(c)); a tensor
    that requires grad gets its gradient. dim: the coordinate dimension; inputs broadcast like torch.
    backend: None (automatic), "native", "triton" or "torch" (see hypops._backend).
    """
    c = prepare("expmap0", dim, c, u=u)
    return _backend.select("expmap0", u.device, backend)(u, c=c, dim=dim)


def _native(u, *, c, dim):
    return native_rowwise("expmap0", (u,), c, dim, reduces=False)


_backend.register("expmap0", "torch", reference.expmap0)
_backend.register("expmap0", "native", _native)
register_rowwise("expmap0", 1, reduces=False)
