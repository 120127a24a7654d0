"""hypops.models.sampling: the multi-scale triplet sampler's geometric guarantees, resizing, seeding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hypops.models import TripletSampler, sample_triplets
from hypops.models.sampling import _uniform_outside


def _volumes(V=3, shape=(50, 50, 50), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(V, *shape, generator=g)


def _check_geometry(batch, shape, anchor_range=(5, 34), child_min=3, child_max=14, child_gap=2):
    S = torch.tensor(shape)
    a, p, n = batch.anchor_box, batch.positive_box, batch.negative_box
    ea, ep, en = (a[:, 1] - a[:, 0]), (p[:, 1] - p[:, 0]), (n[:, 1] - n[:, 0])
    # cubes, odd extents
    for e in (ea, ep, en):
        assert (e == e[:, :1]).all()
        assert (e % 2 == 1).all()
    ea, ep, en = ea[:, 0], ep[:, 0], en[:, 0]
    # sizes in range: extent = 2 * (r // 2) + 1 with r in the configured range
    assert ea.min() >= 2 * (anchor_range[0] // 2) + 1 and ea.max() <= 2 * (anchor_range[1] // 2) + 1
    assert ep.min() >= 2 * (child_min // 2) + 1 and ep.max() <= 2 * (child_max // 2) + 1
    assert (ep <= ea - 2).all()
    assert (en == ep).all()
    # every box inside the volume
    for box in (a, p, n):
        assert (box[:, 0] >= 0).all() and (box[:, 1] <= S).all()
    # positive: same centre, inside the anchor
    assert torch.equal(a[:, 0] + a[:, 1], p[:, 0] + p[:, 1])
    assert (p[:, 0] >= a[:, 0]).all() and (p[:, 1] <= a[:, 1]).all()
    # negative: disjoint from the anchor on at least one axis, i.e. no voxel in common
    separated = (n[:, 1] <= a[:, 0]) | (n[:, 0] >= a[:, 1])
    assert separated.any(dim=1).all()


def test_shapes_and_geometry():
    vols = _volumes()
    batch = sample_triplets(vols, 512, torch.Generator().manual_seed(1))
    for t in (batch.anchor, batch.positive, batch.negative):
        assert t.shape == (512, 1, 10, 10, 10) and t.dtype == vols.dtype
    for b in (batch.anchor_box, batch.positive_box, batch.negative_box):
        assert b.shape == (512, 2, 3) and b.dtype == torch.int64
    assert batch.volume.shape == (512,) and batch.volume.min() >= 0 and batch.volume.max() < 3
    _check_geometry(batch, (50, 50, 50))


def test_geometry_extreme_sizes_and_anisotropic_volume():
    # Largest anchors next to the largest children: 35 + 15 = 50 leaves exactly one way to fit a negative
    # on an axis, the case where a per-axis or rejection scheme fails most.
    vols = _volumes(V=2)
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        batch = sample_triplets(vols, 256, g, anchor_range=(34, 34), child_min=14, child_max=14)
        _check_geometry(batch, (50, 50, 50), (34, 34), 14, 14)
    # Different sides per axis; only the shortest one constrains the sizes.
    vols = _volumes(V=1, shape=(30, 41, 22))
    batch = sample_triplets(vols, 512, g, anchor_range=(5, 12), child_max=8)
    _check_geometry(batch, (30, 41, 22), (5, 12), 3, 8)


def test_sizes_cover_the_range_and_log_uniform_favours_small():
    vols = _volumes(V=1)
    g = torch.Generator().manual_seed(0)
    uni = sample_triplets(vols, 4000, g).anchor_box
    logu = sample_triplets(vols, 4000, g, log_uniform=True).anchor_box
    e_uni, e_log = (uni[:, 1, 0] - uni[:, 0, 0]), (logu[:, 1, 0] - logu[:, 0, 0])
    assert set(e_uni.unique().tolist()) == set(range(5, 36, 2))
    assert set(e_log.unique().tolist()) == set(range(5, 36, 2))
    # uniform on r in 5..34: median extent ~ 20; log-uniform: median r ~ sqrt(5 * 35) ~ 13
    assert 17 <= e_uni.float().median() <= 23
    assert e_log.float().median() <= 15


def test_negative_positions_are_uniform_over_the_allowed_set():
    # 1-D check of _uniform_outside on a small case: n = 10, bad = [3, 6] on axis 0, the other axes of
    # size 1 and entirely "bad" so that axis 0 must be good: values {0, 1, 2, 7, 8, 9} equally often.
    B = 60000
    n = torch.tensor([[10, 1, 1]]).expand(B, 3)
    lo = torch.tensor([[3, 0, 0]]).expand(B, 3)
    hi = torch.tensor([[6, 0, 0]]).expand(B, 3)
    out = _uniform_outside(n, lo, hi, torch.Generator().manual_seed(0))
    assert (out[:, 1:] == 0).all()
    counts = torch.bincount(out[:, 0], minlength=10).float()
    assert (counts[3:7] == 0).all()
    allowed = counts[[0, 1, 2, 7, 8, 9]]
    assert (allowed / B - 1 / 6).abs().max() < 0.01


def test_uniform_outside_two_axes():
    # 2 x 2 grid (axis 2 size 1), bad box = the single point (0, 0): the other 3 points equally likely.
    B = 30000
    n = torch.tensor([[2, 2, 1]]).expand(B, 3)
    lo = torch.tensor([[0, 0, 0]]).expand(B, 3)
    hi = torch.tensor([[0, 0, 0]]).expand(B, 3)
    out = _uniform_outside(n, lo, hi, torch.Generator().manual_seed(1))
    code = out[:, 0] * 2 + out[:, 1]
    counts = torch.bincount(code, minlength=4).float() / B
    assert counts[0] == 0
    assert (counts[1:] - 1 / 3).abs().max() < 0.015


def test_crops_equal_per_crop_interpolate():
    vols = _volumes(V=2, shape=(40, 40, 40))
    batch = sample_triplets(vols, 16, torch.Generator().manual_seed(5), anchor_range=(5, 24))
    for i in range(16):
        v = vols[batch.volume[i]]
        for crop, box in ((batch.anchor, batch.anchor_box), (batch.positive, batch.positive_box),
                          (batch.negative, batch.negative_box)):
            lo, hi = box[i, 0].tolist(), box[i, 1].tolist()
            ref = F.interpolate(v[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][None, None], size=(10, 10, 10),
                                mode="trilinear", align_corners=False)[0]
            torch.testing.assert_close(crop[i], ref, rtol=1e-5, atol=1e-5)


def test_seeded_determinism_and_fresh_steps():
    vols = _volumes()
    s1, s2 = TripletSampler(vols, 32, seed=7), TripletSampler(vols, 32, seed=7)
    b1, b2 = s1.sample(), s2.sample()
    for x, y in zip(b1, b2):
        assert torch.equal(x, y)
    b3 = s1.sample()
    assert not torch.equal(b1.anchor_box, b3.anchor_box)
    assert not torch.equal(b1.anchor, b3.anchor)
    # sizes differ between steps (fresh sizes every step, not frozen at construction)
    size1, size3 = (b.anchor_box[:, 1] - b.anchor_box[:, 0] for b in (b1, b3))
    assert not torch.equal(size1, size3)
    other = TripletSampler(vols, 32, seed=8).sample()
    assert not torch.equal(b1.anchor_box, other.anchor_box)


def test_state_dict_resumes_the_stream():
    vols = _volumes()
    s = TripletSampler(vols, 8, seed=3)
    s.sample()
    state = s.state_dict()
    want = s.sample()
    s2 = TripletSampler(vols, 8, seed=99)
    s2.load_state_dict(state)
    got = s2.sample()
    for x, y in zip(want, got):
        assert torch.equal(x, y)


def test_global_rng_when_no_generator():
    vols = _volumes()
    torch.manual_seed(11)
    a = sample_triplets(vols, 8)
    torch.manual_seed(11)
    b = sample_triplets(vols, 8)
    assert torch.equal(a.anchor_box, b.anchor_box) and torch.equal(a.negative, b.negative)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(volumes=torch.zeros(50, 50, 50)), "volumes"),
        (dict(batch_size=0), "batch_size"),
        (dict(anchor_range=(5,)), "anchor_range"),
        (dict(anchor_range=(4, 34)), "anchor_range"),
        (dict(anchor_range=(5, 40)), "anchor_range"),
        (dict(child_gap=1), "child_gap"),
        (dict(child_max=2), "child_max"),
    ],
)
def test_errors_name_the_argument(kwargs, match):
    args = dict(volumes=_volumes(V=1), batch_size=4)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        sample_triplets(args.pop("volumes"), args.pop("batch_size"), **args)
