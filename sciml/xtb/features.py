"""Rotation-invariant orbital features from GFN1-xTB matrices, without eigenvectors.

A rotation acts on the orbitals of a shell of angular momentum l by a Wigner matrix D_l, so every shell block
X_st of an operator X (S, H0, P, F in the atomic-orbital basis) becomes D_s X_st D_t^T. Traces that close these
indices are invariant and smooth (polynomials of the matrix elements); eigenvectors of degenerate blocks (OrbNet's
SAAOs) are neither, and make forces blow up for symmetric molecules such as CH4. Features:

* per shell s, for X in (P, F, H0): tr(X_ss) / (2l+1), tr(X_ss^2), tr(X_ss^3) - 9 numbers; an atom's shells fill
  :data:`MAX_SHELLS` slots in their order (unused slots zero): 27 per atom;
* per atom pair (A, B), for the 10 pairs (X, Y) of (P, F, H0, S): tr(X_AB Y_AB^T) = sum of X * Y over the block
  (the on-site pair A = A joins the atom's features): 10 per pair and 10 more per atom.

Units: F and H0 in Hartree, S and P dimensionless; the model normalises them.
"""

from __future__ import annotations

import torch

from sciml.xtb.backend import GFN1Result, XTBError

#: shells per atom in GFN1-xTB (s, p, d, or two s shells for H and He)
MAX_SHELLS = 3
SHELL_FEATURES = 9
PAIR_FEATURES = 10
NODE_FEATURES = MAX_SHELLS * SHELL_FEATURES + PAIR_FEATURES
_ON_SITE = ("density", "fock", "hcore")
_PAIRED = ("density", "fock", "hcore", "overlap")


def orbital_features(res: GFN1Result, n_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(atom features [n, NODE_FEATURES], pair features [n, n, PAIR_FEATURES]) of one structure; differentiable in
    the positions ``res`` was computed from."""
    nao, nsh = len(res.ao_shell), len(res.shell_atom)
    dtype = res.density.dtype
    ao_shell = torch.nn.functional.one_hot(res.ao_shell, nsh).to(dtype)                    # [nao, nsh]
    ao_atom = ao_shell @ torch.nn.functional.one_hot(res.shell_atom, n_atoms).to(dtype)    # [nao, n]
    same_shell = ao_shell @ ao_shell.T
    per_shell = []
    for name in _ON_SITE:
        x = getattr(res, name)
        block = x * same_shell
        square = block @ block
        per_shell += [ao_shell.T @ torch.diagonal(x) / (2 * res.shell_l + 1).to(dtype),
                      ao_shell.T @ torch.diagonal(square), ao_shell.T @ torch.diagonal(square @ block)]
    per_shell = torch.stack(per_shell, -1)                                                 # [nsh, 9]
    first = torch.zeros(n_atoms, dtype=torch.long).scatter_reduce(
        0, res.shell_atom, torch.arange(nsh), reduce="amin", include_self=False)
    slot = torch.arange(nsh) - first[res.shell_atom]
    if int(slot.max()) >= MAX_SHELLS:
        raise XTBError(f"an atom has more than {MAX_SHELLS} shells")
    shells = per_shell.new_zeros(n_atoms, MAX_SHELLS, SHELL_FEATURES).index_put((res.shell_atom, slot), per_shell)
    pairs = []
    for i, a in enumerate(_PAIRED):
        for b in _PAIRED[i:]:
            pairs.append(ao_atom.T @ (getattr(res, a) * getattr(res, b)) @ ao_atom)
    pairs = torch.stack(pairs, -1)                                                         # [n, n, 10]
    node = torch.cat([shells.reshape(n_atoms, -1), torch.diagonal(pairs).T], -1)
    return node, pairs
