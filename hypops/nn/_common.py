"""What the hypops.nn layers share: the curvature module, constructor checks, and the plane
parameterisations. Layers compute nothing here beyond turning free parameters into (p, a)."""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch
from torch import nn

from ..ops import dist2plane, expmap0, mobius_add

PARAMETERIZATIONS = ("expmap0", "pvae")

# Standard deviation of the norm of a plane point's tangent vector at the origin, at initialisation (see
# the Gyroplane docstring): |u| ~ 0.25 puts each plane point at geodesic distance ~0.5 from the origin.
POINT_TANGENT_NORM = 0.25


def _check_c_value(where: str, c) -> float:
    if isinstance(c, torch.Tensor):
        if c.dim() != 0 or not c.is_floating_point():
            raise ValueError(f"{where}: c must be a positive float or a 0-dim floating tensor, got {c!r}")
        c = float(c.detach())
    elif isinstance(c, bool) or not isinstance(c, Real):
        raise TypeError(f"{where}: c must be a positive float, a 0-dim tensor or a hypops.nn.Curvature, got "
                        f"{type(c).__name__}")
    c = float(c)
    if not (c > 0 and math.isfinite(c)):
        raise ValueError(f"{where}: c must be positive and finite (c is minus the curvature), got {c}")
    return c


class Curvature(nn.Module):
    """The curvature c > 0 of a Poincaré ball (the ball has radius 1/sqrt(c)), as a module whose forward()
    returns c as a 0-dim tensor.

    Fixed (``learnable=False``): a buffer ``c``, saved in the state dict, created in float64 so that it
    holds the given value exactly (the ops cast it to each input's compute dtype; note that
    ``module.float()`` converts it like any buffer).
    Learnable: a parameter ``log_c`` with c = exp(log_c). exp keeps c positive without a projection step
    (plain torch.optim works) and makes optimiser steps relative: c is meaningful over orders of
    magnitude, and a step on log_c changes c by the same factor whether c is 0.01 or 10.

    One instance may be passed as ``c=`` to several layers so that they share one (learnable) curvature.
    """

    def __init__(self, c=1.0, learnable: bool = False):
        super().__init__()
        value = _check_c_value("hypops.nn.Curvature", c)
        self.learnable = bool(learnable)
        if self.learnable:
            self.log_c = nn.Parameter(torch.tensor(math.log(value)))
        else:
            # float64 whatever the default dtype: the ops cast c to the input's compute dtype, and a
            # float32 buffer would make a float64 model run at c = float32(c) (0.3 -> 0.30000001).
            self.register_buffer("c", torch.tensor(value, dtype=torch.float64))

    def forward(self) -> torch.Tensor:
        return self.log_c.exp() if self.learnable else self.c

    def extra_repr(self) -> str:
        return f"c={float(self().detach()):.4g}, learnable={self.learnable}"


def make_curvature(where: str, c, learnable_c) -> Curvature:
    if isinstance(c, Curvature):
        if learnable_c:
            raise ValueError(
                f"{where}: learnable_c=True with a Curvature instance as c; the instance decides "
                "(pass Curvature(c, learnable=True))"
            )
        return c
    return Curvature(_check_c_value(where, c), learnable=bool(learnable_c))


def check_positive_int(where: str, name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, Integral):
        raise TypeError(f"{where}: {name} must be a positive int, got {type(v).__name__} {v!r}")
    if v <= 0:
        raise ValueError(f"{where}: {name} must be a positive int, got {v}")
    return int(v)


def check_triple(where: str, name: str, v, minimum: int) -> tuple[int, int, int]:
    vals = (v, v, v) if isinstance(v, Integral) and not isinstance(v, bool) else v
    try:
        vals = tuple(vals)
    except TypeError:
        raise TypeError(f"{where}: {name} must be an int or 3 ints, got {v!r}") from None
    if len(vals) != 3 or any(isinstance(e, bool) or not isinstance(e, Integral) for e in vals):
        raise TypeError(f"{where}: {name} must be an int or 3 ints, got {v!r}")
    if any(e < minimum for e in vals):
        raise ValueError(f"{where}: {name} must be >= {minimum} in every dimension, got {v!r}")
    return tuple(int(e) for e in vals)


def check_parameterization(where: str, parameterization: str) -> str:
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"{where}: parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}"
        )
    return parameterization


class PlaneParams:
    """Mixin: the free parameters of a set of gyroplanes (coordinates on dim 1) and their map to (p, a).

    ``expmap0``: ``point_tangent`` u and ``normal`` a, both [out, D, *kernel]; p = expmap0(u, dim=1).
    ``pvae``: ``_weight`` W [out, D] and ``_bias`` b [out, 1] (pvae's GeodesicLayer names and shapes);
    P = expmap0(b W), and the plane is *through* A = W (1 - c|P|^2) *with normal* P (see Gyroplane).
    """

    def _init_planes(self, parameterization: str, out: int, in_dim: int, kernel: tuple[int, ...] = ()):
        self.parameterization = parameterization
        if parameterization == "pvae":
            self._weight = nn.Parameter(torch.empty(out, in_dim))
            self._bias = nn.Parameter(torch.empty(out, 1))
        else:
            self.point_tangent = nn.Parameter(torch.empty(out, in_dim, *kernel))
            self.normal = nn.Parameter(torch.empty(out, in_dim, *kernel))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if self.parameterization == "pvae":
                # pvae's RiemannianLayer.reset_parameters: kaiming_normal_(a=sqrt(5)) on W (std sqrt(1/3) /
                # sqrt(fan_in)) and U(-4/sqrt(fan_in), 4/sqrt(fan_in)) on b.
                fan_in = self._weight.shape[1]
                nn.init.kaiming_normal_(self._weight, a=math.sqrt(5))
                bound = 4 / math.sqrt(fan_in)
                nn.init.uniform_(self._bias, -bound, bound)
            else:
                d = self.point_tangent.shape[1]
                nn.init.normal_(self.point_tangent, std=POINT_TANGENT_NORM / math.sqrt(d))
                nn.init.normal_(self.normal, std=1 / math.sqrt(d))

    def effective_planes(self, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The (p, a) that forward passes to the functional op, for curvature c (default: the layer's)."""
        if c is None:
            c = self.curvature()
        if self.parameterization == "pvae":
            P = expmap0(self._bias * self._weight, c=c, backend=self.backend)
            A = self._weight * (1 - c * P.pow(2).sum(dim=-1, keepdim=True))
            # pvae calls normdist2plane(x, a, p) as (z, P, A): A is the point, P the normal.
            return A, P
        return expmap0(self.point_tangent, c=c, dim=1, backend=self.backend), self.normal

    def _pvae_exact(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x [..., D] -> [..., out] evaluated as the published code does, its projection included:
        D_k = proj((-A_k) (+) x) (hypops.mobius_add projects its result, as geoopt's class method does),
        then the distance from D_k to the plane through the origin with normal P_k, which is the published
        asinh(2 sqrt(c) <D_k, P_k> / ((1 - c|D_k|^2) |P_k|)) / sqrt(c). Builds [..., out, D] like pvae."""
        A, P = self.effective_planes(c)
        D = mobius_add(-A, x.unsqueeze(-2), c=c, backend=self.backend)
        return dist2plane(D, torch.zeros_like(P), P, c=c, signed=True, backend=self.backend)
