"""The ``sciml`` command line: one sub-command per module, each exposing ``add_parser(subparsers)``.

Each module registers its parser and sets ``func`` (called with the parsed namespace, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sciml.errors import SciMLError

#: sub-command name -> module that defines it
COMMANDS: dict[str, str] = {
    "bench": "sciml.cli.bench",
    "data": "sciml.cli.data",
    "eval": "sciml.cli.evaluate",
    "quickstart": "sciml.cli.quickstart",
    "relax": "sciml.cli.relax",
    "tdn": "sciml.cli.tdn",
    "train": "sciml.cli.train",
    "wrf": "sciml.cli.wrf",
    "xtb": "sciml.cli.xtb",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sciml",
        description="sciml: tensor-decomposition interatomic potentials, streaming atomistic data and a WRF "
        "convection surrogate. Run `sciml COMMAND --help` for each command.",
    )
    from sciml import __version__

    parser.add_argument("--version", action="version", version=f"sciml {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SciMLError as exc:
        print(f"sciml {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
