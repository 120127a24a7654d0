"""hypops.nn.ExpMap0 and LogMap0: modules over hypops.expmap0 / hypops.logmap0 (Euclidean <-> ball)."""

from __future__ import annotations

import torch
from torch import nn

from ..ops import expmap0, logmap0
from ._common import make_curvature


class _Map0(nn.Module):
    _fn = None
    _name = ""

    def __init__(self, c=1.0, learnable_c: bool = False, *, dim: int = -1, backend: str | None = None):
        super().__init__()
        where = f"hypops.nn.{self._name}"
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"{where}: dim must be an int, got {type(dim).__name__}")
        self.dim = dim
        self.backend = backend
        self.curvature = make_curvature(where, c, learnable_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return type(self)._fn(x, c=self.curvature(), dim=self.dim, backend=self.backend)

    def extra_repr(self) -> str:
        return f"dim={self.dim}" + (f", backend={self.backend!r}" if self.backend is not None else "")


class ExpMap0(_Map0):
    """u -> hypops.expmap0(u, c, dim): tangent vectors at the origin (Euclidean features) to points of the
    ball, projected. c: a positive float / 0-dim tensor (fixed), ``learnable_c=True`` (exp(log_c)), or a
    shared ``hypops.nn.Curvature``."""

    _fn = staticmethod(expmap0)
    _name = "ExpMap0"


class LogMap0(_Map0):
    """y -> hypops.logmap0(y, c, dim): points of the ball to tangent vectors at the origin. c as for
    ``ExpMap0``."""

    _fn = staticmethod(logmap0)
    _name = "LogMap0"
