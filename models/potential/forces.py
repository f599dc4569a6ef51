"""Forces and stress of any energy model: F = -dE/dpos, stress = (1/V) dE/d(strain) (a symmetric strain applied to
positions and cell), with the graph kept in training mode for force losses (double backward)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from models.potential.base import EnergyModel
from sciml.errors import SciMLError


class ForceField(nn.Module):
    """Wraps an :class:`~models.potential.base.EnergyModel` (``self.model``).

    ``forward(data, compute_forces, compute_stress)`` returns ``energy`` [B] (eV, float64), ``node_energy`` [N] and,
    when asked, ``forces`` [N, 3] (eV/Angstrom) and ``stress`` [B, 3, 3] (eV/Angstrom^3; positive = tensile, as ASE).
    Positions and cells are cast to the model's dtype here, so inputs may be float32 (from shards) or float64.
    A model with ``direct_forces`` supplies its own (non-conservative) forces and no stress.
    """

    def __init__(self, model: EnergyModel):
        super().__init__()
        self.model = model

    @property
    def cutoff(self) -> float:
        return self.model.cutoff

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def forward(self, data: Any, compute_forces: bool = True, compute_stress: bool = False) -> dict[str, torch.Tensor]:
        model = self.model
        model.check_elements(data.z)
        num_graphs = int(data.num_graphs)
        pos = data.pos.to(model.dtype)
        cell = data.cell.reshape(-1, 3, 3).to(pos.dtype) if getattr(data, "cell", None) is not None \
            else pos.new_zeros(num_graphs, 3, 3)
        conservative = not model.direct_forces
        if compute_stress and not conservative:
            raise SciMLError(f"stress needs conservative forces; this {model.name} model predicts forces directly")
        inputs = []
        if (compute_forces and conservative) or compute_stress:
            pos = pos.detach().requires_grad_(True)
            inputs.append(pos)
        if compute_stress:
            strain = torch.zeros_like(cell, requires_grad=True)
            inputs.append(strain)
            sym = 0.5 * (strain + strain.transpose(1, 2))
            pos = pos + torch.einsum("ni,nij->nj", pos, sym[data.batch])
            cell = cell + cell @ sym
        geometry = copy.copy(data)  # shallow: the model sees the (strained) positions and cell
        geometry.pos, geometry.cell = pos, cell
        out = model(geometry)
        if inputs:
            grads = torch.autograd.grad(out["energy"].sum(), inputs, create_graph=self.training)
            if compute_forces and conservative:
                out["forces"] = -grads[0]
            if compute_stress:
                volume = torch.linalg.det(cell).abs().detach()
                out["stress"] = grads[-1] / volume[:, None, None]
        elif not compute_forces:
            out.pop("forces", None)
        return out
