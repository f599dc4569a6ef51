"""``sciml wrf infer``: run the MSKF surrogate over wrfout files and write its fields on the WRF grid (netCDF)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="MSKF surrogate over wrfout files -> netCDF on the WRF grid",
                       description=__doc__)
    p.add_argument("wrfout", nargs="+", type=Path, help="wrfout file(s), in time order")
    p.add_argument("--checkpoint", type=Path, required=True, help="trained surrogate (.pt)")
    p.add_argument("-o", "--output", type=Path, required=True, help="netCDF file to write (atomically)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="network arithmetic; bfloat16 = autocast (AMX CPUs, GPUs); default float32")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sciml.coupling import MSKFSurrogate
    from sciml.mskf.infer import open_checked, write_predictions

    surrogate = MSKFSurrogate.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision)
    ds = open_checked(args.wrfout, surrogate)
    s = write_predictions(ds, surrogate, args.output, str(args.checkpoint), progress=not args.quiet)
    print(f"wrote {s['out']}: {s['frames']} output time(s) x {s['columns_per_frame']} columns x {s['levels']} levels")
    return 0
