"""CP factors of the CG tensor: container, diagnostics, rank names and .npz (de)serialisation.

Naming: M[i, j, k] ~= sum_r x[i, r] * y[j, r] * out[k, r]; ``x`` acts on the features, ``y`` on the spherical
harmonics, ``out`` produces the output components (the paper's B, C, A).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch

from sciml.tdn.cg import check_lmax, check_parity

#: relative Frobenius error below which a factorisation counts as exact
EXACT_TOL = 1e-7
#: largest allowed max_r ||x_r|| ||y_r|| ||out_r|| / ||M||_F; beyond it the CP is rejected as degenerate
#: (exact fits found by ALS have 0.2-1; degenerate near-border-rank fits have 4-20 and growing)
DEGENERACY_LIMIT = 3.0
#: version of the fitting procedure; part of every cache key, bump when the algorithm changes
FIT_VERSION = "als-lm1"

#: smallest rank at which our deterministic fit (ALS warm-up + Levenberg-Marquardt, ``fit.fit_seed``) was shown to
#: reach EXACT_TOL with non-degenerate factors and then polished to round-off (<= 1.2e-14; ``tools/cp_factors/
#: tdn_rank_search.py``, ``tdn_polish.py``). Upper bounds on the true CP rank: a few ranks just below (so3 L=6: 814;
#: o3 L=6: 580, 600) reached EXACT_TOL but not round-off, and o3 L=6 was searched only coarsely; see
#: tools/cp_factors/README.md.
EXACT_RANKS: dict[str, dict[int, int]] = {
    "so3": {0: 1, 1: 8, 2: 30, 3: 90, 4: 215, 5: 441, 6: 816},
    "o3": {0: 1, 1: 6, 2: 19, 3: 52, 4: 121, 5: 242, 6: 640},
}


@dataclass(frozen=True)
class CPFactors:
    """Rank-R CP factors of the degree-<=lmax CG tensor (float64 numpy arrays of shape [d, R]).

    ``path_index`` (shape [R]) is set for per-path factorisations: term r belongs to path ``path_index[r]``.
    """

    lmax: int
    parity: str
    x: np.ndarray
    y: np.ndarray
    out: np.ndarray
    rel_error: float
    seed: int = -1
    path_index: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return int(self.x.shape[1])

    @property
    def term_ratios(self) -> np.ndarray:
        """||x_r|| ||y_r|| ||out_r|| / ||M||_F for every term, shape [R]."""
        from sciml.tdn.cg import cg_tensor

        norms = np.linalg.norm(self.x, axis=0) * np.linalg.norm(self.y, axis=0) * np.linalg.norm(self.out, axis=0)
        return norms / float(torch.linalg.norm(cg_tensor(self.lmax, self.parity)))

    @property
    def max_term_ratio(self) -> float:
        """Largest rank-one term relative to ||M||_F (degeneracy indicator, see DEGENERACY_LIMIT)."""
        return float(self.term_ratios.max())

    @property
    def sum_term_ratio(self) -> float:
        """sum_r of the term ratios: float32 round-off of the CP product is roughly eps * this * ||M|| ||x|| ||y||."""
        return float(self.term_ratios.sum())

    @property
    def degenerate(self) -> bool:
        return self.max_term_ratio > DEGENERACY_LIMIT

    def summary(self) -> dict:
        """JSON-ready diagnostics."""
        return {
            "lmax": self.lmax,
            "parity": self.parity,
            "rank": self.rank,
            "factor_rel_error": self.rel_error,
            "max_term_ratio": self.max_term_ratio,
            "sum_term_ratio": self.sum_term_ratio,
            "seed": self.seed,
        }

    def to_bytes(self) -> bytes:
        """.npz serialisation (deterministic arrays; only zip timestamps differ between writes)."""
        buf = io.BytesIO()
        arrays = {
            "lmax": np.int64(self.lmax),
            "parity": np.array(self.parity),
            "x": self.x,
            "y": self.y,
            "out": self.out,
            "rel_error": np.float64(self.rel_error),
            "seed": np.int64(self.seed),
            "version": np.array(FIT_VERSION),
        }
        if self.path_index is not None:
            arrays["path_index"] = self.path_index.astype(np.int64)
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> CPFactors:
        """Inverse of :meth:`to_bytes`; ``source`` names the file in error messages."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            try:
                return cls(
                    lmax=int(z["lmax"]),
                    parity=str(z["parity"]),
                    x=np.array(z["x"], dtype=np.float64),
                    y=np.array(z["y"], dtype=np.float64),
                    out=np.array(z["out"], dtype=np.float64),
                    rel_error=float(z["rel_error"]),
                    seed=int(z["seed"]),
                    path_index=np.array(z["path_index"]) if "path_index" in z else None,
                )
            except KeyError as exc:
                raise ValueError(f"{source}: not a CP factor file (missing {exc})") from None


def default_rank(lmax: int, parity: str = "so3") -> int:
    """The paper's default 7 L^2 (at least 1), capped at the exact rank where that is known and smaller."""
    r = max(1, 7 * check_lmax(lmax) ** 2)
    exact = EXACT_RANKS[check_parity(parity)].get(lmax)
    return min(r, exact) if exact is not None else r


def resolve_rank(lmax: int, parity: str, rank: int | str) -> int:
    """Turn ``"exact"``, ``"default"`` or a positive int into an int rank."""
    check_lmax(lmax)
    check_parity(parity)
    if rank == "exact":
        try:
            return EXACT_RANKS[parity][lmax]
        except KeyError:
            known = sorted(EXACT_RANKS[parity])
            raise ValueError(
                f"exact CP rank for lmax={lmax}, parity={parity} is not known (known for lmax in {known}); pass an int rank"
            ) from None
    if rank == "default":
        return default_rank(lmax, parity)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be 'exact', 'default' or a positive int, got {rank!r}")
    return rank
