"""Fused Triton implementations of the shared-weight CP product (forward and backward kernels).

Two contraction orders: ``cp_product_fused`` (through the rank; used by CPTensorProduct with ``contraction="rank"``
on CUDA tensors when Triton is importable, disable with ``SCIML_TDN_TRITON=0``) and ``sh_first_fused`` (per-edge
d x d matrix applied on chip; ``contraction="sh_first_fused"``). Double backward (force training): the autograd
backward runs the Triton kernel only when no graph of the backward is needed; under ``create_graph=True`` it
evaluates the same gradient formulas with plain (differentiable) torch ops, so higher derivatives are exact. The
factors are treated as constants (no gradient).
"""

from __future__ import annotations

import importlib.util
import os

import torch

#: launch configuration: rows (edge x channel pairs) per program, rank-chunk width, warps per program
CONFIG = {"rows": 64, "block_rank": 32, "num_warps": 4}
#: tl.dot input precisions: "ieee" (true fp32, default), "tf32x3" (3 TF32 passes, ~fp32 accuracy), "tf32"
PRECISIONS = ("ieee", "tf32x3", "tf32")


def available() -> bool:
    """True when Triton is importable and not disabled by SCIML_TDN_TRITON=0."""
    return os.environ.get("SCIML_TDN_TRITON", "1") != "0" and importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """TRITON_INTERPRET=1: the kernels run in Triton's interpreter, on CPU tensors too (testing only)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def _next_pow2(n: int, minimum: int = 1) -> int:
    p = minimum
    while p < n:
        p *= 2
    return p


def _cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


def set_config(rows: int = 64, block_rank: int = 32, num_warps: int = 4) -> None:
    """Change the launch configuration (powers of two; rows >= 16, block_rank >= 16)."""
    CONFIG.update(rows=rows, block_rank=block_rank, num_warps=num_warps)


def _config(d: int, c: int) -> tuple[int, int, int, int]:
    """(edges per program BE, padded channels CP, padded components DP, rank chunk BR)."""
    cp = _next_pow2(c)
    be = max(1, CONFIG["rows"] // cp, 16 // cp)  # tl.dot needs >= 16 rows
    return be, cp, _next_pow2(d, 16), CONFIG["block_rank"]


def _precision(dtype: torch.dtype, precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision if dtype == torch.float32 else "ieee"


def fused_forward(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor,
                  fout: torch.Tensor, precision: str = "ieee") -> torch.Tensor:
    """Launch the forward kernel: x [E, d, C], y [E, d], w [E, C], factors [d, R] (contiguous) -> out [E, d, C]."""
    from sciml.tdn._triton_kernels import cp_fwd_kernel

    e, d, c = x.shape
    r = fx.shape[1]
    out = torch.empty(e, d, c, dtype=x.dtype, device=x.device)
    if e == 0:
        return out
    be, cp, dp, br = _config(d, c)
    grid = (_cdiv(e, be),)
    cp_fwd_kernel[grid](x, y, w, fx, fy, fout, out, e, d, c, r,
                        *x.stride(), *y.stride(), *w.stride(), *out.stride(),
                        BE=be, CP=cp, DP=dp, BR=br, PREC=_precision(x.dtype, precision), num_warps=CONFIG["num_warps"])
    return out


def fused_backward(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor,
                   fout: torch.Tensor, grad: torch.Tensor, precision: str = "ieee"
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the backward kernel: gradients w.r.t. (x, y, w) of sum(grad * out)."""
    from sciml.tdn._triton_kernels import cp_bwd_kernel

    e, d, c = x.shape
    r = fx.shape[1]
    gx = torch.empty(e, d, c, dtype=x.dtype, device=x.device)
    gy = torch.empty(e, d, dtype=x.dtype, device=x.device)
    gw = torch.empty(e, c, dtype=x.dtype, device=x.device)
    if e == 0:
        return gx, gy, gw
    be, cp, dp, br = _config(d, c)
    grid = (_cdiv(e, be),)
    cp_bwd_kernel[grid](x, y, w, grad, fx, fy, fout, gx, gy, gw, e, d, c, r,
                        *x.stride(), *y.stride(), *w.stride(), *grad.stride(),
                        BE=be, CP=cp, DP=dp, BR=br, PREC=_precision(x.dtype, precision), num_warps=CONFIG["num_warps"])
    return gx, gy, gw


def torch_backward(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor,
                   fout: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The backward kernel's formulas in differentiable torch ops (used when create_graph=True)."""
    xa = torch.matmul(x.transpose(1, 2), fx)  # [E, C, R]
    yb = torch.matmul(y, fy).unsqueeze(1)  # [E, 1, R]
    d0 = torch.matmul(grad.transpose(1, 2), fout)  # [E, C, R]
    wc = w.unsqueeze(2)  # [E, C, 1]
    gw = (xa * yb * d0).sum(dim=2)
    gx = torch.matmul(d0 * yb * wc, fx.t()).transpose(1, 2)
    gy = torch.matmul((d0 * xa * wc).sum(dim=1), fy.t())
    return gx, gy, gw


class _FusedProduct(torch.autograd.Function):
    """Autograd of a fused product; subclasses' ``forward`` call :func:`_launch` with their kernels. The backward
    runs the Triton kernel only when no graph of the backward is needed; under create_graph=True the differentiable
    torch formulas keep higher derivatives exact. Inputs after the gradient-carrying ones (CP factors) get None."""

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        inputs = ctx.saved_tensors
        _, kernel_backward, differentiable_backward = ctx.ops
        if torch.is_grad_enabled():  # create_graph=True: stay differentiable
            grads = differentiable_backward(*inputs, grad)
        else:
            grads = kernel_backward(*inputs, grad.contiguous(), ctx.precision)
        return (None, *grads, *(None,) * (len(inputs) - len(grads)))


def _launch(ctx, ops: tuple, precision: str, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Forward of a :class:`_FusedProduct`: ops = (forward launcher, backward launcher, torch backward)."""
    ctx.save_for_backward(*inputs)
    ctx.ops, ctx.precision = ops, precision
    return ops[0](*inputs, precision)


class _FusedCP(_FusedProduct):
    @staticmethod
    def forward(ctx, precision, *inputs):  # type: ignore[override]
        return _launch(ctx, (fused_forward, fused_backward, torch_backward), precision, inputs)


#: maximum padded component count of the SH-first kernels: T[e] is DP x DP in registers (lmax <= 7)
EDGE_MATRIX_MAX_DIM = 64
#: candidate (channel chunk, warps) launch configurations of the SH-first kernels; Triton's autotuner times them on
#: the first call for each (d, C, dtype) and keeps the fastest (the interpreter uses the first)
EDGE_MATRIX_CONFIGS = ((16, 4), (32, 4), (64, 4), (16, 8), (32, 8), (64, 8))
_TUNED: dict = {}


def _edge_kernel(name: str):
    """The named SH-first kernel: autotuned over EDGE_MATRIX_CONFIGS on a GPU, the plain kernel when interpreting."""
    import triton

    from sciml.tdn import _triton_kernels

    kernel = getattr(_triton_kernels, name)
    if interpreting():
        return kernel, {"BC": EDGE_MATRIX_CONFIGS[0][0], "num_warps": EDGE_MATRIX_CONFIGS[0][1]}
    if name not in _TUNED:
        configs = [triton.Config({"BC": bc}, num_warps=nw) for bc, nw in EDGE_MATRIX_CONFIGS]
        _TUNED[name] = triton.autotune(configs=configs, key=["D", "C"])(kernel)
    return _TUNED[name], {}


def tuned_configs() -> dict[str, dict[str, str]]:
    """The launch configuration the autotuner chose for each SH-first kernel and key (for benchmark reports)."""
    return {name: {str(key): str(cfg) for key, cfg in tuner.cache.items()} for name, tuner in _TUNED.items()}


def edge_matrix_forward(t: torch.Tensor, x: torch.Tensor, w: torch.Tensor, precision: str = "ieee") -> torch.Tensor:
    """Launch the SH-first forward kernel: t [E, d, d], x [E, d, C], w [E, C] -> (t @ x) * w [E, d, C]."""
    e, d, c = x.shape
    out = torch.empty(e, d, c, dtype=x.dtype, device=x.device)
    if e == 0:  # no empty grids on the GPU
        return out
    kernel, meta = _edge_kernel("edge_matrix_fwd_kernel")
    kernel[(e,)](t, x, w, out, d, c, *t.stride(), *x.stride(), *w.stride(), *out.stride(),
                 DP=_next_pow2(d, 16), PREC=_precision(x.dtype, precision), **meta)
    return out


def edge_matrix_backward(t: torch.Tensor, x: torch.Tensor, w: torch.Tensor, grad: torch.Tensor,
                         precision: str = "ieee") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the SH-first backward kernel: gradients w.r.t. (t, x, w) of sum(grad * (t @ x) * w)."""
    e, d, c = x.shape
    gt = torch.empty(e, d, d, dtype=x.dtype, device=x.device)
    gx = torch.empty(e, d, c, dtype=x.dtype, device=x.device)
    gw = torch.empty(e, c, dtype=x.dtype, device=x.device)
    if e == 0:
        return gt, gx, gw
    kernel, meta = _edge_kernel("edge_matrix_bwd_kernel")
    kernel[(e,)](t, x, w, grad, gt, gx, gw, d, c, *t.stride(), *x.stride(), *w.stride(), *grad.stride(),
                 DP=_next_pow2(d, 16), PREC=_precision(x.dtype, precision), **meta)
    return gt, gx, gw


def torch_edge_matrix_backward(t: torch.Tensor, x: torch.Tensor, w: torch.Tensor, grad: torch.Tensor
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The SH-first backward kernel's formulas in differentiable torch ops (used when create_graph=True)."""
    gs = grad * w.unsqueeze(1)
    u = torch.matmul(t.transpose(1, 2), grad)
    return torch.matmul(gs, x.transpose(1, 2)), u * w.unsqueeze(1), (x * u).sum(dim=1)


class _FusedEdgeMatrix(_FusedProduct):
    @staticmethod
    def forward(ctx, precision, *inputs):  # type: ignore[override]
        return _launch(ctx, (edge_matrix_forward, edge_matrix_backward, torch_edge_matrix_backward), precision, inputs)


def sh_first_fused(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, m_jki: torch.Tensor,
                   precision: str = "ieee") -> torch.Tensor:
    """Same result as ``cp_tp.sh_first_product``: T = y @ m_jki (one GEMM over all edges, torch), then the fused
    kernel applies each edge's d x d matrix to its channels and scales by w, with T[e] held on chip; the backward
    kernel returns the gradients of T, x and w in one pass (y's gradient is the GEMM's, via autograd).
    Shapes: x [E, d, C], y [E, d], w [E, C], m_jki [d, d*d] (``cp_tp.cp_reconstruction``), d <= 64 -> [E, d, C]."""
    e, d, _ = x.shape
    if d > EDGE_MATRIX_MAX_DIM:
        raise ValueError(f"sh_first_fused supports d = (lmax+1)^2 <= {EDGE_MATRIX_MAX_DIM}, got d = {d}")
    t = torch.matmul(y, m_jki).view(e, d, d)
    return _FusedEdgeMatrix.apply(precision, t, x, w)


def cp_product_fused(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor,
                     fout: torch.Tensor, precision: str = "ieee") -> torch.Tensor:
    """Same result as ``cp_tp.cp_product`` through the fused kernels. ``precision`` (float32 only): "ieee" exact fp32
    dots; "tf32x3" / "tf32" use tensor cores with lower accuracy (measure it; see docs/tdn.md).
    Shapes: x [E, d, C], y [E, d], w [E, C], factors [d, R] -> [E, d, C]."""
    return _FusedCP.apply(precision, x, y, w, fx.contiguous(), fy.contiguous(), fout.contiguous())
