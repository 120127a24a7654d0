"""Triton wrapped normal on the ball: rsample and log_prob, forward and hand-derived backward. Same formulas
as csrc/common/math.h (wrapped_normal_rsample_coef, wrapped_normal_log_prob_rows) and
csrc/cpu/wrapped_normal_cpu.cpp:

  rsample(mu, std, eps) = A mu + B v,  v = std * eps / 2,  (A, B) = Möbius-addition coefficients of
      mu (+) t v with t = tanh(min(sqrt(c)|v|, 15)) / (sqrt(c)|v|), projected.
  log_prob(z, mu, std) = -q/2 - (D - 1) log_sinhc(sqrt(c) d) - sum log std - (D/2) log 2 pi, with
      den = (1 - c|mu|^2)(1 - c|z|^2) + c|z - mu|^2, |w| = sqrt(|z - mu|^2 / den), k = 2 A(sqrt(c)|w|) / den,
      A(u) = artanh(min(u, 1 - 1e-7))/u, d = 2 A |w|, a = 1 - c|mu|^2, b = c|z - mu|^2 and
      q = k^2 (a^2 wdd - 2 a b wdm + b^2 wmm) = |v / std|^2 for v = lambda_mu logmap(mu, z), where
      wdd = sum (z-mu)^2/std^2, wdm = sum (z-mu) mu/std^2, wmm = sum mu^2/std^2.

std is diagonal [..., D] or isotropic [..., 1]. The isotropic case is read as one scalar per row (ISO) rather
than expanded to [..., D] in memory; its gradient is the row sum of the per-coordinate one.

Backward, with l the incoming gradient contracted with the output and l_r = dl/dr for each reduction r:
  rsample:  grad_mu = A g + 2 l_mm mu + l_mv v,  grad_v = B g + 2 l_vv v + l_mv mu,
            grad_std = grad_v eps / 2,  grad_eps = grad_v std / 2.
  log_prob: grad_z   = 2 l_zz z + 2 l_dd (z - mu) + (2 l_wdd (z - mu) + l_wdm mu) / std^2,
            grad_mu  = 2 l_mm mu - 2 l_dd (z - mu)
                       + (-2 l_wdd (z - mu) + l_wdm (z - 2 mu) + 2 l_wmm mu) / std^2,
            grad_std = -2 (l_wdd (z - mu)^2 + l_wdm (z - mu) mu + l_wmm mu^2) / std^3 - g / std.
"""

import math

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._math import MIN_DENOM, clamp_min, clamped_artanhc, log_sinhc, safe_norm, tanh_over_z, to_acc
from ._register import register_autograd, register_backend
from ._rowwise import _grad_c_buffer, _tile, _zeros, acc64, blocks, eps_of, row_stride
from .mobius_add import mobius_add_bwd, mobius_add_fwd

HALF_LOG_2PI = tl.constexpr(0.5 * math.log(2.0 * math.pi))


def wn_rows(a, b, std):
    """a, b [..., D] and std [..., D] or [..., 1] broadcast over their leading dims and viewed as [N, D]
    (unit column stride) and [N, 1] or [N, D]. Returns (lead shape, N, D, iso, a, b, std)."""
    D = a.shape[-1]
    lead = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1], std.shape[:-1])
    N = math.prod(lead)
    iso = std.shape[-1] == 1 and D > 1
    mats = []
    for t, w in ((a, D), (b, D), (std, 1 if iso else D)):
        m = t.expand(*lead, w).reshape(N, w)
        if m.stride(1) != 1 and w > 1:
            m = m.contiguous()
        mats.append(m)
    return lead, N, D, iso, *mats


@triton.jit
def _std_tile(s_ptr, r, rmask, ss, cols, m, ISO: tl.constexpr, ACC64: tl.constexpr):
    # 1 in masked lanes: the kernels divide by std
    if ISO:
        s = to_acc(tl.load(s_ptr + r * ss, mask=rmask, other=1.0), ACC64)
        return s[:, None]
    else:
        return to_acc(tl.load(s_ptr + r[:, None] * ss + cols[None, :], mask=m, other=1.0), ACC64)


# --- rsample ---------------------------------------------------------------------------------------------
@triton.jit
def rsample_coef(mm, vv, mv, c, EPS: tl.constexpr):
    n, _ = safe_norm(vv)
    t, _ = tanh_over_z(tl.sqrt(c) * n)
    a, b = mobius_add_fwd(mm, t * t * vv, t * mv, c, EPS)
    return a, b * t


@triton.jit
def rsample_coef_bwd(mm, vv, mv, c, EPS: tl.constexpr, gm, gv):
    """(A, B, l_mm, l_vv, l_mv, l_c) for l = A <g,mu> + B <g,v>."""
    sc = tl.sqrt(c)
    n, dn = safe_norm(vv)
    t, dt = tanh_over_z(sc * n)
    # Möbius-addition partials with the second point y = t v held fixed (|y|^2 = t^2 vv, <mu,y> = t mv)...
    a, bp, lmm, lyy, lmy, lc = mobius_add_bwd(mm, t * t * vv, t * mv, c, EPS, gm, t * gv)
    # ...then through t, which also scales gy = t <g,v> directly
    lt = bp * gv + lyy * 2.0 * t * vv + lmy * mv
    lvv = lyy * t * t
    lmv = lmy * t
    lz = lt * dt  # t = T(z), z = sqrt(c) n
    lvv += lz * sc * dn
    lc += lz * n / (2.0 * sc)
    return a, bp * t, lmm, lvv, lmv, lc


@triton.jit
def _rsample_reduce(m_ptr, s_ptr, e_ptr, g_ptr, r, rmask, D, sm, ss, se, sg, GRAD: tl.constexpr,
                    ISO: tl.constexpr, ACC64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    mm = _zeros(BLOCK_M, ACC64)
    vv = _zeros(BLOCK_M, ACC64)
    mv = _zeros(BLOCK_M, ACC64)
    gm = _zeros(BLOCK_M, ACC64)
    gv = _zeros(BLOCK_M, ACC64)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        mu = _tile(m_ptr, r, sm, cols, m, ACC64)
        v = _std_tile(s_ptr, r, rmask, ss, cols, m, ISO, ACC64) * _tile(e_ptr, r, se, cols, m, ACC64) * 0.5
        mm += tl.sum(mu * mu, 1)
        vv += tl.sum(v * v, 1)
        mv += tl.sum(mu * v, 1)
        if GRAD:
            g = _tile(g_ptr, r, sg, cols, m, ACC64)
            gm += tl.sum(g * mu, 1)
            gv += tl.sum(g * v, 1)
    return mm, vv, mv, gm, gv


@triton.jit
def rsample_fwd_kernel(m_ptr, s_ptr, e_ptr, out_ptr, c_ptr, N, D, sm, ss, se, EPS: tl.constexpr,
                       ISO: tl.constexpr, ACC64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    r = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = r < N
    c = to_acc(tl.load(c_ptr), ACC64)
    mm, vv, mv, _, _ = _rsample_reduce(m_ptr, s_ptr, e_ptr, m_ptr, r, rmask, D, sm, ss, se, 0, False, ISO,
                                       ACC64, BLOCK_M, BLOCK_D)
    A, B = rsample_coef(mm, vv, mv, c, EPS)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        mu = _tile(m_ptr, r, sm, cols, m, ACC64)
        v = _std_tile(s_ptr, r, rmask, ss, cols, m, ISO, ACC64) * _tile(e_ptr, r, se, cols, m, ACC64) * 0.5
        o = A[:, None] * mu + B[:, None] * v
        tl.store(out_ptr + r[:, None] * D + cols[None, :], o.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def rsample_bwd_kernel(g_ptr, m_ptr, s_ptr, e_ptr, gm_ptr, gs_ptr, ge_ptr, gc_ptr, c_ptr, N, D, sg, sm, ss,
                       se, EPS: tl.constexpr, ISO: tl.constexpr, ACC64: tl.constexpr, BLOCK_M: tl.constexpr,
                       BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    r = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = r < N
    c = to_acc(tl.load(c_ptr), ACC64)
    mm, vv, mv, gmv, gvv = _rsample_reduce(m_ptr, s_ptr, e_ptr, g_ptr, r, rmask, D, sm, ss, se, sg, True, ISO,
                                           ACC64, BLOCK_M, BLOCK_D)
    A, B, lmm, lvv, lmv, lc = rsample_coef_bwd(mm, vv, mv, c, EPS, gmv, gvv)
    gs_iso = _zeros(BLOCK_M, ACC64)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        mu = _tile(m_ptr, r, sm, cols, m, ACC64)
        s = _std_tile(s_ptr, r, rmask, ss, cols, m, ISO, ACC64)
        e = _tile(e_ptr, r, se, cols, m, ACC64)
        g = _tile(g_ptr, r, sg, cols, m, ACC64)
        v = s * e * 0.5
        grad_v = B[:, None] * g + (2.0 * lvv)[:, None] * v + lmv[:, None] * mu
        om = A[:, None] * g + (2.0 * lmm)[:, None] * mu + lmv[:, None] * v
        off = r[:, None] * D + cols[None, :]
        tl.store(gm_ptr + off, om.to(gm_ptr.dtype.element_ty), mask=m)
        tl.store(ge_ptr + off, (grad_v * s * 0.5).to(ge_ptr.dtype.element_ty), mask=m)
        gs = grad_v * e * 0.5
        if ISO:
            gs_iso += tl.sum(tl.where(m, gs, 0.0), 1)
        else:
            tl.store(gs_ptr + off, gs.to(gs_ptr.dtype.element_ty), mask=m)
    if ISO:
        tl.store(gs_ptr + r, gs_iso.to(gs_ptr.dtype.element_ty), mask=rmask)
    tl.store(gc_ptr + pid, tl.sum(tl.where(rmask, lc, 0.0), 0))


# --- log_prob --------------------------------------------------------------------------------------------
@triton.jit
def _log_prob_reduce(z_ptr, m_ptr, s_ptr, r, rmask, D, sz, sm, ss, ISO: tl.constexpr, ACC64: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    mm = _zeros(BLOCK_M, ACC64)
    zz = _zeros(BLOCK_M, ACC64)
    dd = _zeros(BLOCK_M, ACC64)
    wdd = _zeros(BLOCK_M, ACC64)
    wdm = _zeros(BLOCK_M, ACC64)
    wmm = _zeros(BLOCK_M, ACC64)
    ls = _zeros(BLOCK_M, ACC64)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        z = _tile(z_ptr, r, sz, cols, m, ACC64)
        mu = _tile(m_ptr, r, sm, cols, m, ACC64)
        s = _std_tile(s_ptr, r, rmask, ss, cols, m, ISO, ACC64)
        df = z - mu
        is2 = 1.0 / (s * s)
        mm += tl.sum(mu * mu, 1)
        zz += tl.sum(z * z, 1)
        dd += tl.sum(df * df, 1)
        wdd += tl.sum(df * df * is2, 1)
        wdm += tl.sum(df * mu * is2, 1)
        wmm += tl.sum(mu * mu * is2, 1)
        if not ISO:
            ls += tl.sum(tl.log(s), 1)  # masked lanes hold std = 1
    if ISO:
        ls = D * tl.log(to_acc(tl.load(s_ptr + r * ss, mask=rmask, other=1.0), ACC64))
    return mm, zz, dd, wdd, wdm, wmm, ls


@triton.jit
def log_prob_rows(mm, zz, dd, wdd, wdm, wmm, c, D):
    """-q/2 - (D - 1) log_sinhc(sqrt(c) d) (the module docstring's names)."""
    sc = tl.sqrt(c)
    den = clamp_min((1.0 - c * mm) * (1.0 - c * zz) + c * dd, MIN_DENOM)
    wn, _ = safe_norm(dd / den)
    Ac, _ = clamped_artanhc(sc * wn)
    k = 2.0 * Ac / den
    a = 1.0 - c * mm
    b = c * dd
    q = k * k * (a * a * wdd - 2.0 * a * b * wdm + b * b * wmm)
    L, _ = log_sinhc(sc * (2.0 * Ac * wn))
    return -0.5 * q - (D - 1) * L


@triton.jit
def log_prob_rows_bwd(mm, zz, dd, wdd, wdm, wmm, c, D, g):
    """(l_mm, l_zz, l_dd, l_wdd, l_wdm, l_wmm, l_c) for l = g * log_prob_rows(...), in reverse order of the
    forward steps."""
    sc = tl.sqrt(c)
    P0 = (1.0 - c * mm) * (1.0 - c * zz) + c * dd
    dpass = P0 >= MIN_DENOM
    den = tl.where(dpass, P0, MIN_DENOM)
    qw = dd / den
    wn, dwn = safe_norm(qw)
    u = sc * wn
    Ac, dAc = clamped_artanhc(u)
    k = 2.0 * Ac / den
    a = 1.0 - c * mm
    b = c * dd
    P = a * a * wdd - 2.0 * a * b * wdm + b * b * wmm
    d = 2.0 * Ac * wn
    _, dL = log_sinhc(sc * d)
    # out = -q/2 - (D - 1) L(sqrt(c) d),  q = k^2 P
    lq = -0.5 * g
    lk = lq * 2.0 * k * P
    lP = lq * k * k
    lx = -(D - 1) * g * dL
    lsc = lx * d
    ld = lx * sc
    # P = a^2 wdd - 2ab wdm + b^2 wmm, a = 1 - c mm, b = c dd
    lwdd = lP * a * a
    lwdm = -2.0 * lP * a * b
    lwmm = lP * b * b
    la = lP * (2.0 * a * wdd - 2.0 * b * wdm)
    lb = lP * (2.0 * b * wmm - 2.0 * a * wdm)
    lmm = -c * la
    lc = -mm * la + dd * lb
    ldd = c * lb
    # d = 2 Ac(u) wn and k = 2 Ac(u) / den, u = sqrt(c) wn
    lAc = ld * 2.0 * wn + lk * 2.0 / den
    lwn = ld * 2.0 * Ac
    lden = -lk * k / den
    lu = lAc * dAc
    lwn += lu * sc
    lsc += lu * wn
    # wn = sqrt(dd / den)
    lqw = lwn * dwn
    ldd += lqw / den
    lden += -lqw * qw / den
    # den = (1 - c mm)(1 - c zz) + c dd, floored
    lden = tl.where(dpass, lden, 0.0)
    lmm += -lden * c * (1.0 - c * zz)
    lzz = -lden * c * (1.0 - c * mm)
    ldd += lden * c
    lc += lden * (dd - mm * (1.0 - c * zz) - zz * (1.0 - c * mm))
    lc += lsc / (2.0 * sc)
    return lmm, lzz, ldd, lwdd, lwdm, lwmm, lc


@triton.jit
def log_prob_fwd_kernel(z_ptr, m_ptr, s_ptr, out_ptr, c_ptr, N, D, sz, sm, ss, ISO: tl.constexpr,
                        ACC64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    r = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = r < N
    c = to_acc(tl.load(c_ptr), ACC64)
    mm, zz, dd, wdd, wdm, wmm, ls = _log_prob_reduce(z_ptr, m_ptr, s_ptr, r, rmask, D, sz, sm, ss, ISO, ACC64,
                                                     BLOCK_M, BLOCK_D)
    # D times a float constant would be formed in float32 (an int times a Python float): go through ls's dtype
    out = log_prob_rows(mm, zz, dd, wdd, wdm, wmm, c, D) - ls - (ls * 0.0 + D) * HALF_LOG_2PI
    tl.store(out_ptr + r, out.to(out_ptr.dtype.element_ty), mask=rmask)


@triton.jit
def log_prob_bwd_kernel(g_ptr, z_ptr, m_ptr, s_ptr, gz_ptr, gm_ptr, gs_ptr, gc_ptr, c_ptr, N, D, sz, sm, ss,
                        ISO: tl.constexpr, ACC64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    r = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = r < N
    c = to_acc(tl.load(c_ptr), ACC64)
    g = to_acc(tl.load(g_ptr + r, mask=rmask, other=0.0), ACC64)
    mm, zz, dd, wdd, wdm, wmm, _ = _log_prob_reduce(z_ptr, m_ptr, s_ptr, r, rmask, D, sz, sm, ss, ISO, ACC64,
                                                    BLOCK_M, BLOCK_D)
    lmm, lzz, ldd, lwdd, lwdm, lwmm, lc = log_prob_rows_bwd(mm, zz, dd, wdd, wdm, wmm, c, D, g)
    gs_iso = _zeros(BLOCK_M, ACC64)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = rmask[:, None] & (cols[None, :] < D)
        z = _tile(z_ptr, r, sz, cols, m, ACC64)
        mu = _tile(m_ptr, r, sm, cols, m, ACC64)
        s = _std_tile(s_ptr, r, rmask, ss, cols, m, ISO, ACC64)
        df = z - mu
        is2 = 1.0 / (s * s)
        wd = (2.0 * lwdd)[:, None] * df
        oz = (2.0 * lzz)[:, None] * z + (2.0 * ldd)[:, None] * df + (wd + lwdm[:, None] * mu) * is2
        om = ((2.0 * lmm)[:, None] * mu - (2.0 * ldd)[:, None] * df
              + (lwdm[:, None] * (df - mu) - wd + (2.0 * lwmm)[:, None] * mu) * is2)
        gs = -2.0 * (lwdd[:, None] * df * df + lwdm[:, None] * df * mu + lwmm[:, None] * mu * mu) * is2 / s
        gs = gs - g[:, None] / s
        off = r[:, None] * D + cols[None, :]
        tl.store(gz_ptr + off, oz.to(gz_ptr.dtype.element_ty), mask=m)
        tl.store(gm_ptr + off, om.to(gm_ptr.dtype.element_ty), mask=m)
        if ISO:
            gs_iso += tl.sum(tl.where(m, gs, 0.0), 1)
        else:
            tl.store(gs_ptr + off, gs.to(gs_ptr.dtype.element_ty), mask=m)
    if ISO:
        tl.store(gs_ptr + r, gs_iso.to(gs_ptr.dtype.element_ty), mask=rmask)
    tl.store(gc_ptr + pid, tl.sum(tl.where(rmask, lc, 0.0), 0))


# --- ops -------------------------------------------------------------------------------------------------
def _reduce_to(t, lead, width, like):
    return t.view(*lead, width).sum_to_size(like.shape)


@triton_op("hypops::wrapped_normal_rsample_triton", mutates_args=())
def wrapped_normal_rsample_triton(
    mu: torch.Tensor, std: torch.Tensor, eps: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    lead, N, D, iso, mm, em, sm = wn_rows(mu, eps, std)
    out = torch.empty((*lead, D), dtype=mu.dtype, device=mu.device)
    bm, bd = blocks(N, D)
    wrap_triton(rsample_fwd_kernel)[(triton.cdiv(N, bm),)](
        mm, sm, em, out, c, N, D, row_stride(mm), row_stride(sm), row_stride(em), EPS=eps_of(mu), ISO=iso,
        ACC64=acc64(mu), BLOCK_M=bm, BLOCK_D=bd,
    )
    return out


@triton_op("hypops::wrapped_normal_rsample_triton_backward", mutates_args=())
def wrapped_normal_rsample_triton_backward(
    grad: torch.Tensor, mu: torch.Tensor, std: torch.Tensor, eps: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    lead, N, D, iso, mm, em, sm = wn_rows(mu, eps, std)
    gmat = grad.to(mu.dtype).expand(*lead, D).reshape(N, D)
    if gmat.stride(1) != 1 and D > 1:
        gmat = gmat.contiguous()
    S = 1 if iso else D
    gm = torch.empty((N, D), dtype=mu.dtype, device=mu.device)
    ge = torch.empty((N, D), dtype=mu.dtype, device=mu.device)
    gs = torch.empty((N, S), dtype=mu.dtype, device=mu.device)
    bm, bd = blocks(N, D)
    n_prog = triton.cdiv(N, bm)
    gc = _grad_c_buffer(n_prog, c)
    wrap_triton(rsample_bwd_kernel)[(n_prog,)](
        gmat, mm, sm, em, gm, gs, ge, gc, c, N, D, row_stride(gmat), row_stride(mm), row_stride(sm),
        row_stride(em), EPS=eps_of(mu), ISO=iso, ACC64=acc64(mu), BLOCK_M=bm, BLOCK_D=bd,
    )
    return (_reduce_to(gm, lead, D, mu), _reduce_to(gs, lead, S, std), _reduce_to(ge, lead, D, eps),
            gc.sum().to(c.dtype))


@triton_op("hypops::wrapped_normal_log_prob_triton", mutates_args=())
def wrapped_normal_log_prob_triton(
    z: torch.Tensor, mu: torch.Tensor, std: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    lead, N, D, iso, zm, mm, sm = wn_rows(z, mu, std)
    out = torch.empty(lead, dtype=z.dtype, device=z.device)
    bm, bd = blocks(N, D)
    wrap_triton(log_prob_fwd_kernel)[(triton.cdiv(N, bm),)](
        zm, mm, sm, out, c, N, D, row_stride(zm), row_stride(mm), row_stride(sm), ISO=iso, ACC64=acc64(z),
        BLOCK_M=bm, BLOCK_D=bd,
    )
    return out


@triton_op("hypops::wrapped_normal_log_prob_triton_backward", mutates_args=())
def wrapped_normal_log_prob_triton_backward(
    grad: torch.Tensor, z: torch.Tensor, mu: torch.Tensor, std: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    lead, N, D, iso, zm, mm, sm = wn_rows(z, mu, std)
    g = grad.to(z.dtype).expand(lead).reshape(N).contiguous()
    S = 1 if iso else D
    gz = torch.empty((N, D), dtype=z.dtype, device=z.device)
    gm = torch.empty((N, D), dtype=z.dtype, device=z.device)
    gs = torch.empty((N, S), dtype=z.dtype, device=z.device)
    bm, bd = blocks(N, D)
    n_prog = triton.cdiv(N, bm)
    gc = _grad_c_buffer(n_prog, c)
    wrap_triton(log_prob_bwd_kernel)[(n_prog,)](
        g, zm, mm, sm, gz, gm, gs, gc, c, N, D, row_stride(zm), row_stride(mm), row_stride(sm), ISO=iso,
        ACC64=acc64(z), BLOCK_M=bm, BLOCK_D=bd,
    )
    return (_reduce_to(gz, lead, D, z), _reduce_to(gm, lead, D, mu), _reduce_to(gs, lead, S, std),
            gc.sum().to(c.dtype))


register_autograd("wrapped_normal_rsample", 3)
register_autograd("wrapped_normal_log_prob", 3)
register_backend("wrapped_normal_rsample", reduces=False)
register_backend("wrapped_normal_log_prob", reduces=True)
