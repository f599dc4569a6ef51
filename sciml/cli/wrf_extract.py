"""``sciml wrf extract``: wrfout files -> HDF5 column dataset (one row per column per output time).

The format (``sciml-wrf-columns``, version 1) is documented in docs/wrf.md and data_tools/wrf/column_file.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: copies of data_tools.wrf.features.DEFAULT_INPUTS / DEFAULT_TARGETS, so that building the parser does not import
#: xarray; tests/test_cli_startup.py checks that they stay equal
DEFAULT_INPUTS: tuple[str, ...] = ("u", "v", "w", "t", "qv", "p", "th", "dz8w", "rho", "pi", "qvs", "rh", "W0AVG",
                                   "HFX", "UST", "PBLH")
DEFAULT_TARGETS: tuple[str, ...] = ("RTHCUTEN", "RQVCUTEN", "RQCCUTEN", "RQRCUTEN", "RQICUTEN", "RQSCUTEN",
                                    "PRATEC", "NCA", "RAINCV")


def _names(text: str) -> list[str]:
    return [n for n in (s.strip() for s in text.replace(",", " ").split()) if n]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="write the columns of wrfout files to an HDF5 column dataset",
                       description="Write every column of every output time of wrfout files to an HDF5 column "
                                   "dataset (format sciml-wrf-columns v1, see docs/wrf.md), with per-level "
                                   "normalisation statistics. Feature names: derived fields in lower case "
                                   "(p th pi t qv z dz8w u v w rho qvs rh p_hyd dp_dry) or WRF variables in upper "
                                   "case on mass levels or single-level.")
    p.add_argument("wrfout", nargs="+", type=Path, help="wrfout netCDF file(s), concatenated in the order given")
    p.add_argument("-o", "--output", type=Path, required=True, help="HDF5 file to write (atomically)")
    p.add_argument("--inputs", type=_names, default=list(DEFAULT_INPUTS),
                   help=f"comma-separated input features (default: {','.join(DEFAULT_INPUTS)})")
    p.add_argument("--targets", type=_names, default=list(DEFAULT_TARGETS),
                   help=f"comma-separated target features, '' for none (default: {','.join(DEFAULT_TARGETS)})")
    p.add_argument("--time-chunk", type=int, default=1, help="output times read per step (default: 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output that is not a column file (an input is never replaced)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from data_tools.wrf.extract import extract_columns

    s = extract_columns(args.wrfout, args.output, inputs=args.inputs, targets=args.targets,
                        time_chunk=args.time_chunk, progress=not args.quiet, overwrite=args.overwrite)
    levels, single = s["inputs"]
    t_levels, t_single = s["targets"]
    print(f"wrote {s['out']}: {s['rows']} columns ({s['frames']} output times x {s['columns_per_frame']} columns, "
          f"{s['levels']} levels) in {s['seconds']:.1f} s; inputs {len(levels)} per-level + {len(single)} "
          f"single-level, targets {len(t_levels)} + {len(t_single)}")
    return 0


def quickstart_step(workdir: Path) -> None:
    """Extract the columns of the bundled WRF crop (examples/data/wrf_mskf_crop.nc)."""
    from data_tools.wrf.extract import extract_columns

    crop = Path(__file__).resolve().parents[2] / "examples" / "data" / "wrf_mskf_crop.nc"
    out = workdir / "wrf_columns.h5"
    s = extract_columns([crop], out, progress=False)
    print(f"extracted {s['rows']} WRF columns x {s['levels']} levels from {crop.name} into {out}")
