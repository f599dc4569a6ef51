"""TDN interatomic potential: NequIP-style message passing with the CP (``cp``) or e3nn CG (``cg``) tensor product.

Energy E = sum_i [scale * readout(x_i) + shift + E0(Z_i)] (eV); forces F = -dE/dpos (eV/Angstrom, conservative) or an
optional direct (non-conservative) head; stress = (1/V) dE/d(strain) (eV/Angstrom^3) for periodic cells.
See docs/potential.md for the architecture and the choice of a NequIP-style network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from e3nn import o3
from torch import nn

from models.potential.interaction import TENSOR_PRODUCTS, Interaction
from models.potential.neighbors import radius_graph
from models.potential.radial import BesselBasis, PolynomialEnvelope
from models.potential.readout import DirectForceHead, EnergyReadout
from sciml.errors import DataError

FORCE_MODES = ("conservative", "direct")
MAX_Z = 118


class UnknownElementError(DataError):
    """An input structure contains an element the model was not trained on."""


def _element_names(numbers: Sequence[int]) -> str:
    """'H (Z=1), Cu (Z=29)'; symbols from ASE where installed (GPU nodes may lack it)."""
    try:
        from ase.data import chemical_symbols
    except ImportError:
        return ", ".join(f"Z={z}" for z in numbers)
    return ", ".join(f"{chemical_symbols[z] if 0 < z < 119 else '?'} (Z={z})" for z in numbers)


class TDNPotential(nn.Module):
    """Energy model over a batch of structures.

    Args:
        elements: atomic numbers the model accepts (normally set from the training data by :meth:`set_statistics`).
        lmax: highest degree L of node features and edge spherical harmonics; channels: multiplicity C of every degree.
        layers: interaction blocks; cutoff: radius-graph cutoff (Angstrom).
        rank: CP rank of the ``cp`` product: ``exact``, ``default`` (7 L^2, approximate, the paper's) or an int.
        tensor_product: ``cp`` or ``cg``; parity: ``o3`` (mirror-invariant energy) or ``so3``.
        force_mode: ``conservative`` (F = -dE/dpos) or ``direct`` (non-conservative head, no stress).
    """

    def __init__(self, elements: Sequence[int] = (), lmax: int = 1, channels: int = 32, layers: int = 3,
                 cutoff: float = 5.0, rank: int | str = "exact", tensor_product: str = "cp", parity: str = "o3",
                 num_basis: int = 8, radial_hidden: int = 64, readout_hidden: int = 32, envelope_p: int = 6,
                 force_mode: str = "conservative"):
        super().__init__()
        if tensor_product not in TENSOR_PRODUCTS:
            raise ValueError(f"tensor_product must be one of {TENSOR_PRODUCTS}, got {tensor_product!r}")
        if force_mode not in FORCE_MODES:
            raise ValueError(f"force_mode must be one of {FORCE_MODES}, got {force_mode!r}")
        if force_mode == "direct" and (lmax < 1 or parity != "o3"):
            raise ValueError("force_mode='direct' needs lmax >= 1 and parity='o3'")
        self.lmax, self.channels, self.cutoff, self.force_mode = lmax, channels, float(cutoff), force_mode
        # state that depends on the training data (set_statistics) and is restored from checkpoints
        self.register_buffer("known", torch.zeros(MAX_Z + 1, dtype=torch.bool))
        self.known[list(elements)] = True
        self.register_buffer("avg_num_neighbors", torch.tensor(1.0))
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("shift", torch.tensor(0.0))
        # per-element reference energies E0 (eV), kept in float64 whatever the model dtype (see _apply)
        self.atomic_energies = nn.Parameter(torch.zeros(MAX_Z + 1, dtype=torch.float64))

        self.embedding = nn.Embedding(MAX_Z + 1, channels)
        self.basis = BesselBasis(cutoff, num_basis)
        self.envelope = PolynomialEnvelope(cutoff, envelope_p)
        self.interactions = nn.ModuleList(
            Interaction(lmax, channels, num_basis, radial_hidden, tensor_product, rank, parity) for _ in range(layers))
        self.readout = EnergyReadout(channels, readout_hidden)
        self.force_head = DirectForceHead(channels) if force_mode == "direct" else None

    @torch.no_grad()
    def set_statistics(self, elements: Sequence[int], atomic_energies: dict[int, float], scale: float, shift: float,
                       avg_num_neighbors: float) -> None:
        """Fit-from-data state: known elements, reference energies E0 {Z: eV}, energy scale (eV), per-atom shift (eV),
        mean neighbour count (normalises the message sum)."""
        self.known.zero_()
        self.known[list(elements)] = True
        self.atomic_energies.zero_()
        for z, e0 in atomic_energies.items():
            self.atomic_energies[int(z)] = float(e0)
        self.scale.fill_(scale)
        self.shift.fill_(shift)
        self.avg_num_neighbors.fill_(avg_num_neighbors)

    def _apply(self, fn: Any, recurse: bool = True) -> TDNPotential:
        # .to(dtype)/.float()/.half() must not round E0 (about -1e3 eV per atom): keep it float64, move it only
        e0 = self.atomic_energies.data
        super()._apply(fn, recurse)
        device = fn(torch.zeros(0, device=e0.device)).device
        self.atomic_energies.data = e0.to(device=device, dtype=torch.float64)
        return self

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the network (E0 is always float64)."""
        return self.scale.dtype

    def check_elements(self, z: torch.Tensor) -> None:
        """Raise :class:`UnknownElementError` if ``z`` [N] holds an element the model was not trained on."""
        bad = (z < 1) | (z > MAX_Z)
        bad |= ~self.known[z.clamp(0, MAX_Z)]
        if bool(bad.any()):
            unknown = sorted({int(v) for v in z[bad].tolist()})
            known = torch.nonzero(self.known).flatten().tolist()
            raise UnknownElementError(f"the model was never trained on element(s) {_element_names(unknown)}; "
                                      f"it knows {_element_names(known)}")

    def forward(self, data: Any, compute_forces: bool = True, compute_stress: bool = False) -> dict[str, torch.Tensor]:
        """Energies of a batch (PyG ``Batch``-like: z [N], pos [N, 3], batch [N], optional cell [B, 3, 3],
        pbc [B, 3], edge_index [2, E], edge_shift [E, 3]).

        Returns ``energy`` [B] (eV), ``node_energy`` [N], and ``forces`` [N, 3] (eV/Angstrom) / ``stress`` [B, 3, 3]
        (eV/Angstrom^3) when asked. Gradients keep their graph in training mode (for force losses).
        """
        z, batch = data.z, data.batch
        num_graphs = int(data.num_graphs)
        pos = data.pos
        cell = data.cell.reshape(-1, 3, 3).to(pos.dtype) if getattr(data, "cell", None) is not None \
            else pos.new_zeros(num_graphs, 3, 3)
        pbc = data.pbc.reshape(-1, 3).bool() if getattr(data, "pbc", None) is not None \
            else torch.zeros(num_graphs, 3, dtype=torch.bool, device=pos.device)
        self.check_elements(z)
        edge_index, edge_shift = getattr(data, "edge_index", None), getattr(data, "edge_shift", None)
        if edge_index is None or edge_shift is None:
            edge_index, edge_shift = radius_graph(pos.detach(), batch, num_graphs, self.cutoff, cell, pbc)

        conservative = self.force_mode == "conservative"
        inputs = []
        if (compute_forces and conservative) or compute_stress:
            pos = pos.detach().requires_grad_(True)
            inputs.append(pos)
        if compute_stress:
            if not conservative:
                raise ValueError("stress needs force_mode='conservative'")
            strain = torch.zeros_like(cell, requires_grad=True)
            inputs.append(strain)
            sym = 0.5 * (strain + strain.transpose(1, 2))
            pos = pos + torch.einsum("ni,nij->nj", pos, sym[batch])
            cell = cell + cell @ sym

        src, dst = edge_index
        vec = pos[src] - pos[dst] + torch.einsum("ek,ekl->el", edge_shift.to(pos.dtype), cell[batch[dst]])
        r = vec.norm(dim=-1)
        sh = o3.spherical_harmonics(list(range(self.lmax + 1)), vec, normalize=True, normalization="component")
        basis, envelope = self.basis(r), self.envelope(r)
        neighbour_norm = self.avg_num_neighbors.rsqrt()

        emb = self.embedding(z).to(pos.dtype)
        x = torch.cat([emb[:, None, :], emb.new_zeros(emb.shape[0], (self.lmax + 1) ** 2 - 1, self.channels)], 1)
        for block in self.interactions:
            x = block(x, sh, basis, envelope, edge_index, neighbour_norm)

        # sums in float64: total energies are ~1e4 eV and float32 would round them to ~1 meV
        node_energy = (self.scale * self.readout(x) + self.shift).double() + self.atomic_energies[z]
        energy = node_energy.new_zeros(num_graphs).index_add(0, batch, node_energy)
        out = {"energy": energy, "node_energy": node_energy}
        if inputs:
            grads = torch.autograd.grad(energy.sum(), inputs, create_graph=self.training)
            if compute_forces and conservative:
                out["forces"] = -grads[0]
            if compute_stress:
                volume = torch.linalg.det(cell).abs().detach()
                out["stress"] = grads[-1] / volume[:, None, None]
        if compute_forces and not conservative:
            out["forces"] = self.scale * self.force_head(x)
        return out

