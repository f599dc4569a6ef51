"""``sciml relax --checkpoint CKPT INPUT -o OUTPUT``: relax a structure with a trained potential.

Fixed atoms are kept fixed: FixAtoms constraints from the input, or per-atom ``fixed`` / ``move_mask`` arrays (OC20
extxyz). Writes the relaxed structure to OUTPUT, the trajectory (every optimiser step, with energies and forces) and
a JSON summary (energies, max force before/after, steps, convergence) beside it.

Exit status: 0 converged (largest force on a free atom below --fmax), 3 not converged within --steps (the outputs are
still written), 2 refused input or arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("relax", help="relax a structure with a trained potential", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="structure file (extxyz, json, traj, POSCAR, ...)")
    p.add_argument("-o", "--output", required=True, type=Path, help="relaxed structure (format from the suffix)")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint from sciml train")
    p.add_argument("--optimizer", default="BFGS", choices=["BFGS", "FIRE"])
    p.add_argument("--fmax", type=float, default=0.05, help="force threshold, eV/Angstrom (default 0.05)")
    p.add_argument("--steps", type=int, default=500, help="maximum optimiser steps (default 500)")
    p.add_argument("--index", default="0", help="frame of INPUT to relax (default 0, the first)")
    p.add_argument("--trajectory", type=Path, help="trajectory file (default OUTPUT_STEM_traj.extxyz)")
    p.add_argument("--summary", type=Path, help="summary JSON (default OUTPUT_STEM_summary.json)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"],
                   help="model precision (default float64: smooth forces for the optimiser)")
    p.set_defaults(func=run)


def write_structures(path: Path, frames: list) -> None:
    """Write ASE frames to ``path`` atomically (format from the suffix)."""
    import ase.io
    from ase.io.formats import filetype

    from sciml.utils.atomic import atomic_path

    fmt = filetype(str(path), read=False)
    with atomic_path(path, suffix=path.suffix) as tmp:
        ase.io.write(str(tmp), frames if len(frames) > 1 else frames[0], format=fmt)


#: exit status when the optimiser stopped at --steps without reaching --fmax
NOT_CONVERGED = 3


def run(args: argparse.Namespace) -> int:
    import ase.io

    from sciml.calculators.mlip import MLIPCalculator
    from sciml.errors import ConfigError, DataError
    from sciml.potential.relax import relax
    from sciml.utils.atomic import atomic_write_text
    from sciml.utils.outputs import check_outputs

    if not args.fmax > 0:
        raise ConfigError(f"--fmax must be > 0 eV/Angstrom, got {args.fmax}")
    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    if not args.input.is_file():
        raise DataError(f"{args.input}: no such structure file")
    stem = args.output.with_suffix("")
    traj = args.trajectory or Path(f"{stem}_traj.extxyz")
    summary_path = args.summary or Path(f"{stem}_summary.json")
    check_outputs([args.output, traj, summary_path], [args.input, args.checkpoint], overwrite=True,
                  ours=lambda _: True, command="sciml relax")
    try:
        atoms = ase.io.read(str(args.input), index=int(args.index))
    except (ValueError, IndexError) as exc:
        raise DataError(f"{args.input}: cannot read frame {args.index}: {exc}") from None
    calc = MLIPCalculator.from_checkpoint(args.checkpoint, device=args.device, dtype=args.dtype)
    frames, summary = relax(atoms, calc, args.optimizer, args.fmax, args.steps)
    write_structures(args.output, [atoms])
    write_structures(traj, frames)
    summary.update(input=str(args.input), output=str(args.output), trajectory=str(traj), checkpoint=str(args.checkpoint))
    atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")
    print(f"{summary['optimizer']}: {summary['steps']} steps, converged={summary['converged']}, "
          f"energy {summary['energy_initial_eV']:.4f} -> {summary['energy_final_eV']:.4f} eV, max force "
          f"{summary['max_force_initial_eV_per_A']:.3f} -> {summary['max_force_final_eV_per_A']:.3f} eV/A "
          f"({summary['n_fixed']} fixed atoms)")
    print(f"wrote {args.output}, {traj}, {summary_path}")
    if not summary["converged"]:
        print(f"sciml relax: not converged: the largest force is {summary['max_force_final_eV_per_A']:.3g} eV/A "
              f"after {summary['steps']} steps (--fmax {args.fmax}); exit status {NOT_CONVERGED}", file=sys.stderr)
        return NOT_CONVERGED
    return 0
