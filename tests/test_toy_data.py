"""hypops.data.make_toy_volume: the synthetic hierarchical data set (SPEC §6)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from scipy import ndimage

from hypops.data import make_toy_volume, toy_splits
from hypops.data.toy import _pink_noise

VARIANTS = ["simple", "irregular"]


@functools.cache
def _vol(seed, variant="simple", size=50):
    return make_toy_volume(seed, size=size, variant=variant)


@pytest.fixture(scope="module", params=VARIANTS)
def vols(request):
    return [_vol(seed, request.param) for seed in range(6)]


def test_shapes_dtypes_and_label_sets(vols):
    for v in vols:
        assert v.volume.shape == (50, 50, 50) and v.volume.dtype == torch.float32
        assert torch.isfinite(v.volume).all()
        for level, allowed in ((1, {0, 1}), (2, {0, 1, 2, 3}), (3, {0, 1, 2, 3, 4, 5})):
            lab = v.labels[level]
            assert lab.shape == (50, 50, 50) and lab.dtype == torch.int64
            assert set(torch.unique(lab).tolist()) <= allowed
    # Over a few volumes every class occurs.
    for level, n in ((1, 2), (2, 4), (3, 6)):
        seen = set().union(*(torch.unique(v.labels[level]).tolist() for v in vols))
        assert seen == set(range(n))


def test_levels_are_consistent_refinements(vols):
    for v in vols:
        l1, l2, l3 = (v.labels[i] for i in (1, 2, 3))
        assert torch.equal(l1, (l2 > 0).long())
        # Level 3 refines level 2: aggregates carry their organelle's label one level up.
        assert torch.equal(l2, torch.tensor([0, 1, 2, 3, 2, 3])[l3])
        assert torch.equal(l3[l3 <= 3], l2[l3 <= 3])


def test_nesting_with_margin_and_gaps(vols):
    """Every child lies inside its parent eroded by one voxel, and siblings are at least one voxel
    apart (no face, edge or corner contact): checked from the instance map, not from the generator's
    own bookkeeping."""
    full = ndimage.generate_binary_structure(3, 3)
    for v in vols:
        inst = v.instances.numpy()
        by_id = {o.id: o for o in v.objects}
        # Each object's full extent (itself plus its descendants).
        extent = {o.id: inst == o.id for o in v.objects}
        for o in sorted(v.objects, key=lambda o: -o.level):
            if o.parent:
                extent[o.parent] = extent[o.parent] | extent[o.id]
        cell = extent[1]
        for o in v.objects:
            if o.level == 1:
                continue
            parent = by_id[o.parent]
            assert parent.level == o.level - 1
            if o.kind == "small_sphere":
                assert parent.kind == "vesicle"
            if o.kind == "small_cuboid":
                assert parent.kind == "mitochondrion"
            inner = ndimage.binary_erosion(extent[o.parent], border_value=0)
            assert np.all(inner[extent[o.id]]), f"seed {v.seed}: object {o.id} touches its parent's edge"
            assert np.all(cell[extent[o.id]])
        for a in v.objects:
            for b in v.objects:
                if a.id < b.id and a.parent == b.parent and a.level > 1:
                    grown = ndimage.binary_dilation(extent[a.id], structure=full)
                    assert not np.any(grown & extent[b.id]), f"seed {v.seed}: siblings {a.id}, {b.id} touch"
        # Label maps agree with the object kinds.
        l3 = v.labels[3].numpy()
        kind_label = {"cell": 1, "vesicle": 2, "mitochondrion": 3, "small_sphere": 4, "small_cuboid": 5}
        for o in v.objects:
            assert np.all(l3[inst == o.id] == kind_label[o.kind])
            assert (inst == o.id).sum() > 0
        assert np.all(l3[inst == 0] == 0)


def test_every_level3_voxel_inside_right_level2_kind(vols):
    for v in vols:
        l3 = v.labels[3].numpy()
        # Small spheres are surrounded by vesicle, small cuboids by mitochondrion: the voxels just
        # outside each aggregate belong to the organelle kind.
        for small, host in ((4, 2), (5, 3)):
            m = l3 == small
            if not m.any():
                continue
            ring = ndimage.binary_dilation(m) & ~m
            assert np.all(l3[ring] == host)
        assert np.all(v.labels[1].numpy()[l3 > 0] == 1)


def test_object_counts_and_sizes(vols):
    for v in vols:
        n = v.counts()
        assert n["cell"] == 1
        assert 1 <= n["vesicle"] <= 4 and 1 <= n["mitochondrion"] <= 4
        for o in v.objects:
            if o.level == 2:
                kids = [c for c in v.objects if c.parent == o.id]
                assert 1 <= len(kids) <= 3, f"seed {v.seed}: {o.kind} {o.id} has {len(kids)} children"
    simple = [v for v in vols if v.variant == "simple"]
    for v in simple:
        for o in v.objects:
            if o.kind == "vesicle":  # radius ~N(8, 0.5): voxel volume close to 4/3 pi r^3
                assert o.voxels == pytest.approx(4 / 3 * np.pi * o.size[0] ** 3, rel=0.15)
            if o.kind == "mitochondrion":
                assert o.voxels == pytest.approx(np.prod(o.size), rel=0.25)


def test_size_distributions():
    """Draws follow SPEC §6 (means within a few standard errors over many volumes)."""
    sizes = {"cell": [], "vesicle": [], "mitochondrion": [], "small_sphere": [], "small_cuboid": []}
    for seed in range(20):
        for o in _vol(seed).objects:
            sizes[o.kind].extend(o.size)
    for kind, mean, sd in (
        ("cell", 25, 1),
        ("vesicle", 8, 0.5),
        ("mitochondrion", 16, 1),
        ("small_sphere", 2, 0.2),
        ("small_cuboid", 6, 0.3),
    ):
        s = np.asarray(sizes[kind])
        assert abs(s.mean() - mean) < 4 * sd / np.sqrt(len(s)) + 0.02 * mean, kind
        assert 0.5 * sd < s.std() < 1.6 * sd, kind


def test_deterministic_per_seed_and_seeds_differ():
    a = make_toy_volume(3)
    b = make_toy_volume(3)
    assert torch.equal(a.volume, b.volume)
    for lv in (1, 2, 3):
        assert torch.equal(a.labels[lv], b.labels[lv])
    c = make_toy_volume(4)
    assert not torch.equal(a.volume, c.volume)
    assert not torch.equal(a.labels[3], c.labels[3])


def test_irregular_differs_from_simple():
    s = make_toy_volume(5, variant="simple")
    r = make_toy_volume(5, variant="irregular")
    assert not torch.equal(s.labels[2], r.labels[2])

    # Simple mitochondria are axis-aligned boxes: each fills its bounding box. Irregular ones do not.
    def box_fill(v):
        inst = v.instances.numpy()
        fills = []
        for o in v.objects:
            if o.kind == "mitochondrion":
                ext = np.isin(inst, [o.id] + [c.id for c in v.objects if c.parent == o.id])
                idx = np.argwhere(ext)
                fills.append(ext.sum() / np.prod(idx.max(0) - idx.min(0) + 1))
        return fills

    assert all(f == 1.0 for f in box_fill(s))
    assert max(box_fill(r)) < 0.95


def test_size_scaling():
    v = make_toy_volume(0, size=32)
    assert v.volume.shape == (32, 32, 32)
    for lv in (1, 2, 3):
        assert v.labels[lv].shape == (32, 32, 32)
    cell = next(o for o in v.objects if o.kind == "cell")
    assert cell.size[0] == pytest.approx(25 * 32 / 50, abs=4 * 32 / 50)
    big = make_toy_volume(0, size=80)
    frac_small = (v.labels[1] == 1).float().mean()
    frac_big = (big.labels[1] == 1).float().mean()
    # The cell fills about the same fraction of the box at any size.
    assert abs(float(frac_small - frac_big)) < 0.1


def test_intensity_statistics():
    # Instance means ~N(0, 1) across many instances.
    mus = np.array([o.intensity for seed in range(20) for o in _vol(seed).objects])
    assert len(mus) > 100
    assert abs(mus.mean()) < 4 / np.sqrt(len(mus))
    assert 0.8 < mus.std() < 1.2
    # Inside one instance the spread is texture + pink noise only (well under the between-instance spread).
    v = make_toy_volume(1)
    inst = v.instances.numpy()
    vol = v.volume.numpy()
    for o in v.objects:
        if o.level == 2:
            vals = vol[inst == o.id]
            assert abs(vals.mean() - o.intensity) < 0.35
            assert vals.std() < 0.6


def test_pink_noise_spectrum_and_magnitude():
    rng = np.random.default_rng(0)
    n = _pink_noise(rng, 64)
    assert n.std() == pytest.approx(0.25, rel=1e-6)
    assert abs(n.mean()) < 1e-6
    # Power at low radial frequency exceeds power at high frequency by ~ the 1/f ratio.
    p = np.abs(np.fft.fftn(n)) ** 2
    f = np.fft.fftfreq(64)
    fr = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2)
    low = p[(fr > 0.04) & (fr < 0.06)].mean()
    high = p[(fr > 0.36) & (fr < 0.44)].mean()
    assert 5 < low / high < 12  # 1/f predicts 8


def test_splits_are_disjoint():
    s = toy_splits()
    assert [len(s[k]) for k in ("train", "val", "test")] == [80, 20, 20]
    allseeds = s["train"] + s["val"] + s["test"]
    assert len(set(allseeds)) == 120
    assert toy_splits() == s
    small = toy_splits(3, 2, 1)
    assert not (set(small["train"]) & set(small["val"])) and not (set(small["val"]) & set(small["test"]))


def test_argument_errors():
    with pytest.raises(ValueError, match="variant"):
        make_toy_volume(0, variant="wobbly")
    with pytest.raises(ValueError, match="size"):
        make_toy_volume(0, size=4)
    with pytest.raises(ValueError, match="seed"):
        make_toy_volume(-1)
    with pytest.raises(ValueError, match="n_val"):
        toy_splits(n_val=-2)
