"""Shared test machinery: the backend and dtype lists, the tolerance tables, input samplers, a float64
oracle built on hypops.reference, comparison helpers and ``OpTests``, the checks every op runs
(one subclass per op in tests/test_<op>.py).

Conventions
-----------
* Inputs are sampled in float64 with a seeded ``torch.Generator``, then rounded to the dtype under test.
  The oracle is ``hypops.reference`` on those rounded inputs upcast to float64 (so input rounding is
  not counted as error). For ops that return points, the oracle is then projected with the projection
  eps of the dtype under test (projecting onto the (1 - eps)/sqrt(c) sphere after projecting onto the
  (1 - 1e-5)/sqrt(c) one is the same function, gradients included, since every eps >= 1e-5).
* Vector outputs are compared row by row: |out - ref| <= atol + rtol |ref| with norms over the
  coordinate dimension (a small coordinate of a long row carries the row's absolute rounding error).
* Near the boundary (points at 0.999 / 1 - 1e-5 of the radius, huge tangent norms) an op may be as
  inaccurate as the problem makes it. Below float64 the rule is ARCHITECTURE.md's "error <= 2x the
  same-dtype reference's error", taken over the whole boundary set (worst relative row error vs worst
  relative row error of hypops.reference run in that dtype). In float64 (where the oracle is the
  reference itself) each row may be off by the change one-ulp input perturbations cause plus
  8 eps64 / prod(1 - c|x|^2) (the closed forms' own amplification near the sphere).
* Outside the ball (radius 1.5; project excepted) and at extreme magnitudes only finiteness is
  asserted (the clamps of two correct implementations need not agree there); rows whose exact value
  or gradient does not fit a half type (a float16 result of 6e5 can only be Inf) are left out for it.
* Every check here was mutation-tested: a native op with a 1e-7 relative error, a missing projection,
  a detached c, an ignored flag or dim, geoopt's half-type eps, a 0.1% backward error, c rounded to float32
  or a NaN gradient at zero each fails tests.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field

import pytest
import torch

import hypops
from hypops import _backend
from hypops import reference as R
from hypops._constants import PROJ_EPS

# --- what is tested -----------------------------------------------------------------------------------------
# Backends, in one place. "triton" joins the matrix where it can run at all (GPU, or the CPU interpreter
# in a pytest process started with TRITON_INTERPRET=1); HYPOPS_TEST_BACKENDS=native,torch,... overrides.
# A backend whose hypops._backend.reasons(...) are non-empty for an op is skipped with those reasons.
BACKENDS: list[str] = ["native", "torch"]
if os.environ.get("TRITON_INTERPRET") == "1" or torch.cuda.is_available():
    BACKENDS.append("triton")
if os.environ.get("HYPOPS_TEST_BACKENDS"):
    BACKENDS = [b.strip() for b in os.environ["HYPOPS_TEST_BACKENDS"].split(",") if b.strip()]

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
HALF_DTYPES = (torch.float16, torch.bfloat16)
DEVICE = torch.device("cpu")

# The ops the native backend must serve (at least; tests/test_info.py asserts it, so that a broken build
# cannot turn the native half of the matrix into skips unnoticed). Ops it gains later join the matrix by
# themselves (the backend fixture asks hypops._backend.reasons).
NATIVE_OPS = (
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
)
ALL_OPS = NATIVE_OPS

C_VALUES = (1e-3, 0.1, 1.0, 10.0)
# Radius fractions of 1/sqrt(c) for boundary sampling (1.5: outside the ball).
RADII = (0.0, 1e-7, 0.5, 0.9, 0.999, 1 - 1e-5, 1.5)
# Absolute tangent norms for extreme sampling.
TANGENT_NORMS = (0.0, 1e-7, 1e-3, 1.0, 1e3, 1e6)
NORMAL_NORMS = (0.0, 1e-7, 1.0, 1e3)

# --- tolerances (vs the float64 oracle on the same rounded inputs) ------------------------------------------
# Forward values; rtol is relative to the row norm (vector outputs) or the value (scalar outputs).
TOL = {
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float32: dict(rtol=2e-5, atol=1e-6),
    torch.float16: dict(rtol=2e-3, atol=1e-4),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1e-3),
}
# Gradients.
GRAD_TOL = {
    torch.float64: dict(rtol=1e-9, atol=1e-11),
    torch.float32: dict(rtol=1e-4, atol=1e-5),
    torch.float16: dict(rtol=1e-2, atol=1e-3),
    torch.bfloat16: dict(rtol=6e-2, atol=1e-2),
}
# Near the boundary (ARCHITECTURE.md: "error <= 2x the same-dtype reference's error"): the worst relative
# row error over a boundary set may be BOUNDARY_FACTOR x the worst of hypops.reference run in the same
# dtype, plus BOUNDARY_TOL's rtol. (Per row, the reference's own error is a random draw of its rounding;
# the worst case over the set is what the rule can hold an implementation to.)
BOUNDARY_FACTOR = 2.0
# In float64 the oracle is itself the reference, so the boundary rule is per row: BOUNDARY_TOL plus
# SENSITIVITY_FACTOR x the change that one-ulp perturbations of the inputs cause (the conditioning).
SENSITIVITY_FACTOR = 4.0
BOUNDARY_TOL = {
    torch.float64: dict(rtol=1e-9, atol=1e-12),
    torch.float32: dict(rtol=2e-4, atol=1e-5),
    torch.float16: dict(rtol=4e-3, atol=1e-3),
    torch.bfloat16: dict(rtol=3e-2, atol=1e-2),
}


def ulps(dt: torch.dtype, k: int = 4) -> float:
    """k units in the last place of dt (for results that may differ only in summation order)."""
    return k * torch.finfo(dt).eps


def dtype_id(dt: torch.dtype) -> str:
    return str(dt).replace("torch.", "")


def compute_dtype(dt):
    return dt if dt in (torch.float32, torch.float64) else torch.float32


def skip_unless_serves(backend: str, *ops: str, device=DEVICE) -> None:
    for op in ops:
        why = _backend.reasons(backend, op, torch.device(device))
        if why:
            pytest.skip(f"backend {backend!r} cannot serve {op}: {'; '.join(why)}")


# --- samplers -----------------------------------------------------------------------------------------------
def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def directions(n: int, d: int, g: torch.Generator) -> torch.Tensor:
    v = torch.randn(n, d, dtype=torch.float64, generator=g)
    return v / v.norm(dim=-1, keepdim=True)


def points_at(fracs, d: int, c: float, g: torch.Generator) -> torch.Tensor:
    """Points at radius frac / sqrt(c) in random directions (float64), one row per fraction."""
    fracs = torch.as_tensor(fracs, dtype=torch.float64).reshape(-1, 1)
    return directions(fracs.shape[0], d, g) * fracs / math.sqrt(c)


def vectors_at(norms, d: int, g: torch.Generator) -> torch.Tensor:
    norms = torch.as_tensor(norms, dtype=torch.float64).reshape(-1, 1)
    return directions(norms.shape[0], d, g) * norms


def ball_points(n: int, d: int, c: float, g: torch.Generator, max_frac: float = 0.9, zero_rows: int = 1):
    """Random points of the ball of radius 1/sqrt(c), radius fraction uniform in [0, max_frac]; the first
    ``zero_rows`` rows are exact zeros."""
    frac = torch.rand(n, dtype=torch.float64, generator=g) * max_frac
    x = points_at(frac, d, c, g)
    x[:zero_rows] = 0
    return x


def tangent_vectors(n: int, d: int, c: float, g: torch.Generator, lo=1e-3, hi=3.0, zero_rows: int = 1):
    """Random tangent vectors with norms log-uniform in [lo, hi] / sqrt(c); first rows exact zeros."""
    lg = torch.empty(n, dtype=torch.float64).uniform_(math.log(lo), math.log(hi), generator=g)
    u = vectors_at(lg.exp() / math.sqrt(c), d, g)
    u[:zero_rows] = 0
    return u


# Argument kinds: "point" (ball point), "tangent" (tangent vector), "normal" (a gyroplane's normal),
# "std" (positive scale), "noise" (standard normal).
def sample(kind: str, n: int, d: int, c: float, g: torch.Generator, *, small=False) -> torch.Tensor:
    """Well-conditioned samples of one argument kind (``small``: for gradcheck, away from every clamp)."""
    if kind == "point":
        return ball_points(n, d, c, g, max_frac=0.7 if small else 0.9, zero_rows=0 if small else 1)
    if kind == "tangent":
        return tangent_vectors(
            n, d, c, g, lo=0.05 if small else 1e-3, hi=0.8 if small else 3.0, zero_rows=0 if small else 1
        )
    if kind == "normal":
        lg = torch.empty(n, dtype=torch.float64).uniform_(math.log(0.3), math.log(3.0), generator=g)
        return vectors_at(lg.exp(), d, g)
    if kind == "std":
        return torch.empty(n, d, dtype=torch.float64).uniform_(0.2, 1.5, generator=g)
    if kind == "noise":
        return torch.randn(n, d, dtype=torch.float64, generator=g)
    raise ValueError(kind)


def extreme_levels(kind: str, c: float):
    if kind == "point":
        return [("frac", r) for r in RADII]
    if kind == "tangent":
        return [("norm", v) for v in TANGENT_NORMS]
    if kind == "normal":
        return [("norm", v) for v in NORMAL_NORMS]
    if kind == "std":
        return [("value", v) for v in (1e-5, 1.0, 1e3)]
    if kind == "noise":
        return [("norm", v) for v in (0.0, 1.0, 1e3)]
    raise ValueError(kind)


def extreme_args(kinds, d: int, c: float, g: torch.Generator):
    """Every combination of the extreme levels of each argument (one row per combination)."""
    levels = [extreme_levels(k, c) for k in kinds]
    combos = list(itertools.product(*levels))
    out = []
    for i, kind in enumerate(kinds):
        col = [combo[i] for combo in combos]
        if kind == "point":
            out.append(points_at([v for _, v in col], d, c, g))
        elif kind == "std":
            out.append(
                torch.tensor([v for _, v in col], dtype=torch.float64).reshape(-1, 1).expand(-1, d).clone()
            )
        else:
            out.append(vectors_at([v for _, v in col], d, g))
    return out


# --- oracle and comparisons ---------------------------------------------------------------------------------
def proj64(x: torch.Tensor, c, eps: float, dim: int = -1) -> torch.Tensor:
    """float64 projection onto the (1 - eps)/sqrt(c) sphere (differentiable, c float or tensor)."""
    c = torch.as_tensor(c, dtype=torch.float64)
    n = x.norm(dim=dim, keepdim=True).clamp_min(1e-15)
    maxnorm = (1 - eps) / c.sqrt()
    return torch.where(n > maxnorm, x / n * maxnorm, x)


def reference_call(name: str, args, c, dtype, *, dim=-1, **kw):
    """hypops.reference.<name> in float64 on args (any dtype, upcast), projected with dtype's eps."""
    a64 = [a.double() if a.dtype != torch.float64 else a for a in args]
    c64 = c.double() if isinstance(c, torch.Tensor) else c
    kwargs = dict(kw)
    if name not in ("gyroplane_bank", "gyroplane_conv3d"):
        kwargs["dim"] = dim
    out = getattr(R, name)(*a64, c=c64, **kwargs)
    if name in POINT_OPS and dtype != torch.float64:
        out = proj64(out, c64, PROJ_EPS[dtype], dim)
    return out


def same_dtype_reference(name: str, args, c, *, dim=-1, **kw):
    kwargs = dict(kw)
    if name not in ("gyroplane_bank", "gyroplane_conv3d"):
        kwargs["dim"] = dim
    return getattr(R, name)(*args, c=c, **kwargs)


def row_err(out, ref, vector: bool, dim=-1):
    d = out.double() - ref.double()
    if vector:
        return d.norm(dim=dim), ref.double().norm(dim=dim)
    return d.abs(), ref.double().abs()


def assert_rows_close(out, ref, *, rtol, atol, vector: bool, dim=-1, extra=None, msg=""):
    """Row-wise |out - ref| <= atol + rtol |ref| (or <= extra where that is larger). NaN fails."""
    assert out.shape == ref.shape, f"{msg}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    err, scale = row_err(out, ref, vector, dim)
    allowed = atol + rtol * scale
    if extra is not None:
        allowed = torch.maximum(allowed, extra)
    bad = ~(err <= allowed)
    if bad.any():
        idx = bad.nonzero()[:5].tolist()
        worst = (err / allowed.clamp_min(1e-300)).nan_to_num(float("inf")).max().item()
        flat_bad = bad.reshape(-1)
        raise AssertionError(
            f"{msg}: {int(flat_bad.sum())} of {flat_bad.numel()} rows off (worst err/allowed = {worst:.3g}); "
            f"first bad rows {idx}: err {err[bad][:5].tolist()}, ref scale {scale[bad][:5].tolist()}"
        )


def assert_no_worse_than_reference(out, ref_dt, ref, *, rtol, atol, vector, dim=-1, msg=""):
    """The boundary rule: the worst row error of ``out`` (relative to the row's scale, with an absolute
    floor atol) is at most BOUNDARY_FACTOR x the worst row error of hypops.reference run in the same dtype
    (``ref_dt``), plus rtol. Both against the float64 oracle ``ref``."""
    assert out.shape == ref.shape, f"{msg}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    err, scale = row_err(out, ref, vector, dim)
    err_ref, _ = row_err(ref_dt, ref, vector, dim)
    e_out = (err / (atol + scale)).nan_to_num(float("inf")).max().item()
    e_ref = (err_ref / (atol + scale)).nan_to_num(float("inf")).max().item()
    assert e_out <= BOUNDARY_FACTOR * e_ref + rtol, (
        f"{msg}: worst relative row error {e_out:.3g} > {BOUNDARY_FACTOR} x the same-dtype reference's "
        f"{e_ref:.3g} + {rtol:g} (worst row {int((err / (atol + scale)).nan_to_num(float('inf')).argmax())})"
    )


def sensitivity(fn, args, dtype, draws: int = 2):
    """How much the float64 results of fn(args) move when every input element is perturbed by one unit
    of dtype's rounding (relative): per result, the elementwise max |change| over a few draws. An error
    of this size is what rounding the inputs alone would cause (the problem's conditioning)."""
    base = [t.detach() for t in fn([a.double() for a in args])]
    g = gen(999)
    eps = torch.finfo(dtype).eps
    worst = [torch.zeros_like(t) for t in base]
    for _ in range(draws):
        pert = [a.double() * (1 + eps * torch.randn(a.shape, dtype=torch.float64, generator=g)) for a in args]
        for k, t in enumerate(fn(pert)):
            worst[k] = torch.maximum(worst[k], (t.detach() - base[k]).abs().nan_to_num(float("inf")))
    return worst


def assert_finite(t: torch.Tensor, msg=""):
    ok = torch.isfinite(t)
    if not ok.all():
        idx = (~ok).nonzero()[:5].tolist()
        raise AssertionError(f"{msg}: {int((~ok).sum())} non-finite values, first at {idx}")


def assert_strictly_inside(x: torch.Tensor, c: float, *, dim=-1, msg=""):
    """The stored (rounded) point has float64 norm < 1/sqrt(c)."""
    n = x.double().norm(dim=dim)
    bound = 1 / math.sqrt(c)
    bad = ~(n < bound)
    if bad.any():
        raise AssertionError(
            f"{msg}: {int(bad.sum())} points on/outside the ball (max norm * sqrt(c) = "
            f"{(n.max() * math.sqrt(c)).item():.10g})"
        )


def grad_c_scale(name, args, c: float, weights, *, dim=-1, h=1e-6, **kw):
    """|d(weights . out_row)/dc| per row (central differences of the float64 reference); their sum is
    the natural scale for the error of the summed grad_c."""
    lo = reference_call(name, args, c * (1 - h), torch.float64, dim=dim, **kw)
    hi = reference_call(name, args, c * (1 + h), torch.float64, dim=dim, **kw)
    d = (hi - lo) / (2 * c * h) * weights.double()
    if name in VECTOR_OPS:
        d = d.sum(dim=dim)
    return d.abs()


# --- a high-precision oracle (mpmath) for dist2plane, used for the asinh accuracy contract ------------------
def dist2plane_mp(x, p, a, c, signed=True, scaled=False, dps=60):
    """dist2plane of float64 rows x, p, a ([N, D]) in mpmath at ``dps`` digits (SPEC §1), as float64."""
    import mpmath

    out = []
    with mpmath.workdps(dps):
        cm = mpmath.mpf(float(c))
        for xi, pi, ai in zip(x.double().tolist(), p.double().tolist(), a.double().tolist()):
            X = [mpmath.mpf(v) for v in xi]
            P = [-mpmath.mpf(v) for v in pi]  # -p
            A = [mpmath.mpf(v) for v in ai]
            dot = lambda u, v: mpmath.fsum(s * t for s, t in zip(u, v))  # noqa: E731
            uv, uu, vv = dot(P, X), dot(P, P), dot(X, X)
            den = 1 + 2 * cm * uv + cm**2 * uu * vv
            w = [((1 + 2 * cm * uv + cm * vv) * s + (1 - cm * uu) * t) / den for s, t in zip(P, X)]
            wa, ww, an = dot(w, A), dot(w, w), mpmath.sqrt(dot(A, A))
            if not signed:
                wa = abs(wa)
            if an == 0:  # a zero normal: the ops' convention is distance 0
                out.append(0.0)
                continue
            z = 2 * mpmath.sqrt(cm) * wa / ((1 - cm * ww) * an)
            d = mpmath.asinh(z) / mpmath.sqrt(cm)
            out.append(float(d * an if scaled else d))
    return torch.tensor(out, dtype=torch.float64)


def plane_points_with_asinh_arg(z, d: int, c: float):
    """(x, p, a) rows whose dist2plane asinh argument is z (negative: x on the far side of the plane):
    p = 0, a = e_0, x = -r e_0 with 2 sqrt(c) r / (1 - c r^2) = |z|."""
    z = torch.as_tensor(z, dtype=torch.float64)
    s = z.abs()
    # solve c s r^2 + 2 sqrt(c) r - s = 0 for r (stable form)
    r = s / (math.sqrt(c) * (1 + torch.sqrt(1 + s * s)))
    x = torch.zeros(len(z), d, dtype=torch.float64)
    x[:, 0] = torch.where(z < 0, -r, r)
    p = torch.zeros_like(x)
    a = torch.zeros_like(x)
    a[:, 0] = 1.0
    return x, p, a


# --- op descriptions ----------------------------------------------------------------------------------------
POINT_OPS = {"mobius_add", "expmap0", "expmap", "project", "wrapped_normal_rsample"}
VECTOR_OPS = {"mobius_add", "expmap0", "logmap0", "expmap", "logmap", "project", "wrapped_normal_rsample"}


@dataclass
class OpSpec:
    name: str
    kinds: tuple  # kinds of the positional tensor arguments
    kwargs: dict = field(default_factory=dict)  # flags (signed/scaled, ...)
    has_dim: bool = True

    @property
    def vector(self) -> bool:
        return self.name in VECTOR_OPS

    @property
    def projects(self) -> bool:
        return self.name in POINT_OPS

    def call(self, args, c, backend, dim=-1, **kw):
        kwargs = {**self.kwargs, **kw}
        if self.has_dim:
            kwargs["dim"] = dim
        return getattr(hypops, self.name)(*args, c=c, backend=backend, **kwargs)

    def ref(self, args, c, dtype, dim=-1, **kw):
        return reference_call(self.name, args, c, dtype, dim=dim, **{**self.kwargs, **kw})

    def ref_same(self, args, c, dim=-1, **kw):
        return same_dtype_reference(self.name, args, c, dim=dim, **{**self.kwargs, **kw})


def finite_rows(args, dtype):
    keep = None
    for a in args:
        ok = torch.isfinite(a.to(dtype)).all(dim=-1)
        keep = ok if keep is None else keep & ok
    return [a[keep] for a in args]


def cast(args, dtype):
    return [a.to(dtype) for a in args]


def leafs(args):
    return [a.detach().clone().requires_grad_(True) for a in args]


class OpTests:
    """The checks every op runs, for each backend x dtype. Subclasses set ``spec`` (an OpSpec) and
    ``D``; ``backend`` and ``dtype`` are fixtures from conftest.py (the backend fixture skips with the
    reasons when the backend cannot serve ``spec.name``)."""

    spec: OpSpec
    D = 5
    N = 24

    # -- helpers
    def interior(self, c, seed=0, n=None, d=None, small=False):
        g = gen(seed)
        return [sample(k, n or self.N, d or self.D, c, g, small=small) for k in self.spec.kinds]

    def extremes(self, c, seed=1, d=None, dtype=torch.float64):
        """Extreme rows, less those that do not survive rounding to dtype (1e6 overflows float16:
        the contract covers finite inputs)."""
        args = finite_rows(extreme_args(self.spec.kinds, d or self.D, c, gen(seed)), dtype)
        if dtype in HALF_DTYPES:
            args = self.representable_rows(args, c, dtype)
        return args

    def representable_rows(self, args, c, dtype):
        """Rows whose exact (float64 reference) value and gradients fit the dtype: a float16 result of
        6e5 (a scaled distance with |a| = 1e3) can only be Inf."""
        big = torch.finfo(dtype).max / 8
        a64 = leafs([a.to(dtype).double() for a in args])
        out = self.spec.ref(a64, c, dtype)
        out.sum().backward()
        rows = out.abs().reshape(out.shape[0], -1).amax(-1) < big
        for a in a64:
            rows &= (a.grad.abs().amax(-1) < big) & torch.isfinite(a.grad).all(-1)
        return [a[rows] for a in args]

    def check_forward(self, args64, c, backend, dtype, *, boundary=False, dim=-1, msg=""):
        spec = self.spec
        args = cast(args64, dtype)
        out = spec.call(args, c, backend, dim=dim)
        assert out.dtype == dtype, f"{msg}: output dtype {out.dtype}"
        ref = spec.ref(args, c, dtype, dim=dim)
        assert_finite(out, msg)
        if spec.projects:
            assert_strictly_inside(out, float(c), dim=dim, msg=msg)
        if not boundary:
            assert_rows_close(out, ref, vector=spec.vector, dim=dim, msg=msg, **TOL[dtype])
        elif dtype == torch.float64:
            sens = sensitivity(lambda a: [spec.ref(a, c, dtype, dim=dim)], args, dtype)[0]
            sens = sens.norm(dim=dim) if spec.vector else sens.abs()
            scale = ref.norm(dim=dim) if spec.vector else ref.abs()
            extra = SENSITIVITY_FACTOR * sens + self.formula_slack(args, c, dim) * scale
            assert_rows_close(
                out, ref, vector=spec.vector, dim=dim, extra=extra, msg=msg, **BOUNDARY_TOL[dtype]
            )
        else:
            ref_dt = spec.ref_same(args, c, dim=dim)
            if spec.projects:  # same projection radius as the op's dtype (identity for float32/halves)
                ref_dt = proj64(ref_dt.double(), c, PROJ_EPS[dtype], dim)
            assert_no_worse_than_reference(
                out, ref_dt, ref, vector=spec.vector, dim=dim, msg=msg, **BOUNDARY_TOL[dtype]
            )
        return out

    def formula_slack(self, args, c, dim=-1, arg=None):
        """Relative float64 error that the closed forms themselves carry near the boundary: they divide
        by 1 - c|w|^2 for w = (-x) (+) y, which is (1 - c|x|^2)(1 - c|y|^2)/den, so rounding is amplified
        by 1 / prod over the point arguments of |1 - c|x|^2| (1e-10 for two points at 1 - 1e-5 of the
        radius). Two correct float64 implementations may differ by ~ 8 eps64 x that amplification.
        Per output element (arg None) or per row of argument ``arg``'s gradient (the same here)."""
        amp = torch.ones(())
        for kind, a in zip(self.spec.kinds, args):
            if kind == "point":
                q = (1 - c * a.detach().double().pow(2).sum(dim)).abs().clamp_min(1e-300)
                amp = amp / q
        return 8 * torch.finfo(torch.float64).eps * amp

    def out_magnitude_rows(self, out, w, i, dim=-1):
        """|w * out| summed to the rows of argument i (the scale of the function the gradient is of)."""
        m = (out.detach().double() * w).abs()
        return m.sum(dim) if self.spec.vector else m

    def rounding_floor(self, out, w, arg, c, i, dim=-1):
        """A float64 gradient can carry ~ eps64 |f| / |x| of rounding when huge terms cancel analytically
        (log_prob = -d^2/(2 std^2) ~ -1e15 with d saturated by the artanh clamp: its gradient is 0 in exact
        arithmetic and ~0.03 in either implementation)."""
        scale = arg.detach().double().norm(dim=dim).clamp_min(1 / math.sqrt(c))
        return 16 * torch.finfo(torch.float64).eps * self.out_magnitude_rows(out, w, i, dim) / scale

    def reference_grads(self, args, c, dtype, w, dim=-1):
        """float64 reference gradients of (out * w).sum() for args (any dtype): ([grad per arg], grad_c)."""
        a64 = leafs([a.detach().double() for a in args])
        c64 = torch.tensor(c, dtype=torch.float64, requires_grad=True)
        (self.spec.ref(a64, c64, dtype, dim=dim) * w).sum().backward()
        return [a.grad for a in a64], c64.grad

    def check_backward(self, args64, c, backend, dtype, *, dim=-1, boundary=False, msg="", check_c=True):
        spec = self.spec
        args = leafs(cast(args64, dtype))
        ct = torch.tensor(c, dtype=compute_dtype(dtype), requires_grad=True)
        out = spec.call(args, ct, backend, dim=dim)
        w = torch.empty(out.shape, dtype=torch.float64).uniform_(0.5, 1.5, generator=gen(123))
        (out.double() * w).sum().backward()
        ref_grads, ref_gc = self.reference_grads(args, c, dtype, w, dim)
        tol = (BOUNDARY_TOL if boundary else GRAD_TOL)[dtype]
        sens = sens_c = None
        if boundary:
            assert dtype == torch.float64, "boundary gradients are compared in float64 only"
            *sens, sens_c = sensitivity(
                lambda a: [*(g := self.reference_grads(a, c, dtype, w, dim))[0], g[1]],
                [a.detach() for a in args],
                dtype,
            )
        for i, (a, r) in enumerate(zip(args, ref_grads)):
            assert a.grad is not None, f"{msg}: no gradient for argument {i}"
            assert a.grad.dtype == a.dtype and a.grad.shape == a.shape, f"{msg}: grad {i} dtype/shape"
            assert_finite(a.grad, f"{msg}: grad of arg {i}")
            extra = None
            if sens is not None:
                extra = (
                    SENSITIVITY_FACTOR * sens[i].norm(dim=dim)
                    + self.formula_slack(args, c, dim, arg=i) * r.norm(dim=dim)
                    + self.rounding_floor(out, w, a, c, i, dim)
                )
            assert_rows_close(
                a.grad, r, vector=True, dim=dim, extra=extra, msg=f"{msg}: grad of arg {i}", **tol
            )
        if check_c:
            assert ct.grad is not None, f"{msg}: no gradient for c"
            assert_finite(ct.grad, f"{msg}: grad of c")
            rows = grad_c_scale(spec.name, [a.detach() for a in args], c, w, dim=dim, **spec.kwargs)
            scale = rows.sum().item()
            err = abs(ct.grad.double().item() - ref_gc.item())
            allowed = tol["atol"] * max(1.0, scale) + tol["rtol"] * max(scale, abs(ref_gc.item()))
            if sens_c is not None:
                slack = self.formula_slack(args, c, dim).expand_as(rows)
                allowed = max(allowed, SENSITIVITY_FACTOR * sens_c.abs().item() + (slack * rows).sum().item())
            assert err <= allowed, (
                f"{msg}: grad_c {ct.grad.item()!r} vs reference {ref_gc.item()!r} "
                f"(err {err:.3g} > {allowed:.3g})"
            )

    # -- the tests
    def test_forward_vs_reference(self, backend, dtype):
        for i, c in enumerate(C_VALUES):
            self.check_forward(self.interior(c, seed=i), c, backend, dtype, msg=f"{self.spec.name} c={c}")

    def inside_rows(self, args, c, dtype):
        """Rows whose point arguments lie strictly inside the ball after rounding to dtype. (On or
        outside the sphere the ops' values are set by their clamps, and the clamps of two correct
        implementations need not agree; there only finiteness is checked. ``project`` keeps them.)"""
        if self.spec.name == "project":
            return args
        keep = torch.ones(args[0].shape[0], dtype=torch.bool)
        q = torch.ones(args[0].shape[0], dtype=torch.float64)
        for kind, a in zip(self.spec.kinds, args):
            if kind == "point":
                keep &= a.to(dtype).double().norm(dim=-1) * math.sqrt(c) < 1
                q = q * (1 - c * a.to(dtype).double().pow(2).sum(-1)).abs()
        if self.spec.name == "dist2plane" and dtype != torch.float64:
            # x and p both so near the sphere that 1 - c|(-p) (+) x|^2 is below the compute dtype's
            # resolution: hypops.reference is no oracle there (it shares the cancellation); that regime
            # has its own accuracy test against mpmath (test_dist2plane.py::test_near_boundary_pairs_*).
            keep &= torch.finfo(compute_dtype(dtype)).eps / q.clamp_min(1e-300) <= 1e-2
        return [a[keep] for a in args]

    def test_forward_boundary_vs_reference(self, backend, dtype):
        for i, c in enumerate(C_VALUES):
            args = self.inside_rows(self.extremes(c, seed=i, dtype=dtype), c, dtype)
            self.check_forward(args, c, backend, dtype, boundary=True, msg=f"{self.spec.name} boundary c={c}")

    def test_forward_wide_rows(self, backend, dtype):
        # D = 37 and D = 1 exercise the vectorised loops' tails and the degenerate 1-D ball.
        for d in (1, 37):
            self.check_forward(
                self.interior(1.0, seed=d, d=d), 1.0, backend, dtype, msg=f"{self.spec.name} D={d}"
            )

    def test_backward_wide_rows(self, backend, dtype):
        # The default D = 5 is all tail for 8 float lanes (float32, float16, bfloat16) (cpu/rows.h: row_reductions): D = 37 runs the
        # backward's reductions in lanes plus a tail, against the reference (test_simd_kernels compares
        # kernel sets that share those reductions, so it cannot catch a wrong one).
        self.check_backward(self.interior(1.0, seed=37, d=37), 1.0, backend, dtype, msg=f"{self.spec.name} D=37")

    def test_forward_many_rows(self, backend):
        # Enough rows for the parallel loops to split the work across threads.
        args = self.interior(0.5, seed=7, n=4500, d=8)  # 2 tasks of at::parallel_for's 32K-element grain
        self.check_forward(args, 0.5, backend, torch.float64, msg=self.spec.name)
        self.check_backward(args, 0.5, backend, torch.float64, msg=self.spec.name)

    def test_backward_vs_reference(self, backend, dtype):
        for i, c in enumerate(C_VALUES):
            self.check_backward(
                self.interior(c, seed=10 + i), c, backend, dtype, msg=f"{self.spec.name} c={c}"
            )

    def test_backward_boundary_float64(self, backend):
        # Gradients near the boundary are ill-conditioned but well defined; in float64 they must still
        # agree with the reference's autograd (outside-the-ball rows are only checked for finiteness).
        spec = self.spec
        for i, c in enumerate(C_VALUES):
            args = self.extremes(c, seed=20 + i)
            keep = torch.ones(args[0].shape[0], dtype=torch.bool)
            for kind, a in zip(spec.kinds, args):
                if kind == "point":
                    keep &= a.norm(dim=-1) * math.sqrt(c) < 1
            if spec.projects:
                # Rows whose result lies on the projection sphere up to rounding are knife-edges (the
                # Jacobian jumps there; which side a backend lands on is rounding): leave them out.
                raw = reference_call(spec.name, args, c, torch.float64, **spec.kwargs)
                n = raw.norm(dim=-1) * math.sqrt(c)
                keep &= (n - (1 - PROJ_EPS[torch.float64])).abs() > 1e-9
            self.check_backward(
                [a[keep] for a in args],
                c,
                backend,
                torch.float64,
                boundary=True,
                msg=f"{spec.name} boundary c={c}",
            )

    def test_finite_at_extremes(self, backend, dtype):
        """Zero vectors, points at the clip radius and outside the ball, tangent norms up to 1e6:
        finite outputs and finite gradients (c's included)."""
        for i, c in enumerate(C_VALUES):
            args = leafs(cast(self.extremes(c, seed=30 + i, dtype=dtype), dtype))
            ct = torch.tensor(c, dtype=compute_dtype(dtype), requires_grad=True)
            out = self.spec.call(args, ct, backend)
            msg = f"{self.spec.name} extremes c={c} {dtype}"
            assert_finite(out, msg)
            if self.spec.projects:
                assert_strictly_inside(out, c, msg=msg)
            out.double().sum().backward()
            for j, a in enumerate(args):
                assert_finite(a.grad, f"{msg}: grad of arg {j}")
            assert_finite(ct.grad, f"{msg}: grad of c")

    def test_gradcheck(self, backend):
        spec = self.spec
        for i, c in enumerate((0.1, 1.0, 10.0)):
            args = leafs(self.interior(c, seed=40 + i, n=3, d=3, small=True))
            ct = torch.tensor(c, dtype=torch.float64, requires_grad=True)

            def f(*xs):
                return spec.call(list(xs[:-1]), xs[-1], backend)

            assert torch.autograd.gradcheck(f, (*args, ct), eps=1e-6, atol=1e-5, rtol=1e-4)

    def test_c_tensor_equals_float(self, backend, dtype):
        args = cast(self.interior(0.3, seed=50), dtype)
        a = self.spec.call(args, 0.3, backend)
        b = self.spec.call(args, torch.tensor(0.3, dtype=torch.float64), backend)
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    def test_dim_argument(self, backend, dtype):
        """dim=0 and dim=1 give the dim=-1 result moved, forward and backward."""
        if not self.spec.has_dim:
            pytest.skip("op has no dim argument")
        spec = self.spec
        base = self.interior(0.7, seed=60, n=12)
        for dim in (0, 1):
            # [12, D] -> [3, 4, D] -> move the coordinate dim to `dim`
            args = [a.reshape(3, 4, self.D).movedim(-1, dim).to(dtype) for a in base]
            out = spec.call(args, 0.7, backend, dim=dim)
            want = spec.call([a.reshape(3, 4, self.D).to(dtype) for a in base], 0.7, backend, dim=-1)
            if spec.vector:
                want = want.movedim(-1, dim)
            assert out.shape == want.shape, (dim, out.shape, want.shape)
            torch.testing.assert_close(out, want, msg=f"dim={dim}", **TOL[dtype])
            self.check_forward([a.double() for a in args], 0.7, backend, dtype, dim=dim, msg=f"dim={dim}")
            if dtype in (torch.float32, torch.float64):
                self.check_backward(
                    [a.double() for a in args], 0.7, backend, dtype, dim=dim, msg=f"dim={dim}"
                )

    def test_noncontiguous_inputs(self, backend, dtype):
        """Transposed, strided and expanded (stride-0) inputs give the contiguous result."""
        spec = self.spec
        base = [a.to(dtype) for a in self.interior(0.7, seed=70, n=12)]
        want = spec.call(base, 0.7, backend)
        variants = {
            "transposed": [a.t().contiguous().t() for a in base],
            "strided": [torch.stack([a, torch.full_like(a, 7.0)], dim=1)[:, 0] for a in base],
            "column-strided": [torch.stack([a, torch.full_like(a, 7.0)], dim=-1)[..., 0] for a in base],
        }
        for name, args in variants.items():
            assert not all(a.is_contiguous() for a in args), name
            out = spec.call(args, 0.7, backend)
            # equal up to the summation order of the reductions (the tolerance table)
            torch.testing.assert_close(out, want, msg=name, **TOL[dtype])
        # One row broadcast to every row through a stride-0 view.
        row = [a[3:4] for a in base]
        exp = [r.expand(5, -1) for r in row]
        out = spec.call(exp, 0.7, backend)
        one = spec.call(row, 0.7, backend)
        torch.testing.assert_close(out, one.expand_as(out), msg="expanded", **TOL[dtype])
        if dtype in (torch.float32, torch.float64):
            args = leafs([a.double() for a in self.interior(0.7, seed=71, n=12)])
            argsT = [a.t().contiguous().t() for a in args]  # differentiable views
            self.check_backward([a.detach() for a in argsT], 0.7, backend, torch.float64, msg="transposed")

    def test_broadcasting(self, backend, dtype):
        """x [4, 1, D] against y [1, 3, D] (and a third argument [3, D]): output [4, 3, ...], gradients
        reduced to each input's shape."""
        spec = self.spec
        if len(spec.kinds) < 2:
            pytest.skip("unary op")
        shapes = [(4, 1, self.D), (1, 3, self.D), (3, self.D)][: len(spec.kinds)]
        base = self.interior(0.4, seed=80, n=12)
        args = [a[: math.prod(s[:-1])].reshape(s) for a, s in zip(base, shapes)]
        out = self.check_forward(args, 0.4, backend, dtype, msg="broadcast")
        assert out.shape[:2] == (4, 3)
        full = [a.to(dtype).expand(4, 3, self.D) for a in args]
        torch.testing.assert_close(out, spec.call(full, 0.4, backend), **TOL[dtype])
        if dtype in (torch.float32, torch.float64):
            self.check_backward(args, 0.4, backend, dtype, msg="broadcast")

    def test_opcheck_native(self):
        """torch.library.opcheck on torch.ops.hypops.<op> (schema, autograd registration, fake tensor,
        AOT dispatch with dynamic shapes) and on <op>_backward, float64 CPU inputs."""
        spec = self.spec
        skip_unless_serves("native", spec.name)
        if not hasattr(torch.ops.hypops, spec.name):
            pytest.skip(f"{spec.name} is served natively without its own torch.ops.hypops op")
        op = getattr(torch.ops.hypops, spec.name).default
        bwd = getattr(torch.ops.hypops, f"{spec.name}_backward").default
        flags = (
            tuple(spec.kwargs.get(k, d) for k, d in (("signed", True), ("scaled", False)))
            if spec.name in ("dist2plane", "gyroplane_bank")
            else ()
        )
        shape_sets = [None]
        if len(spec.kinds) > 1 and spec.name != "gyroplane_bank":
            shape_sets.append([(4, 1, 3), (1, 3, 3), (3, 3)][: len(spec.kinds)])
        for shapes in shape_sets:
            args = self.interior(0.6, seed=90, n=4, d=3, small=True)
            if shapes is not None:
                args = [
                    a.flatten()[: math.prod(s)].reshape(s)
                    for a, s in zip(self.interior(0.6, seed=91, n=12, d=3, small=True), shapes)
                ]
            args = leafs(args)
            c = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
            torch.library.opcheck(op, (*args, c, *flags))
            with torch.no_grad():
                out = op(*args, c, *flags)
            grad = torch.randn(out.shape, dtype=torch.float64, generator=gen(92))
            torch.library.opcheck(bwd, (grad, *[a.detach() for a in args], c.detach(), *flags))
