"""Geometry optimisation with a trained potential (ASE BFGS/FIRE), honouring fixed atoms. Backs ``sciml relax``."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

OPTIMIZERS = ("BFGS", "FIRE")


def apply_fixed_flags(atoms: Any) -> int:
    """Turn per-atom ``fixed`` (True/1 = fixed) or ``move_mask`` (False = fixed) arrays into a FixAtoms constraint
    when the atoms carry no constraint yet; returns the number of fixed atoms."""
    from ase.constraints import FixAtoms

    if not atoms.constraints:
        fixed = None
        if "fixed" in atoms.arrays:
            fixed = np.asarray(atoms.arrays["fixed"]).astype(bool).reshape(-1)
        elif "move_mask" in atoms.arrays:
            fixed = ~np.asarray(atoms.arrays["move_mask"]).astype(bool).reshape(-1)
        if fixed is not None and fixed.any():
            atoms.set_constraint(FixAtoms(mask=fixed))
    return len(fixed_indices(atoms))


def fixed_indices(atoms: Any) -> np.ndarray:
    """Indices of atoms held by FixAtoms constraints."""
    from ase.constraints import FixAtoms

    idx = [c.get_indices() for c in atoms.constraints if isinstance(c, FixAtoms)]
    return np.unique(np.concatenate(idx)) if idx else np.zeros(0, dtype=int)


def _max_free_force(atoms: Any) -> float:
    forces = atoms.get_forces()  # constrained components are zeroed by ASE
    return float(np.linalg.norm(forces, axis=1).max()) if len(forces) else 0.0


def relax(atoms: Any, calculator: Any, optimizer: str = "BFGS", fmax: float = 0.05,
          steps: int = 500) -> tuple[list[Any], dict[str, Any]]:
    """Relax ``atoms`` in place until the largest force on a free atom is below ``fmax`` (eV/Angstrom) or ``steps``
    optimiser steps; returns (trajectory frames with energies and forces, summary dict)."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.optimize import BFGS, FIRE

    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    n_fixed = apply_fixed_flags(atoms)
    fixed = fixed_indices(atoms)
    start_positions = atoms.positions.copy()
    atoms.calc = calculator
    frames: list[Any] = []

    def record() -> None:
        frame = atoms.copy()
        frame.calc = SinglePointCalculator(frame, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
        frames.append(frame)

    e0, f0 = float(atoms.get_potential_energy()), _max_free_force(atoms)
    opt = (BFGS if optimizer == "BFGS" else FIRE)(atoms, logfile=None)
    opt.attach(record, interval=1)
    t0 = time.perf_counter()
    converged = bool(opt.run(fmax=fmax, steps=steps))
    seconds = time.perf_counter() - t0
    moved = np.linalg.norm(atoms.positions - start_positions, axis=1)
    summary = {
        "optimizer": optimizer, "fmax_eV_per_A": fmax, "max_steps": steps, "steps": int(opt.get_number_of_steps()),
        "converged": converged, "n_atoms": len(atoms), "n_fixed": n_fixed,
        "energy_initial_eV": e0, "energy_final_eV": float(atoms.get_potential_energy()),
        "max_force_initial_eV_per_A": f0, "max_force_final_eV_per_A": _max_free_force(atoms),
        "max_displacement_A": float(moved.max()) if len(moved) else 0.0,
        "max_displacement_fixed_A": float(moved[fixed].max()) if len(fixed) else 0.0,
        "seconds": round(seconds, 3),
    }
    return frames, summary
