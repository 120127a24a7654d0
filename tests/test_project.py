"""hypops.project (every backend x dtype): the shared checks of tests/hyptest.py plus project's own."""

import math

import pytest
import torch
from hyptest import C_VALUES, OpSpec, OpTests, assert_strictly_inside, gen, points_at, ulps

import hypops
from hypops._constants import PROJ_EPS

OP = "project"


class TestProject(OpTests):
    spec = OpSpec("project", ("point",))

    def test_inside_points_unchanged(self, backend, dtype):
        x = points_at([0.0, 1e-7, 0.3, 0.9, 0.99], 6, 2.0, gen(1)).to(dtype)
        assert torch.equal(hypops.project(x, c=2.0, backend=backend), x)

    @pytest.mark.parametrize("c", C_VALUES)
    def test_outside_points_land_on_projection_sphere(self, backend, dtype, c):
        fr = [1 - PROJ_EPS[dtype] / 2, 1.0, 1.5, 1e3]
        x = points_at(fr, 6, c, gen(2)).to(dtype)
        out = hypops.project(x, c=c, backend=backend)
        n = out.double().norm(dim=-1)
        want = (1 - PROJ_EPS[dtype]) / math.sqrt(c)
        torch.testing.assert_close(n, torch.full_like(n, want), rtol=2 * ulps(dtype, 1) + 1e-15, atol=0)
        # direction kept
        cos = (out.double() * x.double()).sum(-1) / (n * x.double().norm(dim=-1))
        torch.testing.assert_close(cos, torch.ones_like(cos), rtol=0, atol=8 * ulps(dtype, 1))
        assert_strictly_inside(out, c)

    def test_half_types_strictly_inside_after_rounding(self, backend):
        # the reason for the per-dtype eps: geoopt's 1e-5 rounds back onto (or beyond) the sphere in
        # float16/bfloat16. Many directions, several curvatures.
        for dtype in (torch.float16, torch.bfloat16):
            for c in (1e-3, 0.1, 0.37, 1.0, 3.0, 10.0):
                x = points_at(torch.full((2000,), 1.2), 7, c, gen(3)).to(dtype)
                assert_strictly_inside(hypops.project(x, c=c, backend=backend), c, msg=f"{dtype} c={c}")

    def test_gradient_on_the_sphere_is_tangential(self, backend):
        # beyond the sphere, project(x) = m x/|x|: d/dx in the radial direction is 0
        x = points_at([1.5, 2.0], 4, 1.0, gen(4)).requires_grad_(True)
        out = hypops.project(x, backend=backend)
        out.backward(x.detach())  # radial incoming gradient
        torch.testing.assert_close(x.grad, torch.zeros_like(x), rtol=0, atol=1e-15)
