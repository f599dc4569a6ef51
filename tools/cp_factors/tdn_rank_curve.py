"""Rank-error curves of the CP factorisation (the data behind the TDN paper's Figs. 2/3, which it gives only as
pictures): for each parity and L, fits at a geometric grid of ranks below the exact rank, each with
its relative Frobenius error, largest term, float64 product error against the exact CG product and equivariance
error; then a three-panel figure.

    OMP_NUM_THREADS=1 python tools/cp_factors/tdn_rank_curve.py --lmax 1,2,3,4 --parity so3,o3  # fits (resumable)
    python tools/cp_factors/tdn_rank_curve.py --plot docs/img/tdn_rank_error.png                # figure only

Every fit is the package's fitting policy, ``fit.fit_factors``, with one seed (seed 0: the ALS warm-up, then at most
--max-steps Levenberg-Marquardt steps; if that is degenerate, ridge-penalised ALS of at most --max-sweeps sweeps),
appended to --log as one JSON line; ranks already in the log are skipped. Fewer steps than the package's defaults
(2000 steps, 40000 sweeps, two seeds), so the curves are upper bounds of the error sciml would reach at each rank.
The 7 L^2 and exact-rank points of the figure come from the shipped factor files (what ``rank="default"`` and
``"exact"`` load; non-degenerate).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from sciml.tdn.cache import load_or_fit
from sciml.tdn.check import equivariance_error, relative_difference
from sciml.tdn.cp_tp import CPTensorProduct
from sciml.tdn.factors import EXACT_RANKS, EXACT_TOL, CPFactors, default_rank
from sciml.tdn.fit import DegenerateCPError, fit_factors
from sciml.tdn.reference import ExactTensorProduct
from sciml.utils.atomic import atomic_path

LOG = Path(__file__).with_name("tdn_rank_curve.jsonl")


def rank_grid(lmax: int, parity: str, points: int) -> list[int]:
    """``points`` ranks spaced geometrically from lmax + 1 to just below the exact rank, without 7 L^2 (shipped)."""
    exact = EXACT_RANKS[parity][lmax]
    grid = {int(round(r)) for r in np.geomspace(lmax + 1, exact - 1, points)}
    return sorted(r for r in grid if r < exact and r != default_rank(lmax, parity))


def product_errors(f: CPFactors) -> dict[str, float]:
    """float64 relative difference from the exact CG product and equivariance error of the CP product with f."""
    with torch.no_grad():
        tp = CPTensorProduct(f.lmax, 8, rank=f.rank, parity=f.parity, init_factors=False, use_triton=False,
                             contraction="rank").double()
        tp.load_state_dict({"cp_x": torch.from_numpy(f.x), "cp_y": torch.from_numpy(f.y),
                            "cp_out": torch.from_numpy(f.out), "factor_rel_error": torch.tensor(f.rel_error),
                            "path_index": torch.zeros(0, dtype=torch.long)})
        exact = ExactTensorProduct(f.lmax, 8, parity=f.parity).double()
        return {"product_rel_error": relative_difference(tp, exact, f.lmax, 8, edges=256),
                "equivariance_error": equivariance_error(tp, f.lmax, 8, f.parity)}


def row_of(f: CPFactors, **extra: object) -> dict:
    return {"lmax": f.lmax, "parity": f.parity, "rank": f.rank, "rel_error": f.rel_error,
            "max_term_ratio": f.max_term_ratio, **product_errors(f), **extra}


def fit_rows(lmaxes: list[int], parities: list[str], points: int, max_steps: int, max_sweeps: int,
             log: Path) -> None:
    done = {(r["parity"], r["lmax"], r["rank"]) for r in read_log(log)}
    for parity in parities:
        for lmax in lmaxes:
            for rank in rank_grid(lmax, parity, points):
                if (parity, lmax, rank) in done:
                    continue
                t0 = time.perf_counter()
                try:
                    f = fit_factors(lmax, parity, rank, restarts=1, max_iter=max_sweeps, max_steps=max_steps)
                except DegenerateCPError as exc:
                    print(f"{parity} L={lmax} R={rank}: {exc}", flush=True)
                    continue
                row = row_of(f, max_steps=max_steps, max_sweeps=max_sweeps,
                             seconds=round(time.perf_counter() - t0, 1))
                with open(log, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(row, flush=True)


def read_log(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def plot(log: Path, path: Path) -> None:
    """(a) relative Frobenius error against rank, one line per (parity, L; so3 solid, o3 dashed), the 7 L^2 (starred)
    and exact ranks from the shipped files; (b) measured float64 product and equivariance errors against the factor
    error (for white inputs E||(M - M_hat)(x, y)||^2 = ||M - M_hat||_F^2, so the product error should sit on y = x);
    (c) the shipped exact ranks and 7 L^2 against L."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.lines import Line2D

    rows = read_log(log)  # rank_grid leaves out 7 L^2: those points come from the shipped files
    for parity, lmax in sorted({(r["parity"], r["lmax"]) for r in rows}):
        rows += [row_of(load_or_fit(lmax, parity, rank)) for rank in ("default", "exact")]
    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(17, 5), gridspec_kw={"width_ratios": [1.3, 1, 0.8]})
    for parity, style in (("so3", "-"), ("o3", "--")):
        for lmax in sorted({r["lmax"] for r in rows if r["parity"] == parity}):
            pts = sorted((r["rank"], max(r["rel_error"], 1e-16))
                         for r in rows if r["parity"] == parity and r["lmax"] == lmax)
            color = f"C{lmax - 1}"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, marker="o", ms=4)
            star = [p for p in pts if p[0] == default_rank(lmax, parity)]
            ax.plot([p[0] for p in star], [p[1] for p in star], "*", ms=12, color=color)
    ax.axhline(EXACT_TOL, color="grey", lw=0.8, ls=":")
    ax.annotate("exact: 1e-7", (0.01, EXACT_TOL), xycoords=("axes fraction", "data"), ha="left", va="bottom",
                color="grey", fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="CP rank R", ylabel="relative Frobenius error ||M - M_hat|| / ||M||",
           title="CP rank vs error (non-degenerate fits; star: 7 L^2)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    lmaxes = sorted({r["lmax"] for r in rows})
    handles = [Line2D([], [], color=f"C{lmax - 1}", label=f"L = {lmax}") for lmax in lmaxes]
    handles += [Line2D([], [], color="k", ls=style, label=parity) for parity, style in (("so3", "-"), ("o3", "--"))]
    ax.legend(handles=handles, fontsize=8, ncol=len(handles), loc="upper center", bbox_to_anchor=(0.5, -0.13))
    fe = np.array([r["rel_error"] for r in rows])
    keep = fe > 1e-12
    for key, marker, label in (("product_rel_error", "o", "product vs exact CG"),
                               ("equivariance_error", "x", "equivariance error")):
        bx.plot(fe[keep], np.array([r[key] for r in rows])[keep], marker, ms=5, label=label, alpha=0.8)
    lim = [fe[keep].min() / 2, 2.0]
    bx.plot(lim, lim, "k-", lw=0.8, label="y = x")
    bx.set(xscale="log", yscale="log", xlabel="factor relative Frobenius error",
           ylabel="measured relative error (float64)", title="product and equivariance error vs factor error")
    bx.legend(fontsize=8)
    ls = np.arange(1, 7)
    for parity, style in (("so3", "o-"), ("o3", "s--")):
        cx.plot(ls, [EXACT_RANKS[parity][lmax] for lmax in ls], style, label=f"exact rank, {parity}")
    cx.plot(ls, 7 * ls ** 2, "*:", color="k", label="7 L^2 (paper default)")
    cx.plot(ls, (ls + 1) ** 4, "-", color="grey", lw=0.8, label="(L+1)^4 = d^2 (upper bound)")
    cx.set(yscale="log", xlabel="L", ylabel="rank", title="exact CP rank (upper bounds found) vs L")
    cx.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lmax", default="", help="comma-separated degrees to fit (default: none, plot only)")
    ap.add_argument("--parity", default="so3,o3")
    ap.add_argument("--points", type=int, default=7, help="grid ranks below the exact rank per (parity, L)")
    ap.add_argument("--max-steps", type=int, default=400, help="Levenberg-Marquardt steps after the ALS warm-up")
    ap.add_argument("--max-sweeps", type=int, default=2000, help="ridge-ALS sweeps when the LM fit is degenerate")
    ap.add_argument("--log", type=Path, default=LOG)
    ap.add_argument("--plot", type=Path, default=None, help="write the figure (PNG) here")
    args = ap.parse_args()
    lmaxes = [int(v) for v in args.lmax.split(",") if v.strip()]
    fit_rows(lmaxes, [p.strip() for p in args.parity.split(",")], args.points, args.max_steps, args.max_sweeps,
             args.log)
    if args.plot:
        plot(args.log, args.plot)


if __name__ == "__main__":
    main()
