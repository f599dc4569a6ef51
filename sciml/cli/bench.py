"""``sciml bench``: performance benchmarks, one sub-command per module in BENCHMARKS.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``; register a new one with a one-line edit.
A module is imported only when its benchmark is parsed or its help printed (``sciml --help`` imports no torch).
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

#: bench sub-command -> module (with add_arguments(parser), run(args), and a one-line module docstring)
BENCHMARKS: dict[str, str] = {
    "tp": "sciml.bench.tp",
    "data": "sciml.bench.data",
    "mskf": "sciml.bench.mskf",
}


class _LazyParser(argparse.ArgumentParser):
    """A benchmark's parser whose arguments are added on first use (parsing its arguments or printing its help), so
    that building the ``sciml`` parser does not import the benchmark module (and torch with it)."""

    _loader: Callable[[argparse.ArgumentParser], None] | None = None

    def _load(self) -> None:
        loader, self._loader = self._loader, None
        if loader is not None:
            loader(self)

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's signature
        self._load()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._load()
        return super().format_usage()

    def format_help(self) -> str:
        self._load()
        return super().format_help()


def module_doc(module_name: str) -> str:
    """The docstring of ``module_name``, read from its source without importing it."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise ImportError(f"no module named {module_name!r}")
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))) or ""


def _load_arguments(module_name: str, parser: argparse.ArgumentParser) -> None:
    module = importlib.import_module(module_name)
    module.add_arguments(parser)
    parser.set_defaults(func=module.run)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="performance benchmarks", description=__doc__.splitlines()[0])
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCHMARK", parser_class=_LazyParser)
    bsub.required = True
    for name, module_name in BENCHMARKS.items():
        doc = module_doc(module_name)
        summary = (doc or name).strip().splitlines()[0]
        q = bsub.add_parser(name, help=summary, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        q._loader = functools.partial(_load_arguments, module_name)
