"""hypops.wrapped_normal_rsample / wrapped_normal_log_prob (every backend x dtype): the shared checks of
tests/hyptest.py, plus closed forms of SPEC §1 (independent of hypops.reference), the density's
normalisation, and log_sinhc's stability."""

import math

import pytest
import torch
from hyptest import OpSpec, OpTests, ball_points, gen, sample

import hypops
from hypops.reference import log_sinhc

OP = ("wrapped_normal_rsample", "wrapped_normal_log_prob")


class TestRsample(OpTests):
    spec = OpSpec("wrapped_normal_rsample", ("point", "std", "noise"))


class TestLogProb(OpTests):
    spec = OpSpec("wrapped_normal_log_prob", ("point", "point", "std"))

    def interior(self, c, seed=0, n=None, d=None, small=False):
        # std in units of the ball's radius: with c = 1e-3 two points are ~30 apart, and a unit std
        # would put log-densities (~ -d^2/std^2) and their gradients beyond float16's range
        z, mu, std = super().interior(c, seed, n, d, small)
        return [z, mu, std / math.sqrt(c)]


def _mobius_add(x, y, c):
    xy = (x * y).sum(-1, keepdim=True)
    x2, y2 = x.pow(2).sum(-1, keepdim=True), y.pow(2).sum(-1, keepdim=True)
    return ((1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y) / (1 + 2 * c * xy + c**2 * x2 * y2)


def test_rsample_closed_form(backend):
    """z = mu (+) expmap0(std * eps / 2), written out from SPEC §1."""
    for c in (0.1, 1.0, 4.0):
        g = gen(1)
        mu = ball_points(20, 3, c, g, max_frac=0.8)
        std = sample("std", 20, 3, c, g)
        eps = sample("noise", 20, 3, c, g) * 0.5
        v = std * eps / 2
        n = v.norm(dim=-1, keepdim=True)
        e0 = torch.tanh(math.sqrt(c) * n) * v / (math.sqrt(c) * n)
        want = _mobius_add(mu, e0, c)
        got = hypops.wrapped_normal_rsample(mu, std, eps, c=c, backend=backend)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_log_prob_at_a_sample_closed_form(backend):
    """For z = rsample(mu, std, eps): v = lambda_mu logmap(mu, z) = std * eps, d = |std * eps|, so
    log_prob(z) = sum_i (-eps_i^2/2 - log std_i - log(2 pi)/2) - (D - 1) log(sinh(sqrt(c) d)/(sqrt(c) d))."""
    for c in (0.3, 1.0, 3.0):
        for D in (1, 2, 5):
            g = gen(D)
            mu = ball_points(12, D, c, g, max_frac=0.7)
            std = sample("std", 12, D, c, g) * 0.5
            eps = sample("noise", 12, D, c, g)
            z = hypops.wrapped_normal_rsample(mu, std, eps, c=c, backend=backend)
            d = (std * eps).norm(dim=-1)
            sd = math.sqrt(c) * d
            want = (-0.5 * eps**2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1) - (D - 1) * torch.log(
                torch.sinh(sd) / sd
            )
            got = hypops.wrapped_normal_log_prob(z, mu, std, c=c, backend=backend)
            torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-8, msg=f"c={c} D={D}")


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_log_prob_integrates_to_one(backend, c):
    """D = 2: integral of exp(log_prob(z)) against the Riemannian volume lambda_z^2 dz over the disk is 1
    (polar grid, midpoint rule, in the hyperbolic radius so the boundary is resolved)."""
    mu = torch.tensor([0.3, -0.2], dtype=torch.float64) / math.sqrt(c)
    std = torch.tensor([0.6, 0.35], dtype=torch.float64)
    # integrate in geodesic polar coordinates about the origin: z = tanh(sqrt(c) r/2)/sqrt(c) (cos t, sin t),
    # Riemannian volume = sinh(sqrt(c) r)/sqrt(c) dr dt
    nr, nt = 1200, 256
    rmax = 12.0 / math.sqrt(c)
    r = (torch.arange(nr, dtype=torch.float64) + 0.5) * (rmax / nr)
    t = (torch.arange(nt, dtype=torch.float64) + 0.5) * (2 * math.pi / nt)
    R, T = torch.meshgrid(r, t, indexing="ij")
    rad = torch.tanh(math.sqrt(c) * R / 2) / math.sqrt(c)
    z = torch.stack([rad * torch.cos(T), rad * torch.sin(T)], dim=-1)
    lp = hypops.wrapped_normal_log_prob(z, mu, std, c=c, backend=backend)
    vol = torch.sinh(math.sqrt(c) * R) / math.sqrt(c) * (rmax / nr) * (2 * math.pi / nt)
    total = (lp.exp() * vol).sum().item()
    assert abs(total - 1) < 2e-3, total


def test_isotropic_std_equals_diagonal(backend, dtype):
    g = gen(4)
    mu = ball_points(6, 3, 1.0, g).to(dtype)
    eps = sample("noise", 6, 3, 1.0, g).to(dtype)
    s = torch.full((6, 1), 0.7, dtype=dtype)
    z1 = hypops.wrapped_normal_rsample(mu, s, eps, backend=backend)
    z2 = hypops.wrapped_normal_rsample(mu, s.expand(6, 3), eps, backend=backend)
    torch.testing.assert_close(z1, z2, rtol=0, atol=0)
    l1 = hypops.wrapped_normal_log_prob(z1, mu, s, backend=backend)
    l2 = hypops.wrapped_normal_log_prob(z1, mu, s.expand(6, 3), backend=backend)
    torch.testing.assert_close(l1, l2, rtol=0, atol=0)


def test_samples_broadcast_over_k(backend):
    # eps [K, B, D] against mu, std [B, D] (the VAE draws K samples per posterior)
    g = gen(5)
    mu = ball_points(4, 3, 1.0, g)
    std = sample("std", 4, 3, 1.0, g)
    eps = torch.randn(8, 4, 3, dtype=torch.float64, generator=g)
    z = hypops.wrapped_normal_rsample(mu, std, eps, backend=backend)
    assert z.shape == (8, 4, 3)
    torch.testing.assert_close(
        z[5], hypops.wrapped_normal_rsample(mu, std, eps[5], backend=backend), rtol=0, atol=0
    )
    lp = hypops.wrapped_normal_log_prob(z, mu, std, backend=backend)
    assert lp.shape == (8, 4)


def test_std_shape_error(backend):
    mu = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="std"):
        hypops.wrapped_normal_rsample(mu, torch.ones(4, 2), torch.zeros(4, 3), backend=backend)
    with pytest.raises(ValueError, match="std"):
        hypops.wrapped_normal_log_prob(mu, mu, torch.ones(4, 2), backend=backend)


def test_log_sinhc_stable_and_accurate():
    import mpmath

    x = torch.tensor(
        [0.0, 1e-12, 1e-6, 1e-3, 0.049, 0.05, 0.051, 0.5, 1.0, 5.0, 30.0, 800.0, 1e4, 1e6],
        dtype=torch.float64,
    )
    got = log_sinhc(x)
    with mpmath.workdps(50):
        vals = [float(mpmath.log(mpmath.sinh(mpmath.mpf(v)) / mpmath.mpf(v))) for v in x[1:].tolist()]
    want = torch.tensor([0.0] + vals, dtype=torch.float64)
    # (the large-x branch cancels mildly just above the series' 0.05 switch: ~1e-12 relative)
    torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-30)
    # gradient finite everywhere, ~ x/3 at 0
    xg = x.clone().requires_grad_(True)
    log_sinhc(xg).sum().backward()
    assert torch.isfinite(xg.grad).all()
    assert xg.grad[0] == 0 and abs(xg.grad[2].item() - 1e-6 / 3) < 1e-15
    # float32 too
    x32 = x.float()
    assert torch.isfinite(log_sinhc(x32)).all()
