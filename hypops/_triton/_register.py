"""Registration shared by the Triton op modules: autograd for a ``hypops::<name>_triton`` triton_op pair,
and the backend entry that calls it with the coordinate dimension moved last."""

from __future__ import annotations

import torch

from .. import _backend


def register_autograd(name: str, n_tensors: int) -> None:
    """Autograd for torch.ops.hypops.<name>_triton from its <name>_triton_backward op (inputs: n_tensors
    row tensors, then c, then flags)."""
    backward = getattr(torch.ops.hypops, f"{name}_triton_backward")

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[: n_tensors + 1])
        ctx.flags = inputs[n_tensors + 1 :]

    def _backward(ctx, grad):
        return tuple(backward(grad.contiguous(), *ctx.saved_tensors, *ctx.flags)) + (None,) * len(ctx.flags)

    torch.library.register_autograd(f"hypops::{name}_triton", _backward, setup_context=setup_context)


def register_backend(name: str, reduces: bool, flags: tuple[str, ...] = ()) -> None:
    """The triton backend entry of op `name`; `flags` names its boolean flags in schema order."""
    from ..ops._common import native_rowwise

    def impl(*tensors, c, dim, keepdim=False, **kw):
        return native_rowwise(f"{name}_triton", tensors, c, dim, flags=tuple(kw[f] for f in flags),
                              reduces=reduces, keepdim=keepdim)

    _backend.register(name, "triton", impl)
