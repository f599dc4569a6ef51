"""Accuracy of GFN1-xTB alone, an orbnet checkpoint and a TDN checkpoint against DFT labels, on the same frames.

GFN1 alone: tblite energies after the best per-element offsets (least squares over the frames; for one molecule a
single constant) and its forces as they are. Checkpoints: ``sciml eval``'s metrics (float64). Usage::

    OMP_NUM_THREADS=1 python benchmarks/orbnet_accuracy.py --data NAME=FILE ... --checkpoint NAME=CKPT ... [--out J]

``--data`` files are extxyz with DFT ``energy`` (eV) and ``forces`` (eV/Angstrom); RMSEs in meV and meV/Angstrom.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ase.io  # noqa: E402
import numpy as np  # noqa: E402


def gfn1_alone(path: str) -> dict[str, float]:
    """GFN1-xTB (tblite) errors against the labels of ``path``: energy RMSE after per-element offsets, force RMSE."""
    from sciml.potential.statistics import reference_energies
    from sciml.xtb.backend import tblite_gfn1

    frames = ase.io.read(path, ":")
    e_ref = np.array([a.get_potential_energy() for a in frames])
    e_xtb, df = [], []
    for a in frames:
        e, grad = tblite_gfn1(a.numbers, a.positions)
        e_xtb.append(e)
        df.append(-grad - a.get_forces())
    delta = e_ref - np.array(e_xtb)
    offsets = reference_energies([a.numbers for a in frames], delta)
    residual = delta - np.array([sum(offsets[int(z)] for z in a.numbers) for a in frames])
    df = np.concatenate(df)
    return {"n_frames": len(frames), "energy_rmse_meV": 1e3 * float(np.sqrt(np.mean(residual**2))),
            "forces_rmse_meV_per_A": 1e3 * float(np.sqrt(np.mean(df**2))),
            "dft_force_rms_meV_per_A": 1e3 * float(np.sqrt(np.mean(np.concatenate([a.get_forces() for a in frames])
                                                                      ** 2)))}


def checkpoint_metrics(ckpt: str, path: str) -> dict[str, float]:
    from sciml.calculators import MLIPCalculator
    from sciml.potential.evaluate import evaluate, labelled_frames

    calc = MLIPCalculator.from_checkpoint(ckpt, dtype="float64")
    total, frames = labelled_frames(path)
    return evaluate(calc.model, frames, calc.inputs, max_atoms=256, total=total).metrics


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True, metavar="NAME=FILE")
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=CKPT")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    rows = {}
    for spec in args.data:
        name, path = spec.split("=", 1)
        rows[name] = {"GFN1-xTB alone": gfn1_alone(path)}
        for cspec in args.checkpoint:
            cname, ckpt = cspec.split("=", 1)
            rows[name][cname] = checkpoint_metrics(ckpt, path)
        for method, m in rows[name].items():
            print(f"{name:12s} {method:16s} energy RMSE {m['energy_rmse_meV']:8.2f} meV  forces RMSE "
                  f"{m['forces_rmse_meV_per_A']:8.2f} meV/A", flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
