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

#: launch configuration of the rank kernels: (edge x channel) rows per program, rank-chunk width, warps per program;
#: None = automatic (see ``rank_config``)
CONFIG: dict = {"rows": 64, "block_rank": None, "num_warps": None}
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


def set_config(rows: int = 64, block_rank: int | None = None, num_warps: int | None = None) -> None:
    """Change the rank kernels' launch configuration (powers of two; rows >= 16, block_rank >= 16; None = automatic)."""
    CONFIG.update(rows=rows, block_rank=block_rank, num_warps=num_warps)


def rank_config(d: int, c: int) -> dict[str, int]:
    """Launch parameters of the rank kernels for d components and c channels: edges per program BE, padded channels
    CP, padded components DP, rank chunk BR and num_warps. Automatic choice (ptxas for sm_90 reports no register
    spills with it up to L = 6 at C <= 64, and 12 B in the backward at L = 5-6, C = 128; see ``triton_resources``):
    BR = 32 for DP <= 16, else 16; 4 warps for <= 64 rows per program, else 8."""
    cp = _next_pow2(c)
    be = max(1, CONFIG["rows"] // cp, 16 // cp)  # tl.dot needs >= 16 rows
    dp = _next_pow2(d, 16)
    br = CONFIG["block_rank"] or (32 if dp <= 16 else 16)
    nw = CONFIG["num_warps"] or (4 if be * cp <= 64 else 8)
    return {"BE": be, "CP": cp, "DP": dp, "BR": br, "num_warps": nw}


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
    meta = rank_config(d, c)
    cp_fwd_kernel[(_cdiv(e, meta["BE"]),)](x, y, w, fx, fy, fout, out, e, d, c, r,
                                          *x.stride(), *y.stride(), *w.stride(), *out.stride(),
                                          PREC=_precision(x.dtype, precision), **meta)
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
    meta = rank_config(d, c)
    cp_bwd_kernel[(_cdiv(e, meta["BE"]),)](x, y, w, grad, fx, fy, fout, gx, gy, gw, e, d, c, r,
                                          *x.stride(), *y.stride(), *w.stride(), *grad.stride(),
                                          PREC=_precision(x.dtype, precision), **meta)
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
_ALL_CHUNKS = ((16, 4), (32, 4), (64, 4), (16, 8), (32, 8), (64, 8))
#: candidate (channel chunk BC, warps) launch configurations of the SH-first kernels per stage and padded dimension
#: DP: those that ptxas for sm_90 compiles without register spills in float32 ("ieee" and "tf32x3"; tested in
#: tests/test_tdn_triton_compile.py, table in benchmarks/results/static_sm90/triton_resources.md). On a GPU Triton's
#: autotuner times them on the first call for each (d, C, precision) and keeps the fastest; the interpreter uses the
#: first. Stages: the forward; the backward in one pass ("backward"), or split in two launches ("backward_gx": gx and
#: gw, "backward_gt": gT).
EDGE_MATRIX_CONFIGS: dict[str, dict[int, tuple[tuple[int, int], ...]]] = {
    "forward": {16: _ALL_CHUNKS, 32: _ALL_CHUNKS, 64: ((16, 4), (16, 8), (32, 8))},
    "backward": {16: ((16, 4), (32, 4), (16, 8), (32, 8), (64, 8)), 32: ((16, 4), (16, 8), (32, 8)),
                 64: ((16, 8), (32, 8))},
    "backward_gx": {16: _ALL_CHUNKS, 32: _ALL_CHUNKS, 64: ((16, 4), (16, 8))},
    "backward_gt": {16: _ALL_CHUNKS, 32: ((16, 4), (32, 4), (16, 8), (32, 8)),
                    64: ((16, 4), (32, 4), (16, 8), (32, 8), (64, 8))},
}
#: stage -> (kernel in _triton_kernels, its PART constexpr or None)
EDGE_MATRIX_STAGES = {"forward": ("edge_matrix_fwd_kernel", None), "backward": ("edge_matrix_bwd_kernel", 0),
                      "backward_gx": ("edge_matrix_bwd_kernel", 1), "backward_gt": ("edge_matrix_bwd_kernel", 2)}
#: how the SH-first backward runs: "fused" (one pass: reads g and x once, 8 resident warps per SM at L = 5-6) or
#: "split" (two launches: reads g and x twice, 12-16 warps per SM); see ``set_sh_first_backward``
SH_FIRST_BACKWARD = {"mode": "fused"}
_TUNED: dict = {}


def set_sh_first_backward(mode: str = "fused") -> None:
    """Run the SH-first backward as one fused kernel ("fused", default) or as two kernels ("split")."""
    if mode not in ("fused", "split"):
        raise ValueError(f"SH-first backward mode must be 'fused' or 'split', got {mode!r}")
    SH_FIRST_BACKWARD["mode"] = mode


def stage_kernel(stage: str) -> tuple[str, dict[str, int]]:
    """Name of the kernel (in ``_triton_kernels``) that runs an SH-first stage, and the constexprs that select it."""
    name, part = EDGE_MATRIX_STAGES[stage]
    return name, ({} if part is None else {"PART": part})


def _edge_kernel(stage: str, dp: int):
    """The kernel of an SH-first stage and its launch options at padded size ``dp``: on a GPU autotuned over that
    stage's candidates for dp (one autotuner per stage and size, keyed on d, C and precision); when interpreting,
    the plain kernel with the first candidate."""
    import triton

    from sciml.tdn import _triton_kernels

    name, meta = stage_kernel(stage)
    kernel = getattr(_triton_kernels, name)
    candidates = EDGE_MATRIX_CONFIGS[stage][dp]
    if interpreting():
        bc, nw = candidates[0]
        return kernel, {**meta, "BC": bc, "num_warps": nw}
    if (stage, dp) not in _TUNED:
        configs = [triton.Config({"BC": bc}, num_warps=nw) for bc, nw in candidates]
        _TUNED[stage, dp] = triton.autotune(configs=configs, key=["D", "C", "PREC"])(kernel)
    return _TUNED[stage, dp], meta


def tuned_configs() -> dict[str, dict[str, str]]:
    """The launch configuration the autotuner chose for each SH-first stage, padded size and key (for reports)."""
    return {f"{stage}_DP{dp}": {str(key): str(cfg) for key, cfg in tuner.cache.items()}
            for (stage, dp), tuner in _TUNED.items()}


def edge_matrix_forward(t: torch.Tensor, x: torch.Tensor, w: torch.Tensor, precision: str = "ieee") -> torch.Tensor:
    """Launch the SH-first forward kernel: t [E, d, d], x [E, d, C], w [E, C] -> (t @ x) * w [E, d, C]."""
    e, d, c = x.shape
    out = torch.empty(e, d, c, dtype=x.dtype, device=x.device)
    if e == 0:  # no empty grids on the GPU
        return out
    dp = _next_pow2(d, 16)
    kernel, meta = _edge_kernel("forward", dp)
    kernel[(e,)](t, x, w, out, d, c, *t.stride(), *x.stride(), *w.stride(), *out.stride(),
                 DP=dp, PREC=_precision(x.dtype, precision), **meta)
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
    dp = _next_pow2(d, 16)
    stages = ("backward",) if SH_FIRST_BACKWARD["mode"] == "fused" else ("backward_gx", "backward_gt")
    for stage in stages:
        kernel, meta = _edge_kernel(stage, dp)
        kernel[(e,)](t, x, w, grad, gt, gx, gw, d, c, *t.stride(), *x.stride(), *w.stride(), *grad.stride(),
                     DP=dp, PREC=_precision(x.dtype, precision), **meta)
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
