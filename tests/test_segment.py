"""hypops.models.segment: tiled latents equal one pass over the whole volume (the halo covers the receptive
field), chunked cluster assignment equals the unchunked one, clusters are numbered by latent radius."""

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
