"""Levenberg-Marquardt CP refinement: its Gauss-Newton matrix is J^T J, and it reaches exact fits ALS crawls to."""

from __future__ import annotations

import numpy as np
import pytest

from sciml.tdn.cg import cg_tensor
from sciml.tdn.cp_als import cp_als, reconstruct, relative_error
from sciml.tdn.cp_lm import _gn_product, _solve_step, cp_lm
from sciml.tdn.factors import DEGENERACY_LIMIT, CPFactors
from sciml.tdn.fit import fit_seed


def test_gauss_newton_product_is_jacobian_gram():
    """_gn_product(v) == J^T (J v) with J the Jacobian of vec([[F0, F1, F2]]) w.r.t. the stacked factors, built
    column by column (the CP model is linear in each single factor entry, so a forward difference is exact)."""
    rng = np.random.default_rng(0)
    shapes = [(3, 2), (4, 2), (5, 2)]
    fs = [rng.standard_normal(s) for s in shapes]
    base = reconstruct(*fs).ravel()
    cols = []
    for n, s in enumerate(shapes):
        for idx in np.ndindex(*s):
            moved = [f.copy() for f in fs]
            moved[n][idx] += 1.0
            cols.append(reconstruct(*moved).ravel() - base)
    jac = np.stack(cols, axis=1)
    v = [rng.standard_normal(s) for s in shapes]
    flat_v = np.concatenate([x.ravel() for x in v])
    expected = jac.T @ (jac @ flat_v)
    got = np.concatenate([y.ravel() for y in _gn_product(fs, [f.T @ f for f in fs], v)])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_lm_reaches_round_off_where_als_crawls():
    """o3 L=3 at rank 52 (below the former ALS bound 55): from 500 ALS sweeps (error ~1e-3) LM reaches 1e-14 with
    bounded terms, while ALS from the same start is still far from exact after 4x as many sweeps."""
    m = cg_tensor(3, "o3").numpy()
    warm = cp_als(m, 52, seed=0, max_iter=500, tol=1e-14)
    assert warm.rel_error > 1e-5
    fit = cp_lm(m, (warm.u, warm.v, warm.w), max_iter=2000, tol=1e-14)
    assert fit.rel_error < 1e-13
    assert fit.rel_error == pytest.approx(relative_error(m, fit.u, fit.v, fit.w), rel=1e-6)
    assert CPFactors(3, "o3", fit.u, fit.v, fit.w, fit.rel_error).max_term_ratio <= DEGENERACY_LIMIT
    als = cp_als(m, 52, seed=0, max_iter=2000, tol=1e-14)
    assert als.rel_error > 1e3 * fit.rel_error


@pytest.mark.slow
def test_lm_stops_at_a_non_exact_minimum_and_is_deterministic():
    """Below the CP rank (so3 L=1, R=7) there is no exact fit: LM stalls at a finite error instead of running on."""
    m = cg_tensor(1, "so3").numpy()
    a = fit_seed(m, 7, seed=0, max_steps=5000)
    b = fit_seed(m, 7, seed=0, max_steps=5000)
    assert 1e-3 < a.rel_error < 0.5 and a.iterations < 5000
    assert (a.u == b.u).all() and a.rel_error == b.rel_error


def test_lm_rejects_mismatched_factors():
    m = cg_tensor(1, "so3").numpy()
    with pytest.raises(ValueError, match="init factors"):
        cp_lm(m, (np.ones((4, 3)), np.ones((4, 3)), np.ones((5, 3))))


def test_step_is_defined_when_the_normal_matrices_are_singular():
    """Undamped (lam = 0) with two identical columns: G_a * G_b is singular, the preconditioner must still factor
    (this once stopped a polish at o3 L = 6 when the damping had shrunk to nothing)."""
    rng = np.random.default_rng(1)
    fs = [rng.standard_normal((5, 3)) for _ in range(3)]
    for f in fs:
        f[:, 1] = f[:, 0]
    grad = [rng.standard_normal((5, 3)) for _ in range(3)]
    step = _solve_step(fs, [f.T @ f for f in fs], grad, lam=0.0, cg_iter=20, cg_tol=1e-8)
    assert all(np.isfinite(s).all() for s in step)
