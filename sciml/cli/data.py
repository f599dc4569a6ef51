"""``sciml data``: convert atomistic data to the sciml HDF5 format, inspect it, and split it by group.

See docs/data_format.md for the on-disk layout. Implementations live in ``data_tools``; this module only parses
arguments (imports are lazy so ``sciml --help`` stays fast).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

FORMATS = ["auto", "ase", "oc20-extxyz", "oc20-lmdb", "pubchemqcr"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="convert, inspect and split atomistic data sets (HDF5)", description=__doc__)
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    dsub.required = True

    c = dsub.add_parser("convert", help="convert extxyz / ASE / OC20 / PubChemQCR data to sciml HDF5 shards",
                        description="Stream INPUT files into sciml HDF5 (docs/data_format.md). Without --shard-size "
                                    "one file OUT.h5 is written; with it shards OUT_0000.h5, OUT_0001.h5, ... of "
                                    "that many frames, in input order (independent of --workers). Rerunning a "
                                    "killed multi-input conversion with the same inputs and options reuses the "
                                    "inputs it had finished.")
    c.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    c.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.h5")
    c.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: detect and report)")
    c.add_argument("--shard-size", type=int, default=None, metavar="N", help="frames per output shard")
    c.add_argument("--workers", type=int, default=1, metavar="N", help="parallel processes, one input file each")
    c.add_argument("--max-record-mb", type=float, default=64.0, metavar="MB",
                   help="PubChemQCR: refuse a record that decompresses to more than this (default 64 MiB)")
    c.add_argument("--overwrite", action="store_true",
                   help="replace an existing output that is not a sciml atoms file (an input is never replaced)")
    c.add_argument("--skip-invalid", action="store_true",
                   help="skip invalid frames (NaN/inf, unknown element, bad shapes, missing energy) and report "
                        "how many; default: stop with an error naming file and frame")
    c.add_argument("--group-by", choices=["frame", "file"], default="frame",
                   help="ase format: group id per frame (independent samples) or per input file (one trajectory)")
    c.add_argument("--adsorption-energy", action="store_true",
                   help="oc20-extxyz: store energy minus the txt reference energy (as OC20 baselines train on)")
    c.add_argument("--energy-convention", choices=["total", "referenced"], default="referenced",
                   help="oc20-lmdb: what the stored y means (published S2EF/IS2RE LMDBs: referenced; OC22: total)")
    c.add_argument("--stage", default="DFT_1st",
                   help="pubchemqcr: stage(s), comma separated, from pm3,hf,DFT_1st,DFT_2nd (default DFT_1st)")
    c.add_argument("--ref-energies", type=Path, default=None, metavar="FILE",
                   help="element reference energies stored as metadata: JSON {symbol: eV} or an ASE-readable "
                        "file of isolated atoms with energies")
    c.set_defaults(func=_convert)

    i = dsub.add_parser("info", help="counts, elements, energy/force statistics; verifies checksums",
                        description="Summarise sciml HDF5 files (one data set) and verify per-array checksums.")
    i.add_argument("paths", nargs="+", type=Path, metavar="FILE.h5")
    i.add_argument("--json", action="store_true", help="print machine-readable JSON")
    i.add_argument("--no-verify", action="store_true", help="skip checksum verification")
    i.set_defaults(func=_info)

    s = dsub.add_parser(
        "split", help="seeded train/val/test split by frame or by group (no group in two splits)",
        description="Write one index file per split (OUT/<name>.idx.npz) that AtomsDataset and `sciml train` "
        "(data.train / data.val) accept. The units (frames or groups) are permuted with the seed; the held-out splits "
        "(all names but the first) are taken from the front of that order, the first split gets the rest. With "
        "--by frame --counts N_TRAIN,N_VAL this is the split `sciml train` makes from data.n_train / data.n_val with "
        "the same data.split_seed.")
    s.add_argument("paths", nargs="+", type=Path, metavar="IN.h5")
    s.add_argument("--by", choices=["frame", "group"], default="group", help="split unit (default group)")
    sizes = s.add_mutually_exclusive_group()
    sizes.add_argument("--fractions", help="comma-separated fractions of the units (default 0.8,0.1,0.1)")
    sizes.add_argument("--counts", help="comma-separated numbers of units (the first 0 = all the rest)")
    s.add_argument("--names", default="train,val,test", help="comma-separated split names, training first")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR")
    s.set_defaults(func=_split)


def _convert(args: argparse.Namespace) -> int:
    from data_tools.convert import ConvertOptions, convert

    opts = ConvertOptions(fmt=args.format, shard_size=args.shard_size, workers=args.workers,
                          skip_invalid=args.skip_invalid, group_by=args.group_by,
                          adsorption_energy=args.adsorption_energy, energy_convention=args.energy_convention,
                          stages=tuple(x.strip() for x in args.stage.split(",") if x.strip()),
                          ref_energies=args.ref_energies, overwrite=args.overwrite,
                          max_record_mb=args.max_record_mb)
    result = convert(args.inputs, args.output, opts)
    print(result.summary())
    return 0


def _info(args: argparse.Namespace) -> int:
    from data_tools.info import dataset_info, format_info

    info = dataset_info(args.paths, verify=not args.no_verify)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _split(args: argparse.Namespace) -> int:
    from data_tools.splits import write_splits
    from sciml.errors import ConfigError

    names = [x.strip() for x in args.names.split(",")]
    try:
        counts = [int(x) for x in args.counts.split(",")] if args.counts else None
        fractions = None if counts else [float(x) for x in (args.fractions or "0.8,0.1,0.1").split(",")]
    except ValueError as exc:
        raise ConfigError(f"--fractions / --counts must be comma-separated numbers: {exc}") from None
    written = write_splits(args.paths, args.output, names, args.seed, by=args.by, fractions=fractions, counts=counts)
    for name, (path, n_frames, n_groups) in written.items():
        print(f"{name}: {n_frames} frames, {n_groups} groups -> {path}")
    return 0


def quickstart_step(workdir: Path) -> None:
    """Convert the bundled sample data to HDF5, print a summary and a DataLoader throughput line."""
    from data_tools.quickstart import run_quickstart

    t0 = time.perf_counter()
    run_quickstart(workdir)
    print(f"data step finished in {time.perf_counter() - t0:.1f} s")
