"""Checks that a structure can be given to a model at all: a usable cell where it is periodic, no (nearly)
coincident atoms, and an estimate of its neighbour-list size for memory budgets. Units: Angstrom."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sciml.errors import DataError

#: atoms closer than this (Angstrom) are refused: no bond is shorter than ~0.5 A, and at 0 the model's radial
#: functions are undefined (NaN energies and forces)
MIN_DISTANCE = 0.1


def _symbol(z: int) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}"


def check_structure(item: Any, where: str, min_distance: float = MIN_DISTANCE) -> None:
    """Raise :class:`DataError` naming ``where`` if a periodic axis has no cell vector (or the cell is singular), or
    if two atoms are closer than ``min_distance`` (naming both atoms and their distance). ``item``: a dataset item
    (``z``, ``pos`` [n, 3], ``cell`` [1, 3, 3], ``pbc`` [1, 3])."""
    from vesin import NeighborList

    pbc = item.pbc.reshape(3).numpy().astype(bool)
    cell = item.cell.reshape(3, 3).double().numpy()
    if pbc.any():
        axes = "".join(a for a, p in zip("xyz", pbc) if p)
        lengths = np.linalg.norm(cell, axis=1)
        if (lengths[pbc] == 0).any() or abs(np.linalg.det(cell)) < 1e-6 * max(lengths.prod(), 1e-300):
            raise DataError(f"{where}: periodic along {axes} but the cell {cell.round(4).tolist()} has no volume; "
                            "set the cell, or pbc=False for a molecule")
    if len(item.z) < 2:
        return
    pos = item.pos.double().numpy()
    i, j, d = NeighborList(cutoff=min_distance, full_list=False).compute(
        points=pos, box=cell if pbc.any() else np.zeros((3, 3)), periodic=pbc.tolist(), quantities="ijd")
    if len(d):
        k = int(np.argmin(d))
        a, b = int(i[k]), int(j[k])
        z = item.z.tolist()
        raise DataError(f"{where}: atoms {a} ({_symbol(z[a])}) and {b} ({_symbol(z[b])}) are {d[k]:.3g} Angstrom "
                        f"apart (closer than {min_distance} Angstrom; {len(d)} such pair(s))")


def estimate_edges(item: Any, cutoff: float) -> int:
    """Directed neighbour pairs within ``cutoff`` (Angstrom): counted exactly for molecules, estimated from the number
    density for periodic cells (N^2 (4/3) pi rc^3 / V, images included), without building the list."""
    n = len(item.z)
    pbc = item.pbc.reshape(3).numpy().astype(bool)
    if pbc.any():
        volume = abs(float(np.linalg.det(item.cell.reshape(3, 3).double().numpy())))
        return int(n * n * 4.0 / 3.0 * math.pi * cutoff**3 / volume) if volume > 0 else n * n
    from scipy.spatial import cKDTree

    tree = cKDTree(item.pos.double().numpy())
    return int(tree.count_neighbors(tree, cutoff)) - n
