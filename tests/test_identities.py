"""Identities of the Poincaré ball, for every backend (float64, and float32 with looser tolerances):
logmap0 o expmap0 = id, expmap0 o logmap0 = id inside the ball, logmap(x, expmap(x, u)) = u, left
cancellation (-x) (+) (x (+) y) = y, dist symmetry, dist(x, y) = lambda_x |logmap(x, y)|,
dist(0, x) = 2/sqrt(c) artanh(sqrt(c)|x|)."""

import math

import pytest
import torch
from hyptest import C_VALUES, ball_points, gen, skip_unless_serves, tangent_vectors

import hypops

OP = ("expmap0", "logmap0", "expmap", "logmap", "mobius_add", "dist")

# (rtol, atol relative to the ball radius) per dtype; inputs kept where the identities are well
# conditioned (radius fraction <= 0.9, tangent vectors that do not saturate tanh / the projection)
TOL = {torch.float64: (1e-9, 1e-12), torch.float32: (2e-4, 1e-5)}


@pytest.fixture(params=list(TOL), ids=["float64", "float32"])
def fdtype(request):
    return request.param


@pytest.fixture(params=C_VALUES, ids=lambda c: f"c={c:g}")
def c(request):
    return request.param


def _close(a, b, dtype, c, msg):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(a.double(), b.double(), rtol=rtol, atol=atol / math.sqrt(c), msg=msg)


def test_logmap0_expmap0(backend, fdtype, c):
    u = tangent_vectors(32, 5, c, gen(1), lo=1e-4, hi=2.0).to(fdtype)
    back = hypops.logmap0(hypops.expmap0(u, c=c, backend=backend), c=c, backend=backend)
    _close(back, u, fdtype, c, "logmap0(expmap0(u))")


def test_expmap0_logmap0(backend, fdtype, c):
    x = ball_points(32, 5, c, gen(2), max_frac=0.9).to(fdtype)
    back = hypops.expmap0(hypops.logmap0(x, c=c, backend=backend), c=c, backend=backend)
    _close(back, x, fdtype, c, "expmap0(logmap0(x))")


def test_logmap_expmap(backend, fdtype, c):
    g = gen(3)
    x = ball_points(32, 5, c, g, max_frac=0.8).to(fdtype)
    u = tangent_vectors(32, 5, c, g, lo=1e-3, hi=0.3).to(fdtype)
    back = hypops.logmap(x, hypops.expmap(x, u, c=c, backend=backend), c=c, backend=backend)
    rtol, atol = TOL[fdtype]
    # the round trip loses ~ lambda_x more than the single ops in float32
    scale = 10 if fdtype == torch.float32 else 1
    torch.testing.assert_close(back.double(), u.double(), rtol=rtol * scale, atol=atol * scale / math.sqrt(c))


def test_expmap_logmap(backend, fdtype, c):
    g = gen(4)
    x = ball_points(32, 5, c, g, max_frac=0.8).to(fdtype)
    y = ball_points(32, 5, c, g, max_frac=0.8).to(fdtype)
    back = hypops.expmap(x, hypops.logmap(x, y, c=c, backend=backend), c=c, backend=backend)
    rtol, atol = TOL[fdtype]
    scale = 10 if fdtype == torch.float32 else 1
    torch.testing.assert_close(back.double(), y.double(), rtol=rtol * scale, atol=atol * scale / math.sqrt(c))


def test_left_cancellation(backend, fdtype, c):
    g = gen(5)
    x = ball_points(32, 5, c, g, max_frac=0.9).to(fdtype)
    y = ball_points(32, 5, c, g, max_frac=0.9).to(fdtype)
    back = hypops.mobius_add(-x, hypops.mobius_add(x, y, c=c, backend=backend), c=c, backend=backend)
    rtol, atol = TOL[fdtype]
    scale = 20 if fdtype == torch.float32 else 10
    torch.testing.assert_close(back.double(), y.double(), rtol=rtol * scale, atol=atol * scale / math.sqrt(c))


def test_dist_symmetry_and_positivity(backend, fdtype, c):
    g = gen(6)
    x = ball_points(32, 5, c, g, max_frac=0.99).to(fdtype)
    y = ball_points(32, 5, c, g, max_frac=0.99).to(fdtype)
    dxy, dyx = hypops.dist(x, y, c=c, backend=backend), hypops.dist(y, x, c=c, backend=backend)
    rtol = TOL[fdtype][0]
    torch.testing.assert_close(dxy, dyx, rtol=rtol, atol=rtol)
    assert (dxy[1:] > 0).all()  # row 0 is the origin twice
    assert 0 <= dxy[0] <= 1e-14  # the norm floor MIN_NORM gives 2e-15


def test_dist_is_lambda_times_logmap_norm(backend, fdtype, c):
    g = gen(7)
    x = ball_points(32, 5, c, g, max_frac=0.9).to(fdtype)
    y = ball_points(32, 5, c, g, max_frac=0.9).to(fdtype)
    lam = 2 / (1 - c * x.double().pow(2).sum(-1))
    want = lam * hypops.logmap(x, y, c=c, backend=backend).double().norm(dim=-1)
    got = hypops.dist(x, y, c=c, backend=backend).double()
    rtol, atol = TOL[fdtype]
    torch.testing.assert_close(got, want, rtol=rtol * 5, atol=atol)


def test_dist_from_origin(backend, fdtype, c):
    x = ball_points(32, 5, c, gen(8), max_frac=0.999).to(fdtype)
    got = hypops.dist(torch.zeros_like(x), x, c=c, backend=backend).double()
    want = 2 / math.sqrt(c) * torch.atanh(math.sqrt(c) * x.double().norm(dim=-1))
    rtol, atol = TOL[fdtype]
    torch.testing.assert_close(got, want, rtol=rtol * (5 if fdtype == torch.float32 else 1), atol=atol)
    # and from the other side, and through logmap0: dist(0, x) = 2 |logmap0(x)|
    torch.testing.assert_close(
        hypops.dist(x, torch.zeros_like(x), c=c, backend=backend).double(), got, rtol=rtol, atol=atol
    )
    torch.testing.assert_close(
        2 * hypops.logmap0(x, c=c, backend=backend).double().norm(dim=-1), got, rtol=rtol * 5, atol=atol
    )


def test_dist_is_gyro_invariant(backend, fdtype, c):
    """Left translations are isometries: dist(z (+) x, z (+) y) = dist(x, y)."""
    g = gen(9)
    x, y, z = (ball_points(32, 4, c, g, max_frac=0.6).to(fdtype) for _ in range(3))
    d1 = hypops.dist(x, y, c=c, backend=backend)
    d2 = hypops.dist(
        hypops.mobius_add(z, x, c=c, backend=backend),
        hypops.mobius_add(z, y, c=c, backend=backend),
        c=c,
        backend=backend,
    )
    rtol, atol = TOL[fdtype]
    torch.testing.assert_close(d2.double(), d1.double(), rtol=rtol * 20, atol=atol * 20)


def test_backends_agree_with_each_other(fdtype):
    """Every backend that serves an op gives the same numbers (the matrix's other tests compare each to
    the reference; this one makes a disagreement between backends visible directly)."""
    from hyptest import BACKENDS

    g = gen(10)
    x = ball_points(16, 5, 1.0, g).to(fdtype)
    y = ball_points(16, 5, 1.0, g).to(fdtype)
    outs = {}
    for b in BACKENDS:
        try:
            skip_unless_serves(b, "dist")
        except pytest.skip.Exception:
            continue
        outs[b] = hypops.dist(x, y, backend=b)
    names = list(outs)
    for other in names[1:]:
        torch.testing.assert_close(outs[other], outs[names[0]], rtol=TOL[fdtype][0], atol=TOL[fdtype][1])
