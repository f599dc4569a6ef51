"""Dataset items: the one place where stored arrays become ``torch_geometric.data.Data`` model inputs.

Training reads shards (:meth:`ShardReader.read_range` blocks), inference starts from ``ase.Atoms``; both go through
:func:`item_block` and :func:`block_item`, so a structure gives the same fields either way:

``z`` long[n]; ``pos`` [n,3] (Angstrom); ``forces`` [n,3] (eV/Angstrom, when known); ``energy`` float64[1] (eV, when
known); ``cell`` [1,3,3] (Angstrom); ``pbc`` bool[1,3]; ``fixed`` bool[n]; ``tags`` long[n]; ``natoms``, ``group``,
``frame_id`` long[1]; where present ``ref_energy`` float64[1] (eV), ``stress`` [1,6] (eV/Angstrom^3, Voigt),
``charge``/``spin``/``stage`` long[1], and the extras of a schema-2 file as ``atom_<name>`` [n, ...],
``frame_<name>`` [1, ...], ``pair_index`` long[2, P] (atoms within the frame), ``pair_<name>`` [P, ...] and
``values_<name>`` [any length].
Floating point fields (``pos``, ``forces``, ``cell``, ``stress``) are float32 from shards (as stored) and float64
from ``Atoms``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from data_tools.format import ITEM_PREFIX, block_key

#: block key -> (item field, dtype); floating fields take the float dtype of the block
_ATOM_MAP = {"numbers": ("z", np.int64), "positions": ("pos", None), "forces": ("forces", None),
             "fixed": ("fixed", np.bool_), "tags": ("tags", np.int64)}
_FRAME_MAP = {"energy": ("energy", np.float64), "cell": ("cell", None), "pbc": ("pbc", np.bool_),
              "natoms": ("natoms", np.int64), "ref_energy": ("ref_energy", np.float64), "stress": ("stress", None),
              **{k: (k, np.int64) for k in ("group", "frame_id", "charge", "spin", "stage")}}
_ATOM_PREFIX, _FRAME_PREFIX, _PAIR_PREFIX, _VALUES_PREFIX = (ITEM_PREFIX[k] for k in ("atoms", "frames", "pairs",
                                                                                      "values"))
_PAIR_INDEX = _PAIR_PREFIX + "index"


def item_block(block: dict[str, np.ndarray], float_dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Cast a :meth:`~data_tools.reader.ShardReader.read_range` block to item dtypes once: {"atoms": {field: array},
    "frames": {...}, "pairs": {...}, "offsets": atom offsets, "pair_offsets": pair offsets or None} (numpy casts small
    arrays ~3x faster than torch). Extras keep their stored dtype; ``pair_index`` becomes int64."""
    fdt = np.float32 if float_dtype == torch.float32 else np.float64

    def conv(arr: np.ndarray, dtype: Any) -> np.ndarray:
        return arr.astype(dtype or fdt, copy=False)

    out: dict[str, Any] = {
        "atoms": {f: conv(block[k], dt) for k, (f, dt) in _ATOM_MAP.items() if k in block},
        "frames": {f: conv(block[k], dt) for k, (f, dt) in _FRAME_MAP.items() if k in block},
        "pairs": {}, "offsets": block["offsets"].tolist(), "pair_offsets": None, "values": {}}
    if len(block) > len(out["atoms"]) + len(out["frames"]) + 1:  # extras (and their offsets) present
        for key, arr in block.items():
            if key.startswith(_ATOM_PREFIX):
                out["atoms"][key] = arr
            elif key.startswith(_FRAME_PREFIX) and key not in _FRAME_MAP:
                out["frames"][key] = arr
            elif key.startswith(_PAIR_PREFIX) and key != "pair_offsets":
                out["pairs"][key] = arr.astype(np.int64) if key == _PAIR_INDEX else arr
            elif key.startswith(_VALUES_PREFIX):
                out["values"][key] = (arr, block["offsets_" + key[len(_VALUES_PREFIX):]].tolist())
        if "pair_offsets" in block:
            out["pair_offsets"] = block["pair_offsets"].tolist()
    return out


def block_item(block: dict[str, Any], k: int, copy: bool) -> Data:
    """Frame ``k`` of an :func:`item_block` as Data; ``copy`` so that items never alias a cached block."""
    a, b = block["offsets"][k], block["offsets"][k + 1]
    t = torch.from_numpy
    if copy:
        fields = {f: t(x[a:b].copy()) for f, x in block["atoms"].items()}
        fields.update({f: t(x[k:k + 1].copy()) for f, x in block["frames"].items()})
    else:
        fields = {f: t(x[a:b]) for f, x in block["atoms"].items()}
        fields.update({f: t(x[k:k + 1]) for f, x in block["frames"].items()})
    if block["pairs"]:
        p, q = block["pair_offsets"][k], block["pair_offsets"][k + 1]
        for f, x in block["pairs"].items():
            fields[f] = t(np.ascontiguousarray(x[p:q].T)) if f == _PAIR_INDEX else t(x[p:q].copy() if copy else x[p:q])
    for f, (x, offsets) in block["values"].items():
        fields[f] = t(x[offsets[k]:offsets[k + 1]].copy() if copy else x[offsets[k]:offsets[k + 1]])
    data = Data()
    data._store._mapping.update(fields)  # same result as Data(**fields), ~10x faster (no per-key __setattr__)
    return data


def atoms_to_item(atoms: Any) -> Data:
    """One ``ase.Atoms`` as a dataset item in float64, exactly as :func:`sciml data convert <data_tools.convert>`
    would store it (FixAtoms -> ``fixed``, tags, ``info["charge"]``/``["spin"]``) but without rounding positions to
    float32; reference ``energy``/``forces``/``stress`` are included when the atoms carry them (a single-point
    calculator or ``info``/``arrays``)."""
    from data_tools.sources.ase_files import atoms_to_frame
    from data_tools.writer import frame_arrays

    arrays = frame_arrays(atoms_to_frame(atoms, group=0, frame_id=0), storage=False)
    block = {block_key(path): arr for path, arr in arrays.items()}
    block["offsets"] = np.array([0, len(atoms)])
    return block_item(item_block(block, torch.float64), 0, copy=False)
