"""hypops.wrapped_normal_rsample and hypops.wrapped_normal_log_prob: the public functions, and their native
ops' fake registration (autograd: csrc/autograd.cpp). Kernels: csrc/cpu/wrapped_normal_cpu.cpp (formulas in
csrc/common/math.h); reference: hypops.reference."""

from __future__ import annotations

from .. import _backend, reference
from .._checks import check_points
from ._common import native_rowwise, prepare, register_rowwise


def _check_std(op, std, mu, dim):
    check_points(op, mu=mu, std=std)
    D, s = mu.shape[dim], std.shape[dim]
    if s not in (1, D):
        raise ValueError(f"hypops.{op}: std must have size {D} (diagonal) or 1 (isotropic) in dim={dim}, got {s}")


def wrapped_normal_rsample(mu, std, eps, *, c=1.0, dim=-1, backend=None):
    """A reparameterised sample of the wrapped normal N_W(mu, diag(std^2)) from given noise eps ~ N(0, I):
    z = mu (+) expmap0(std * eps / 2), projected. std is [..., D] (diagonal) or [..., 1] (isotropic);
    mu, std and eps broadcast (e.g. eps [K, B, D] against mu [B, D])."""
    c = prepare("wrapped_normal_rsample", dim, c, mu=mu, eps=eps)
    _check_std("wrapped_normal_rsample", std, mu, dim)
    fn = _backend.select("wrapped_normal_rsample", mu.device, backend)
    return fn(mu, std, eps, c=c, dim=dim)


def wrapped_normal_log_prob(z, mu, std, *, c=1.0, dim=-1, backend=None):
    """log N_W(z; mu, diag(std^2)) with respect to the Riemannian volume (integrates to 1 over the ball):
    sum_i log N(v_i; 0, std_i^2) - (D - 1) log(sinh(sqrt(c) d) / (sqrt(c) d)), d = dist(mu, z),
    v = lambda_mu logmap(mu, z). Reduces dim."""
    c = prepare("wrapped_normal_log_prob", dim, c, z=z, mu=mu)
    _check_std("wrapped_normal_log_prob", std, mu, dim)
    fn = _backend.select("wrapped_normal_log_prob", z.device, backend)
    return fn(z, mu, std, c=c, dim=dim)


def _native_rsample(mu, std, eps, *, c, dim):
    return native_rowwise("wrapped_normal_rsample", (mu, std, eps), c, dim)


def _native_log_prob(z, mu, std, *, c, dim):
    return native_rowwise("wrapped_normal_log_prob", (z, mu, std), c, dim, reduces=True)


_backend.register("wrapped_normal_rsample", "torch", reference.wrapped_normal_rsample)
_backend.register("wrapped_normal_log_prob", "torch", reference.wrapped_normal_log_prob)
_backend.register("wrapped_normal_rsample", "native", _native_rsample)
_backend.register("wrapped_normal_log_prob", "native", _native_log_prob)
register_rowwise("wrapped_normal_rsample", 3, reduces=False)
register_rowwise("wrapped_normal_log_prob", 3, reduces=True)
