"""Radial part of the edge features: Bessel basis, smooth polynomial cutoff envelope, per-edge channel weights."""

from __future__ import annotations

import math

import torch
from torch import nn


class PolynomialEnvelope(nn.Module):
    """u(r) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2), x = r / cutoff, and 0 beyond the cutoff.

    u, du/dr and d2u/dr2 vanish at the cutoff, so energies and forces stay continuous when atoms cross it
    (Gasteiger et al., DimeNet, 2020).
    """

    def __init__(self, cutoff: float, p: int = 6):
        super().__init__()
        self.cutoff, self.p = float(cutoff), int(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """r: [E] distances (Angstrom) -> [E] envelope values in [0, 1]."""
        x = r / self.cutoff
        p = self.p
        u = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
        return torch.where(x < 1, u, torch.zeros_like(u))


class BesselBasis(nn.Module):
    """sqrt(2/cutoff) sin(n pi r / cutoff) / r for n = 1..num_basis: [E] (Angstrom) -> [E, num_basis]."""

    def __init__(self, cutoff: float, num_basis: int = 8):
        super().__init__()
        self.cutoff = float(cutoff)
        self.register_buffer("freq", torch.arange(1, num_basis + 1, dtype=torch.get_default_dtype()) * math.pi / cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """r: [E] distances (Angstrom, > 0) -> [E, num_basis]."""
        return math.sqrt(2.0 / self.cutoff) * torch.sin(self.freq * r[:, None]) / r[:, None]


class RadialWeights(nn.Module):
    """MLP from the radial basis to one weight per channel, multiplied by the envelope: [E, K], [E] -> [E, C]."""

    def __init__(self, num_basis: int, hidden: int, channels: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(num_basis, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, channels))

    def forward(self, basis: torch.Tensor, envelope: torch.Tensor) -> torch.Tensor:
        """basis [E, K], envelope [E] -> per-channel edge weights [E, C]."""
        return self.mlp(basis) * envelope[:, None]
