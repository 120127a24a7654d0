"""Distributions on the Poincaré ball, as ``torch.distributions.Distribution`` subclasses.

* ``WrappedNormal(loc, scale, c)``: the push-forward of N(0, diag(scale^2)) in the tangent space at the
  origin, moved to ``loc`` (Mathieu et al. 2019). Sampling and density are the fused ops
  ``hypops.wrapped_normal_rsample`` / ``hypops.wrapped_normal_log_prob``.
* ``RiemannianNormal(loc, scale, c)``: density proportional to exp(-d(loc, z)^2 / (2 scale^2)) with respect
  to the Riemannian volume (isotropic scale). See the class docstring for the sampler and normaliser.

Densities are with respect to the Riemannian volume lambda_z^D dz of the ball, so they integrate to 1
against it. Argument validation follows torch's ``validate_args`` and is the only place a value is read
back to the host; with validation off nothing synchronises.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution, constraints

from . import ops
from ._checks import curvature
from .reference import log_sinhc


class _InBall(constraints.Constraint):
    """Points strictly inside the ball of radius 1/sqrt(c)."""

    event_dim = 1

    def __init__(self, c):
        super().__init__()
        self.c = c

    def check(self, value):
        c = self.c if isinstance(self.c, torch.Tensor) else torch.tensor(self.c, dtype=value.dtype)
        return value.double().norm(dim=-1) * c.double().sqrt() < 1


def _broadcast(loc, scale, isotropic):
    D = loc.shape[-1]
    if scale.dim() == 0:
        scale = scale.reshape(1)
    if not isotropic and scale.shape[-1] not in (1, D):
        raise ValueError(f"scale must have last dimension {D} (diagonal) or 1 (isotropic), got {scale.shape[-1]}")
    if isotropic and scale.shape[-1] != 1:
        raise ValueError(f"RiemannianNormal: scale must be isotropic (last dimension 1), got {scale.shape[-1]}")
    batch = torch.broadcast_shapes(loc.shape[:-1], scale.shape[:-1])
    return batch


class _BallDistribution(Distribution):
    """Shared by the two normals: loc in the ball of radius 1/sqrt(c), a positive scale, support the ball;
    both are symmetric about loc, whose Frechet mean is therefore loc."""

    has_rsample = True
    arg_constraints: dict = {}
    _isotropic = False

    def __init__(self, loc, scale, c=1.0, validate_args=None, backend=None):
        self.loc, self.scale, self.c, self.backend = loc, scale, c, backend
        self.arg_constraints = {"loc": _InBall(c), "scale": constraints.positive}
        batch = _broadcast(loc, scale, isotropic=self._isotropic)
        super().__init__(batch_shape=batch, event_shape=loc.shape[-1:], validate_args=validate_args)

    @property
    def support(self):
        return _InBall(self.c)

    @property
    def mean(self):
        return self.loc.expand(self.batch_shape + self.event_shape)


class WrappedNormal(_BallDistribution):
    """Wrapped normal N_W(loc, diag(scale^2)) on the Poincaré ball of curvature -c.

    loc: [..., D] points of the ball; scale: [..., D] (diagonal) or [..., 1] (isotropic), positive, in the
    tangent space at the origin (metric lambda_0^2 = 4, hence the /2 in the sampler). c: float or 0-dim tensor.
    rsample: z = loc (+) expmap0(scale * eps / 2), eps ~ N(0, I), reparameterised in loc, scale and c.
    log_prob: sum_i log N(v_i; 0, scale_i^2) - (D - 1) log(sinh(sqrt(c) d) / (sqrt(c) d)), with
    d = dist(loc, z) and v = lambda_loc logmap(loc, z).
    """

    def rsample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return ops.wrapped_normal_rsample(self.loc, self.scale, eps, c=self.c, backend=self.backend)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return ops.wrapped_normal_log_prob(value, self.loc, self.scale, c=self.c, backend=self.backend)


def _log_sinh_ratio(r, sc):
    """log(sinh(sc r) / sc), stable for r -> 0 and large r (float64 math)."""
    return torch.log(r) + log_sinhc(sc * r)


class RiemannianNormal(_BallDistribution):
    """Riemannian normal on the Poincaré ball: p(z) = exp(-d(loc, z)^2 / (2 scale^2)) / Z(scale) with respect to
    the Riemannian volume, isotropic scale [..., 1] (or [...]).

    In geodesic polar coordinates around loc the volume is (sinh(sqrt(c) r)/sqrt(c))^(D-1) dr dOmega, so
    z = loc (+) expmap0-of-direction-at-radius-r with a uniform direction and a radius r of density
    p(r) ~ exp(h(r)), h(r) = -r^2 / (2 scale^2) + (D-1) log(sinh(sqrt(c) r)/sqrt(c)), and Z = |S^(D-1)| * Z_r.

    Z_r and the radial CDF are computed by Gauss-Legendre quadrature in log space (float64, on an interval
    that provably holds all but e^-72 of the radial mass), which is accurate for every D and scale; the
    alternating binomial closed form of Mathieu et al. loses all digits for large D and small scale.

    Samples farther than the ball can represent (about 12.2/sqrt(c) from the origin in float64, 6.2 in
    float32, after projection) are clipped to the projection sphere, as every point op here does.

    Radius sampler, ``sampler="rejection"`` (the default): batched rejection sampling from a three-piece
    envelope built on the concavity of h. h''(r) = -1/scale^2 - (D-1) c / sinh(sqrt(c) r)^2 is negative and
    increasing in r, so around a point m (the mode, found by Newton steps from a lower bound of it; the
    envelope is a valid bound for any m, the mode only makes it tight), with g = h'(m):
      left,   0 <= r <= m:     h(r) <= h(m) + |g| m - k_m (r - m)^2 / 2,  k_m = -h''(m)
      middle, m <= r <= m + w: h(r) <= h(m) + |g| w - k_w (r - m)^2 / 2,  k_w = -h''(m + w)
      tail,   r >= m + w:      h(r) <= h(m + w) + h'(m + w) (r - m - w)   (the tangent; h is concave)
    (a curvature bound holds on each side because |h''| is largest at the left end of each interval).
    w = 1.75 / sqrt(k_m), widened where needed so that m + w lies past the mode and the tail decays.
    Proposals: a piece with probability proportional to its mass, then a truncated half-normal (inverse CDF
    via erfinv) or an exponential; accept with probability exp(h(r) - envelope(r)). The acceptance
    probability Z_r / (envelope mass) is at least 0.885 on a scan of D in 1..256, scale 0.01..16, c 0.01..10
    (worst at D = 2..3 and small scale, the flat limit; 0.98 at D = 1, 0.96 at D = 64); its tight side
    is the left piece, exact at the mode, and ``radius_acceptance()`` returns it per batch element.
    Each round proposes once for every still-unaccepted radius (tensor code, no per-sample Python); the
    rounds are bounded by ``max_rounds`` (default 32: a radius survives 32 rounds with probability below
    0.12^32 ~ 1e-29), and running out raises RuntimeError naming the round count, scale, c and D. The only
    host synchronisation is the per-round count of radii left (inherent to a data-dependent loop).
    Random numbers come from torch's default generator (``torch.manual_seed`` reproduces samples); how many
    are drawn depends on the acceptances.

    ``sampler="inverse_cdf"``: one uniform u per radius and r = F^-1(u) by a quadrature table plus a fixed
    number of Newton steps on the exact CDF, checked afterwards (RuntimeError if |F(r) - u| stays above
    ``_NEWTON_TOL``; the check reads one value back, so it runs on CPU always and on GPU with validation on).
    It is several times slower than rejection on CPU (each sample evaluates its own CDF quadrature), but has
    no data-dependent loop (torch.compile, CUDA graphs) and makes the radius a smooth function of (u, scale):
    common random numbers then give the same radius for nearby scales (finite-difference checks, variance
    reduction across scales), which a rejection sampler cannot.

    Gradients reach loc, scale and c: loc and c through the ops; scale and c of the radius by implicit
    reparameterisation, dr/dtheta = -(dF/dtheta) / (dF/dr), F the radial CDF, evaluated at the sampled r
    whichever sampler drew it (an unbiased estimator of the gradient of E[f(z)] for both: the accepted radius
    has law F, and r(u, theta) = F^-1(u; theta) is the reparameterisation this derivative belongs to).
    """

    _ENVELOPE_WIDTH = 1.75  # w * sqrt(k_m): 1.5..2 all give worst acceptance ~0.88 (1 gives 0.84)
    # Newton steps for the mode from the lower bracket (monotone: h' is convex and decreasing); on D 2..256,
    # scale 0.01..16, c 0.01..10 four reach |h'(m)| scale ~ 2e-12 (rounding), three 1e-7
    _MODE_NEWTON_STEPS = 5
    _MAX_ROUNDS = 32
    _NODES = 256  # quadrature nodes for the normaliser and the sampler's table
    _NEWTON_STEPS = 4  # from the 256-node table's start, 3 steps reach |F(r) - u| ~ 1e-9, 4 the float64 floor
    _NEWTON_TOL = 1e-7  # |F(r) - u| accepted where the last step starts (it ends quadratically below)
    _CDF_NODES = 64  # per-sample CDF on [lo, r] (a shorter interval; Newton only needs it smooth and exact)

    _isotropic = True

    def __init__(self, loc, scale, c=1.0, validate_args=None, backend=None, sampler="rejection",
                 max_rounds=None):
        if sampler not in ("rejection", "inverse_cdf"):
            raise ValueError(
                f"RiemannianNormal: sampler must be 'rejection' or 'inverse_cdf', got {sampler!r}")
        if max_rounds is None:
            max_rounds = self._MAX_ROUNDS
        if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
            raise ValueError(f"RiemannianNormal: max_rounds must be an int >= 1, got {max_rounds!r}")
        self.sampler, self.max_rounds = sampler, max_rounds
        if scale.dim() == loc.dim() - 1:
            scale = scale.unsqueeze(-1)
        super().__init__(loc, scale, c, validate_args=validate_args, backend=backend)

    def _c64(self):
        return curvature("RiemannianNormal", self.c, self.loc).to(torch.float64)

    def _bounds(self, sigma, sc):
        """[lo, hi] holding all but e^-72 of the radial mass. The log-density h(r) = -r^2/2s^2 +
        (D-1) log sinh(sqrt(c) r) is concave with h'' <= -1/s^2, and its mode r* satisfies
        max((D-1) sqrt(c) s^2, s sqrt(D-1)) <= r* <= (D-1) sqrt(c) s^2 + s sqrt(D-1) (from 1, 1/x <= coth x
        <= 1 + 1/x), so 12 s either side of that bracket is enough."""
        D = self.event_shape[0]
        a = (D - 1) * sc * sigma**2
        b = sigma * math.sqrt(D - 1)
        lo = (torch.maximum(a, b) - 12 * sigma).clamp_min(0)
        hi = a + b + 12 * sigma
        return lo.detach(), hi.detach()

    def _quad(self, lo, hi, n=None):
        """Gauss-Legendre nodes and log weights on [lo, hi] (broadcast over a trailing node dimension)."""
        x, w = _gauss_legendre(n or self._NODES, lo.device)
        half = (hi - lo).unsqueeze(-1) / 2
        return lo.unsqueeze(-1) + (x + 1) * half, torch.log(w * half)

    def _log_radial(self, r, sigma, sc):
        D = self.event_shape[0]
        out = -(r**2) / (2 * sigma**2)
        if D > 1:
            out = out + (D - 1) * _log_sinh_ratio(r.clamp_min(1e-300), sc)
        return out

    def log_normalizer_radial(self):
        """log Z_r(scale) = log of the integral over r >= 0 of exp(-r^2/2s^2) (sinh(sqrt(c) r)/sqrt(c))^(D-1)."""
        sigma = self.scale.to(torch.float64)
        sc = self._c64().sqrt()
        lo, hi = self._bounds(sigma, sc)
        r, logw = self._quad(lo, hi)  # [..., 1, n]
        return torch.logsumexp(self._log_radial(r, sigma.unsqueeze(-1), sc) + logw, dim=-1).squeeze(-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        D = self.event_shape[0]
        d = ops.dist(self.loc, value, c=self.c, backend=self.backend).to(torch.float64)
        sigma = self.scale.to(torch.float64).squeeze(-1)
        log_sphere = math.log(2) + (D / 2) * math.log(math.pi) - math.lgamma(D / 2)
        out = -(d**2) / (2 * sigma**2) - log_sphere - self.log_normalizer_radial()
        return out.to(value.dtype)

    def _radial_cdf(self, r, sigma, sc, logZ):
        """F(r): the share of the radial mass below r (r, sigma, logZ broadcastable, [..., 1])."""
        lo, hi = self._bounds(sigma, sc)
        top = torch.minimum(torch.maximum(r, lo), hi)
        nodes, logw = self._quad(lo, top, self._CDF_NODES)
        partial = torch.logsumexp(self._log_radial(nodes, sigma.unsqueeze(-1), sc) + logw, dim=-1)
        return torch.exp(partial - logZ)

    def _sample_radius(self, u, sigma, sc, logZ):
        """Inverse CDF: bisection-free start from the quadrature table, then Newton steps on the exact CDF
        (the CDF is smooth and strictly increasing on [lo, hi], the density its derivative). Returns the radii
        and |F(r) - u| where the last step started: with quadratic convergence, that step ends far below it,
        so it certifies convergence without one more CDF evaluation."""
        with torch.no_grad():
            lo, hi = self._bounds(sigma, sc)
            nodes, logw = self._quad(lo, hi)
            logf = self._log_radial(nodes, sigma.unsqueeze(-1), sc) + logw  # [..., 1, n]
            cdf = torch.exp(torch.logcumsumexp(logf, dim=-1) - torch.logsumexp(logf, dim=-1, keepdim=True))
            idx = torch.searchsorted(cdf.squeeze(-2).contiguous(), u.contiguous())
            r = torch.gather(nodes.squeeze(-2), -1, idx.clamp(max=nodes.shape[-1] - 1))
            miss = None
            for _ in range(self._NEWTON_STEPS):
                F = self._radial_cdf(r, sigma, sc, logZ)
                miss = (F - u).abs()
                dens = torch.exp(self._log_radial(r, sigma, sc) - logZ)
                r = torch.minimum(torch.maximum(r - (F - u) / dens.clamp_min(1e-300), lo), hi)
        return r, miss

    def _check_newton(self, miss, sigma, sc):
        """Raises if the bounded Newton iteration had not converged: |F(r) - u| above _NEWTON_TOL (NaN
        included) where its last step started."""
        if miss is None:
            raise RuntimeError(f"RiemannianNormal: _NEWTON_STEPS must be >= 1, got {self._NEWTON_STEPS}")
        miss = miss.reshape(-1)
        worst = miss.max()
        if not bool(worst <= self._NEWTON_TOL):
            i = int(miss.nan_to_num(float("inf")).argmax())
            raise RuntimeError(
                f"RiemannianNormal.rsample: the radius sampler's Newton iteration did not converge in "
                f"{self._NEWTON_STEPS} steps: |F(r) - u| = {float(miss[i]):.3g} > {self._NEWTON_TOL:g} "
                f"before the last step, for "
                f"scale = {float(sigma.reshape(-1)[i]):.6g}, c = {float(sc) ** 2:.6g}, "
                f"D = {self.event_shape[0]} (F: the radial CDF, u: its uniform target)"
            )

    # --- rejection sampler for the radius -----------------------------------------------------------------
    def _dh(self, r, sigma, sc):
        """h'(r) = -r/s^2 + (D-1) sqrt(c) coth(sqrt(c) r)."""
        D = self.event_shape[0]
        out = -r / sigma**2
        return out + (D - 1) * sc / torch.tanh(sc * r) if D > 1 else out

    def _d2h(self, r, sigma, sc):
        """h''(r) = -1/s^2 - (D-1) c / sinh(sqrt(c) r)^2 (sinh overflowing to inf gives the right limit)."""
        D = self.event_shape[0]
        out = -1 / sigma**2 + torch.zeros_like(r)
        return out - (D - 1) * (sc / torch.sinh(sc * r)) ** 2 if D > 1 else out

    # rows of the envelope table (_envelope), one column per batch element: parameter-major, so that each
    # parameter gathered for the pending radii is a contiguous vector (strided columns of a [n, 14] table
    # made every elementwise op of a round ~8x slower)
    (_E_SIGMA, _E_M, _E_W, _E_LAM, _E_HM, _E_HW, _E_DL, _E_DM, _E_SL, _E_SM, _E_ERFL, _E_ERFM, _E_PL,
     _E_PLM) = range(14)

    def _envelope(self, sigma, sc):
        """The three-piece envelope of the class docstring for each scale in sigma [..., 1] (float64):
        a table [14, ...] (rows _E_*) and the log of its total mass [..., 1] (in the units of exp(h))."""
        D = self.event_shape[0]
        # start below the mode (the lower end of _bounds' bracket, > 0 for D > 1): on the convex, decreasing
        # h' every Newton step from below lands below the root again, so the iterates climb to the mode
        # monotonically and never approach coth's pole at r = 0
        m = torch.maximum((D - 1) * sc * sigma**2, sigma * math.sqrt(D - 1))
        for _ in range(self._MODE_NEWTON_STEPS):
            m = m - self._dh(m, sigma, sc) / self._d2h(m, sigma, sc)
        g = self._dh(m, sigma, sc).abs()  # ~0 at the mode; the bounds stay valid for any m through it
        k_m = -self._d2h(m, sigma, sc)
        # the mode lies below m + g s^2 (h' <= g - (r - m)/s^2 for r >= m), so 2 g s^2 keeps the tangent's
        # slope negative even if the Newton steps had not converged
        w = torch.maximum(self._ENVELOPE_WIDTH / k_m.sqrt(), 2 * g * sigma**2)
        k_w = -self._d2h(m + w, sigma, sc)
        lam = -self._dh(m + w, sigma, sc)
        hm = self._log_radial(m, sigma, sc)
        hw = self._log_radial(m + w, sigma, sc)
        s_l, s_m = (2 / k_m).sqrt(), (2 / k_w).sqrt()  # k x^2 / 2 = (x / s)^2
        erf_l, erf_m = torch.erf(m / s_l), torch.erf(w / s_m)  # the pieces are truncated at x = -m and x = w
        half_sqrt_pi = 0.5 * math.log(math.pi) - math.log(2)
        log_l = g * m + half_sqrt_pi + torch.log(s_l * erf_l)  # -inf at D = 1 (m = 0): no left piece
        log_m = g * w + half_sqrt_pi + torch.log(s_m * erf_m)
        log_t = hw - hm - torch.log(lam)
        logs = torch.cat([log_l, log_m, log_t], dim=-1)
        log_total = torch.logsumexp(logs, dim=-1, keepdim=True)
        p = torch.exp(logs - log_total)
        table = torch.cat([sigma, m, w, lam, hm, hw, g * m, g * w, s_l, s_m, erf_l, erf_m, p[..., :1],
                           p[..., :1] + p[..., 1:2]], dim=-1)
        return table.movedim(-1, 0), log_total + hm

    def radius_acceptance(self):
        """The rejection sampler's acceptance probability per batch element (float64, batch_shape):
        Z_r / (envelope mass). The expected number of proposals per radius is its inverse."""
        sigma = self.scale.detach().to(torch.float64).expand(self.batch_shape + (1,))
        sc = self._c64().detach().sqrt()
        _, log_env = self._envelope(sigma, sc)
        return torch.exp(self.log_normalizer_radial().detach() - log_env.squeeze(-1))

    def _log_envelope(self, e, x):
        """log of the envelope at r = m + x for columns of the table e [14, n] (x: [n]); >= h(r) for r >= 0."""
        E = self
        w = e[E._E_W]
        left = x < 0
        s = torch.where(left, e[E._E_SL], e[E._E_SM])
        quad = torch.where(left, e[E._E_DL], e[E._E_DM]) + e[E._E_HM] - (x / s) ** 2
        return torch.where(x < w, quad, e[E._E_HW] - e[E._E_LAM] * (x - w))

    def _propose(self, e, sc):
        """One proposal and its accept decision per column of the envelope table e [14, n]."""
        E = self
        u = torch.rand(3, e.shape[1], dtype=torch.float64, device=e.device)
        left, tail = u[0] < e[E._E_PL], u[0] >= e[E._E_PLM]
        # truncated half-normals by inverse CDF: s erfinv(u erf(edge / s)) lies in [0, edge]
        s = torch.where(left, e[E._E_SL], e[E._E_SM])
        x = s * torch.erfinv(u[1] * torch.where(left, e[E._E_ERFL], e[E._E_ERFM]))
        x = torch.where(left, -x, x)
        # the tail: an exponential of rate lam beyond w
        x = torch.where(tail, e[E._E_W] - torch.log1p(-u[1]) / e[E._E_LAM], x)
        r = (e[E._E_M] + x).clamp_min(0)
        # r = 0 only by rounding at the left edge; h(0) = -inf there for D > 1 (rejected), and for D = 1 the
        # left piece is empty
        ok = torch.log(u[2]) < self._log_radial(r, e[E._E_SIGMA], sc) - self._log_envelope(e, x)
        return r, ok

    def _rejection_radius(self, sample_batch, sc, stats=None):
        """Radii [*sample_batch, 1] (float64, no grad) by batched rejection. sample_batch is sample_shape +
        batch_shape; rows share the envelope of their batch element. stats, a dict, receives the number of
        rounds and proposals."""
        with torch.no_grad():
            sigma = self.scale.detach().to(torch.float64).expand(self.batch_shape + (1,))
            table, _ = self._envelope(sigma, sc.detach())
            table = table.reshape(table.shape[0], -1)
            nb, n = table.shape[1], math.prod(sample_batch)
            out = torch.empty(n, dtype=torch.float64, device=table.device)
            # sample dimensions lead, so flat index i belongs to batch row i % nb
            pending = torch.arange(n, device=table.device)
            rounds = proposals = 0
            while pending.numel() and rounds < self.max_rounds:
                rounds += 1
                proposals += pending.numel()
                # round 1 proposes for every radius: tiling the table is a plain copy, ~4x cheaper than the
                # gather the later, smaller rounds use
                e = table.repeat(1, n // nb) if rounds == 1 else table.index_select(1, pending % nb)
                r, ok = self._propose(e, sc)
                out.index_copy_(0, pending, torch.where(ok, r, out[pending]))
                pending = pending[~ok]  # the one host synchronisation per round (its size)
            if stats is not None:
                stats.update(rounds=rounds, proposals=proposals, samples=n)
            if pending.numel():
                row = int(pending[0]) % nb
                raise RuntimeError(
                    f"RiemannianNormal.rsample: the radius rejection sampler left {pending.numel()} of {n} "
                    f"radii unaccepted after max_rounds = {self.max_rounds} rounds, e.g. for scale = "
                    f"{float(table[self._E_SIGMA, row]):.6g}, c = {float(sc) ** 2:.6g}, "
                    f"D = {self.event_shape[0]} (its envelope accepts >= 0.88 of proposals for finite "
                    f"positive scale and c, so expect a non-finite scale or c, or max_rounds set too low)"
                )
        return out.reshape(tuple(sample_batch) + (1,))

    def rsample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        dtype, dev = self.loc.dtype, self.loc.device
        sigma = self.scale.to(torch.float64).expand(shape[:-1] + (1,))
        sc = self._c64().sqrt()
        need_grad = sigma.requires_grad or sc.requires_grad
        # the rejection sampler needs no normaliser; only the inverse CDF and the gradient do (a quadrature)
        logZ = None
        if self.sampler == "inverse_cdf" or need_grad:
            logZ = self.log_normalizer_radial().unsqueeze(-1).expand(shape[:-1] + (1,))
        if self.sampler == "rejection":
            r = self._rejection_radius(shape[:-1], sc)
        else:
            u = torch.rand(shape[:-1] + (1,), dtype=torch.float64, device=dev)
            r, miss = self._sample_radius(u, sigma, sc, logZ)
            if not torch.compiler.is_compiling() and (dev.type == "cpu" or bool(self._validate_args)):
                self._check_newton(miss, sigma, sc)
        if need_grad:
            # implicit reparameterisation: dr/dtheta = -(dF/dtheta) / (dF/dr), dF/dr the radial density
            F = self._radial_cdf(r, sigma, sc, logZ)
            dens = torch.exp(self._log_radial(r, sigma, sc) - logZ).detach()
            r = r - (F - F.detach()) / dens
        direction = torch.randn(shape, dtype=dtype, device=dev)
        direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-15)
        # expmap0(v) lies at distance 2|v| from the origin; left translation by loc is an isometry that maps
        # the uniform distribution on that sphere to the uniform one around loc.
        v = direction * (r / 2).to(dtype)
        w = ops.expmap0(v, c=self.c, backend=self.backend)
        return ops.mobius_add(self.loc.expand(shape), w, c=self.c, backend=self.backend)


_GL_CACHE: dict = {}


def _gauss_legendre(n, device):
    key = (n, str(device))
    if key not in _GL_CACHE:
        import numpy as np

        x, w = np.polynomial.legendre.leggauss(n)
        _GL_CACHE[key] = (torch.tensor(x, dtype=torch.float64, device=device),
                          torch.tensor(w, dtype=torch.float64, device=device))
    return _GL_CACHE[key]
