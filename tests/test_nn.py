"""hypops.nn: Gyroplane, GyroplaneConv3d, ExpMap0, LogMap0 (and the shared Curvature). The layers have no
math of their own, so the checks are: the parameterisation (what (p, a) a module hands the functional
op), shapes, gradients to every parameter, trainability with plain Adam, the initialisation statistics,
the pvae-compatible option against the published formula, argument errors, and torch.compile."""

import math

import pytest
import torch
import hyptest
from hyptest import ball_points, gen, skip_unless_serves

import hypops
from hypops import reference as ref
from hypops.nn import Curvature, ExpMap0, Gyroplane, GyroplaneConv3d, LogMap0

OP = ("gyroplane_bank", "expmap0", "logmap0")
CONV_OPS = ("gyroplane_conv3d", "expmap0")


def _grid(b, d, size, c, seed, max_frac=0.8):
    """[b, d, *size] float64 grid of ball points (channels first)."""
    n = b * math.prod(size)
    x = ball_points(n, d, c, gen(seed), max_frac=max_frac)
    return x.reshape(b, *size, d).movedim(-1, 1).contiguous()


# --- import, shapes, repr ------------------------------------------------------------------------------
def test_nn_is_reachable_from_the_top_level_package():
    assert hypops.nn.Gyroplane is Gyroplane and hypops.nn.GyroplaneConv3d is GyroplaneConv3d
    assert hypops.nn.ExpMap0 is ExpMap0 and hypops.nn.LogMap0 is LogMap0


def test_gyroplane_shapes(backend):
    m = Gyroplane(3, 5, backend=backend)
    assert m(torch.zeros(2, 4, 3)).shape == (2, 4, 5)
    assert m(torch.zeros(3)).shape == (5,)
    assert m.point_tangent.shape == m.normal.shape == (5, 3)
    pv = Gyroplane(3, 5, parameterization="pvae", backend=backend)
    assert pv._weight.shape == (5, 3) and pv._bias.shape == (5, 1)
    assert pv(torch.zeros(7, 3)).shape == (7, 5)


@pytest.mark.parametrize(
    "kernel_size,stride,padding,dilation,size",
    [
        (3, 1, 1, 1, (4, 5, 3)),
        ((2, 1, 3), (2, 1, 1), (0, 1, 2), (1, 1, 2), (5, 4, 6)),
        (1, 1, 0, 1, (2, 2, 2)),
    ],
)
@pytest.mark.parametrize("tied", [False, True])
def test_conv_shapes_follow_conv3d(kernel_size, stride, padding, dilation, size, tied):
    m = GyroplaneConv3d(2, 4, kernel_size, stride=stride, padding=padding, dilation=dilation, tied=tied)
    want = torch.nn.Conv3d(2, 4, kernel_size, stride=stride, padding=padding, dilation=dilation)(
        torch.zeros(3, 2, *size)
    ).shape
    assert m(torch.zeros(3, 2, *size)).shape == want
    k = m.kernel_size
    assert m.point_tangent.shape == ((4, 2) if tied else (4, 2, *k))


def test_extra_repr_names_the_configuration():
    r = repr(GyroplaneConv3d(2, 4, 3, padding=1, tied=True, bias=False, c=0.5, learnable_c=True))
    for s in ("in_dim=2", "out_channels=4", "kernel_size=(3, 3, 3)", "padding=(1, 1, 1)", "tied=True",
              "bias=False", "c=0.5", "learnable=True", "parameterization='expmap0'"):
        assert s in r, (s, r)
    r = repr(Gyroplane(3, 7, c=2.0, mlr_logits=True))
    for s in ("in_dim=3", "out_features=7", "mlr_logits=True", "c=2", "learnable=False"):
        assert s in r, (s, r)
    assert "dim=0" in repr(ExpMap0(dim=0)) and "backend='torch'" in repr(LogMap0(backend="torch"))


# --- the parameterisation: what the module hands the functional ops ------------------------------------
@pytest.mark.parametrize("c", [1.0, 0.3])
@pytest.mark.parametrize("mlr_logits", [False, True])
def test_gyroplane_equals_functional_bank_on_effective_planes(backend, c, mlr_logits):
    torch.manual_seed(0)
    m = Gyroplane(4, 6, c=c, mlr_logits=mlr_logits, backend=backend).double()
    with torch.no_grad():  # planes spread over the ball, not just the small-norm initial ones
        m.point_tangent.mul_(3.0)
    x = ball_points(20, 4, c, gen(1)).reshape(4, 5, 4)
    p, a = m.effective_planes()
    torch.testing.assert_close(p, ref.expmap0(m.point_tangent, c=c), rtol=1e-12, atol=1e-12)
    assert a is m.normal
    want = ref.gyroplane_bank(x, p, a, c=c, signed=True)
    if mlr_logits:  # Ganea 2018: lambda_p |a| d
        want = want * (2 / (1 - c * p.pow(2).sum(-1))) * a.norm(dim=-1)
    torch.testing.assert_close(m(x), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("c", [1.0, 0.5])
def test_conv_equals_functional_op_on_effective_planes(backend, tied, c):
    skip_unless_serves(backend, *CONV_OPS)
    torch.manual_seed(1)
    m = GyroplaneConv3d(3, 4, (3, 2, 3), stride=(1, 2, 1), padding=1, dilation=(2, 1, 1), tied=tied, c=c,
                        backend=backend).double()
    with torch.no_grad():
        m.point_tangent.mul_(3.0)
        m.bias.normal_()
    x = _grid(2, 3, (5, 4, 4), c, seed=2)
    p, a = m.effective_planes()
    torch.testing.assert_close(p, ref.expmap0(m.point_tangent, c=c, dim=1), rtol=1e-12, atol=1e-12)
    want = ref.gyroplane_conv3d(x, p, a, c=c, bias=m.bias, stride=(1, 2, 1), padding=1, dilation=(2, 1, 1),
                                kernel_size=(3, 2, 3))
    torch.testing.assert_close(m(x), want, rtol=1e-10, atol=1e-10)


def test_tied_and_per_offset_modules_agree_when_the_offsets_share_one_plane():
    torch.manual_seed(2)
    k = (3, 1, 2)
    tied = GyroplaneConv3d(2, 3, k, padding=(1, 0, 1), tied=True).double()
    full = GyroplaneConv3d(2, 3, k, padding=(1, 0, 1), tied=False).double()
    with torch.no_grad():
        tied.bias.normal_()
        full.bias.copy_(tied.bias)
        full.point_tangent.copy_(tied.point_tangent[..., None, None, None].expand(-1, -1, *k))
        full.normal.copy_(tied.normal[..., None, None, None].expand(-1, -1, *k))
    x = _grid(2, 2, (4, 3, 5), 1.0, seed=3)
    torch.testing.assert_close(full(x), tied(x), rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # and per-offset weights really are per offset
        full.normal[:, :, 0].neg_()
    assert not torch.allclose(full(x), tied(x), atol=1e-3)


def test_maps_equal_the_functional_ops(backend):
    u = torch.randn(5, 3, 2, dtype=torch.float64, generator=gen(4))
    for dim in (-1, 1):
        e = ExpMap0(c=0.7, dim=dim, backend=backend).double()
        y = e(u)
        torch.testing.assert_close(y, ref.expmap0(u, c=0.7, dim=dim), rtol=1e-12, atol=1e-12)
        lg = LogMap0(c=0.7, dim=dim, backend=backend).double()
        torch.testing.assert_close(lg(y), ref.logmap0(y, c=0.7, dim=dim), rtol=1e-12, atol=1e-12)


# --- curvature -------------------------------------------------------------------------------------------
def test_learnable_curvature_is_positive_and_starts_at_c():
    cur = Curvature(0.25, learnable=True)
    assert [n for n, _ in cur.named_parameters()] == ["log_c"]
    torch.testing.assert_close(cur(), torch.tensor(0.25))
    with torch.no_grad():
        cur.log_c.fill_(-50.0)  # any value of the free parameter is a valid curvature
    assert cur() > 0
    fixed = Curvature(torch.tensor(2.0))
    assert list(fixed.parameters()) == [] and "c" in fixed.state_dict()
    assert fixed.double()().dtype == torch.float64


def test_a_shared_curvature_is_one_parameter():
    cur = Curvature(1.0, learnable=True)
    model = torch.nn.Sequential(ExpMap0(c=cur), Gyroplane(3, 2, c=cur), torch.nn.Identity())
    assert sum(1 for n, _ in model.named_parameters() if n.endswith("log_c")) == 1
    model(torch.randn(4, 3)).sum().backward()
    assert cur.log_c.grad is not None and cur.log_c.grad != 0


def test_state_dict_round_trip_keeps_the_planes_and_a_learned_c():
    torch.manual_seed(5)
    src = torch.nn.Sequential(Gyroplane(3, 4, c=0.7, learnable_c=True), torch.nn.Identity())
    with torch.no_grad():
        src[0].curvature.log_c.add_(0.3)
    dst = torch.nn.Sequential(Gyroplane(3, 4, c=0.7, learnable_c=True), torch.nn.Identity())
    x = ball_points(5, 3, 0.5, gen(23)).float()
    assert not torch.allclose(dst(x), src(x))
    dst.load_state_dict(src.state_dict())
    torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)
    assert set(src.state_dict()) == {"0.point_tangent", "0.normal", "0.curvature.log_c"}
    fixed = GyroplaneConv3d(2, 3, 2, c=0.7)
    assert set(fixed.state_dict()) == {"point_tangent", "normal", "bias", "curvature.c"}


# --- gradients -------------------------------------------------------------------------------------------
def _assert_every_parameter_gets_a_gradient(model, out):
    (out * torch.linspace(-1, 2, out.numel()).reshape(out.shape).to(out.dtype)).sum().backward()
    names = [n for n, _ in model.named_parameters()]
    assert names
    for n, prm in model.named_parameters():
        assert prm.grad is not None, n
        assert torch.isfinite(prm.grad).all(), n
        assert prm.grad.abs().sum() > 0, n


@pytest.mark.parametrize("parameterization,exact", [("expmap0", False), ("pvae", False), ("pvae", True)])
def test_gradients_reach_every_gyroplane_parameter(backend, parameterization, exact):
    torch.manual_seed(3)
    m = Gyroplane(3, 4, c=0.8, learnable_c=True, parameterization=parameterization, pvae_exact=exact,
                  backend=backend)
    x = ball_points(10, 3, 0.8, gen(5)).float()
    _assert_every_parameter_gets_a_gradient(m, m(x))
    assert {n for n, _ in m.named_parameters()} >= {"curvature.log_c"}


def test_gradients_reach_mlr_logit_parameters(backend):
    torch.manual_seed(3)
    m = Gyroplane(3, 4, learnable_c=True, mlr_logits=True, backend=backend)
    _assert_every_parameter_gets_a_gradient(m, m(ball_points(10, 3, 1.0, gen(6)).float()))


@pytest.mark.parametrize("tied,parameterization", [(False, "expmap0"), (True, "expmap0"), (True, "pvae")])
def test_gradients_reach_every_conv_parameter(backend, tied, parameterization):
    skip_unless_serves(backend, *CONV_OPS)
    torch.manual_seed(4)
    m = GyroplaneConv3d(2, 3, 2, padding=1, tied=tied, learnable_c=True, parameterization=parameterization,
                        backend=backend)
    _assert_every_parameter_gets_a_gradient(m, m(_grid(2, 2, (3, 3, 2), 1.0, seed=7).float()))


def test_gradients_reach_learnable_c_of_the_maps(backend):
    for cls in (ExpMap0, LogMap0):
        m = cls(c=0.5, learnable_c=True, backend=backend)
        _assert_every_parameter_gets_a_gradient(m, m(0.5 * ball_points(6, 3, 0.5, gen(8)).float()))


# --- training with plain Adam ----------------------------------------------------------------------------
def test_plain_adam_separates_two_clusters():
    """Two clusters of ball points on either side of a plane that does not pass through the origin; a
    one-plane Gyroplane (learnable c) fitted by torch.optim.Adam, with no projection step."""
    g = gen(9)
    n = 64
    centres = torch.tensor([[0.9, 0.5], [0.1, -0.6]], dtype=torch.float64)
    labels = torch.arange(2).repeat_interleave(n)
    noise = 0.25 * torch.randn(2 * n, 2, dtype=torch.float64, generator=g)
    x = hypops.expmap0(centres[labels] + noise).float()
    y = labels.float()
    torch.manual_seed(10)
    m = Gyroplane(2, 1, learnable_c=True)
    with torch.no_grad():  # start with the normal orthogonal to the separating direction (accuracy ~50%)
        m.normal.copy_(torch.tensor([[1.1, -0.8]]))
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    first = None
    for _ in range(40):
        opt.zero_grad()
        loss = loss_fn(4 * m(x).squeeze(-1), y)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    final = loss_fn(4 * m(x).squeeze(-1), y).item()
    acc = ((m(x).squeeze(-1) > 0).float() == y).float().mean().item()
    assert first > 1.0 and final < 0.2 * first, (first, final)
    assert acc > 0.95
    assert torch.isfinite(m.curvature.log_c) and m.curvature.log_c.item() != 0.0  # c was trained too


# --- initialisation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("in_dim", [2, 16, 128])
def test_initial_outputs_are_centred_and_spread_with_no_dead_planes(in_dim):
    """Inputs: expmap0 of N(0, I/in_dim) tangent vectors (|v| ~ 1, a cloud around the origin). Every plane
    must cut the cloud (at most 1% of the units with >= 95% of the inputs on one side), each unit centred
    relative to its spread, outputs with O(1) spread. (With the point tangents twice as long, 2-18% of the
    units fail the first check.)"""
    torch.manual_seed(11)
    m = Gyroplane(in_dim, 256)
    v = torch.randn(4096, in_dim, generator=gen(12)) / math.sqrt(in_dim)
    with torch.no_grad():
        y = m(hypops.expmap0(v))
    std, mean = y.std().item(), y.mean().item()
    assert 0.25 < std < 3.0, std
    assert abs(mean) < 0.15 * std, (mean, std)
    positive = (y > 0).float().mean(0)
    dead = ((positive < 0.05) | (positive > 0.95)).float().mean().item()
    assert dead <= 0.01, dead
    assert (y.mean(0).abs() / y.std(0)).median() < 0.5
    # planes differ from each other: units are about as correlated as random directions are (E|cos| of two
    # random directions in R^d is ~ sqrt(2 / (pi d)))
    corr = torch.corrcoef(y.T)
    off = corr[~torch.eye(256, dtype=torch.bool)]
    assert off.abs().mean() < 1.5 * math.sqrt(2 / (math.pi * in_dim))
    # the documented scales: |u| ~ 0.25 and |a| ~ 1 whatever in_dim is
    assert 0.18 < m.point_tangent.norm(dim=-1).mean() < 0.28
    assert 0.75 < m.normal.norm(dim=-1).mean() < 1.1
    torch.testing.assert_close(m.curvature(), torch.tensor(1.0, dtype=torch.float64))


def test_pvae_initialisation_follows_pvae():
    torch.manual_seed(13)
    m = Gyroplane(50, 4000, parameterization="pvae")
    torch.testing.assert_close(m._weight.std().item(), math.sqrt(1 / 3) / math.sqrt(50), rtol=0.03, atol=0)
    bound = 4 / math.sqrt(50)
    assert m._bias.abs().max() <= bound and m._bias.abs().max() > 0.95 * bound


# --- the pvae-compatible option against the published formula -------------------------------------------
def _published_geodesic_layer(z, W, b, c, eps=1e-5):
    """pvae's GeodesicLayer (over_param=False) as executed, written out from paper-method.md §1 and §3.1:
    P = proj(expmap0(b W)), A = transp0(P, W) = W max(1 - c|P|^2, 1e-15), then
    normdist2plane(z, a=P, p=A, signed=True, norm=False) with geoopt's projection eps (1e-5 for float64,
    4e-3 for float32) and log-form asinh."""
    sc = math.sqrt(c)

    def nrm(t):
        return t.norm(dim=-1, keepdim=True).clamp_min(1e-15)

    def proj(t):
        maxnorm = (1 - eps) / sc
        return torch.where(nrm(t) > maxnorm, t / nrm(t) * maxnorm, t)

    def madd(x, y):
        xy = (x * y).sum(-1, keepdim=True)
        x2, y2 = x.pow(2).sum(-1, keepdim=True), y.pow(2).sum(-1, keepdim=True)
        den = (1 + 2 * c * xy + c**2 * x2 * y2).clamp_min(1e-15)
        return ((1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y) / den

    u = b * W
    P = proj(torch.tanh((sc * nrm(u)).clamp(-15, 15)) * u / (sc * nrm(u)))
    A = W * (1 - c * P.pow(2).sum(-1, keepdim=True)).clamp_min(1e-15)
    zz = z.unsqueeze(-2).expand(*z.shape[:-1], W.shape[0], W.shape[1])
    diff = proj(madd(-A, zz))
    n2 = diff.pow(2).sum(-1).clamp_min(1e-15)
    s = (diff * P).sum(-1)
    arg = 2 * sc * s / ((1 - c * n2) * P.norm(dim=-1).clamp_min(1e-15)).clamp_min(1e-15)
    return torch.log((arg + torch.sqrt(1 + arg**2)).clamp_min(1e-15)) / sc


def _published_closed_form(z, W, b, c):
    """paper-method.md §3.1's closed form: (1/sc) asinh(2 sc sign(b) <D, W/|W|> / (1 - c|D|^2)),
    D = (-A) (+) z (projection inactive on these inputs)."""
    sc = math.sqrt(c)
    u = b * W
    un = u.norm(dim=-1, keepdim=True)
    P = torch.tanh(sc * un) * u / (sc * un)
    A = W * (1 - c * P.pow(2).sum(-1, keepdim=True))
    out = []
    for k in range(W.shape[0]):
        x, y = -A[k], z
        xy = (x * y).sum(-1, keepdim=True)
        x2, y2 = x.pow(2).sum(), y.pow(2).sum(-1, keepdim=True)
        D = ((1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y) / (1 + 2 * c * xy + c**2 * x2 * y2)
        wa = torch.sign(b[k]) * (D * W[k] / W[k].norm()).sum(-1)
        out.append(torch.asinh(2 * sc * wa / (1 - c * D.pow(2).sum(-1))) / sc)
    return torch.stack(out, -1)


@pytest.mark.parametrize("c", [1.0, 0.5])
def test_pvae_parameterisation_reproduces_the_published_layer(backend, c):
    torch.manual_seed(14)
    m = Gyroplane(3, 5, c=c, parameterization="pvae", backend=backend).double()
    z = ball_points(12, 3, c, gen(15), max_frac=0.7)
    W, b = m._weight.detach(), m._bias.detach()
    A, P = m.effective_planes()
    assert (A.norm(dim=-1) < 0.9 / math.sqrt(c)).all()  # the documented range of the equality
    got = m(z)
    want = _published_geodesic_layer(z, W, b, c)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got, _published_closed_form(z, W, b, c), rtol=1e-10, atol=1e-12)
    # the roles really are swapped: the plane through P with normal A is a different function
    assert not torch.allclose(ref.gyroplane_bank(z, P, A, c=c), got, atol=1e-3)


def test_pvae_conv_is_the_published_layer_summed_over_the_window():
    """Tied pvae conv, k = 1, no bias: the published GyroplaneConvLayer as the paper ran it (each of the
    grid's points through the GeodesicLayer independently)."""
    torch.manual_seed(16)
    m = GyroplaneConv3d(2, 7, 1, tied=True, bias=False, parameterization="pvae").double()
    x = _grid(3, 2, (2, 2, 2), 1.0, seed=17, max_frac=0.7)
    want = _published_geodesic_layer(x.movedim(1, -1), m._weight.detach(), m._bias.detach(), 1.0)
    torch.testing.assert_close(m(x), want.movedim(-1, 1), rtol=1e-10, atol=1e-12)


# inputs at the clip radius: the output's condition number there is ~ 1 / (1 - c|x|^2)^2, hence the tolerances
@pytest.mark.parametrize("dtype,eps,tol", [(torch.float64, 1e-5, 1e-6), (torch.float32, 4e-3, 2e-4)])
def test_pvae_exact_equals_the_published_layer_up_to_the_boundary(backend, dtype, eps, tol):
    """The paper's decoder shape (2 -> 300): some planes start with A outside the ball, and inputs up to the
    clip radius make the published projection of (-A) (+) x act. pvae_exact copies both; the default
    (fast) evaluation does not."""
    torch.manual_seed(0)
    m = Gyroplane(2, 300, parameterization="pvae", pvae_exact=True, backend=backend).to(dtype)
    fast = Gyroplane(2, 300, parameterization="pvae", backend=backend).to(dtype)
    fast.load_state_dict(m.state_dict())
    A, _ = m.effective_planes()
    assert (A.norm(dim=-1) >= 1).any()  # the case the option exists for is present
    fracs = [0.0, 0.3, 0.7, 0.9, 0.99, 0.995, 1 - eps]
    z = torch.cat([ball_points(40, 2, 1.0, gen(20)), hyptest.points_at(fracs * 4, 2, 1.0, gen(21))])
    z = z.to(dtype)
    W, b = m._weight.detach().double(), m._bias.detach().double()
    want = _published_geodesic_layer(z.double(), W, b, 1.0, eps)
    got = m(z)
    assert got.dtype == dtype and torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)
    assert not torch.allclose(fast(z).double(), want, rtol=1e-2, atol=1e-2)


def test_pvae_exact_conv_is_the_exact_layer_at_every_voxel():
    torch.manual_seed(1)
    conv = GyroplaneConv3d(2, 300, 1, tied=True, parameterization="pvae", pvae_exact=True).double()
    with torch.no_grad():
        conv.bias.normal_()
    lin = Gyroplane(2, 300, parameterization="pvae", pvae_exact=True).double()
    with torch.no_grad():
        lin._weight.copy_(conv._weight)
        lin._bias.copy_(conv._bias)
    x = _grid(3, 2, (2, 2, 2), 1.0, seed=22, max_frac=0.999)
    want = lin(x.movedim(1, -1)).movedim(-1, 1) + conv.bias.view(-1, 1, 1, 1)
    torch.testing.assert_close(conv(x), want, rtol=1e-12, atol=1e-12)


# --- errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Gyroplane(0, 3), "in_dim"),
        (lambda: Gyroplane(-2, 3), "in_dim"),
        (lambda: Gyroplane(2.0, 3), "in_dim"),
        (lambda: Gyroplane(2, 0), "out_features"),
        (lambda: Gyroplane(2, 3, c=0.0), "c must be positive"),
        (lambda: Gyroplane(2, 3, c=-1.0), "c must be positive"),
        (lambda: Gyroplane(2, 3, c=float("nan")), "c must be positive"),
        (lambda: Gyroplane(2, 3, c="1"), "c must be"),
        (lambda: Gyroplane(2, 3, c=torch.ones(2)), "c must be"),
        (lambda: Gyroplane(2, 3, parameterization="geoopt"), "parameterization"),
        (lambda: Gyroplane(2, 3, parameterization="pvae", mlr_logits=True), "mlr_logits"),
        (lambda: Gyroplane(2, 3, c=Curvature(), learnable_c=True), "learnable_c"),
        (lambda: GyroplaneConv3d(0, 3, 3), "in_dim"),
        (lambda: GyroplaneConv3d(2, 0, 3), "out_channels"),
        (lambda: GyroplaneConv3d(2, 3, 0), "kernel_size"),
        (lambda: GyroplaneConv3d(2, 3, (3, 0, 3)), "kernel_size"),
        (lambda: GyroplaneConv3d(2, 3, (3, 3)), "kernel_size"),
        (lambda: GyroplaneConv3d(2, 3, 3, stride=0), "stride"),
        (lambda: GyroplaneConv3d(2, 3, 3, padding=-1), "padding"),
        (lambda: GyroplaneConv3d(2, 3, 3, dilation=0), "dilation"),
        (lambda: GyroplaneConv3d(2, 3, 3, c=-0.5), "c must be positive"),
        (lambda: GyroplaneConv3d(2, 3, 3, parameterization="pvae"), "tied=True"),
        (lambda: Gyroplane(2, 3, pvae_exact=True), "pvae_exact"),
        (lambda: GyroplaneConv3d(2, 3, 1, tied=True, pvae_exact=True), "pvae_exact"),
        (
            lambda: GyroplaneConv3d(2, 3, 3, tied=True, parameterization="pvae", pvae_exact=True),
            "kernel_size=1",
        ),
        (lambda: ExpMap0(c=0), "c must be positive"),
        (lambda: LogMap0(c=-2.0), "c must be positive"),
    ],
)
def test_bad_constructor_arguments_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_wrong_input_shapes_are_named():
    with pytest.raises(ValueError, match=r"Gyroplane: input x must be \[\.\.\., in_dim=3\], got \(4, 2\)"):
        Gyroplane(3, 2)(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="Gyroplane: input x"):
        Gyroplane(3, 2)(torch.tensor(0.0))
    conv = GyroplaneConv3d(3, 2, 1)
    with pytest.raises(ValueError, match=r"in_dim=3, X, Y, Z\], got \(1, 2, 4, 4, 4\)"):
        conv(torch.zeros(1, 2, 4, 4, 4))
    with pytest.raises(ValueError, match=r"GyroplaneConv3d: input x .* got \(1, 4, 4, 4\)"):
        conv(torch.zeros(1, 4, 4, 4))


# --- torch.compile ---------------------------------------------------------------------------------------
def test_compile_fullgraph_of_a_small_model_with_gyroplane():
    skip_unless_serves("native", *OP)
    torch._dynamo.reset()
    try:
        torch.manual_seed(18)
        cur = Curvature(0.8, learnable=True)
        model = torch.nn.Sequential(
            torch.nn.Linear(5, 4), ExpMap0(c=cur), Gyroplane(4, 3, c=cur, mlr_logits=True)
        )
        x = torch.randn(6, 5, generator=gen(19))
        eager = model(x)
        eager.pow(2).sum().backward()
        g_eager = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        out = compiled(x)
        torch.testing.assert_close(out, eager, rtol=1e-6, atol=1e-6)
        out.pow(2).sum().backward()
        for (n, p), g in zip(model.named_parameters(), g_eager):
            torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6, msg=n)
        assert cur.log_c.grad != 0
    finally:
        torch._dynamo.reset()
