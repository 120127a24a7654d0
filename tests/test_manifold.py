"""hypops.PoincareBall against geoopt.PoincareBall: same values, and the same optimisation trajectory
under geoopt.ManifoldParameter + RiemannianAdam."""

import geoopt
import pytest
import torch

import hypops


@pytest.fixture(params=[0.5, 1.0, 2.0])
def balls(request):
    # float64 curvature: geoopt stores c in float32 by default, and its projection radius then carries
    # float32 rounding that would hide a real difference at 1e-9.
    return hypops.PoincareBall(c=request.param).double(), geoopt.PoincareBall(c=request.param).double()


def _points(n, d, c, gen, scale=0.9):
    x = torch.randn(n, d, dtype=torch.float64, generator=gen)
    r = torch.rand(n, 1, dtype=torch.float64, generator=gen) * scale / c**0.5
    return x / x.norm(dim=-1, keepdim=True) * r


def test_methods_match_geoopt(balls):
    ours, theirs = balls
    c = float(theirs.c)
    g = torch.Generator().manual_seed(0)
    x, y, p = (_points(64, 5, c, g) for _ in range(3))
    u, a = torch.randn(64, 5, dtype=torch.float64, generator=g), torch.randn(64, 5, dtype=torch.float64, generator=g)
    pairs = [
        ("expmap0", (u,), {}),
        ("logmap0", (x,), {}),
        ("expmap", (x, u), {}),
        ("logmap", (x, y), {}),
        ("mobius_add", (x, y), {}),
        ("dist", (x, y), {}),
        ("dist", (x, y), {"keepdim": True}),
        ("dist2", (x, y), {}),
        ("dist0", (x,), {}),
        ("dist0", (x,), {"keepdim": True}),
        ("projx", (x * 3,), {}),
        ("retr", (x, u), {}),
        ("dist2plane", (x, p, a), {"signed": True}),
        ("dist2plane", (x, p, a), {"scaled": True}),
        ("expmap0", (u,), {"project": False}),
    ]
    for name, args, kw in pairs:
        got = getattr(ours, name)(*args, **kw)
        want = getattr(theirs, name)(*args, **kw)
        assert got.shape == want.shape, name
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9, msg=name)


def test_dim_argument(balls):
    ours, theirs = balls
    g = torch.Generator().manual_seed(1)
    x = _points(12, 4, float(theirs.c), g).reshape(3, 4, 4).transpose(1, 2)  # coordinates along dim=1
    torch.testing.assert_close(ours.dist0(x, dim=1), theirs.dist0(x, dim=1))
    torch.testing.assert_close(ours.logmap0(x, dim=1), theirs.logmap0(x, dim=1))


def test_learnable_c_gets_gradient():
    ours, theirs = hypops.PoincareBall(c=0.7, learnable=True), geoopt.PoincareBall(c=0.7, learnable=True)
    g = torch.Generator().manual_seed(2)
    x, y = _points(32, 3, 0.7, g), _points(32, 3, 0.7, g)
    ours.dist(x.float(), y.float()).sum().backward()
    theirs.dist(x.float(), y.float()).sum().backward()
    assert ours.isp_c.grad is not None
    torch.testing.assert_close(ours.isp_c.grad, theirs.isp_c.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", ["native", "torch"])
def test_riemannian_adam_trajectory_matches_geoopt(backend):
    """Fit points to targets by minimising squared hyperbolic distance: the same parameters, the same
    optimiser, two manifolds -> the same trajectory."""
    g = torch.Generator().manual_seed(3)
    start, target = _points(16, 3, 1.0, g, 0.5), _points(16, 3, 1.0, g, 0.95)

    def run(ball):
        param = geoopt.ManifoldParameter(start.clone(), manifold=ball)
        opt = geoopt.optim.RiemannianAdam([param], lr=0.05)
        losses = []
        for _ in range(60):
            opt.zero_grad()
            loss = ball.dist(param, target).pow(2).sum()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return param.detach(), losses

    ours, theirs = run(hypops.PoincareBall(c=1.0, backend=backend)), run(geoopt.PoincareBall(c=1.0))
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-7, atol=1e-7)
    assert ours[1][-1] < 0.05 * ours[1][0]  # it actually optimised
    torch.testing.assert_close(torch.tensor(ours[1]), torch.tensor(theirs[1]), rtol=1e-7, atol=1e-9)
