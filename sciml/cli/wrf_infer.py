"""``sciml wrf infer``: run the MSKF surrogate over wrfout files and write its fields on the WRF grid (netCDF)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sciml.cli.wrf import add_surrogate_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="MSKF surrogate over wrfout files -> netCDF on the WRF grid",
                       description=__doc__)
    p.add_argument("wrfout", nargs="+", type=Path, help="wrfout file(s), in time order")
    p.add_argument("-o", "--output", type=Path, required=True, help="netCDF file to write (atomically)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output that sciml wrf infer did not write (an input is never replaced)")
    add_surrogate_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sciml.coupling import MSKFSurrogate
    from sciml.mskf.infer import open_checked, write_predictions

    surrogate = MSKFSurrogate.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision)
    ds = open_checked(args.wrfout, surrogate)
    s = write_predictions(ds, surrogate, args.output, str(args.checkpoint), progress=not args.quiet,
                          overwrite=args.overwrite, mask_nonfinite=args.mask_nonfinite)
    print(f"wrote {s['out']}: {s['frames']} output time(s) x {s['columns_per_frame']} columns x {s['levels']} levels"
          + (f"; {s['masked']} column(s) with non-finite inputs masked" if args.mask_nonfinite else ""))
    return 0
