"""SharedLinear: equivariant linear layer with one channel-mixing matrix shared by all degrees (TDN's PS-Linear)."""

from __future__ import annotations

import math

import torch
from torch import nn

from sciml.tdn.cg import num_components


class SharedLinear(nn.Module):
    """out[n, k, :] = x[n, k, :] @ weight (same C_in x C_out matrix for every component k), + bias on l = 0 only.

    x [N, (lmax+1)^2, c_in] -> [N, (lmax+1)^2, c_out]. Mixing channels only commutes with rotations (and with
    reflections for any parity), so the layer is exactly equivariant. Weights ~ U(-1/sqrt(c_in), 1/sqrt(c_in)).
    """

    def __init__(self, lmax: int, c_in: int, c_out: int, bias: bool = True):
        super().__init__()
        self.lmax = lmax
        self.dim = num_components(lmax)
        self.c_in = c_in
        self.c_out = c_out
        bound = 1.0 / math.sqrt(c_in)
        self.weight = nn.Parameter(torch.empty(c_in, c_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None

    def extra_repr(self) -> str:
        return f"lmax={self.lmax}, c_in={self.c_in}, c_out={self.c_out}, bias={self.bias is not None}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, (lmax+1)^2, c_in] -> [N, (lmax+1)^2, c_out]."""
        out = torch.matmul(x, self.weight)
        bias = self.bias
        if bias is not None:
            scalar = out[:, :1, :] + bias
            out = torch.cat([scalar, out[:, 1:, :]], dim=1)
        return out
