"""hypops.logmap (every backend x dtype): the shared checks of tests/hyptest.py plus logmap's own."""

import torch
from hyptest import OpSpec, OpTests, ball_points, gen

import hypops

OP = "logmap"


class TestLogmap(OpTests):
    spec = OpSpec("logmap", ("point", "point"))

    def test_same_point_gives_zero_with_finite_gradient(self, backend, dtype):
        x = ball_points(5, 4, 1.0, gen(1), max_frac=0.99).to(dtype).requires_grad_(True)
        out = hypops.logmap(x, x, c=1.0, backend=backend)
        # zero up to the rounding of the coefficients (a few ulps of |x|)
        assert (out.double().norm(dim=-1) <= 8 * torch.finfo(dtype).eps * x.double().norm(dim=-1)).all()
        out.sum().backward()
        assert torch.isfinite(x.grad).all()

    def test_same_point_gradients_match_reference(self, backend):
        # at y == x: d logmap(x, y)/dy = (2/lambda_x)^... the reference's autograd is the oracle
        x = ball_points(5, 3, 1.0, gen(2), max_frac=0.8)
        x1, y1 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        w = torch.randn(5, 3, dtype=torch.float64, generator=gen(3))
        (hypops.logmap(x1, y1, c=1.0, backend=backend) * w).sum().backward()
        x2, y2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        (hypops.reference.logmap(x2, y2, c=1.0) * w).sum().backward()
        torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(y1.grad, y2.grad, rtol=1e-9, atol=1e-12)
        # and the exact values: logmap(x, y) = (y - x) + O(|y - x|^2), so the Jacobians at y = x are
        # +I (in y) and -I (in x)
        torch.testing.assert_close(y1.grad, w, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(x1.grad, -w, rtol=1e-9, atol=1e-12)

    def test_at_origin_is_logmap0(self, backend, dtype):
        y = ball_points(6, 4, 0.3, gen(4)).to(dtype)
        a = hypops.logmap(torch.zeros_like(y), y, c=0.3, backend=backend)
        b = hypops.logmap0(y, c=0.3, backend=backend)
        tol = 8 * torch.finfo(dtype).eps
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
