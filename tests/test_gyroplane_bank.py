"""hypops.gyroplane_bank (every backend x dtype): x [..., D], p and a [P, D] -> [..., P]. The shared
checks of tests/hyptest.py (with x of N rows and a bank of P planes) plus the bank's own."""

import pytest
import torch
from hyptest import (
    DTYPES,
    HALF_DTYPES,
    RADII,
    TOL,
    OpSpec,
    OpTests,
    assert_rows_close,
    ball_points,
    extreme_args,
    finite_rows,
    gen,
    points_at,
    reference_call,
    sample,
    vectors_at,
)

import hypops

OP = "gyroplane_bank"
P = 6


class _BankTests(OpTests):
    def interior(self, c, seed=0, n=None, d=None, small=False):
        g = gen(seed)
        n, d = n or self.N, d or self.D
        planes = 3 if small else P
        return [
            sample("point", n, d, c, g, small=small),
            sample("point", planes, d, c, g, small=small),
            sample("normal", planes, d, c, g, small=small),
        ]

    def extremes(self, c, seed=1, d=None, dtype=torch.float64):
        d = d or self.D
        g = gen(seed)
        x = finite_rows([points_at(RADII, d, c, g)], dtype)[0]
        p, a = extreme_args(("point", "normal"), d, c, g)
        p, a = finite_rows([p, a], dtype)
        if dtype in HALF_DTYPES:
            return self.representable_rows([x, p, a], c, dtype)
        return [x, p, a]

    def inside_rows(self, args, c, dtype):
        x, p, a = args
        frac = lambda t: t.to(dtype).double().norm(dim=-1) * c**0.5  # noqa: E731
        planes = frac(p) < (1 if dtype == torch.float64 else 0.95)
        # (below float64, planes whose base point is at 0.999+ of the radius meet boundary points x in
        # the regime where 1 - c|(-p) (+) x|^2 cancels; see test_dist2plane.py::test_near_boundary_pairs_*)
        return [x[frac(x) < 1], p[planes], a[planes]]

    def representable_rows(self, args, c, dtype):
        """Points and planes whose exact values and gradients fit the dtype (see OpTests)."""
        big = torch.finfo(dtype).max / 8
        x, p, a = args
        # first the planes (a scaled plane with |a| = 1e3 overflows for every point), then the points
        for step in ("planes", "points", "planes", "points"):
            x64, p64, a64 = (t.to(dtype).double().requires_grad_(True) for t in (x, p, a))
            out = self.spec.ref([x64, p64, a64], c, dtype)
            out.sum().backward()
            small = out.abs() < big
            if step == "planes":
                keep = small.all(0) & (p64.grad.abs().amax(-1) < big) & (a64.grad.abs().amax(-1) < big)
                p, a = p[keep], a[keep]
            else:
                x = x[small.all(1) & (x64.grad.abs().amax(-1) < big)]
        assert x.shape[0] >= 3 and p.shape[0] >= 3, "too few representable extreme rows left"
        return [x, p, a]

    # The float64 boundary-gradient check of OpTests filters rows of every argument alike; the bank's
    # arguments have different row counts, so it uses inside_rows instead.
    def test_backward_boundary_float64(self, backend):
        for i, c in enumerate((1e-3, 1.0, 10.0)):
            args = self.inside_rows(self.extremes(c, seed=20 + i), c, torch.float64)
            self.check_backward(args, c, backend, torch.float64, boundary=True, msg=f"bank boundary c={c}")

    def test_broadcasting(self, backend, dtype):
        """Leading dimensions of x: [2, 3, 4, D] -> [2, 3, 4, P], gradients in x's shape."""
        x, p, a = self.interior(0.4, seed=80, n=24)
        x = x.reshape(2, 3, 4, self.D)
        out = self.check_forward([x, p, a], 0.4, backend, dtype, msg="leading dims")
        assert out.shape == (2, 3, 4, P)
        if dtype in (torch.float32, torch.float64):
            self.check_backward([x, p, a], 0.4, backend, dtype, msg="leading dims")

    def out_magnitude_rows(self, out, w, i, dim=-1):
        m = (out.detach().double() * w).abs()
        return m.sum(1) if i == 0 else m.sum(0)

    def formula_slack(self, args, c, dim=-1, arg=None):
        # x [N, D] against every plane [P, D]: per output [N, P]; a gradient row of x (of p, a) sums
        # over the planes (the points), so it takes the worst of its row (column).
        x, p = args[0].detach().double(), args[1].detach().double()
        qx = (1 - c * x.pow(2).sum(-1)).abs().clamp_min(1e-300)
        qp = (1 - c * p.pow(2).sum(-1)).abs().clamp_min(1e-300)
        s = 8 * torch.finfo(torch.float64).eps / (qx[:, None] * qp[None, :])
        if arg is None:
            return s
        return s.amax(1) if arg == 0 else s.amax(0)


class TestGyroplaneBankSigned(_BankTests):
    spec = OpSpec(
        "gyroplane_bank", ("point", "point", "normal"), dict(signed=True, scaled=False), has_dim=False
    )


class TestGyroplaneBankUnsignedScaled(_BankTests):
    spec = OpSpec(
        "gyroplane_bank", ("point", "point", "normal"), dict(signed=False, scaled=True), has_dim=False
    )


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("scaled", [False, True])
def test_bank_equals_dist2plane_per_plane(backend, dtype, signed, scaled):
    """out[n, k] = dist2plane(x[n], p[k], a[k]) (the bank's definition), default signed=True."""
    g = gen(1)
    x = ball_points(10, 4, 0.5, g).to(dtype)
    p = ball_points(5, 4, 0.5, g, zero_rows=0).to(dtype)
    a = sample("normal", 5, 4, 0.5, g).to(dtype)
    got = hypops.gyroplane_bank(x, p, a, c=0.5, signed=signed, scaled=scaled, backend=backend)
    assert got.shape == (10, 5) and got.dtype == dtype
    want = hypops.dist2plane(x[:, None], p, a, c=0.5, signed=signed, scaled=scaled, backend="torch")
    assert_rows_close(
        got,
        want,
        vector=False,
        msg="bank vs dist2plane",
        rtol=TOL[dtype]["rtol"] * 4,
        atol=TOL[dtype]["atol"] * 4,
    )
    if not scaled:
        default = hypops.gyroplane_bank(x, p, a, c=0.5, backend=backend)
        if signed:
            torch.testing.assert_close(default, got, rtol=0, atol=0)


def test_single_plane_and_single_point(backend):
    g = gen(2)
    x = ball_points(1, 3, 1.0, g, zero_rows=0)
    p = ball_points(1, 3, 1.0, g, zero_rows=0)
    a = vectors_at([1.0], 3, g)
    out = hypops.gyroplane_bank(x, p, a, backend=backend)
    assert out.shape == (1, 1)
    torch.testing.assert_close(
        out[0, 0], reference_call("dist2plane", [x[0], p[0], a[0]], 1.0, torch.float64, signed=True)
    )
    # a 1-D x (a single point) gives [P]
    out1 = hypops.gyroplane_bank(x[0], p, a, backend=backend)
    assert out1.shape == (1,)


def test_point_near_a_base_point(backend, dtype):
    """The native kernel forms |x - p|^2 from GEMMs; near x = p the value must still be ~0 (absolute error
    at the float eps level, as its header promises)."""
    g = gen(3)
    p = ball_points(4, 8, 1.0, g, zero_rows=0, max_frac=0.9).to(dtype)
    a = sample("normal", 4, 8, 1.0, g).to(dtype)
    out = hypops.gyroplane_bank(p, p, a, backend=backend)
    diag = out.diagonal().double().abs()
    assert (diag <= 64 * torch.finfo(dtype).eps).all(), diag


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bank_shape_errors(dtype):
    x = torch.zeros(3, 4, dtype=dtype)
    with pytest.raises(ValueError, match="p and a"):
        hypops.gyroplane_bank(x, torch.zeros(2, 4, dtype=dtype), torch.zeros(3, 4, dtype=dtype))
    with pytest.raises(ValueError, match="p and a"):
        hypops.gyroplane_bank(x, torch.zeros(2, 1, 4, dtype=dtype), torch.zeros(2, 1, 4, dtype=dtype))


@pytest.mark.parametrize(
    "dtype,rtol", [(torch.float32, 1e-2), (torch.float64, 1e-8)], ids=["float32", "float64"]
)
def test_near_boundary_pairs_accuracy(backend, dtype, rtol):
    """The bank shares dist2plane's formula, and its near-boundary weakness (see
    test_dist2plane.py::test_near_boundary_pairs_accuracy): points and planes' base points both within
    1e-3 of the sphere. Oracle: 60-digit mpmath on the same rounded inputs."""
    from hyptest import dist2plane_mp

    c = 1.0
    g = gen(12)
    fr = [0.999, 1 - 1e-5] if dtype == torch.float32 else [1 - 1e-5, 1 - 1e-6]
    x = points_at(torch.tensor(fr * 4, dtype=torch.float64), 4, c, g).to(dtype)
    p = points_at(torch.tensor(fr[::-1] * 2, dtype=torch.float64), 4, c, g).to(dtype)
    a = sample("normal", 4, 4, c, g).to(dtype)
    got = hypops.gyroplane_bank(x, p, a, c=c, backend=backend).double()
    X, P, A = (
        t.reshape(-1, 4) for t in (x[:, None].expand(-1, 4, -1), p.expand(8, -1, -1), a.expand(8, -1, -1))
    )
    want = dist2plane_mp(X, P, A, c, signed=True).reshape(8, 4)
    rel = (got - want).abs() / want.abs()
    assert rel.max().item() <= rtol, f"max relative error {rel.max().item():.3g}"
