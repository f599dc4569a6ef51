"""CPTensorProduct: the CG tensor product of TDN, with the CG tensor replaced by its CP factors."""

from __future__ import annotations

import torch

from sciml.tdn.cg import check_parity, num_components, paths
from sciml.tdn.constants import Float64Constants
from sciml.tdn.factors import CPFactors, resolve_rank

WEIGHT_MODES = ("shared", "per_path")
#: "rank": x -> rank space -> output (three matmuls, or the fused Triton kernels on CUDA);
#: "sh_first": contract the CP-reconstructed tensor with y first (per-edge d x d matrix), then apply it to x;
#: "sh_first_fused": the sh_first order with T[e] @ x[e] * w[e] and its gradients in Triton kernels (CUDA with
#: Triton; elsewhere the same as "sh_first"). Not timed on a GPU yet, so "auto" does not pick it.
#: "auto": the one of "rank" and "sh_first" with fewer multiply-adds per edge (2 d R C + d R versus d^3 + d^2 C)
CONTRACTIONS = ("auto", "rank", "sh_first", "sh_first_fused")


def check_weights(weights: str) -> str:
    """Return ``weights`` if it is ``"shared"`` or ``"per_path"``, else raise ValueError."""
    if weights not in WEIGHT_MODES:
        raise ValueError(f"weights must be one of {WEIGHT_MODES}, got {weights!r}")
    return weights


def cp_product(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor,
               fout: torch.Tensor) -> torch.Tensor:
    """Three-matmul CP product with path-shared weights (plain torch; differentiable to any order).

    x [E, d, C], y [E, d], w [E, C], factors [d, R] -> out[e, k, c] = sum_r fout[k, r] (x[e] fx)[r, c] (y[e] fy)[r] w[e, c].
    """
    xa = torch.matmul(x.transpose(1, 2), fx)  # [E, C, R]
    yb = torch.matmul(y, fy)  # [E, R]
    h = xa * yb.unsqueeze(1)
    out = torch.matmul(h, fout.t())  # [E, C, d]
    return (out * w.unsqueeze(2)).transpose(1, 2)


def cp_reconstruction(fx: torch.Tensor, fy: torch.Tensor, fout: torch.Tensor) -> torch.Tensor:
    """M_hat rearranged for ``sh_first_product``: [d (y component j), d*d (output k, input i)]."""
    d = fx.shape[0]
    return torch.einsum("ir,jr,kr->jki", fx, fy, fout).reshape(d, d * d)


def sh_first_product(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, m_jki: torch.Tensor) -> torch.Tensor:
    """The same product contracted in the other order: T[e] = sum_j y[e, j] M_hat[:, j, :]^T (a d x d matrix per
    edge, independent of the channels), out[e] = T[e] @ x[e] * w[e]. x [E, d, C], y [E, d], w [E, C],
    m_jki from ``cp_reconstruction``; cost per edge d^3 + d^2 C multiply-adds, intermediate [E, d, d]."""
    e, d, _ = x.shape
    t = torch.matmul(y, m_jki).view(e, d, d)
    return torch.matmul(t, x) * w.unsqueeze(1)


def cp_product_per_path(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor,
                        fout: torch.Tensor, path_index: torch.Tensor) -> torch.Tensor:
    """CP product with one weight per path and channel: w [E, P, C]; term r is weighted by w[:, path_index[r], :]."""
    xa = torch.matmul(x.transpose(1, 2), fx)  # [E, C, R]
    yb = torch.matmul(y, fy)  # [E, R]
    h = xa * yb.unsqueeze(1) * w.index_select(1, path_index).transpose(1, 2)
    return torch.matmul(h, fout.t()).transpose(1, 2)


class DenseTensorProduct(Float64Constants):
    """Shape bookkeeping shared by the dense-layout products: x [E, d, C], y [E, d], w -> [E, d, C], d = (lmax+1)^2.
    Their CG coefficients and CP factors are float64 constants (exact after ``.double()``, see Float64Constants)."""

    def __init__(self, lmax: int, channels: int, parity: str, weights: str):
        super().__init__()
        self.lmax = lmax
        self.channels = channels
        self.parity = check_parity(parity)
        self.weights = check_weights(weights)
        self.dim = num_components(lmax)
        self.num_paths = len(paths(lmax, self.parity))


class CPTensorProduct(DenseTensorProduct):
    """Path-weight-shared tensor product of features and spherical harmonics through a rank-R CP of the CG tensor.

    forward(x [E, d, C], y [E, d], w) -> [E, d, C], d = (lmax+1)^2, e3nn component order;
    w is [E, C] (``weights="shared"``: out = w * sum_paths CG_path(x, y), the TDN product) or [E, P, C]
    (``weights="per_path"``, P = len(paths(lmax, parity)): out = sum_p w_p * CG_p(x, y)).

    rank: ``"exact"`` (relative Frobenius error < 1e-7, exactly equivariant in float64), ``"default"`` (7 L^2, the
    paper's choice, approximate), or an int. Per-path weights always use the exact per-path factorisation.
    The factors are buffers (saved in checkpoints, moved by ``.to()``, never trained). Build with
    ``init_factors=False`` to create zero buffers for ``load_state_dict`` without fitting; a checkpoint's factors
    always win, also when their rank differs from what ``rank`` resolves to now (e.g. a newer exact-rank table).
    ``contraction`` (shared weights; same function, different order of the sums, see CONTRACTIONS): "auto" picks the
    cheaper of "rank" and "sh_first" for (lmax, rank, channels).
    On CUDA with Triton importable, the "rank" and "sh_first_fused" contractions run fused Triton kernels
    (``use_triton=False`` or SCIML_TDN_TRITON=0 forces the plain torch path; see ``triton_cp``).
    """

    def __init__(self, lmax: int, channels: int, rank: int | str = "exact", parity: str = "so3",
                 weights: str = "shared", init_factors: bool = True, use_triton: bool = True,
                 contraction: str = "auto"):
        super().__init__(lmax, channels, parity, weights)
        from sciml.tdn import triton_cp

        self.fused = bool(use_triton) and triton_cp.available()
        self.interpret = triton_cp.interpreting()  # kernels also run on CPU tensors (testing)
        per_path = weights == "per_path"
        if per_path and rank != "exact":
            raise ValueError("weights='per_path' uses the exact per-path factorisation; pass rank='exact'")
        if per_path and not init_factors:
            raise ValueError("init_factors=False is not supported with weights='per_path'")
        factors: CPFactors | None = None
        if init_factors:
            from sciml.tdn.cache import load_or_fit

            factors = load_or_fit(lmax, parity, rank, per_path=per_path)
            self.rank = factors.rank
        else:
            self.rank = resolve_rank(lmax, parity, rank)
        for name in ("x", "y", "out"):
            value = torch.zeros(self.dim, self.rank, dtype=torch.float64) if factors is None else \
                torch.as_tensor(getattr(factors, name), dtype=torch.float64)
            self.register_constant(f"cp_{name}", value)
        err = float("nan") if factors is None else factors.rel_error
        self.register_buffer("factor_rel_error", torch.tensor(err, dtype=torch.float64))
        index = torch.zeros(0, dtype=torch.long) if factors is None or factors.path_index is None else \
            torch.as_tensor(factors.path_index, dtype=torch.long)
        self.register_buffer("path_index", index)
        if contraction not in CONTRACTIONS:
            raise ValueError(f"contraction must be one of {CONTRACTIONS}, got {contraction!r}")
        if contraction == "sh_first_fused" and self.dim > triton_cp.EDGE_MATRIX_MAX_DIM:
            raise ValueError(f"contraction='sh_first_fused' supports lmax <= 7 (d <= {triton_cp.EDGE_MATRIX_MAX_DIM}), "
                             f"got lmax={lmax}; use 'sh_first'")
        if contraction == "auto":
            d, r, c = self.dim, self.rank, channels
            contraction = "sh_first" if d ** 3 + d * d * c < 2 * d * r * c + d * r else "rank"
        self.contraction = contraction
        _rebuild_cp_tensor(self)  # derived from the factors: not saved, rebuilt after load_state_dict
        self.register_load_state_dict_pre_hook(_adopt_checkpoint_rank)
        self.register_load_state_dict_post_hook(_rebuild_cp_tensor)

    def extra_repr(self) -> str:
        return (f"lmax={self.lmax}, channels={self.channels}, rank={self.rank}, parity={self.parity!r}, "
                f"weights={self.weights!r}, contraction={self.contraction!r}")

    def forward(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [E, d, C], y [E, d], w [E, C] (shared) or [E, P, C] (per_path) -> [E, d, C]."""
        if self.weights == "per_path":
            return cp_product_per_path(x, y, w, self.cp_x, self.cp_y, self.cp_out, self.path_index)
        if not torch.jit.is_scripting() and self.fused and (x.is_cuda or self.interpret):
            if self.contraction != "sh_first":
                return self._fused(x, y, w)
        if self.contraction == "rank":
            return cp_product(x, y, w, self.cp_x, self.cp_y, self.cp_out)
        return sh_first_product(x, y, w, self.cp_tensor)

    @torch.jit.unused
    def _fused(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        from sciml.tdn import triton_cp

        if self.contraction == "sh_first_fused":
            return triton_cp.sh_first_fused(x, y, w, self.cp_tensor)
        return triton_cp.cp_product_fused(x, y, w, self.cp_x, self.cp_y, self.cp_out)


def _adopt_checkpoint_rank(module: CPTensorProduct, state_dict: dict, prefix: str, *args: object) -> None:
    """Resize the factor buffers to the checkpoint's rank before loading (shared-weight factors only)."""
    shape = getattr(state_dict.get(prefix + "cp_x"), "shape", None)
    if module.weights == "shared" and shape is not None and len(shape) == 2 and shape[1] != module.rank:
        for name in ("cp_x", "cp_y", "cp_out"):
            module.register_constant(name, torch.zeros(module.dim, shape[1], dtype=torch.float64))
        module.rank = int(shape[1])


def _rebuild_cp_tensor(module: CPTensorProduct, incompatible_keys: object = None) -> None:
    """cp_tensor from the float64 masters of the factors (so it is exact in float64 too)."""
    factors = (module.constant(name) for name in ("cp_x", "cp_y", "cp_out"))
    module.register_constant("cp_tensor", cp_reconstruction(*factors), persistent=False)
