"""ASE calculator for OrbNet-style checkpoints (``model.name: orbnet``): energies and forces of molecules with a
given charge and spin multiplicity."""

from __future__ import annotations

import os
from typing import Any

import torch

from sciml.calculators.mlip import MLIPCalculator
from sciml.errors import DataError


class OrbNetCalculator(MLIPCalculator):
    """Energy (eV), free_energy (= energy) and forces (eV/Angstrom): GFN1-xTB (dxtb, checked against tblite) plus
    the learned correction and its exact gradient.

    ``charge`` (e) and ``multiplicity`` (2S + 1) apply to every structure; they must be consistent with the number
    of electrons. Periodic structures are refused. float64 by default (dxtb works in float64).
    ``tblite_check``: dxtb's energy is compared with tblite's for the ``"first"`` structure of each composition,
    charge and multiplicity (default: the known dxtb errors depend on the elements, and a relaxation or MD run then
    pays for one tblite call, not one per step) or for ``"every"`` structure. ``integrals``: dxtb's integral
    driver, ``"auto"`` (libcint where tad-libcint is installed, about 2x faster; else dxtb's own), ``"libcint"`` or
    ``"dxtb"``; both give the same energies and forces to the SCF tolerance.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float64",
                 charge: int = 0, multiplicity: int = 1, tblite_check: str = "first", integrals: str = "auto",
                 **kwargs: Any):
        from sciml.xtb.backend import INTEGRAL_DRIVERS

        super().__init__(model, device=device, dtype=dtype, **kwargs)
        if self.model.model.name != "orbnet":
            raise DataError(f"OrbNetCalculator needs an orbnet model, got {self.model.model.name!r} (use "
                            "MLIPCalculator)")
        if tblite_check not in ("first", "every"):
            raise DataError(f"tblite_check must be 'first' or 'every', got {tblite_check!r}")
        if integrals not in ("auto", *INTEGRAL_DRIVERS):
            raise DataError(f"integrals must be 'auto' or one of {INTEGRAL_DRIVERS}, got {integrals!r}")
        if int(multiplicity) < 1:
            raise DataError(f"multiplicity must be >= 1, got {multiplicity}")
        self.model.model.tblite_check = tblite_check
        self.model.model.integrals = integrals
        self.charge, self.multiplicity = int(charge), int(multiplicity)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        dtype: str | torch.dtype = "float64", charge: int = 0, multiplicity: int = 1,
                        tblite_check: str = "first", integrals: str = "auto", **kwargs: Any) -> OrbNetCalculator:
        """Load a ``sciml train`` checkpoint of an orbnet model."""
        return super().from_checkpoint(path, device=device, dtype=dtype, charge=charge, multiplicity=multiplicity,
                                       tblite_check=tblite_check, integrals=integrals, **kwargs)

    def _checked_item(self, atoms: Any, k: int) -> Any:
        where = f"structure {k} ({atoms.get_chemical_formula()})"
        if atoms.pbc.any():
            raise DataError(f"{where}: periodic cells are not supported by the orbnet model (molecules only)")
        electrons = int(atoms.numbers.sum()) - self.charge
        if (electrons - (self.multiplicity - 1)) % 2 or electrons < self.multiplicity - 1:
            raise DataError(f"{where}: {electrons} electrons (charge {self.charge}) cannot have multiplicity "
                            f"{self.multiplicity}")
        item = super()._checked_item(atoms, k)
        item.charge = torch.tensor([self.charge])
        item.spin = torch.tensor([self.multiplicity - 1])
        return item
