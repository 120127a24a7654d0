"""hypops.models.segment: tiled latents equal one pass over the whole volume (the halo covers the receptive
field), chunked cluster assignment equals the unchunked one, clusters are numbered by latent radius."""

import pytest
import torch

import hypops
from hypops.models import build_vae
from hypops.models import segment as seg


def test_tiled_embedding_equals_one_pass():
    torch.manual_seed(0)
    model = build_vae("dense", channels=(4, 4, 4), decoder_channels=4).eval()
    vol = torch.randn(13, 17, 11)
    with torch.no_grad():
        whole = model.embed(vol[None, None])[0]
    for tile in (4, 7, 64):
        tiled = seg.embed_volume(model, vol, tile=tile)
        torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-6)


def test_chunked_assignment_and_radius_order(monkeypatch):
    g = torch.Generator().manual_seed(1)
    lat = hypops.expmap0(torch.randn(2, 10, 12, 14, generator=g), dim=0)  # latent means lie in the ball
    want = seg.cluster_latents(lat, [2, 3], seed=0)
    monkeypatch.setattr(seg, "_ASSIGN_CHUNK", 97)
    got = seg.cluster_latents(lat, [2, 3], seed=0)
    for k in (2, 3):
        assert torch.equal(got[k], want[k]) and got[k].shape == (10, 12, 14)
        assert set(got[k].unique().tolist()) <= set(range(k))
    ordered = seg.order_by_radius(want[3], lat)
    r = lat.norm(dim=0)
    means = [r[ordered == i].mean() for i in range(3)]
    assert means == sorted(means)
    # the same partition, only renumbered
    for i in range(3):
        assert len(want[3][ordered == i].unique()) == 1


def test_segment_slabs_equals_in_memory_clustering(tmp_path):
    """The streaming path of hypops segment (latents to disk slab by slab, subsample gathered on the way,
    assignment read back in slabs) gives the labels of cluster_latents + order_by_radius, and the latents file
    holds the tiled latents."""
    import numpy as np

    torch.manual_seed(0)
    model = build_vae("dense", channels=(4, 4, 4), decoder_channels=4).eval()
    vol = torch.randn(13, 17, 11)
    lat = seg.embed_volume(model, vol, tile=5)
    for max_points in (300, None):  # a subsample (300 of 2431 voxels) and all of them
        want = seg.cluster_latents(lat, [2, 3], seed=4, max_points=max_points)
        path = tmp_path / f"lat{max_points}.npy"
        got = seg.segment_slabs(seg.dense_slabs(model, vol, tile=5), vol.shape, 2, [2, 3], path, seed=4,
                                max_points=max_points)
        np.testing.assert_array_equal(np.load(path), lat.numpy())
        for k in (2, 3):
            assert got[k].dtype == np.uint8 and got[k].shape == (13, 17, 11)
            np.testing.assert_array_equal(got[k], seg.order_by_radius(want[k], lat).numpy())


def _ball_latents(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return hypops.expmap0(torch.randn(*shape, generator=g, dtype=torch.float64), dim=0).float()


def test_smoothing_is_a_tangent_space_gaussian():
    """smooth_latents = logmap0, scipy's Gaussian per channel (faces: nearest), expmap0 -- checked against
    that recipe in float64 -- and sigma 0 returns the latents untouched."""
    import numpy as np
    from scipy import ndimage

    lat = _ball_latents((3, 11, 9, 7), 2)
    for c, sigma in ((1.0, 1.3), (0.5, 0.7), (2.0, 2.5)):
        t = hypops.logmap0(lat.double(), c=c, dim=0).numpy()
        want = hypops.expmap0(torch.from_numpy(np.stack([ndimage.gaussian_filter(ch, sigma, mode="nearest")
                                                        for ch in t])), c=c, dim=0)
        got = seg.smooth_latents(lat, sigma, c=c)
        assert got.dtype == torch.float32 and got.shape == lat.shape
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
        assert (got.double().norm(dim=0) < c ** -0.5).all()
    assert seg.smooth_latents(lat, 0, c=1.0) is lat
    for bad in (-1.0, float("nan"), float("inf"), True, "2"):
        with pytest.raises(ValueError, match="sigma"):
            list(seg.smooth_slabs([(0, 11, lat.numpy())], bad))


def test_streamed_smoothing_equals_one_pass():
    """smooth_slabs holds a slab and the kernel's reach either side: any cut of the volume into z-slabs
    (single planes, slabs thinner than the reach, one slab) gives the one-pass result exactly, in order."""
    import numpy as np

    lat = _ball_latents((2, 23, 6, 5), 3)
    whole = seg.smooth_latents(lat, 1.3).numpy()  # reach int(4 * 1.3 + 0.5) = 5 planes
    for cuts in ([0, 1, 2, 23], [0, 5, 10, 15, 20, 23], [0, 3, 4, 9, 22, 23], [0, 23], list(range(24))):
        slabs = [(a, b, lat[:, a:b].numpy()) for a, b in zip(cuts[:-1], cuts[1:])]
        out = list(seg.smooth_slabs(iter(slabs), 1.3))
        assert [(a, b) for a, b, _ in out] == list(zip(cuts[:-1], cuts[1:]))
        np.testing.assert_array_equal(np.concatenate([s for *_, s in out], axis=1), whole)


def test_smoothing_removes_speckle():
    """Two planted regions in the ball with 8% of voxels swapped to the other region's point: k-means labels
    the speckle with the wrong region; after smoothing (sigma 1.5) it labels almost every voxel by region."""
    import numpy as np

    from hypops.models.scoring import hungarian_scores

    g = np.random.default_rng(0)
    truth = np.zeros((16, 16, 16), dtype=np.int64)
    truth[:, :, 8:] = 1
    flip = g.random(truth.shape) < 0.08
    noisy = np.where(flip, 1 - truth, truth)
    centres = np.array([[-0.4, 0.1], [0.3, 0.35]])
    lat = torch.from_numpy(centres[noisy].transpose(3, 0, 1, 2) + 0.02 * g.normal(size=(2, 16, 16, 16))).float()
    truth_t = torch.from_numpy(truth)
    raw = hungarian_scores(seg.cluster_latents(lat, [2], seed=0)[2], truth_t)["dice"]
    smooth = hungarian_scores(seg.cluster_latents(seg.smooth_latents(lat, 1.5), [2], seed=0)[2], truth_t)["dice"]
    assert raw < 0.93 and smooth > 0.99


def _paper_model():
    torch.manual_seed(0)
    return build_vae("paper").eval()


def test_patch_latents_equal_explicit_patches():
    """embed_patches: the latent of voxel v is the encoder mean of the 10³ patch covering v - 5 .. v + 4 of the
    edge-padded volume, at the edges too, for stride 1 and 3 and batches smaller than a grid row."""
    import numpy as np

    model = _paper_model()
    g = torch.Generator().manual_seed(0)
    vol = torch.randn(5, 6, 7, generator=g)
    padded = torch.from_numpy(np.pad(vol.numpy(), 5, mode="edge"))  # padded[i] = vol[clip(i - 5)]

    def explicit(z, y, x):
        with torch.no_grad():
            return model.embed(padded[z:z + 10, y:y + 10, x:x + 10][None, None])[0]

    lat = seg.embed_patches(model, vol, stride=1, batch=4)
    assert lat.shape == (2, 5, 6, 7)
    for v in [(0, 0, 0), (4, 5, 6), (2, 3, 1), (0, 5, 3), (4, 0, 6)]:
        torch.testing.assert_close(lat[(slice(None), *v)], explicit(*v), rtol=1e-5, atol=1e-6)
    lat3 = seg.embed_patches(model, vol, stride=3, batch=1)
    assert lat3.shape == (2, 2, 2, 3) == (2, *seg.grid_shape(vol.shape, 3))
    for gz, gy, gx in [(0, 0, 0), (1, 1, 2), (1, 0, 1)]:
        torch.testing.assert_close(lat3[:, gz, gy, gx], explicit(3 * gz, 3 * gy, 3 * gx), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(lat3[:, gz, gy, gx], lat[:, 3 * gz, 3 * gy, 3 * gx], rtol=1e-5, atol=1e-6)


def test_nearest_grid_upsampling():
    """Each voxel takes the nearest sampled voxel (ties go up; past the last sample, the last one)."""
    import numpy as np

    for n in (1, 5, 7, 8, 12):
        for s in (1, 2, 3, 4):
            got = seg.nearest_grid_index(n, s)
            samples = np.arange(seg.grid_shape((n,), s)[0]) * s
            dist = np.abs(np.arange(n)[:, None] - samples[None, :])
            # argmin over the reversed samples breaks a tie towards the higher sample
            want = len(samples) - 1 - np.argmin(dist[:, ::-1], axis=1)
            np.testing.assert_array_equal(got, want, err_msg=f"n={n} stride={s}")
    grid = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    up = seg.upsample_nearest(grid, (4, 5, 7), 2)
    assert up.shape == (4, 5, 7)
    np.testing.assert_array_equal(up[::2, ::2, ::2], grid)
    assert up[1, 1, 1] == grid[1, 1, 1] and up[3, 4, 6] == grid[1, 2, 3]
