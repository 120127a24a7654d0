"""hypops.models.kmeans: Poincaré k-means and the Lou et al. Fréchet mean."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import hypops
from hypops import reference
from hypops.models import PoincareKMeans, frechet_mean
from hypops.models.kmeans import frechet_g


def _blobs(centres, n_per, spread, c=1.0, seed=0, dtype=torch.float64):
    """Wrapped-normal blobs mu (+) expmap0(v), v ~ N(0, spread^2 I): the geodesic spread around each
    centre is the same wherever it sits (an expmap at mu would shrink the tangent step by lambda_mu)."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for j, mu in enumerate(centres):
        mu = torch.as_tensor(mu, dtype=dtype)
        v = torch.randn(n_per, mu.numel(), generator=g, dtype=dtype) * spread
        xs.append(reference.mobius_add(mu.expand(n_per, -1), reference.expmap0(v, c=c), c=c))
        ys.append(torch.full((n_per,), j))
    return torch.cat(xs), torch.cat(ys)


def _matched_accuracy(pred, truth):
    k = int(max(pred.max(), truth.max())) + 1
    conf = np.zeros((k, k))
    np.add.at(conf, (pred.numpy(), truth.numpy()), 1)
    r, c = linear_sum_assignment(conf, maximize=True)
    return conf[r, c].sum() / len(pred)


@pytest.mark.parametrize("c", [1.0, 0.5, 2.0])
def test_recovers_planted_clusters_incl_near_boundary(c):
    # Centres on the unit ball scaled to the c-ball; two of them near the boundary (|x| = 0.97 / sqrt c).
    R = 1 / math.sqrt(c)
    centres = [
        [0.0, 0.0],
        [0.5 * R, 0.0],
        [-0.5 * R, 0.3 * R],
        [0.0, -0.6 * R],
        [0.97 * R * math.cos(2.0), 0.97 * R * math.sin(2.0)],
        [0.97 * R * math.cos(-0.6), 0.97 * R * math.sin(-0.6)],
    ]
    x, y = _blobs(centres, 300, 0.12 * R, c=c, seed=1)
    km = PoincareKMeans(6, c=c, n_init=4, seed=0).fit(x)
    assert _matched_accuracy(km.labels_, y) > 0.95
    # Each recovered centre is close (geodesically) to a planted one.
    d = hypops.dist(km.cluster_centers_[:, None, :], torch.tensor(centres, dtype=x.dtype)[None], c=c)
    assert float(d.min(1).values.max()) < 0.1
    # Inertia is the sum of squared distances to the assigned centre, in the c-ball's geometry.
    direct = (hypops.dist(x, km.cluster_centers_[km.labels_], c=c) ** 2).sum()
    assert km.inertia_ == pytest.approx(float(direct), rel=1e-6)
    assert km.inertia_ == pytest.approx(min(km.inertias_))
    assert torch.equal(km.predict(x), km.labels_)


def test_float32_and_higher_dim():
    centres = torch.zeros(4, 5, dtype=torch.float64)
    for i in range(4):
        centres[i, i] = 0.8 if i % 2 else -0.9
    x, y = _blobs(centres, 250, 0.15, seed=2)
    km = PoincareKMeans(4, seed=3)
    labels = km.fit_predict(x.float())
    assert labels.dtype == torch.int64 and labels.shape == (1000,)
    assert km.cluster_centers_.dtype == torch.float32 and km.cluster_centers_.shape == (4, 5)
    assert _matched_accuracy(labels, y) > 0.95


def test_deterministic_and_seeded():
    x, _ = _blobs([[0.3, 0.1], [-0.4, 0.2], [0.1, -0.5]], 200, 0.4, seed=4)
    a = PoincareKMeans(5, seed=7).fit(x)
    b = PoincareKMeans(5, seed=7).fit(x)
    assert torch.equal(a.labels_, b.labels_) and torch.equal(a.cluster_centers_, b.cluster_centers_)


def test_restarts_keep_lowest_inertia():
    x, _ = _blobs([[0.3, 0.1], [-0.4, 0.2], [0.1, -0.5], [0.6, 0.6]], 150, 0.5, seed=5)
    single = [PoincareKMeans(6, n_init=1, seed=s).fit(x).inertia_ for s in range(4)]
    multi = PoincareKMeans(6, n_init=8, seed=0).fit(x)
    assert multi.inertia_ == pytest.approx(min(multi.inertias_))
    assert len(multi.inertias_) == 8
    assert multi.inertia_ <= max(single) + 1e-9


def test_centres_are_frechet_means_of_their_clusters():
    x, _ = _blobs([[0.5, 0.2], [-0.6, -0.1]], 300, 0.2, seed=6)
    km = PoincareKMeans(2, tol=1e-9, max_iter=200, seed=0).fit(x)
    for j in range(2):
        pts = x[km.labels_ == j]
        ref = frechet_mean(pts, n_iter=200)
        assert float(hypops.dist(ref, km.cluster_centers_[j])) < 1e-6
        # A Fréchet mean makes the summed log map vanish (first-order optimality).
        grad = reference.logmap(km.cluster_centers_[j].expand_as(pts), pts).sum(0)
        assert float(grad.norm()) < 1e-5 * len(pts)


def test_empty_clusters_reseeded():
    # 3 distinct locations, many duplicates, k = 3: k-means++ must pick each location once; a
    # cluster count above the distinct points still ends with every cluster non-empty when possible.
    x = torch.tensor(
        [[0.1, 0.1]] * 50 + [[-0.5, 0.2]] * 50 + [[0.2, -0.7]] * 50 + [[0.0, 0.0]], dtype=torch.float64
    )
    km = PoincareKMeans(4, n_init=2, seed=0).fit(x)
    assert sorted(torch.bincount(km.labels_, minlength=4).tolist()) == [1, 50, 50, 50]
    assert km.inertia_ == pytest.approx(0.0, abs=1e-12)


def test_reseed_picks_farthest_points_in_order():
    u = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.9, 0.0], [0.5, 0.0]], dtype=torch.float64)
    centres = torch.tensor([[[0.0, 0.0], [0.05, 0.0], [-0.3, 0.3], [0.2, 0.2]]], dtype=torch.float64)
    empty = torch.tensor([[False, True, False, True]])
    t = torch.tensor([[0.0, 1.0, 5.0, 2.0]])  # point 2 farthest from its centre, then point 3
    new = PoincareKMeans._reseed(u, centres, empty, t)
    assert torch.equal(new[0, 1], u[2]) and torch.equal(new[0, 3], u[3])
    assert torch.equal(new[0, [0, 2]], centres[0, [0, 2]])


def test_g_limit_and_small_t_accuracy():
    t = torch.tensor([0.0, 1e-12, 1e-7, 9.9e-7, 1.01e-6, 1e-3, 1.0, 100.0], dtype=torch.float64)
    g = frechet_g(t)
    assert torch.isfinite(g).all()
    assert float(g[0]) == 4.0
    exact = 2 * torch.acosh(1 + 2 * t[1:]) / torch.sqrt(t[1:] ** 2 + t[1:])
    # The closed form loses digits as t -> 0 (acosh near 1); compare where it is still accurate.
    np.testing.assert_allclose(g[3:].numpy(), exact[2:].numpy(), rtol=1e-6)
    assert abs(float(g[1]) - 4.0) < 1e-9
    g32 = frechet_g(torch.tensor([0.0, 1e-10, 1e-5], dtype=torch.float32))
    assert torch.isfinite(g32).all() and float(g32[0]) == 4.0


def test_frechet_mean_single_point():
    p = torch.tensor([[0.3, -0.8]], dtype=torch.float64)
    assert torch.allclose(frechet_mean(p), p[0], atol=1e-15)
    # One step from anywhere lands on the point (the weights cancel).
    assert torch.allclose(frechet_mean(p, n_iter=1, init=torch.tensor([-0.5, 0.5])), p[0], atol=1e-12)
    assert torch.allclose(frechet_mean(p * 0.5, c=4.0), p[0] * 0.5, atol=1e-15)


@pytest.mark.parametrize("c", [1.0, 3.0])
def test_frechet_mean_of_symmetric_configurations(c):
    R = 1 / math.sqrt(c)
    # Points symmetric about the origin: the mean is the origin.
    ring = torch.stack(
        [torch.tensor([math.cos(a), math.sin(a), 0.0]) for a in np.linspace(0, 2 * math.pi, 7)[:-1]]
    )
    pts = torch.cat([0.9 * R * ring, 0.4 * R * ring]).double()  # six angles: every point has its antipode
    m = frechet_mean(pts, c=c, n_iter=100)
    assert float(m.norm()) < 1e-10
    # Symmetric about an arbitrary point mu: mu (+) (+-v) in pairs. The geodesic midpoint of the pair is
    # mu, and so is the mean of several such pairs.
    mu = torch.tensor([0.5, -0.3, 0.2], dtype=torch.float64) * R
    vs = torch.tensor([[0.4, 0.1, 0.0], [0.0, -0.5, 0.3], [0.2, 0.2, 0.2]], dtype=torch.float64) * R
    sym = torch.cat(
        [reference.mobius_add(mu.expand(3, 3), vs, c=c), reference.mobius_add(mu.expand(3, 3), -vs, c=c)]
    )
    m = frechet_mean(sym, c=c, n_iter=100)
    assert float(hypops.dist(m, mu, c=c)) < 1e-9
    # The same mean from the batched k-means path (one cluster).
    km = PoincareKMeans(1, c=c, n_init=1, tol=0.0, max_iter=60).fit(sym)
    assert float(hypops.dist(km.cluster_centers_[0], mu, c=c)) < 1e-9


def test_weighted_frechet_mean_two_points():
    # Weights 1 and 3 on the geodesic through 0: the minimiser of w1 d(m,a)^2 + w2 d(m,b)^2 lies at 3/4 of
    # the way from a to b in geodesic distance.
    a = torch.tensor([-0.6, 0.0], dtype=torch.float64)
    b = torch.tensor([0.6, 0.0], dtype=torch.float64)
    m = frechet_mean(torch.stack([a, b]), weights=[1.0, 3.0], n_iter=200)
    da, db = float(reference.dist(m, a)), float(reference.dist(m, b))
    assert da / (da + db) == pytest.approx(0.75, rel=1e-8)


def test_input_validation_names_the_argument():
    km = PoincareKMeans(2)
    with pytest.raises(ValueError, match="x must be a 2-D"):
        km.fit(torch.zeros(5))
    with pytest.raises(ValueError, match="inside the Poincaré ball.*row 1"):
        km.fit(torch.tensor([[0.1, 0.0], [1.0, 0.0], [0.0, 0.2]]))
    with pytest.raises(ValueError, match="inside the Poincaré ball"):
        PoincareKMeans(2, c=4.0).fit(torch.tensor([[0.1, 0.0], [0.6, 0.0], [0.0, 0.2]]))
    with pytest.raises(ValueError, match="NaN"):
        km.fit(torch.tensor([[0.1, float("nan")], [0.2, 0.0]]))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        km.fit([[0.1, 0.2]])
    with pytest.raises(ValueError, match="n_clusters=2 exceeds"):
        km.fit(torch.tensor([[0.1, 0.2]]))
    with pytest.raises(ValueError, match="n_clusters"):
        PoincareKMeans(0)
    with pytest.raises(ValueError, match="c must be"):
        PoincareKMeans(2, c=-1.0)
    with pytest.raises(ValueError, match="n_init"):
        PoincareKMeans(2, n_init=0)
    with pytest.raises(RuntimeError, match="fit before predict"):
        PoincareKMeans(2).predict(torch.zeros(3, 2))
    km.fit(torch.tensor([[0.1, 0.2], [-0.3, 0.1], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="3 coordinates"):
        km.predict(torch.zeros(2, 3))
