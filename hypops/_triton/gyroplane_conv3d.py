"""Triton gyroplane 3D convolution: the algorithm of csrc/common/gyroplane_conv3d.h (read its header comment)
with the Triton gyroplane bank (gyroplane_bank.py: torch GEMMs + the Triton dist2plane kernel) as the step,
in its earlier form: flat tiles of output rows accumulated channels-last and transposed once at the end,
and tied planes evaluated for the whole padded input at once (the native driver now writes each tile into
the channels-first output and evaluates tied planes in chunks of padded planes, which keeps its peak
memory within 2x input + output; this driver's peak is about one output larger).

For one kernel offset the window sum is a gyroplane bank over the input voxels that offset reads, so the
convolution is a loop over (tiles of output voxels) x (offsets) of bank calls accumulated into the tile's
output rows; temporaries are bounded by TILE_ELEMS entries per [rows, C_out] array, backward recomputes
each step (nothing per offset is saved), memory is O(input + output). Tied weights: the bank once per
padded voxel, then a k^3 box sum of strided views.
"""

from __future__ import annotations

import torch
from torch.library import triton_op

from .. import _backend
from ..ops.gyroplane_conv3d import register_autograd

TILE_ELEMS = 1 << 16  # entries of one [rows, C_out] temporary; the native driver's budget on CUDA


def _acc(x):
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class _Geometry:
    def __init__(self, x, p, stride, padding, dilation, kernel_size):
        self.B, self.D = x.shape[:2]
        self.C = p.shape[0]
        self.tied = p.dim() == 2
        self.ks, self.stride, self.pad, self.dil = kernel_size, stride, padding, dilation
        self.padded = [x.shape[2 + i] + 2 * padding[i] for i in range(3)]
        self.out = [(self.padded[i] - dilation[i] * (kernel_size[i] - 1) - 1) // stride[i] + 1 for i in range(3)]
        self.K = kernel_size[0] * kernel_size[1] * kernel_size[2]
        self.n_pad = self.B * self.padded[0] * self.padded[1] * self.padded[2]
        self.n_out = self.B * self.out[0] * self.out[1] * self.out[2]
        self.tile = max(1, TILE_ELEMS // max(self.C, 1))

    def offsets(self):
        """(kx, ky, kz) of every offset, in the order of p's flattened kernel dims."""
        for kx in range(self.ks[0]):
            for ky in range(self.ks[1]):
                for kz in range(self.ks[2]):
                    yield kx, ky, kz

    def shift(self, k):
        sy = self.padded[2]
        sx = self.padded[1] * sy
        return k[0] * self.dil[0] * sx + k[1] * self.dil[1] * sy + k[2] * self.dil[2]

    def window_base(self, device):
        """Row of the padded input read by offset 0, for every output voxel ([B, OX, OY, OZ] order)."""
        sy = self.padded[2]
        sx = self.padded[1] * sy
        sb = self.padded[0] * sx
        ar = lambda n, s: torch.arange(n, device=device) * s  # noqa: E731
        return (ar(self.B, sb).view(-1, 1, 1, 1) + ar(self.out[0], self.stride[0] * sx).view(1, -1, 1, 1)
                + ar(self.out[1], self.stride[1] * sy).view(1, 1, -1, 1)
                + ar(self.out[2], self.stride[2]).view(1, 1, 1, -1)).reshape(-1)

    def view(self, padded5, k):
        """The voxels offset k reads, as a strided view [B, OX, OY, OZ, F] of [B, Xp, Yp, Zp, F]."""
        v = padded5
        for i in range(3):
            start = k[i] * self.dil[i]
            v = v[(slice(None),) * (1 + i) + (slice(start, start + self.stride[i] * (self.out[i] - 1) + 1, self.stride[i]),)]
        return v

    def rows(self, x):
        """x [B, D, X, Y, Z] -> channels-last rows [B * Xp * Yp * Zp, D] padded with the origin."""
        pz, py, px = self.pad[2], self.pad[1], self.pad[0]
        xl = torch.nn.functional.pad(x.permute(0, 2, 3, 4, 1).to(_acc(x)), (0, 0, pz, pz, py, py, px, px))
        return xl.contiguous().view(self.n_pad, self.D)

    def planes(self, t):
        t = t.to(_acc(t))
        return t.contiguous() if self.tied else t.permute(2, 3, 4, 0, 1).reshape(self.K, self.C, self.D).contiguous()


def _bank(x, p, a, c):
    return torch.ops.hypops.gyroplane_bank_triton(x, p, a, c, True, False)


@triton_op("hypops::gyroplane_conv3d_triton", mutates_args=())
def gyroplane_conv3d_triton(x: torch.Tensor, p: torch.Tensor, a: torch.Tensor, c: torch.Tensor,
                            bias: torch.Tensor | None, stride: list[int], padding: list[int], dilation: list[int],
                            kernel_size: list[int]) -> torch.Tensor:
    g = _Geometry(x, p, stride, padding, dilation, kernel_size)
    rows, P, A, cc = g.rows(x), g.planes(p), g.planes(a), c.to(_acc(x))
    out = torch.zeros(g.n_out, g.C, dtype=rows.dtype, device=x.device)
    if g.tied:
        vox = torch.empty(g.n_pad, g.C, dtype=rows.dtype, device=x.device)
        for t0 in range(0, g.n_pad, g.tile):
            vox[t0:t0 + g.tile] = _bank(rows[t0:t0 + g.tile], P, A, cc)
        vox5 = vox.view(g.B, *g.padded, g.C)
        out5 = out.view(g.B, *g.out, g.C)
        for k in g.offsets():
            out5 += g.view(vox5, k)
    else:
        base = g.window_base(x.device)
        for t0 in range(0, g.n_out, g.tile):
            idx = base[t0:t0 + g.tile]
            o = out[t0:t0 + g.tile]
            for j, k in enumerate(g.offsets()):
                o += _bank(rows.index_select(0, idx + g.shift(k)), P[j], A[j], cc)
    if bias is not None:
        out += bias.to(out.dtype)
    return out.view(g.B, *g.out, g.C).permute(0, 4, 1, 2, 3).to(x.dtype).contiguous()


@triton_op("hypops::gyroplane_conv3d_triton_backward", mutates_args=())
def gyroplane_conv3d_triton_backward(grad: torch.Tensor, x: torch.Tensor, p: torch.Tensor, a: torch.Tensor,
                                     c: torch.Tensor, stride: list[int], padding: list[int], dilation: list[int],
                                     kernel_size: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = _Geometry(x, p, stride, padding, dilation, kernel_size)
    rows, P, A, cc = g.rows(x), g.planes(p), g.planes(a), c.to(_acc(x))
    G5 = grad.permute(0, 2, 3, 4, 1).to(rows.dtype)
    grows, gP, gA = torch.zeros_like(rows), torch.zeros_like(P), torch.zeros_like(A)
    gc = torch.zeros((), dtype=torch.float64, device=c.device)
    bwd = torch.ops.hypops.gyroplane_bank_triton_backward
    if g.tied:
        gvox = torch.zeros(g.B, *g.padded, g.C, dtype=rows.dtype, device=x.device)
        for k in g.offsets():
            g.view(gvox, k).add_(G5)
        gv = gvox.view(g.n_pad, g.C)
        for t0 in range(0, g.n_pad, g.tile):
            gx, gp, ga, gck = bwd(gv[t0:t0 + g.tile], rows[t0:t0 + g.tile], P, A, cc, True, False)
            grows[t0:t0 + g.tile] = gx
            gP += gp
            gA += ga
            gc += gck
    else:
        base = g.window_base(x.device)
        Grows = G5.reshape(g.n_out, g.C)
        for t0 in range(0, g.n_out, g.tile):
            gt, idx0 = Grows[t0:t0 + g.tile], base[t0:t0 + g.tile]
            for j, k in enumerate(g.offsets()):
                idx = idx0 + g.shift(k)
                gx, gp, ga, gck = bwd(gt, rows.index_select(0, idx), P[j], A[j], cc, True, False)
                grows.index_add_(0, idx, gx)  # within one offset no two output voxels read the same input voxel
                gP[j] += gp
                gA[j] += ga
                gc += gck
    gx5 = grows.view(g.B, *g.padded, g.D)[:, padding[0]:padding[0] + x.shape[2], padding[1]:padding[1] + x.shape[3],
                                         padding[2]:padding[2] + x.shape[4]]
    gx = gx5.permute(0, 4, 1, 2, 3).to(x.dtype).contiguous()
    if g.tied:
        gp_out, ga_out = gP.to(p.dtype), gA.to(a.dtype)
    else:
        back = lambda t: t.view(*kernel_size, g.C, g.D).permute(3, 4, 0, 1, 2).to(p.dtype).contiguous()  # noqa: E731
        gp_out, ga_out = back(gP), back(gA)
    return gx, gp_out, ga_out, gc.to(c.dtype)


register_autograd("gyroplane_conv3d_triton")


def _impl(x, p, a, *, c, bias, stride, padding, dilation, kernel_size):
    return torch.ops.hypops.gyroplane_conv3d_triton(x, p, a, c, bias, list(stride), list(padding), list(dilation),
                                                    list(kernel_size))


_backend.register("gyroplane_conv3d", "triton", _impl)
