"""Levenberg-Marquardt refinement of a 3-way CP (numpy, float64): Gauss-Newton steps on all three factors at once.

ALS updates one factor with the other two frozen, so near an exact but ill-conditioned decomposition it crawls
(tens of thousands of sweeps from 1e-6 to 1e-14). The Gauss-Newton step couples the factors and converges
quadratically when the fit is exact. Each step solves (J^T J + lam I) delta = -J^T r by preconditioned conjugate
gradients without forming J: a product with J^T J costs a few [d, R] x [R, R] matmuls, and the block-Jacobi
preconditioner is the ALS normal matrix of each factor. The residual tensor is kept explicitly (d^3 entries,
small for lmax <= 7), so gradients stay accurate down to round-off. Deterministic: no random numbers.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from sciml.tdn.cp_als import CPFit, _balance, reconstruct, relative_error

#: smallest diagonal shift of the preconditioner, relative to its largest diagonal entry (keeps Cholesky defined)
PRECONDITIONER_FLOOR = 1e-10


def _mttkrp(t: np.ndarray, fs: list[np.ndarray], n: int) -> np.ndarray:
    """Mode-n MTTKRP of a dense tensor t [d1, d2, d3] with the other two factors: [d_n, R]."""
    subs = ["ijk,jr,kr->ir", "ijk,ir,kr->jr", "ijk,ir,jr->kr"][n]
    a, b = [fs[k] for k in range(3) if k != n]
    return np.einsum(subs, t, a, b, optimize=True)


def _others(n: int) -> tuple[int, int]:
    return tuple(k for k in range(3) if k != n)  # type: ignore[return-value]


def _gn_product(fs: list[np.ndarray], grams: list[np.ndarray], v: list[np.ndarray]) -> list[np.ndarray]:
    """J^T J v for the CP model [[F0, F1, F2]]: y_n = v_n G_a*G_b + F_n ((v_a^T F_a) * G_b + G_a * (v_b^T F_b))."""
    cross = [x.T @ f for f, x in zip(fs, v)]  # v_k^T F_k [R, R]
    out = []
    for n in range(3):
        a, b = _others(n)
        out.append(v[n] @ (grams[a] * grams[b]) + fs[n] @ (cross[a] * grams[b] + grams[a] * cross[b]))
    return out


def _dot(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(sum(np.vdot(x, y) for x, y in zip(a, b)))


def _solve_step(fs: list[np.ndarray], grams: list[np.ndarray], grad: list[np.ndarray], lam: float, cg_iter: int,
                cg_tol: float) -> list[np.ndarray]:
    """Approximate solution of (J^T J + lam I) delta = -grad by block-Jacobi preconditioned CG (grams: F_n^T F_n)."""
    rank = fs[0].shape[1]
    chol = []
    for a, b in map(_others, range(3)):
        normal = grams[a] * grams[b]  # positive semi-definite; near-singular once lam has shrunk towards 0
        shift = max(lam, PRECONDITIONER_FLOOR * float(normal.diagonal().max()))
        chol.append(cho_factor(normal + shift * np.eye(rank)))

    def precondition(r: list[np.ndarray]) -> list[np.ndarray]:
        # z_n = r_n (G_a*G_b + shift I)^-1: the damped ALS normal matrix of factor n (symmetric positive definite)
        return [cho_solve(c, x.T).T for c, x in zip(chol, r)]

    x = [np.zeros_like(g) for g in grad]
    r = [-g for g in grad]
    z = precondition(r)
    p = [t.copy() for t in z]
    rz = _dot(r, z)
    r0 = np.sqrt(_dot(r, r))
    for _ in range(cg_iter):
        q = [a + lam * b for a, b in zip(_gn_product(fs, grams, p), p)]
        alpha = rz / _dot(p, q)
        x = [a + alpha * b for a, b in zip(x, p)]
        r = [a - alpha * b for a, b in zip(r, q)]
        if np.sqrt(_dot(r, r)) < cg_tol * r0:
            break
        z = precondition(r)
        rz, rz_old = _dot(r, z), rz
        p = [a + (rz / rz_old) * b for a, b in zip(z, p)]
    return x


def cp_lm(m: np.ndarray, init: tuple[np.ndarray, np.ndarray, np.ndarray], max_iter: int = 2000,
          tol: float = 1e-14, stall: int = 100, cg_iter: int = 50, seed: int = -1) -> CPFit:
    """Refine the CP factors ``init`` ([d1, R], [d2, R], [d3, R]) of the dense tensor m by Levenberg-Marquardt.

    Stops when the relative Frobenius error drops below ``tol``, after ``max_iter`` steps, when the error has not
    improved by 1 % in ``stall`` steps (a non-exact local minimum), or when the damping has grown so large that no
    step lowers the error. ``seed`` is only recorded in the result.
    """
    m = np.asarray(m, dtype=np.float64)
    fs = _balance([np.array(f, dtype=np.float64) for f in init])
    if [f.shape[0] for f in fs] != list(m.shape) or len({f.shape[1] for f in fs}) != 1:
        raise ValueError(f"init factors must have shapes [d_n, R] for m of shape {m.shape}")
    norm = float(np.linalg.norm(m))
    res = m - reconstruct(*fs)
    err = float(np.linalg.norm(res)) / norm
    lam = 1e-3 * float(np.mean([np.trace(f.T @ f) for f in fs])) / fs[0].shape[1]
    best_err, best_it, it = err, 0, 0
    while err >= tol and it < max_iter and it - best_it <= stall and lam < 1e12:
        it += 1
        grad = [-_mttkrp(res, fs, n) for n in range(3)]
        grams = [f.T @ f for f in fs]
        step = _solve_step(fs, grams, grad, lam, cg_iter, cg_tol=1e-3 if err > 1e-8 else 1e-6)
        trial = [f + s for f, s in zip(fs, step)]
        trial_res = m - reconstruct(*trial)
        trial_err = float(np.linalg.norm(trial_res)) / norm
        # gain ratio: actual over predicted decrease of 0.5 ||r||^2
        jtj_s = _gn_product(fs, grams, step)
        predicted = -_dot(grad, step) - 0.5 * _dot(step, jtj_s)
        actual = 0.5 * (err * err - trial_err * trial_err) * norm * norm
        rho = actual / predicted if predicted > 0 else -1.0
        if rho > 0:
            fs, err, res = _balance(trial), trial_err, trial_res  # balancing keeps the tensor (to round-off)
            lam *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
            if err < 0.99 * best_err:
                best_err, best_it = err, it
        else:
            lam *= 4.0
    return CPFit(u=fs[0], v=fs[1], w=fs[2], rel_error=relative_error(m, *fs), iterations=it, seed=seed)
