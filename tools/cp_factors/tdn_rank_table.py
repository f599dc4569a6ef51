"""Markdown table of every shipped CP factor file (rank, relative error, factor norms) plus, from the rank-search log,
the largest rank below the shipped exact rank that was tried and the best error reached there (with the ALS sweeps,
or the Levenberg-Marquardt steps after the ALS warm-up, of that run: a rank that reached 1e-7 only in a run that was
not polished to 1e-14 is listed too, it is not claimed as exact).

    python tools/cp_factors/tdn_rank_table.py [--log tools/cp_factors/tdn_rank_search.jsonl]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sciml.tdn.cache import SHIPPED_DIR
from sciml.tdn.factors import EXACT_RANKS, CPFactors, default_rank


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, default=Path(__file__).with_name("tdn_rank_search.jsonl"))
    args = ap.parse_args()
    failed: dict[tuple[int, str], tuple[int, float, str]] = {}
    if args.log.is_file():
        for line in args.log.read_text().splitlines():
            r = json.loads(line)
            key = (r["lmax"], r["parity"])
            if r["rank"] < EXACT_RANKS[r["parity"]].get(r["lmax"], 10**9):
                if key not in failed or r["rank"] > failed[key][0] or (
                        r["rank"] == failed[key][0] and r["rel_error"] < failed[key][1]):
                    unit = "LM steps" if r.get("method", "als").endswith("lm") else "sweeps"
                    failed[key] = (r["rank"], r["rel_error"], f"{r['iterations']} {unit}")
    print("| parity | L | d | kind | R | rel. Frobenius error | max term / norm M | sum terms / norm M | "
          "best error one rank below search bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    files = sorted(SHIPPED_DIR.glob("cp_*.npz"), key=lambda p: (p.name.split("_")[1], int(p.name.split("_L")[1].split("_")[0]),
                                                                  int(p.stem.split("_R")[1])))
    for path in files:
        f = CPFactors.from_bytes(path.read_bytes(), source=str(path))
        kinds = []
        if EXACT_RANKS[f.parity].get(f.lmax) == f.rank:
            kinds.append("exact")
        if default_rank(f.lmax, f.parity) == f.rank:
            kinds.append("default (7L^2)" if f.rank == 7 * f.lmax ** 2 else "default (capped)")
        below = failed.get((f.lmax, f.parity)) if "exact" in kinds else None
        below_txt = f"R={below[0]}: {below[1]:.1e} ({below[2]})" if below else ""
        print(f"| {f.parity} | {f.lmax} | {(f.lmax + 1) ** 2} | {', '.join(kinds) or 'other'} | {f.rank} | "
              f"{f.rel_error:.2e} | {f.max_term_ratio:.2f} | {f.sum_term_ratio:.1f} | {below_txt} |")


if __name__ == "__main__":
    main()
