"""NequIP-style interaction block on the dense ``[N, (L+1)^2, C]`` layout with a switchable tensor product."""

from __future__ import annotations

import torch
from torch import nn

from models.potential.radial import RadialWeights

TENSOR_PRODUCTS = ("cp", "cg")


class SharedWeightE3nnProduct(nn.Module):
    """e3nn's CG tensor product computing the same function as the shared-weight CP product at exact rank:
    out = w * sum_paths CG_path(x, y). e3nn multiplies path p by its normalisation constant, so the per-path weights
    passed to it are w / path_weight[p]. forward(x [E, d, C], y [E, d], w [E, C]) -> [E, d, C]."""

    def __init__(self, lmax: int, channels: int, parity: str):
        super().__init__()
        from sciml.tdn import E3nnTensorProduct

        self.tp = E3nnTensorProduct(lmax, channels, parity=parity)

    def forward(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [E, d, C], y [E, d], w [E, C] -> [E, d, C]."""
        per_path = w[:, None, :] / self.tp.path_weight[None, :, None].to(w.dtype)
        return self.tp(x, y, per_path)


def make_tensor_product(kind: str, lmax: int, channels: int, rank: int | str, parity: str) -> nn.Module:
    """``cp``: rank-R CP-decomposed shared-weight product (TDN); ``cg``: the same product through e3nn's CG kernels."""
    from sciml.tdn import CPTensorProduct

    if kind == "cp":
        return CPTensorProduct(lmax, channels, rank=rank, parity=parity, weights="shared")
    if kind == "cg":
        return SharedWeightE3nnProduct(lmax, channels, parity)
    raise ValueError(f"tensor_product must be one of {TENSOR_PRODUCTS}, got {kind!r}")


def gate(h: torch.Tensor) -> torch.Tensor:
    """Equivariant gate: [N, d, 2C] -> [N, d, C]. Scalars (l=0) of the first C channels get SiLU; higher degrees are
    multiplied by the sigmoid of the l=0 component of the last C channels."""
    value, gates = h.chunk(2, dim=-1)
    scalars = torch.nn.functional.silu(value[:, :1])
    return torch.cat([scalars, value[:, 1:] * torch.sigmoid(gates[:, :1])], dim=1)


class Interaction(nn.Module):
    """x_i <- x_i + Gate(W_post sum_j TP(W_pre x_j, Y(r_ij), R(|r_ij|)) / sqrt(avg_neighbours) + W_self x_i).

    Shapes: x [N, (L+1)^2, C]; sh [E, (L+1)^2] (e3nn component-normalised); basis [E, K]; envelope [E];
    edge_index [2, E] (source j, destination i).
    """

    def __init__(self, lmax: int, channels: int, num_basis: int, radial_hidden: int, tensor_product: str,
                 rank: int | str, parity: str):
        super().__init__()
        from sciml.tdn import SharedLinear

        self.pre = SharedLinear(lmax, channels, channels)
        self.radial = RadialWeights(num_basis, radial_hidden, channels)
        self.tp = make_tensor_product(tensor_product, lmax, channels, rank, parity)
        self.post = SharedLinear(lmax, channels, 2 * channels)
        self.self_connection = SharedLinear(lmax, channels, 2 * channels)

    def forward(self, x: torch.Tensor, sh: torch.Tensor, basis: torch.Tensor, envelope: torch.Tensor,
                edge_index: torch.Tensor, neighbour_norm: torch.Tensor) -> torch.Tensor:
        """Updated node features [N, (L+1)^2, C]; neighbour_norm is the scalar 1 / sqrt(avg_num_neighbors)."""
        src, dst = edge_index
        messages = self.tp(self.pre(x)[src], sh, self.radial(basis, envelope))
        aggregated = torch.zeros_like(x).index_add(0, dst, messages) * neighbour_norm
        return x + gate(self.post(aggregated) + self.self_connection(x))
