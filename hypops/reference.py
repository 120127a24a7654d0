"""Every hypops op in plain PyTorch: the oracle the kernels are tested against, and the baseline the
benchmarks measure them against.

Semantics are geoopt's (``geoopt.PoincareBall``; c > 0 is minus the curvature, the ball has radius
1/sqrt(c)), with its clamps (``hypops/_constants.py``), except where geoopt is wrong:

* asinh is ``torch.asinh`` (odd and accurate), not log(z + sqrt(1 + z^2)), which cancels for z << 0;
* every norm is floored, so no gradient is NaN (geoopt's ``dist`` has a NaN gradient at x == y);
* float16/bfloat16 compute in float32 and project with a per-dtype eps that keeps the rounded result
  strictly inside the ball.

Ops that return points (mobius_add, expmap0, expmap, project, wrapped_normal_rsample) project them, as
geoopt's manifold methods do by default. Nothing here reads a tensor back to the host.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._checks import conv3d_args, curvature
from ._constants import ARTANH_CLAMP, MIN_DENOM, MIN_NORM, PROJ_EPS, TANH_CLAMP, compute_dtype

__all__ = [
    "mobius_add",
    "expmap0",
    "logmap0",
    "expmap",
    "logmap",
    "dist",
    "project",
    "dist2plane",
    "gyroplane_bank",
    "gyroplane_conv3d",
    "wrapped_normal_rsample",
    "wrapped_normal_log_prob",
    "log_sinhc",
]


# --- helpers -------------------------------------------------------------------------------------------
def _up(t: torch.Tensor) -> torch.Tensor:
    return t.to(compute_dtype(t.dtype))


def _c(op: str, c, like: torch.Tensor) -> torch.Tensor:
    return curvature(op, c, like)


def _sqnorm(x, dim):
    return x.pow(2).sum(dim=dim, keepdim=True)


def _norm(x, dim):
    return x.norm(dim=dim, keepdim=True).clamp_min(MIN_NORM)


def _tanh(x):
    return x.clamp(-TANH_CLAMP, TANH_CLAMP).tanh()


def _artanh(x):
    return x.clamp(-1 + ARTANH_CLAMP, 1 - ARTANH_CLAMP).atanh()


def _project(x, c, dim, dtype):
    norm = _norm(x, dim)
    maxnorm = (1 - PROJ_EPS[dtype]) / c.sqrt()
    return torch.where(norm > maxnorm, x / norm * maxnorm, x)


def _mobius_add(x, y, c, dim):
    x2, y2 = _sqnorm(x, dim), _sqnorm(y, dim)
    xy = (x * y).sum(dim=dim, keepdim=True)
    num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    den = (1 + 2 * c * xy + c**2 * x2 * y2).clamp_min(MIN_DENOM)
    return num / den


def _expmap0(u, c, dim):
    sc = c.sqrt()
    n = _norm(u, dim)
    return _tanh(sc * n) * u / (sc * n)


def _lambda(x, c, dim):
    return 2 / (1 - c * _sqnorm(x, dim)).clamp_min(MIN_DENOM)


# --- points ----------------------------------------------------------------------------------------------
def project(x, *, c=1.0, dim=-1):
    """Rescales x onto the sphere of radius (1 - eps)/sqrt(c) when it lies beyond it."""
    c = _c("project", c, x)
    return _project(_up(x), c, dim, x.dtype).to(x.dtype)


def mobius_add(x, y, *, c=1.0, dim=-1):
    """x (+) y, projected."""
    c = _c("mobius_add", c, x)
    return _project(_mobius_add(_up(x), _up(y), c, dim), c, dim, x.dtype).to(x.dtype)


def expmap0(u, *, c=1.0, dim=-1):
    """tanh(sqrt(c)|u|) u / (sqrt(c)|u|), projected."""
    c = _c("expmap0", c, u)
    return _project(_expmap0(_up(u), c, dim), c, dim, u.dtype).to(u.dtype)


def logmap0(y, *, c=1.0, dim=-1):
    """artanh(sqrt(c)|y|) y / (sqrt(c)|y|)."""
    c = _c("logmap0", c, y)
    y32 = _up(y)
    sc = c.sqrt()
    n = _norm(y32, dim)
    return (_artanh(sc * n) * y32 / (sc * n)).to(y.dtype)


def expmap(x, u, *, c=1.0, dim=-1):
    """x (+) tanh(sqrt(c) lambda_x |u| / 2) u / (sqrt(c)|u|), projected."""
    c = _c("expmap", c, x)
    x32, u32 = _up(x), _up(u)
    sc = c.sqrt()
    n = _norm(u32, dim)
    second = _tanh(sc * _lambda(x32, c, dim) * n / 2) * u32 / (sc * n)
    return _project(_mobius_add(x32, second, c, dim), c, dim, x.dtype).to(x.dtype)


def logmap(x, y, *, c=1.0, dim=-1):
    """(2 / (sqrt(c) lambda_x)) artanh(sqrt(c)|w|) w / |w| with w = (-x) (+) y."""
    c = _c("logmap", c, x)
    x32, y32 = _up(x), _up(y)
    sc = c.sqrt()
    w = _mobius_add(-x32, y32, c, dim)
    wn = _norm(w, dim)
    return (2 / (sc * _lambda(x32, c, dim)) * _artanh(sc * wn) * w / wn).to(x.dtype)


def dist(x, y, *, c=1.0, dim=-1, keepdim=False):
    """(2/sqrt(c)) artanh(sqrt(c)|(-x) (+) y|)."""
    c = _c("dist", c, x)
    sc = c.sqrt()
    w = _mobius_add(-_up(x), _up(y), c, dim)
    out = 2 / sc * _artanh(sc * _norm(w, dim))
    out = out if keepdim else out.squeeze(dim)
    return out.to(x.dtype)


def dist2plane(x, p, a, *, c=1.0, dim=-1, keepdim=False, signed=False, scaled=False):
    """Distance from x to the gyroplane through p with normal a:
    (1/sqrt(c)) asinh(2 sqrt(c) <w, a> / ((1 - c|w|^2) |a|)), w = (-p) (+) x.

    ``signed=False`` takes |<w, a>|; ``scaled=True`` multiplies by |a| (geoopt's conventions).
    """
    c = _c("dist2plane", c, x)
    x32, p32, a32 = _up(x), _up(p), _up(a)
    sc = c.sqrt()
    w = _mobius_add(-p32, x32, c, dim)
    ww = _sqnorm(w, dim)
    wa = (w * a32).sum(dim=dim, keepdim=True)
    if not signed:
        wa = wa.abs()
    an = _norm(a32, dim)
    # 1 - c|w|^2 = (1 - c|p|^2)(1 - c|x|^2) / (1 - 2c<p,x> + c^2|p|^2|x|^2), exactly; formed as 1 - c|w|^2
    # it cancels to nothing when x and p are both near the sphere. geoopt's clamp_min(1e-15) on |w|^2 kept.
    p2, x2 = _sqnorm(p32, dim), _sqnorm(x32, dim)
    mden = (1 - 2 * c * (p32 * x32).sum(dim=dim, keepdim=True) + c**2 * p2 * x2).clamp_min(MIN_DENOM)
    one_m_cww = torch.where(ww >= MIN_NORM, (1 - c * p2) * (1 - c * x2) / mden, 1 - c * MIN_NORM)
    den = (one_m_cww * an).clamp_min(MIN_DENOM)
    out = torch.asinh(2 * sc * wa / den) / sc
    if scaled:
        out = out * an
    out = out if keepdim else out.squeeze(dim)
    return out.to(x.dtype)


def gyroplane_bank(x, p, a, *, c=1.0, signed=True, scaled=False):
    """A bank of P gyroplanes: x [..., D], p and a [P, D] -> [..., P] (dist2plane of every point to every
    plane). This reference builds the [..., P, D] temporary that the native kernel avoids."""
    return dist2plane(x.unsqueeze(-2), p, a, c=c, signed=signed, scaled=scaled)


# --- gyroplane convolution -------------------------------------------------------------------------------
def gyroplane_conv3d(x, p, a, *, c=1.0, bias=None, stride=1, padding=0, dilation=1, kernel_size=None):
    """Gyroplane 3D convolution (SPEC §2), by unfolding: memory grows with k^3 x C_out x D.

    y[n, o, r] = bias[o] + sum_k dist2plane(x[n, :, r*s + k*dilation - padding], p[o, :, k], a[o, :, k])
    with signed, unscaled distances; padding is filled with the origin (a valid point of the ball).
    x: [B, D, X, Y, Z]; p, a: [C_out, D, kx, ky, kz] (per-offset) or [C_out, D] (tied, one plane for every
    offset; then kernel_size is required).
    """
    ks, s, pad, dil = conv3d_args("gyroplane_conv3d", x, p, a, bias, stride, padding, dilation, kernel_size)
    tied = p.dim() == 2
    xp = F.pad(x, (pad[2], pad[2], pad[1], pad[1], pad[0], pad[0]))  # zeros = the origin
    win = xp
    for i in range(3):
        span = (ks[i] - 1) * dil[i] + 1
        win = win.unfold(2 + i, span, s[i])
    # win: [B, D, OX, OY, OZ, spanx, spany, spanz] -> take every dilation-th voxel of each window
    win = win[..., :: dil[0], :: dil[1], :: dil[2]]
    win = win.movedim(1, -1)  # [B, OX, OY, OZ, kx, ky, kz, D]
    C = p.shape[0]
    if tied:
        pw, aw = p[:, None, None, None, :], a[:, None, None, None, :]  # [C, 1, 1, 1, D]
    else:
        pw, aw = p.movedim(1, -1), a.movedim(1, -1)  # [C, kx, ky, kz, D]
    d = dist2plane(win.unsqueeze(4), pw, aw, c=c, signed=True)  # [B, OX, OY, OZ, C, kx, ky, kz]
    out = d.sum(dim=(-3, -2, -1)).movedim(-1, 1)  # [B, C, OX, OY, OZ]
    if bias is not None:
        out = out + bias.view(1, C, 1, 1, 1)
    return out


# --- wrapped normal ----------------------------------------------------------------------------------------
def log_sinhc(x):
    """log(sinh(x)/x) for x >= 0, stable at 0 (-> x^2/6) and for large x (no overflow)."""
    small = x < 0.05
    xs = torch.where(small, x, torch.zeros_like(x))
    x2 = xs * xs
    series = x2 / 6 - x2 * x2 / 180 + x2 * x2 * x2 / 2835
    xl = torch.where(small, torch.ones_like(x), x)
    large = xl + torch.log1p(-torch.exp(-2 * xl)) - math.log(2.0) - torch.log(xl)
    return torch.where(small, series, large)


def wrapped_normal_rsample(mu, std, eps, *, c=1.0, dim=-1):
    """z = mu (+) expmap0(std * eps / 2), projected (std lives in the tangent space at the origin, whose
    metric is lambda_0^2 = 4). Equals geoopt's/pvae's expmap(mu, transp0(mu, std * eps / 2))."""
    c = _c("wrapped_normal_rsample", c, mu)
    v = _up(std) * _up(eps) / 2
    z = _mobius_add(_up(mu), _expmap0(v, c, dim), c, dim)
    return _project(z, c, dim, mu.dtype).to(mu.dtype)


def wrapped_normal_log_prob(z, mu, std, *, c=1.0, dim=-1):
    """log density of the wrapped normal N_W(mu, diag(std^2)) with respect to the Riemannian volume:
    sum_i log N(v_i; 0, std_i^2) - (D - 1) log(sinh(sqrt(c) d) / (sqrt(c) d)), with d = dist(mu, z) and
    v = lambda_mu logmap(mu, z) (so |v| = d). The coordinate dimension is reduced."""
    c = _c("wrapped_normal_log_prob", c, z)
    z32, mu32, std32 = _up(z), _up(mu), _up(std)
    sc = c.sqrt()
    w = _mobius_add(-mu32, z32, c, dim)
    wn = _norm(w, dim)
    d = 2 / sc * _artanh(sc * wn)  # = dist(mu, z) = |v|
    v = d * w / wn
    D = z.shape[dim]
    log_normal = (-0.5 * (v / std32) ** 2 - std32.log() - 0.5 * math.log(2 * math.pi)).sum(dim=dim, keepdim=True)
    out = log_normal - (D - 1) * log_sinhc(sc * d)
    return out.squeeze(dim).to(z.dtype)
