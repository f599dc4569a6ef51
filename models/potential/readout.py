"""Heads on the final node features: per-atom energy (invariant) and the optional direct-force head."""

from __future__ import annotations

import torch
from torch import nn


class EnergyReadout(nn.Module):
    """MLP on the l=0 channels: [N, d, C] -> [N] (dimensionless; the potential applies scale and shift)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, d, C] -> per-atom energies [N] (dimensionless)."""
        return self.mlp(x[:, 0, :]).squeeze(-1)


class DirectForceHead(nn.Module):
    """NON-CONSERVATIVE forces read directly from the l=1 features: [N, d, C] -> [N, 3] (x, y, z; dimensionless).

    Equivariant (the l=1 block of e3nn's real basis is ordered x, y, z), but not the gradient of any energy: faster
    than autograd forces, unsuitable for energy-conserving MD. Needs lmax >= 1 and O(3) parity (odd l=1 features).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.linear = nn.Linear(channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, d, C] -> forces [N, 3] (dimensionless)."""
        return self.linear(x[:, 1:4, :]).squeeze(-1)
