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


_KS_CASES = [(2, 0.3, 1.0), (2, 1.0, 1.0), (5, 0.5, 1.0), (16, 0.2, 1.0)]
# the rejection sampler also at its envelope's corners: D = 1 (no left piece), the flat limit (small scale,
# small c: the worst acceptance), large D and c, and large scale (the tail piece carries more mass)
_KS_EXTRA = [(1, 0.5, 1.0), (3, 0.05, 0.1), (64, 0.1, 4.0), (8, 3.0, 0.1), (2, 2.0, 1.0)]


@pytest.mark.parametrize(
    "sampler,D,s,c",
    [("rejection", *k) for k in _KS_CASES + _KS_EXTRA] + [("inverse_cdf", *k) for k in _KS_CASES],
)
def test_riemannian_normal_samples_follow_radial_cdf(sampler, D, s, c):
    torch.manual_seed(1)
    # loc at distance 1.2/sqrt(c) from the origin: the samples stay well inside the radius float64 can
    # represent (12.2/sqrt(c)), where projection would clip them
    u = torch.randn(D, dtype=torch.float64)
    loc = hypops.expmap0(u / u.norm() * 0.6 / math.sqrt(c), c=c)
    rn = RiemannianNormal(loc, torch.tensor([s], dtype=torch.float64), c=c, sampler=sampler)
    d = hypops.dist(loc, rn.sample((3000,)), c=c)
    logZ = rn.log_normalizer_radial().reshape(1, 1)
    sc = torch.tensor(math.sqrt(c), dtype=torch.float64)

    def cdf(r):
        r = torch.as_tensor(r, dtype=torch.float64).reshape(-1, 1)
        sig = torch.full_like(r, s)
        return rn._radial_cdf(r, sig, sc, logZ.expand_as(r)).squeeze(-1).numpy()

    assert _ks_pvalue(d, cdf) > 1e-3
    # and a wrong scale is rejected: the test has power
    wrong = RiemannianNormal(loc, torch.tensor([s * 1.3], dtype=torch.float64), c=c, sampler=sampler)
    d_wrong = hypops.dist(loc, wrong.sample((3000,)), c=c)
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


@pytest.mark.parametrize("make,scale_crn", [
    (WrappedNormal, True),
    (lambda loc, s, c: RiemannianNormal(loc, s, c=c, sampler="inverse_cdf"), True),
    (lambda loc, s, c: RiemannianNormal(loc, s, c=c, sampler="rejection"), False),
], ids=["wrapped", "riemannian-inverse_cdf", "riemannian-rejection"])
def test_rsample_gradients_are_unbiased(make, scale_crn):
    """d/dtheta E[f(z)] by rsample equals the finite difference of the Monte Carlo estimate with common
    random numbers (same seed), for loc and scale. The rejection sampler's radii do not depend on loc, so
    common random numbers hold for loc; for its scale see the next test (a rejection decision may flip
    between scale +- h, so its samples are not a smooth function of the seed there)."""
    D = 3
    f = lambda z: (z * torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)).sum(-1).pow(2)  # noqa: E731
    loc0 = torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64)
    s0 = torch.tensor([0.5], dtype=torch.float64)

    def estimate(loc, s):
        torch.manual_seed(3)
        return f(make(loc, s, c=1.0).rsample((2000,))).mean()

    loc, s = loc0.clone().requires_grad_(), s0.clone().requires_grad_()
    g_loc, g_s = torch.autograd.grad(estimate(loc, s), [loc, s])
    h = 1e-5
    for i in range(D):
        e = torch.zeros(D, dtype=torch.float64)
        e[i] = h
        fd = (estimate(loc0 + e, s0) - estimate(loc0 - e, s0)) / (2 * h)
        assert float(g_loc[i]) == pytest.approx(float(fd), rel=1e-3, abs=1e-6)
    if scale_crn:
        fd_s = (estimate(loc0, s0 + h) - estimate(loc0, s0 - h)) / (2 * h)
        assert float(g_s[0]) == pytest.approx(float(fd_s), rel=1e-3, abs=1e-6)


def _radial_expectation(phi, s, c, D):
    """E[phi(r)] under p(r) ~ exp(-r^2/2s^2) (sinh(sqrt(c) r)/sqrt(c))^(D-1), by scipy's adaptive quadrature
    (independent of the class's Gauss-Legendre machinery)."""
    from scipy import integrate

    sc = math.sqrt(c)

    def logf(r):
        log_sinh = sc * r + math.log1p(-math.exp(-2 * sc * r)) - math.log(2 * sc)  # log(sinh(sc r)/sc)
        return -r * r / (2 * s * s) + (D - 1) * log_sinh

    top = 40 * s + (D - 1) * sc * s * s + s * math.sqrt(D)
    kw = dict(epsabs=0, epsrel=1e-12, limit=200)
    Z = integrate.quad(lambda r: math.exp(logf(r)), 0, top, **kw)[0]
    return integrate.quad(lambda r: phi(r) * math.exp(logf(r)), 0, top, **kw)[0] / Z


@pytest.mark.parametrize("D,s,c", [(3, 1.0, 1.0), (2, 0.8, 1.0), (8, 0.3, 4.0)])
def test_riemannian_rejection_scale_gradient_is_unbiased(D, s, c):
    """The implicit-reparameterisation gradient at rejection-sampled radii averages to d/ds E[phi(d(loc, z))]
    (the truth: a central difference of the expectation computed by quadrature), within 4 standard errors
    of the per-sample gradients; the naive pathwise guess dr/ds = r/s (exact only in flat space) is off by
    more than that, so the test can tell them apart."""
    phi = lambda r: r * r + math.sin(3 * r)  # noqa: E731
    h = 1e-4
    truth = (_radial_expectation(phi, s + h, c, D) - _radial_expectation(phi, s - h, c, D)) / (2 * h)
    N = 20000
    torch.manual_seed(0)
    loc = hypops.expmap0(torch.full((N, D), 0.1, dtype=torch.float64), c=c)
    scale = torch.full((N, 1), s, dtype=torch.float64, requires_grad=True)
    z = RiemannianNormal(loc, scale, c=c).rsample()
    d = hypops.dist(loc, z, c=c)
    (g,) = torch.autograd.grad((d * d + torch.sin(3 * d)).sum(), scale)  # row i: the gradient of sample i
    g = g.squeeze(-1)
    assert abs(float(g.mean()) - truth) < 4 * float(g.std()) / math.sqrt(N)
    d = d.detach()
    naive = (2 * d + 3 * torch.cos(3 * d)) * d / s
    assert abs(float(naive.mean()) - truth) > 4 * float(naive.std()) / math.sqrt(N)


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
    """The inverse-CDF radius sampler runs a fixed number of Newton steps and then checks |F(r) - u|: with
    too few steps (here one: its start, the quadrature table's radius, is ~1e-3 off) it raises, naming the
    iteration, rather than returning radii from the wrong distribution; with validation off too, on CPU."""
    loc = torch.zeros(64, 8, dtype=torch.float64)
    scale = torch.full((64, 1), 0.7, dtype=torch.float64)
    torch.manual_seed(3)
    RiemannianNormal(loc, scale, c=1.0, sampler="inverse_cdf").rsample((4,))  # the default steps converge
    monkeypatch.setattr(RiemannianNormal, "_NEWTON_STEPS", 1)
    for validate in (True, False):
        msg = r"Newton iteration did not converge in 1 steps: \|F\(r\) - u\|"
        with pytest.raises(RuntimeError, match=msg):
            RiemannianNormal(loc, scale, c=1.0, validate_args=validate, sampler="inverse_cdf").rsample((4,))


# --- the rejection sampler for the radius -------------------------------------------------------------------
_GRID_D = [1, 2, 3, 8, 64]
_GRID_C = [0.1, 1.0, 4.0]
_GRID_S = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0, 7.0]


@pytest.mark.parametrize("D", _GRID_D)
@pytest.mark.parametrize("c", _GRID_C)
def test_riemannian_rejection_envelope_bounds_the_density(D, c):
    """The envelope is at least the radial log density h(r) everywhere on r > 0 (to float64 rounding of
    values of size |h|), the condition for rejection sampling to be exact, on a fine grid around each mode."""
    sig = torch.tensor(_GRID_S, dtype=torch.float64).unsqueeze(-1)
    rn = RiemannianNormal(torch.zeros(len(_GRID_S), D, dtype=torch.float64), sig, c=c)
    sc = rn._c64().sqrt()
    table, _ = rn._envelope(sig, sc)
    for i, s in enumerate(_GRID_S):
        m = float(table[rn._E_M, i])
        r = torch.linspace(0, m + 40 * s, 100001, dtype=torch.float64)[1:]
        e = table[:, i : i + 1].expand(-1, r.numel())
        h = rn._log_radial(r, e[rn._E_SIGMA], sc)
        excess = h - rn._log_envelope(e, r - m)
        assert float((excess / (1 + h.abs())).max()) < 1e-12, (D, c, s)


def test_riemannian_rejection_acceptance_rate_over_a_grid():
    """The envelope is tight: the acceptance probability Z_r / (envelope mass) is >= 0.88 for D in {1, 2, 3,
    8, 64}, c in {0.1, 1, 4}, scale 0.05..7 (measured worst 0.8855 at D = 3, small scale). The Gaussian
    N(mode, scale^2) scaled to the mode's height (the baseline in bench_wrapped_normal.py, a valid but looser
    envelope) accepts 0.66 at D = 2, small scale, so 0.88 separates them. The analytic rate is checked
    against the count of proposals the sampler actually made."""
    worst = 1.0
    for D in _GRID_D:
        for c in _GRID_C:
            sig = torch.tensor(_GRID_S, dtype=torch.float64).unsqueeze(-1)
            rn = RiemannianNormal(torch.zeros(len(_GRID_S), D, dtype=torch.float64), sig, c=c)
            acc = rn.radius_acceptance()
            assert acc.shape == (len(_GRID_S),)
            assert bool((acc <= 1 + 1e-9).all()), (D, c, acc)  # an envelope below the density would exceed 1
            worst = min(worst, float(acc.min()))
            torch.manual_seed(D)
            stats_ = {}
            rn._rejection_radius((4000, len(_GRID_S)), rn._c64().sqrt(), stats=stats_)
            expected = float((1 / acc).mean()) * stats_["samples"]
            # proposals ~ sum of geometric counts; relative sd ~ sqrt((1 - a) / n) < 0.3 %
            assert stats_["proposals"] == pytest.approx(expected, rel=0.02), (D, c)
    assert worst >= 0.88


def test_riemannian_rejection_rounds_are_bounded_with_a_clear_error():
    loc = torch.zeros(4096, 8, dtype=torch.float64)
    scale = torch.full((4096, 1), 0.7, dtype=torch.float64)
    torch.manual_seed(3)
    RiemannianNormal(loc, scale, c=1.0).rsample((2,))  # the default bound is never reached
    # one round leaves ~12 % of 8192 radii unaccepted
    msg = (r"left \d+ of 8192 radii unaccepted after max_rounds = 1 rounds, "
           r"e\.g\. for scale = 0\.7, c = 1, D = 8 ")
    with pytest.raises(RuntimeError, match=msg):
        RiemannianNormal(loc, scale, c=1.0, max_rounds=1).rsample((2,))
    # a NaN scale (validation off, so nothing rejects it up front) is never accepted: the bound ends the loop
    bad = scale.clone()
    bad[5] = float("nan")
    msg = r"left 1 of 4096 radii .* max_rounds = 32 rounds, e\.g\. for scale = nan"
    with pytest.raises(RuntimeError, match=msg):
        RiemannianNormal(loc, bad, c=1.0, validate_args=False).rsample()
    with pytest.raises(ValueError, match="max_rounds"):
        RiemannianNormal(loc, scale, max_rounds=0)
    with pytest.raises(ValueError, match="sampler"):
        RiemannianNormal(loc, scale, sampler="newton")


@pytest.mark.parametrize("sampler", ["rejection", "inverse_cdf"])
def test_riemannian_samples_are_reproducible_under_manual_seed(sampler):
    loc = hypops.expmap0(torch.randn(16, 4, dtype=torch.float64) * 0.3)
    scale = torch.rand(16, 1, dtype=torch.float64) + 0.1
    rn = RiemannianNormal(loc, scale, c=0.5, sampler=sampler)
    torch.manual_seed(11)
    a = rn.sample((8,))
    torch.manual_seed(11)
    b = rn.sample((8,))
    torch.manual_seed(12)
    other = rn.sample((8,))
    assert a.shape == (8, 16, 4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, other)
