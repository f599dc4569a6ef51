"""Reference tensor products with the same signature as CPTensorProduct: exact CG (einsum) and e3nn's TensorProduct.

Normalisation: ``ExactTensorProduct`` is the plain sum over paths of ``wigner_3j`` contractions (no extra constants),
exactly what the CP factors approximate. e3nn's ``TensorProduct`` multiplies path p by a constant
``path_weight[p]`` (``irrep_normalization="component"``, ``path_normalization="element"``: sqrt(2 l3 + 1 / number of
paths into l3) for uvu with one input-2 channel); ``E3nnTensorProduct.path_weight`` exposes these, and
``E3nn(x, y, w) == Exact(x, y, w * path_weight[None, :, None])`` with per-path weights (tested).
"""

from __future__ import annotations

import torch

from sciml.tdn.cg import cg_tensor, irreps_string, path_blocks, paths
from sciml.tdn.cp_tp import DenseTensorProduct
from sciml.tdn.layout import from_e3nn, to_e3nn


class ExactTensorProduct(DenseTensorProduct):
    """Exact CG tensor product (einsum over M), shared ([E, C]) or per-path ([E, P, C]) weights; see CPTensorProduct."""

    def __init__(self, lmax: int, channels: int, parity: str = "so3", weights: str = "shared"):
        super().__init__(lmax, channels, parity, weights)
        self.register_constant("cg", cg_tensor(lmax, parity) if weights == "shared" else path_blocks(lmax, parity))

    def forward(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [E, d, C], y [E, d], w [E, C] (shared) or [E, P, C] (per_path) -> [E, d, C]."""
        if self.weights == "shared":
            return torch.einsum("ijk,eic,ej->ekc", self.cg, x, y) * w.unsqueeze(1)
        return torch.einsum("pijk,eic,ej,epc->ekc", self.cg, x, y, w)


class E3nnTensorProduct(DenseTensorProduct):
    """e3nn ``o3.TensorProduct`` (uvu, per-path weights from the caller) in the dense layout.

    forward(x [E, d, C], y [E, d], w [E, P, C]) -> [E, d, C]; paths in ``cg.paths`` order. Irreps are all even
    ("so3", as TDN) or natural parity ("o3"). Output = sum_p path_weight[p] * w_p * CG_p(x, y).
    """

    def __init__(self, lmax: int, channels: int, parity: str = "so3"):
        super().__init__(lmax, channels, parity, "per_path")
        from e3nn import o3

        self.path_list = paths(lmax, self.parity)
        instructions = [(l1, l2, l3, "uvu", True) for l1, l2, l3 in self.path_list]
        self.tp = o3.TensorProduct(
            irreps_string(lmax, channels, parity),
            irreps_string(lmax, 1, parity),
            irreps_string(lmax, channels, parity),
            instructions,
            shared_weights=False,
            internal_weights=False,
        )
        self.register_constant("path_weight", torch.tensor([ins.path_weight for ins in self.tp.instructions],
                                                           dtype=torch.float64))

    def forward(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [E, d, C], y [E, d], w [E, P, C] -> [E, d, C] (dense layout in and out)."""
        out = self.tp(to_e3nn(x), y, w.reshape(w.shape[0], -1))
        return from_e3nn(out, self.channels)
