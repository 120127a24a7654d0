"""hypops.distributions: densities integrate to 1 over the disk, samples follow the distribution
(Kolmogorov-Smirnov on d(loc, z) against the radial CDF), and reparameterised gradients are unbiased."""

import math

import pytest
import torch
from scipy import stats

import hypops
from hypops.distributions import RiemannianNormal, WrappedNormal


def _integrate_disk(dist, c, n=1000):
    """Integral of exp(log_prob) over the disk of radius 1/sqrt(c) against the Riemannian volume
    lambda_x^2 dx (midpoint rule in polar coordinates)."""
    R = 1 / math.sqrt(c)
    r = (torch.arange(n, dtype=torch.float64) + 0.5) / n * R
    th = (torch.arange(n, dtype=torch.float64) + 0.5) / n * 2 * math.pi
    rr, tt = torch.meshgrid(r, th, indexing="ij")
    pts = torch.stack([rr * tt.cos(), rr * tt.sin()], -1).reshape(-1, 2)
    p = dist.log_prob(pts).reshape(n, n).exp()
    lam = 2 / (1 - c * rr**2)
    return float((p * lam**2 * rr).sum() * (R / n) * (2 * math.pi / n))


@pytest.mark.parametrize("c", [1.0, 0.3])
@pytest.mark.parametrize("loc", [(0.0, 0.0), (0.5, -0.3)])
@pytest.mark.parametrize("s", [0.2, 0.7])
def test_densities_integrate_to_one_on_the_disk(c, loc, s):
    mu = torch.tensor(loc, dtype=torch.float64) / math.sqrt(c)
    wn = WrappedNormal(mu, torch.tensor([s, 1.5 * s], dtype=torch.float64), c=c)
    rn = RiemannianNormal(mu, torch.tensor([s], dtype=torch.float64), c=c)
    assert _integrate_disk(wn, c) == pytest.approx(1.0, abs=2e-4)
    assert _integrate_disk(rn, c) == pytest.approx(1.0, abs=2e-4)


def test_wrapped_normal_log_prob_matches_an_independent_formula():
    """For D = 2, c = 1 and loc = 0 the wrapped normal is the push-forward of N(0, diag(s^2)/4 ...) through
    expmap0; check log_prob against the change-of-variables density computed by autograd's Jacobian."""
    s = torch.tensor([0.4, 0.9], dtype=torch.float64)
    wn = WrappedNormal(torch.zeros(2, dtype=torch.float64), s, c=1.0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        eps = torch.randn(2, dtype=torch.float64, generator=gen)
        u = s * eps / 2  # the tangent vector at 0 (metric lambda_0^2 = 4)

        def f(u):
            return hypops.reference.expmap0(u)

        z = f(u)
        J = torch.autograd.functional.jacobian(f, u)
        # density of z w.r.t. dx: N(eps) / |det dz/deps|; dz/deps = J diag(s/2); w.r.t. the Riemannian
        # volume divide by lambda_z^2.
        log_n = torch.distributions.Normal(0.0, 1.0).log_prob(eps).sum()
        log_det = torch.logdet(J @ torch.diag(s / 2))
        lam = 2 / (1 - z.pow(2).sum())
        want = log_n - log_det - 2 * torch.log(lam)
        torch.testing.assert_close(wn.log_prob(z), want, rtol=1e-9, atol=1e-9)


def _ks_pvalue(d, cdf):
    return stats.kstest(d.numpy(), cdf).pvalue


@pytest.mark.parametrize("D,s", [(2, 0.3), (2, 1.0), (5, 0.5), (16, 0.2)])
def test_riemannian_normal_samples_follow_radial_cdf(D, s):
    torch.manual_seed(1)
    loc = hypops.expmap0(torch.randn(D, dtype=torch.float64) * 0.3)
    rn = RiemannianNormal(loc, torch.tensor([s], dtype=torch.float64), c=1.0)
    d = hypops.dist(loc, rn.sample((3000,)))
    logZ = rn.log_normalizer_radial().reshape(1, 1)
    one = torch.tensor(1.0, dtype=torch.float64)

    def cdf(r):
        r = torch.as_tensor(r, dtype=torch.float64).reshape(-1, 1)
        sig = torch.full_like(r, s)
        return rn._radial_cdf(r, sig, one, logZ.expand_as(r)).squeeze(-1).numpy()

    assert _ks_pvalue(d, cdf) > 1e-3
    # and a wrong scale is rejected: the test has power
    wrong = RiemannianNormal(loc, torch.tensor([s * 1.3], dtype=torch.float64), c=1.0)
    d_wrong = hypops.dist(loc, wrong.sample((3000,)))
    assert _ks_pvalue(d_wrong, cdf) < 1e-3


@pytest.mark.parametrize("D", [2, 8])
def test_wrapped_normal_samples_follow_their_radial_law(D):
    """With isotropic scale s at any loc, d(loc, z) = 2|u|, u = s eps / 2: d / s ~ chi(D)."""
    torch.manual_seed(2)
    loc = hypops.expmap0(torch.randn(D, dtype=torch.float64) * 0.4)
    s = 0.6
    wn = WrappedNormal(loc, torch.tensor([s], dtype=torch.float64), c=1.0)
    d = hypops.dist(loc, wn.sample((3000,))) / s
    assert stats.kstest(d.numpy(), stats.chi(D).cdf).pvalue > 1e-3
    assert stats.kstest((d * 1.2).numpy(), stats.chi(D).cdf).pvalue < 1e-3


@pytest.mark.parametrize("cls", [WrappedNormal, RiemannianNormal])
def test_rsample_gradients_are_unbiased(cls):
    """d/dtheta E[f(z)] by rsample equals the finite difference of the Monte Carlo estimate with common
    random numbers (same seed), for loc and scale."""
    D = 3
    f = lambda z: (z * torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)).sum(-1).pow(2)  # noqa: E731
    loc0 = torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64)
    s0 = torch.tensor([0.5], dtype=torch.float64)

    def estimate(loc, s):
        torch.manual_seed(3)
        return f(cls(loc, s, c=1.0).rsample((2000,))).mean()

    loc, s = loc0.clone().requires_grad_(), s0.clone().requires_grad_()
    g_loc, g_s = torch.autograd.grad(estimate(loc, s), [loc, s])
    h = 1e-5
    for i in range(D):
        e = torch.zeros(D, dtype=torch.float64)
        e[i] = h
        fd = (estimate(loc0 + e, s0) - estimate(loc0 - e, s0)) / (2 * h)
        assert float(g_loc[i]) == pytest.approx(float(fd), rel=1e-3, abs=1e-6)
    fd_s = (estimate(loc0, s0 + h) - estimate(loc0, s0 - h)) / (2 * h)
    assert float(g_s[0]) == pytest.approx(float(fd_s), rel=1e-3, abs=1e-6)


def test_rsample_log_prob_round_trip_for_fixed_noise():
    """log_prob of rsample(eps) equals the change-of-variables density of eps under the same map."""
    gen = torch.Generator().manual_seed(4)
    mu = hypops.expmap0(torch.randn(5, 3, dtype=torch.float64, generator=gen) * 0.5)
    std = torch.rand(5, 3, dtype=torch.float64, generator=gen) + 0.2
    eps = torch.randn(7, 5, 3, dtype=torch.float64, generator=gen)
    z = hypops.wrapped_normal_rsample(mu, std, eps)
    lp = hypops.wrapped_normal_log_prob(z, mu, std)
    assert lp.shape == (7, 5)
    # the tangent-space Gaussian part of log_prob recovers eps exactly (v = std * eps)
    base = torch.distributions.Normal(0.0, std).log_prob(std * eps).sum(-1)
    d = hypops.dist(mu, z)
    want = base - 2 * hypops.reference.log_sinhc(d)
    torch.testing.assert_close(lp, want, rtol=1e-9, atol=1e-9)


def test_validation_is_optional_and_clear():
    with pytest.raises(ValueError):
        WrappedNormal(torch.tensor([2.0, 0.0]), torch.tensor([0.5, 0.5]), validate_args=True)
    with pytest.raises(ValueError):
        RiemannianNormal(torch.zeros(2), torch.tensor([-1.0]), validate_args=True)
    # off: no check (and so no host read)
    WrappedNormal(torch.tensor([2.0, 0.0]), torch.tensor([0.5, 0.5]), validate_args=False)
    with pytest.raises(ValueError, match="isotropic"):
        RiemannianNormal(torch.zeros(2), torch.tensor([0.5, 0.5]))


def test_riemannian_radius_newton_is_bounded_and_checked(monkeypatch):
    """The radius sampler runs a fixed number of Newton steps and then checks |F(r) - u|: with too few
    steps (here one: its start, the quadrature table's radius, is ~1e-3 off) it raises, naming the iteration,
    rather than returning radii from the wrong distribution; with validation off too, on CPU."""
    loc = torch.zeros(64, 8, dtype=torch.float64)
    scale = torch.full((64, 1), 0.7, dtype=torch.float64)
    torch.manual_seed(3)
    RiemannianNormal(loc, scale, c=1.0).rsample((4,))  # the default steps converge
    monkeypatch.setattr(RiemannianNormal, "_NEWTON_STEPS", 1)
    for validate in (True, False):
        msg = r"Newton iteration did not converge in 1 steps: \|F\(r\) - u\|"
        with pytest.raises(RuntimeError, match=msg):
            RiemannianNormal(loc, scale, c=1.0, validate_args=validate).rsample((4,))
