"""The synthetic "biologically-inspired" hierarchical data set of Hsu et al. 2021 (SPEC §6).

The published generator was never released; the paper fixes the shapes, their size distributions, the
nesting, N(0, 1) instance intensities and pink noise of magnitude 0.25. Everything else is our choice,
stated here so that results are comparable between versions of this module:

Geometry (all lengths scale with ``size / 50``; voxel centres sit at integer coordinates, axes z, y, x):
  - level 1: one cell, a sphere of radius ~N(25, 1) centred in the box. It nearly fills the box; the box
    faces clip it where the radius exceeds size / 2 (as in the paper, where the cell "touches" the box).
  - level 2: 2–4 vesicles (spheres, radius ~N(8, 0.5)) and 2–4 mitochondria (cuboids, each of the three
    sides drawn independently from 2·N(8, 0.5)), counts uniform per kind.
  - level 3: 1–3 small spheres (radius ~N(2, 0.2)) in each vesicle and 1–3 small cuboids (sides
    2·N(3, 0.15)) in each mitochondrion, counts uniform per parent.
  - placement works on the voxel masks themselves. A child fits where every one of its voxels lies in
    the parent eroded by one voxel (so a ring of parent shows around it) and at least one voxel (26-
    neighbourhood) away from every sibling already placed (siblings never touch). The position is
    uniform over all positions that fit: first by rejection (a centre drawn from the free voxels,
    ``QUICK_ATTEMPTS`` tries), then, when the parent is crowded, by an exact search over every position
    at once (an FFT correlation of the child's mask with the blocked space). A child that fits nowhere is
    dropped, so the drawn count is an upper bound; ``ToyVolume.objects`` lists what was placed. The two
    kinds alternate, mitochondrion first (the bigger), so a crowded cell loses some of each kind.
    Placed on average over seeds 0-39 at size 50 (3 of each drawn on average): simple 2.8 vesicles and
    1.7 mitochondria, irregular 2.5 and 1.35 (deformed shapes need more room); in those seeds never fewer
    than one of each, and every organelle holds at least one aggregate.
  - "simple": spheres and axis-aligned cuboids. "irregular": every shape (the cell included) is
    rasterised through a smooth random displacement field u -> u + D(u), D a sum of three random
    sinusoidal modes with wavelengths 1.5–3 object radii and a total amplitude of ~15% of the object's
    radius, and every cuboid gets a uniformly random rotation. Nesting and the sibling gap are checked
    on the deformed voxel masks, so they hold exactly in both variants.

Appearance:
  - every region is an instance with its own mean intensity ~N(0, 1): the background (the "noisy
    background" of the paper), the cell and every organelle and aggregate. A voxel takes the values of
    the innermost instance covering it.
  - texture: each instance adds tau · T(x), where T is white Gaussian noise smoothed by a Gaussian of
    width sigma ~ U(0.5, 2) voxels (times the size scale) and normalised to unit standard deviation over
    the instance's bounding box, and tau ~ U(0.1, 0.4). Different widths make the textures differ in grain,
    not only in contrast.
  - pink noise over the whole volume: a 3D Gaussian field whose power spectral density falls as 1/|f|
    (amplitude |f|^-1/2, |f| the radial frequency in cycles per voxel, the mean removed), computed with an
    FFT and scaled to a standard deviation of exactly 0.25.

Labels: level 1 {0 background, 1 cell}; level 2 adds {2 vesicle, 3 mitochondrion}; level 3 adds
{4 small sphere, 5 small cuboid}. Each level's map labels a voxel by the innermost object of that level
or above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage, signal

__all__ = ["LEVEL_NAMES", "VARIANTS", "ToyObject", "ToyVolume", "make_toy_volume", "toy_splits"]

VARIANTS = ("simple", "irregular")
LEVEL_NAMES = {
    1: ("background", "cell"),
    2: ("background", "cell", "vesicle", "mitochondrion"),
    3: ("background", "cell", "vesicle", "mitochondrion", "small_sphere", "small_cuboid"),
}
# Label of each object kind at the finest level; coarser levels map it to its ancestor's label.
KIND_LABEL = {"cell": 1, "vesicle": 2, "mitochondrion": 3, "small_sphere": 4, "small_cuboid": 5}

QUICK_ATTEMPTS = 20
N_VESICLES = (2, 4)
N_MITOCHONDRIA = (2, 4)
N_CHILDREN = (1, 3)
TEXTURE_SIGMA = (0.5, 2.0)
TEXTURE_AMPLITUDE = (0.1, 0.4)
PINK_STD = 0.25
DEFORM_AMPLITUDE = 0.15
DEFORM_MODES = 3
_FULL = ndimage.generate_binary_structure(3, 3)  # siblings may not touch even at a corner


@dataclass
class ToyObject:
    """One placed object. ``center`` is in voxel coordinates (z, y, x); ``size`` is the radius of a
    sphere or the three side lengths of a cuboid, before any deformation."""

    id: int
    level: int
    kind: str
    parent: int
    center: tuple[float, float, float]
    size: tuple[float, ...]
    intensity: float
    voxels: int


@dataclass
class ToyVolume:
    volume: torch.Tensor  # float32 [S, S, S]
    labels: dict[int, torch.Tensor]  # level -> int64 [S, S, S]
    instances: torch.Tensor  # int64 [S, S, S]: 0 background, i the object with id i (innermost)
    objects: list[ToyObject] = field(default_factory=list)
    seed: int = 0
    variant: str = "simple"

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(KIND_LABEL, 0)
        for o in self.objects:
            out[o.kind] += 1
        return out


def toy_splits(n_train: int = 80, n_val: int = 20, n_test: int = 20) -> dict[str, list[int]]:
    """Disjoint seed lists: train 0..n_train-1, then val, then test, consecutively (the paper's 80/20/20)."""
    for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"toy_splits: {name} must be a non-negative int, got {n!r}")
    return {
        "train": list(range(n_train)),
        "val": list(range(n_train, n_train + n_val)),
        "test": list(range(n_train + n_val, n_train + n_val + n_test)),
    }


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    # QR of a Gaussian matrix with the signs of R's diagonal fixed is Haar-distributed on O(3);
    # flipping a column when det < 0 keeps it uniform on SO(3).
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _displacement(rng: np.random.Generator, radius: float):
    """A smooth random field D(u) = sum_m a_m sin(w_m . u + phi_m) in the object's own frame.

    Wavelengths of 1.5-3 radii bend the outline without tearing it: the largest displacement gradient,
    |a| |w| <= 0.15 · 2π / 1.5 ≈ 0.6 < 1, keeps u -> u + D(u) free of folds.
    """
    dirs = rng.standard_normal((DEFORM_MODES, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    wavelength = radius * rng.uniform(1.5, 3.0, DEFORM_MODES)
    w = dirs * (2 * math.pi / wavelength)[:, None]
    amp = rng.standard_normal((DEFORM_MODES, 3))
    amp *= DEFORM_AMPLITUDE * radius / np.linalg.norm(amp, axis=1, keepdims=True) / math.sqrt(DEFORM_MODES)
    phase = rng.uniform(0, 2 * math.pi, DEFORM_MODES)

    def apply(u: np.ndarray) -> np.ndarray:  # u: [..., 3]
        return u + np.sin(u @ w.T + phase) @ amp

    return apply


def _shape_mask(kind: str, size: tuple[float, ...], u: np.ndarray, rot, warp) -> np.ndarray:
    """Inside-test on coordinates u [..., 3] relative to the object's centre."""
    if warp is not None:
        u = warp(u)
    if kind == "sphere":
        return (u * u).sum(-1) <= size[0] ** 2
    if rot is not None:
        u = u @ rot  # into the cuboid's frame (rot's columns are its axes)
    half = np.asarray(size) / 2
    return np.all(np.abs(u) <= half, axis=-1)


def _local_shape(kind, size, rng, irregular):
    """Rasterises one object in its own box. Returns (mask, centre index inside mask as float z,y,x)."""
    bound = size[0] if kind == "sphere" else 0.5 * math.sqrt(sum(s * s for s in size))
    if kind == "cuboid" and not irregular:
        bound = 0.5 * max(size)
    rot = _random_rotation(rng) if (irregular and kind == "cuboid") else None
    warp = (
        _displacement(rng, bound if kind == "sphere" else 0.5 * float(np.mean(size))) if irregular else None
    )
    half = math.ceil(bound * ((1 + 2 * DEFORM_AMPLITUDE) if irregular else 1)) + 2
    frac = rng.uniform(-0.5, 0.5, 3)  # the centre is continuous; placement then shifts by whole voxels
    ax = np.arange(-half, half + 1, dtype=np.float64)
    u = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), axis=-1) - frac
    mask = _shape_mask(kind, size, u, rot, warp)
    if not mask.any():  # a degenerate draw (tiny radius at a small size): keep the centre voxel
        mask[half, half, half] = True
    nz = np.nonzero(mask)
    lo = [int(a.min()) for a in nz]
    hi = [int(a.max()) + 1 for a in nz]
    mask = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    centre = np.array([half + frac[i] - lo[i] for i in range(3)])
    return mask, centre


def _texture(rng, shape, scale) -> np.ndarray:
    sigma = rng.uniform(*TEXTURE_SIGMA) * scale
    tau = rng.uniform(*TEXTURE_AMPLITUDE)
    t = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    sd = t.std()
    return tau * t / sd if sd > 0 else t


def _pink_noise(rng, size) -> np.ndarray:
    white = rng.standard_normal((size, size, size))
    f0 = np.fft.fftfreq(size)
    f2 = np.fft.rfftfreq(size)
    fr = np.sqrt(f0[:, None, None] ** 2 + f0[None, :, None] ** 2 + f2[None, None, :] ** 2)
    fr[0, 0, 0] = np.inf  # removes the mean instead of dividing by zero
    spec = np.fft.rfftn(white) / np.sqrt(fr)  # PSD ∝ 1/|f|  <=>  amplitude ∝ |f|^(-1/2)
    noise = np.fft.irfftn(spec, s=white.shape, axes=(0, 1, 2))
    return noise * (PINK_STD / noise.std())


class _Placer:
    """Free space inside one parent: the parent eroded by ``margin`` minus its children dilated by
    ``margin`` (26-neighbourhood). Works in the parent's bounding box, ``origin`` being its corner."""

    def __init__(self, parent_mask: np.ndarray, origin, margin: int):
        self.free = ndimage.binary_erosion(parent_mask, iterations=margin, border_value=0)
        self.origin = np.asarray(origin, dtype=int)
        self.gap = margin

    def place(self, rng, mask, centre):
        """Returns the child's corner in volume coordinates, or None when it fits nowhere."""
        s = np.array(self.free.shape)
        shape = np.array(mask.shape)
        if np.any(shape > s):
            return None
        # Cheap first: a centre drawn from the free voxels, tested directly. Accepted draws are uniform
        # over the feasible positions, as are those of the exact search below, so the two agree in law.
        idx = np.flatnonzero(self.free)
        if idx.size == 0:
            return None
        for _ in range(QUICK_ATTEMPTS):
            p = np.array(np.unravel_index(idx[rng.integers(idx.size)], self.free.shape))
            o = p - np.round(centre).astype(int)
            if np.any(o < 0) or np.any(o + shape > s):
                continue
            box = tuple(slice(int(o[i]), int(o[i] + shape[i])) for i in range(3))
            if np.all(self.free[box][mask]):
                self._occupy(mask, o)
                return self.origin + o
        # Crowded: every corner o at once, counting the child's voxels that would land outside the free
        # space (a correlation, by FFT); the feasible corners are those with a count of zero.
        blocked = signal.fftconvolve(
            (~self.free).astype(np.float32), mask[::-1, ::-1, ::-1].astype(np.float32), mode="valid"
        )
        ok = np.flatnonzero(blocked < 0.5)
        if ok.size == 0:
            return None
        o = np.array(np.unravel_index(ok[rng.integers(ok.size)], blocked.shape))
        self._occupy(mask, o)
        return self.origin + o

    def _occupy(self, mask, o):
        g = self.gap
        grown = ndimage.binary_dilation(np.pad(mask, g), structure=_FULL, iterations=g)
        lo = o - g
        src = [
            slice(max(0, -lo[i]), grown.shape[i] - max(0, lo[i] + grown.shape[i] - self.free.shape[i]))
            for i in range(3)
        ]
        dst = [slice(max(0, lo[i]), min(self.free.shape[i], lo[i] + grown.shape[i])) for i in range(3)]
        self.free[tuple(dst)] &= ~grown[tuple(src)]


def make_toy_volume(seed: int, size: int = 50, variant: str = "simple") -> ToyVolume:
    """One synthetic volume of shape [size, size, size]; the same (seed, size, variant) gives the same
    volume bit for bit. See the module docstring for what is drawn and how."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"make_toy_volume: seed must be a non-negative int, got {seed!r}")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 16:
        raise ValueError(f"make_toy_volume: size must be an int >= 16, got {size!r}")
    if variant not in VARIANTS:
        raise ValueError(f"make_toy_volume: variant must be one of {VARIANTS}, got {variant!r}")
    size = int(size)
    rng = np.random.default_rng([int(seed), VARIANTS.index(variant)])
    irregular = variant == "irregular"
    scale = size / 50.0
    margin = max(1, round(scale))  # parent ring around a child, and the gap between siblings

    volume = np.empty((size, size, size))
    instances = np.zeros((size, size, size), dtype=np.int64)
    kind_of = [0]  # finest-level label per instance id
    objects: list[ToyObject] = []

    def paint(mask, o, ident, label):
        box = tuple(slice(int(o[i]), int(o[i] + mask.shape[i])) for i in range(3))
        mu = rng.standard_normal()
        tex = _texture(rng, mask.shape, scale)
        volume[box][mask] = (mu + tex)[mask]
        instances[box][mask] = ident
        kind_of.append(label)
        return mu

    def add(kind, shape, dims, placer, level, parent):
        """Draws an object of ``kind``, places it with ``placer`` and paints it; None when it fits nowhere,
        else (id, mask, corner)."""
        mask, centre = _local_shape(shape, dims, rng, irregular)
        o = placer.place(rng, mask, centre)
        if o is None:
            return None
        ident = len(kind_of)
        mu = paint(mask, o, ident, KIND_LABEL[kind])
        objects.append(
            ToyObject(ident, level, kind, parent, tuple(float(v) for v in o + centre), dims, mu, int(mask.sum()))
        )
        return ident, mask, o

    volume[:] = rng.standard_normal() + _texture(rng, volume.shape, scale)

    # Level 1: the cell, centred; its mask is computed on the whole box so the faces clip it.
    r_cell = rng.normal(25.0, 1.0) * scale
    rot_warp = _displacement(rng, r_cell) if irregular else None
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    u = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), axis=-1)
    cell = _shape_mask("sphere", (r_cell,), u, None, rot_warp)
    mu = paint(cell, (0, 0, 0), 1, KIND_LABEL["cell"])
    c0 = (size - 1) / 2
    objects.append(ToyObject(1, 1, "cell", 0, (c0, c0, c0), (r_cell,), mu, int(cell.sum())))

    # Level 2.
    n_mito = int(rng.integers(N_MITOCHONDRIA[0], N_MITOCHONDRIA[1] + 1))
    n_ves = int(rng.integers(N_VESICLES[0], N_VESICLES[1] + 1))
    placer = _Placer(cell, (0, 0, 0), margin)
    level2 = []
    # Alternating kinds (mitochondrion first, the bigger) so that a crowded cell drops the surplus of
    # both kinds rather than every vesicle.
    m = max(n_mito, n_ves)
    order = [k for pair in zip(["mitochondrion"] * m, ["vesicle"] * m) for k in pair]
    order = [k for i, k in enumerate(order) if (i // 2) < (n_mito if k == "mitochondrion" else n_ves)]
    for kind in order:
        if kind == "vesicle":
            shape, dims = "sphere", (rng.normal(8.0, 0.5) * scale,)
        else:
            shape, dims = "cuboid", tuple(2 * rng.normal(8.0, 0.5, 3) * scale)
        placed = add(kind, shape, dims, placer, 2, 1)
        if placed is not None:
            level2.append((placed[0], kind, placed[1], placed[2]))

    # Level 3: small spheres in vesicles, small cuboids in mitochondria.
    for pid, pkind, pmask, po in level2:
        placer = _Placer(pmask, po, margin)
        for _ in range(int(rng.integers(N_CHILDREN[0], N_CHILDREN[1] + 1))):
            if pkind == "vesicle":
                kind, shape, dims = "small_sphere", "sphere", (rng.normal(2.0, 0.2) * scale,)
            else:
                kind, shape, dims = "small_cuboid", "cuboid", tuple(2 * rng.normal(3.0, 0.15, 3) * scale)
            add(kind, shape, dims, placer, 3, pid)

    volume += _pink_noise(rng, size)

    fine = np.asarray(kind_of, dtype=np.int64)[instances]
    # Coarser levels relabel a voxel by its ancestor at that level: aggregates -> their organelle's
    # kind, organelles -> cell.
    to_level2 = np.array([0, 1, 2, 3, 2, 3], dtype=np.int64)
    to_level1 = np.array([0, 1, 1, 1, 1, 1], dtype=np.int64)
    labels = {
        1: torch.from_numpy(to_level1[fine]),
        2: torch.from_numpy(to_level2[fine]),
        3: torch.from_numpy(fine),
    }
    return ToyVolume(
        volume=torch.from_numpy(volume.astype(np.float32)),
        labels=labels,
        instances=torch.from_numpy(instances),
        objects=objects,
        seed=int(seed),
        variant=variant,
    )
