"""ASE calculator for trained sciml interatomic potentials (``sciml train`` checkpoints of ``task: potential``, any
registered energy model)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

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
                 neighbors: str = "auto", **kwargs: Any):
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

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        dtype: str | torch.dtype = "float32", use_ema: bool = True, **kwargs: Any) -> MLIPCalculator:
        """Load a ``sciml train`` checkpoint (``best.pt``, ``last.pt`` or a shipped ``.pt``) of any registered model."""
        from models.potential.forces import ForceField
        from sciml.training.checkpoint import load_model

        model, _, _ = load_model(path, device=device, dtype=_dtype(dtype), use_ema=use_ema, task="potential")
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
        results: list[dict[str, Any]] = []
        for chunk in chunks_by_atoms([len(a) for a in structures], max_atoms):
            group = [structures[i] for i in chunk]
            for atoms in group:  # before the featuriser: an unknown element is named, not a neighbour-list error
                self.model.model.check_elements(torch.as_tensor(atoms.numbers, device=self.device))
            batch = self.inputs.from_atoms(group).to(self.device)
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

    def calculate(self, atoms: Any = None, properties: Sequence[str] = ("energy",),
                  system_changes: Sequence[str] = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        want_stress = "stress" in properties
        if want_stress and not self.atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs a 3-D periodic cell (pbc all True)")
        res = self.predict([self.atoms], forces=True, stress=want_stress)[0]
        res["free_energy"] = res["energy"]
        self.results = res
