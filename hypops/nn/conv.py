"""hypops.nn.GyroplaneConv3d: gyroplane 3D convolution (SPEC §2) over hypops.gyroplane_conv3d."""

from __future__ import annotations

import torch
from torch import nn

from ..ops import gyroplane_conv3d
from ._common import (
    PlaneParams,
    check_parameterization,
    check_positive_int,
    check_triple,
    make_curvature,
)


class GyroplaneConv3d(PlaneParams, nn.Module):
    """Gyroplane 3D convolution: x [B, in_dim, X, Y, Z], a grid of points of the ball of radius
    1/sqrt(c) (channels first, like Conv3d) -> [B, out_channels, X', Y', Z'] with

        y[n, o, r] = bias[o] + sum over the window of signed dist2plane(x[n, :, r s + k dilation - padding],
                                                                         p[o, :, k], a[o, :, k])

    computed by ``hypops.gyroplane_conv3d``; padding is filled with the origin (a valid ball point).
    Output sizes follow Conv3d's formula.

    Weights (``parameterization="expmap0"``, the default), valid by construction:
    ``point_tangent`` u and ``normal`` a, [out_channels, in_dim, kx, ky, kz] (one plane per offset, the
    analogue of a Euclidean conv) or, with ``tied=True``, [out_channels, in_dim] (one plane for the whole
    window, the paper's eq. 7: a pointwise gyroplane map then a box sum); p = expmap0(u) along dim 1.
    Initialisation as ``hypops.nn.Gyroplane`` for every plane (u ~ N(0, 0.25²/in_dim), a ~ N(0, 1/in_dim)),
    ``bias`` (``[out_channels]``, when ``bias=True``) zero: each distance term starts centred at zero for
    inputs centred at the origin, so the window sum is too; its spread grows like sqrt(window size) for
    uncorrelated terms, as a Euclidean conv's does.

    ``parameterization="pvae"`` (requires ``tied=True``; the published layer has one GeodesicLayer for the
    whole window) uses pvae's ``_weight`` [out_channels, in_dim] and ``_bias`` [out_channels, 1] with the
    published swapped roles, exactly as ``Gyroplane(parameterization="pvae")`` documents; the published
    GyroplaneConvLayer has no additive bias, so pass ``bias=False`` to reproduce it. ``pvae_exact=True``
    (kernel size 1, stride 1, padding 0 only: the only configuration the published layer could run) also
    copies the published projection, as ``Gyroplane(pvae_exact=True)`` documents.

    c: a positive float or 0-dim tensor (fixed: a buffer), or a shared ``hypops.nn.Curvature``;
    ``learnable_c=True`` learns it as exp(log_c). ``backend`` is passed to every op the layer calls.
    """

    def __init__(self, in_dim: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 tied: bool = False, bias: bool = True, c=1.0, learnable_c: bool = False, *,
                 parameterization: str = "expmap0", pvae_exact: bool = False, backend: str | None = None):
        super().__init__()
        where = "hypops.nn.GyroplaneConv3d"
        self.in_dim = check_positive_int(where, "in_dim", in_dim)
        self.out_channels = check_positive_int(where, "out_channels", out_channels)
        self.kernel_size = check_triple(where, "kernel_size", kernel_size, 1)
        self.stride = check_triple(where, "stride", stride, 1)
        self.padding = check_triple(where, "padding", padding, 0)
        self.dilation = check_triple(where, "dilation", dilation, 1)
        self.tied = bool(tied)
        check_parameterization(where, parameterization)
        if parameterization == "pvae" and not self.tied:
            raise ValueError(f"{where}: parameterization='pvae' needs tied=True (the published layer applies "
                             "one gyroplane bank at every offset of the window)")
        pointwise = self.kernel_size == self.stride == (1, 1, 1) and self.padding == (0, 0, 0)
        if pvae_exact and (parameterization != "pvae" or not pointwise):
            raise ValueError(
                f"{where}: pvae_exact=True needs parameterization='pvae', kernel_size=1, stride=1 and "
                "padding=0 (the published layer's only working configuration)"
            )
        self.pvae_exact = bool(pvae_exact)
        self.backend = backend
        self.curvature = make_curvature(where, c, learnable_c)
        # reset_parameters (called by _init_planes) also zeroes the bias, so it must exist first.
        self.bias = nn.Parameter(torch.empty(self.out_channels)) if bias else None
        kernel = () if self.tied else self.kernel_size
        self._init_planes(parameterization, self.out_channels, self.in_dim, kernel)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 5 or x.shape[1] != self.in_dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"hypops.nn.GyroplaneConv3d: input x must be [B, in_dim={self.in_dim}, X, Y, Z], got {shape}"
            )
        c = self.curvature()
        if self.pvae_exact:  # kernel size 1: the published per-point map, channels moved last and back
            y = self._pvae_exact(x.movedim(1, -1), c).movedim(-1, 1)
            return y if self.bias is None else y + self.bias.view(-1, 1, 1, 1)
        p, a = self.effective_planes(c)
        return gyroplane_conv3d(x, p, a, c=c, bias=self.bias, stride=self.stride, padding=self.padding,
                                dilation=self.dilation, kernel_size=self.kernel_size, backend=self.backend)

    def extra_repr(self) -> str:
        s = (f"in_dim={self.in_dim}, out_channels={self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, tied={self.tied}, "
             f"bias={self.bias is not None}, parameterization={self.parameterization!r}")
        if self.pvae_exact:
            s += ", pvae_exact=True"
        if self.backend is not None:
            s += f", backend={self.backend!r}"
        return s
