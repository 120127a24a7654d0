"""hypops.project: the public function, and its native op's fake registration (autograd: csrc/autograd.cpp).

Kernels: csrc/cpu/project_cpu.cpp (formula in csrc/common/math.h); reference: hypops.reference.project.
"""

from __future__ import annotations

from .. import _backend, reference
from ._common import native_rowwise, prepare, register_rowwise


def project(x, *, c=1.0, dim=-1, backend=None):
    """Rescales x onto the sphere of radius (1 - eps)/sqrt(c) when it lies beyond it (eps: 4e-3 float32, 1e-5 float64, 4e-3 float16, 8e-3 bfloat16).

    c: a positive float or 0-dim tensor (minus the curvature; the ball has radius 1/sqrt(c)); a tensor
    that requires grad gets its gradient. dim: the coordinate dimension; inputs broadcast like torch.
    backend: None (automatic), "native", "triton" or "torch" (see hypops._backend).
    """
    c = prepare("project", dim, c, x=x)
    return _backend.select("project", x.device, backend)(x, c=c, dim=dim)


def _native(x, *, c, dim):
    return native_rowwise("project", (x,), c, dim, reduces=False)


_backend.register("project", "torch", reference.project)
_backend.register("project", "native", _native)
register_rowwise("project", 1, reduces=False)
