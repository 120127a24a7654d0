"""hypops.logmap0 (every backend x dtype): the shared checks of tests/hyptest.py plus logmap0's own."""

import math

import torch
from hyptest import OpSpec, OpTests, gen, points_at

import hypops
from hypops._constants import ARTANH_CLAMP

OP = "logmap0"


class TestLogmap0(OpTests):
    spec = OpSpec("logmap0", ("point",))

    def test_zero_and_identity_jacobian(self, backend, dtype):
        y = torch.zeros(2, 3, dtype=dtype, requires_grad=True)
        out = hypops.logmap0(y, c=0.5, backend=backend)
        assert torch.equal(out, torch.zeros_like(out))
        g = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.25, -4.0]], dtype=dtype)
        out.backward(g)
        torch.testing.assert_close(y.grad, g, rtol=4 * torch.finfo(dtype).eps, atol=0)

    def test_closed_form(self, backend):
        # |logmap0(y)| = artanh(sqrt(c)|y|)/sqrt(c) and logmap0(y) is parallel to y
        c = 4.0
        fr = torch.tensor([1e-3, 0.3, 0.9, 0.999], dtype=torch.float64)
        y = points_at(fr, 4, c, gen(1))
        out = hypops.logmap0(y, c=c, backend=backend)
        torch.testing.assert_close(out.norm(dim=-1), torch.atanh(fr) / math.sqrt(c), rtol=1e-12, atol=0)
        cos = (out * y).sum(-1) / (out.norm(dim=-1) * y.norm(dim=-1))
        torch.testing.assert_close(cos, torch.ones_like(cos), rtol=0, atol=1e-14)

    def test_saturates_at_and_beyond_the_sphere(self, backend):
        # artanh's argument is clamped at 1 - ARTANH_CLAMP: points on / outside the sphere give the
        # saturated hyperbolic radius, not Inf, and the result is not projected (logmap0 returns a vector)
        c = 2.0
        y = points_at([1.0, 1.5, 100.0], 3, c, gen(2))
        out = hypops.logmap0(y, c=c, backend=backend)
        want = math.atanh(1 - ARTANH_CLAMP) / math.sqrt(c)
        torch.testing.assert_close(
            out.norm(dim=-1), torch.full((3,), want, dtype=torch.float64), rtol=1e-9, atol=0
        )
