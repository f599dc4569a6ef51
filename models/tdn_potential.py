"""TDN energy model: NequIP-style message passing with the CP (``cp``) or e3nn CG (``cg``) tensor product.

Energy E = sum_i [scale * readout(x_i) + shift + E0(Z_i)] (eV). Forces and stress come from
:class:`~models.potential.forces.ForceField`; ``force_mode: direct`` adds a non-conservative force head instead.
See docs/potential.md for the architecture and the choice of a NequIP-style network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from e3nn import o3
from torch import nn

from data_tools.neighbors import radius_graph
from models.potential.base import EnergyModel
from models.potential.interaction import TENSOR_PRODUCTS, Interaction
from models.potential.radial import BesselBasis, PolynomialEnvelope
from models.potential.readout import DirectForceHead, EnergyReadout
from sciml.errors import ConfigError

FORCE_MODES = ("conservative", "direct")


class TDNPotential(EnergyModel):
    """Energy model over a batch of structures.

    Args:
        elements: atomic numbers the model accepts (normally set from the training data by :meth:`set_statistics`).
        lmax: highest degree L of node features and edge spherical harmonics; channels: multiplicity C of every degree.
        layers: interaction blocks; cutoff: radius-graph cutoff (Angstrom).
        rank: CP rank of the ``cp`` product: ``exact``, ``default`` (7 L^2, approximate, the paper's) or an int.
        tensor_product: ``cp`` or ``cg``; parity: ``o3`` (mirror-invariant energy) or ``so3``.
        force_mode: ``conservative`` (F = -dE/dpos) or ``direct`` (non-conservative head, no stress).
    """

    name: ClassVar[str] = "tdn"
    config_defaults: ClassVar[dict[str, Any]] = {
        "lmax": 1,
        "channels": 32,
        "layers": 3,
        "cutoff": 5.0,  # Angstrom
        "rank": 0,  # CP rank; 0 = the exact rank (exactly equivariant)
        "tensor_product": "cp",  # cp (TDN) | cg (e3nn)
        "parity": "o3",  # o3 (mirror-invariant energy) | so3
        "num_basis": 8,
        "radial_hidden": 64,
        "readout_hidden": 32,
        "envelope_p": 6,
        "force_mode": "conservative",  # conservative (-dE/dx) | direct (NON-conservative head)
    }
    config_choices: ClassVar[dict[str, tuple[Any, ...]]] = {
        "tensor_product": TENSOR_PRODUCTS, "parity": ("o3", "so3"), "force_mode": FORCE_MODES}

    def __init__(self, elements: Sequence[int] = (), lmax: int = 1, channels: int = 32, layers: int = 3,
                 cutoff: float = 5.0, rank: int | str = "exact", tensor_product: str = "cp", parity: str = "o3",
                 num_basis: int = 8, radial_hidden: int = 64, readout_hidden: int = 32, envelope_p: int = 6,
                 force_mode: str = "conservative"):
        config = {"lmax": lmax, "channels": channels, "layers": layers, "cutoff": cutoff, "rank": rank,
                  "tensor_product": tensor_product, "parity": parity, "num_basis": num_basis,
                  "radial_hidden": radial_hidden, "readout_hidden": readout_hidden, "envelope_p": envelope_p,
                  "force_mode": force_mode}
        self.check_config(config)
        super().__init__(config, elements)
        self.lmax, self.channels, self.force_mode = lmax, channels, force_mode
        self.direct_forces = force_mode == "direct"
        # state that depends on the training data (set_statistics) and is restored from checkpoints
        self.register_buffer("avg_num_neighbors", torch.tensor(1.0))
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("shift", torch.tensor(0.0))

        self.embedding = nn.Embedding(self.known.numel(), channels)
        self.basis = BesselBasis(cutoff, num_basis)
        self.envelope = PolynomialEnvelope(cutoff, envelope_p)
        self.interactions = nn.ModuleList(
            Interaction(lmax, channels, num_basis, radial_hidden, tensor_product, rank, parity) for _ in range(layers))
        self.readout = EnergyReadout(channels, readout_hidden)
        self.force_head = DirectForceHead(channels) if self.direct_forces else None

    @classmethod
    def check_config(cls, cfg: dict[str, Any]) -> None:
        super().check_config(cfg)
        for key in ("lmax", "channels", "layers"):
            if key in cfg and (not isinstance(cfg[key], int) or cfg[key] < (0 if key == "lmax" else 1)):
                raise ConfigError(f"model.{key} must be an integer >= {0 if key == 'lmax' else 1}, got {cfg[key]!r}")
        if "cutoff" in cfg and not cfg["cutoff"] > 0:
            raise ConfigError(f"model.cutoff must be > 0 Angstrom, got {cfg['cutoff']!r}")
        rank = cfg.get("rank", 0)
        if not (rank in ("exact", "default") or (isinstance(rank, int) and rank >= 0)):
            raise ConfigError(f"model.rank must be 0 (exact), 'exact', 'default' or a positive integer, got {rank!r}")
        if cfg.get("tensor_product", "cp") == "cp" and rank in (0, "exact"):
            from sciml.tdn.factors import EXACT_RANKS

            parity, lmax = cfg.get("parity", "o3"), cfg.get("lmax", 1)
            if lmax not in EXACT_RANKS[parity]:
                raise ConfigError(f"model.rank 0 (exact) is known for lmax {sorted(EXACT_RANKS[parity])} with parity "
                                  f"{parity}, not lmax {lmax}: give an integer rank")
        if cfg.get("force_mode") == "direct" and (cfg.get("lmax", 1) < 1 or cfg.get("parity", "o3") != "o3"):
            raise ConfigError("model.force_mode 'direct' needs lmax >= 1 and parity 'o3'")

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> TDNPotential:
        return cls(**{**cfg, "rank": cfg.get("rank") or "exact"})

    @torch.no_grad()
    def set_statistics(self, elements: Sequence[int], atomic_energies: dict[int, float], scale: float = 1.0,
                       shift: float = 0.0, avg_num_neighbors: float = 1.0, **_: Any) -> None:
        """Known elements, reference energies E0 {Z: eV}, energy scale (eV), per-atom shift (eV) and the mean
        neighbour count (normalises the message sum)."""
        super().set_statistics(elements, atomic_energies)
        self.scale.fill_(scale)
        self.shift.fill_(shift)
        self.avg_num_neighbors.fill_(avg_num_neighbors)

    def memory_per_edge(self) -> int:
        """6 edge-feature tensors [(L+1)^2, C] per layer (messages and their autograd records); measured 5.3 at L=2,
        C=32, 3 layers (18 kB per edge in float32)."""
        return 6 * len(self.interactions) * (self.lmax + 1) ** 2 * self.channels * torch.finfo(self.dtype).bits // 8

    def forward(self, data: Any) -> dict[str, torch.Tensor]:
        """Energies of a batch (``z`` [N], ``pos`` [N, 3], ``batch`` [N], ``cell`` [B, 3, 3], optional ``pbc``
        [B, 3], ``edge_index`` [2, E] and ``edge_shift`` [E, 3]; without edges the torch radius graph is built here).

        Returns ``energy`` [B] and ``node_energy`` [N] (eV, float64), and ``forces`` [N, 3] with the direct head.
        """
        z, batch, pos, cell = data.z, data.batch, data.pos, data.cell
        num_graphs = int(data.num_graphs)
        edge_index, edge_shift = getattr(data, "edge_index", None), getattr(data, "edge_shift", None)
        if edge_index is None or edge_shift is None:
            pbc = data.pbc.reshape(-1, 3).bool() if getattr(data, "pbc", None) is not None \
                else torch.zeros(num_graphs, 3, dtype=torch.bool, device=pos.device)
            edge_index, edge_shift = radius_graph(pos.detach(), batch, num_graphs, self.cutoff, cell.detach(), pbc)

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

        out = self.total_energy(self.scale * self.readout(x) + self.shift, data)
        if self.direct_forces:
            out["forces"] = self.scale * self.force_head(x)
        return out
