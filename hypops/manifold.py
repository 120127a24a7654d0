"""hypops.PoincareBall: geoopt's PoincareBall with its hot methods running hypops ops.

A drop-in replacement: same constructor (``c``, ``learnable``), same method names, argument orders and
defaults, so ``geoopt.ManifoldParameter`` and ``geoopt.optim.RiemannianAdam`` / ``RiemannianSGD`` work
unchanged. Methods hypops does not accelerate (transp, gyration, mobius_matvec, ...) are geoopt's own.
Calls that ask for something the ops do not do (``project=False``) fall back to geoopt as well.

The curvature is geoopt's: ``self.c`` (softplus of the stored parameter, learnable or not) is passed to
the ops as a 0-dim tensor, so a learnable c gets its gradient through the kernels.
"""

from __future__ import annotations

import geoopt
import torch

from . import ops


class PoincareBall(geoopt.PoincareBall):
    """geoopt.PoincareBall whose expmap0/logmap0/expmap/logmap/mobius_add/dist/dist0/dist2/dist2plane/
    projx/retr run hypops kernels. ``backend`` (None, "native", "triton", "torch") is passed to every op.
    """

    def __init__(self, c=1.0, learnable=False, backend: str | None = None):
        super().__init__(c=c, learnable=learnable)
        self.backend = backend

    def projx(self, x: torch.Tensor, *, dim=-1) -> torch.Tensor:
        return ops.project(x, c=self.c, dim=dim, backend=self.backend)

    def retr(self, x: torch.Tensor, u: torch.Tensor, *, dim=-1) -> torch.Tensor:
        return ops.project(x + u, c=self.c, dim=dim, backend=self.backend)

    def expmap0(self, u: torch.Tensor, *, dim=-1, project=True) -> torch.Tensor:
        if not project:
            return super().expmap0(u, dim=dim, project=False)
        return ops.expmap0(u, c=self.c, dim=dim, backend=self.backend)

    def logmap0(self, x: torch.Tensor, *, dim=-1) -> torch.Tensor:
        return ops.logmap0(x, c=self.c, dim=dim, backend=self.backend)

    def expmap(self, x: torch.Tensor, u: torch.Tensor, *, project=True, dim=-1) -> torch.Tensor:
        if not project:
            return super().expmap(x, u, project=False, dim=dim)
        return ops.expmap(x, u, c=self.c, dim=dim, backend=self.backend)

    def logmap(self, x: torch.Tensor, y: torch.Tensor, *, dim=-1) -> torch.Tensor:
        return ops.logmap(x, y, c=self.c, dim=dim, backend=self.backend)

    def mobius_add(self, x: torch.Tensor, y: torch.Tensor, *, dim=-1, project=True) -> torch.Tensor:
        if not project:
            return super().mobius_add(x, y, dim=dim, project=False)
        return ops.mobius_add(x, y, c=self.c, dim=dim, backend=self.backend)

    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim=False, dim=-1) -> torch.Tensor:
        return ops.dist(x, y, c=self.c, dim=dim, keepdim=keepdim, backend=self.backend)

    def dist2(self, x: torch.Tensor, y: torch.Tensor, *, keepdim=False, dim=-1) -> torch.Tensor:
        return self.dist(x, y, keepdim=keepdim, dim=dim) ** 2

    def dist0(self, x: torch.Tensor, *, dim=-1, keepdim=False) -> torch.Tensor:
        x_last = x.movedim(dim, -1)
        origin = x_last.new_zeros(x_last.shape[-1])
        d = ops.dist(origin, x_last, c=self.c, keepdim=keepdim, backend=self.backend)
        return d.movedim(-1, dim) if keepdim else d

    def dist2plane(self, x, p, a, *, dim=-1, keepdim=False, signed=False, scaled=False) -> torch.Tensor:
        return ops.dist2plane(
            x, p, a, c=self.c, dim=dim, keepdim=keepdim, signed=signed, scaled=scaled, backend=self.backend
        )
