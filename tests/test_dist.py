"""hypops.dist (every backend x dtype): the shared checks of tests/hyptest.py plus dist's own."""

import math

import torch
from hyptest import OpSpec, OpTests, ball_points, gen

import hypops

OP = "dist"


def dist_closed_form(x, y, c):
    """arcosh form of the Poincaré distance, independent of hypops.reference (float64)."""
    x2, y2 = x.pow(2).sum(-1), y.pow(2).sum(-1)
    return torch.acosh(1 + 2 * c * (x - y).pow(2).sum(-1) / ((1 - c * x2) * (1 - c * y2))) / math.sqrt(c)


class TestDist(OpTests):
    spec = OpSpec("dist", ("point", "point"))

    def test_closed_form(self, backend):
        for c in (1e-3, 0.1, 1.0, 10.0):
            g = gen(1)
            x, y = ball_points(16, 4, c, g, zero_rows=0), ball_points(16, 4, c, g, zero_rows=0)
            torch.testing.assert_close(
                hypops.dist(x, y, c=c, backend=backend), dist_closed_form(x, y, c), rtol=1e-9, atol=0
            )

    def test_keepdim(self, backend, dtype):
        g = gen(2)
        x, y = ball_points(6, 3, 1.0, g).to(dtype), ball_points(6, 3, 1.0, g).to(dtype)
        a = hypops.dist(x, y, backend=backend)
        b = hypops.dist(x, y, keepdim=True, backend=backend)
        assert a.shape == (6,) and b.shape == (6, 1)
        torch.testing.assert_close(b.squeeze(-1), a, rtol=0, atol=0)
        xt, yt = x.t(), y.t()
        b0 = hypops.dist(xt, yt, dim=0, keepdim=True, backend=backend)
        assert b0.shape == (1, 6)

    def test_same_point_zero_distance_finite_gradient(self, backend, dtype):
        # geoopt's dist has a NaN gradient at x == y; ours must not
        x = ball_points(5, 4, 1.0, gen(3), max_frac=0.99).to(dtype)
        x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        d = hypops.dist(x1, x2, backend=backend)
        assert (d.double() <= 1e-6 * (1 if dtype == torch.float64 else 1e4)).all(), d
        d.sum().backward()
        assert torch.isfinite(x1.grad).all() and torch.isfinite(x2.grad).all()

    def test_close_points_accurate(self, backend):
        # nearly coincident points: the distance is ~ lambda_x |x - y| (first order), computed without
        # cancellation (the native kernel forms |x - y|^2 from the difference vector)
        x = ball_points(6, 4, 1.0, gen(4), max_frac=0.9, zero_rows=0)
        h = 1e-9 * torch.randn(6, 4, dtype=torch.float64, generator=gen(5))
        y = x + h
        lam = 2 / (1 - x.pow(2).sum(-1))
        torch.testing.assert_close(
            hypops.dist(x, y, backend=backend), lam * h.norm(dim=-1), rtol=1e-6, atol=0
        )
