"""hypops.dist2plane (every backend x dtype, signed/unsigned x scaled/unscaled): the shared checks of
tests/hyptest.py plus dist2plane's own, including the asinh accuracy contract (SPEC §1, Numerics)."""

import math

import pytest
import torch
from hyptest import (
    OpSpec,
    OpTests,
    ball_points,
    dist2plane_mp,
    gen,
    plane_points_with_asinh_arg,
    points_at,
    sample,
)

import hypops

OP = "dist2plane"
KINDS = ("point", "point", "normal")


class TestDist2planeUnsignedUnscaled(OpTests):
    spec = OpSpec("dist2plane", KINDS, dict(signed=False, scaled=False))


class TestDist2planeSignedUnscaled(OpTests):
    spec = OpSpec("dist2plane", KINDS, dict(signed=True, scaled=False))


class TestDist2planeUnsignedScaled(OpTests):
    spec = OpSpec("dist2plane", KINDS, dict(signed=False, scaled=True))


class TestDist2planeSignedScaled(OpTests):
    spec = OpSpec("dist2plane", KINDS, dict(signed=True, scaled=True))


def _xpa(n=16, d=4, c=1.0, seed=0):
    g = gen(seed)
    return (
        ball_points(n, d, c, g, zero_rows=0),
        ball_points(n, d, c, g, zero_rows=0),
        sample("normal", n, d, c, g),
    )


def test_flag_relations(backend, dtype):
    """unsigned = |signed|; scaled = |a| x unscaled; signed(-a) = -signed(a); the default is unsigned,
    unscaled; the distance does not depend on |a| when unscaled."""
    x, p, a = (t.to(dtype) for t in _xpa(seed=1))
    f = lambda a_, **kw: hypops.dist2plane(x, p, a_, c=0.8, backend=backend, **kw).double()  # noqa: E731
    tol = dict(rtol=4 * torch.finfo(dtype).eps, atol=4 * torch.finfo(dtype).eps)
    s = f(a, signed=True)
    assert (s > 0).any() and (s < 0).any()  # the sample straddles planes
    torch.testing.assert_close(f(a, signed=False), s.abs(), **tol)
    torch.testing.assert_close(f(a), s.abs(), **tol)
    torch.testing.assert_close(f(-a, signed=True), -s, **tol)
    an = a.double().norm(dim=-1)
    torch.testing.assert_close(
        f(a, signed=True, scaled=True), s * an, rtol=8 * torch.finfo(dtype).eps, atol=1e-6
    )
    if dtype == torch.float64:
        torch.testing.assert_close(f(a * 3.0, signed=True), s, rtol=1e-12, atol=1e-14)


def test_closed_form_through_origin(backend):
    # plane through the origin with normal e0: (1/sqrt(c)) asinh(2 sqrt(c) x0 / (1 - c|x|^2))
    for c in (1e-3, 1.0, 10.0):
        x = ball_points(16, 3, c, gen(2), zero_rows=0)
        p = torch.zeros_like(x)
        a = torch.zeros_like(x)
        a[:, 0] = 2.5
        want = torch.asinh(2 * math.sqrt(c) * x[:, 0] / (1 - c * x.pow(2).sum(-1))) / math.sqrt(c)
        torch.testing.assert_close(
            hypops.dist2plane(x, p, a, c=c, signed=True, backend=backend), want, rtol=1e-12, atol=1e-14
        )


def test_point_on_plane_is_zero(backend, dtype):
    # x = p lies on the plane; so does any x = p (+) v with <v, a> = 0
    x, p, a = (t.to(dtype) for t in _xpa(seed=3))
    d0 = hypops.dist2plane(p, p, a, c=0.8, signed=True, backend=backend)
    assert d0.abs().max().item() <= 1e-6 if dtype != torch.float64 else d0.abs().max().item() <= 1e-15
    if dtype == torch.float64:
        v = torch.randn(p.shape, dtype=dtype, generator=gen(4)) * 0.3
        v = v - (v * a).sum(-1, keepdim=True) / a.pow(2).sum(-1, keepdim=True) * a
        on = hypops.mobius_add(p, v, c=0.8)
        d = hypops.dist2plane(on, p, a, c=0.8, signed=True, backend=backend)
        torch.testing.assert_close(d, torch.zeros_like(d), rtol=0, atol=1e-12)


def test_keepdim(backend):
    x, p, a = _xpa(seed=5)
    d = hypops.dist2plane(x, p, a, keepdim=True, backend=backend)
    assert d.shape == (16, 1)
    torch.testing.assert_close(d.squeeze(-1), hypops.dist2plane(x, p, a, backend=backend), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_zero_normal_is_finite(backend, dtype):
    # (float16 is left out: d/da at a = 0 is ~ 1/MIN_NORM = 1e15, beyond float16's range)
    x, p, a = (t.to(dtype) for t in _xpa(seed=6))
    a = torch.zeros_like(a).requires_grad_(True)
    x.requires_grad_(True)
    for signed in (False, True):
        for scaled in (False, True):
            d = hypops.dist2plane(x, p, a, c=0.8, signed=signed, scaled=scaled, backend=backend)
            assert torch.isfinite(d).all()
            d.sum().backward()
            assert torch.isfinite(a.grad).all() and torch.isfinite(x.grad).all()
            a.grad = x.grad = None


# --- the asinh accuracy contract ----------------------------------------------------------------------------
@pytest.mark.parametrize("c", [1e-3, 1.0, 10.0], ids=lambda c: f"c={c:g}")
def test_asinh_accurate_for_large_negative_arguments(backend, c):
    """Signed distances with asinh arguments from -1 down to -1e6 (points far on the negative side,
    near the boundary) match a 60-digit mpmath evaluation on the same (rounded) inputs: float64 to 1e-9,
    float32 to the conditioning of 1 - c|w|^2 (|z| x float32 eps, capped at 5e-3). A log(z + sqrt(1 + z^2))
    asinh is off by O(1) there (see tests/test_reference_vs_geoopt.py)."""
    zs = torch.tensor([-1e6, -1e5, -1e4, -1e3, -10.0, -1.0, 1.0, 1e4, 1e6])
    x, p, a = plane_points_with_asinh_arg(zs, 3, c)
    for dtype, rtol in ((torch.float64, 1e-9), (torch.float32, 5e-3)):
        xs, ps, as_ = x.to(dtype), p.to(dtype), a.to(dtype)
        want = dist2plane_mp(xs, ps, as_, c, signed=True)
        got = hypops.dist2plane(xs, ps, as_, c=c, signed=True, backend=backend).double()
        torch.testing.assert_close(got, want, rtol=rtol, atol=0, msg=f"{dtype}")
        # odd symmetry: reflect x through the plane
        got_ref = hypops.dist2plane(-xs, ps, as_, c=c, signed=True, backend=backend).double()
        torch.testing.assert_close(got_ref, -got, rtol=1e-6 if dtype == torch.float32 else 1e-14, atol=0)
        # and the gradient there is finite
        xg = xs.clone().requires_grad_(True)
        hypops.dist2plane(xg, ps, as_, c=c, signed=True, backend=backend).sum().backward()
        assert torch.isfinite(xg.grad).all()


def test_scaled_asinh_accuracy_float64(backend):
    x, p, a = plane_points_with_asinh_arg(torch.tensor([-1e6, -1e3, 5.0]), 4, 0.5)
    a = a * 7.0
    want = dist2plane_mp(x, p, a, 0.5, signed=True, scaled=True)
    got = hypops.dist2plane(x, p, a, c=0.5, signed=True, scaled=True, backend=backend)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=0)


# --- accuracy when x and p are both near the sphere ---------------------------------------------------------
def _near_boundary_pairs(c, dtype, n=32):
    g = gen(11)
    if dtype == torch.float32:
        fx, fp = [0.999, 1 - 1e-5, 0.9999, 0.99], [1 - 1e-5, 0.999, 0.9999, 0.9999]
    else:
        fx, fp = [1 - 1e-5, 1 - 1e-6, 0.999, 1 - 1e-6], [1 - 1e-5, 1 - 1e-6, 1 - 1e-6, 0.9999]
    fx = torch.tensor(fx, dtype=torch.float64).repeat(n // 4)
    fp = torch.tensor(fp, dtype=torch.float64).repeat(n // 4)
    x, p = points_at(fx, 4, c, g).to(dtype), points_at(fp, 4, c, g).to(dtype)
    a = sample("normal", n, 4, c, g).to(dtype)
    return x, p, a


@pytest.mark.parametrize(
    "dtype,rtol", [(torch.float32, 1e-2), (torch.float64, 1e-8)], ids=["float32", "float64"]
)
@pytest.mark.parametrize("c", [1e-3, 1.0, 10.0], ids=lambda c: f"c={c:g}")
def test_near_boundary_pairs_accuracy(backend, dtype, rtol, c):
    """x and p both within 1e-3 of the sphere (in different directions) put w = (-p) (+) x so close to it
    that 1 - c|w|^2, formed as 1 - c(|x - p|^2 / den), cancels to nothing in the compute dtype: the
    result then comes from the MIN_DENOM clamp and is off by a factor ~2 in float32. The exact identity
    1 - c|w|^2 = (1 - c|p|^2)(1 - c|x|^2) / den has no cancellation and meets these tolerances (float32:
    4e-4, below the 1.6e-3 that rounding the inputs alone causes). Oracle: 60-digit mpmath on the same
    rounded inputs."""
    x, p, a = _near_boundary_pairs(c, dtype)
    want = dist2plane_mp(x, p, a, c, signed=True)
    got = hypops.dist2plane(x, p, a, c=c, signed=True, backend=backend).double()
    rel = (got - want).abs() / want.abs()
    assert rel.max().item() <= rtol, f"max relative error {rel.max().item():.3g} (row {int(rel.argmax())})"
