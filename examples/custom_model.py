"""A new energy model in 40 lines: subclass EnergyModel, return per-structure energies, register it.

Forces, stress, training (`sciml train` with `model.name: pair` once registered), `sciml eval`, `sciml relax` and
the ASE calculator then come from the shared stack; nothing else names the model. Run from the repository root:
``python examples/custom_model.py``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from data_tools.neighbors import radius_graph
from models.potential.base import MAX_Z, EnergyModel


class PairModel(EnergyModel):
    """E = sum over atom pairs within the cutoff of a learned function of both elements and their distance (eV)."""

    name = "pair"
    config_defaults = {"cutoff": 4.0, "hidden": 8}  # its `model:` config keys, besides `name` and `init_from`

    def __init__(self, elements: tuple = (), cutoff: float = 4.0, hidden: int = 8):
        super().__init__({"cutoff": cutoff, "hidden": hidden}, elements)
        self.embedding = nn.Embedding(MAX_Z + 1, hidden)
        self.radial = nn.Sequential(nn.Linear(1, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        pos, cell = batch.pos, batch.cell  # all geometry from these two, so the ForceField can differentiate it
        if "edge_index" in batch:  # the featuriser's neighbour list (vesin, in the data loader)
            edge_index, shift = batch.edge_index, batch.edge_shift
        else:  # or built here, on the model's device
            edge_index, shift = radius_graph(pos.detach(), batch.batch, int(batch.num_graphs), self.cutoff,
                                             cell.detach(), batch.pbc.reshape(-1, 3))
        src, dst = edge_index
        vec = pos[src] - pos[dst] + torch.einsum("ek,ekl->el", shift.to(pos.dtype), cell[batch.batch[dst]])
        r = vec.norm(dim=-1)
        emb = self.embedding(batch.z).to(pos.dtype)
        pair = (emb[src] * emb[dst] * self.radial(r[:, None])).sum(-1) * (1 - (r / self.cutoff) ** 2) ** 2
        return self.total_energy(pos.new_zeros(len(pos)).index_add(0, dst, 0.5 * pair), batch)


if __name__ == "__main__":
    from ase.build import molecule

    from models.potential.forces import ForceField
    from sciml.calculators import MLIPCalculator

    torch.manual_seed(0)
    net = PairModel()
    net.set_statistics([1, 6, 8], {1: -13.6, 6: -1026.9, 8: -2037.8})  # known elements, E0 per element (eV)
    calc = MLIPCalculator(ForceField(net), dtype="float64")
    water = molecule("H2O")
    water.calc = calc
    e, f = water.get_potential_energy(), water.get_forces()
    moved = water.copy()
    moved.rotate(37, "z")
    moved.translate([1.0, -2.0, 0.5])
    moved.calc = calc
    print(f"E = {e:.6f} eV, sum of forces = {abs(f.sum(0)).max():.1e} eV/A, "
          f"E after a rotation and translation - E = {moved.get_potential_energy() - e:.1e} eV")
