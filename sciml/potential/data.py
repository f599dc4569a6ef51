"""Potential training data: files -> HDF5 shards (extxyz converted once, cached), train/validation splits, and the
collate that attaches neighbour lists."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from sciml.errors import ConfigError, DataError

HDF5_SUFFIXES = (".h5", ".hdf5")
NEIGHBOR_BACKENDS = ("auto", "vesin", "torch")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder for converted files: ``cache_dir``, else ``$SCIML_CACHE_DIR/h5``, else ``~/.cache/sciml/h5``."""
    if cache_dir:
        return Path(cache_dir)
    root = os.environ.get("SCIML_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "sciml") / "h5"


def is_hdf5_like(path: str) -> bool:
    """Whether ``path`` names the HDF5 dataset format (shard file, directory, ``.idx.npz`` subset or glob)."""
    p = Path(path)
    return p.suffix in HDF5_SUFFIXES or p.is_dir() or str(path).endswith(".idx.npz") or any(c in str(path) for c in "*?[")


def as_hdf5(paths: str | os.PathLike | Sequence[str | os.PathLike], cache_dir: str | os.PathLike | None = None,
            ) -> list[str]:
    """HDF5 shards for ``paths``: HDF5 files/folders/globs pass through; any ASE-readable file (extxyz, ...) is
    converted once with the ``sciml data convert`` machinery into the cache (keyed on path, size and mtime)."""
    from data_tools.convert import ConvertOptions, convert

    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out = []
    for item in items:
        item = str(item)
        if is_hdf5_like(item):
            out.append(item)
            continue
        src = Path(item)
        if not src.is_file():
            raise DataError(f"{src}: no such data file")
        stat = src.stat()
        key = hashlib.sha1(f"{src.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        target = cache_root(cache_dir) / f"{src.name}-{key}.h5"
        if not target.is_file():
            convert([src], target, ConvertOptions(progress=False))
        out.append(str(target))
    return out


def split_indices(n_frames: int, groups: np.ndarray, n_train: int, n_val: int, seed: int,
                  by: str = "frame") -> tuple[np.ndarray, np.ndarray]:
    """Random (seeded) disjoint train / validation frame indices.

    ``by="frame"``: ``n_val`` random frames for validation, then ``n_train`` (0 = all the rest) for training.
    ``by="group"``: whole groups (e.g. trajectories) go to one side; ``n_val`` / ``n_train`` count groups.
    """
    rng = np.random.default_rng(seed)
    if by == "frame":
        units, members = np.arange(n_frames), None
    elif by == "group":
        units, members = np.unique(groups), groups
    else:
        raise ConfigError(f"data.split_by must be 'frame' or 'group', got {by!r}")
    if n_val >= len(units) or n_val < 0 or n_train < 0:
        raise ConfigError(f"cannot take n_val={n_val} validation {by}s out of {len(units)}")
    order = units[rng.permutation(len(units))]
    val, rest = order[:n_val], order[n_val:]
    train = rest[:n_train] if n_train else rest
    if n_train > len(rest):
        raise ConfigError(f"data.n_train={n_train} but only {len(rest)} {by}s are left after validation")
    if members is None:
        return np.sort(train), np.sort(val)
    return np.flatnonzero(np.isin(members, train)), np.flatnonzero(np.isin(members, val))


def resolve_neighbor_backend(backend: str) -> str:
    """``auto`` -> ``vesin`` where installed (CPU neighbour lists in the loader), else ``torch`` (in the model)."""
    from models.potential.neighbors import have_vesin

    if backend not in NEIGHBOR_BACKENDS:
        raise ConfigError(f"data.neighbors must be one of {NEIGHBOR_BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "vesin" if have_vesin() else "torch"
    if backend == "vesin" and not have_vesin():
        raise ConfigError("data.neighbors='vesin' but the vesin package is not installed (use 'torch' or 'auto')")
    return backend


def with_neighbors(item: Data, cutoff: float) -> Data:
    """A shallow copy of ``item`` with ``edge_index`` [2, E] and ``edge_shift`` [E, 3] from vesin (CPU)."""
    from models.potential.neighbors import radius_graph_vesin

    edge_index, shifts = radius_graph_vesin(item.pos.double().numpy(), item.cell.reshape(3, 3).double().numpy(),
                                            item.pbc.reshape(3).numpy(), cutoff)
    out = item.clone()
    out.edge_index = torch.from_numpy(edge_index)
    out.edge_shift = torch.from_numpy(shifts).to(item.pos.dtype)
    return out


class GraphCollate:
    """Picklable collate: items -> ``Batch``; with the ``vesin`` backend each item gets its neighbour list here (in
    the DataLoader workers), with ``torch`` the model builds it on the device."""

    def __init__(self, cutoff: float, backend: str):
        self.cutoff, self.backend = float(cutoff), backend

    def __call__(self, items: list[Data]) -> Batch:
        if self.backend == "vesin":
            items = [with_neighbors(item, self.cutoff) for item in items]
        return Batch.from_data_list(items)
