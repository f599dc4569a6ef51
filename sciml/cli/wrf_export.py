"""``sciml wrf export``: the MSKF surrogate as a TorchScript file for FTorch / libtorch (see docs/wrf_coupling.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the MSKF surrogate to TorchScript (for FTorch)", description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True, help="trained surrogate (.pt)")
    p.add_argument("-o", "--output", type=Path, required=True, help="TorchScript file to write (atomically)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sciml.coupling.export import export_torchscript, interface
    from sciml.mskf.checkpoint import load_mskf_model

    model = load_mskf_model(args.checkpoint)
    export_torchscript(model, args.output)
    spec = interface(model)
    print(f"wrote {args.output}: forward{spec['forward'][spec['forward'].index('('):]}")
    for kind in ("inputs", "outputs"):
        for name, s in spec[kind].items():
            print(f"  {kind[:-1]:6s} {name:10s} {tuple(s['shape'])} {', '.join(s.get('channels', []))}")
    print("  float32, WRF memory order (i, k, j); see docs/wrf_coupling.md for the FTorch calls")
    return 0
