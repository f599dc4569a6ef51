"""``sciml xtb cache DATA``: GFN1-xTB feature cache of atomistic data for orbnet models (see docs/orbnet.md).

The cache (energies, gradients, orbital features and their Jacobians, beside the frames) is what ``sciml train``
with ``model.name: orbnet`` builds on first use; building it here first lets it use several processes. It is keyed
by the data, the method and the cutoff, so training finds it again; a killed build resumes. Needs the orbnet extra.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("xtb", help="GFN1-xTB feature caches for orbnet models", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    xsub = p.add_subparsers(dest="xtb_command", metavar="ACTION")
    xsub.required = True
    c = xsub.add_parser("cache", help="build (or find) the feature cache of atomistic data")
    c.add_argument("data", nargs="+", help="extxyz / ASE files (converted first, as sciml train does) or HDF5 data")
    c.add_argument("--cutoff", type=float, default=6.0, help="the orbnet model's pair cutoff, Angstrom (default 6)")
    c.add_argument("--workers", type=int, default=1, help="processes (one thread each; default 1)")
    c.add_argument("--cache-dir", type=Path, default=None, help="as data.cache_dir of the training config")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=run_cache)


def run_cache(args: argparse.Namespace) -> int:
    from sciml.errors import ConfigError
    from sciml.potential.data import as_hdf5
    from sciml.xtb.cache import cached_features

    if args.workers < 1 or not args.cutoff > 0:
        raise ConfigError(f"--workers must be >= 1 and --cutoff > 0, got {args.workers} and {args.cutoff}")
    for item in args.data:
        for h5 in as_hdf5(item, args.cache_dir):
            out = cached_features(h5, args.cutoff, args.cache_dir, progress=not args.quiet, workers=args.workers)
            print(f"{item}: feature cache {out}")
    return 0
