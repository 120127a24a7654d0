"""hypops.expmap0 (every backend x dtype): the shared checks of tests/hyptest.py plus expmap0's own."""

import math

import torch
from hyptest import OpSpec, OpTests, assert_strictly_inside, gen, vectors_at

import hypops
from hypops._constants import PROJ_EPS

OP = "expmap0"


class TestExpmap0(OpTests):
    spec = OpSpec("expmap0", ("tangent",))

    def test_zero_maps_to_origin_with_identity_jacobian(self, backend, dtype):
        u = torch.zeros(3, 4, dtype=dtype, requires_grad=True)
        out = hypops.expmap0(u, c=2.0, backend=backend)
        assert torch.equal(out, torch.zeros_like(out))
        g = torch.arange(12, dtype=dtype).reshape(3, 4)
        out.backward(g)
        # d expmap0 / du = I at u = 0 (expmap0(u) = u + O(|u|^3))
        torch.testing.assert_close(u.grad, g, rtol=4 * torch.finfo(dtype).eps, atol=0)

    def test_huge_norm_saturates_on_projection_sphere(self, backend, dtype):
        for c in (1e-3, 1.0, 10.0):
            norms = [1e4, 3e4] + ([] if dtype == torch.float16 else [1e6])
            u = vectors_at(norms, 6, gen(1)).to(dtype)
            out = hypops.expmap0(u, c=c, backend=backend)
            want_norm = (1 - PROJ_EPS[dtype]) / math.sqrt(c)
            n = out.double().norm(dim=-1)
            # on the projection sphere, up to the dtype's rounding
            rel = {torch.float64: 1e-12, torch.float32: 1e-6}.get(dtype, 8e-3)
            torch.testing.assert_close(n, torch.full_like(n, want_norm), rtol=rel, atol=0)
            # same direction as u
            cos = (out.double() * u.double()).sum(-1) / (n * u.double().norm(dim=-1))
            torch.testing.assert_close(
                cos,
                torch.ones_like(cos),
                rtol=0,
                atol=1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-6,
            )
            assert_strictly_inside(out, c)

    def test_small_norm_is_identity(self, backend):
        u = vectors_at([1e-12, 1e-9, 1e-7], 4, gen(2))
        out = hypops.expmap0(u, c=3.0, backend=backend)
        torch.testing.assert_close(out, u, rtol=1e-12, atol=0)

    def test_closed_form(self, backend):
        # |expmap0(u)| = tanh(sqrt(c)|u|)/sqrt(c), independent of hypops.reference
        c = 0.25
        norms = torch.tensor([0.1, 1.0, 2.0, 5.0], dtype=torch.float64)
        u = vectors_at(norms, 3, gen(3))
        out = hypops.expmap0(u, c=c, backend=backend)
        torch.testing.assert_close(
            out.norm(dim=-1), torch.tanh(math.sqrt(c) * norms) / math.sqrt(c), rtol=1e-13, atol=0
        )
