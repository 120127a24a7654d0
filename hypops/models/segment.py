"""Segmenting a volume with a trained model: per-voxel latents, hyperbolic k-means at several granularities,
instance counts.

``embed_volume`` runs the dense model's encoder over a volume in overlapping tiles: each tile is read with a
halo of half the encoder's receptive field and only its core is kept, so the latents equal those of one pass
over the whole volume (the halo covers every voxel a core latent depends on) while memory stays bounded by
the tile size -- a tomogram larger than memory is streamed tile by tile from its memory map. (Blending the
overlaps is not needed: with a halo of the receptive radius the overlapping predictions are identical.)

``cluster_latents`` clusters the latent means with ``PoincareKMeans`` once per requested cluster count (one
model, several granularities: 2 / 4 / 6 clusters for the synthetic levels 1 / 2 / 3).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from .kmeans import PoincareKMeans


_ASSIGN_CHUNK = 1 << 20  # voxels assigned to centres per step


def _tiles(size: int, tile: int):
    for start in range(0, size, tile):
        yield start, min(size, start + tile)


@torch.no_grad()
def embed_volume(model, volume, *, tile: int = 64, device=None, progress=None) -> torch.Tensor:
    """Latent means [D, Z, Y, X] (float32, on the CPU) of a [Z, Y, X] volume (numpy array, memmap or tensor)
    by ``model.embed`` over tiles of ``tile``³ voxels plus a halo of ``model.receptive_field // 2``.
    ``progress``: an optional callable(done, total) called after each tile."""
    if tile < 1:
        raise ValueError(f"embed_volume: tile must be >= 1, got {tile}")
    shape = tuple(volume.shape)
    if len(shape) != 3:
        raise ValueError(f"embed_volume: volume must be [Z, Y, X], got shape {shape}")
    device = torch.device(device or next(model.parameters()).device)
    halo = model.receptive_field // 2
    D = model.config.latent_dim
    out = torch.empty((D, *shape), dtype=torch.float32)
    boxes = [(a, b, c) for a in _tiles(shape[0], tile) for b in _tiles(shape[1], tile) for c in _tiles(shape[2], tile)]
    was_training = model.training
    model.eval()
    try:
        for i, box in enumerate(boxes):
            lo = [max(0, s - halo) for s, _ in box]
            hi = [min(n, e + halo) for (_, e), n in zip(box, shape)]
            block = volume[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            x = torch.as_tensor(np.asarray(block, dtype=np.float32) if not torch.is_tensor(block) else block)
            mu = model.embed(x.to(device=device, dtype=torch.float32)[None, None])[0]
            core = tuple(slice(s - l, e - l) for (s, e), l in zip(box, lo))
            out[:, box[0][0]:box[0][1], box[1][0]:box[1][1], box[2][0]:box[2][1]] = mu[(slice(None), *core)].float().cpu()
            if progress is not None:
                progress(i + 1, len(boxes))
    finally:
        model.train(was_training)
    return out


def cluster_latents(latents: torch.Tensor, clusters: Iterable[int], *, c=1.0, seed: int = 0, n_init: int = 4,
                    max_points: int | None = 200_000) -> dict[int, torch.Tensor]:
    """Labels [Z, Y, X] (int64) for each cluster count, from PoincareKMeans on the voxels' latent means.
    k-means is fitted on at most ``max_points`` voxels (a seeded subsample; all of them when fewer) and then
    assigns every voxel, so a large tomogram costs one distance pass per granularity."""
    D, *spatial = latents.shape
    flat = latents.reshape(D, -1)
    n = flat.shape[1]
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(n, generator=gen)[:max_points] if max_points is not None and n > max_points else None
    fit_pts = (flat if pick is None else flat[:, pick]).t().double()
    out = {}
    for k in clusters:
        if k < 1:
            raise ValueError(f"cluster_latents: cluster counts must be >= 1, got {k}")
        km = PoincareKMeans(n_clusters=int(k), c=c, n_init=n_init, seed=seed).fit(fit_pts)
        labels = torch.empty(n, dtype=torch.long)
        # assign in chunks: a tomogram's latents in float64 plus a distance per centre would not fit in memory
        for i in range(0, n, _ASSIGN_CHUNK):
            labels[i:i + _ASSIGN_CHUNK] = km.predict(flat[:, i:i + _ASSIGN_CHUNK].t().double())
        out[int(k)] = labels.reshape(spatial)
    return out


def order_by_radius(labels: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """Relabels clusters by the mean hyperbolic radius of their members (0 = closest to the origin), so that
    label numbers mean the same thing across runs and granularities (the latent hierarchy puts coarse
    structure near the origin)."""
    D = latents.shape[0]
    r = latents.reshape(D, -1).norm(dim=0).double()
    lab = labels.reshape(-1)
    k = int(lab.max()) + 1 if lab.numel() else 0
    sums = torch.zeros(k, dtype=torch.float64).index_add_(0, lab, r)
    counts = torch.bincount(lab, minlength=k).clamp_min(1)
    order = torch.argsort(sums / counts)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k)
    return rank[labels]

