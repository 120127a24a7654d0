"""Plumbing shared by the op modules: argument checks, and the registration that turns a native row op
(``torch.ops.hypops.<name>`` and ``<name>_backward``) into a torch.compile-ready op; their autograd is
one C++ kernel (csrc/autograd.cpp)."""

from __future__ import annotations

import torch

from .. import _backend
from .._checks import check_last_dims, check_points, curvature


def prepare(op: str, dim: int, c, **tensors: torch.Tensor) -> torch.Tensor:
    """Checks the inputs of a public call; returns c as a 0-dim tensor."""
    first = check_points(op, **tensors)
    check_last_dims(op, dim, **tensors)
    return curvature(op, c, first)


def register_rowwise(name: str, n_tensors: int, reduces: bool) -> None:
    """Fake (shape) functions of a native row op and its backward, for ``n_tensors`` row inputs, then c,
    then flags (their autograd is csrc/autograd.cpp). ``reduces``: the output drops the last dimension
    ([..., D] -> [...])."""
    if _backend.native_error is not None:
        return
    names = [a.name for a in getattr(torch.ops.hypops, name).default._schema.arguments]

    def _same_device(named, c):
        # The Meta key wins dispatch when any input is a meta tensor, so a CPU call with one meta input
        # lands here: raise (with the messages of csrc/common/checks.h) instead of returning garbage.
        (n0, t0), *rest = named
        for n, t in rest:
            if t.device != t0.device:
                raise RuntimeError(f"hypops.{name}: {n0} is on {t0.device} but {n} is on {t.device}")
        if c.device != t0.device and c.device.type != "cpu":
            raise RuntimeError(f"hypops.{name}: c is on {c.device} but the points are on {t0.device}")

    @torch.library.register_fake(f"hypops::{name}")
    def _fake(*args):
        tensors = args[:n_tensors]
        _same_device(list(zip(names, tensors)), args[n_tensors])
        shape = torch.broadcast_shapes(*(t.shape for t in tensors))
        return tensors[0].new_empty(shape[:-1] if reduces else shape)

    @torch.library.register_fake(f"hypops::{name}_backward")
    def _fake_backward(grad, *args):
        tensors, c = args[:n_tensors], args[n_tensors]
        _same_device([("grad", grad)] + list(zip(names, tensors)), c)
        return tuple(t.new_empty(t.shape) for t in tensors) + (c.new_empty(()),)


def native_rowwise(name: str, tensors, c, dim: int, flags=(), reduces=False, keepdim=False):
    """Calls torch.ops.hypops.<name> with the coordinate dimension moved last, and moves it back."""
    last = dim == -1
    moved = tensors if last else [t.movedim(dim, -1) for t in tensors]
    out = getattr(torch.ops.hypops, name)(*moved, c, *flags)
    if reduces:
        return out.unsqueeze(dim) if keepdim else out
    return out if last else out.movedim(-1, dim)
