"""``sciml wrf``: WRF tools for the MSKF convection surrogate, one sub-command per module.

Each module in :data:`SUBCOMMANDS` exposes ``add_parser(subparsers)`` (the same contract as the top-level
commands) and sets ``func`` on its parser; adding a sub-command is a one-line edit here.
"""

from __future__ import annotations

import argparse
import importlib

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
