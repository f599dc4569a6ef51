"""Deterministic CP-ALS for 3-way tensors (numpy, float64).

Fits M[i, j, k] ~= sum_r U[i, r] V[j, r] W[k, r] by alternating least squares with

* fixed random seeds (restarts ``seed, seed+1, ...``), so the same call always returns the same factors;
* proximal Tikhonov damping towards the previous iterate (weight proportional to the current error, so it
  vanishes at an exact fit and does not bias the fixed point) which keeps ALS out of the diverging-norm swamps;
* Bro-style line search (extrapolation along the last sweep's step), accepted only when it lowers the error;
* column balancing after every sweep (equal norms in the three factors);
* optional fixed ridge penalty for ranks below the CP rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class CPFit:
    """Result of :func:`cp_als`: factors U [d1, R], V [d2, R], W [d3, R] and diagnostics."""

    u: np.ndarray
    v: np.ndarray
    w: np.ndarray
    rel_error: float  #: ||M - M_hat||_F / ||M||_F
    iterations: int
    seed: int

    @property
    def rank(self) -> int:
        return self.u.shape[1]


def reconstruct(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sum_r u[:, r] (x) v[:, r] (x) w[:, r], shape [d1, d2, d3]."""
    return np.einsum("ir,jr,kr->ijk", u, v, w, optimize=True)


def relative_error(m: np.ndarray, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> float:
    """Relative Frobenius error ||M - M_hat||_F / ||M||_F (computed from the full reconstruction, not the Gram trick)."""
    return float(np.linalg.norm(m - reconstruct(u, v, w)) / np.linalg.norm(m))


def _balance(fs: list[np.ndarray]) -> list[np.ndarray]:
    norms = [np.linalg.norm(f, axis=0) for f in fs]
    total = np.prod(norms, axis=0)
    target = np.cbrt(np.maximum(total, 1e-300))
    return [f * (target / np.maximum(n, 1e-300)) for f, n in zip(fs, norms)]


class _Unfoldings:
    """Sparse mode-n unfoldings of M for fast MTTKRP (M is ~10-25 % dense)."""

    def __init__(self, m: np.ndarray):
        self.shape = m.shape
        self.mats = [
            sp.csr_matrix(np.moveaxis(m, n, 0).reshape(m.shape[n], -1)) for n in range(3)
        ]

    def mttkrp(self, fs: list[np.ndarray], n: int) -> np.ndarray:
        a, b = [fs[k] for k in range(3) if k != n]
        kr = (a[:, None, :] * b[None, :, :]).reshape(-1, a.shape[1])
        return self.mats[n] @ kr


def _error(m: np.ndarray, unf: _Unfoldings, fs: list[np.ndarray], norm2: float, previous: float) -> float:
    """Relative error; via Gram matrices and one sparse MTTKRP while it is large (> 1e-5, where the squared-norm
    expansion is accurate), from the full reconstruction below that."""
    if previous < 1e-5:
        return relative_error(m, *fs)
    inner = float(np.sum(unf.mttkrp(fs, 2) * fs[2]))
    g = (fs[0].T @ fs[0]) * (fs[1].T @ fs[1]) * (fs[2].T @ fs[2])
    return float(np.sqrt(max(norm2 - 2.0 * inner + g.sum(), 0.0) / norm2))


def _sweep(unf: _Unfoldings, fs: list[np.ndarray], damping: float, ridge: float) -> list[np.ndarray]:
    fs = list(fs)
    grams = [f.T @ f for f in fs]
    rank = fs[0].shape[1]
    eye = np.eye(rank)
    for n in range(3):
        g = np.ones((rank, rank))
        for k in range(3):
            if k != n:
                g = g * grams[k]
        rhs = unf.mttkrp(fs, n) + damping * fs[n]
        fs[n] = np.linalg.solve(g + (damping + ridge) * eye, rhs.T).T
        grams[n] = fs[n].T @ fs[n]
    return fs


def cp_als(
    m: np.ndarray,
    rank: int,
    seed: int = 0,
    max_iter: int = 3000,
    tol: float = 1e-9,
    stall: int = 400,
    ridge: float = 0.0,
) -> CPFit:
    """One deterministic CP-ALS run from the random start drawn with ``seed``.

    ``ridge`` > 0 adds a fixed penalty ridge * ||F||^2 per factor (biased, but keeps factor norms bounded
    below the true rank, where plain ALS can drift into degenerate, diverging-norm solutions).

    Stops when the relative error drops below ``tol``, after ``max_iter`` sweeps, or when the error has not improved
    by 1 % in ``stall`` sweeps.
    """
    m = np.asarray(m, dtype=np.float64)
    unf = _Unfoldings(m)
    rng = np.random.default_rng(seed)
    scale = (np.linalg.norm(m) / rank) ** (1.0 / 3.0)
    fs = [rng.standard_normal((dim, rank)) * scale / np.sqrt(dim) for dim in m.shape]
    norm2 = float(np.sum(m * m))
    err = relative_error(m, *fs)
    best_err, best_it = err, 0
    it = 0
    for it in range(1, max_iter + 1):
        prev = fs
        fs = _balance(_sweep(unf, fs, damping=1e-2 * min(err, 1.0), ridge=ridge))
        new_err = _error(m, unf, fs, norm2, err)
        # line search along the step of this sweep
        step = it ** (1.0 / 3.0)
        trial = _balance([p + step * (f - p) for p, f in zip(prev, fs)])
        trial_err = _error(m, unf, trial, norm2, err)
        if trial_err < new_err:
            fs, new_err = trial, trial_err
        err = new_err
        if err < max(tol, 1e-5):
            err = relative_error(m, *fs)
        if err < tol:
            break
        if err < 0.99 * best_err:
            best_err, best_it = err, it
        elif it - best_it > stall:
            break
    return CPFit(u=fs[0], v=fs[1], w=fs[2], rel_error=relative_error(m, *fs), iterations=it, seed=seed)
