"""Triton kernels of the fused shared-weight CP product (imported only when they are launched; needs triton).

Rank contraction (``cp_*_kernel``): rows of every tile are (edge, channel) pairs, so each rank chunk is a small GEMM:
    xa = X[rows, d] @ Fx[d, r-chunk],  h = xa * yb,  acc[rows, d] += h @ Fout[d, r-chunk]^T
and the [E, C, R] intermediate never leaves registers.
SH-first contraction (``edge_matrix_*_kernel``): one program per edge holds that edge's d x d matrix T[e] in
registers and streams the channels through it in chunks: out[e] = (T[e] @ x[e]) * w[e], and the three gradients.
Set TRITON_INTERPRET=1 before the first launch to run them on CPU tensors (slow; for testing).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _rank_rows(E, C, BE: tl.constexpr, CP: tl.constexpr):
    """Tile rows of program_id(0): (edge, channel) pairs e, c [BE * CP], their validity, and the BE edges eb."""
    pid = tl.program_id(0).to(tl.int64)  # offsets exceed 2^31 for E * d * C > 2.1e9
    rows = tl.arange(0, BE * CP)
    e = pid * BE + rows // CP
    c = rows % CP
    eb = pid * BE + tl.arange(0, BE)
    return e, c, (e < E) & (c < C), eb


@triton.jit
def _rank_chunk(xt, yt, fx_ptr, fy_ptr, fo_ptr, dd, d_ok, r0, R,
                BE: tl.constexpr, CP: tl.constexpr, BR: tl.constexpr, PREC: tl.constexpr):
    """Factor columns r0..r0+BR (contiguous [D, R], zero beyond R) and the projections of the tile on them:
    xa = x @ Fx [BE * CP, BR] and yb = y @ Fy repeated over each edge's CP rows."""
    rr = r0 + tl.arange(0, BR)
    f_mask = d_ok[:, None] & (rr < R)[None, :]
    f_offs = dd[:, None] * R + rr[None, :]
    fx = tl.load(fx_ptr + f_offs, mask=f_mask, other=0.0)
    fy = tl.load(fy_ptr + f_offs, mask=f_mask, other=0.0)
    fo = tl.load(fo_ptr + f_offs, mask=f_mask, other=0.0)
    xa = tl.dot(xt, fx, input_precision=PREC)
    yb = tl.sum(yt[:, :, None] * fy[None, :, :], axis=1)
    ybr = tl.reshape(tl.broadcast_to(yb[:, None, :], (BE, CP, BR)), (BE * CP, BR))
    return fx, fy, fo, xa, ybr


@triton.jit
def cp_fwd_kernel(x_ptr, y_ptr, w_ptr, fx_ptr, fy_ptr, fo_ptr, out_ptr,
                  E, D, C, R,
                  sxe, sxd, sxc, sye, syd, swe, swc, soe, sod, soc,
                  BE: tl.constexpr, CP: tl.constexpr, DP: tl.constexpr, BR: tl.constexpr,
                  PREC: tl.constexpr):
    """out[e, k, c] = w[e, c] sum_r Fout[k, r] (sum_i x[e, i, c] Fx[i, r]) (sum_j y[e, j] Fy[j, r]); BE edges per program."""
    e, c, row_ok, eb = _rank_rows(E, C, BE, CP)
    dd = tl.arange(0, DP)
    d_ok = dd < D
    tile_mask = row_ok[:, None] & d_ok[None, :]
    xt = tl.load(x_ptr + e[:, None] * sxe + dd[None, :] * sxd + c[:, None] * sxc, mask=tile_mask, other=0.0)
    yt = tl.load(y_ptr + eb[:, None] * sye + dd[None, :] * syd, mask=(eb < E)[:, None] & d_ok[None, :], other=0.0)
    acc = tl.zeros((BE * CP, DP), dtype=xt.dtype)
    for r0 in range(0, R, BR):
        fx, fy, fo, xa, ybr = _rank_chunk(xt, yt, fx_ptr, fy_ptr, fo_ptr, dd, d_ok, r0, R, BE, CP, BR, PREC)
        acc += tl.dot(xa * ybr, tl.trans(fo), input_precision=PREC)
    wt = tl.load(w_ptr + e * swe + c * swc, mask=row_ok, other=0.0)
    acc = acc * wt[:, None]
    tl.store(out_ptr + e[:, None] * soe + dd[None, :] * sod + c[:, None] * soc, acc, mask=tile_mask)


@triton.jit
def cp_bwd_kernel(x_ptr, y_ptr, w_ptr, g_ptr, fx_ptr, fy_ptr, fo_ptr, gx_ptr, gy_ptr, gw_ptr,
                  E, D, C, R,
                  sxe, sxd, sxc, sye, syd, swe, swc, sge, sgd, sgc,
                  BE: tl.constexpr, CP: tl.constexpr, DP: tl.constexpr, BR: tl.constexpr,
                  PREC: tl.constexpr):
    """Gradients of cp_fwd_kernel's output (grad g [E, d, C]) w.r.t. x [E, d, C], y [E, d], w [E, C] (contiguous
    outputs). With d0 = g @ Fout (per row): gw = sum_r xa yb d0; gx = w (d0 yb) @ Fx^T; gy = (sum_c w d0 xa) @ Fy^T.
    A program holds all channels of its BE edges, so gy needs no atomics."""
    e, c, row_ok, eb = _rank_rows(E, C, BE, CP)
    dd = tl.arange(0, DP)
    d_ok = dd < D
    tile_mask = row_ok[:, None] & d_ok[None, :]
    e_ok = eb < E
    xt = tl.load(x_ptr + e[:, None] * sxe + dd[None, :] * sxd + c[:, None] * sxc, mask=tile_mask, other=0.0)
    gt = tl.load(g_ptr + e[:, None] * sge + dd[None, :] * sgd + c[:, None] * sgc, mask=tile_mask, other=0.0)
    yt = tl.load(y_ptr + eb[:, None] * sye + dd[None, :] * syd, mask=e_ok[:, None] & d_ok[None, :], other=0.0)
    wt = tl.load(w_ptr + e * swe + c * swc, mask=row_ok, other=0.0)
    gx = tl.zeros((BE * CP, DP), dtype=xt.dtype)
    gy = tl.zeros((BE, DP), dtype=xt.dtype)
    gw = tl.zeros((BE * CP,), dtype=xt.dtype)
    for r0 in range(0, R, BR):
        fx, fy, fo, xa, ybr = _rank_chunk(xt, yt, fx_ptr, fy_ptr, fo_ptr, dd, d_ok, r0, R, BE, CP, BR, PREC)
        d0 = tl.dot(gt, fo, input_precision=PREC)
        gw += tl.sum(xa * ybr * d0, axis=1)
        gx += tl.dot(d0 * ybr, tl.trans(fx), input_precision=PREC)
        t = tl.sum(tl.reshape(d0 * xa * wt[:, None], (BE, CP, BR)), axis=1)
        gy += tl.sum(t[:, None, :] * fy[None, :, :], axis=2)
    gx = gx * wt[:, None]
    # outputs are contiguous: gx [E, D, C], gy [E, D], gw [E, C]
    tl.store(gx_ptr + e[:, None] * (D * C) + dd[None, :] * C + c[:, None], gx, mask=tile_mask)
    tl.store(gy_ptr + eb[:, None] * D + dd[None, :], gy, mask=e_ok[:, None] & d_ok[None, :])
    tl.store(gw_ptr + e * C + c, gw, mask=row_ok)


@triton.jit
def _edge_matrix(t_ptr, D, ste, stk, sti, DP: tl.constexpr):
    """Edge e = program_id(0), component indices kk [DP] with validity, the T tile mask and T[e] (zero-padded; the
    compiler drops the load where T is not used)."""
    e = tl.program_id(0).to(tl.int64)
    kk = tl.arange(0, DP)
    d_ok = kk < D
    t_mask = d_ok[:, None] & d_ok[None, :]
    t = tl.load(t_ptr + e * ste + kk[:, None] * stk + kk[None, :] * sti, mask=t_mask, other=0.0)
    return e, kk, d_ok, t_mask, t


@triton.jit
def edge_matrix_fwd_kernel(t_ptr, x_ptr, w_ptr, out_ptr, D, C,
                           ste, stk, sti, sxe, sxd, sxc, swe, swc, soe, sod, soc,
                           DP: tl.constexpr, BC: tl.constexpr, PREC: tl.constexpr):
    """out[e, k, c] = w[e, c] sum_i T[e, k, i] x[e, i, c]; program e keeps T[e] (DP x DP, zero-padded) on chip."""
    e, kk, d_ok, t_mask, t = _edge_matrix(t_ptr, D, ste, stk, sti, DP)
    for c0 in range(0, C, BC):
        cc = c0 + tl.arange(0, BC)
        c_ok = cc < C
        m = d_ok[:, None] & c_ok[None, :]
        xb = tl.load(x_ptr + e * sxe + kk[:, None] * sxd + cc[None, :] * sxc, mask=m, other=0.0)
        wb = tl.load(w_ptr + e * swe + cc * swc, mask=c_ok, other=0.0)
        o = tl.dot(t, xb, input_precision=PREC) * wb[None, :]
        tl.store(out_ptr + e * soe + kk[:, None] * sod + cc[None, :] * soc, o, mask=m)


@triton.jit
def edge_matrix_bwd_kernel(t_ptr, x_ptr, w_ptr, g_ptr, gt_ptr, gx_ptr, gw_ptr, D, C,
                           ste, stk, sti, sxe, sxd, sxc, swe, swc, sge, sgd, sgc,
                           DP: tl.constexpr, BC: tl.constexpr, PREC: tl.constexpr, PART: tl.constexpr):
    """Gradients of edge_matrix_fwd_kernel's output (grad g [E, d, C]), one program per edge, contiguous outputs:
    u = T^T g (per channel chunk); gx = u * w; gw = sum_i x * u; gT = sum over chunks of (g * w) @ x^T.
    PART 0 writes all three in one pass; PART 1 only gx and gw, PART 2 only gT (two launches, fewer registers each)."""
    e, kk, d_ok, t_mask, t = _edge_matrix(t_ptr, D, ste, stk, sti, DP)
    gt = tl.zeros((DP, DP), dtype=t.dtype)
    for c0 in range(0, C, BC):
        cc = c0 + tl.arange(0, BC)
        c_ok = cc < C
        m = d_ok[:, None] & c_ok[None, :]
        xb = tl.load(x_ptr + e * sxe + kk[:, None] * sxd + cc[None, :] * sxc, mask=m, other=0.0)
        gb = tl.load(g_ptr + e * sge + kk[:, None] * sgd + cc[None, :] * sgc, mask=m, other=0.0)
        wb = tl.load(w_ptr + e * swe + cc * swc, mask=c_ok, other=0.0)
        if PART != 2:
            u = tl.dot(tl.trans(t), gb, input_precision=PREC)
            tl.store(gw_ptr + e * C + cc, tl.sum(xb * u, axis=0), mask=c_ok)
            tl.store(gx_ptr + e * (D * C) + kk[:, None] * C + cc[None, :], u * wb[None, :], mask=m)
        if PART != 1:
            gt += tl.dot(gb * wb[None, :], tl.trans(xb), input_precision=PREC)
    if PART != 1:
        tl.store(gt_ptr + e * (D * D) + kk[:, None] * D + kk[None, :], gt, mask=t_mask)
