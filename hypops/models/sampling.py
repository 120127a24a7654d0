"""Vectorised multi-scale triplet sampling (Hsu et al. 2021, §4 of the paper; SPEC §4).

One step draws B triplets from volumes ``[V, X, Y, Z]``:

* **anchor** ("parent"): a cube of extent ``2 * (r // 2) + 1`` voxels (odd, so it has a centre voxel, as
  the published crops do), r uniform on ``anchor_range`` (published: 5..34 on 50³ volumes) or log-uniform
  (``log_uniform=True``, the paper's choice for BraTS);
* **positive** child: the same centre, r_c uniform on ``child_min .. min(child_max, r - child_gap)``
  (published: 3 .. min(14, r - 2)), extent ``2 * (r_c // 2) + 1``; since r_c <= r - 2 its half-width is at
  least one smaller than the anchor's, so it lies strictly inside the anchor;
* **negative** child: the positive's extent, from the same volume, lying **entirely** outside the anchor
  box (disjoint voxel sets). The published code drew its centre outside the anchor per axis only, so a
  negative could overlap the anchor's edge; here it cannot.

Every box lies inside its volume. Positions are exact uniform draws, with no rejection loop: the anchor's
corner is uniform over the corners from which some disjoint negative of the drawn size fits, and the
negative's corner is uniform over all corners disjoint from the anchor. Both sets are "a box of corners
minus an inner box" and are sampled by ``_uniform_outside``. (The published sampler instead clamped the
anchor size at the border, and froze all sizes at construction; here sizes are fresh every step.)

All crops are resized to ``patch_size``³ (10³ for the paper's encoder) by trilinear interpolation with
``align_corners=False`` semantics — exactly ``F.interpolate(crop, size=patch_size, mode="trilinear")`` of
each crop, as the tests check — evaluated for the 3B crops at once by a separable gather from the volumes
(no per-crop Python loop, no copy of the volumes per crop). The published code used skimage's rescale
(order 1, 'reflect' borders), which differs from this at crop borders only.

API::

    sampler = TripletSampler(volumes, batch_size=128, seed=0)   # volumes: tensor [V, X, Y, Z]
    batch = sampler.sample()        # TripletBatch(anchor, positive, negative, *_box, volume)
    batch.anchor.shape == (128, 1, 10, 10, 10)
    state = sampler.state_dict(); sampler.load_state_dict(state)   # resume the random stream exactly

or functionally ``sample_triplets(volumes, batch_size, generator, ...)`` with your own torch.Generator
(``None``: the global RNG). Boxes are ``[B, 2, 3]`` int64: row 0 the first voxel (inclusive), row 1 one
past the last voxel (exclusive), per axis (X, Y, Z).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = ["TripletBatch", "TripletSampler", "sample_triplets"]


class TripletBatch(NamedTuple):
    anchor: torch.Tensor  # [B, 1, P, P, P]
    positive: torch.Tensor
    negative: torch.Tensor
    anchor_box: torch.Tensor  # [B, 2, 3] int64: (first voxel, one past the last) per axis
    positive_box: torch.Tensor
    negative_box: torch.Tensor
    volume: torch.Tensor  # [B] int64: index of the source volume (shared by the three crops)


def _check_int(name, v, minimum):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def _check_config(volumes, batch_size, patch_size, anchor_range, child_min, child_max, child_gap):
    if not isinstance(volumes, torch.Tensor) or volumes.dim() != 4 or not volumes.is_floating_point():
        shape = tuple(volumes.shape) if isinstance(volumes, torch.Tensor) else type(volumes).__name__
        raise ValueError(f"volumes must be a floating tensor [V, X, Y, Z], got {shape}")
    if volumes.shape[0] == 0:
        raise ValueError("volumes must hold at least one volume (V >= 1)")
    _check_int("batch_size", batch_size, 1)
    _check_int("patch_size", patch_size, 1)
    if not isinstance(anchor_range, (tuple, list)) or len(anchor_range) != 2:
        raise TypeError(f"anchor_range must be a pair (min, max), got {anchor_range!r}")
    lo = _check_int("anchor_range[0]", anchor_range[0], 1)
    hi = _check_int("anchor_range[1]", anchor_range[1], lo)
    _check_int("child_min", child_min, 1)
    _check_int("child_max", child_max, child_min)
    _check_int("child_gap", child_gap, 2)
    if lo - child_gap < child_min:
        raise ValueError(
            f"anchor_range[0] - child_gap must be >= child_min so that every anchor has a smaller child; got "
            f"anchor_range[0]={lo}, child_gap={child_gap}, child_min={child_min}"
        )
    extent_a = 2 * (hi // 2) + 1
    extent_c = 2 * (min(child_max, hi - child_gap) // 2) + 1
    smallest = min(volumes.shape[1:])
    # An anchor in a corner leaves S - extent_a voxels beside it, where the largest negative must fit.
    if extent_a + extent_c > smallest:
        raise ValueError(
            f"anchor_range[1]={hi} (extent {extent_a}) plus the largest child extent {extent_c} exceeds the "
            f"smallest volume side {smallest}: no negative could lie outside such an anchor"
        )


def _randint(n: torch.Tensor, generator, dtype=torch.float64) -> torch.Tensor:
    """Uniform integers in [0, n) for a tensor of counts n >= 1 (one draw per entry)."""
    u = torch.rand(n.shape, generator=generator, dtype=dtype, device=n.device)
    return torch.minimum((u * n).long(), n - 1)


def _uniform_outside(n: torch.Tensor, bad_lo: torch.Tensor, bad_hi: torch.Tensor, generator) -> torch.Tensor:
    """Uniform points of the integer box prod_j [0, n_j) minus the inner box prod_j [bad_lo_j, bad_hi_j]
    (inclusive; empty on an axis when bad_lo_j > bad_hi_j), one per row. n, bad_lo, bad_hi: [B, 3] int64.

    The allowed set is the disjoint union over j of R_j = {axes < j inside the bad interval, axis j
    outside it, axes > j anything}; pick j with probability |R_j| / total, then each coordinate uniformly
    from its set. Every row must have a non-empty allowed set (the callers guarantee it)."""
    bl = bad_lo.clamp(min=0)
    bh = torch.minimum(bad_hi, n - 1)
    nbad = (bh - bl + 1).clamp(min=0)
    ngood = n - nbad
    # |R_j| = prod_{i<j} nbad_i * ngood_j * prod_{i>j} n_i, in float64 (exact for these sizes).
    nb, ng, nn = nbad.double(), ngood.double(), n.double()
    sizes = torch.stack([ng[:, 0] * nn[:, 1] * nn[:, 2],
                         nb[:, 0] * ng[:, 1] * nn[:, 2],
                         nb[:, 0] * nb[:, 1] * ng[:, 2]], dim=1)
    cum = sizes.cumsum(1)
    u = torch.rand(n.shape[0], 1, generator=generator, dtype=torch.float64, device=n.device) * cum[:, -1:]
    j = (u >= cum).sum(1).clamp(max=2)  # the region index: first j with u < cum_j
    axis = torch.arange(3, device=n.device)
    before, at = axis < j[:, None], axis == j[:, None]
    # One uniform index per axis into the set that axis must come from: bad, good or everything.
    count = torch.where(before, nbad, torch.where(at, ngood, n))
    k = _randint(count.clamp(min=1), generator)
    # The good set is [0, bl) followed by (bh, n): index k maps past the bad interval once k >= bl.
    good = torch.where((k < bl) | (nbad == 0), k, k + nbad)
    return torch.where(before, bl + k, torch.where(at, good, k))


def _resize_crops(volumes: torch.Tensor, vol: torch.Tensor, lo: torch.Tensor, extent: torch.Tensor,
                  size: int) -> torch.Tensor:
    """Trilinear resize of the cubes volumes[vol, lo : lo + extent] to size³ (align_corners=False, the
    source coordinate clamped to the crop, as F.interpolate does), all crops at once. vol [N], lo [N, 3],
    extent [N] -> [N, 1, size, size, size]."""
    V, X, Y, Z = volumes.shape
    dev = volumes.device
    i = torch.arange(size, device=dev, dtype=torch.float64)
    scale = extent.double()[:, None] / size
    # Source coordinate inside the crop of output index i, clamped as F.interpolate clamps it.
    src = ((i + 0.5) * scale - 0.5).clamp(min=0)  # [N, size]
    src = torch.minimum(src, (extent - 1).double()[:, None])
    i0 = src.floor().long()
    i1 = torch.minimum(i0 + 1, (extent - 1)[:, None])
    w1 = (src - i0.double()).to(volumes.dtype)
    corners = torch.stack([i0, i1], dim=-1)  # [N, s, 2]: the two neighbours of each output index
    w = torch.stack([1 - w1, w1], dim=-1)  # [N, s, 2]: weights of the two neighbours per output index
    ix = (lo[:, 0, None, None] + corners) * (Y * Z)
    iy = (lo[:, 1, None, None] + corners) * Z
    iz = lo[:, 2, None, None] + corners
    idx = ((vol * (X * Y * Z))[:, None, None, None, None, None, None] + ix[:, :, :, None, None, None, None]
           + iy[:, None, None, :, :, None, None] + iz[:, None, None, None, None, :, :])
    # One gather of every 2x2x2 neighbourhood [N, s, 2, s, 2, s, 2], then the separable weights contract
    # one axis at a time (a quarter of the work of weighting eight full corner volumes).
    vals = volumes.reshape(-1)[idx]
    out = (vals * w[:, None, None, None, None, :, :]).sum(-1)
    out = (out * w[:, None, None, :, :, None]).sum(4)
    out = (out * w[:, :, :, None, None]).sum(2)
    return out.unsqueeze(1)


def _draw_sizes(batch, rng_lo, rng_hi, log_uniform, generator, device):
    if log_uniform:
        u = torch.rand(batch, generator=generator, dtype=torch.float64, device=device)
        r = torch.exp(math.log(rng_lo) + u * (math.log(rng_hi + 1) - math.log(rng_lo))).floor().long()
        return r.clamp(rng_lo, rng_hi)
    return rng_lo + _randint(torch.full((batch,), rng_hi - rng_lo + 1, device=device), generator)


def sample_triplets(volumes: torch.Tensor, batch_size: int, generator: torch.Generator | None = None, *,
                    patch_size: int = 10, anchor_range=(5, 34), child_min: int = 3, child_max: int = 14,
                    child_gap: int = 2, log_uniform: bool = False) -> TripletBatch:
    """One batch of B = batch_size triplets from ``volumes`` [V, X, Y, Z] (see the module docstring for
    the geometry). ``generator``: a torch.Generator on the volumes' device (None: the global RNG). Defaults
    are the published synthetic-data settings."""
    _check_config(volumes, batch_size, patch_size, tuple(anchor_range), child_min, child_max, child_gap)
    dev = volumes.device
    B = batch_size
    S = torch.tensor(volumes.shape[1:], device=dev, dtype=torch.long).expand(B, 3)

    r = _draw_sizes(B, anchor_range[0], anchor_range[1], log_uniform, generator, dev)
    top = torch.clamp(r - child_gap, max=child_max)  # >= child_min by the constructor check
    rc = child_min + _randint(top - child_min + 1, generator)
    ea, ec = (2 * (r // 2) + 1)[:, None], (2 * (rc // 2) + 1)[:, None]  # extents, [B, 1]

    # Anchor corner a in [0, S - ea]: a disjoint negative fits on axis j iff a_j >= ec (before it) or
    # a_j + ea + ec <= S (after it); the corners where it fits on no axis form the inner box below.
    a_lo = _uniform_outside(S - ea + 1, S - ea - ec + 1, ec - 1, generator)
    p_lo = a_lo + (ea - ec) // 2
    # Negative corner q in [0, S - ec] overlaps the anchor on axis j iff a_j - ec < q_j < a_j + ea.
    n_lo = _uniform_outside(S - ec + 1, a_lo - ec + 1, a_lo + ea - 1, generator)
    vol = _randint(torch.full((B,), volumes.shape[0], device=dev), generator)

    crops = _resize_crops(volumes, vol.repeat(3), torch.cat([a_lo, p_lo, n_lo]),
                          torch.cat([ea, ec, ec]).squeeze(1), patch_size)
    anchor, positive, negative = crops.split(B)

    def box(lo, e):
        return torch.stack([lo, lo + e], dim=1)

    return TripletBatch(anchor, positive, negative, box(a_lo, ea), box(p_lo, ec), box(n_lo, ec), vol)


class TripletSampler:
    """Draws a fresh ``TripletBatch`` per call of ``sample()`` from ``volumes`` [V, X, Y, Z], with its own
    torch.Generator seeded by ``seed`` (on the volumes' device), so that a seeded run is reproducible and
    independent of the global RNG. ``state_dict()`` / ``load_state_dict()`` save and restore the generator
    (a resumed run draws the same batches as an uninterrupted one). Options as ``sample_triplets``."""

    def __init__(self, volumes: torch.Tensor, batch_size: int, *, patch_size: int = 10, anchor_range=(5, 34),
                 child_min: int = 3, child_max: int = 14, child_gap: int = 2, log_uniform: bool = False,
                 seed: int = 0):
        anchor_range = tuple(anchor_range) if isinstance(anchor_range, (tuple, list)) else anchor_range
        _check_config(volumes, batch_size, patch_size, anchor_range, child_min, child_max, child_gap)
        _check_int("seed", seed, 0)
        self.volumes = volumes
        self.options = dict(patch_size=patch_size, anchor_range=anchor_range, child_min=child_min,
                            child_max=child_max, child_gap=child_gap, log_uniform=bool(log_uniform))
        self.batch_size = batch_size
        self.generator = torch.Generator(device=volumes.device)
        self.generator.manual_seed(seed)

    def sample(self) -> TripletBatch:
        return sample_triplets(self.volumes, self.batch_size, self.generator, **self.options)

    __call__ = sample

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
