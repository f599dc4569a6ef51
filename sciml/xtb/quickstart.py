"""Quickstart step for the OrbNet-style potential: the shipped ``examples/pretrained/acac-orbnet.pt`` on a few
held-out acetylacetone frames against GFN1-xTB alone, then a relaxation. Skipped without the orbnet extra."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
PRETRAINED = REPO / "examples" / "pretrained" / "acac-orbnet.pt"


def quickstart_step(workdir: Path) -> None:
    if not all(importlib.util.find_spec(m) for m in ("dxtb", "tblite")):
        print('orbnet step skipped: it needs the orbnet extra (pip install -e ".[orbnet]")')
        return
    import ase.io
    from ase.optimize import BFGS

    from sciml.calculators import OrbNetCalculator
    from sciml.potential.quickstart import ACAC, held_out_frames
    from sciml.xtb.backend import tblite_gfn1

    out = workdir / "orbnet"
    out.mkdir(parents=True, exist_ok=True)
    frames = held_out_frames(ACAC)[:5]
    calc = OrbNetCalculator.from_checkpoint(PRETRAINED)
    rows = []
    for atoms in frames:
        e_dft, f_dft = atoms.get_potential_energy(), atoms.get_forces()
        e_xtb, g_xtb = tblite_gfn1(atoms.numbers, atoms.positions)
        pred = calc.predict([atoms])[0]
        rows.append((e_dft, e_xtb, pred["energy"], f_dft, -g_xtb, pred["forces"]))
    e_dft, e_xtb, e_ml = (np.array([r[i] for r in rows]) for i in range(3))
    f_dft, f_xtb, f_ml = (np.concatenate([r[i] for r in rows]) for i in range(3, 6))
    rel = lambda e: 1e3 * (e - e[0] - (e_dft - e_dft[0]))  # noqa: E731 - energies relative to the first frame
    print(f"{PRETRAINED.name} on 5 held-out 300 K frames of acetylacetone (DFT labels):")
    print(f"  GFN1-xTB alone: relative-energy RMSE {np.sqrt(np.mean(rel(e_xtb)[1:] ** 2)):6.1f} meV, "
          f"force RMSE {1e3 * np.sqrt(np.mean((f_xtb - f_dft) ** 2)):6.1f} meV/A")
    print(f"  orbnet model:   relative-energy RMSE {np.sqrt(np.mean(rel(e_ml)[1:] ** 2)):6.1f} meV, "
          f"force RMSE {1e3 * np.sqrt(np.mean((f_ml - f_dft) ** 2)):6.1f} meV/A, absolute energy error "
          f"{1e3 * np.abs(e_ml - e_dft).mean():.1f} meV")
    atoms = frames[0].copy()
    atoms.calc = calc
    opt = BFGS(atoms, logfile=None)
    converged = opt.run(fmax=0.05, steps=200)
    ase.io.write(str(out / "acac_relaxed_orbnet.xyz"), atoms)
    print(f"  BFGS relaxation: {opt.get_number_of_steps()} steps, converged={bool(converged)}, max force "
          f"{np.linalg.norm(atoms.get_forces(), axis=1).max():.3f} eV/A -> {out / 'acac_relaxed_orbnet.xyz'}")
