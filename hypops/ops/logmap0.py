"""hypops.logmap0: the public function, and its native op's fake registration (autograd: csrc/autograd.cpp).

Kernels: csrc/cpu/logmap0_cpu.cpp (formula in csrc/common/math.h); reference: hypops.reference.logmap0.
"""

from __future__ import annotations

from .. import _backend, reference
from ._common import native_rowwise, prepare, register_rowwise


def logmap0(y, *, c=1.0, dim=-1, backend=None):
    """Logarithmic map at the origin: artanh(sqrt(c)|y|) y / (sqrt(c)|y|). Not projected; artanh's argument is clamped to 1 - 1e-7.

    c: a positive float or 0-dim tensor (minus the curvature; the ball has radius 1/sqrt(c)); a tensor
    that requires grad gets its gradient. dim: the coordinate dimension; inputs broadcast like torch.
    backend: None (automatic), "native", "triton" or "torch" (see hypops._backend).
    """
    c = prepare("logmap0", dim, c, y=y)
    return _backend.select("logmap0", y.device, backend)(y, c=c, dim=dim)


def _native(y, *, c, dim):
    return native_rowwise("logmap0", (y,), c, dim, reduces=False)


_backend.register("logmap0", "torch", reference.logmap0)
_backend.register("logmap0", "native", _native)
register_rowwise("logmap0", 1, reduces=False)
