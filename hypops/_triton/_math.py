"""Scalar math for the Triton kernels, written from exp/log/sqrt only.

Triton's interpreter (how CI runs these kernels on CPU) cannot call libdevice, so tanh, artanh and asinh
are built here, in forms that stay accurate: each quotient the ops need (tanh(z)/z, artanh(z)/z) and its
derivative switch to a Taylor series below z = 0.05, where the closed form cancels. The series are
truncated where the next term is below float64's epsilon at z = 0.05; the closed forms lose at most
eps/(2z) relative above it. The same code is what compiles for a GPU, so the interpreter tests it.

Constants mirror csrc/common/math.h (tests/test_constants.py pins hypops/_constants.py to it; this file
reads its values from there).
"""

import triton
import triton.language as tl

from .. import _constants as K

MIN_NORM = tl.constexpr(K.MIN_NORM)
MIN_NORM_SQ = tl.constexpr(K.MIN_NORM * K.MIN_NORM)
MIN_DENOM = tl.constexpr(K.MIN_DENOM)
TANH_CLAMP = tl.constexpr(K.TANH_CLAMP)
ARTANH_MAX = tl.constexpr(1.0 - K.ARTANH_CLAMP)
SERIES_BELOW = tl.constexpr(0.05)
LOG2 = tl.constexpr(0.6931471805599453)


# Clamps are written with tl.where, not tl.minimum/tl.maximum: those round a Python-float bound to float32
# (1 - 1e-7 becomes 0.99999988 in a float64 kernel), where tl.where and arithmetic keep it exact. Same
# semantics as csrc/common/math.h's max_c/min_c: the derivative follows the branch taken.
@triton.jit
def clamp_min(x, lo):
    return tl.where(x < lo, lo, x)


@triton.jit
def clamp_max(x, hi):
    return tl.where(x > hi, hi, x)


@triton.jit
def to_acc(x, ACC64: tl.constexpr):
    """Half types and float32 compute in float32, float64 in float64."""
    if ACC64:
        return x.to(tl.float64)
    else:
        return x.to(tl.float32)


@triton.jit
def safe_norm(sq):
    """sqrt floored at MIN_NORM (a zero norm gets derivative 0, as in torch); returns (norm, d norm/d sq)."""
    big = sq > MIN_NORM_SQ
    n = tl.where(big, tl.sqrt(tl.where(big, sq, 1.0)), MIN_NORM)
    return n, tl.where(big, 0.5 / n, 0.0)


@triton.jit
def tanhc(z):
    """tanh(z)/z and its derivative, for 0 <= z <= TANH_CLAMP."""
    z2 = z * z
    series = 1.0 - z2 / 3.0 + z2 * z2 * (2.0 / 15.0) - z2 * z2 * z2 * (17.0 / 315.0) + z2 * z2 * z2 * z2 * (62.0 / 2835.0)
    dseries = z * (-2.0 / 3.0 + z2 * (8.0 / 15.0) - z2 * z2 * (102.0 / 315.0) + z2 * z2 * z2 * (496.0 / 2835.0))
    zs = tl.where(z < SERIES_BELOW, 1.0, z)
    e = tl.exp(-2.0 * zs)
    th = (1.0 - e) / (1.0 + e)
    closed = th / zs
    dclosed = ((1.0 - th * th) - closed) / zs
    small = z < SERIES_BELOW
    return tl.where(small, series, closed), tl.where(small, dseries, dclosed)


@triton.jit
def artanhc(z):
    """artanh(z)/z and its derivative, for 0 <= z < 1."""
    z2 = z * z
    series = 1.0 + z2 * (1.0 / 3.0 + z2 * (1.0 / 5.0 + z2 * (1.0 / 7.0 + z2 * (1.0 / 9.0 + z2 * (1.0 / 11.0)))))
    dseries = z * (2.0 / 3.0 + z2 * (4.0 / 5.0 + z2 * (6.0 / 7.0 + z2 * (8.0 / 9.0 + z2 * (10.0 / 11.0)))))
    zs = tl.where(z < SERIES_BELOW, 0.5, z)
    closed = 0.5 * tl.log((1.0 + zs) / (1.0 - zs)) / zs
    dclosed = (1.0 / ((1.0 - zs) * (1.0 + zs)) - closed) / zs
    small = z < SERIES_BELOW
    return tl.where(small, series, closed), tl.where(small, dseries, dclosed)


@triton.jit
def tanh_over_z(z):
    """tanh(min(z, TANH_CLAMP)) / z and d/dz, for z >= 0 (above the clamp tanh is constant)."""
    t, dt = tanhc(clamp_max(z, TANH_CLAMP))
    th15 = t * TANH_CLAMP  # tanh(15), used only above the clamp (where t = tanhc(15))
    over = z > TANH_CLAMP
    zs = tl.where(over, z, 1.0)
    return tl.where(over, th15 / zs, t), tl.where(over, -th15 / (zs * zs), dt)


@triton.jit
def clamped_artanhc(z):
    """artanh(min(z, 1 - ARTANH_CLAMP)) / z and d/dz, for z >= 0."""
    a, da = artanhc(clamp_max(z, ARTANH_MAX))
    top = a * ARTANH_MAX  # artanh(ARTANH_MAX), used above the clamp
    over = z > ARTANH_MAX
    zs = tl.where(over, z, 1.0)
    return tl.where(over, top / zs, a), tl.where(over, -top / (zs * zs), da)


@triton.jit
def asinh_and_grad(x):
    """asinh(x) (odd, accurate for tiny and huge |x|) and its derivative 1/sqrt(1 + x^2)."""
    ax = tl.abs(x)
    x2 = ax * ax
    series = ax * (1.0 - x2 * (1.0 / 6.0 - x2 * (3.0 / 40.0 - x2 * (15.0 / 336.0 - x2 * (105.0 / 3456.0)))))
    # Above 1e8, sqrt(1 + x^2) == |x| in float64 and x^2 could overflow float32: log(2|x|).
    mid = tl.where(ax < SERIES_BELOW, 1.0, clamp_max(ax, 1e8))
    closed = tl.log(mid + tl.sqrt(1.0 + mid * mid))
    axl = tl.where(ax > 1e8, ax, 1.0)
    huge = LOG2 + tl.log(axl)
    v = tl.where(ax < SERIES_BELOW, series, tl.where(ax > 1e8, huge, closed))
    v = tl.where(x < 0, -v, v)
    inv = 1.0 / tl.where(ax > 1.0, ax, 1.0)
    g = tl.where(ax > 1.0, inv / tl.sqrt(1.0 + inv * inv), 1.0 / tl.sqrt(1.0 + x2))
    return v, g


# log(sinh(x)/x) = sum_n 2^(2n) B_2n x^(2n) / (2n (2n)!). The series is used below x = 0.25 (not 0.05 as in
# csrc/common/math.h) because the derivative's closed form, coth(x) - 1/x, cancels: in float32 at x = 0.05
# it keeps only ~4 digits, at 0.25 ~5.5. Eight terms reach float64's epsilon at 0.25 ((x/pi)^2 per term).
LOG_SINHC_SERIES_BELOW = tl.constexpr(0.25)


@triton.jit
def log_sinhc(x):
    """log(sinh(x)/x) and its derivative coth(x) - 1/x, for x >= 0 (no overflow for large x)."""
    x2 = x * x
    series = x2 * (1.0 / 6.0 - x2 * (1.0 / 180.0 - x2 * (1.0 / 2835.0 - x2 * (1.0 / 37800.0 - x2 * (
        1.0 / 467775.0 - x2 * (691.0 / 3831077250.0 - x2 * (
            2.0 / 127702575.0 - x2 * (3617.0 / 2605132530000.0))))))))
    dseries = x * (1.0 / 3.0 - x2 * (1.0 / 45.0 - x2 * (2.0 / 945.0 - x2 * (1.0 / 4725.0 - x2 * (
        2.0 / 93555.0 - x2 * (1382.0 / 638512875.0 - x2 * (
            4.0 / 18243225.0 - x2 * (3617.0 / 162820783125.0))))))))
    small = x < LOG_SINHC_SERIES_BELOW
    xs = tl.where(small, 1.0, x)
    e = tl.exp(-2.0 * xs)
    # log(sinh x) = x + log(1 - e^-2x) - log 2, which cannot overflow; 1 - e^-2x >= 0.39 here, so no log1p
    closed = xs + tl.log(1.0 - e) - LOG2 - tl.log(xs)
    dclosed = (1.0 + e) / (1.0 - e) - 1.0 / xs
    return tl.where(small, series, closed), tl.where(small, dseries, dclosed)
