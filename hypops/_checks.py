"""Argument checks shared by every public op. Messages name the op and the argument.

None of these reads a tensor's values back to the host except the curvature check on a CPU tensor
(where there is no device to synchronise with), and that one is skipped while torch.compile traces.
"""

from __future__ import annotations

import math
from numbers import Real

import torch

from ._constants import FLOAT_DTYPES, compute_dtype


def check_points(op: str, **tensors: torch.Tensor) -> torch.Tensor:
    """Checks the row tensors of one call: floating dtype, one dtype, one device, equal last dims.

    Returns the first tensor (the one whose dtype/device the result takes).
    """
    first_name, first = None, None
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"hypops.{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"hypops.{op}: {name} must be a floating-point tensor (float16, bfloat16, float32 or "
                f"float64), got {t.dtype}"
            )
        if t.dim() == 0:
            raise ValueError(f"hypops.{op}: {name} must have at least one dimension (the point's coordinates)")
        if first is None:
            first_name, first = name, t
            continue
        if t.dtype != first.dtype:
            raise TypeError(f"hypops.{op}: {first_name} is {first.dtype} but {name} is {t.dtype}; pass one dtype")
        if t.device != first.device:
            raise ValueError(f"hypops.{op}: {first_name} is on {first.device} but {name} is on {t.device}")
    return first


def check_last_dims(op: str, dim: int, **tensors: torch.Tensor) -> int:
    sizes = {}
    for name, t in tensors.items():
        try:
            sizes[name] = t.shape[dim]
        except IndexError:
            raise ValueError(f"hypops.{op}: dim={dim} is out of range for {name} of shape {tuple(t.shape)}") from None
    values = set(sizes.values())
    if len(values) > 1:
        detail = ", ".join(f"{n} has {s}" for n, s in sizes.items())
        raise ValueError(f"hypops.{op}: the coordinate dimensions (dim={dim}) differ: {detail}")
    size = values.pop()
    if size == 0:
        raise ValueError(f"hypops.{op}: the coordinate dimension (dim={dim}) is empty")
    return size


def curvature(op: str, c, like: torch.Tensor) -> torch.Tensor:
    """Validates c and returns it as a 0-dim tensor on like's device in like's compute dtype.

    A Python number is checked on the host. A tensor must be 0-dim and floating; its value is checked
    only when it lives on the CPU. Under torch.compile values are not read at all (that would break the
    graph); the native CPU kernels still reject c <= 0 and NaN themselves.
    """
    dtype = compute_dtype(like.dtype)
    if isinstance(c, torch.Tensor):
        if c.dim() != 0:
            raise ValueError(f"hypops.{op}: c must be a float or a 0-dim tensor, got shape {tuple(c.shape)}")
        if not c.is_floating_point():
            raise TypeError(f"hypops.{op}: c must be a floating-point tensor, got {c.dtype}")
        if c.device != like.device and c.device.type != "cpu":
            raise ValueError(f"hypops.{op}: c is on {c.device} but the points are on {like.device}")
        if c.device.type == "cpu" and not torch.compiler.is_compiling():
            v = float(c.detach())
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"hypops.{op}: c must be positive and finite (c is minus the curvature), got {v}")
        return c.to(device=like.device, dtype=dtype)
    if torch.compiler.is_compiling():
        # Dynamo may hand us a SymFloat here (a float that changes between calls); reading its value would
        # break the graph. The native kernels check c themselves.
        return torch.full((), c, dtype=dtype, device=like.device)
    if isinstance(c, bool) or not isinstance(c, Real):
        raise TypeError(f"hypops.{op}: c must be a float or a 0-dim tensor, got {type(c).__name__}")
    v = float(c)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"hypops.{op}: c must be positive and finite (c is minus the curvature), got {v}")
    return torch.full((), v, dtype=dtype, device=like.device)


def _triple(op: str, v, name: str) -> tuple[int, int, int]:
    t = (v, v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 3 or not all(isinstance(e, int) and not isinstance(e, bool) for e in t):
        raise ValueError(f"hypops.{op}: {name} must be an int or 3 ints, got {v!r}")
    return t


def conv3d_args(op: str, x, p, a, bias, stride, padding, dilation, kernel_size):
    """Checks the shapes and hyperparameters of a gyroplane 3D convolution (SPEC §2); returns
    (kernel_size, stride, padding, dilation) as int triples. Tied weights are p, a of shape [C_out, D]."""
    check_points(op, x=x, p=p, a=a)
    if x.dim() != 5:
        raise ValueError(f"hypops.{op}: x must be [B, D, X, Y, Z], got shape {tuple(x.shape)}")
    if p.shape != a.shape:
        raise ValueError(f"hypops.{op}: p and a must have one shape, got {tuple(p.shape)} and {tuple(a.shape)}")
    if p.dim() == 2:
        if kernel_size is None:
            raise ValueError(f"hypops.{op}: kernel_size is required with tied weights p, a: [C_out, D]")
        ks = _triple(op, kernel_size, "kernel_size")
    elif p.dim() == 5:
        ks = tuple(p.shape[2:])
        if kernel_size is not None and _triple(op, kernel_size, "kernel_size") != ks:
            raise ValueError(f"hypops.{op}: kernel_size={kernel_size} disagrees with p's {ks}")
    else:
        raise ValueError(f"hypops.{op}: p must be [C_out, D, kx, ky, kz] or [C_out, D], got {tuple(p.shape)}")
    if p.shape[1] != x.shape[1]:
        raise ValueError(f"hypops.{op}: x has D={x.shape[1]} but p has D={p.shape[1]}")
    s, pad, dil = (_triple(op, v, n) for v, n in ((stride, "stride"), (padding, "padding"), (dilation, "dilation")))
    for name, t, lo in (("kernel_size", ks, 1), ("stride", s, 1), ("dilation", dil, 1), ("padding", pad, 0)):
        if min(t) < lo:
            raise ValueError(f"hypops.{op}: {name} must be >= {lo}, got {t}")
    for i in range(3):
        span = dil[i] * (ks[i] - 1) + 1
        if x.shape[2 + i] + 2 * pad[i] < span:
            raise ValueError(
                f"hypops.{op}: x's spatial size {tuple(x.shape[2:])} plus padding {pad} is smaller than the "
                f"dilated kernel ({span} voxels in dim {i})"
            )
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.shape != (p.shape[0],):
            shape = tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__
            raise ValueError(f"hypops.{op}: bias must be a tensor of shape [C_out] = [{p.shape[0]}], got {shape}")
        if bias.dtype != x.dtype or bias.device != x.device:
            raise TypeError(f"hypops.{op}: bias must match x ({x.dtype} on {x.device}), got {bias.dtype} on {bias.device}")
    return ks, s, pad, dil
