"""Conversions between the dense TDN layout [N, d, C] and e3nn's irreps layout [N, C*d] ("Cx0e+Cx1o+...", mul-major).

In e3nn's layout the block of degree l holds C copies of the 2l+1 components, channel-major:
``flat[n, C*l^2 + c*(2l+1) + m] == dense[n, l^2 + m, c]``.
"""

from __future__ import annotations

import torch

from sciml.tdn.cg import degree_slice


def _lmax_of(d: int) -> int:
    lmax = round(d ** 0.5) - 1
    if (lmax + 1) ** 2 != d:
        raise ValueError(f"component axis has {d} entries, not (lmax+1)^2 for any lmax")
    return lmax


def to_e3nn(x: torch.Tensor) -> torch.Tensor:
    """[N, (L+1)^2, C] -> [N, C*(L+1)^2] in e3nn irreps order (see ``cg.irreps_string``)."""
    if x.dim() != 3:
        raise ValueError(f"expected [N, d, C], got shape {tuple(x.shape)}")
    n, d, _ = x.shape
    blocks = [x[:, degree_slice(l), :].transpose(1, 2).reshape(n, -1) for l in range(_lmax_of(d) + 1)]
    return torch.cat(blocks, dim=1)


def from_e3nn(x: torch.Tensor, channels: int) -> torch.Tensor:
    """[N, C*(L+1)^2] (e3nn irreps order, every degree with multiplicity ``channels``) -> [N, (L+1)^2, C]."""
    if x.dim() != 2 or x.shape[1] % channels:
        raise ValueError(f"expected [N, {channels}*d], got shape {tuple(x.shape)}")
    n = x.shape[0]
    lmax = _lmax_of(x.shape[1] // channels)
    blocks = []
    start = 0
    for l in range(lmax + 1):
        size = channels * (2 * l + 1)
        blocks.append(x[:, start:start + size].reshape(n, channels, 2 * l + 1).transpose(1, 2))
        start += size
    return torch.cat(blocks, dim=1)
