"""ASE calculator for trained sciml interatomic potentials (``sciml train`` checkpoints of ``task: potential``, any
registered energy model)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from data_tools.geometry import MIN_DISTANCE, check_structure, estimate_edges
from data_tools.items import atoms_to_item
from sciml.errors import DataError
from sciml.potential.inputs import ModelInputs, chunks_by_atoms

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)} or a torch dtype, got {dtype!r}")
    return DTYPES[dtype]


def _voigt(stress: np.ndarray) -> np.ndarray:
    """3x3 -> ASE Voigt order (xx, yy, zz, yz, xz, xy)."""
    return stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]


class MLIPCalculator(Calculator):
    """Energy (eV), free_energy (= energy), forces (eV/Angstrom) and, for 3-D periodic cells, stress (eV/Angstrom^3,
    Voigt) from a trained potential.

    ``model``: a :class:`~models.potential.forces.ForceField` or a bare energy model (wrapped here). Inputs go through
    the model's own featuriser (neighbour lists: ``neighbors`` auto = vesin on the CPU where installed, else the
    model's torch radius graph, which runs on GPU). Elements absent from the training data raise
    :class:`~sciml.errors.DataError` naming them. Use ``dtype="float64"`` for relaxations and MD (tighter forces).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32",
                 neighbors: str = "auto", min_distance: float = MIN_DISTANCE, memory_budget_gb: float = 8.0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        from models.potential.base import EnergyModel
        from models.potential.forces import ForceField

        if isinstance(model, EnergyModel):
            model = ForceField(model)
        if not isinstance(model, ForceField):
            raise TypeError(f"MLIPCalculator needs a ForceField or an EnergyModel, got {type(model).__name__}")
        self.device = torch.device(device)
        self.dtype = _dtype(dtype)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.inputs = ModelInputs(model.model.featurizer(neighbors))
        self.min_distance, self.memory_budget = float(min_distance), float(memory_budget_gb) * 2**30

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        dtype: str | torch.dtype = "float32", use_ema: bool = True, allow_tasks: Sequence[str] = (),
                        **kwargs: Any) -> MLIPCalculator:
        """Load a ``sciml train`` checkpoint (``best.pt``, ``last.pt`` or a shipped ``.pt``) of any registered model.
        ``allow_tasks``: your own ``"module:Class"`` task classes to accept (see :func:`~sciml.training.checkpoint.
        load_model`); a checkpoint naming any other unregistered task is refused without importing it."""
        from models.potential.forces import ForceField
        from sciml.training.checkpoint import load_model

        model, _, _ = load_model(path, device=device, dtype=_dtype(dtype), use_ema=use_ema, task="potential",
                                 allow_tasks=allow_tasks)
        if not isinstance(model, ForceField):
            raise DataError(f"checkpoint {path} holds a {type(model).__name__}, not an interatomic potential")
        return cls(model, device=device, dtype=dtype, **kwargs)

    def predict(self, structures: Sequence[Any], forces: bool = True, stress: bool = False,
                max_atoms: int = 4096) -> list[dict[str, Any]]:
        """Batched evaluation of many ``Atoms``: one dict per structure with ``energy`` (eV), ``forces`` [n, 3]
        (eV/Angstrom) and, with ``stress=True`` (3-D periodic structures only), ``stress`` (Voigt, eV/Angstrom^3).
        Structures are packed into batches of at most ``max_atoms`` atoms."""
        if stress and not all(a.pbc.all() for a in structures):
            raise PropertyNotImplementedError("stress needs 3-D periodic structures (pbc all True)")
        items = [self._checked_item(atoms, k) for k, atoms in enumerate(structures)]
        cost = [estimate_edges(item, self.model.cutoff) * self.model.model.memory_per_edge() for item in items]
        results: list[dict[str, Any]] = []
        for chunk in chunks_by_atoms([len(a) for a in structures], max_atoms, cost, self.memory_budget):
            group = [structures[i] for i in chunk]
            batch = self.inputs([items[i] for i in chunk]).to(self.device)
            out = self.model(batch, compute_forces=forces, compute_stress=stress)
            energies = out["energy"].detach().cpu().numpy()
            ptr = batch.ptr.cpu().numpy()
            for k in range(len(group)):
                res: dict[str, Any] = {"energy": float(energies[k])}
                if forces:
                    res["forces"] = out["forces"][ptr[k]:ptr[k + 1]].detach().cpu().double().numpy()
                if stress:
                    res["stress"] = _voigt(out["stress"][k].detach().cpu().double().numpy())
                results.append(res)
        return results

    def _checked_item(self, atoms: Any, k: int) -> Any:
        """``atoms`` as a model input item, refused (DataError) before any model or neighbour-list code runs when its
        elements are unknown, its geometry unusable or its neighbour list larger than the memory budget."""
        where = f"structure {k} ({atoms.get_chemical_formula()})"
        self.model.model.check_elements(torch.as_tensor(atoms.numbers))
        item = atoms_to_item(atoms)
        check_structure(item, where, self.min_distance)
        edges = estimate_edges(item, self.model.cutoff)
        need = edges * self.model.model.memory_per_edge()
        if need > self.memory_budget:
            raise DataError(f"{where}: about {edges:,} neighbour pairs within {self.model.cutoff:g} Angstrom for "
                            f"{len(atoms)} atoms, an estimated {need / 2**30:.1f} GiB > the memory budget of "
                            f"{self.memory_budget / 2**30:g} GiB (memory_budget_gb); check the cell and density")
        return item

    def calculate(self, atoms: Any = None, properties: Sequence[str] = ("energy",),
                  system_changes: Sequence[str] = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        want_stress = "stress" in properties
        if want_stress and not self.atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs a 3-D periodic cell (pbc all True)")
        res = self.predict([self.atoms], forces=True, stress=want_stress)[0]
        res["free_energy"] = res["energy"]
        self.results = res
