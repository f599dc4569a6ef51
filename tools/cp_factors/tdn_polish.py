"""Polish a CP factor file further: Levenberg-Marquardt steps (``cp_lm``) from its factors until the relative error
reaches POLISH_TOL (1e-14) or --max-steps steps; the file is rewritten only if the result is better and not degenerate.
Every run is appended to the rank-search log with ``"polished_from"`` (the error it started from).

    OMP_NUM_THREADS=1 python tools/cp_factors/tdn_polish.py DIR/cp_so3_L6_R816.npz --max-steps 2000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sciml.tdn.cg import cg_tensor
from sciml.tdn.cp_lm import cp_lm
from sciml.tdn.factors import DEGENERACY_LIMIT, CPFactors
from sciml.tdn.fit import POLISH_TOL
from sciml.utils.atomic import atomic_write_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--max-steps", type=int, default=2000)
    ap.add_argument("--cg-iter", type=int, default=50,
                    help="conjugate-gradient iterations per LM step (tools/cp_factors/README.md: 300 vs 50)")
    ap.add_argument("--log", type=Path, default=Path(__file__).with_name("tdn_rank_search.jsonl"))
    args = ap.parse_args()
    old = CPFactors.from_bytes(args.file.read_bytes(), source=str(args.file))
    m = cg_tensor(old.lmax, old.parity).numpy()
    t0 = time.perf_counter()
    fit = cp_lm(m, (old.x, old.y, old.out), max_iter=args.max_steps, tol=POLISH_TOL, seed=old.seed,
                 cg_iter=args.cg_iter)
    f = CPFactors(old.lmax, old.parity, fit.u, fit.v, fit.w, fit.rel_error, old.seed)
    row = {"lmax": f.lmax, "parity": f.parity, "rank": f.rank, "seed": f.seed, "rel_error": f.rel_error,
           "iterations": fit.iterations, "max_term_ratio": f.max_term_ratio, "sum_term_ratio": f.sum_term_ratio,
           "seconds": round(time.perf_counter() - t0, 1), "polished_from": old.rel_error, "method": "lm",
           "cg_iter": args.cg_iter}
    with open(args.log, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(row, flush=True)
    if f.rel_error < old.rel_error and f.max_term_ratio <= DEGENERACY_LIMIT:
        atomic_write_bytes(args.file, f.to_bytes())
        print(f"rewrote {args.file}")


if __name__ == "__main__":
    main()
