"""hypops.gyroplane_bank: distances from every point to every plane of a bank (the core of
hypops.nn.Gyroplane), with its native op's fake registration (autograd: csrc/autograd.cpp).

Kernel: csrc/cpu/gyroplane_bank_cpu.cpp (two GEMMs + the dist2plane formula of csrc/common/math.h);
reference: hypops.reference.gyroplane_bank.
"""

from __future__ import annotations

import torch

from .. import _backend, reference
from .._checks import check_last_dims, check_points, curvature


def gyroplane_bank(x, p, a, *, c=1.0, signed=True, scaled=False, backend=None):
    """dist2plane of every point x [..., D] to every plane (p[k], a[k]), p and a [P, D] -> [..., P].

    Signed by default (a gyroplane layer is the hyperbolic analogue of an affine map). The native kernel
    never builds the [..., P, D] temporary: memory is O(N P).
    """
    check_points("gyroplane_bank", x=x, p=p, a=a)
    check_last_dims("gyroplane_bank", -1, x=x, p=p, a=a)
    if p.dim() != 2 or p.shape != a.shape:
        raise ValueError(
            f"hypops.gyroplane_bank: p and a must both be [P, D], got {tuple(p.shape)} and {tuple(a.shape)}"
        )
    c = curvature("gyroplane_bank", c, x)
    return _backend.select("gyroplane_bank", x.device, backend)(x, p, a, c=c, signed=signed, scaled=scaled)


def _native(x, p, a, *, c, signed=True, scaled=False):
    lead = x.shape[:-1]
    out = torch.ops.hypops.gyroplane_bank(x.reshape(-1, x.shape[-1]), p, a, c, signed, scaled)
    return out.reshape(*lead, p.shape[0])


_backend.register("gyroplane_bank", "torch", reference.gyroplane_bank)
_backend.register("gyroplane_bank", "native", _native)
if _backend.native_error is None:

    @torch.library.register_fake("hypops::gyroplane_bank")
    def _fake(x, p, a, c, signed, scaled):
        for n, t in (("p", p), ("a", a)):  # a meta input wins dispatch: raise rather than return garbage
            if t.device != x.device:
                raise RuntimeError(f"hypops.gyroplane_bank: x is on {x.device} but {n} is on {t.device}")
        if c.device != x.device and c.device.type != "cpu":
            raise RuntimeError(f"hypops.gyroplane_bank: c is on {c.device} but the points are on {x.device}")
        return x.new_empty((x.shape[0], p.shape[0]))

    @torch.library.register_fake("hypops::gyroplane_bank_backward")
    def _fake_backward(grad, x, p, a, c, signed, scaled):
        return x.new_empty(x.shape), p.new_empty(p.shape), a.new_empty(a.shape), c.new_empty(())
