"""The GPU test matrix: every pointwise op and the wrapped normal on CUDA tensors, for each backend that can
serve CUDA (native CUDA kernels, Triton), against the float64 reference on the CPU, forward and backward.
Run with `pytest -m cuda` on a machine with an NVIDIA GPU; skipped elsewhere."""

import pytest
import torch

import hypops
from hypops import _backend
from hypops._constants import PROJ_EPS

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU"),
]

OPS = {
    "project": (1, {}),
    "expmap0": (1, {}),
    "logmap0": (1, {}),
    "mobius_add": (2, {}),
    "expmap": (2, {}),
    "logmap": (2, {}),
    "dist": (2, {}),
    "dist2plane": (3, {"signed": True}),
}
TOL = {torch.float64: 1e-9, torch.float32: 2e-4, torch.bfloat16: 5e-2, torch.float16: 1e-2}


def _inputs(n_tensors, dtype, gen):
    pts = []
    for i in range(n_tensors):
        v = torch.randn(257, 33, dtype=torch.float64, generator=gen)
        if i < 2:  # points: radii up to the boundary
            r = torch.rand(257, 1, dtype=torch.float64, generator=gen) * 0.999
            v = v / v.norm(dim=-1, keepdim=True) * r
        pts.append(v)
    return pts


@pytest.mark.parametrize("backend", ["native", "triton"])
@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("op", list(OPS))
def test_cuda_matches_reference(op, dtype, backend):
    dev = torch.device("cuda")
    why = _backend.reasons(backend, op, dev)
    if why:
        pytest.skip("; ".join(why))
    n, kw = OPS[op]
    gen = torch.Generator().manual_seed(0)
    base = _inputs(n, dtype, gen)
    c = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    ins = [t.to(dev, dtype).requires_grad_() for t in base]
    cg = c.detach().to(dev).requires_grad_()
    out = getattr(hypops, op)(*ins, c=cg, backend=backend, **kw)
    ref_ins = [t.to(dtype).double().requires_grad_() for t in base]
    ref = getattr(hypops.reference, op)(*ref_ins, c=c, **kw)
    tol = TOL[dtype]
    torch.testing.assert_close(out.double().cpu(), ref.detach(), rtol=tol, atol=tol)
    grad = torch.randn(ref.shape, dtype=torch.float64, generator=gen)
    got = torch.autograd.grad(out, ins + [cg], grad.to(dev, dtype))
    want = torch.autograd.grad(ref, ref_ins + [c], grad)
    for gi, wi in zip(got, want):
        scale = max(1.0, wi.abs().max().item())
        torch.testing.assert_close(gi.double().cpu() / scale, wi / scale, rtol=10 * tol, atol=10 * tol)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("backend", ["native", "triton"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_half_results_stay_inside_the_ball(backend, dtype):
    dev = torch.device("cuda")
    if _backend.reasons(backend, "expmap0", dev):
        pytest.skip("; ".join(_backend.reasons(backend, "expmap0", dev)))
    u = torch.randn(4096, 64, device=dev, dtype=dtype) * 100
    for c in (0.1, 1.0, 10.0):
        z = hypops.expmap0(u, c=c, backend=backend)
        assert (z.double().norm(dim=-1) * c**0.5 < 1).all()


@pytest.mark.parametrize("backend", ["native", "triton"])
@pytest.mark.parametrize("tied", [False, True], ids=["per-offset", "tied"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_gyroplane_conv3d(backend, tied, dtype):
    """The convolution on CUDA (its bank steps on the GPU) against the float64 reference on the CPU, forward
    and every gradient, over a grid large enough for several tiles."""
    dev = torch.device("cuda")
    why = _backend.reasons(backend, "gyroplane_conv3d", dev)
    if why:
        pytest.skip("; ".join(why))
    gen = torch.Generator().manual_seed(1)
    B, D, C, S, k = 2, 5, 48, (12, 11, 13), (3, 2, 3)
    v = torch.randn(B, *S, D, dtype=torch.float64, generator=gen)
    x = (v / v.norm(dim=-1, keepdim=True) * torch.rand(B, *S, 1, dtype=torch.float64, generator=gen) * 0.95)
    x = x.movedim(-1, 1).contiguous()
    wshape = (C, D) if tied else (C, D, *k)
    p = 0.3 * torch.randn(wshape, dtype=torch.float64, generator=gen) / D**0.5
    a = torch.randn(wshape, dtype=torch.float64, generator=gen)
    bias = torch.randn(C, dtype=torch.float64, generator=gen)
    kw = dict(stride=(1, 2, 1), padding=(1, 0, 2), dilation=(2, 1, 1), kernel_size=k)
    leaves = [t.requires_grad_(True) for t in (x, p, a, bias)]
    c = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    want = hypops.reference.gyroplane_conv3d(leaves[0], leaves[1], leaves[2], c=c, bias=leaves[3], **kw)
    g = torch.randn(want.shape, dtype=torch.float64, generator=gen)
    want_g = torch.autograd.grad(want, [*leaves, c], g)
    dl = [t.detach().to(dev, dtype).requires_grad_(True) for t in (x, p, a, bias)]
    cd = torch.tensor(0.7, dtype=dtype, device=dev, requires_grad=True)
    got = hypops.gyroplane_conv3d(dl[0], dl[1], dl[2], c=cd, bias=dl[3], backend=backend, **kw)
    got_g = torch.autograd.grad(got, [*dl, cd], g.to(dev, dtype))
    tol = TOL[dtype]
    torch.testing.assert_close(got.double().cpu(), want, rtol=tol, atol=tol * (want.abs().max().item() + 1))
    for gg, wg in zip(got_g, want_g):
        torch.testing.assert_close(gg.double().cpu(), wg, rtol=10 * tol, atol=10 * tol * (wg.abs().max().item() + 1))

@pytest.mark.parametrize("backend", ["native", "triton"])
@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("iso", [False, True], ids=["diagonal", "isotropic"])
@pytest.mark.parametrize("op", ["wrapped_normal_rsample", "wrapped_normal_log_prob"])
def test_cuda_wrapped_normal_matches_reference(op, iso, dtype, backend):
    """Noise [K, B, D] against mu, std [B, D] or [B, 1] (the VAE's shapes), every input's gradient and c's."""
    dev = torch.device("cuda")
    why = _backend.reasons(backend, op, dev)
    if why:
        pytest.skip("; ".join(why))
    gen = torch.Generator().manual_seed(1)
    K, B, D = 3, 257, 33
    mu = torch.randn(B, D, dtype=torch.float64, generator=gen)
    mu = mu / mu.norm(dim=-1, keepdim=True) * torch.rand(B, 1, dtype=torch.float64, generator=gen) * 0.9
    std = torch.rand(B, 1 if iso else D, dtype=torch.float64, generator=gen) * 0.8 + 0.2
    eps = torch.randn(K, B, D, dtype=torch.float64, generator=gen)
    if op == "wrapped_normal_rsample":
        base = [mu, std, eps]
    else:
        base = [hypops.reference.wrapped_normal_rsample(mu, std, eps, c=0.8), mu, std]
    c = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    ins = [t.to(dev, dtype).requires_grad_() for t in base]
    cg = c.detach().to(dev).requires_grad_()
    out = getattr(hypops, op)(*ins, c=cg, backend=backend)
    ref_ins = [t.to(dtype).double().requires_grad_() for t in base]
    ref = getattr(hypops.reference, op)(*ref_ins, c=c)
    if op == "wrapped_normal_rsample":  # the op projects with its dtype's eps, the reference with 1e-5
        n = ref.norm(dim=-1, keepdim=True)
        maxnorm = (1 - PROJ_EPS[dtype]) / c.sqrt()
        ref = torch.where(n > maxnorm, ref / n * maxnorm, ref)
    tol = TOL[dtype]
    scale = max(1.0, ref.abs().max().item())
    torch.testing.assert_close(out.double().cpu() / scale, ref.detach() / scale, rtol=tol, atol=tol)
    grad = torch.randn(ref.shape, dtype=torch.float64, generator=gen)
    got = torch.autograd.grad(out, ins + [cg], grad.to(dev, dtype))
    want = torch.autograd.grad(ref, ref_ins + [c], grad)
    for gi, wi in zip(got, want):
        scale = max(1.0, wi.abs().max().item())
        torch.testing.assert_close(gi.double().cpu() / scale, wi / scale, rtol=10 * tol, atol=10 * tol)
    assert torch.isfinite(out).all()
