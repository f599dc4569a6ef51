"""Data tools: the atomistic HDF5 format, converters, streaming dataset, sampler and collate; the WRF reader and
column datasets (``data_tools.wrf``).

Atomistic API (docs/data_format.md): ``AtomsDataset``, ``BlockShuffleBatchSampler``, ``collate_atoms``,
``atoms_to_item`` (imported lazily so ``data_tools.wrf`` does not pull in torch_geometric).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"AtomsDataset": "data_tools.dataset", "collate_atoms": "data_tools.collate",
         "atoms_to_item": "data_tools.items", "BlockShuffleBatchSampler": "data_tools.sampler"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'data_tools' has no attribute {name!r}")
