"""Tensor decomposition networks core: CG tensor, CP factors, CP tensor product, shared linear layer, layouts.

Dense layout everywhere: features [N, (L+1)^2, C] (all degrees share C channels, e3nn component order),
spherical harmonics [E, (L+1)^2]. See docs/tdn.md.
"""

from sciml.tdn.cg import cg_tensor, irreps_string, num_components, paths
from sciml.tdn.cp_tp import CPTensorProduct
from sciml.tdn.factors import EXACT_RANKS, CPFactors, default_rank, resolve_rank
from sciml.tdn.layout import from_e3nn, to_e3nn
from sciml.tdn.linear import SharedLinear
from sciml.tdn.reference import E3nnTensorProduct, ExactTensorProduct

__all__ = [
    "CPFactors",
    "CPTensorProduct",
    "E3nnTensorProduct",
    "EXACT_RANKS",
    "ExactTensorProduct",
    "SharedLinear",
    "cg_tensor",
    "default_rank",
    "from_e3nn",
    "irreps_string",
    "num_components",
    "paths",
    "resolve_rank",
    "to_e3nn",
]
