"""Model inputs: dataset items -> featurised, collated batches. One pipeline serves the training loader, ``sciml
eval``, ``sciml relax`` and the ASE calculator, so a structure reaches a model the same way everywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torch_geometric.data import Batch, Data


class ModelInputs:
    """Picklable: ``items -> collate_atoms([featurizer(item) for item in items])`` (``featurizer`` from the model's
    :meth:`~models.potential.base.EnergyModel.featurizer`, e.g. its neighbour list)."""

    def __init__(self, featurizer: Callable[[Data], Data]):
        self.featurizer = featurizer

    def __call__(self, items: Sequence[Data]) -> Batch:
        from data_tools.collate import collate_atoms

        return collate_atoms([self.featurizer(item) for item in items])

    def from_atoms(self, structures: Sequence[Any]) -> Batch:
        """A batch of ``ase.Atoms`` (float64 positions; the model casts them to its dtype)."""
        from data_tools.items import atoms_to_item

        return self([atoms_to_item(atoms) for atoms in structures])


def chunks_by_atoms(sizes: Sequence[int], max_atoms: int, costs: Sequence[float] | None = None,
                    max_cost: float = float("inf")) -> Iterator[list[int]]:
    """Consecutive index lists whose sizes sum to at most ``max_atoms`` and whose ``costs`` (e.g. estimated bytes)
    sum to at most ``max_cost`` (a structure over either limit alone forms its own chunk)."""
    chunk: list[int] = []
    total = cost = 0.0
    for i, n in enumerate(sizes):
        c = costs[i] if costs is not None else 0.0
        if chunk and (total + n > max_atoms or cost + c > max_cost):
            yield chunk
            chunk, total, cost = [], 0.0, 0.0
        chunk.append(i)
        total += n
        cost += c
    if chunk:
        yield chunk
