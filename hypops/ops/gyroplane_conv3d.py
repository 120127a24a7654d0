"""hypops.gyroplane_conv3d: the public function, and its native op's fake and autograd registration.

Kernels: csrc/common/gyroplane_conv3d.h (a tiled loop over output voxels x kernel offsets of gyroplane-bank
calls, registered for CPU in csrc/cpu/gyroplane_conv3d_cpu.cpp and CUDA in csrc/cuda/gyroplane_conv3d_cuda.cu);
reference: hypops.reference.gyroplane_conv3d (unfold-based).
"""

from __future__ import annotations

import torch

from .. import _backend, reference
from .._checks import conv3d_args, curvature


def gyroplane_conv3d(x, p, a, *, c=1.0, bias=None, stride=1, padding=0, dilation=1, kernel_size=None, backend=None):
    """Gyroplane 3D convolution (SPEC §2): x [B, D, X, Y, Z] of ball points; p, a [C_out, D, kx, ky, kz]
    (a plane per offset) or [C_out, D] (tied: one plane for the whole window, kernel_size required);
    y[n, o, r] = bias[o] + sum over the window of signed, unscaled dist2plane; padding is the origin.
    Returns [B, C_out, OX, OY, OZ] with OX = (X + 2 padding - dilation (kx - 1) - 1) // stride + 1.

    The native kernel keeps memory O(input + output): it never builds the unfolded window, and backward
    recomputes what it needs instead of saving per-offset temporaries. Gradients flow to x, p, a, c and bias.
    """
    ks, s, pad, dil = conv3d_args("gyroplane_conv3d", x, p, a, bias, stride, padding, dilation, kernel_size)
    c = curvature("gyroplane_conv3d", c, x)
    fn = _backend.select("gyroplane_conv3d", x.device, backend)
    return fn(x, p, a, c=c, bias=bias, stride=s, padding=pad, dilation=dil, kernel_size=ks)


def _native(x, p, a, *, c, bias, stride, padding, dilation, kernel_size):
    return torch.ops.hypops.gyroplane_conv3d(x, p, a, c, bias, stride, padding, dilation, kernel_size)


def out_size(x_shape, C, stride, padding, dilation, kernel_size):
    """[B, C_out, OX, OY, OZ] of a gyroplane convolution of an input of x_shape."""
    spatial = [
        (x_shape[2 + i] + 2 * padding[i] - dilation[i] * (kernel_size[i] - 1) - 1) // stride[i] + 1 for i in range(3)
    ]
    return (x_shape[0], C, *spatial)


def register_autograd(name: str) -> None:
    """Autograd of torch.ops.hypops.<name> (inputs x, p, a, c, bias, geometry...) from its <name>_backward op
    (gradients of x, p, a, c); the bias gradient is grad summed over batch and voxels. Shared by the native
    op and the Triton one (hypops/_triton/gyroplane_conv3d.py)."""
    backward = getattr(torch.ops.hypops, f"{name}_backward")

    def setup_context(ctx, inputs, output):
        x, p, a, c, bias, *geometry = inputs
        ctx.save_for_backward(x, p, a, c)
        ctx.geometry = geometry
        ctx.has_bias = bias is not None

    def _backward(ctx, grad):
        grad = grad.contiguous()
        gx, gp, ga, gc = backward(grad, *ctx.saved_tensors, *ctx.geometry)
        gbias = grad.sum(dim=(0, 2, 3, 4)) if ctx.has_bias and ctx.needs_input_grad[4] else None
        return gx, gp, ga, gc, gbias, None, None, None, None

    torch.library.register_autograd(f"hypops::{name}", _backward, setup_context=setup_context)


_backend.register("gyroplane_conv3d", "torch", reference.gyroplane_conv3d)
_backend.register("gyroplane_conv3d", "native", _native)
if _backend.native_error is None:

    @torch.library.register_fake("hypops::gyroplane_conv3d")
    def _fake(x, p, a, c, bias, stride, padding, dilation, kernel_size):
        for n, t in (("p", p), ("a", a), ("bias", bias)):  # a meta input wins dispatch: raise, not garbage
            if t is not None and t.device != x.device:
                raise RuntimeError(f"hypops.gyroplane_conv3d: x is on {x.device} but {n} is on {t.device}")
        if c.device != x.device and c.device.type != "cpu":
            raise RuntimeError(f"hypops.gyroplane_conv3d: c is on {c.device} but the points are on {x.device}")
        return x.new_empty(out_size(x.shape, p.shape[0], stride, padding, dilation, kernel_size))

    @torch.library.register_fake("hypops::gyroplane_conv3d_backward")
    def _fake_backward(grad, x, p, a, c, stride, padding, dilation, kernel_size):
        return x.new_empty(x.shape), p.new_empty(p.shape), a.new_empty(a.shape), c.new_empty(())

    register_autograd("gyroplane_conv3d")
