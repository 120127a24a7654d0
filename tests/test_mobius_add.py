"""hypops.mobius_add (every backend x dtype): the shared checks of tests/hyptest.py plus its own."""

import math

import torch
from hyptest import OpSpec, OpTests, ball_points, gen, ulps

import hypops

OP = "mobius_add"


def mobius_add_closed_form(x, y, c):
    """SPEC §1, written out independently of hypops.reference (float64, no clamps)."""
    xy = (x * y).sum(-1, keepdim=True)
    x2, y2 = x.pow(2).sum(-1, keepdim=True), y.pow(2).sum(-1, keepdim=True)
    return ((1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y) / (1 + 2 * c * xy + c**2 * x2 * y2)


class TestMobiusAdd(OpTests):
    spec = OpSpec("mobius_add", ("point", "point"))

    def test_identity_element(self, backend, dtype):
        x = ball_points(6, 4, 2.0, gen(1)).to(dtype)
        z = torch.zeros_like(x)
        tol = ulps(dtype)
        torch.testing.assert_close(hypops.mobius_add(x, z, c=2.0, backend=backend), x, rtol=tol, atol=tol)
        torch.testing.assert_close(hypops.mobius_add(z, x, c=2.0, backend=backend), x, rtol=tol, atol=tol)

    def test_inverse(self, backend, full_dtype):
        # (-x) (+) x = 0
        x = ball_points(6, 4, 0.5, gen(2)).to(full_dtype)
        out = hypops.mobius_add(-x, x, c=0.5, backend=backend)
        assert (
            out.double().norm(dim=-1) <= 8 * torch.finfo(full_dtype).eps * (1 + x.double().norm(dim=-1))
        ).all()

    def test_closed_form(self, backend):
        for c in (1e-3, 1.0, 10.0):
            g = gen(3)
            x, y = ball_points(16, 5, c, g), ball_points(16, 5, c, g)
            out = hypops.mobius_add(x, y, c=c, backend=backend)
            torch.testing.assert_close(
                out, mobius_add_closed_form(x, y, c), rtol=1e-12, atol=1e-14 / math.sqrt(c)
            )

    def test_not_commutative(self, backend):
        # x (+) y != y (+) x in general, but they have the same norm (gyrocommutativity)
        g = gen(4)
        x, y = ball_points(8, 3, 1.0, g, zero_rows=0), ball_points(8, 3, 1.0, g, zero_rows=0)
        a, b = hypops.mobius_add(x, y, backend=backend), hypops.mobius_add(y, x, backend=backend)
        assert (a - b).norm(dim=-1).min() > 1e-6
        torch.testing.assert_close(a.norm(dim=-1), b.norm(dim=-1), rtol=1e-12, atol=0)
