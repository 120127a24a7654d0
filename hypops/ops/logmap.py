"""hypops.logmap: the public function, and its native op's fake registration (autograd: csrc/autograd.cpp).

Kernels: csrc/cpu/logmap_cpu.cpp (formula in csrc/common/math.h); reference: hypops.reference.logmap.
"""

from __future__ import annotations

from .. import _backend, reference
from ._common import native_rowwise, prepare, register_rowwise


def logmap(x, y, *, c=1.0, dim=-1, backend=None):
    """Logarithmic map at x: (2 / (sqrt(c) lambda_x)) artanh(sqrt(c)|w|) w / |w| with w = (-x) (+) y.

    c: a positive float or 0-dim tensor (minus the curvature; the ball has radius 1/sqrt(c)); a tensor
    that requires grad gets its gradient. dim: the coordinate dimension; inputs broadcast like torch.
    backend: None (automatic), "native", "triton" or "torch" (see hypops._backend).
    """
    c = prepare("logmap", dim, c, x=x, y=y)
    return _backend.select("logmap", x.device, backend)(x, y, c=c, dim=dim)


def _native(x, y, *, c, dim):
    return native_rowwise("logmap", (x, y,), c, dim, reduces=False)


_backend.register("logmap", "torch", reference.logmap)
_backend.register("logmap", "native", _native)
register_rowwise("logmap", 2, reduces=False)
