"""``sciml tdn``: CP factors of the CG tensor: ``check`` (errors of a rank) and ``fit`` (fit and store factors)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sciml.errors import ConfigError


def _rank(text: str) -> int | str:
    if text in ("exact", "default"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rank must be 'exact', 'default' or an int, got {text!r}") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tdn", help="CP tensor product: check or fit CP factors of the CG tensor", description=__doc__)
    tsub = p.add_subparsers(dest="tdn_command", metavar="ACTION")
    tsub.required = True
    for name, helptext in (("check", "report factor error and measured equivariance error (float64)"),
                           ("fit", "fit the factors (or load them) and write them to the cache or --out")):
        q = tsub.add_parser(name, help=helptext)
        q.add_argument("--lmax", type=int, required=True, help="maximum degree L")
        q.add_argument("--rank", type=_rank, default="exact", help="'exact' (default), 'default' (7L^2) or an int")
        q.add_argument("--parity", choices=("so3", "o3"), default="so3")
        q.add_argument("--json", action="store_true", help="print one JSON object")
        if name == "check":
            q.add_argument("--channels", type=int, default=4, help="channels of the random test inputs")
            q.add_argument("--edges", type=int, default=32, help="edges of the random test inputs")
            q.set_defaults(func=run_check)
        else:
            q.add_argument("--out", type=Path, default=None, help="folder to write the .npz into (default: the cache)")
            q.set_defaults(func=run_fit)


def _factors(args: argparse.Namespace):
    from sciml.tdn.cache import load_or_fit

    try:
        return load_or_fit(args.lmax, args.parity, args.rank)
    except ValueError as exc:  # unknown exact rank, bad rank, degenerate CP
        raise ConfigError(str(exc)) from None


def _check_result(args: argparse.Namespace) -> dict:
    """Factor summary plus measured equivariance error and difference to the exact CG product (float64)."""
    from sciml.tdn.check import equivariance_error, relative_difference
    from sciml.tdn.cp_tp import CPTensorProduct
    from sciml.tdn.reference import ExactTensorProduct

    factors = _factors(args)
    tp = CPTensorProduct(args.lmax, args.channels, rank=factors.rank, parity=args.parity).double()
    exact = ExactTensorProduct(args.lmax, args.channels, parity=args.parity).double()
    result = factors.summary()
    result["equivariance_error"] = equivariance_error(tp, args.lmax, args.channels, args.parity, edges=args.edges)
    result["exact_rel_difference"] = relative_difference(tp, exact, args.lmax, args.channels, edges=args.edges)
    result["degenerate"] = factors.degenerate
    return result


def run_check(args: argparse.Namespace) -> int:
    result = _check_result(args)
    if args.json:
        print(json.dumps(result))
    else:
        _print_check(args, result)
    return 0


def _print_check(args: argparse.Namespace, result: dict) -> None:
    print(f"lmax {args.lmax}, parity {args.parity}, rank {result['rank']} (requested {args.rank})")
    print(f"  factor relative Frobenius error  {result['factor_rel_error']:.3e}")
    print(f"  max / sum term norm over ||M||   {result['max_term_ratio']:.3f} / {result['sum_term_ratio']:.3f}")
    print(f"  equivariance error (float64)     {result['equivariance_error']:.3e}"
          f"{' (rotations and reflections)' if args.parity == 'o3' else ' (rotations)'}")
    print(f"  relative difference to exact CG  {result['exact_rel_difference']:.3e}")


def run_fit(args: argparse.Namespace) -> int:
    from sciml.tdn.cache import file_name
    from sciml.utils.atomic import atomic_write_bytes

    factors = _factors(args)
    summary = factors.summary()
    if args.out is not None:
        path = args.out / file_name(args.lmax, args.parity, factors.rank)
        atomic_write_bytes(path, factors.to_bytes())
        summary["path"] = str(path)
    print(json.dumps(summary) if args.json else
          f"rank {factors.rank}: relative error {factors.rel_error:.3e}, max term ratio {factors.max_term_ratio:.3f}"
          + (f", written to {summary['path']}" if "path" in summary else ""))
    return 0


def quickstart_step(workdir: Path) -> None:
    """Quickstart: exact vs default CP rank at L = 2 (float64 errors), written to ``workdir/tdn_check.json``."""
    from sciml.utils.atomic import atomic_write_text

    results = []
    for rank in ("exact", "default"):
        args = argparse.Namespace(lmax=2, rank=rank, parity="so3", channels=4, edges=32, json=False)
        print(f"sciml tdn check --lmax 2 --rank {rank}")
        result = _check_result(args)
        _print_check(args, result)
        results.append(result)
    path = workdir / "tdn_check.json"
    atomic_write_text(path, json.dumps(results, indent=1))
    print(f"wrote {path}")
