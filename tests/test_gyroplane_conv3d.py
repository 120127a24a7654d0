"""hypops.gyroplane_conv3d: reference semantics (SPEC §2). The unfold-based reference (and every backend
that serves the op; today only "torch") against a naive Python loop written straight from the spec, on
tiny shapes: per-offset and tied weights, stride, padding with the origin, dilation, bias."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hyptest import ball_points, gen, points_at, sample, skip_unless_serves

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


# --- every backend against the float64 reference over random geometries -------------------------------------
def _random_case(seed):
    """A random small convolution: D from 1 to 64, odd/even kernels, stride, padding, dilation, both weight
    layouts, with or without bias, C_out up to 5."""
    g = torch.Generator().manual_seed(seed)

    def ri(lo, hi):
        return int(torch.randint(lo, hi + 1, (), generator=g))

    D = [1, 2, 3, 8, 17, 64][seed % 6]
    tied = seed % 3 == 0
    ks = tuple(ri(1, 3) for _ in range(3))
    st = tuple(ri(1, 2) for _ in range(3))
    dil = tuple(ri(1, 2) for _ in range(3))
    pad = tuple(ri(0, 2) for _ in range(3))
    S = tuple(max(ri(1, 5), dil[i] * (ks[i] - 1) + 1 - 2 * pad[i]) for i in range(3))
    B, C = ri(1, 2), ri(1, 5)
    c = [0.3, 1.0, 2.5][seed % 3]
    x = _grid(B, D, S, c, seed=100 + seed)
    p, a = _weights(C, D, ks, c, seed=200 + seed, tied=tied)
    bias = torch.randn(C, dtype=torch.float64, generator=g) if seed % 2 else None
    kw = dict(stride=st, padding=pad, dilation=dil)
    if tied:
        kw["kernel_size"] = ks
    return x, p, a, c, bias, kw


@pytest.mark.parametrize("seed", range(12))
def test_random_geometries_forward_backward(backend, seed):
    """Forward and every gradient (x, p, a, c, bias) of the backend against autograd through the float64
    reference, then float32 against the float64 values."""
    x, p, a, c, bias, kw = _random_case(seed)

    def run(fn, dtype):
        leaves = [t.to(dtype).requires_grad_(True) for t in (x, p, a)]
        cc = torch.tensor(c, dtype=dtype, requires_grad=True)
        b = None if bias is None else bias.to(dtype).requires_grad_(True)
        out = fn(*leaves, c=cc, bias=b, **kw)
        w = torch.linspace(-1, 1, out.numel(), dtype=dtype).reshape(out.shape)  # a non-uniform upstream grad
        grads = torch.autograd.grad((out * w).sum(), leaves + [cc] + ([b] if b is not None else []))
        return out, grads

    want, want_g = run(hypops.reference.gyroplane_conv3d, torch.float64)
    got, got_g = run(lambda *t, **k: hypops.gyroplane_conv3d(*t, backend=backend, **k), torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    for name, g1, g0 in zip(("x", "p", "a", "c", "bias"), got_g, want_g):
        torch.testing.assert_close(g1, g0, rtol=1e-9, atol=1e-9, msg=lambda m, n=name: f"grad {n}: {m}")
    got32, got32_g = run(lambda *t, **k: hypops.gyroplane_conv3d(*t, backend=backend, **k), torch.float32)
    assert got32.dtype == torch.float32
    scale = want.abs().max().item() + 1
    torch.testing.assert_close(got32.double(), want, rtol=1e-4, atol=1e-4 * scale)
    for name, g1, g0 in zip(("x", "p", "a", "c", "bias"), got32_g, want_g):
        gscale = g0.abs().max().item() + 1
        torch.testing.assert_close(g1.double(), g0, rtol=1e-3, atol=1e-3 * gscale, msg=lambda m, n=name: f"grad {n}: {m}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_half_dtypes(backend, dtype):
    """Half inputs are computed in float32 and rounded once at the end."""
    x, p, a, c, bias, kw = _random_case(4)
    want = hypops.reference.gyroplane_conv3d(x, p, a, c=c, bias=bias, **kw)
    got = hypops.gyroplane_conv3d(x.to(dtype), p.to(dtype), a.to(dtype), c=c,
                                  bias=None if bias is None else bias.to(dtype), backend=backend, **kw)
    assert got.dtype == dtype
    # the inputs themselves are rounded to the half type: compare with the reference on the rounded inputs
    want_r = hypops.reference.gyroplane_conv3d(x.to(dtype).double(), p.to(dtype).double(), a.to(dtype).double(),
                                               c=c, bias=None if bias is None else bias.to(dtype).double(), **kw)
    tol = 1e-2 if dtype == torch.float16 else 6e-2
    torch.testing.assert_close(got.double(), want_r, rtol=tol, atol=tol * (want.abs().max().item() + 1))


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("empty", ["no output channels", "no batch items"])
def test_empty_shapes(backend, tied, empty):
    """Zero output channels or zero batch items: an empty output of the right shape, and gradients of the
    inputs' shapes (zeros where nothing was computed), in both layouts."""
    B, C = (2, 0) if empty == "no output channels" else (0, 3)
    x = torch.full((B, 2, 4, 3, 3), 0.1, dtype=torch.float64, requires_grad=True)
    shape = (C, 2) if tied else (C, 2, 3, 3, 3)
    p = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    a = torch.ones(shape, dtype=torch.float64, requires_grad=True)
    out = hypops.gyroplane_conv3d(x, p, a, c=1.0, padding=1, kernel_size=3, backend=backend)
    assert out.shape == (B, C, 4, 3, 3)
    gx, gp, ga = torch.autograd.grad(out.sum(), [x, p, a])
    assert gx.shape == x.shape and gp.shape == p.shape and ga.shape == a.shape
    for g in (gx, gp, ga):
        assert torch.equal(g, torch.zeros_like(g))


def test_many_tiles(backend, monkeypatch):
    """Enough output voxels x channels that the kernel loops over several tiles of output rows (the native
    driver: tile_elems() entries per [rows, C_out] temporary, at most 2^16, csrc/common/gyroplane_conv3d.h;
    Triton: TILE_ELEMS, hypops/_triton/gyroplane_conv3d.py), in both layouts. The Triton driver's tile is made
    small so that the interpreter stays fast."""
    if backend == "torch":
        pytest.skip("the reference does not tile")
    c, C, tile, shape = 1.0, 64, 1 << 16, (9, 10, 12)
    if backend == "triton":
        import hypops._triton.gyroplane_conv3d as tc

        C, tile, shape = 8, 1 << 9, (4, 5, 6)
        monkeypatch.setattr(tc, "TILE_ELEMS", tile)
    x = _grid(2, 2, shape, c, seed=11)
    for tied in (False, True):
        p, a = _weights(C, 2, (3, 3, 3), c, seed=12, tied=tied)
        kw = dict(padding=1, kernel_size=3)
        xr = x.clone().requires_grad_(True)
        got = hypops.gyroplane_conv3d(xr, p, a, c=c, backend=backend, **kw)
        assert got.numel() > 2 * tile
        xw = x.clone().requires_grad_(True)
        want = hypops.reference.gyroplane_conv3d(xw, p, a, c=c, **kw)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        g = torch.randn(got.shape, dtype=torch.float64, generator=gen(13))
        (gx,) = torch.autograd.grad((got * g).sum(), xr)
        (wx,) = torch.autograd.grad((want * g).sum(), xw)
        torch.testing.assert_close(gx, wx, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("layout", ["per-offset", "tied"])
@pytest.mark.parametrize("shape", ["voxel-range tiles", "whole-item tiles", "y-row tiles", "z-range tiles"])
def test_tiles_and_chunks_strided_dilated(backend, layout, shape, monkeypatch):
    """The native driver (csrc/common/gyroplane_conv3d.h) tiles the output grid in boxes: whole x-planes of one
    batch item (large grids; the Triton driver: flat voxel ranges of one item), whole y-rows of one x-plane or a
    z-range of one row (larger planes, rows), or groups of whole items (small grids, many items); both evaluate
    tied planes in chunks of padded x-planes or of whole items, whose outputs are found through stride and
    dilation. Several tiles / chunks of each kind, with stride 2, dilation 2 and uneven padding, forward and
    every gradient against the reference."""
    if backend == "torch":
        pytest.skip("the reference does not tile")
    c = 0.7
    if backend == "triton":  # the same kinds of tiles and chunks (hypops/_triton/gyroplane_conv3d.py), smaller
        if shape in ("y-row tiles", "z-range tiles"):
            pytest.skip("the Triton driver tiles flat voxel ranges (covered by 'voxel-range tiles')")
        _triton_tiles_and_chunks(layout, shape, c, monkeypatch)
        return
    # tile rows T = max(input + output entries / 10, 2^14) / C_out. Output grids and tiles per item:
    # voxel-range: T = 409 against 11 x 13 x 8 outputs, x-planes of 104: boxes of 3 planes (4 per item); tied:
    #   1 padded plane of 270 voxels per chunk, 25 chunks per item;
    # whole-item: T = 1024 against 18 outputs per item (3 tiles of up to 56 items; tied: chunks of 3 whole items
    #   of 288 padded voxels);
    # y-row: T = 256 against 2 x 38 x 10 outputs (planes of 380 > T): boxes of 25 y-rows, then 13 (2 per x-plane);
    # z-range: T = 256 against 1 x 1 x 300 outputs (one row > T): z-ranges of 256 and 44.
    if shape == "voxel-range tiles":
        B, D, C, grid = 2, 3, 40, (21, 15, 16)
    elif shape == "whole-item tiles":
        B, D, C, grid = 150, 2, 16, (5, 4, 6)
    elif shape == "y-row tiles":
        B, D, C, grid = 1, 2, 64, (3, 40, 20)
    else:
        B, D, C, grid = 1, 2, 64, (1, 3, 600)
    x = _grid(B, D, grid, c, seed=31)
    p, a = _weights(C, D, (3, 2, 3), c, seed=32, tied=layout == "tied")
    kw = dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), dilation=(2, 2, 1), padding=(2, 0, 1))
    bias = torch.randn(C, dtype=torch.float64, generator=gen(33))
    ins = [t.clone().requires_grad_(True) for t in (x, p, a, bias)]
    refs = [t.clone().requires_grad_(True) for t in (x, p, a, bias)]
    cg, cr = (torch.tensor(c, dtype=torch.float64, requires_grad=True) for _ in range(2))
    got = hypops.gyroplane_conv3d(ins[0], ins[1], ins[2], c=cg, bias=ins[3], backend=backend, **kw)
    want = hypops.reference.gyroplane_conv3d(refs[0], refs[1], refs[2], c=cr, bias=refs[3], **kw)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    g = torch.randn(got.shape, dtype=torch.float64, generator=gen(34))
    for u, v in zip(torch.autograd.grad((got * g).sum(), [*ins, cg]), torch.autograd.grad((want * g).sum(), [*refs, cr])):
        torch.testing.assert_close(u, v, rtol=1e-9, atol=1e-9)


def _triton_tiles_and_chunks(layout, shape, c, monkeypatch):
    import hypops._triton.gyroplane_conv3d as tc

    # TILE_ELEMS = 2^9 entries. Voxel ranges: per offset, C = 8 -> 64 rows against 150 output voxels per item
    # (3 tiles per item); tied, C = 1 -> 512 rows, chunks of 5 padded x-planes of 98 rows (13 planes: 3 chunks
    # per item, the last of 3 planes; chunks starting at an odd plane with stride 2 make each offset's first
    # output a rounded-up division).
    # Whole items: C = 4 -> 128 rows against 1 output voxel and 45 padded rows per item (2 tiles of up to 128
    # items; tied: 100 chunks of 2 whole items).
    monkeypatch.setattr(tc, "TILE_ELEMS", 1 << 9)
    tied = layout == "tied"
    if shape == "voxel-range tiles":
        B, D, C, grid = 2, 3, 1 if tied else 8, (9, 7, 12)
    else:
        B, D, C, grid = 200, 2, 4, (1, 3, 1)
    kw = dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), dilation=(2, 2, 1), padding=(2, 0, 1))
    x = _grid(B, D, grid, c, seed=31)
    p, a = _weights(C, D, (3, 2, 3), c, seed=32, tied=tied)
    geo = tc._Geometry(x, p, kw["stride"], kw["padding"], kw["dilation"], kw["kernel_size"])
    tiles, chunks = list(geo.tiles()), list(geo.chunks())
    if shape == "voxel-range tiles" and tied:  # runs of several planes of one item, disjoint, the last shorter
        assert [(xp0, xp1) for b, _, xp0, xp1 in chunks if b == 0] == [(0, 5), (5, 10), (10, 13)]
        assert all(b1 == b0 + 1 for b0, b1, *_ in chunks) and len(chunks) == 3 * B
    elif shape == "voxel-range tiles":  # several voxel ranges per item
        assert geo.V > geo.tile and len(tiles) > 2 * B and all(b1 == b0 + 1 for b0, b1, *_ in tiles)
    else:  # several tiles and chunks of several whole items
        assert 1 < len(tiles) < B and all(v0 == 0 and v1 == geo.V for *_, v0, v1 in tiles)
        assert 1 < len(chunks) < B and all((xp0, xp1) == (0, geo.padded[0]) for *_, xp0, xp1 in chunks)
    bias = torch.randn(C, dtype=torch.float64, generator=gen(33))
    ins = [t.clone().requires_grad_(True) for t in (x, p, a, bias)]
    refs = [t.clone().requires_grad_(True) for t in (x, p, a, bias)]
    cg, cr = (torch.tensor(c, dtype=torch.float64, requires_grad=True) for _ in range(2))
    got = hypops.gyroplane_conv3d(ins[0], ins[1], ins[2], c=cg, bias=ins[3], backend="triton", **kw)
    want = hypops.reference.gyroplane_conv3d(refs[0], refs[1], refs[2], c=cr, bias=refs[3], **kw)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    g = torch.randn(got.shape, dtype=torch.float64, generator=gen(34))
    for u, v in zip(torch.autograd.grad((got * g).sum(), [*ins, cg]), torch.autograd.grad((want * g).sum(), [*refs, cr])):
        torch.testing.assert_close(u, v, rtol=1e-9, atol=1e-9)


def test_gradcheck_tied(backend):
    c = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    x = _grid(1, 3, (3, 3, 2), 1.3, seed=17).requires_grad_(True)
    p, a = (t.requires_grad_(True) for t in _weights(2, 3, None, 1.3, seed=18, tied=True))

    def f(x, p, a, c):
        return hypops.gyroplane_conv3d(x, p, a, c=c, kernel_size=(2, 2, 1), padding=(1, 0, 1), stride=(2, 1, 1),
                                       backend=backend)

    assert torch.autograd.gradcheck(f, (x, p, a, c), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_non_contiguous_input(backend):
    c = 1.0
    x = _grid(2, 3, (4, 3, 5), c, seed=19)
    xt = x.transpose(2, 4).contiguous().transpose(2, 4)  # same values, other strides
    assert not xt.is_contiguous()
    p, a = _weights(2, 3, (2, 2, 2), c, seed=20)
    torch.testing.assert_close(hypops.gyroplane_conv3d(xt, p, a, c=c, backend=backend),
                               hypops.gyroplane_conv3d(x, p, a, c=c, backend=backend), rtol=0, atol=1e-12)


@pytest.mark.parametrize("frac", [0.999, 1 - 1e-5, 1.5])
def test_boundary_points_are_finite(backend, frac, full_dtype):
    """Points at and beyond the clip radius, planes through boundary points: finite output and grads."""
    c, D = 1.0, 3
    g = gen(21)
    x = points_at(torch.full((2 * 27,), frac), D, c, g).reshape(2, 3, 3, 3, D).movedim(-1, 1).to(full_dtype)
    p = points_at(torch.full((2,), 0.999), D, c, g).to(full_dtype)
    a = sample("normal", 2, D, c, g).to(full_dtype)
    leaves = [t.clone().requires_grad_(True) for t in (x, p, a)]
    out = hypops.gyroplane_conv3d(*leaves, c=c, kernel_size=2, padding=1, backend=backend)
    assert torch.isfinite(out).all()
    for gr in torch.autograd.grad(out.sum(), leaves):
        assert torch.isfinite(gr).all()


def test_opcheck_native():
    """torch.library.opcheck (schema, fake, autograd registration, faketensor) on the op and its backward."""
    skip_unless_serves("native", OP)
    c = torch.tensor(0.9, dtype=torch.float64)
    x = _grid(1, 2, (3, 3, 2), 0.9, seed=22)
    for tied in (False, True):
        p, a = _weights(2, 2, (2, 1, 2), 0.9, seed=23, tied=tied)
        geom = ([1, 2, 1], [1, 0, 1], [1, 1, 1], [2, 1, 2])
        for bias in (None, torch.tensor([0.5, -0.5], dtype=torch.float64)):
            args = (x.clone().requires_grad_(True), p.clone().requires_grad_(True), a.clone().requires_grad_(True),
                    c.clone().requires_grad_(True), None if bias is None else bias.clone().requires_grad_(True), *geom)
            torch.library.opcheck(torch.ops.hypops.gyroplane_conv3d, args)
        out = torch.ops.hypops.gyroplane_conv3d(x, p, a, c, None, *geom)
        torch.library.opcheck(torch.ops.hypops.gyroplane_conv3d_backward, (torch.randn_like(out), x, p, a, c, *geom))


def test_compile_fullgraph_no_break():
    """A small hyperbolic conv net compiles with fullgraph=True and matches eager, forward and backward."""
    skip_unless_serves("native", OP)
    torch._dynamo.reset()
    c, D, C = 1.0, 2, 3
    p, a = (torch.nn.Parameter(t.float()) for t in _weights(C, D, (3, 3, 3), c, seed=24))
    pt, at = (torch.nn.Parameter(t.float()) for t in _weights(C, D, None, c, seed=25, tied=True))
    bias = torch.nn.Parameter(torch.zeros(C))

    def net(u):
        x = hypops.expmap0(u, c=c, dim=1)
        y = hypops.gyroplane_conv3d(x, p, a, c=c, bias=bias, padding=1)
        z = hypops.gyroplane_conv3d(x, pt, at, c=c, kernel_size=2, stride=2)
        return y.square().mean() + z.mean()

    u = torch.randn(2, D, 4, 4, 4, generator=gen(26))
    params = [p, a, pt, at, bias]
    want = net(u)
    want_g = torch.autograd.grad(want, params)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    got = compiled(u)
    got_g = torch.autograd.grad(got, params)
    torch.testing.assert_close(got, want)
    for g1, g0 in zip(got_g, want_g):
        torch.testing.assert_close(g1, g0)
    torch._dynamo.reset()


def test_native_errors_name_the_argument():
    """Direct torch.ops calls (which skip the Python checks) get errors naming the argument, not a crash."""
    skip_unless_serves("native", OP)
    op = torch.ops.hypops.gyroplane_conv3d
    x = torch.zeros(1, 2, 3, 3, 3)
    p, a = torch.zeros(2, 2, 2, 2, 2), torch.ones(2, 2, 2, 2, 2)
    c = torch.tensor(1.0)
    geom = ([1, 1, 1], [0, 0, 0], [1, 1, 1])
    with pytest.raises(RuntimeError, match="kernel_size"):
        op(x, p, a, c, None, *geom, [3, 3, 3])
    with pytest.raises(RuntimeError, match="smaller than the dilated kernel"):
        op(x, p, a, c, None, [1, 1, 1], [0, 0, 0], [3, 3, 3], [2, 2, 2])
    with pytest.raises(RuntimeError, match="c must be positive"):
        op(x, p, a, torch.tensor(-1.0), None, *geom, [2, 2, 2])
    with pytest.raises(RuntimeError, match="bias must be"):
        op(x, p, a, c, torch.zeros(3), *geom, [2, 2, 2])
    with pytest.raises(RuntimeError, match="p is"):
        op(x, p.double(), a, c, None, *geom, [2, 2, 2])
    with pytest.raises(RuntimeError, match="grad must be"):
        torch.ops.hypops.gyroplane_conv3d_backward(torch.zeros(1, 2, 3, 3, 3), x, p, a, c, *geom, [2, 2, 2])
    # a meta tensor next to CPU tensors (a stand-in for a second device) raises, naming the arguments
    with pytest.raises(RuntimeError, match="x is on cpu but a is on meta"):
        op(x, p, a.to("meta"), c, None, *geom, [2, 2, 2])
    with pytest.raises(RuntimeError, match="c is on meta"):
        op(x, p, a, c.to("meta"), None, *geom, [2, 2, 2])
    with pytest.raises(RuntimeError, match="x is undefined|x must be"):
        op(None, p, a, c, None, *geom, [2, 2, 2])
    # the public function checks hyperparameters before any backend runs
    with pytest.raises(ValueError, match="stride must be >= 1"):
        hypops.gyroplane_conv3d(x, p, a, stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        hypops.gyroplane_conv3d(x, p, a, padding=-1)
    with pytest.raises(ValueError, match=r"bias must be a tensor of shape \[C_out\]"):
        hypops.gyroplane_conv3d(x, p, a, bias=torch.zeros(1, 2))
    with pytest.raises(TypeError, match="bias must match x"):
        hypops.gyroplane_conv3d(x, p, a, bias=torch.zeros(2, dtype=torch.float64))


def _inside_case(D, C, S, ks, c, seed, B=2, edge_frac=None):
    """Inputs inside the CPU inside path's gate (points within 0.6 of the radius, planes within 0.5: AB > 1/8
    for every pair); edge_frac puts the input's last x-plane at that fraction of the radius instead."""
    g = gen(seed)
    x = ball_points(B * math.prod(S), D, c, g, max_frac=0.6, zero_rows=0).reshape(B, *S, D).movedim(-1, 1)
    if edge_frac is not None:
        n = B * S[1] * S[2]
        x[:, :, -1] = points_at(torch.full((n,), edge_frac), D, c, g).reshape(B, S[1], S[2], D).movedim(-1, 1)
    n = C * math.prod(ks)
    p = ball_points(n, D, c, g, max_frac=0.5, zero_rows=0).reshape(C, *ks, D).movedim(-1, 1)
    a = sample("normal", n, D, c, g).reshape(C, *ks, D).movedim(-1, 1)
    return x.contiguous(), p.contiguous(), a.contiguous()


def _native_fwd_bwd(x, p, a, c, gy, **kw):
    """Output and the gradients of <out, gy> for x, p, a and c (a tensor), native backend."""
    xs, ps, as_ = (t.clone().requires_grad_(True) for t in (x, p, a))
    cs = torch.tensor(c, dtype=x.dtype, requires_grad=True)
    y = hypops.gyroplane_conv3d(xs, ps, as_, c=cs, backend="native", **kw)
    (y * gy.to(y.dtype)).sum().backward()
    return y.detach(), xs.grad, ps.grad, as_.grad, cs.grad


INSIDE_CASES = {
    # (D, C, S, ks, c, B, kw): sizes where the extended rows stay within 1.5x the tile's (gyroplane_conv3d_cpu.cpp:
    # extended): tiles of two whole items, of x-planes (C = 40 on 12 x 9 x 10: several per tile), of y-rows
    # (C = 64 on 20 x 20 planes: a plane is more than a tile), dilation with an even kernel, D = 32, k = 1
    "whole-items": (3, 4, (8, 8, 8), (2, 2, 2), 1.0, 2, {}),
    "x-plane-tiles": (2, 40, (12, 9, 10), (3, 2, 3), 0.7, 1, dict(padding=(1, 0, 2))),
    "y-row-tiles": (2, 64, (3, 20, 20), (3, 3, 3), 1.0, 1, dict(padding=1)),
    "dilated-even-k": (5, 3, (9, 10, 12), (2, 2, 2), 2.0, 2, dict(padding=1, dilation=(2, 1, 2))),
    "D32": (32, 6, (10, 10, 10), (3, 3, 3), 1.5, 1, dict(padding=1)),
    "k1": (2, 7, (2, 2, 2), (1, 1, 1), 1.0, 2, {}),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(INSIDE_CASES))
@pytest.mark.parametrize("edge", [None, 0.97], ids=["inside", "mixed"])
def test_native_inside_path_matches_bank_path(case, dtype, edge):
    """The CPU's inside path (csrc/cpu/gyroplane_conv3d_cpu.cpp: one GEMM against W' per offset, stride 1, rows
    inside the gate) against the bank path (two GEMMs and dist2plane per pair) that the "scalar" kernels force:
    forward and every gradient, c included, on every kernel set this CPU runs. float64: the two agree to
    rounding, and differ (a different formula), which shows that the inside path ran. float32: each is compared
    with the float64 evaluation of the same float32 inputs, and the inside path may be at most 4x further from it
    than the bank path, plus 2e-5 of the largest value (grad c sums millions of terms: both paths miss it by
    ~1e-5 in float32). "mixed": the input's last x-plane lies near the sphere, so the offsets that read it take
    the bank inside the same tile and the rest the inside path (one batch item)."""
    from hypops import _C

    skip_unless_serves("native", OP)
    D, C, S, ks, c, B, kw = INSIDE_CASES[case]
    # mixed: one batch item, so that a tile's offsets differ in whether they read the last x-plane (a tile of
    # several items reads every item's last planes through every offset)
    B = B if edge is None else 1
    x, p, a = (t.to(dtype) for t in _inside_case(D, C, S, ks, c, seed=31, B=B, edge_frac=edge))
    y = hypops.reference.gyroplane_conv3d(x.double(), p.double(), a.double(), c=c, kernel_size=ks, **kw)
    gy = torch.randn(y.shape, dtype=torch.float64, generator=gen(32))
    before = _C.cpu_kernels()
    got = {}
    try:
        for kernels in ("scalar", "baseline", "avx2", "avx512"):
            try:
                _C._set_cpu_kernels(kernels)
            except ValueError:  # not on this CPU
                continue
            got[kernels] = _native_fwd_bwd(x, p, a, c, gy, kernel_size=ks, **kw)
        _C._set_cpu_kernels("scalar")  # the bank path, float64
        truth = _native_fwd_bwd(x.double(), p.double(), a.double(), c, gy, kernel_size=ks, **kw)
    finally:
        _C._set_cpu_kernels(before)
    bank = got.pop("scalar")
    names = ["out", "grad x", "grad p", "grad a", "grad c"]
    torch.testing.assert_close(truth[0], y, rtol=1e-11, atol=1e-11)
    for kernels, res in got.items():
        for name, u, v, t in zip(names, res, bank, truth):
            scale = t.abs().max().clamp_min(1).item()  # sums of up to k^3 C terms: against the largest
            if dtype == torch.float64:
                torch.testing.assert_close(u, v, rtol=0, atol=1e-11 * scale, msg=lambda m: f"{kernels}, {name}: {m}")
            else:
                err, err_bank = ((w.double() - t).abs().max().item() for w in (u, v))
                assert err <= 4 * err_bank + 2e-5 * scale, f"{kernels}, {name}: {err:.2e} vs the bank's {err_bank:.2e}"
        if edge is None or math.prod(ks) > 1:  # (k = 1 mixed: its one offset reads the sphere's plane: all bank)
            assert not torch.equal(res[0], bank[0]), f"{kernels}: the forward's inside path did not run"
            assert not torch.equal(res[1], bank[1]), f"{kernels}: the backward's inside path did not run"


def test_native_inside_path_gradcheck():
    """Float64 gradcheck of the inside path's hand-derived backward (per pair, and per plane through W', e', f'),
    with c a tensor."""
    from hypops import _C

    skip_unless_serves("native", OP)
    if _C.cpu_kernels().startswith("scalar"):
        pytest.skip("the scalar kernels run the bank path")  # (HYPOPS_CPU_KERNELS=scalar)
    x, p, a = _inside_case(2, 3, (3, 4, 3), (2, 3, 2), 0.8, seed=33, B=1)
    c = torch.tensor(0.8, dtype=torch.float64)
    args = [t.clone().requires_grad_(True) for t in (x, p, a, c)]
    def fn(x_, p_, a_, c_):
        return hypops.gyroplane_conv3d(x_, p_, a_, c=c_, backend="native", padding=1, kernel_size=(2, 3, 2))

    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-7, rtol=1e-6)


def test_native_inside_path_unread_nan_voxels_get_zero_gradient():
    """Voxels no output reads (the gap of a dilated kernel) get a zero gradient, even when they are NaN, as on the
    bank path: the inside path adds its x r term only to the rows its steps read."""
    from hypops import _C

    skip_unless_serves("native", OP)
    x, p, a = _inside_case(3, 4, (3, 8, 8), (2, 1, 1), 1.0, seed=34, B=1)
    x[:, :, 1] = float("nan")  # dilation 2 along x: outputs read x-planes 0 and 2 only
    before = _C.cpu_kernels()
    try:
        for kernels in ("scalar", "baseline", "avx2", "avx512"):
            try:
                _C._set_cpu_kernels(kernels)
            except ValueError:
                continue
            xs = x.clone().requires_grad_(True)
            y = hypops.gyroplane_conv3d(xs, p, a, c=1.0, backend="native", kernel_size=(2, 1, 1), dilation=(2, 1, 1))
            y.sum().backward()
            assert torch.isfinite(y).all(), kernels
            assert torch.equal(xs.grad[:, :, 1], torch.zeros_like(xs.grad[:, :, 1])), kernels
            assert torch.isfinite(xs.grad).all(), kernels
    finally:
        _C._set_cpu_kernels(before)
