"""The direct-sum Clebsch-Gordan tensor M of the tensor product of two degree-<=L feature vectors.

Component order is e3nn's: ``[l=0 | l=1 (3) | l=2 (5) | ...]``, d = (L+1)^2 components in total, and
``M[i, j, k]`` maps input-1 component i (features x) and input-2 component j (spherical harmonics y)
to output component k. Each admissible path (l1, l2 -> l3) contributes its block ``e3nn.o3.wigner_3j(l1, l2, l3)``
(unit Frobenius norm); degrees above L are dropped.

Parity modes:

* ``"so3"``: every path with |l1-l2| <= l3 <= l1+l2 (the TDN paper; all irreps tagged even, SO(3)-equivariant only).
* ``"o3"``: features, spherical harmonics and outputs all carry natural parity (-1)^l (``1x0e+1x1o+1x2e+...``),
  so only paths with l1+l2+l3 even are kept. The product is then O(3)-equivariant; l=0 outputs are true scalars
  and an energy built from them is the same for a structure and its mirror image.
"""

from __future__ import annotations

from functools import lru_cache

import torch

PARITIES = ("so3", "o3")

Path = tuple[int, int, int]


def check_parity(parity: str) -> str:
    """Return ``parity`` if it is ``"so3"`` or ``"o3"``, else raise ValueError."""
    if parity not in PARITIES:
        raise ValueError(f"parity must be one of {PARITIES}, got {parity!r}")
    return parity


def check_lmax(lmax: int) -> int:
    """Return ``lmax`` if it is an int >= 0, else raise ValueError."""
    if isinstance(lmax, bool) or not isinstance(lmax, int) or lmax < 0:
        raise ValueError(f"lmax must be an integer >= 0, got {lmax!r}")
    return lmax


def num_components(lmax: int) -> int:
    """d = (lmax+1)^2, the number of components of a degree-<=lmax feature vector."""
    return (check_lmax(lmax) + 1) ** 2


def degree_slice(l: int) -> slice:
    """Components of degree ``l`` in e3nn order: ``l^2 .. (l+1)^2 - 1``."""
    return slice(l * l, (l + 1) * (l + 1))


def paths(lmax: int, parity: str = "so3") -> list[Path]:
    """Admissible paths (l1, l2, l3), all degrees <= lmax, sorted lexicographically.

    This order is the path axis P of per-path weights ``w[E, P, C]`` everywhere in :mod:`sciml.tdn`.
    """
    check_lmax(lmax)
    check_parity(parity)
    out = []
    for l1 in range(lmax + 1):
        for l2 in range(lmax + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, lmax) + 1):
                if parity == "o3" and (l1 + l2 + l3) % 2:
                    continue
                out.append((l1, l2, l3))
    return out


@lru_cache(maxsize=32)
def _cg_tensor(lmax: int, parity: str) -> torch.Tensor:
    d = num_components(lmax)
    m = torch.zeros(d, d, d, dtype=torch.float64)
    from e3nn import o3

    for l1, l2, l3 in paths(lmax, parity):
        m[degree_slice(l1), degree_slice(l2), degree_slice(l3)] = o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
    return m


def cg_tensor(lmax: int, parity: str = "so3", dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Direct-sum CG tensor M, shape [d, d, d] (x component, y component, output component), d = (lmax+1)^2.

    ||M||_F^2 equals the number of paths (every block has unit Frobenius norm).
    """
    return _cg_tensor(check_lmax(lmax), check_parity(parity)).to(dtype=dtype, copy=True)


def path_blocks(lmax: int, parity: str = "so3", dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Per-path CG tensors stacked: shape [P, d, d, d]; block p is M restricted to path p (zeros elsewhere)."""
    d = num_components(lmax)
    ps = paths(lmax, parity)
    m = cg_tensor(lmax, parity, dtype)
    out = torch.zeros(len(ps), d, d, d, dtype=dtype)
    for p, (l1, l2, l3) in enumerate(ps):
        s1, s2, s3 = degree_slice(l1), degree_slice(l2), degree_slice(l3)
        out[p, s1, s2, s3] = m[s1, s2, s3]
    return out


def irreps_string(lmax: int, channels: int, parity: str = "so3") -> str:
    """e3nn irreps string of a [N, d, channels] feature: ``"Cx0e+Cx1e+..."`` (so3) or ``"Cx0e+Cx1o+Cx2e+..."`` (o3)."""
    check_parity(parity)
    parts = []
    for l in range(check_lmax(lmax) + 1):
        p = "o" if (parity == "o3" and l % 2) else "e"
        parts.append(f"{channels}x{l}{p}")
    return "+".join(parts)
