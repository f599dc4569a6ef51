"""``sciml quickstart``: a short tour on data shipped in the repository (a few minutes on 2 CPU cores).

It is a thin orchestration: each step lives beside the feature it shows and calls the same code as the
corresponding ``sciml`` sub-command.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

#: ordered steps, "module:function"; each function takes (workdir: Path) and prints what it did and wrote
STEPS: list[str] = [
    "sciml.cli.data:quickstart_step",
    "sciml.cli.tdn:quickstart_step",
    "sciml.potential.quickstart:quickstart_step",
    "sciml.xtb.quickstart:quickstart_step",
    "sciml.cli.wrf_extract:quickstart_step",
    "sciml.mskf.quickstart:quickstart_step",
]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="run the end-to-end tour on the bundled sample data",
                       description=__doc__)
    p.add_argument("-o", "--workdir", type=Path, default=Path("sciml-quickstart"),
                   help="folder for everything the tour writes (default: ./sciml-quickstart)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    for i, step in enumerate(STEPS, 1):
        module, func = step.split(":")
        print(f"\n=== step {i}/{len(STEPS)}: {step} ===", flush=True)
        t0 = time.perf_counter()
        getattr(importlib.import_module(module), func)(workdir)
        print(f"--- step {i} done in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"\nquickstart finished in {time.perf_counter() - t_start:.1f} s; all outputs are in {workdir}")
    return 0
