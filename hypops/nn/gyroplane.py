"""hypops.nn.Gyroplane: a bank of gyroplanes, ball -> R^out, over hypops.gyroplane_bank."""

from __future__ import annotations

import torch
from torch import nn

from ..ops import gyroplane_bank
from ._common import PlaneParams, check_parameterization, check_positive_int, make_curvature


class Gyroplane(PlaneParams, nn.Module):
    """A bank of ``out_features`` gyroplanes: x [..., in_dim] (points of the ball of radius 1/sqrt(c))
    -> [..., out_features], the signed distances of x to each plane (SPEC §1 dist2plane, ``signed=True``,
    unscaled), computed by ``hypops.gyroplane_bank`` (two GEMMs; no [..., out, in_dim] temporary).

    Parameters (``parameterization="expmap0"``, the default) — valid by construction, so plain
    ``torch.optim`` works with no projection step:

    - ``point_tangent`` u [out, in_dim]: plane k passes through p_k = expmap0(u_k) (always in the ball).
    - ``normal`` a [out, in_dim]: free. The distance depends only on a's direction.

    Initialisation: u ~ N(0, 0.25² / in_dim) and a ~ N(0, 1 / in_dim) per entry, so |u| ≈ 0.25 and
    |a| ≈ 1 for every in_dim. Each plane point then lies at geodesic distance 2|u| ≈ 0.5 from the origin
    whatever c is (expmap0 preserves that distance), in a random direction, so the plane passes close to
    the origin with a small random offset. For inputs spread around the origin (measured with
    expmap0(v), v ~ N(0, I / in_dim)), every plane cuts the cloud: per unit |mean| / std ≈ 0.25-0.37 and
    no more than 1 unit in 256 has 95% of the inputs on one side (twice as long point tangents leave
    2-18% of the units nearly one-sided). The outputs' spread is the inputs' own spread along a random
    direction (std 1.7, 0.85, 0.35 at in_dim 2, 16, 128 for those inputs): a signed distance does not
    depend on |a|, so no initial scale can change it (tests/test_nn.py checks these statistics). |a| ≈ 1 matters for ``mlr_logits``, whose logits
    then start at about λ_p ≈ 2 times the distances.

    ``mlr_logits=True`` returns Ganea et al. 2018's hyperbolic MLR logits λ_{p_k} |a_k| d_k (SPEC §1
    dist2plane row) instead of the distances d_k, with λ_p = 2 / (1 - c|p|²).

    ``parameterization="pvae"`` reproduces the published layer (pvae's GeodesicLayer, used by Hsu et al.
    2021): parameters ``_weight`` W [out, in_dim] and ``_bias`` b [out, 1] (pvae's names and shapes,
    pvae's initialisation: W ~ kaiming_normal_(a=sqrt(5)), i.e. std sqrt(1/3)/sqrt(in_dim); b ~
    U(±4/sqrt(in_dim))). The published code computes P_k = expmap0(b_k W_k) and A_k = W_k (1 - c|P_k|²) and
    then, because it passes them to ``normdist2plane(x, a, p)`` in swapped roles, measures the signed,
    unscaled distance to the plane **through A_k with normal P_k**; this option does exactly that. It
    matches the published output wherever the published code's projection of (-A_k) ⊕ x onto radius
    (1 - eps)/sqrt(c) does not act (i.e. wherever that point lies within the clip radius; inputs near the
    boundary can take it past) and while A_k stays inside the ball (nothing in the published layer keeps it there; at in_dim = 2, out = 300, the
    paper's decoder, about 0.6% of the planes start with |A_k| >= 1/sqrt(c)). ``pvae_exact=True`` also
    copies that projection (it is one of the published quirks, so it is off by default), which makes the
    output equal the published formula up to rounding everywhere, planes with A_k outside the ball
    included (tested up to the clip radius in float64 and float32); it evaluates
    hypops.mobius_add then hypops.dist2plane on an [..., out, in_dim] temporary, as the published layer
    does, instead of the two-GEMM bank. ``mlr_logits`` is not part of the published layer and is refused
    with it.

    c: a positive float or 0-dim tensor (fixed: a buffer), or a ``hypops.nn.Curvature`` to share one
    with other layers; ``learnable_c=True`` learns it as exp(log_c) (see ``Curvature``). ``backend`` is
    passed to every op the layer calls.
    """

    def __init__(self, in_dim: int, out_features: int, c=1.0, learnable_c: bool = False, *,
                 mlr_logits: bool = False, parameterization: str = "expmap0", pvae_exact: bool = False,
                 backend: str | None = None):
        super().__init__()
        where = "hypops.nn.Gyroplane"
        self.in_dim = check_positive_int(where, "in_dim", in_dim)
        self.out_features = check_positive_int(where, "out_features", out_features)
        check_parameterization(where, parameterization)
        if mlr_logits and parameterization == "pvae":
            raise ValueError(f"{where}: mlr_logits=True is not part of the published (pvae) layer; "
                             "use parameterization='expmap0'")
        if pvae_exact and parameterization != "pvae":
            raise ValueError(f"{where}: pvae_exact=True needs parameterization='pvae'")
        self.mlr_logits = bool(mlr_logits)
        self.pvae_exact = bool(pvae_exact)
        self.backend = backend
        self.curvature = make_curvature(where, c, learnable_c)
        self._init_planes(parameterization, self.out_features, self.in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() == 0 or x.shape[-1] != self.in_dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"hypops.nn.Gyroplane: input x must be [..., in_dim={self.in_dim}], got {shape}")
        c = self.curvature()
        if self.pvae_exact:
            return self._pvae_exact(x, c)
        p, a = self.effective_planes(c)
        y = gyroplane_bank(x, p, a, c=c, signed=True, scaled=self.mlr_logits, backend=self.backend)
        if self.mlr_logits:
            # p = expmap0(u) is projected, so 1 - c|p|^2 >= 1 - (1 - eps)^2 > 0: no clamp needed.
            y = y * (2 / (1 - c * p.pow(2).sum(dim=-1)))
        return y

    def extra_repr(self) -> str:
        s = f"in_dim={self.in_dim}, out_features={self.out_features}, "
        s += f"parameterization={self.parameterization!r}"
        if self.mlr_logits:
            s += ", mlr_logits=True"
        if self.pvae_exact:
            s += ", pvae_exact=True"
        if self.backend is not None:
            s += f", backend={self.backend!r}"
        return s
