"""Radius graphs (neighbour lists) for batches of molecules and periodic cells, and the :class:`NeighborList`
item transform that attaches them in the data loader.

Convention for every edge ``e``: ``edge_index[0, e] = j`` (source, the neighbour), ``edge_index[1, e] = i`` (destination,
the centre) and the edge vector is ``pos[j] - pos[i] + edge_shift[e] @ cell`` (Angstrom), with ``edge_shift`` the integer
number of cell vectors (stored as float). Both directions of every pair are listed.

:func:`radius_graph` is pure torch (runs on any device, no compiled extension); :func:`radius_graph_vesin` uses the
``vesin`` package on CPU (numpy) and is faster for large periodic cells. Both give the same edge set.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from sciml.errors import ConfigError

NEIGHBOR_BACKENDS = ("auto", "vesin", "torch")


def _image_shifts(cell: torch.Tensor, pbc: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Integer lattice translations [S, 3] (float) that can bring an atom of a wrapped cell within ``cutoff``."""
    inv = torch.linalg.inv(cell)
    # distance between lattice planes i is 1 / |column i of inv(cell)|
    reps = torch.ceil(cutoff * inv.norm(dim=0)).long() * pbc.long()
    ranges = [torch.arange(-int(n), int(n) + 1, device=cell.device, dtype=cell.dtype) for n in reps]
    return torch.cartesian_prod(*ranges).reshape(-1, 3)


def _periodic_graph_edges(pos: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor,
                          cutoff: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges (local indices) and shifts of one periodic structure; positions need not be wrapped."""
    inv = torch.linalg.inv(cell)
    wrap = torch.floor(pos @ inv) * pbc.to(pos.dtype)  # [n, 3] cells each atom sits in (periodic axes only)
    wrapped = pos - wrap @ cell
    shifts = _image_shifts(cell, pbc, cutoff)  # [S, 3]
    # vec[s, i, j] = wrapped[j] + shifts[s] @ cell - wrapped[i]
    vec = wrapped[None, None, :, :] + (shifts @ cell)[:, None, None, :] - wrapped[None, :, None, :]
    dist2 = vec.square().sum(-1)
    n = pos.shape[0]
    self_pair = (shifts.abs().sum(-1) == 0)[:, None, None] & torch.eye(n, dtype=torch.bool, device=pos.device)[None]
    s, i, j = torch.nonzero((dist2 < cutoff * cutoff) & ~self_pair, as_tuple=True)
    # shift for the unwrapped positions: pos[j] - pos[i] + (S - wrap_j + wrap_i) @ cell
    return torch.stack([j, i]), shifts[s] - wrap[j] + wrap[i]


def _molecule_edges(pos: torch.Tensor, batch: torch.Tensor, ptr: torch.Tensor, graphs: torch.Tensor,
                    cutoff: float) -> torch.Tensor:
    """Edges (global indices) of all non-periodic structures ``graphs`` at once, via a padded [G, n_max, n_max] block."""
    select = torch.isin(batch, graphs)
    atoms = torch.nonzero(select, as_tuple=True)[0]
    slot = torch.searchsorted(graphs, batch[atoms])  # which of the selected graphs
    local = atoms - ptr[batch[atoms]]
    n_max = int(local.max()) + 1
    padded = pos.new_full((graphs.numel(), n_max, 3), float("inf"))
    padded[slot, local] = pos[atoms]
    dist2 = (padded[:, :, None, :] - padded[:, None, :, :]).square().sum(-1)  # inf for padding
    dist2.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    g, i, j = torch.nonzero(dist2 < cutoff * cutoff, as_tuple=True)
    base = ptr[graphs[g]]
    return torch.stack([base + j, base + i])


@torch.no_grad()
def radius_graph(pos: torch.Tensor, batch: torch.Tensor, num_graphs: int, cutoff: float,
                 cell: torch.Tensor | None = None, pbc: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All pairs closer than ``cutoff`` (Angstrom) within each structure, honouring periodic boundaries.

    Args:
        pos: [N, 3] positions; batch: [N] structure index (sorted, 0..num_graphs-1).
        cell: [B, 3, 3] lattice vectors as rows (ignored where not periodic); pbc: [B, 3] bool.
    Returns:
        edge_index [2, E] (long) and edge_shift [E, 3] (integer cell translations, ``pos.dtype``).
    """
    device = pos.device
    counts = torch.bincount(batch, minlength=num_graphs)
    ptr = torch.cumsum(counts, 0) - counts
    periodic = pbc.reshape(num_graphs, 3).any(-1) if pbc is not None else torch.zeros(num_graphs, dtype=torch.bool,
                                                                                         device=device)
    index_parts, shift_parts = [], []
    molecules = torch.nonzero(~periodic & (counts > 1), as_tuple=True)[0]
    if molecules.numel():
        edges = _molecule_edges(pos, batch, ptr, molecules, cutoff)
        index_parts.append(edges)
        shift_parts.append(pos.new_zeros(edges.shape[1], 3))
    for g in torch.nonzero(periodic, as_tuple=True)[0].tolist():
        start, n = int(ptr[g]), int(counts[g])
        edges, shifts = _periodic_graph_edges(pos[start:start + n], cell.reshape(-1, 3, 3)[g],
                                              pbc.reshape(-1, 3)[g], cutoff)
        index_parts.append(edges + start)
        shift_parts.append(shifts)
    if not index_parts:
        return torch.zeros(2, 0, dtype=torch.long, device=device), pos.new_zeros(0, 3)
    return torch.cat(index_parts, 1), torch.cat(shift_parts, 0)


def radius_graph_vesin(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray,
                       cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour list of ONE structure with vesin (CPU): edge_index [2, E] int64 and edge_shift [E, 3] float64."""
    from vesin import NeighborList  # optional dependency: imported only where used (not on GPU nodes)

    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    box = np.asarray(cell, dtype=np.float64).reshape(3, 3) if pbc.any() else np.zeros((3, 3))
    i, j, shifts = NeighborList(cutoff=cutoff, full_list=True).compute(
        points=np.asarray(positions, dtype=np.float64), box=box, periodic=pbc.tolist(), quantities="ijS")
    return np.stack([j, i]).astype(np.int64), shifts.astype(np.float64)


def have_vesin() -> bool:
    """Whether the optional ``vesin`` package is importable."""
    try:
        import vesin  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_neighbor_backend(backend: str) -> str:
    """``auto`` -> ``vesin`` where installed (CPU neighbour lists in the loader), else ``torch`` (built by the model on
    its device)."""
    if backend not in NEIGHBOR_BACKENDS:
        raise ConfigError(f"neighbour-list backend must be one of {', '.join(NEIGHBOR_BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "vesin" if have_vesin() else "torch"
    if backend == "vesin" and not have_vesin():
        raise ConfigError("neighbour-list backend 'vesin' asked for but the vesin package is not installed "
                          "(use 'torch' or 'auto')")
    return backend


class NeighborList:
    """Item transform (picklable, for DataLoader workers): adds ``edge_index`` [2, E] and ``edge_shift`` [E, 3]
    (integer cell translations, in the dtype of ``pos``) within ``cutoff`` (Angstrom), computed by vesin on the CPU.
    With the ``torch`` backend it returns items unchanged and the model builds the graph on its device."""

    def __init__(self, cutoff: float, backend: str = "auto"):
        self.cutoff, self.backend = float(cutoff), resolve_neighbor_backend(backend)

    def __call__(self, item: Any) -> Any:
        if self.backend == "torch":
            return item
        edge_index, shifts = radius_graph_vesin(item.pos.double().numpy(), item.cell.reshape(3, 3).double().numpy(),
                                                item.pbc.reshape(3).numpy(), self.cutoff)
        out = copy.copy(item)  # shallow: the item's tensors are shared, not modified
        out.edge_index = torch.from_numpy(edge_index)
        out.edge_shift = torch.from_numpy(shifts).to(item.pos.dtype)
        return out
