"""Segmenting a volume with a trained model: per-voxel latents, hyperbolic k-means at several granularities,
instance counts.

Latents
-------
``embed_volume`` runs the dense model's encoder over a volume in overlapping tiles: each tile is read with a
halo of half the encoder's receptive field and only its core is kept, so the latents equal those of one pass
over the whole volume (the halo covers every voxel a core latent depends on) while memory stays bounded by
the tile size -- a tomogram larger than memory is streamed tile by tile from its memory map. (Blending the
overlaps is not needed: with a halo of the receptive radius the overlapping predictions are identical.)

``embed_patches`` gives the paper preset (one latent per 10³ patch) per-voxel latents: the latent of voxel v
is the encoder mean of the patch whose voxel (5, 5, 5) is v (it covers v - 5 .. v + 4 along each axis; a
10³ patch has no centre voxel, and this is the one ``DenseVAE``'s centre embedding uses too, index
``P // 2``), with the volume edge-padded (each face voxel repeated outwards, like the dense model's
replicate padding). ``stride`` S encodes only every S-th voxel along each axis (the grid ``grid_shape``):
the paper's encoder costs ~1e8 multiply-adds per patch, so S = 1 on a 50³ volume is minutes of CPU and S = 4
is 64 times less. The patches are strided views of a slab of the volume (``Tensor.unfold``), copied to the
encoder one batch at a time, so memory is bounded by the batch and the slab, never by the patch count.

Both also exist as generators of z-slabs (``dense_slabs``, ``patch_slabs``), which is what ``segment_slabs``
consumes: a tomogram is segmented without ever holding its latents (8 bytes a voxel at D = 2: 1 GiB for
512³) or a 64-bit label volume in memory.

Smoothing
---------
``smooth_slabs`` (streamed) / ``smooth_latents`` (in memory) Gaussian-filter the latents in the tangent space
at the origin before clustering (``hypops segment --smooth``, default 1.5 voxels): a voxel's latent sees only
the encoder's receptive field, and the filter removes the single-voxel speckle texture noise leaves.

Clusters
--------
``cluster_latents`` clusters the latent means with ``PoincareKMeans`` once per requested cluster count (one
model, several granularities: 2 / 4 / 6 clusters for the synthetic levels 1 / 2 / 3): fitted on a seeded
subsample of at most ``max_points`` voxels, then every voxel is assigned to its nearest centre in chunks.
``segment_slabs`` does the same in two streaming passes and gives the same labels (tested).
``order_by_radius`` renumbers clusters by mean latent radius.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from scipy import ndimage

from ..ops import expmap0, logmap0
from .kmeans import PoincareKMeans

_ASSIGN_CHUNK = 1 << 20  # voxels assigned to centres per step
_SLAB_VOXELS = 1 << 22  # voxels per z-slab read back in the assignment pass (32 MiB of latents at D = 2)
PATCH_BATCH = 512  # patches per encoder call of the paper preset (~100 MiB of activations)


def _tiles(size: int, tile: int):
    for start in range(0, size, tile):
        yield start, min(size, start + tile)


def grid_shape(shape, stride: int) -> tuple:
    """Voxels sampled with ``stride`` along each axis: 0, S, 2S, ... (the last one within the volume)."""
    return tuple(-(-n // stride) for n in shape)


def nearest_grid_index(n: int, stride: int) -> np.ndarray:
    """For each voxel 0..n-1 along an axis, the nearest sampled voxel's grid index (a tie goes up; beyond the
    last sample, the last one)."""
    return np.minimum((np.arange(n) + stride // 2) // stride, grid_shape((n,), stride)[0] - 1)


def upsample_nearest(grid: np.ndarray, shape, stride: int) -> np.ndarray:
    """A [..., gz, gy, gx] array on the stride grid -> [..., *shape] by nearest neighbour."""
    if stride == 1:
        return grid
    iz, iy, ix = (nearest_grid_index(n, stride) for n in shape)
    return grid[..., iz[:, None, None], iy[None, :, None], ix[None, None, :]]


def _check_volume(where, volume):
    shape = tuple(volume.shape)
    if len(shape) != 3:
        raise ValueError(f"{where}: volume must be [Z, Y, X], got shape {shape}")
    return shape


def _block(volume, index) -> torch.Tensor:
    block = volume[index]
    return block if torch.is_tensor(block) else torch.from_numpy(np.asarray(block, dtype=np.float32))


@torch.no_grad()
def dense_slabs(model, volume, *, tile: int = 64, device=None, progress=None) -> Iterator[tuple]:
    """Yields (z0, z1, latents [D, z1 - z0, Y, X] float32 numpy) for z-slabs of ``tile`` planes of a [Z, Y, X]
    volume (numpy array, memmap, ``io.Normalized`` view or tensor), each slab computed as tiles of ``tile``³
    voxels plus a halo of ``model.receptive_field // 2``. ``progress``: callable(done, total) per tile."""
    if tile < 1:
        raise ValueError(f"embed_volume: tile must be >= 1, got {tile}")
    shape = _check_volume("embed_volume", volume)
    device = torch.device(device or next(model.parameters()).device)
    halo = model.receptive_field // 2
    D = model.config.latent_dim
    zs, ys, xs = (list(_tiles(n, tile)) for n in shape)
    total, done = len(zs) * len(ys) * len(xs), 0
    was_training = model.training
    model.eval()
    try:
        for z in zs:
            slab = np.empty((D, z[1] - z[0], shape[1], shape[2]), dtype=np.float32)
            for y in ys:
                for x in xs:
                    box = (z, y, x)
                    lo = [max(0, s - halo) for s, _ in box]
                    hi = [min(n, e + halo) for (_, e), n in zip(box, shape)]
                    x_in = _block(volume, tuple(slice(a, b) for a, b in zip(lo, hi)))
                    mu = model.embed(x_in.to(device=device, dtype=torch.float32)[None, None])[0]
                    core = tuple(slice(s - l, e - l) for (s, e), l in zip(box, lo))
                    slab[:, :, y[0]:y[1], x[0]:x[1]] = mu[(slice(None), *core)].float().cpu().numpy()
                    done += 1
                    if progress is not None:
                        progress(done, total)
            yield z[0], z[1], slab
    finally:
        model.train(was_training)


SMOOTH_TRUNCATE = 4.0  # scipy.ndimage's default: the Gaussian kernel reaches int(4 sigma + 0.5) voxels


def _tangent(slab: np.ndarray, c: float) -> np.ndarray:
    """logmap0 along dim 0 of a [D, ...] float32 slab of ball points, in float64 (artanh near the boundary),
    returned as float32."""
    t = torch.from_numpy(np.ascontiguousarray(slab)).double()
    return logmap0(t, c=c, dim=0).float().numpy()


def _to_ball(tangent: np.ndarray, c: float) -> np.ndarray:
    return expmap0(torch.from_numpy(tangent).double(), c=c, dim=0).float().numpy()


def smooth_slabs(slabs, sigma: float, *, c=1.0) -> Iterator[tuple]:
    """Gaussian smoothing of latent z-slabs, (z0, z1, [D, z1 - z0, Y, X]) in, the same out: each latent is
    mapped to the tangent space at the origin (logmap0), every channel is filtered by a Gaussian of
    ``sigma`` voxels (grid steps) along z, y and x (``scipy.ndimage.gaussian_filter1d``, faces extended by
    their nearest value), and mapped back (expmap0). ``sigma = 0`` passes the slabs through unchanged.

    Why: a voxel's latent depends only on the encoder's receptive field, so texture noise makes single
    voxels flip cluster; averaging the latents of neighbours before clustering removes that speckle (in the
    demo's validation volumes it lifts level-2 Dice most; see README). The tangent space at the origin is
    where the models average latents already (``patch_embedding``).

    Streaming: planes are filtered along y and x as they arrive, and a slab is filtered along z once the
    slabs after it cover ``int(4 sigma + 0.5)`` planes (the kernel's reach), so the result equals filtering
    the whole latent volume at once while holding only a slab and that many planes either side."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"smooth_slabs: sigma must be a finite number >= 0 (voxels), got {sigma!r}")
    if sigma == 0:
        yield from slabs
        return
    reach = int(SMOOTH_TRUNCATE * sigma + 0.5)
    held = []  # (z0, z1, tangent slab filtered along y and x), in z order: the planes a later emit may need
    todo = []  # (z0, z1) of slabs still to emit

    def window(lo, hi):
        parts = [t[:, max(lo, a) - a:min(hi, b) - a] for a, b, t in held if b > lo and a < hi]
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    def emit(z0, z1, end=None):  # end: the volume's last plane + 1, once known
        lo, hi = max(0, z0 - reach), z1 + reach if end is None else min(end, z1 + reach)
        w = ndimage.gaussian_filter1d(window(lo, hi), sigma, axis=1, mode="nearest", truncate=SMOOTH_TRUNCATE)
        return z0, z1, _to_ball(np.ascontiguousarray(w[:, z0 - lo:z1 - lo]), c)

    top = 0
    for z0, z1, slab in slabs:
        t = _tangent(slab, c)
        for ax in (2, 3):
            t = ndimage.gaussian_filter1d(t, sigma, axis=ax, mode="nearest", truncate=SMOOTH_TRUNCATE)
        held.append((z0, z1, t))
        todo.append((z0, z1))
        top = z1
        while todo and todo[0][1] + reach <= top:
            a, b = todo.pop(0)
            yield emit(a, b)
            keep_from = (todo[0][0] if todo else top) - reach
            held[:] = [h for h in held if h[1] > keep_from]
    while todo:
        a, b = todo.pop(0)
        yield emit(a, b, top)


def smooth_latents(latents: torch.Tensor, sigma: float, *, c=1.0) -> torch.Tensor:
    """``smooth_slabs`` on one in-memory [D, Z, Y, X] latent volume; returns a float32 CPU tensor."""
    if sigma == 0:
        return latents
    lat = latents.detach().float().cpu().numpy()
    (_, _, out), = smooth_slabs([(0, lat.shape[1], lat)], sigma, c=c)
    return torch.from_numpy(out)


def embed_volume(model, volume, *, tile: int = 64, device=None, progress=None) -> torch.Tensor:
    """Latent means [D, Z, Y, X] (float32, on the CPU) of a [Z, Y, X] volume by the dense model, in tiles
    (``dense_slabs``)."""
    slabs = [s for _, _, s in dense_slabs(model, volume, tile=tile, device=device, progress=progress)]
    return torch.from_numpy(np.concatenate(slabs, axis=1))


def _edge_index(start: int, length: int, n: int) -> np.ndarray:
    """Indices start .. start + length - 1 clamped to [0, n - 1]: reading them is edge padding."""
    return np.clip(np.arange(start, start + length), 0, n - 1)


@torch.no_grad()
def patch_slabs(model, volume, *, stride: int = 1, batch: int = PATCH_BATCH, device=None,
                progress=None) -> Iterator[tuple]:
    """Yields (g0, g1, latents [D, g1 - g0, gy, gx] float32 numpy) over z-slabs of the stride grid
    (``grid_shape``): the paper encoder's mean of the 10³ patch at each grid voxel (module docstring).
    ``progress``: callable(done, total) per grid plane."""
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"embed_patches: stride must be a positive int, got {stride!r}")
    if batch < 1:
        raise ValueError(f"embed_patches: batch must be >= 1, got {batch}")
    shape = _check_volume("embed_patches", volume)
    P = model.patch_size
    h = P // 2
    device = torch.device(device or next(model.parameters()).device)
    D = model.config.latent_dim
    gz, gy, gx = grid_shape(shape, stride)
    # y/x indices of the edge-padded rows every patch of a plane draws from (the same for every slab)
    iy = _edge_index(-h, (gy - 1) * stride + P, shape[1])
    ix = _edge_index(-h, (gx - 1) * stride + P, shape[2])
    # planes per slab: the slab's input block (slab planes x stride + P, padded) stays near 64 MiB
    per = max(1, (1 << 24) // max(1, len(iy) * len(ix) * stride))
    rows = max(1, batch // gx)  # grid rows per encoder call (at least one row, so up to gx patches)
    was_training = model.training
    model.eval()
    try:
        for g0 in range(0, gz, per):
            g1 = min(gz, g0 + per)
            iz = _edge_index(g0 * stride - h, (g1 - 1 - g0) * stride + P, shape[0])
            # z first on the (memory-mapped) volume: only the slab's planes are read
            block = _block(volume, (slice(int(iz.min()), int(iz.max()) + 1),))
            block = block[torch.from_numpy(iz - iz.min())][:, torch.from_numpy(iy)][:, :, torch.from_numpy(ix)]
            # [g1 - g0, gy, gx, P, P, P]: every patch as a view into the block, nothing copied yet
            patches = block.unfold(0, P, stride).unfold(1, P, stride).unfold(2, P, stride)
            slab = np.empty((D, g1 - g0, gy, gx), dtype=np.float32)
            for z in range(g1 - g0):
                for y0 in range(0, gy, rows):
                    y1 = min(gy, y0 + rows)
                    x_in = patches[z, y0:y1].reshape(-1, 1, P, P, P)  # the one copy: this batch
                    mu = model.embed(x_in.to(device=device, dtype=torch.float32))
                    slab[:, z, y0:y1] = mu.float().cpu().numpy().T.reshape(D, y1 - y0, gx)
                if progress is not None:
                    progress(g0 + z + 1, gz)
            yield g0, g1, slab
    finally:
        model.train(was_training)


def embed_patches(model, volume, *, stride: int = 1, batch: int = PATCH_BATCH, device=None,
                  progress=None) -> torch.Tensor:
    """Latent means [D, gz, gy, gx] (the stride grid, ``grid_shape``) of a [Z, Y, X] volume by the paper
    preset's patch encoder (``patch_slabs``)."""
    slabs = [s for _, _, s in patch_slabs(model, volume, stride=stride, batch=batch, device=device,
                                          progress=progress)]
    return torch.from_numpy(np.concatenate(slabs, axis=1))


def subsample(n: int, max_points: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded subsample of ``max_points`` of ``n`` voxels, None when all of them are used.
    (numpy's choice without replacement takes O(max_points) memory; a permutation of all indices would take
    8 bytes a voxel -- 1 GiB for a 512³ tomogram.)"""
    if max_points is None or n <= max_points:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def _check_clusters(clusters) -> list[int]:
    ks = [int(k) for k in clusters]
    for k in ks:
        if k < 1:
            raise ValueError(f"cluster_latents: cluster counts must be >= 1, got {k}")
    return ks


def fit_kmeans(points: torch.Tensor, clusters, *, c=1.0, seed: int = 0, n_init: int = 4) -> dict:
    """One fitted PoincareKMeans per cluster count, on points [N, D] (fitted in float64)."""
    return {k: PoincareKMeans(n_clusters=k, c=c, n_init=n_init, seed=seed).fit(points.double())
            for k in _check_clusters(clusters)}


def assign(km: PoincareKMeans, flat: torch.Tensor) -> torch.Tensor:
    """Nearest centre (int64 [N]) of the points flat [D, N], in chunks: the points in float64 plus a distance
    per centre for a whole tomogram would not fit in memory."""
    n = flat.shape[1]
    labels = torch.empty(n, dtype=torch.long)
    for i in range(0, n, _ASSIGN_CHUNK):
        labels[i:i + _ASSIGN_CHUNK] = km.predict(flat[:, i:i + _ASSIGN_CHUNK].t().double())
    return labels


def cluster_latents(latents: torch.Tensor, clusters: Iterable[int], *, c=1.0, seed: int = 0, n_init: int = 4,
                    max_points: int | None = 200_000) -> dict[int, torch.Tensor]:
    """Labels [Z, Y, X] (int64) for each cluster count, from PoincareKMeans on the voxels' latent means.
    k-means is fitted on at most ``max_points`` voxels (a seeded subsample; all of them when fewer) and then
    assigns every voxel, so a large tomogram costs one distance pass per granularity."""
    D, *spatial = latents.shape
    flat = latents.reshape(D, -1)
    pick = subsample(flat.shape[1], max_points, seed)
    fit_pts = (flat if pick is None else flat[:, torch.from_numpy(pick)]).t()
    kms = fit_kmeans(fit_pts, clusters, c=c, seed=seed, n_init=n_init)
    return {k: assign(km, flat).reshape(spatial) for k, km in kms.items()}


def radius_rank(sums, counts) -> torch.Tensor:
    """New label of each cluster from the sums and counts of its members' latent radii: 0 for the smallest
    mean radius (an empty cluster counts as radius 0)."""
    means = torch.as_tensor(sums, dtype=torch.float64) / torch.as_tensor(counts).clamp_min(1)
    order = torch.argsort(means)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    return rank


def order_by_radius(labels: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """Relabels clusters by the mean hyperbolic radius of their members (0 = closest to the origin), so that
    label numbers mean the same thing across runs and granularities (the latent hierarchy puts coarse
    structure near the origin)."""
    D = latents.shape[0]
    r = latents.reshape(D, -1).norm(dim=0).double()
    lab = labels.reshape(-1)
    k = int(lab.max()) + 1 if lab.numel() else 0
    sums = torch.zeros(k, dtype=torch.float64).index_add_(0, lab, r)
    return radius_rank(sums, torch.bincount(lab, minlength=k))[labels]


def label_dtype(k: int):
    """The smallest numpy integer type for labels 0..k-1 that an MRC label volume (int16) can hold."""
    if k > np.iinfo(np.int16).max + 1:
        raise ValueError(f"segment: at most {np.iinfo(np.int16).max + 1} clusters fit an MRC label volume, got {k}")
    return np.uint8 if k <= 256 else np.int16


def segment_slabs(slabs, grid, D: int, clusters, latents_path, *, c=1.0, seed: int = 0, n_init: int = 4,
                  max_points: int | None = 200_000) -> dict[int, np.ndarray]:
    """Streams latent slabs (``dense_slabs`` / ``patch_slabs``: (z0, z1, [D, z1 - z0, *grid[1:]])) to
    ``latents_path`` (.npy, [D, *grid] float32) while gathering the k-means subsample, fits one PoincareKMeans
    per cluster count, then reads the latents back slab by slab to assign every voxel and to sum the latent
    radii per cluster. Returns {k: labels on the grid, numbered by mean radius (``order_by_radius``)} in the
    smallest integer type (``label_dtype``). Equal to ``cluster_latents`` + ``order_by_radius`` on the same
    latents; the memory held is the label volumes (1 byte a voxel per k up to 256 clusters) and one slab."""
    ks = _check_clusters(clusters)
    grid = tuple(grid)
    n = math.prod(grid)
    plane = n // grid[0]
    latents_path = Path(latents_path)
    np.lib.format.open_memmap(latents_path, mode="w+", dtype=np.float32, shape=(D, *grid)).flush()
    pick = subsample(n, max_points, seed)
    sample = np.empty((D, n if pick is None else len(pick)), dtype=np.float32)
    filled = 0
    for z0, z1, slab in slabs:
        # a fresh map per slab, released after it: one map over the whole file would keep every written
        # page in this process's resident set (1 GiB for a 512³ tomogram at D = 2)
        mm = np.load(latents_path, mmap_mode="r+")
        mm[:, z0:z1] = slab
        mm.flush()
        del mm
        flat = slab.reshape(D, -1)
        if pick is None:
            sample[:, z0 * plane:z1 * plane] = flat
        else:
            lo, hi = np.searchsorted(pick, [z0 * plane, z1 * plane])
            sample[:, lo:hi] = flat[:, pick[lo:hi] - z0 * plane]
            filled = hi
    if pick is not None and filled != len(pick):
        raise RuntimeError(f"segment_slabs: the slabs covered {filled} of {len(pick)} sampled voxels")
    kms = fit_kmeans(torch.from_numpy(sample).t(), ks, c=c, seed=seed, n_init=n_init)
    del sample
    labels = {k: np.empty(grid, dtype=label_dtype(k)) for k in ks}
    sums = {k: np.zeros(k) for k in ks}
    counts = {k: np.zeros(k, dtype=np.int64) for k in ks}
    per = max(1, _SLAB_VOXELS // max(1, plane))
    for z0 in range(0, grid[0], per):
        z1 = min(grid[0], z0 + per)
        mm = np.load(latents_path, mmap_mode="r")
        flat = torch.from_numpy(np.array(mm[:, z0:z1]).reshape(D, -1))
        del mm
        r = flat.norm(dim=0).double().numpy()  # as order_by_radius: the norm in float32, summed in float64
        for k, km in kms.items():
            lab = assign(km, flat).numpy()
            labels[k][z0:z1] = lab.reshape(z1 - z0, *grid[1:])
            sums[k] += np.bincount(lab, weights=r, minlength=k)
            counts[k] += np.bincount(lab, minlength=k)
    for k in ks:
        rank = radius_rank(sums[k], counts[k]).numpy().astype(labels[k].dtype)
        labels[k] = rank[labels[k]]  # a lookup table: one pass over the volume in its own small type
    return labels


def upsample_npy(src, dst, shape, stride: int) -> None:
    """Writes ``dst`` (.npy [D, *shape] float32) from ``src`` ([D, *grid_shape(shape, stride)]) by nearest
    neighbour, z-slab by z-slab (neither array is held whole)."""
    grid = np.load(src, mmap_mode="r")
    D = grid.shape[0]
    np.lib.format.open_memmap(dst, mode="w+", dtype=np.float32, shape=(D, *shape)).flush()
    iz, iy, ix = (nearest_grid_index(n, stride) for n in shape)
    per = max(1, _SLAB_VOXELS // max(1, shape[1] * shape[2]))
    for z0 in range(0, shape[0], per):
        z1 = min(shape[0], z0 + per)
        rows = np.asarray(grid[:, iz[z0]:iz[z1 - 1] + 1])
        mm = np.load(dst, mmap_mode="r+")
        mm[:, z0:z1] = rows[:, iz[z0:z1] - iz[z0]][:, :, iy[:, None], ix[None, :]]
        mm.flush()
        del mm
    del grid
