"""ASE ``Atoms`` -> model input (``torch_geometric`` Batch), shared by the calculator, ``sciml eval`` and ``sciml relax``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from sciml.potential.data import with_neighbors


def atoms_to_data(atoms: Any, dtype: torch.dtype = torch.float32, cutoff: float | None = None) -> Data:
    """One structure as ``Data`` (z, pos [n, 3] Angstrom, cell [1, 3, 3], pbc [1, 3], natoms); with ``cutoff`` also
    its vesin neighbour list (otherwise the model builds one in torch). Reference energy/forces are attached when the
    atoms carry a calculator with them (``energy`` eV, ``forces`` eV/Angstrom)."""
    data = Data(z=torch.as_tensor(atoms.numbers, dtype=torch.long),
                pos=torch.as_tensor(np.asarray(atoms.positions), dtype=dtype),
                cell=torch.as_tensor(np.asarray(atoms.cell.array), dtype=dtype).reshape(1, 3, 3),
                pbc=torch.as_tensor(np.asarray(atoms.pbc), dtype=torch.bool).reshape(1, 3),
                natoms=torch.tensor([len(atoms)]))
    return with_neighbors(data, cutoff) if cutoff is not None else data


def reference_labels(atoms: Any) -> tuple[float | None, np.ndarray | None]:
    """(energy eV, forces [n, 3] eV/Angstrom) stored with ``atoms`` (e.g. read from extxyz), or None where absent."""
    calc = atoms.calc
    results = getattr(calc, "results", {}) if calc is not None else {}
    energy = results.get("energy", atoms.info.get("energy"))
    forces = results.get("forces", atoms.arrays.get("forces"))
    return (None if energy is None else float(energy)), (None if forces is None else np.asarray(forces))


def chunks_by_atoms(sizes: Sequence[int], max_atoms: int) -> Iterator[list[int]]:
    """Consecutive index lists whose sizes sum to at most ``max_atoms`` (a larger structure forms its own chunk)."""
    chunk: list[int] = []
    total = 0
    for i, n in enumerate(sizes):
        if chunk and total + n > max_atoms:
            yield chunk
            chunk, total = [], 0
        chunk.append(i)
        total += n
    if chunk:
        yield chunk


def batch_structures(structures: Sequence[Any], dtype: torch.dtype, cutoff: float | None,
                     device: torch.device | str) -> Batch:
    """Many ``Atoms`` as one ``Batch`` on ``device``."""
    return Batch.from_data_list([atoms_to_data(a, dtype, cutoff) for a in structures]).to(device)
