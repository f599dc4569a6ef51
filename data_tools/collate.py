"""The one collate for atomistic batches (training, evaluation, the ASE calculators and the data benchmark).

Items are ``Data`` objects with ``natoms`` (dataset items, :func:`~data_tools.items.atoms_to_item`, plus whatever a
model's featuriser adds, e.g. ``edge_index``/``edge_shift``). The result is the ``torch_geometric`` Batch that
``Batch.from_data_list`` builds (same tensors, ``batch``, ``ptr``, ``_slice_dict``, ``_inc_dict``), several times
faster: keys containing ``index`` ([2, K] atom indices within the frame: ``edge_index``, ``pair_index``) are
concatenated along their last dimension and shifted by the atom offset of their frame; every other tensor is
concatenated along its first dimension (per atom, per frame, per edge or per pair alike).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from data_tools.items import _ATOM_MAP, _FRAME_MAP

#: fields whose rows are known without looking at each item: one per atom, one per frame
_ATOM_FIELDS = frozenset(f for f, _ in _ATOM_MAP.values())
_FRAME_FIELDS = frozenset(f for f, _ in _FRAME_MAP.values())


def collate_atoms(items: list[Data]) -> Batch:
    """Collate items into one Batch (``batch`` maps atoms to frames, ``ptr`` holds the atom offsets). In a DataLoader
    worker all tensors of the batch share one shared-memory segment, so a batch crosses to the main process in one
    piece."""
    if not items:
        raise ValueError("collate_atoms: no items")
    maps = [d._store._mapping for d in items]
    keys = list(maps[0])
    if any(type(d) is not Data for d in items) or "natoms" not in keys or any(m.keys() != maps[0].keys()
                                                                            for m in maps):
        raise ValueError("collate_atoms needs torch_geometric Data items that all carry the same fields, natoms "
                         f"among them; got fields {sorted(keys)} in the first item")
    n = len(items)
    index_keys = [k for k in keys if "index" in k]
    cat_dim = {k: maps[0][k].dim() - 1 if k in index_keys else 0 for k in keys}
    # offsets of every field's rows per item [n + 1]; the known per-atom / per-frame fields share ptr / arange
    natoms = np.fromiter((int(m["natoms"]) for m in maps), np.int64, n)
    offsets = {"ptr": np.concatenate([[0], np.cumsum(natoms)]), " frames": np.arange(n + 1)}
    slice_of: dict[str, str] = {}
    for k in keys:
        if k in _ATOM_FIELDS:
            slice_of[k] = "ptr"
        elif k in _FRAME_FIELDS:
            slice_of[k] = " frames"
        else:
            slice_of[k] = f" rows {k}"
            sizes = np.fromiter((m[k].shape[cat_dim[k]] for m in maps), np.int64, n)
            offsets[slice_of[k]] = np.concatenate([[0], np.cumsum(sizes)])
    specs: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
    for k in keys:
        shape = list(maps[0][k].shape)
        shape[cat_dim[k]] = int(offsets[slice_of[k]][-1])
        specs[k] = (maps[0][k].dtype, tuple(shape))
    specs.update({name: (torch.long, (n + 1,)) for name in offsets})
    specs.update({"batch": (torch.long, (int(offsets["ptr"][-1]),)), " zeros": (torch.long, (n,))})
    t = _empty_tensors(specs)  # one shared-memory segment in a worker: the slice tensors live there too
    for name, values in offsets.items():
        t[name].numpy()[:] = values
    for k in keys:
        torch.cat([m[k] for m in maps], dim=cat_dim[k], out=t[k])
    starts = t["ptr"][:-1]
    for k in index_keys:  # atom indices within a frame -> within the batch
        t[k] += torch.from_numpy(np.repeat(offsets["ptr"][:-1], np.diff(offsets[slice_of[k]])))
    t["batch"].numpy()[:] = np.repeat(np.arange(n), natoms)  # torch.repeat_interleave: ~10x slower
    t[" zeros"].zero_()
    out = Batch(_base_cls=Data)
    out._store._mapping.update({k: t[k] for k in [*keys, "batch", "ptr"]})
    out._num_graphs = n
    out._slice_dict = {k: t[slice_of[k]] for k in keys}
    out._inc_dict = {k: (starts if k in index_keys else t[" zeros"]) for k in keys}
    return out


def _empty_tensors(specs: dict[str, tuple[torch.dtype, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    """Uninitialised tensors {name: (dtype, shape)}; inside a DataLoader worker all are views of one shared-memory
    segment (8-byte aligned), so the batch is sent to the main process as one segment instead of one per tensor."""
    if torch.utils.data.get_worker_info() is None:
        return {k: torch.empty(shape, dtype=dt) for k, (dt, shape) in specs.items()}
    starts, total = {}, 0
    for k, (dt, shape) in specs.items():
        starts[k] = total
        total += -(-math.prod(shape) * dt.itemsize // 8) * 8
    base = torch.empty(0, dtype=torch.uint8)
    base.set_(torch.UntypedStorage._new_shared(max(total, 8)), 0, (max(total, 8),), (1,))
    return {k: base[starts[k]:starts[k] + math.prod(shape) * dt.itemsize].view(dt).view(shape)
            for k, (dt, shape) in specs.items()}
