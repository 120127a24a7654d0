"""Hyperbolic k-means in the Poincaré ball: k-means++ seeding on the geodesic distance, Fréchet-mean
centre updates, several restarts run side by side as one batch.

Curvature: the map x -> sqrt(c) x is an isometry from the ball of curvature -c onto the unit ball up to
the factor 1/sqrt(c) on every distance. Nearest centres and Fréchet means are therefore the same after
rescaling, so the fit runs in the unit ball and maps the centres back; inertia is reported in the
caller's geometry (squared distances divided by c).

Fréchet mean (Lou et al. 2020, "Differentiating through the Fréchet mean", the iteration the published
code uses; paper-method.md §7). For points p_l with the current estimate y:
    t_l = |p_l - y|^2 / ((1 - |p_l|^2)(1 - |y|^2))
    alpha_l = g(t_l) / (1 - |p_l|^2),   g(t) = 2 arccosh(1 + 2t) / sqrt(t^2 + t)
    a = sum alpha_l,  b = sum alpha_l p_l,  c' = sum alpha_l |p_l|^2
    y <- (a + c' - sqrt((a + c')^2 - 4|b|^2)) / (2|b|^2) · b
Two rewrites keep it finite:
  - arccosh(1 + 2t) = 2 asinh(sqrt t), so g(t) = 4 (asinh(s)/s) / sqrt(1 + t) with s = sqrt(t), and
    asinh(s) is evaluated as log1p(s + t / (1 + sqrt(1 + t))), accurate to rounding as s -> 0; s is
    floored at 1e-30, which makes g(0) = 4 exactly. (The published code clamps t and gets g(0) ≈ 2e6,
    which lets the starting point swamp every other weight.)
  - multiplying numerator and denominator by the conjugate, y <- 2b / (A + sqrt(A^2 - 4|b|^2)) with
    A = a + c': no division by |b|^2, so a mean at the origin is fine.
A single point is a fixed point after one step (alpha cancels). Each k-means iteration runs
``frechet_iter`` of these steps from the previous centre (a warm start); the sums for every restart and
cluster come out of one scatter_add. float64 input runs in float64; any other dtype in float32 (the
update's denominator A + sqrt(A^2 - 4|b|^2) >= A has no cancellation).

``frechet_iter`` defaults to 1: one step from the previous centre already lowers each cluster's sum of
squared distances, so assignment and update together still decrease the inertia every iteration and the
fixed point is the same (centres that are the Fréchet means of their clusters). On 125k points, k = 8,
three steps per iteration did not reduce the number of iterations and cost ~2x the time.

Assignment uses a monotone surrogate of the geodesic distance (see ``_assign``): one small matrix
product per iteration. k-means++ weights use the closed form d = 2 asinh(sqrt t) of the unit-ball
distance (t as above); the reported inertia and the centre shifts come from ``hypops.dist``.

Empty clusters are re-seeded deterministically: the j-th empty cluster of a restart takes the point that
is j-th farthest from its own centre. A restart stops when the sum over its centres of the squared
geodesic shifts in one iteration falls to ``tol`` times the data's spread (the mean squared distance to
the nearest k-means++ seed; scikit-learn's relative tolerance); the other restarts go on without it, up
to ``max_iter`` iterations. The restart with the lowest inertia (sum of squared geodesic distances to the
assigned centre) wins.
"""

from __future__ import annotations

import math
from numbers import Real

import torch

from .. import dist as _hdist

__all__ = ["PoincareKMeans", "frechet_g", "frechet_mean"]

# The largest block of point-to-centre scores evaluated at once, to bound memory on big inputs.
_BLOCK = 1 << 22
_S_FLOOR = 1e-30


def _asinh_sqrt(t: torch.Tensor) -> torch.Tensor:
    """asinh(sqrt t) for t >= 0, as log1p(s + t / (1 + sqrt(1 + t))): accurate to rounding as t -> 0
    (log1p of a tiny argument is exact), and vectorised on CPU where torch.asinh is not (~20x faster).
    Half the unit-ball distance: d = arccosh(1 + 2t) = 2 asinh(sqrt t)."""
    t = t.clamp_min(0)
    return torch.log1p(t.sqrt() + t / (1 + torch.sqrt(1 + t)))


def frechet_g(t: torch.Tensor) -> torch.Tensor:
    """g(t) = 2 arccosh(1 + 2t) / sqrt(t^2 + t) = 4 asinh(s) / (s sqrt(1 + t)), s = sqrt(t) >= 0, with
    its limit g(0) = 4: s is floored at 1e-30, which turns t = 0 into log1p(1e-30) / 1e-30 = 1 instead
    of 0/0, and needs no series since asinh(s) keeps full relative accuracy as s -> 0."""
    t = t.clamp_min(0)
    s = t.sqrt().clamp_min(_S_FLOOR)
    return 4 * _asinh_sqrt(t).clamp_min(_S_FLOOR) / (s * torch.sqrt(1 + t))


def _points_t(u: torch.Tensor):
    """[1, |u|^2, u] as rows ([2 + D, N], the layout every sum and score below reads), and 1/(1 - |u|^2)."""
    u_sq = (u * u).sum(-1)
    return torch.cat([torch.ones_like(u_sq)[None], u_sq[None], u.T], dim=0).contiguous(), 1 / (1 - u_sq)


def _clip(y):
    # The update stays in the ball in exact arithmetic (a Fréchet mean lies in the geodesic hull of its
    # points); rounding at the boundary must not push it out.
    eps = 1e-10 if y.dtype == torch.float64 else 1e-6
    n = y.norm(dim=-1, keepdim=True)
    return torch.where(n > 1 - eps, y * ((1 - eps) / n.clamp_min(1e-30)), y)


def _frechet_steps(pt, inv_omp, y, labels, n_steps, weights=None):
    """n_steps of the Lou et al. iteration for all restarts and clusters at once (unit ball).

    pt [2 + D, N] and inv_omp [N] from ``_points_t``; y [R, k, D] the current centres; labels [R, N] in
    0..k-1. Returns the new centres and a [R, k] mask of the clusters that had no point (they keep y).
    """
    r, k, d = y.shape
    n = pt.shape[1]
    p = pt[2:]
    idx_d = labels[:, None, :].expand(r, d, n)
    idx_all = labels[:, None, :].expand(r, d + 2, n)
    empty = None
    for _ in range(n_steps):
        inv_omy = 1 / (1 - (y * y).sum(-1))  # [R, k]
        y_pt = y.transpose(1, 2).gather(2, idx_d)  # [R, D, N]: each point's own centre
        t = ((p[None] - y_pt) ** 2).sum(1) * inv_omp * inv_omy.gather(1, labels)
        alpha = frechet_g(t) * inv_omp  # [R, N]
        if weights is not None:
            alpha = alpha * weights
        sums = torch.zeros(r, d + 2, k, dtype=pt.dtype, device=pt.device)
        sums.scatter_add_(2, idx_all, alpha[:, None, :] * pt[None])
        a, b = sums[:, 0], sums[:, 2:].transpose(1, 2)  # [R, k], [R, k, D]
        big_a = a + sums[:, 1]
        disc = (big_a * big_a - 4 * (b * b).sum(-1)).clamp_min(0)
        denom = big_a + disc.sqrt()
        new = 2 * b / torch.where(denom > 0, denom, torch.ones_like(denom))[..., None]
        empty = a <= 0
        y = _clip(torch.where(empty[..., None], y, new))
    return y, empty


def _check_c(c, where: str) -> float:
    if isinstance(c, torch.Tensor):
        if c.numel() != 1:
            raise ValueError(f"{where}: c must be a positive number, got a tensor of shape {tuple(c.shape)}")
        c = float(c)
    if not isinstance(c, Real) or isinstance(c, bool) or not (c > 0 and math.isfinite(c)):
        raise ValueError(f"{where}: c must be a positive finite number, got {c!r}")
    return float(c)


def _check_points(name: str, x, c: float, where: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: {name} must be a torch.Tensor [N, D], got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{where}: {name} must be a 2-D tensor [N, D], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{where}: {name} must be a floating-point tensor, got {x.dtype}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{where}: {name} is empty (shape {tuple(x.shape)})")
    x = x.detach()
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{where}: {name} contains NaN or Inf")
    sq = (x.double() ** 2).sum(-1)
    bad = sq >= 1 / c
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        raise ValueError(
            f"{where}: {name} must lie inside the Poincaré ball of radius 1/sqrt(c) = "
            f"{1 / math.sqrt(c):.6g}; row {i} has norm {math.sqrt(float(sq[i])):.6g} "
            f"({int(bad.sum())} rows outside)"
        )
    return x


def frechet_mean(
    x: torch.Tensor, *, c: float = 1.0, weights=None, n_iter: int = 50, init=None
) -> torch.Tensor:
    """Fréchet mean of points x [N, D] in the ball of curvature -c (Lou et al. 2020 iteration).

    Starts from ``init`` (default: the first point) and runs ``n_iter`` steps; returns [D] in x's dtype.
    ``weights`` [N], non-negative, give a weighted mean.
    """
    where = "frechet_mean"
    c = _check_c(c, where)
    x = _check_points("x", x, c, where)
    if weights is not None:
        weights = torch.as_tensor(weights, dtype=torch.float64, device=x.device)
        if weights.shape != x.shape[:1] or bool((weights < 0).any()) or not bool(weights.sum() > 0):
            raise ValueError(f"{where}: weights must be [{x.shape[0]}] non-negative with a positive sum")
        weights = weights[None]
    sc = math.sqrt(c)
    u = x.to(torch.float64) * sc
    if init is None:
        y0 = u[:1]
    else:
        y0 = _check_points("init", torch.as_tensor(init).reshape(1, -1), c, where).double() * sc
    labels = torch.zeros(1, u.shape[0], dtype=torch.long, device=u.device)
    y, _ = _frechet_steps(*_points_t(u), y0[None], labels, n_iter, weights)
    return (y[0, 0] / sc).to(x.dtype)


class PoincareKMeans:
    """k-means in the Poincaré ball of curvature -c, scikit-learn style.

    Parameters: n_clusters; c (> 0); n_init restarts, run side by side; max_iter k-means iterations;
    tol, relative: a restart has converged when its summed squared centre shifts in one iteration are at
    most tol times the data's spread (see the module docstring); frechet_iter, Fréchet-mean steps per
    iteration (warm-started from the previous centre); seed for the k-means++ draws.

    After ``fit``: ``cluster_centers_`` [k, D] (x's dtype), ``labels_`` [N] int64, ``inertia_`` (sum of
    squared geodesic distances to the assigned centre, float), ``n_iter_``, ``inertias_`` (every restart's).
    """

    def __init__(
        self,
        n_clusters: int,
        c: float = 1.0,
        n_init: int = 4,
        max_iter: int = 100,
        tol: float = 1e-4,
        frechet_iter: int = 1,
        seed: int = 0,
    ):
        for name, v in (
            ("n_clusters", n_clusters),
            ("n_init", n_init),
            ("max_iter", max_iter),
            ("frechet_iter", frechet_iter),
        ):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"PoincareKMeans: {name} must be an int >= 1, got {v!r}")
        if not isinstance(tol, Real) or not (tol >= 0):
            raise ValueError(f"PoincareKMeans: tol must be a non-negative number, got {tol!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"PoincareKMeans: seed must be an int, got {seed!r}")
        self.n_clusters = n_clusters
        self.c = _check_c(c, "PoincareKMeans")
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = float(tol)
        self.frechet_iter = frechet_iter
        self.seed = seed

    @staticmethod
    def _assign(pt: torch.Tensor, inv_omp: torch.Tensor, centres: torch.Tensor):
        """Nearest centre of every point for every restart: (labels [R, N], t [R, N]).

        d(x, y) = arccosh(1 + 2t), t = |x - y|^2 / ((1 - |x|^2)(1 - |y|^2)), is increasing in
        s_j(x) = w_j (|x|^2 - 2<x, y_j> + |y_j|^2) with w_j = 1 / (1 - |y_j|^2) for a fixed x, so one
        [R k, 2 + D] x [2 + D, N] product scores every pair; t of the chosen centre (= s · inv_omp,
        which orders points by distance to their centre) comes back for re-seeding.
        """
        r, k, d = centres.shape
        y_sq = (centres * centres).sum(-1)
        w = 1 / (1 - y_sq)
        coef = torch.cat([(w * y_sq)[..., None], w[..., None], -2 * w[..., None] * centres], dim=-1)
        coef = coef.reshape(r * k, d + 2)
        n = pt.shape[1]
        labels = torch.empty(r, n, dtype=torch.long, device=pt.device)
        tmin = torch.empty(r, n, dtype=pt.dtype, device=pt.device)
        chunk = max(1, _BLOCK // (r * k))
        # torch.min(dim=1) with indices is ~20x slower on CPU than amin here; the index is recovered by
        # matching the minimum (a tie goes to the highest index, deterministically).
        ids = torch.arange(k, dtype=torch.uint8 if k <= 255 else torch.int32, device=pt.device)[None, :, None]
        for s in range(0, n, chunk):
            score = (coef @ pt[:, s : s + chunk]).view(r, k, -1)
            m = score.amin(1)
            tmin[:, s : s + chunk] = m
            labels[:, s : s + chunk] = ((score == m[:, None]).to(ids.dtype) * ids).amax(1)
        return labels, tmin * inv_omp

    def _init_centres(self, u: torch.Tensor, gen: torch.Generator):
        """k-means++ for every restart at once: each new centre is drawn with probability proportional to
        the squared geodesic distance to the nearest centre chosen so far. Also returns the mean of those
        squared distances at the end (the data's spread, which scales tol)."""
        n, d = u.shape
        r, k = self.n_init, self.n_clusters
        centres = torch.empty(r, k, d, dtype=u.dtype, device=u.device)
        first = torch.randint(n, (r,), generator=gen, device=u.device)
        centres[:, 0] = u[first]
        # The weights use d = 2 asinh(sqrt t) directly (the same t as the Fréchet step): hypops.dist's
        # CPU kernel at D = 2 costs ~50 ns per pair, and k-means++ needs k * R * N of them.
        inv_omp = 1 / (1 - (u * u).sum(-1))

        def sqdist(y):  # [R, D] -> [R, N]
            t = ((u[None] - y[:, None]) ** 2).sum(-1) * inv_omp / (1 - (y * y).sum(-1))[:, None]
            return (2 * _asinh_sqrt(t)) ** 2

        d2 = sqdist(centres[:, 0])
        for j in range(1, k):
            cum = torch.cumsum(d2, dim=1, dtype=torch.float64)
            total = cum[:, -1:]
            # All points on the chosen centres (duplicates): fall back to a uniform draw.
            cum = torch.where(
                total > 0, cum, torch.arange(1, n + 1, dtype=cum.dtype, device=u.device).expand(r, n)
            )
            draw = torch.rand(r, 1, generator=gen, dtype=torch.float64, device=u.device) * cum[:, -1:]
            idx = torch.searchsorted(cum, draw, right=True).clamp_max(n - 1).squeeze(1)
            centres[:, j] = u[idx]
            d2 = torch.minimum(d2, sqdist(centres[:, j]))
        return centres, d2.double().mean(1)

    @staticmethod
    def _reseed(u, centres, empty, t):
        """The j-th empty cluster of each restart moves onto the restart's j-th farthest point (t orders
        points by their distance to their own centre)."""
        k = centres.shape[1]
        far = torch.topk(t, min(k, u.shape[0]), dim=1).indices  # [R, k'] farthest first
        rank = (torch.cumsum(empty.long(), dim=1) - 1).clamp(0, far.shape[1] - 1)
        return torch.where(empty[..., None], u[far.gather(1, rank)], centres)

    def fit(self, x: torch.Tensor) -> PoincareKMeans:
        x = _check_points("x", x, self.c, "PoincareKMeans")
        n = x.shape[0]
        if n < self.n_clusters:
            raise ValueError(
                f"PoincareKMeans: n_clusters={self.n_clusters} exceeds the number of points in x ({n})"
            )
        sc = math.sqrt(self.c)
        work = torch.float64 if x.dtype == torch.float64 else torch.float32
        u = x.to(work) * sc
        pt, inv_omp = _points_t(u)
        gen = torch.Generator(device=x.device).manual_seed(self.seed)

        centres, spread = self._init_centres(u, gen)  # [R, k, D], [R]
        # scikit-learn's convention: tol is relative to the data's spread, here the mean squared
        # distance to the nearest k-means++ seed, and compared with the summed squared centre shifts.
        thresh = (self.tol * spread).to(work)
        active = torch.arange(self.n_init, device=x.device)  # restarts still moving
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):
            cen = centres[active]
            labels, t = self._assign(pt, inv_omp, cen)
            new, empty = _frechet_steps(pt, inv_omp, cen, labels, self.frechet_iter)
            reseeded = bool(empty.any())
            if reseeded:
                new = self._reseed(u, new, empty, t)
            moving = (_hdist(new, cen) ** 2).sum(-1) > thresh[active]
            centres[active] = new
            if reseeded:
                moving = moving | empty.any(1)
            if not bool(moving.any()):
                break
            active = active[moving]

        labels, _ = self._assign(pt, inv_omp, centres)
        own = centres[torch.arange(self.n_init, device=x.device)[:, None], labels]  # [R, N, D]
        inertias = (_hdist(u.expand(self.n_init, -1, -1), own).double() ** 2).sum(1) / self.c
        best = int(torch.argmin(inertias))
        self.cluster_centers_ = (centres[best] / sc).to(x.dtype)
        self.labels_ = labels[best].clone()
        self.inertia_ = float(inertias[best])
        self.inertias_ = inertias.tolist()
        self.n_iter_ = n_iter
        self._centres_unit = centres[best]
        return self

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError("PoincareKMeans: call fit before predict")
        x = _check_points("x", x, self.c, "PoincareKMeans")
        if x.shape[1] != self._centres_unit.shape[1]:
            raise ValueError(
                f"PoincareKMeans: x has {x.shape[1]} coordinates but the model was fit on "
                f"{self._centres_unit.shape[1]}"
            )
        u = x.to(self._centres_unit.dtype) * math.sqrt(self.c)
        return self._assign(*_points_t(u), self._centres_unit[None].to(u.device))[0][0]

    def fit_predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.fit(x).labels_
