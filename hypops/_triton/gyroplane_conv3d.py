"""Triton gyroplane 3D convolution: the algorithm and layout of csrc/common/gyroplane_conv3d.h (read its header
comment) with the Triton gyroplane bank (gyroplane_bank.py: torch GEMMs + the Triton dist2plane kernel) as the
step: tiles of output rows are whole batch items or voxel ranges of one item, each written straight into the
channels-first output (backward copies each tile's gradient rows); tied planes run in disjoint chunks of padded
x-planes of one item or of whole items. (The native driver's tiles are boxes of the output grid, so that its
gathers and gradient adds run on strided views: on the CPU index_add_ sorts its indices. Here the flat voxel
ranges gather by index; not measured on a GPU.)

For one kernel offset the window sum is a gyroplane bank over the input voxels that offset reads, so the
convolution is a loop over (tiles of output voxels) x (offsets) of bank calls accumulated into the tile's
output rows; temporaries are bounded by TILE_ELEMS entries per [rows, C_out] array (one padded x-plane's worth
at least, for tied chunks), backward recomputes each step (nothing per offset is saved), memory is
O(input + output). Tied weights: the bank once per padded voxel, then for each offset the part of the chunk it
reads is added to the outputs that read it (a k^3 box sum spread over chunks); backward adds the gradient the
other way, then runs the bank's backward on the chunk. Unlike the native driver, the chunks here are
channels-last ([rows, C_out] as the bank returns them; the native driver transposes each chunk first because
its CPU box sums were 3x slower against a channels-first output otherwise; not measured on a GPU).
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
        self.V = self.out[0] * self.out[1] * self.out[2]
        self.n_out = self.B * self.V
        self.tile = max(1, TILE_ELEMS // max(self.C, 1))
        self.plane = self.padded[1] * self.padded[2]  # rows of one padded x-plane

    def tiles(self):
        """(b0, b1, v0, v1): output voxels [v0, v1) of items [b0, b1), at most ``tile`` rows: whole items when
        one fits (small grids, many items: few bank calls), else voxel ranges of one item."""
        if self.V == 0:
            return
        if self.V <= self.tile:
            step = self.tile // self.V
            for b0 in range(0, self.B, step):
                yield b0, min(self.B, b0 + step), 0, self.V
        else:
            for b in range(self.B):
                for v0 in range(0, self.V, self.tile):
                    yield b, b + 1, v0, min(self.V, v0 + self.tile)

    def chunks(self):
        """(b0, b1, xp0, xp1) for the tied pass: padded x-planes [xp0, xp1) of items [b0, b1), disjoint, at most
        ``tile`` rows (one padded x-plane at least): whole items when one fits, else runs of planes of one item
        (csrc/common/gyroplane_conv3d.h: padded_chunks)."""
        if self.V == 0:
            return
        item = self.padded[0] * self.plane
        if item <= self.tile:
            step = self.tile // item
            for b0 in range(0, self.B, step):
                yield b0, min(self.B, b0 + step), 0, self.padded[0]
            return
        n = max(1, self.tile // self.plane)
        for b in range(self.B):
            for xp0 in range(0, self.padded[0], n):
                yield b, b + 1, xp0, min(self.padded[0], xp0 + n)

    def chunk_rows(self, b0, b1, xp0, xp1):
        """The padded rows of a chunk: planes [xp0, xp1) of items [b0, b1) (all planes when b1 > b0 + 1)."""
        return slice((b0 * self.padded[0] + xp0) * self.plane, ((b1 - 1) * self.padded[0] + xp1) * self.plane)

    def chunk_views(self, chunk5, k, xp0, xp1):
        """For offset k: the voxels of a chunk [nb, xp1 - xp0, Yp, Zp, F] that k reads, as [nb, n, OY, OZ, F],
        and the output x-planes [ox0, ox1) that read them (those with xp0 <= ox * stride + kx * dilation < xp1;
        None when there are none). Chunks are disjoint, so every padded voxel is evaluated once
        (csrc/common/gyroplane_conv3d.h: chunk_views)."""
        s, off = self.stride[0], k[0] * self.dil[0]
        ox0 = max(0, -(-(xp0 - off) // s))
        ox1 = min(self.out[0], (xp1 - 1 - off) // s + 1) if xp1 - 1 - off >= 0 else 0
        if ox1 <= ox0:
            return None
        src0 = ox0 * s + off - xp0
        v = chunk5[:, src0:src0 + s * (ox1 - ox0 - 1) + 1:s]
        for i in (1, 2):
            start = k[i] * self.dil[i]
            v = v[(slice(None),) * (1 + i) + (slice(start, start + self.stride[i] * (self.out[i] - 1) + 1, self.stride[i]),)]
        return v, ox0, ox1

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
    out = torch.empty(g.B, g.C, g.V, dtype=rows.dtype, device=x.device)  # channels-first, as returned
    if g.tied:
        out.zero_()
        out5 = out.view(g.B, g.C, *g.out)
        for b0, b1, xp0, xp1 in g.chunks():
            vox = _bank(rows[g.chunk_rows(b0, b1, xp0, xp1)], P, A, cc)
            vox5 = vox.view(b1 - b0, xp1 - xp0, g.padded[1], g.padded[2], g.C)
            for k in g.offsets():
                part = g.chunk_views(vox5, k, xp0, xp1)
                if part is not None:
                    v, ox0, ox1 = part
                    out5[b0:b1, :, ox0:ox1] += v.permute(0, 4, 1, 2, 3)
    else:
        base = g.window_base(x.device).view(g.B, g.V)
        for b0, b1, v0, v1 in g.tiles():
            idx = base[b0:b1, v0:v1].reshape(-1)
            o = torch.zeros(idx.numel(), g.C, dtype=rows.dtype, device=x.device)
            for j, k in enumerate(g.offsets()):
                o += _bank(rows.index_select(0, idx + g.shift(k)), P[j], A[j], cc)
            out[b0:b1, :, v0:v1] = o.view(b1 - b0, v1 - v0, g.C).transpose(1, 2)
    if bias is not None:
        out += bias.to(out.dtype).view(1, -1, 1)
    return out.view(g.B, g.C, *g.out).to(x.dtype)


@triton_op("hypops::gyroplane_conv3d_triton_backward", mutates_args=())
def gyroplane_conv3d_triton_backward(grad: torch.Tensor, x: torch.Tensor, p: torch.Tensor, a: torch.Tensor,
                                     c: torch.Tensor, stride: list[int], padding: list[int], dilation: list[int],
                                     kernel_size: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = _Geometry(x, p, stride, padding, dilation, kernel_size)
    rows, P, A, cc = g.rows(x), g.planes(p), g.planes(a), c.to(_acc(x))
    grows, gP, gA = torch.zeros_like(rows), torch.zeros_like(P), torch.zeros_like(A)
    gc = torch.zeros((), dtype=torch.float64, device=c.device)
    bwd = torch.ops.hypops.gyroplane_bank_triton_backward
    if g.tied:
        grad5 = grad.reshape(g.B, g.C, *g.out)
        for b0, b1, xp0, xp1 in g.chunks():
            gvox = torch.zeros(b1 - b0, xp1 - xp0, g.padded[1], g.padded[2], g.C, dtype=rows.dtype, device=x.device)
            for k in g.offsets():
                part = g.chunk_views(gvox, k, xp0, xp1)
                if part is not None:
                    v, ox0, ox1 = part
                    v.add_(grad5[b0:b1, :, ox0:ox1].permute(0, 2, 3, 4, 1))
            r = g.chunk_rows(b0, b1, xp0, xp1)
            gx, gp, ga, gck = bwd(gvox.view(r.stop - r.start, g.C), rows[r], P, A, cc, True, False)
            grows[r] = gx
            gP += gp
            gA += ga
            gc += gck
    else:
        grad3 = grad.reshape(g.B, g.C, g.V)
        base = g.window_base(x.device).view(g.B, g.V)
        for b0, b1, v0, v1 in g.tiles():
            gt = grad3[b0:b1, :, v0:v1].transpose(1, 2).reshape((b1 - b0) * (v1 - v0), g.C).to(rows.dtype)
            idx0 = base[b0:b1, v0:v1].reshape(-1)
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
