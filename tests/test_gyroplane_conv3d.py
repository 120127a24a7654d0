"""hypops.gyroplane_conv3d: reference semantics (SPEC §2). The unfold-based reference (and every backend
that serves the op; today only "torch") against a naive Python loop written straight from the spec, on
tiny shapes: per-offset and tied weights, stride, padding with the origin, dilation, bias."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hyptest import ball_points, gen, sample

import hypops

OP = "gyroplane_conv3d"


def _triple(v):
    return (v, v, v) if isinstance(v, int) else tuple(v)


def _d2p(x, p, a, c):
    """Signed, unscaled dist2plane of single float64 vectors, from SPEC §1 (no hypops code)."""
    mp = -p
    xy = (mp * x).sum()
    x2, y2 = mp.pow(2).sum(), x.pow(2).sum()
    w = ((1 + 2 * c * xy + c * y2) * mp + (1 - c * x2) * x) / (1 + 2 * c * xy + c**2 * x2 * y2)
    z = 2 * math.sqrt(c) * (w * a).sum() / ((1 - c * w.pow(2).sum()) * a.norm())
    return torch.asinh(z) / math.sqrt(c)


def naive_gyroplane_conv3d(x, p, a, c, bias=None, stride=1, padding=0, dilation=1, kernel_size=None):
    """y[n, o, r] = b[o] + sum_k dist2plane(x[n, :, r s + k dilation - padding], p[o, :, k], a[o, :, k]),
    out-of-range voxels being the origin."""
    B, D, *S = x.shape
    tied = p.dim() == 2
    ks = _triple(kernel_size) if tied else tuple(p.shape[2:])
    s, pad, dil = _triple(stride), _triple(padding), _triple(dilation)
    osize = [(S[i] + 2 * pad[i] - dil[i] * (ks[i] - 1) - 1) // s[i] + 1 for i in range(3)]
    C = p.shape[0]
    out = torch.zeros(B, C, *osize, dtype=torch.float64)
    origin = torch.zeros(D, dtype=torch.float64)
    for n, o in itertools.product(range(B), range(C)):
        for r in itertools.product(*(range(v) for v in osize)):
            acc = torch.zeros((), dtype=torch.float64) if bias is None else bias[o].double().clone()
            for k in itertools.product(*(range(v) for v in ks)):
                idx = [r[i] * s[i] + k[i] * dil[i] - pad[i] for i in range(3)]
                inside = all(0 <= idx[i] < S[i] for i in range(3))
                point = x[n, :, idx[0], idx[1], idx[2]].double() if inside else origin
                pk = p[o] if tied else p[o, :, k[0], k[1], k[2]]
                ak = a[o] if tied else a[o, :, k[0], k[1], k[2]]
                acc = acc + _d2p(point, pk.double(), ak.double(), c)
            out[(n, o, *r)] = acc
    return out


def _grid(B, D, S, c, seed):
    g = gen(seed)
    pts = ball_points(B * math.prod(S), D, c, g, max_frac=0.95, zero_rows=0)
    return pts.reshape(B, *S, D).movedim(-1, 1).contiguous()


def _weights(C, D, ks, c, seed, tied=False):
    g = gen(seed)
    n = C * (1 if tied else math.prod(ks))
    p = ball_points(n, D, c, g, max_frac=0.7, zero_rows=0)
    a = sample("normal", n, D, c, g)
    if tied:
        return p, a
    return (
        p.reshape(C, *ks, D).movedim(-1, 1).contiguous(),
        a.reshape(C, *ks, D).movedim(-1, 1).contiguous(),
    )


CASES = {
    "per-offset": dict(S=(4, 3, 5), ks=(2, 1, 3), kw={}),
    "per-offset-stride-pad-dil-bias": dict(
        S=(5, 4, 5), ks=(2, 2, 3), kw=dict(stride=(2, 1, 2), padding=(1, 0, 2), dilation=(1, 2, 1)), bias=True
    ),
    "tied-k3-pad1-bias": dict(S=(3, 4, 3), ks=3, tied=True, kw=dict(padding=1), bias=True),
    "tied-stride2-dil2": dict(S=(5, 5, 4), ks=(1, 2, 2), tied=True, kw=dict(stride=2, dilation=2)),
    "paper-k1-on-2x2x2": dict(S=(2, 2, 2), ks=(1, 1, 1), kw={}, bias=True),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("c", [0.5, 2.0])
def test_matches_naive_loop(backend, case, c):
    cfg = CASES[case]
    B, D, C = 2, 3, 2
    x = _grid(B, D, cfg["S"], c, seed=1)
    tied = cfg.get("tied", False)
    ks = _triple(cfg["ks"])
    p, a = _weights(C, D, ks, c, seed=2, tied=tied)
    bias = torch.tensor([0.25, -1.5], dtype=torch.float64) if cfg.get("bias") else None
    kw = dict(cfg["kw"])
    if tied:
        kw["kernel_size"] = cfg["ks"]
    want = naive_gyroplane_conv3d(x, p, a, c, bias=bias, **kw)
    got = hypops.gyroplane_conv3d(x, p, a, c=c, bias=bias, backend=backend, **kw)
    assert got.shape == want.shape, (got.shape, want.shape)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    ref = hypops.reference.gyroplane_conv3d(x, p, a, c=c, bias=bias, **kw)
    torch.testing.assert_close(ref, want, rtol=1e-10, atol=1e-10)
    # float32 in, float32 out, close to the float64 result
    got32 = hypops.gyroplane_conv3d(
        x.float(),
        p.float(),
        a.float(),
        c=c,
        bias=None if bias is None else bias.float(),
        backend=backend,
        **kw,
    )
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), want, rtol=1e-4, atol=1e-4)


def test_padding_is_the_origin(backend):
    """padding=P equals explicitly padding x with zeros (the origin, a valid ball point) and padding=0."""
    c = 1.0
    x = _grid(1, 2, (3, 3, 3), c, seed=3)
    p, a = _weights(2, 2, (3, 3, 3), c, seed=4)
    got = hypops.gyroplane_conv3d(x, p, a, c=c, padding=(1, 2, 1), backend=backend)
    xp = F.pad(x, (1, 1, 2, 2, 1, 1))
    want = hypops.gyroplane_conv3d(xp, p, a, c=c, padding=0, backend=backend)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_tied_equals_per_offset_with_repeated_planes(backend):
    c = 0.7
    x = _grid(2, 3, (4, 4, 4), c, seed=5)
    p, a = _weights(3, 3, None, c, seed=6, tied=True)
    ks = (2, 3, 2)
    pr = p[:, :, None, None, None].expand(-1, -1, *ks).contiguous()
    ar = a[:, :, None, None, None].expand(-1, -1, *ks).contiguous()
    tied = hypops.gyroplane_conv3d(x, p, a, c=c, kernel_size=ks, stride=(1, 2, 1), backend=backend)
    full = hypops.gyroplane_conv3d(x, pr, ar, c=c, stride=(1, 2, 1), backend=backend)
    torch.testing.assert_close(tied, full, rtol=1e-12, atol=1e-12)
    # kernel_size agreeing with per-offset weights is accepted
    torch.testing.assert_close(
        hypops.gyroplane_conv3d(x, pr, ar, c=c, kernel_size=ks, stride=(1, 2, 1), backend=backend), full
    )


def test_gradcheck(backend):
    """Gradients for x, p, a, c and bias (tiny shapes, float64)."""
    c = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    x = _grid(1, 2, (3, 2, 3), 0.8, seed=7).requires_grad_(True)
    p, a = (t.requires_grad_(True) for t in _weights(2, 2, (2, 1, 2), 0.8, seed=8))
    bias = torch.tensor([0.1, -0.2], dtype=torch.float64, requires_grad=True)

    def f(x, p, a, c, bias):
        return hypops.gyroplane_conv3d(x, p, a, c=c, bias=bias, padding=(1, 0, 0), backend=backend)

    assert torch.autograd.gradcheck(f, (x, p, a, c, bias), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_argument_errors(backend):
    x = torch.zeros(1, 2, 3, 3, 3)
    p, a = torch.zeros(2, 2), torch.ones(2, 2)
    with pytest.raises(ValueError, match="kernel_size"):
        hypops.gyroplane_conv3d(x, p, a, backend=backend)
    p5, a5 = torch.zeros(2, 2, 1, 1, 1), torch.ones(2, 2, 1, 1, 1)
    with pytest.raises(ValueError, match="kernel_size"):
        hypops.gyroplane_conv3d(x, p5, a5, kernel_size=3, backend=backend)
    with pytest.raises(ValueError, match="p and a"):
        hypops.gyroplane_conv3d(x, p5, torch.ones(2, 2, 1, 1, 2), backend=backend)
    with pytest.raises(ValueError, match=r"D=3.*D=2"):
        hypops.gyroplane_conv3d(torch.zeros(1, 3, 3, 3, 3), p5, a5, backend=backend)
    with pytest.raises(ValueError, match=r"\[B, D, X, Y, Z\]"):
        hypops.gyroplane_conv3d(torch.zeros(2, 3, 3, 3), p5, a5, backend=backend)
    with pytest.raises(ValueError, match="stride"):
        hypops.gyroplane_conv3d(x, p5, a5, stride=(1, 1), backend=backend)
