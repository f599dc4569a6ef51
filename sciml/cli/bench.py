"""``sciml bench``: performance benchmarks, one sub-command per module in BENCHMARKS.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``; register a new one with a one-line edit.
"""

from __future__ import annotations

import argparse
import importlib

#: bench sub-command -> module (with add_arguments(parser), run(args), and a one-line module docstring)
BENCHMARKS: dict[str, str] = {
    "tp": "sciml.bench.tp",
    "data": "sciml.bench.data",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="performance benchmarks", description=__doc__.splitlines()[0])
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    bsub.required = True
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        summary = (module.__doc__ or name).strip().splitlines()[0]
        q = bsub.add_parser(name, help=summary, description=module.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(q)
        q.set_defaults(func=module.run)
