"""Time per energy + force call of an orbnet model on molecules of 15, 27 and 50 atoms, split into the xTB part and
the network, beside tblite's own GFN1-xTB energy + gradient. One CPU thread. Usage::

    OMP_NUM_THREADS=1 python benchmarks/orbnet_timing.py [--checkpoint CKPT] [--repeats 5] [--out J]

Molecules: acetylacetone (15 atoms) and 3BPA (27) from examples/data, n-hexadecane (50, relaxed with tblite).
Times: median of the repeats after one warm-up call. ``dxtb`` = dxtb single point with the orbital matrices and the
backward pass of its energy (with the calculator's integral driver: libcint where installed); ``tblite_check`` = the
tblite single point that cross-checks it (paid on every call with ``tblite_check="every"``, once per composition
with the calculator's default ``"first"``); ``network`` = the rest of a calculator call (features, network forward
and backward through the features); ``total`` = a whole ``OrbNetCalculator`` call with the default policy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import ase.io  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def hexadecane() -> object:
    """n-C16H34 in a zig-zag conformation, relaxed with tblite GFN1-xTB."""
    from ase import Atoms
    from ase.optimize import BFGS
    from tblite.ase import TBLite

    carbons = [[1.27 * i, 0.42 * (-1) ** i, 0.0] for i in range(16)]
    hydrogens = []
    for i, (x, y, _) in enumerate(carbons):
        out = 1.0 if y > 0 else -1.0
        hydrogens += [[x, y + 0.52 * out, 0.89], [x, y + 0.52 * out, -0.89]]
        if i in (0, 15):
            hydrogens.append([x + (-1.0 if i == 0 else 1.0), y - 0.3 * out, 0.0])
    atoms = Atoms("C16H34", positions=carbons + hydrogens)
    atoms.calc = TBLite(method="GFN1-xTB", verbosity=0)
    BFGS(atoms, logfile=None).run(fmax=0.05, steps=300)
    return atoms


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=REPO / "examples" / "pretrained" / "acac-orbnet.pt")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    from tblite.interface import Calculator

    from sciml.calculators import OrbNetCalculator
    from sciml.xtb.backend import DxtbGFN1, fastest_integrals, tblite_gfn1

    calc = OrbNetCalculator.from_checkpoint(args.checkpoint)  # tblite_check="first"
    # 3BPA has nitrogen, which the acetylacetone model never saw: for timing only, the trained weights are used
    # with N admitted (E0(N) = 0); the cost of a call does not depend on the element's values
    calc.model.model.known[7] = True
    xtb = DxtbGFN1(integrals=fastest_integrals())  # the driver the calculator uses
    molecules = {"acetylacetone": ase.io.read(str(REPO / "examples/data/acac/train_300K.xyz"), 0),
                 "3BPA": ase.io.read(str(REPO / "examples/data/3bpa/train_300K_first40.xyz"), 0),
                 "n-hexadecane": hexadecane()}
    rows = []
    for name, atoms in molecules.items():
        def tblite_call() -> None:
            c = Calculator("GFN1-xTB", atoms.numbers, atoms.positions / 0.52917721, 0, 0)
            c.set("verbosity", 0)
            c.singlepoint()

        def dxtb_call() -> None:
            pos = torch.tensor(atoms.positions, requires_grad=True)
            res = xtb.singlepoint(torch.as_tensor(atoms.numbers), pos)
            _ = (res.overlap, res.hcore, res.density, res.fock)
            torch.autograd.grad(res.energy, pos)

        def check_call() -> None:
            tblite_gfn1(atoms.numbers, atoms.positions)

        def full_call() -> None:
            calc.predict([atoms])

        t_tblite, t_dxtb, t_check, t_full = (median_time(f, args.repeats)
                                             for f in (tblite_call, dxtb_call, check_call, full_call))
        rows.append({"molecule": name, "atoms": len(atoms), "tblite_ms": 1e3 * t_tblite, "dxtb_ms": 1e3 * t_dxtb,
                     "tblite_check_ms": 1e3 * t_check, "network_ms": 1e3 * (t_full - t_dxtb),
                     "total_ms": 1e3 * t_full, "total_over_tblite": t_full / t_tblite,
                     "total_every_check_over_tblite": (t_full + t_check) / t_tblite})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"threads": 1, "integrals": xtb.integrals, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
