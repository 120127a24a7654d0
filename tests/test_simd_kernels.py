"""The per-ISA CPU kernels of the gyroplane bank (csrc/cpu/simd/): each instruction set the CPU runs
("baseline" = x86-64 SSE2, "avx2" = AVX2+FMA) against the "scalar" kernels, the plain per-pair loop that
evaluates dist2plane_value through libm and its gradient on Dual numbers (the code before vectorisation).
This pins the vectorised asinh/log (csrc/cpu/simd/lane.h) to libm and the hand-derived partials
(dist2plane_grad in csrc/common/math.h) to the Dual evaluation, on interior and extreme inputs."""

import math
import os
import random
import struct

import pytest
import torch
from hyptest import RADII, extreme_args, gen, points_at, sample

from hypops import _backend

if _backend.native_error is not None:  # pragma: no cover
    pytest.skip("hypops extension not built", allow_module_level=True)

from hypops import _C  # noqa: E402


def _cpu_has_avx2_fma() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:  # pragma: no cover
        return False
    return "avx2" in flags and "fma" in flags


KERNELS = ["baseline"] + (["avx2"] if _cpu_has_avx2_fma() else [])


@pytest.fixture
def kernels():
    """Yields a function that switches the CPU kernels; restores the previous choice afterwards."""
    before = _C.cpu_kernels()
    yield _C._set_cpu_kernels
    _C._set_cpu_kernels(before)


def test_default_choice():
    want = os.environ.get("HYPOPS_CPU_KERNELS")
    if want in ("baseline", "scalar"):
        assert _C.cpu_kernels() == want
    else:
        assert _C.cpu_kernels() == ("avx2" if _cpu_has_avx2_fma() else "baseline")


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
        x, p, a = _bank_inputs(c, 7, extreme, dtype)
        kernels("scalar")
        want = _run(x, p, a, c, *flags)
        kernels(name)
        got = _run(x, p, a, c, *flags)
        for label, u, v in zip(["out", "grad_x", "grad_p", "grad_a", "grad_c"], got, want):
            try:
                _close(u, v, rtol)
            except AssertionError as e:
                raise AssertionError(f"{label}, c={c}: {e}") from None
