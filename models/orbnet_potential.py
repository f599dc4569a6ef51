"""OrbNet-style energy model: GFN1-xTB orbital features feed an attention message-passing network that learns the
difference between a reference method (DFT) and GFN1-xTB.

E = E_GFN1(R) + sum_A [scale * eps_A + shift + E0(Z_A)] (eV). Nodes are atoms carrying the invariants of their shell
blocks, edges are atom pairs within ``cutoff`` carrying the bilinear invariants of their off-site blocks
(:mod:`sciml.xtb.features`). Forces through :class:`~models.potential.forces.ForceField` are the exact -dE/dR:
GFN1's gradient plus the network's gradient through the features, from dxtb's autograd - or, for frames with a
feature cache (:mod:`sciml.xtb.cache`), from the cached gradient and feature Jacobian, which gives the same values
and derivatives at the cached geometry without running the SCF again (training on forces).
See docs/orbnet.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from models.potential.base import MAX_Z, EnergyModel
from models.potential.radial import BesselBasis, PolynomialEnvelope
from sciml.errors import ConfigError, DataError

#: dataset fields of a feature cache (sciml.xtb.cache)
CACHE_FIELDS = ("frame_e_gfn1", "atom_g_gfn1", "atom_node", "pair_index", "pair_edge", "values_jacobian")


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers[:-1])


class AttentionBlock(nn.Module):
    """OrbNet-style attention message passing on atom pairs: m_uv = SiLU(W_m (h_u * h_v * W_eh e_uv)); per head i
    a_uv = tanh(mean((W_a h_u) * (W_a h_v) * W_ea e_uv)) (not softmax-normalised, so the sum stays extensive);
    h_u += SiLU(W_h [sum_v a_uv m_uv u(r_uv)]_heads); e_uv += SiLU(W_e m_uv)."""

    def __init__(self, hidden: int, edge_hidden: int, heads: int):
        super().__init__()
        if hidden % heads:
            raise ConfigError(f"model.hidden ({hidden}) must be a multiple of model.heads ({heads})")
        self.heads = heads
        self.edge_to_node = nn.Linear(edge_hidden, hidden)
        self.message = nn.Linear(hidden, hidden)
        self.attend = nn.Linear(hidden, hidden, bias=False)
        self.edge_attend = nn.Linear(edge_hidden, hidden, bias=False)
        self.update = nn.Linear(hidden, hidden)
        self.edge_update = nn.Linear(hidden, edge_hidden)

    def forward(self, h: torch.Tensor, e: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
                envelope: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h [N, H], e [P, E] for the directed pairs src -> dst [P], envelope [P] -> updated (h, e)."""
        hu, hv = h[dst], h[src]
        m = nn.functional.silu(self.message(hu * hv * self.edge_to_node(e)))
        q, k = self.attend(hu), self.attend(hv)
        score = (q * k * self.edge_attend(e)).view(len(e), self.heads, -1).mean(-1)
        a = torch.tanh(score).repeat_interleave(m.shape[1] // self.heads, dim=1)
        agg = torch.zeros_like(h).index_add(0, dst, a * m * envelope[:, None])
        return h + nn.functional.silu(self.update(agg)), e + nn.functional.silu(self.edge_update(m))


class OrbNetPotential(EnergyModel):
    """OrbNet-style Delta-learning potential for molecules (see the module docstring).

    Args:
        elements: atomic numbers the model accepts; cutoff: pair cutoff (Angstrom) with a smooth envelope.
        hidden / edge_hidden: node / edge feature widths; layers: attention blocks; heads: attention heads;
        num_basis: Bessel functions of the pair distance; method: the semi-empirical baseline (GFN1-xTB).
    """

    name: ClassVar[str] = "orbnet"
    config_defaults: ClassVar[dict[str, Any]] = {
        "cutoff": 6.0,  # Angstrom
        "hidden": 64,
        "edge_hidden": 32,
        "layers": 3,
        "heads": 4,
        "num_basis": 8,
        "method": "GFN1-xTB",
    }
    config_choices: ClassVar[dict[str, tuple[Any, ...]]] = {"method": ("GFN1-xTB",)}

    def __init__(self, elements: Sequence[int] = (), cutoff: float = 6.0, hidden: int = 64, edge_hidden: int = 32,
                 layers: int = 3, heads: int = 4, num_basis: int = 8, method: str = "GFN1-xTB"):
        from sciml.xtb.features import NODE_FEATURES, PAIR_FEATURES

        config = {"cutoff": cutoff, "hidden": hidden, "edge_hidden": edge_hidden, "layers": layers, "heads": heads,
                  "num_basis": num_basis, "method": method}
        self.check_config(config)
        super().__init__(config, elements)
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("shift", torch.tensor(0.0))
        self.register_buffer("node_scale", torch.ones(NODE_FEATURES))
        self.register_buffer("pair_scale", torch.ones(PAIR_FEATURES))
        self.embedding = nn.Embedding(MAX_Z + 1, hidden)
        self.node_in = _mlp([NODE_FEATURES, hidden, hidden])
        self.edge_in = _mlp([PAIR_FEATURES + num_basis, edge_hidden, edge_hidden])
        self.basis = BesselBasis(cutoff, num_basis)
        self.envelope = PolynomialEnvelope(cutoff)
        self.blocks = nn.ModuleList(AttentionBlock(hidden, edge_hidden, heads) for _ in range(layers))
        self.readouts = nn.ModuleList(nn.Linear(hidden, 1) for _ in range(layers + 1))
        self._xtb: Any = None
        #: when dxtb's energy is checked against tblite's: "every" structure, or the "first" of each composition,
        #: charge and spin (the known dxtb errors depend on the elements; a check costs one tblite single point)
        self.tblite_check = "every"
        #: dxtb integral driver of the uncached path: one of sciml.xtb.backend.INTEGRAL_DRIVERS, or "auto": dxtb's
        #: own (differentiable to any order) in training mode, libcint where installed otherwise (about 2x faster)
        self.integrals = "auto"
        self._checked: set[tuple[Any, ...]] = set()

    @classmethod
    def check_config(cls, cfg: dict[str, Any]) -> None:
        super().check_config(cfg)
        for key in ("hidden", "edge_hidden", "layers", "heads", "num_basis"):
            if key in cfg and (not isinstance(cfg[key], int) or cfg[key] < 1):
                raise ConfigError(f"model.{key} must be an integer >= 1, got {cfg[key]!r}")
        if "hidden" in cfg and "heads" in cfg and cfg["hidden"] % cfg["heads"]:
            raise ConfigError(f"model.hidden ({cfg['hidden']}) must be a multiple of model.heads ({cfg['heads']})")
        if "cutoff" in cfg and not cfg["cutoff"] > 0:
            raise ConfigError(f"model.cutoff must be > 0 Angstrom, got {cfg['cutoff']!r}")

    def featurizer(self, neighbors: str = "auto") -> Any:
        """Items are used as they are: cached features travel in the items, uncached structures are treated by
        dxtb inside :meth:`forward`."""
        return _identity

    @classmethod
    def featurizer_for(cls, cfg: dict[str, Any], neighbors: str = "auto") -> Any:
        return _identity

    @classmethod
    def prepare_files(cls, files: list[str], cfg: dict[str, Any], cache_dir: str | None, progress: bool) -> list[str]:
        """Feature caches of ``files`` (built once, reused while the source and the method are unchanged)."""
        from sciml.xtb.cache import cached_features

        return [str(cached_features(f, cfg["cutoff"], cache_dir, progress=progress)) for f in files]

    def baseline(self, frames: Sequence[Any]) -> tuple[np.ndarray, list[np.ndarray]]:
        """GFN1-xTB energies (eV) and forces (eV/Angstrom) of cached frames: the part the network does not learn."""
        missing = [k for k in ("frame_e_gfn1", "atom_g_gfn1") if k not in frames[0]]
        if missing:
            raise DataError(f"the orbnet statistics need feature-cached frames (missing {missing})")
        energies = np.array([float(f.frame_e_gfn1.reshape(-1)[0]) for f in frames])
        return energies, [-f.atom_g_gfn1.double().numpy() for f in frames]

    def feature_statistics(self, frames: Sequence[Any]) -> dict[str, Any]:
        """RMS of every atom and pair feature over ``frames`` (the network sees asinh(feature / RMS))."""
        node = torch.cat([f.atom_node.double() for f in frames])
        pair = torch.cat([f.pair_edge.double() for f in frames])
        return {"node_scale": node.square().mean(0).sqrt().clamp_min(1e-8).tolist(),
                "pair_scale": pair.square().mean(0).sqrt().clamp_min(1e-8).tolist()}

    @torch.no_grad()
    def set_statistics(self, elements: Sequence[int], atomic_energies: dict[int, float], scale: float = 1.0,
                       shift: float = 0.0, node_scale: Sequence[float] | None = None,
                       pair_scale: Sequence[float] | None = None, **_: Any) -> None:
        """Known elements, reference energies E0 of E - E_GFN1 {Z: eV}, energy scale and per-atom shift of the
        network output (eV), feature scales."""
        super().set_statistics(elements, atomic_energies)
        self.scale.fill_(scale)
        self.shift.fill_(shift)
        if node_scale is not None:
            self.node_scale.copy_(torch.as_tensor(node_scale))
        if pair_scale is not None:
            self.pair_scale.copy_(torch.as_tensor(pair_scale))

    def memory_per_edge(self) -> int:
        return 8 * (self.config["hidden"] + self.config["edge_hidden"]) * len(self.blocks) * \
            torch.finfo(self.dtype).bits // 8

    # -- inputs ---------------------------------------------------------------------------------------------
    def _frame_inputs(self, data: Any, k: int, a0: int, a1: int, pos: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(E_GFN1 eV [1], atom features [n, F], pair index [2, P] (local, a < b), pair features [P, 10]) of frame
        ``k`` (atoms a0:a1), differentiable in ``pos``."""
        if all(key in data for key in CACHE_FIELDS):
            return self._cached_inputs(data, k, a0, a1, pos)
        return self._xtb_inputs(data, k, pos)

    def _cached_inputs(self, data: Any, k: int, a0: int, a1: int, pos: torch.Tensor) -> tuple[torch.Tensor, ...]:
        for field, cached in (("charge", "frame_xtb_charge"), ("spin", "frame_xtb_uhf")):
            if cached in data and int(data[field][k] if field in data else 0) != int(data[cached][k]):
                raise DataError(f"structure {k} of the batch: {field} {int(data[field][k])} but its feature cache "
                                f"was computed with {int(data[cached][k])}; rebuild the cache")
        # first-order expansion about the cached geometry: exact value and exact gradient there (pos - pos.detach()
        # is zero but carries the derivative)
        n = a1 - a0
        dpos = (pos - pos.detach()).reshape(-1).double()
        p0, p1 = int(data._slice_dict["pair_index"][k]), int(data._slice_dict["pair_index"][k + 1])
        j0, j1 = int(data._slice_dict["values_jacobian"][k]), int(data._slice_dict["values_jacobian"][k + 1])
        node0, edge0 = data.atom_node[a0:a1].double(), data.pair_edge[p0:p1].double()
        jac = data.values_jacobian[j0:j1].double().view(-1, 3 * n)
        flat = torch.cat([node0.reshape(-1), edge0.reshape(-1)]) + jac @ dpos
        node, edge = flat[:node0.numel()].view_as(node0), flat[node0.numel():].view_as(edge0)
        energy = data.frame_e_gfn1[k].double() + (data.atom_g_gfn1[a0:a1].double().reshape(-1) * dpos).sum()
        return energy.reshape(1), node, data.pair_index[:, p0:p1] - a0, edge

    def _xtb_inputs(self, data: Any, k: int, pos: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from sciml.xtb.backend import DxtbGFN1, check_agreement, fastest_integrals, tblite_gfn1
        from sciml.xtb.features import orbital_features

        driver = self.integrals if self.integrals != "auto" else "dxtb" if self.training else fastest_integrals()
        if self._xtb is None or self._xtb.integrals != driver:
            self._xtb = DxtbGFN1(integrals=driver)
        a0, a1 = int(data.ptr[k]), int(data.ptr[k + 1])
        z = data.z[a0:a1]
        charge = int(data.charge[k]) if "charge" in data else 0
        uhf = int(data.spin[k]) if "spin" in data else 0
        where = f"structure {k} of the batch"
        res = self._xtb.singlepoint(z.cpu(), pos.double().cpu(), charge, uhf, where)
        key = (tuple(z.tolist()), charge, uhf)
        if self.tblite_check == "every" or key not in self._checked:
            e_tblite = tblite_gfn1(z.tolist(), pos.detach().double().cpu().numpy(), charge, uhf, where)[0]
            check_agreement(float(res.energy.detach()), e_tblite, where)
            self._checked.add(key)
        node, pairs = orbital_features(res, a1 - a0)
        a, b = close_pairs(pos.detach().double().cpu(), self.cutoff)
        to = pos.device
        return (res.energy.reshape(1).to(to), node.to(to), torch.stack([a, b]).to(to), pairs[a, b].to(to))

    # -- network --------------------------------------------------------------------------------------------
    def forward(self, data: Any) -> dict[str, torch.Tensor]:
        """``energy`` [B] and ``node_energy`` [N] (eV, float64) of a batch of molecules (``z``, ``pos`` Angstrom,
        ``batch``; optional ``charge`` and ``spin`` (unpaired electrons) per frame, and feature-cache fields)."""
        if "pbc" in data and bool(data.pbc.any()):
            raise DataError("the orbnet model treats molecules only: a structure of this batch is periodic")
        pos, ptr = data.pos, data.ptr
        e_base, nodes, index, edges = [], [], [], []
        for k in range(int(data.num_graphs)):
            a0, a1 = int(ptr[k]), int(ptr[k + 1])
            e, node, pair_index, edge = self._frame_inputs(data, k, a0, a1, pos[a0:a1])
            e_base.append(e)
            nodes.append(node)
            index.append(pair_index + a0)
            edges.append(edge)
        dtype = pos.dtype
        node = torch.asinh(torch.cat(nodes).to(dtype) / self.node_scale)
        edge = torch.asinh(torch.cat(edges).to(dtype) / self.pair_scale)
        a, b = torch.cat(index, 1)
        r = (pos[a] - pos[b]).norm(dim=-1)
        envelope = self.envelope(r)
        e = self.edge_in(torch.cat([edge, self.basis(r)], -1))
        src, dst = torch.cat([a, b]), torch.cat([b, a])  # both directions of every pair
        e, envelope = torch.cat([e, e]), torch.cat([envelope, envelope])
        h = self.embedding(data.z).to(dtype) + self.node_in(node)
        eps = self.readouts[0](h).squeeze(-1)
        for block, readout in zip(self.blocks, self.readouts[1:]):
            h, e = block(h, e, src, dst, envelope)
            eps = eps + readout(h).squeeze(-1)
        out = self.total_energy(self.scale * eps + self.shift, data)
        out["energy"] = out["energy"] + torch.cat(e_base).double()
        return out


def close_pairs(pos: torch.Tensor, cutoff: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Atom pairs (a < b) of one molecule closer than ``cutoff`` (Angstrom): two index tensors [P]."""
    d = torch.cdist(pos, pos)
    a, b = torch.triu_indices(len(pos), len(pos), 1)
    keep = d[a, b] < cutoff
    return a[keep], b[keep]


def _identity(item: Any) -> Any:
    return item
