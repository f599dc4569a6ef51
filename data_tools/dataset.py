"""Map-style dataset over one or many sciml HDF5 shards, yielding ``torch_geometric.data.Data`` items (fields in
:mod:`data_tools.items`).

File handles are opened lazily per process (keyed on ``os.getpid()``) and dropped when pickled, so the dataset works
with DataLoader workers (fork or spawn).
"""

from __future__ import annotations

import bisect
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from data_tools.items import block_item, item_block
from data_tools.paths import PathsLike, resolve_paths
from data_tools.reader import ShardReader
from sciml.errors import DataError


class AtomsDataset(torch.utils.data.Dataset):
    """Frames of ``paths`` (see :func:`resolve_paths`) in shard order, optionally restricted to ``indices``
    (global frame numbers over the concatenated shards).

    When all per-frame arrays (energy, cell, ...; ~110 bytes/frame) fit in ``frame_cache_mb`` they are loaded into
    RAM once (shared with forked workers), so a frame costs only its per-atom reads; larger data sets read them
    on demand. ``dataset[i]`` reads just frame i; ``__getitems__`` (what a DataLoader with a batch sampler calls)
    reads aligned blocks of ``block_frames`` frames into a per-process LRU cache of ``cache_blocks`` blocks, which
    matches the block-shuffling sampler (use the same ``block_frames`` for both).

    Every chunk is checked against its stored checksum the first time a process reads it (``verify``; a mismatch
    raises :class:`~sciml.errors.DataError` naming file, array and frames).

    Attributes held in RAM: ``natoms`` and ``groups`` (int64 [len]), ``shard_paths``, ``energy_convention``,
    ``element_reference_energies`` ({Z: eV}), ``elements``.
    """

    def __init__(self, paths: PathsLike, indices: Sequence[int] | np.ndarray | None = None,
                 block_frames: int = 256, frame_cache_mb: float = 64.0, cache_blocks: int = 64, verify: bool = True):
        self.shard_paths, file_indices = resolve_paths(paths)
        if indices is None:
            indices = file_indices
        elif file_indices is not None:
            indices = file_indices[np.asarray(indices, dtype=np.int64)]
        natoms, groups, counts, conventions, refs, elements = [], [], [], set(), None, set()
        sizes = []
        for path in self.shard_paths:
            with ShardReader(path) as r:
                sizes.append(r.frame_bytes)
        cache = sum(sizes) <= frame_cache_mb * 2**20
        self._columns: list[dict[str, np.ndarray] | None] = []
        layout = None
        for path in self.shard_paths:
            with ShardReader(path) as r:
                if layout is None:
                    layout = set(r.arrays)
                elif layout != set(r.arrays):
                    diff = {p.removeprefix("atoms/").removeprefix("frames/") for p in layout ^ set(r.arrays)}
                    raise DataError(f"{path}: arrays {sorted(diff)} differ from {self.shard_paths[0]} "
                                    "(all shards of a data set must store the same arrays)")
                self._columns.append(r.frame_columns() if cache else None)
                natoms.append(r.natoms)
                groups.append(r.column("group").astype(np.int64))
                counts.append(r.n_frames)
                conventions.add(r.energy_convention)
                elements.update(r.elements)
                shard_refs = r.element_reference_energies
                if refs is not None and shard_refs and refs and shard_refs != refs:
                    raise DataError(f"{path}: element reference energies differ from {self.shard_paths[0]}")
                refs = refs or shard_refs
        if len(conventions) > 1:
            raise DataError(f"shards mix energy conventions {sorted(conventions)}: {self.shard_paths}")
        self.energy_convention = conventions.pop()
        self.element_reference_energies: dict[int, float] = refs or {}
        self.elements = sorted(elements)
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._start_list = self._starts.tolist()
        total = int(self._starts[-1])
        if indices is None:
            self.indices = np.arange(total, dtype=np.int64)
        else:
            self.indices = np.asarray(indices, dtype=np.int64)
            if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= total):
                raise DataError(f"frame indices outside 0..{total - 1} for shards {self.shard_paths}")
        all_natoms, all_groups = np.concatenate(natoms), np.concatenate(groups)
        self.natoms = all_natoms[self.indices]
        self.groups = all_groups[self.indices]
        self.block_frames, self.cache_blocks = int(block_frames), int(cache_blocks)
        self.verify = verify  # chunk checksums verified on first read (see ShardReader)
        self._readers: dict[int, ShardReader] = {}
        self._cache: OrderedDict[tuple[int, int], dict[str, Any]] = OrderedDict()
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_readers"], state["_cache"] = {}, OrderedDict()
        return state

    def _reader(self, shard: int) -> ShardReader:
        if self._pid != os.getpid():  # forked worker: never reuse the parent's HDF5 handles
            self._readers, self._cache, self._pid = {}, OrderedDict(), os.getpid()
        reader = self._readers.get(shard)
        if reader is None:
            reader = self._readers[shard] = ShardReader(self.shard_paths[shard], verify=self.verify)
        return reader

    def locate(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard number, frame within shard) of dataset positions ``idx``."""
        g = self.indices[idx]
        shard = np.searchsorted(self._starts, g, side="right") - 1
        return shard, g - self._starts[shard]

    def __getitem__(self, idx: int) -> Data:
        """One frame, read with the fewest bytes (one slice per array, no block cache): the random-access path."""
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} out of range for a dataset of {n} frames")
        g = int(self.indices[idx])
        s = bisect.bisect_right(self._start_list, g) - 1
        lo = g - self._start_list[s]
        return block_item(item_block(self._reader(s).read_range(lo, lo + 1, self._columns[s])), 0, copy=False)

    def __getitems__(self, idx: Sequence[int]) -> list[Data]:
        """Frames at positions ``idx`` (any order; used by DataLoader for a whole batch). Reads go through an LRU
        cache of aligned ``block_frames`` blocks per process, so block-shuffled batches read each block once."""
        shard, local = self.locate(np.asarray(idx, dtype=np.int64))
        bf = self.block_frames
        return [block_item(self._block(int(s), int(j) // bf), int(j) % bf, copy=True) for s, j in zip(shard, local)]

    def _block(self, shard: int, number: int) -> dict[str, Any]:
        reader = self._reader(shard)  # also resets the cache in a new process
        key = (shard, number)
        block = self._cache.get(key)
        if block is None:
            lo = number * self.block_frames
            hi = min(lo + self.block_frames, reader.n_frames)
            block = self._cache[key] = item_block(reader.read_range(lo, hi, self._columns[shard]))
            if len(self._cache) > self.cache_blocks:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return block

    def read_block(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Raw numpy arrays of dataset positions ``start:stop`` when they are consecutive frames of one shard
        (the fast path: one slice per array); see :meth:`ShardReader.read_range` for the keys."""
        shard, local = self.locate(np.arange(start, stop))
        if (shard != shard[0]).any() or (np.diff(local) != 1).any():
            raise ValueError(f"positions {start}:{stop} are not consecutive frames of one shard")
        s = int(shard[0])
        return self._reader(s).read_range(int(local[0]), int(local[-1]) + 1, self._columns[s])
