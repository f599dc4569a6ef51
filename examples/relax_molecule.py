"""Relax a distorted acetylacetone molecule with the shipped TDN potential through ASE.

    python examples/relax_molecule.py

Energies in eV, forces in eV/Angstrom. Uses only files shipped in the repository.
"""

from pathlib import Path

import numpy as np
from ase.io import read
from ase.optimize import BFGS

from sciml.calculators import MLIPCalculator

HERE = Path(__file__).resolve().parent

atoms = read(HERE / "data" / "acac" / "train_300K.xyz", index=0)
atoms.rattle(stdev=0.05, seed=1)  # push it off the MD snapshot
atoms.calc = MLIPCalculator.from_checkpoint(HERE / "pretrained" / "acac-tdn.pt", device="cpu", dtype="float64")

e0, f0 = atoms.get_potential_energy(), np.abs(atoms.get_forces()).max()
BFGS(atoms, logfile=None).run(fmax=0.05, steps=300)
e1, f1 = atoms.get_potential_energy(), np.abs(atoms.get_forces()).max()
print(f"before: E = {e0:.4f} eV, max |F| = {f0:.3f} eV/A")
print(f"after:  E = {e1:.4f} eV, max |F| = {f1:.3f} eV/A  (relaxation lowered E by {e0 - e1:.3f} eV)")
