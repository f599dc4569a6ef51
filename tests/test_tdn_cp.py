"""CP tensor product: exactness, equivariance, agreement with the exact CG and e3nn products, error bound."""

from __future__ import annotations

import pytest
import torch

from sciml.tdn import CPTensorProduct, E3nnTensorProduct, ExactTensorProduct, cg_tensor, paths
from sciml.tdn.check import equivariance_error, random_inputs, relative_difference
from sciml.tdn.factors import DEGENERACY_LIMIT, EXACT_RANKS, resolve_rank

EXACT_CASES = [(1, "so3"), (2, "so3"), (3, "so3"), (1, "o3"), (2, "o3"), (4, "o3"), (5, "o3")]


pytestmark = pytest.mark.usefixtures("float64_default_dtype")


def test_cg_tensor_structure():
    # path counts from the TDN reference (L=1: 5, L=2: 15, L=3: 34); unit-norm blocks
    for lmax, count in ((1, 5), (2, 15), (3, 34)):
        assert len(paths(lmax, "so3")) == count
        assert torch.linalg.norm(cg_tensor(lmax)) ** 2 == pytest.approx(count)
    assert all((l1 + l2 + l3) % 2 == 0 for l1, l2, l3 in paths(3, "o3"))
    assert (1, 1, 1) in paths(1, "so3") and (1, 1, 1) not in paths(1, "o3")


@pytest.mark.parametrize("lmax,parity", EXACT_CASES)
def test_exact_rank_is_exact_and_equivariant(lmax, parity):
    tp = CPTensorProduct(lmax, 3, rank="exact", parity=parity)
    assert tp.rank == EXACT_RANKS[parity][lmax]
    assert float(tp.factor_rel_error) < 1e-7
    assert equivariance_error(tp, lmax, 3, parity) < 1e-10  # o3: reflections included
    assert relative_difference(tp, ExactTensorProduct(lmax, 3, parity=parity), lmax, 3) < 1e-10


@pytest.mark.parametrize("parity", ["so3", "o3"])
def test_shipped_exact_factors_are_exact_and_non_degenerate(parity):
    """Every rank in EXACT_RANKS (L >= 1) ships a file that reconstructs M to ~1e-14 with bounded terms."""
    import numpy as np

    from sciml.tdn.cache import SHIPPED_DIR, file_name
    from sciml.tdn.cp_als import relative_error
    from sciml.tdn.factors import CPFactors

    for lmax, rank in EXACT_RANKS[parity].items():
        if lmax == 0:
            continue
        path = SHIPPED_DIR / file_name(lmax, parity, rank)
        f = CPFactors.from_bytes(path.read_bytes(), source=str(path))
        assert (f.lmax, f.parity, f.rank) == (lmax, parity, rank)
        err = relative_error(cg_tensor(lmax, parity).numpy(), f.x, f.y, f.out)
        assert err < 1e-13 and np.isclose(err, f.rel_error, rtol=0.5, atol=1e-14)
        assert f.max_term_ratio <= DEGENERACY_LIMIT


@pytest.mark.parametrize("parity", ["so3", "o3"])
def test_default_and_exact_ranks_are_shipped_for_lmax_1_to_6(parity, monkeypatch, tmp_path):
    """rank="default" and "exact" never fit at L <= 6: a fresh user (empty cache) gets shipped, non-degenerate files."""
    from sciml.tdn.cache import load_or_fit

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted instead of loading a shipped file")

    monkeypatch.setattr("sciml.tdn.fit.fit_factors", no_fit)
    monkeypatch.setenv("SCIML_CACHE_DIR", str(tmp_path))
    for lmax in range(1, 7):
        for kind in ("default", "exact"):
            f = load_or_fit(lmax, parity, resolve_rank(lmax, parity, kind))
            assert f.max_term_ratio <= DEGENERACY_LIMIT and f.rel_error < (1e-13 if kind == "exact" else 0.06)


def test_so3_product_is_not_mirror_equivariant():
    # the (1,1,1) path (cross product) flips sign under inversion: only the o3 tensor drops it
    tp = CPTensorProduct(1, 3, rank="exact", parity="so3")
    assert equivariance_error(tp, 1, 3, "so3", reflections=True) > 0.1


@pytest.mark.parametrize("lmax,parity", [(1, "so3"), (2, "so3"), (3, "so3")])
def test_default_rank_error_matches_frobenius_error(lmax, parity):
    """For white x, w and component-normalised SH, E||(M - M_hat)(x, y)||^2 = ||M - M_hat||_F^2 and
    ||(M - M_hat)(x, y)|| <= ||M - M_hat||_F ||x|| ||y|| for every edge and channel."""
    tp = CPTensorProduct(lmax, 4, rank="default", parity=parity)
    exact = ExactTensorProduct(lmax, 4, parity=parity)
    x, _, y, _ = random_inputs(lmax, 4, 3000, seed=3)
    ones = torch.ones(3000, 4)
    diff = tp(x, y, ones) - exact(x, y, ones)
    m_norm = torch.linalg.norm(cg_tensor(lmax, parity))
    frob = float(tp.factor_rel_error) * m_norm
    per = diff.norm(dim=1)  # [E, C]
    assert torch.all(per <= frob * x.norm(dim=1) * y.norm(dim=1, keepdim=True) * (1 + 1e-9))
    rms = (per ** 2).mean().sqrt()
    assert float(rms / frob) == pytest.approx(1.0, abs=0.2)
    assert float(tp.factor_rel_error) > 1e-4  # genuinely approximate


@pytest.mark.parametrize("lmax,parity", [(1, "so3"), (2, "o3"), (3, "so3")])
def test_per_path_weights_match_exact_and_e3nn(lmax, parity):
    cp = CPTensorProduct(lmax, 3, parity=parity, weights="per_path")
    exact = ExactTensorProduct(lmax, 3, parity=parity, weights="per_path")
    e3 = E3nnTensorProduct(lmax, 3, parity=parity)
    assert cp.num_paths == exact.num_paths == e3.num_paths == len(paths(lmax, parity))
    x, _, y, w = random_inputs(lmax, 3, 10, num_paths=cp.num_paths, seed=1)
    ref = exact(x, y, w * e3.path_weight[None, :, None])
    assert float((e3(x, y, w) - ref).norm() / ref.norm()) < 1e-12
    assert float((cp(x, y, w) - exact(x, y, w)).norm() / ref.norm()) < 1e-12
    # shared weights are per-path weights all equal
    shared = ExactTensorProduct(lmax, 3, parity=parity)
    ws = w[:, 0, :]
    assert torch.allclose(shared(x, y, ws), exact(x, y, ws[:, None, :].expand_as(w)), atol=1e-12)


def test_e3nn_path_weight_is_e3nn_normalisation():
    """e3nn component/element normalisation for uvu with one SH channel: sqrt((2 l3 + 1) / #paths into l3)."""
    e3 = E3nnTensorProduct(2, 2)
    for p, (_, _, l3) in enumerate(e3.path_list):
        fan_in = sum(1 for q in e3.path_list if q[2] == l3)
        assert float(e3.path_weight[p]) == pytest.approx(((2 * l3 + 1) / fan_in) ** 0.5)


@pytest.mark.slow
def test_fit_rejects_degenerate_factors():
    """Below the true rank (L=1, R=7) plain ALS drifts into diverging-norm solutions for some seeds; fit_factors
    must not return those."""
    from sciml.tdn.cp_als import cp_als
    from sciml.tdn.factors import CPFactors
    from sciml.tdn.fit import fit_factors

    m = cg_tensor(1).numpy()
    ratios = []
    for seed in range(3):
        f = cp_als(m, 7, seed=seed, max_iter=3000)
        ratios.append(CPFactors(1, "so3", f.u, f.v, f.w, f.rel_error).max_term_ratio)
    assert max(ratios) > DEGENERACY_LIMIT
    best = fit_factors(1, "so3", 7)
    assert best.max_term_ratio <= DEGENERACY_LIMIT
    assert 1e-3 < best.rel_error < 0.5
    again = fit_factors(1, "so3", 7)
    assert (again.x == best.x).all() and again.rel_error == best.rel_error  # deterministic
