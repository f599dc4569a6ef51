"""Search the smallest CP rank at which the deterministic fit (``fit.fit_seed``: CP-ALS warm-up, then
Levenberg-Marquardt) reaches the CG tensor exactly (rel. error < 1e-7, non-degenerate), bisecting between --lo
(fails) and --hi (succeeds). Every attempt is appended to --log (JSON
lines); the exact factors found are written to --ship (the package's shipped factor folder by default).

    OMP_NUM_THREADS=1 python tools/cp_factors/tdn_rank_search.py --lmax 4 --parity so3 --lo 150 --hi 300
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sciml.tdn.cache import SHIPPED_DIR, file_name
from sciml.tdn.cg import cg_tensor
from sciml.tdn.factors import DEGENERACY_LIMIT, EXACT_TOL, CPFactors
from sciml.tdn.fit import WARMUP_SWEEPS, fit_seed
from sciml.utils.atomic import atomic_write_bytes


def attempt(lmax: int, parity: str, rank: int, restarts: int, max_steps: int, log: Path,
            first_seed: int = 0, keep: Path | None = None) -> CPFactors | None:
    """First exact, non-degenerate fit over seeds first_seed..first_seed+restarts-1, or None. Non-exact,
    non-degenerate fits are written to ``keep`` (if given), so ``tdn_polish.py`` can continue them."""
    m = cg_tensor(lmax, parity).numpy()
    for seed in range(first_seed, first_seed + restarts):
        t0 = time.perf_counter()
        fit = fit_seed(m, rank, seed, max_steps=max_steps)
        f = CPFactors(lmax, parity, fit.u, fit.v, fit.w, fit.rel_error, seed)
        row = {"lmax": lmax, "parity": parity, "rank": rank, "seed": seed, "rel_error": f.rel_error,
               "method": f"als{WARMUP_SWEEPS}+lm", "iterations": fit.iterations, "max_term_ratio": f.max_term_ratio,
               "sum_term_ratio": f.sum_term_ratio, "seconds": round(time.perf_counter() - t0, 1)}
        with open(log, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(row, flush=True)
        if f.max_term_ratio <= DEGENERACY_LIMIT:
            if f.rel_error < EXACT_TOL:
                return f
            if keep is not None:
                atomic_write_bytes(keep / file_name(lmax, parity, rank), f.to_bytes())
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lmax", type=int, required=True)
    ap.add_argument("--parity", default="so3")
    ap.add_argument("--lo", type=int, required=True, help="a rank believed to fail")
    ap.add_argument("--hi", type=int, required=True, help="a rank believed to succeed")
    ap.add_argument("--restarts", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=2000, help="Levenberg-Marquardt steps after the ALS warm-up")
    ap.add_argument("--first-seed", type=int, default=0, help="seeds tried: first_seed .. first_seed+restarts-1")
    ap.add_argument("--single", action="store_true",
                    help="try --hi only (no doubling, no bisection); ship the factors if that fit is exact")
    ap.add_argument("--log", type=Path, default=Path(__file__).with_name("tdn_rank_search.jsonl"))
    ap.add_argument("--ship", type=Path, default=SHIPPED_DIR)
    ap.add_argument("--keep", type=Path, default=None, help="folder for non-exact fits (to polish further)")
    args = ap.parse_args()
    lo, hi = args.lo, args.hi
    best = attempt(args.lmax, args.parity, hi, args.restarts, args.max_steps, args.log, args.first_seed, args.keep)
    if args.single and best is None:
        print(json.dumps({"lmax": args.lmax, "parity": args.parity, "rank": hi, "exact": False}))
        return
    while best is None:
        lo, hi = hi, 2 * hi
        best = attempt(args.lmax, args.parity, hi, args.restarts, args.max_steps, args.log, args.first_seed, args.keep)
    while hi - lo > 1 and not args.single:
        mid = (lo + hi) // 2
        f = attempt(args.lmax, args.parity, mid, args.restarts, args.max_steps, args.log, args.first_seed, args.keep)
        if f is None:
            lo = mid
        else:
            hi, best = mid, f
    atomic_write_bytes(args.ship / file_name(args.lmax, args.parity, best.rank), best.to_bytes())
    print(json.dumps({"lmax": args.lmax, "parity": args.parity, "exact_rank": best.rank, **best.summary()}))


if __name__ == "__main__":
    main()
