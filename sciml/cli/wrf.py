"""``sciml wrf``: WRF tools for the MSKF convection surrogate, one sub-command per module.

Each module in :data:`SUBCOMMANDS` exposes ``add_parser(subparsers)`` (the same contract as the top-level
commands) and sets ``func`` on its parser; adding a sub-command is a one-line edit here.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

#: ``sciml wrf <name>`` -> module that defines it
SUBCOMMANDS: dict[str, str] = {
    "extract": "sciml.cli.wrf_extract",
    "infer": "sciml.cli.wrf_infer",
    "eval": "sciml.cli.wrf_eval",
    "export": "sciml.cli.wrf_export",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("wrf", help="WRF output: column datasets and the MSKF surrogate",
                       description="WRF tools for the MSKF convection surrogate (see docs/wrf.md).")
    wrf_sub = p.add_subparsers(dest="wrf_command", metavar="WRF_COMMAND")
    wrf_sub.required = True
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).add_parser(wrf_sub)

#: ``sciml.coupling.hook.PRECISIONS``, spelled out so that building the CLI does not import torch (tested equal)
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")


def add_surrogate_options(p: argparse.ArgumentParser) -> None:
    """The options of every sub-command that runs a trained surrogate: --checkpoint, --device, --precision, -q."""
    p.add_argument("--checkpoint", type=Path, required=True, help="trained surrogate (.pt)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="network arithmetic; bfloat16 = autocast (AMX CPUs, GPUs); default float32")
    p.add_argument("--mask-nonfinite", action="store_true",
                   help="skip columns whose inputs are not all finite (NaN outputs, counted in the output) instead "
                        "of refusing them")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
