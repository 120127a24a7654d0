"""The per-ISA CPU kernels (csrc/cpu/simd/): each instruction set the CPU runs ("baseline" = x86-64 SSE2,
"avx2" = AVX2+FMA, "avx512" = AVX-512 F/DQ/VL/BW with 512-bit vectors) against the "scalar" kernels, the
plain loops that evaluate the formulas of csrc/common/math.h through libm and their gradients on Dual
numbers (the code before vectorisation; "scalar-avx2" for the row ops under avx2 and avx512: the same loops
inside the AVX2 sweeps, whose reductions round as the avx512 kernels' AVX-512 sweeps do, see reference_kernels).
This pins the vectorised asinh/tanh/artanh/log (csrc/cpu/simd/lane.h) to libm, and, for the gyroplane bank
and for every row op (forward and backward, grad_c included), the vectorised per-block stage to the scalar
per-row one, on interior and extreme inputs."""

import glob
import math
import os
import random
import re
import shutil
import struct
import subprocess

import pytest
import torch
from hyptest import RADII, extreme_args, gen, points_at, sample

import hypops
from hypops import _backend
from hypops import reference as R

if _backend.native_error is not None:  # pragma: no cover
    pytest.skip("hypops extension not built", allow_module_level=True)

from hypops import _C  # noqa: E402


def _cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            return set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:  # pragma: no cover
        return set()


def _cpu_has_avx2_fma() -> bool:
    return {"avx2", "fma"} <= _cpu_flags()


def _cpu_has_avx512() -> bool:
    return _cpu_has_avx2_fma() and {"avx512f", "avx512dq", "avx512vl", "avx512bw"} <= _cpu_flags()


KERNELS = (
    ["baseline"] + (["avx2"] if _cpu_has_avx2_fma() else []) + (["avx512"] if _cpu_has_avx512() else [])
)
BEST = KERNELS[-1]


def reference_kernels(name: str) -> str:
    """The plain loops to compare kernels `name` with: "scalar-avx2" (their sweeps over the rows in AVX2+FMA
    code, csrc/cpu/rows.h) for the AVX2 and AVX-512 kernels, else "scalar". The AVX-512 kernels run their
    sweeps in AVX-512 code, but with the same 32-byte vectors and FMA in the reductions (row_reductions) and
    element-wise output loops, whose rounding does not depend on the vector width. Then both sides share
    the float reductions of the sweeps and differ only in the per-row (per-pair) stage."""
    return "scalar-avx2" if name in ("avx2", "avx512") else "scalar"


@pytest.fixture
def kernels():
    """Yields a function that switches the CPU kernels; restores the previous choice afterwards."""
    before = _C.cpu_kernels()
    yield _C._set_cpu_kernels
    _C._set_cpu_kernels(before)


def test_default_choice():
    want = os.environ.get("HYPOPS_CPU_KERNELS")
    if want in ("baseline", "scalar") or (want == "scalar-avx2" and _cpu_has_avx2_fma()):
        assert _C.cpu_kernels() == want
    elif want == "avx2":
        assert _C.cpu_kernels() == ("avx2" if _cpu_has_avx2_fma() else "baseline")
    else:  # unset, "best", or one this CPU cannot run: the best it can
        assert _C.cpu_kernels() == BEST


def test_unsupported_kernels_raise(kernels):
    if _cpu_has_avx512():
        pytest.skip("this CPU runs every kernel set")
    with pytest.raises(ValueError):
        kernels("avx512")


def test_unknown_kernels_raise(kernels):
    with pytest.raises(ValueError):
        kernels("avx9000")


def _ulps(got: float, want: float, single: bool) -> float:
    if want == 0.0:
        return 0.0 if got == 0.0 else math.inf
    if single:
        want32 = struct.unpack("f", struct.pack("f", want))[0]
        spacing = math.ulp(want32) / math.ulp(1.0) * 2.0**-23 if want32 else 2.0**-149
        return abs(got - want) / spacing
    return abs(got - want) / math.ulp(want)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("single", [False, True], ids=["float64", "float32"])
def test_vector_asinh_matches_libm(kernels, name, single):
    kernels(name)
    rng = random.Random(0)
    hi = 38 if single else 300
    xs = [0.0, 1e-30, 0.5, 1.0, 4096.0, 4097.0, 2.0**28, 2.0**28 + 2**4, 1e4]
    xs += [10 ** rng.uniform(-hi, hi) for _ in range(4000)]
    xs += [rng.uniform(0, 3) for _ in range(2000)]
    xs += [-x for x in xs]
    if single:  # compare on the float inputs the kernel sees
        xs = [struct.unpack("f", struct.pack("f", x))[0] for x in xs]
    got = _C._kernel_asinh(xs, single)
    worst = max(_ulps(g, math.asinh(x), single) for g, x in zip(got, xs))
    assert worst <= 3.0, worst  # libm: < 1 ulp; the kernels: about 1-2 (lane.h)
    # odd symmetry exactly, and Inf / NaN kept
    assert all(g == -h for g, h in zip(got[: len(xs) // 2], got[len(xs) // 2 :]))
    inf = _C._kernel_asinh([math.inf, -math.inf, math.nan], single)
    assert inf[0] == math.inf and inf[1] == -math.inf and math.isnan(inf[2])


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("single", [False, True], ids=["float64", "float32"])
@pytest.mark.parametrize("fn", ["tanh", "atanh"])
def test_vector_tanh_atanh_match_libm(kernels, name, single, fn):
    kernels(name)
    rng = random.Random(1)
    if fn == "tanh":  # the kernels see arguments clamped to +-15 (math.h: TANH_CLAMP); 25 checks the cap
        xs = [0.0, 1e-30, 1e-8, 0.17, 0.3466, 0.3467, 0.5, 1.0, 9.0, 15.0, 19.5, 25.0]
        xs += [10 ** rng.uniform(-30, 1.2) for _ in range(4000)] + [rng.uniform(0, 3) for _ in range(2000)]
        ref = math.tanh
    else:  # |z| < 1 (math.h's safe_artanh clamps to 1 - 1e-7 first)
        xs = [0.0, 1e-30, 1e-8, 0.25, 0.5, 0.75, 0.9, 0.999, 1 - 1e-7, 1 - 2**-23]
        xs += [10 ** rng.uniform(-30, -1e-9) for _ in range(4000)] + [rng.uniform(0, 1) for _ in range(2000)]
        xs += [1 - 10 ** rng.uniform(-7, -1) for _ in range(1000)]
        ref = math.atanh
    xs += [-x for x in xs]
    if single:
        xs = [struct.unpack("f", struct.pack("f", x))[0] for x in xs]
        xs = [x for x in xs if abs(x) < 1] if fn == "atanh" else xs
    got = _C._kernel_math(fn, xs, single)
    worst = max(_ulps(g, ref(x), single) for g, x in zip(got, xs))
    assert worst <= 4.0, worst  # lane.h: 1-3 ulp
    half = len(xs) // 2
    assert all(g == -h for g, h in zip(got[:half], got[half:]))


def _bank_inputs(c, d, extreme, dtype):
    g = gen(3)
    if extreme:
        x = points_at(RADII, d, c, g)
        p, a = extreme_args(("point", "normal"), d, c, g)
        x = torch.cat([x, sample("point", 40, d, c, g)])
    else:
        x = sample("point", 200, d, c, g)
        p = sample("point", 37, d, c, g)  # 37 planes: a vector tail in every row
        a = sample("normal", 37, d, c, g)
    return [t.to(dtype).contiguous() for t in (x, p, a)]


def _run(x, p, a, c, is_signed, scaled):
    ct = torch.tensor(c, dtype=x.dtype)
    out = torch.ops.hypops.gyroplane_bank(x, p, a, ct, is_signed, scaled)
    g = torch.randn(out.shape, generator=gen(5), dtype=torch.float64).to(x.dtype)
    grads = torch.ops.hypops.gyroplane_bank_backward(g, x, p, a, ct, is_signed, scaled)
    return [out, *grads]


def _close(got, want, rtol):
    """Per-tensor check: |got - want| <= rtol (|want| + max|want|) elementwise (gradients of different
    entries are summed over the bank, so each carries the rounding of the largest terms)."""
    assert torch.isfinite(got).all()
    scale = want.abs().max().item()
    err = (got.double() - want.double()).abs() - rtol * (want.double().abs() + scale)
    assert (err <= 0).all(), f"max excess {err.max().item():.3g} (scale {scale:.3g})"


def _bank_matches_scalar(kernels, name, x, p, a, c, flags, rtol):
    """The bank's value and gradients from kernels `name` against the scalar loops."""
    kernels("scalar")
    want = _run(x, p, a, c, *flags)
    kernels(name)
    got = _run(x, p, a, c, *flags)
    for label, u, v in zip(["out", "grad_x", "grad_p", "grad_a", "grad_c"], got, want):
        try:
            _close(u, v, rtol)
        except AssertionError as e:
            raise AssertionError(f"{label}, c={c}: {e}") from None


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("extreme", [False, True], ids=["interior", "extreme"])
@pytest.mark.parametrize("flags", [(True, False), (False, False), (True, True), (False, True)],
                         ids=["signed", "unsigned", "signed-scaled", "unsigned-scaled"])
def test_kernels_match_scalar(kernels, name, dtype, extreme, flags):
    rtol = 1e-12 if dtype == torch.float64 else 2e-6
    if extreme and dtype == torch.float32:
        # points on and beyond the sphere: with FMA (avx2) the roundings of 1 - c|x|^2 and |x - p|^2 differ
        # and the formula amplifies them by 1/(1 - c|x|^2); tests/test_gyroplane_bank.py bounds the
        # accuracy there against the float64 reference, here only gross disagreement is caught
        rtol = 1e-4
    for c in (1e-3, 1.0, 10.0):
        _bank_matches_scalar(kernels, name, *_bank_inputs(c, 7, extreme, dtype), c, flags, rtol)


def _gate_edge_inputs(c, tiny_normal, dtype):
    """Points on both sides of the bank kernels' inside gate (csrc/cpu/simd/bank_kernels.h): a row takes
    the inside form when (1 - c|x|^2) * min_k (1 - c|p_k|^2) > 1/8 and every |a_k|^2 > 1e-6, else the
    general form. Planes with 1 - c|p|^2 in [0.9, 1]; rows with (1 - c|x|^2) * margin from 0.1 to 0.9,
    densely around 1/8; with tiny_normal one plane has |a|^2 = 1e-7, which sends every row to the general
    form."""
    g = gen(17)
    d, n_planes = 5, 19
    dirs = torch.randn(n_planes, d, generator=g, dtype=torch.float64)
    p = dirs / dirs.norm(dim=1, keepdim=True) * torch.linspace(0.0, (0.1 / c) ** 0.5, n_planes).view(-1, 1)
    a = torch.randn(n_planes, d, generator=g, dtype=torch.float64)
    if tiny_normal:
        a[3] = a[3] / a[3].norm() * 1e-7**0.5 * 1.01
    margin = (1 - c * (p * p).sum(1)).min().item()
    ab = torch.tensor([0.1, 0.12, 0.1249, 0.12499, 0.125, 0.12501, 0.1251, 0.126, 0.13, 0.2, 0.5, 0.9])
    b = (ab / margin).clamp(max=1.0).to(torch.float64).repeat_interleave(3)
    dirs = torch.randn(len(b), d, generator=g, dtype=torch.float64)
    x = dirs / dirs.norm(dim=1, keepdim=True) * ((1 - b) / c).sqrt().view(-1, 1)
    return [t.to(dtype).contiguous() for t in (x, p, a)]


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("tiny_normal", [False, True], ids=["inside-gate", "general-only"])
@pytest.mark.parametrize("flags", [(True, False), (False, False), (True, True), (False, True)],
                         ids=["signed", "unsigned", "signed-scaled", "unsigned-scaled"])
def test_bank_inside_gate_edges(kernels, name, dtype, tiny_normal, flags):
    """The inside form (rows well inside the ball) and the general form agree with the scalar loops on
    both sides of the gate, so the switch between them is seamless."""
    rtol = 1e-12 if dtype == torch.float64 else 2e-6
    for c in (0.3, 1.0, 4.0):
        _bank_matches_scalar(kernels, name, *_gate_edge_inputs(c, tiny_normal, dtype), c, flags, rtol)


# --- row ops -------------------------------------------------------------------------------------------------
# op -> argument kinds (hyptest.sample). project has no vectorised stage (ProjectOp::kBlocked is false in
# csrc/cpu/row_ops.h: one sqrt and a scale per row cost less than blocking), but its per-row loop runs in the
# AVX2 / AVX-512 sweeps under the AVX2 / AVX-512 kernels, so it is compared too.
ROW_OPS = {
    "project": ("point",),
    "expmap0": ("tangent",),
    "logmap0": ("point",),
    "expmap": ("point", "tangent"),
    "logmap": ("point", "point"),
    "mobius_add": ("point", "point"),
    "dist": ("point", "point"),
    "dist2plane": ("point", "point", "normal"),
}
PLANE_FLAGS = [(True, False), (False, False), (True, True), (False, True)]


# Rows with a point beyond this radius fraction are only checked for finiteness. At 1 - 1e-5 (and outside
# the ball) the value is not determined by the float inputs: 1 - c|x|^2 ~ 2e-5 carries the input's rounding
# (float32: 3e-3 relative), and a tangent long enough to saturate tanh puts v on the sphere, where x (+) v
# is 0/0-like. There one FMA (avx2) instead of a multiply-add turns, e.g., expmap's 1-D output from
# +0.0095 into -0.315 and flips a gradient's sign (both "correct"; the baseline build has no FMA and
# matches the scalar path there). 0.999 keeps 1 - c|x|^2 = 2e-3: conditioned enough to compare.
KEEP_RADIUS = 0.999 + 1e-9


def _row_inputs(op, d, c, level, dtype, seed=11):
    """(inputs, mask of the rows whose values are compared; the others must only be finite).
    "interior": 300 well-conditioned rows (hyptest.sample(small=True): radii <= 0.7, tangent norms that
    leave tanh unsaturated) plus a first row of zeros; a partial last block at every D.
    "extreme": every combination of the boundary levels of each argument (radii 0 to 1 - 1e-5 and 1.5,
    tangent norms 0 to 1e6, zero normals) plus 300 rows of hyptest.sample (radii to 0.9, tanh saturated:
    x (+) v with v on the sphere). Rows with a point beyond KEEP_RADIUS are only checked for finiteness."""
    g = gen(seed)
    kinds = ROW_OPS[op]
    base = list(kinds)
    if level == "interior":
        args = [sample(k, 300, d, c, g, small=True) for k in base]
        for a in args:
            a[0] = 0
    else:
        ext = extreme_args(base, d, c, g)
        args = [torch.cat([e, sample(k, 300, d, c, g)]) for e, k in zip(ext, base)]
    keep = torch.ones(args[0].shape[0], dtype=torch.bool)
    for a, k in zip(args, base):
        if k == "point":
            keep &= a.norm(dim=-1) * math.sqrt(c) <= KEEP_RADIUS
    return [a.to(dtype).contiguous() for a in args], keep


def _row_call(op, args, ct, flags, g):
    f = getattr(torch.ops.hypops, op)
    b = getattr(torch.ops.hypops, op + "_backward")
    extra = list(flags) if op == "dist2plane" else []
    out = f(*args, ct, *extra)
    grads = b(g, *args, ct, *extra)
    return out, list(grads)


def _row_norms(t):
    t = t.double()
    return t.norm(dim=-1) if t.dim() > 1 else t.abs()


def _row_close(label, got, want, rtol, keep, typical):
    """Row by row (vector outputs: norms over the last dim), on the rows in keep:
    |got - want| <= rtol (|want| + typical), typical a typical row norm of the outputs compared together
    (it covers rows whose terms cancel: a gradient row A g + b x + ... can be 1e-15 where its terms are
    O(1), and d = 1 makes some gradients pure rounding noise). A wrong coefficient or partial changes a
    row by O(1) of itself, far above these tolerances. Every row must be finite."""
    assert torch.isfinite(got).all(), f"{label}: non-finite"
    err, scale = _row_norms(got.double() - want.double()), _row_norms(want)
    bad = (err > rtol * (scale + typical)) & keep
    if bad.any():
        i = int(bad.nonzero()[0])
        raise AssertionError(f"{label}: row {i}: |diff| {err[i].item():.3g} vs |want| {scale[i].item():.3g}, "
                             f"typical {typical:.3g}, {int(bad.sum())} rows off (rtol {rtol:g})")


def _row_tols(dtype, level):
    """(forward, backward, grad_c) rtol. The two paths share the sweeps (reference_kernels); they differ in the scalar stage
    by 1-3 ulp of tanh/artanh/asinh, by FMA contraction (avx2), and in dist2plane's backward by the
    hand-derived partials against the Dual evaluation. Measured worst cases (both kernels, every op, D and
    c here): interior float64 1.2e-15 forward, 1.9e-14 backward; float32 6.9e-7 forward, backward
    identical (evaluated in double, then rounded). In the extreme set (radii to 0.999, saturated tanh,
    tangents to 1e6) FMA's different roundings are amplified: float64 3e-11 forward, 1.4e-7 backward
    (dist2plane, zero normals); float32 forward 1.2e-2 (mobius_add of near-opposite points at radius
    0.999, where 1 - c|x|^2 = 2e-3 holds float32's rounding). All far below the O(1) change a wrong
    coefficient or partial makes."""
    if level == "interior":
        return (1e-14, 1e-13, 1e-12) if dtype == torch.float64 else (4e-6, 1e-6, 1e-6)
    return (1e-9, 1e-6, 1e-6) if dtype == torch.float64 else (3e-2, 1e-6, 1e-6)


def _grad_c_scale(op, args, c, flags, g, keep):
    kw = {"signed": flags[0], "scaled": flags[1]} if op == "dist2plane" else {}
    a64 = [a.double()[keep] for a in args]
    c64 = torch.tensor(c, dtype=torch.float64)
    _, dout = torch.func.jvp(lambda cc: getattr(R, op)(*a64, c=cc, **kw), (c64,), (torch.ones_like(c64),))
    contrib = g.double()[keep] * dout
    if contrib.dim() > 1:
        contrib = contrib.sum(-1)
    return contrib.abs().sum().item() + 1e-300


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("level", ["interior", "extreme"])
@pytest.mark.parametrize("d", [1, 7, 64])
@pytest.mark.parametrize("op", list(ROW_OPS))
def test_row_kernels_match_scalar(kernels, name, dtype, level, d, op):
    fwd_rtol, bwd_rtol, gc_rtol = _row_tols(dtype, level)
    for flags in PLANE_FLAGS if op == "dist2plane" else [()]:
        for c in (1e-3, 1.0, 10.0):
            args, keep = _row_inputs(op, d, c, level, dtype)
            ct = torch.tensor(c, dtype=dtype)
            kernels(reference_kernels(name))
            out_shape = getattr(torch.ops.hypops, op)(*args, ct, *flags).shape
            g = torch.randn(out_shape, generator=gen(5), dtype=torch.float64).to(dtype)
            want, want_g = _row_call(op, args, ct, flags, g)
            # grad_c is a sum over rows; its scale is the sum of the kept rows' |contributions|
            # g_i . d out_i / dc (from the float64 reference, forward mode)
            gc_scale = _grad_c_scale(op, args, c, flags, g, keep)
            gk = [a[keep] for a in args]
            want_gc_kept = _row_call(op, gk, ct, flags, g[keep])[1][-1].item()
            kernels(name)
            got, got_g = _row_call(op, args, ct, flags, g)
            got_gc_kept = _row_call(op, gk, ct, flags, g[keep])[1][-1].item()
            where = f"{op} d={d} c={c} flags={flags}"
            _row_close(f"{where} out", got, want, fwd_rtol, keep, _row_norms(want)[keep].median().item())
            typical = max(_row_norms(v)[keep].median().item() for v in want_g[:-1])
            for k, (u, v) in enumerate(zip(got_g[:-1], want_g[:-1])):
                _row_close(f"{where} grad[{k}]", u, v, bwd_rtol, keep, typical)
            assert math.isfinite(got_g[-1].item())
            assert abs(got_gc_kept - want_gc_kept) <= gc_rtol * gc_scale, (
                f"{where} grad_c: {got_gc_kept} vs {want_gc_kept} (scale {gc_scale:.3g})")


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("op", list(ROW_OPS))
def test_row_kernels_half_types(kernels, name, dtype, op):
    """Half types run the float kernels (accumulation in float): same results as the scalar path up to one
    rounding of the half type."""
    flags = (True, False) if op == "dist2plane" else ()
    args, _ = _row_inputs(op, 16, 1.0, "interior", dtype)
    ct = torch.tensor(1.0, dtype=dtype)
    kernels(reference_kernels(name))
    out_shape = getattr(torch.ops.hypops, op)(*args, ct, *flags).shape
    g = torch.randn(out_shape, generator=gen(5), dtype=torch.float64).to(dtype)
    want, want_g = _row_call(op, args, ct, flags, g)
    kernels(name)
    got, got_g = _row_call(op, args, ct, flags, g)
    rtol = 2 * (2.0**-10 if dtype == torch.float16 else 2.0**-7)
    keep = torch.ones(args[0].shape[0], dtype=torch.bool)
    _row_close(f"{op} out", got, want, rtol, keep, _row_norms(want).median().item())
    typical = max(_row_norms(v).median().item() for v in want_g[:-1])
    for k, (u, v) in enumerate(zip(got_g[:-1], want_g[:-1])):
        _row_close(f"{op} grad[{k}]", u, v, rtol, keep, typical)
    assert abs(got_g[-1].item() - want_g[-1].item()) <= rtol * (abs(want_g[-1].item()) + 1.0)


def test_row_kernels_follow_the_switch(kernels):
    """The vectorised and the scalar path really are different code: the vectorised tanh/artanh round
    differently from libm somewhere over many rows (so the comparisons above compare two paths)."""
    x = sample("point", 4096, 3, 1.0, gen(2)).to(torch.float64)
    ct = torch.tensor(1.0, dtype=torch.float64)
    kernels("scalar")
    want = torch.ops.hypops.logmap0(x, ct)
    kernels(KERNELS[-1])
    got = torch.ops.hypops.logmap0(x, ct)
    assert not torch.equal(got, want)
    torch.testing.assert_close(got, want, rtol=1e-13, atol=0)


@pytest.mark.skipif(not _cpu_has_avx2_fma(), reason="the CPU has no AVX2+FMA")
def test_avx2_sweeps_follow_the_switch(kernels):
    """The row ops' sweeps run other code under "scalar-avx2" (and the AVX2 kernels; AVX-512 code under the
    AVX-512 kernels) than under
    "scalar": float32 reductions of 8-float vectors with FMA round differently from the baseline's 4-float
    ones somewhere over many rows (so reference_kernels really pairs each kernel set with its own sweeps)."""
    x = sample("point", 4096, 64, 1.0, gen(3)).to(torch.float32)
    v = sample("tangent", 4096, 64, 1.0, gen(4)).to(torch.float32)
    ct = torch.tensor(1.0)
    outs = {}
    for k in ("scalar", "scalar-avx2"):
        kernels(k)
        outs[k] = torch.ops.hypops.expmap(x, v, ct)
    assert not torch.equal(outs["scalar"], outs["scalar-avx2"])
    torch.testing.assert_close(outs["scalar-avx2"], outs["scalar"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("op", ["expmap", "logmap", "mobius_add", "dist"])
def test_prefetching_sizes_match_reference(op):
    # 2^16 x 64 float32 rows: 32 MiB of inputs, the size from which the two-input ops' sweeps prefetch
    # rows ahead (csrc/cpu/rows.h: kPrefetchMinBytes; expmap's and logmap's blocked forward, mobius_add's
    # per-row forward, every backward). The incoming gradient is one broadcast row (stride 0, skipped by
    # the prefetch and not counted as streamed).
    n, d = 1 << 16, 64
    g = gen(16)
    # well-conditioned rows (small=True: away from the boundary), so that float32 can be held to 1e-4
    x = sample("point", n, d, 1.0, g, small=True).float().requires_grad_()
    y = sample("tangent" if op == "expmap" else "point", n, d, 1.0, g, small=True).float().requires_grad_()
    fn = getattr(hypops, op)
    out = fn(x, y, c=1.0, backend="native")
    w = torch.randn((1,) + tuple(out.shape[1:]), generator=g, dtype=torch.float64)
    gx, gy = torch.autograd.grad(out, [x, y], w.float().expand(out.shape))
    x64, y64 = x.detach().double().requires_grad_(), y.detach().double().requires_grad_()
    ref = getattr(R, op)(x64, y64, c=1.0)
    rx, ry = torch.autograd.grad(ref, [x64, y64], w.expand(ref.shape))
    for got, want, what in ((out, ref, "forward"), (gx, rx, "grad x"), (gy, ry, "grad y")):
        err = (got.double() - want).abs().max().item()
        assert err <= 1e-4 * max(1.0, want.abs().max().item()), f"{op} {what}: max error {err}"


def test_prefetching_size_dist2plane_matches_reference():
    # dist2plane's forward prefetches in its first sweep from 32 MiB of inputs (2^16 x 64 float32: 48 MiB).
    n, d = 1 << 16, 64
    g = gen(17)
    x, p = (sample("point", n, d, 1.0, g, small=True).float() for _ in range(2))
    a = sample("normal", n, d, 1.0, g).float()
    out = hypops.dist2plane(x, p, a, c=1.0, backend="native")
    ref = R.dist2plane(x.double(), p.double(), a.double(), c=1.0)
    err = (out.double() - ref).abs().max().item()
    assert err <= 1e-4 * max(1.0, ref.abs().max().item()), f"dist2plane forward: max error {err}"


@pytest.fixture
def stream_min_bytes():
    """Yields a function that sets the streaming-store threshold; restores the default afterwards."""
    yield _C._set_stream_min_bytes
    _C._set_stream_min_bytes(-2)


def test_stream_threshold_default_and_bad_value(stream_min_bytes):
    # the default is the last-level cache's size (sysconf); -1 (never) where it is unknown or on CPUs
    # other than x86-64, where the override is ignored
    default = _C.stream_min_bytes()
    assert default == -1 or default > 0
    assert hypops.info()["build"]["stream_min_bytes"] == default
    stream_min_bytes(0)
    assert _C.stream_min_bytes() == (0 if _C.has_stream_stores else -1)
    with pytest.raises(ValueError, match="stream_min_bytes"):
        stream_min_bytes(-3)


# the ops whose blocked sweeps stream their output rows (csrc/cpu/rowwise.h, dist_cpu.cpp, dist2plane_cpu.cpp)
STREAMING_OPS = ["expmap0", "logmap0", "expmap", "logmap", "mobius_add", "dist", "dist2plane"]


@pytest.mark.skipif(not _C.has_stream_stores, reason="streaming stores are x86-64 only")
@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("d", [1, 3, 5, 8, 37, 64, 100])
@pytest.mark.parametrize("op", STREAMING_OPS)
def test_streaming_stores_match_plain(kernels, stream_min_bytes, name, dtype, d, op):
    # Streaming stores (csrc/cpu/rows.h: stream_row) write vectors of the sweep's width (16, 32 or 64 bytes under
    # the baseline, AVX2 and AVX-512 kernels) from the first aligned element of a row, 16-byte ones and plain
    # stores around them: at these D the rows start at every alignment (D = 100: several wide vectors after an
    # unaligned start). They run only past the last-level cache's size, so here the threshold is lowered to 0:
    # forward and every gradient must equal the plain stores' up to rounding (the two loops may contract
    # a * x + b * y differently), also with a broadcast first input (stride 0 rows). The streamed run goes first
    # and every result is kept, so that an element it failed to write cannot hold a plain run's value.
    kernels(name)
    args, _ = _row_inputs(op, d, 1.0, "interior", dtype)
    g = gen(5)
    ct = torch.tensor(1.0, dtype=dtype)
    alive = []  # every result kept, so that no run's output lands in memory holding another's
    for broadcast in (False, True):
        a = [args[0][:1].expand_as(args[0])] + args[1:] if broadcast else args
        out_shape = args[0].shape[:-1] if op in ("dist", "dist2plane") else args[0].shape
        w = torch.randn(out_shape, generator=g, dtype=torch.float64).to(dtype)
        got = {}
        alive.append(got)
        for threshold in (0, -1):
            stream_min_bytes(threshold)
            out, grads = _row_call(op, a, ct, (True, False), w)
            got[threshold] = [out] + grads
        tol = 1e-12 if dtype == torch.float64 else 2e-6
        for k, (plain, streamed) in enumerate(zip(got[-1], got[0])):
            assert torch.isfinite(plain).all()
            scale = max(1.0, plain.abs().max().item())
            torch.testing.assert_close(streamed, plain, rtol=tol, atol=tol * scale, msg=f"{op} output {k}")


@pytest.mark.skipif(not _C.has_stream_stores, reason="streaming stores are x86-64 only")
@pytest.mark.parametrize("name", KERNELS + ["scalar"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("d", [37, 64])
@pytest.mark.parametrize("op", ["mobius_add", "expmap", "logmap"])
def test_streaming_stores_match_plain_per_row_forward(kernels, stream_min_bytes, name, dtype, d, op):
    # The binary forwards that evaluate their coefficients row by row stream too (csrc/cpu/rowwise.h):
    # mobius_add's beyond kBlockedForwardMaxBytes (2 MiB of rows read and written; 6000 rows of D >= 37 are
    # past it) under every kernel set, and all three under the "scalar" kernels.
    kernels(name)
    g = gen(7)
    x, y = (sample(k, 6000, d, 1.0, g, small=True).to(dtype) for k in ROW_OPS[op])
    ct = torch.tensor(1.0, dtype=dtype)
    f = getattr(torch.ops.hypops, op)
    stream_min_bytes(0)
    streamed = f(x, y, ct)
    stream_min_bytes(-1)
    plain = f(x, y, ct)
    assert torch.isfinite(plain).all()
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    torch.testing.assert_close(streamed, plain, rtol=tol, atol=tol)


# --- the stages are vector code -----------------------------------------------------------------------------
# gcc may leave a `#pragma omp simd` loop scalar without an error (a select between two Dual numbers did so to
# logmap's backward stage once, halving its speed, while every test still passed). The per-ISA objects of the
# editable build (build/*/CMakeFiles/hypops_isa_<isa>.dir/) are disassembled, and every function of the
# per-row and per-pair stages must be mostly vector code of its width.
_BUILD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build")


def _functions(obj):
    """{demangled name: (instructions, instructions naming a register of each class)} of an object file."""
    out = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", obj], capture_output=True, text=True,
                         check=True).stdout
    funcs, cur = {}, None
    for line in out.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.*)>:$", line.strip())
        if head:
            cur = head.group(1)
            funcs[cur] = {"n": 0, "xmm": 0, "ymm": 0, "zmm": 0}
        elif cur is not None and re.match(r"^\s*[0-9a-f]+:\s", line):
            funcs[cur]["n"] += 1
            for reg in ("xmm", "ymm", "zmm"):
                funcs[cur][reg] += reg in line
    return funcs


@pytest.mark.parametrize("isa,reg", [("avx512", "zmm"), ("avx2", "ymm")])
@pytest.mark.parametrize("source", ["row_kernels", "bank_kernels"])
def test_stage_loops_are_vectorised(isa, reg, source):
    objs = glob.glob(os.path.join(_BUILD, "*", "CMakeFiles", f"hypops_isa_{isa}.dir", "**", f"{source}.cpp.o"),
                     recursive=True)
    if not objs or shutil.which("objdump") is None:
        pytest.skip("no editable build's per-ISA objects, or no objdump")
    funcs = _functions(objs[0])
    # the stage functions themselves; the table dispatchers (a switch and a jump) are too short to judge
    stages = {k: v for k, v in funcs.items() if v["n"] >= 50 and "(anonymous namespace)::" in k}
    want = (("unary_bwd<", "binary_bwd<", "dist_bwd<", "plane_bwd_t<", "unary_fwd_any<", "binary_fwd_any<",
             "dist_fwd<", "plane_fwd<", "math_array<") if source == "row_kernels"
            else ("bwd_row<", "fwd<", "asinh_array<"))
    for w in want:
        assert any(w in k for k in stages), f"{source} ({isa}): no function {w} found (renamed?)"
    scalar = {k: v for k, v in stages.items() if v[reg] < 0.1 * v["n"]}
    assert not scalar, f"{source} ({isa}): stage functions without {reg} vector code: " + "; ".join(
        f"{k[:120]} ({v[reg]} of {v['n']})" for k, v in scalar.items())
