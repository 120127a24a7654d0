"""The hierarchical triplet loss of Hsu et al. 2021 (eq. 8 of the paper; SPEC §4).

    L = mean_b max(0, d(anchor_b, positive_b)^q - d(anchor_b, negative_b)^q + margin)

with q = 2 if squared else 1, on encoder means: the anchor ("parent") patch should be closer to its positive child (same centre, smaller)
than to a negative child (same size, outside the parent).

Published code vs paper: the code squares the distances (``squared=True``, the default here, reproduces
it; the paper writes them unsquared), and evaluates the hyperbolic distance with geoopt's default c = 1
whatever the model's curvature (``c=1.0`` here; the VAE passes its own c unless told to reproduce that
quirk). ``metric="euclidean"`` gives the Euclidean ablation (squared Euclidean distance, published).
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops import dist

__all__ = ["HierarchicalTripletLoss"]

METRICS = ("hyperbolic", "euclidean")


class HierarchicalTripletLoss(nn.Module):
    """HierarchicalTripletLoss(margin=0.2, squared=True, c=1.0, metric="hyperbolic", backend=None).

    forward(anchor, positive, negative, c=None) -> 0-dim tensor: the batch mean of the hinge above.
    anchor, positive, negative: [..., D] (points of the ball of radius 1/sqrt(c) for the hyperbolic
    metric); the mean runs over every leading index. ``c`` at call time overrides the constructor's (a
    float or 0-dim tensor; its gradient flows when it requires grad). ``distances(...)`` returns the two
    distances (d_pos, d_neg) unsquared, for logging and tests.
    """

    def __init__(self, margin: float = 0.2, squared: bool = True, c=1.0, metric: str = "hyperbolic",
                 backend: str | None = None):
        super().__init__()
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
            raise ValueError(f"HierarchicalTripletLoss: margin must be a non-negative number, got {margin!r}")
        if metric not in METRICS:
            raise ValueError(f"HierarchicalTripletLoss: metric must be one of {METRICS}, got {metric!r}")
        if not isinstance(c, torch.Tensor) and not (isinstance(c, (int, float)) and c > 0):
            raise ValueError(f"HierarchicalTripletLoss: c must be a positive float or a 0-dim tensor, "
                             f"got {c!r}")
        self.margin = float(margin)
        self.squared = bool(squared)
        self.c = c
        self.metric = metric
        self.backend = backend

    @staticmethod
    def _check(anchor, positive, negative):
        for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
            if not isinstance(t, torch.Tensor) or t.dim() == 0:
                raise ValueError(f"HierarchicalTripletLoss: {name} must be a tensor [..., D]")
        if positive.shape != anchor.shape or negative.shape != anchor.shape:
            raise ValueError(
                "HierarchicalTripletLoss: anchor, positive and negative must have one shape, got "
                f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}"
            )

    def distances(self, anchor, positive, negative, c=None):
        self._check(anchor, positive, negative)
        if self.metric == "euclidean":
            return (anchor - positive).norm(dim=-1), (anchor - negative).norm(dim=-1)
        c = self.c if c is None else c
        return (dist(anchor, positive, c=c, backend=self.backend),
                dist(anchor, negative, c=c, backend=self.backend))

    def forward(self, anchor, positive, negative, c=None) -> torch.Tensor:
        if self.squared and self.metric == "euclidean":
            # Squared Euclidean distance straight from the difference: the norm's gradient is undefined
            # at zero (identical embeddings), its square's is not.
            self._check(anchor, positive, negative)
            d_pos = (anchor - positive).pow(2).sum(-1)
            d_neg = (anchor - negative).pow(2).sum(-1)
        else:
            d_pos, d_neg = self.distances(anchor, positive, negative, c)
            if self.squared:
                d_pos, d_neg = d_pos.pow(2), d_neg.pow(2)
        return torch.relu(d_pos - d_neg + self.margin).mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}, squared={self.squared}, metric={self.metric!r}, c={self.c}"
