"""``sciml eval --checkpoint CKPT --data FILE_OR_H5``: energy and force errors of a trained potential.

Reports MAE/RMSE of the total energy (meV), the energy per atom (meV/atom) and force components (meV/Angstrom).
``--data`` takes extxyz (or any ASE-readable file with energies) directly, or sciml HDF5 shards/folders/globs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="energy/force errors of a trained potential on labelled data",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint from sciml train (best.pt, ...)")
    p.add_argument("--data", required=True, help="extxyz / ASE file with energies, or HDF5 shard(s)")
    p.add_argument("--out", type=Path, help="write the metrics as JSON here")
    p.add_argument("--plot", type=Path, help="write an energy/force parity plot here (PNG)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--max-atoms", type=int, default=4096, help="atoms per evaluation batch (default 4096)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sciml.calculators.mlip import MLIPCalculator
    from sciml.errors import ConfigError
    from sciml.potential.evaluate import evaluate, labelled_frames, parity_plot
    from sciml.utils.atomic import atomic_write_text
    from sciml.utils.outputs import check_outputs

    if args.max_atoms < 1:
        raise ConfigError(f"--max-atoms must be >= 1, got {args.max_atoms}")
    outputs = [p for p in (args.out, args.plot) if p is not None]
    check_outputs(outputs, [args.checkpoint, args.data], overwrite=True, ours=lambda _: True, command="sciml eval")
    calc = MLIPCalculator.from_checkpoint(args.checkpoint, device=args.device, dtype=args.dtype,
                                          use_ema=not args.no_ema)
    total, frames = labelled_frames(args.data)
    result = evaluate(calc.model, frames, calc.inputs, device=args.device, max_atoms=args.max_atoms,
                      keep_parity=args.plot is not None, total=total, progress=not args.quiet)
    n_frames = result.metrics["n_frames"]
    report = {"checkpoint": str(args.checkpoint), "data": str(args.data), "device": args.device, "dtype": args.dtype,
              "frames_per_s": round(result.frames_per_s, 1), **result.metrics}
    for key, value in result.metrics.items():
        print(f"{key:28s} {value}" if isinstance(value, int) else f"{key:28s} {value:.4g}")
    print(f"evaluated {n_frames} frames at {result.frames_per_s:.0f} frames/s ({args.device}, {args.dtype})")
    if args.out:
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
        print(f"metrics written to {args.out}")
    if args.plot:
        parity_plot(result, args.plot, title=f"{Path(args.checkpoint).name} on {Path(str(args.data)).name}")
        print(f"parity plot written to {args.plot}")
    return 0
