"""hypops.gyroplane_conv3d: the public function. Today only the ``torch`` backend (the unfold-based
reference) serves it; the fused kernels are tracked in the gyroplane-convolution issue."""

from __future__ import annotations

from .. import _backend, reference
from .._checks import check_points, curvature


def gyroplane_conv3d(x, p, a, *, c=1.0, bias=None, stride=1, padding=0, dilation=1, kernel_size=None, backend=None):
    """Gyroplane 3D convolution (SPEC §2): x [B, D, X, Y, Z] of ball points; p, a [C_out, D, kx, ky, kz]
    (a plane per offset) or [C_out, D] (tied: one plane for the whole window, kernel_size required);
    y[n, o, r] = bias[o] + sum over the window of signed, unscaled dist2plane; padding is the origin.
    """
    check_points("gyroplane_conv3d", x=x, p=p, a=a)
    c = curvature("gyroplane_conv3d", c, x)
    fn = _backend.select("gyroplane_conv3d", x.device, backend)
    return fn(x, p, a, c=c, bias=bias, stride=stride, padding=padding, dilation=dilation, kernel_size=kernel_size)


_backend.register("gyroplane_conv3d", "torch", reference.gyroplane_conv3d)
