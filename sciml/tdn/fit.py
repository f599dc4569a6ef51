"""Fitting policy: deterministic seeded fits of the CG tensor (CP-ALS warm-up, then Levenberg-Marquardt), degenerate
fits rejected."""

from __future__ import annotations

import numpy as np

from sciml.errors import SciMLError
from sciml.tdn.cg import cg_tensor
from sciml.tdn.cp_als import CPFit, cp_als
from sciml.tdn.cp_lm import cp_lm
from sciml.tdn.factors import DEGENERACY_LIMIT, EXACT_TOL, CPFactors

#: ALS target: exact-rank fits are polished to round-off so float64 products agree with the exact CG to ~1e-14
POLISH_TOL = 1e-14
#: ridge penalties tried (in order) when every plain restart is degenerate
RIDGES = (1e-4, 1e-3, 1e-2)
#: ALS sweeps from the random start before the Levenberg-Marquardt refinement
WARMUP_SWEEPS = 500


class DegenerateCPError(SciMLError, ValueError):
    """No non-degenerate CP factorisation was found for the requested rank (a user-facing error: choose a larger
    rank)."""


def _factors(lmax: int, parity: str, fit) -> CPFactors:
    return CPFactors(lmax=lmax, parity=parity, x=fit.u, y=fit.v, out=fit.w, rel_error=fit.rel_error, seed=fit.seed)


def fit_seed(m: np.ndarray, rank: int, seed: int, max_steps: int = 2000) -> CPFit:
    """One deterministic rank-``rank`` fit of the tensor m: WARMUP_SWEEPS of CP-ALS from the random start drawn with
    ``seed``, then Levenberg-Marquardt (``cp_lm``, at most ``max_steps`` steps) to POLISH_TOL or until it stalls.
    ALS alone crawls near an exact fit (10^4-10^5 sweeps); the Gauss-Newton steps converge there in hundreds."""
    warm = cp_als(m, rank, seed=seed, max_iter=WARMUP_SWEEPS, tol=POLISH_TOL)
    if warm.rel_error < POLISH_TOL:
        return warm
    return cp_lm(m, (warm.u, warm.v, warm.w), max_iter=max_steps, tol=POLISH_TOL, seed=seed)


def fit_factors(lmax: int, parity: str, rank: int, restarts: int = 2, max_iter: int = 40000,
                max_steps: int = 2000) -> CPFactors:
    """Best non-degenerate rank-``rank`` CP of M over ``restarts`` seeded fits (``fit_seed`` with at most
    ``max_steps`` Levenberg-Marquardt steps, seeds 0, 1, ...).

    Stops early once a fit is exact (error < EXACT_TOL). If every fit is degenerate (max term ratio >
    DEGENERACY_LIMIT) the seeds are refitted by ridge-penalised CP-ALS (RIDGES, up to ``max_iter`` sweeps), which
    keeps the factor norms bounded; if all of those are degenerate too, DegenerateCPError is raised.
    Deterministic: same arguments, same factors.
    """
    m = cg_tensor(lmax, parity).numpy()
    for ridge in (0.0, *RIDGES):
        best: CPFactors | None = None
        for seed in range(restarts):
            fit = fit_seed(m, rank, seed, max_steps) if ridge == 0.0 else \
                cp_als(m, rank, seed=seed, max_iter=max_iter, tol=POLISH_TOL, ridge=ridge)
            f = _factors(lmax, parity, fit)
            if f.max_term_ratio > DEGENERACY_LIMIT:
                continue
            if best is None or f.rel_error < best.rel_error:
                best = f
            if best.rel_error < EXACT_TOL:
                break
        if best is not None:
            return best
    raise DegenerateCPError(
        f"every rank-{rank} CP of the lmax={lmax} {parity} CG tensor had a term larger than "
        f"{DEGENERACY_LIMIT} x ||M|| (degenerate); use a larger rank"
    )


def per_path_factors(lmax: int, parity: str) -> CPFactors:
    """Exact CP of every path block separately (slice-wise SVD), concatenated, with ``path_index``.

    Block T (a x b x c) of path p is cut into slices along its smallest-total-rank mode; each slice's SVD
    gives rank-one terms. Exact to round-off; the rank is the sum of slice ranks over all paths.
    """
    from sciml.tdn.cg import degree_slice, num_components, paths

    d = num_components(lmax)
    m = cg_tensor(lmax, parity).numpy()
    cols: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    index: list[int] = []
    for p, (l1, l2, l3) in enumerate(paths(lmax, parity)):
        sl = (degree_slice(l1), degree_slice(l2), degree_slice(l3))
        block = m[sl]
        best = None
        for mode in range(3):
            terms = []
            moved = np.moveaxis(block, mode, 0)
            for s in range(moved.shape[0]):
                uu, ss, vt = np.linalg.svd(moved[s])
                for t in np.nonzero(ss > 1e-12 * max(ss.max(), 1e-300))[0]:
                    e = np.zeros(moved.shape[0])
                    e[s] = 1.0
                    vecs = [e, uu[:, t] * ss[t], vt[t]]
                    # undo moveaxis: the slice axis goes back to position `mode`
                    order = [vecs[1], vecs[2]]
                    order.insert(mode, vecs[0])
                    terms.append(order)
            if best is None or len(terms) < len(best):
                best = terms
        for a, b, c in best:
            full = [np.zeros(d), np.zeros(d), np.zeros(d)]
            full[0][sl[0]], full[1][sl[1]], full[2][sl[2]] = a, b, c
            cols.append(tuple(full))
            index.append(p)
    x, y, out = (np.stack([c[n] for c in cols], axis=1) for n in range(3))
    from sciml.tdn.cp_als import relative_error

    return CPFactors(lmax=lmax, parity=parity, x=x, y=y, out=out, rel_error=relative_error(m, x, y, out),
                     seed=-1, path_index=np.asarray(index, dtype=np.int64))
