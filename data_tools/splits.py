"""Deterministic splits by group id (no group in two splits), stored as index files ``<name>.idx.npz``.

An index file holds the shard paths (relative to the index file), each shard's frame count and natoms checksum (so
a changed shard is detected), and the sorted global frame indices of the split. ``AtomsDataset("train.idx.npz")``
reads it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_tools.dataset import resolve_paths
from data_tools.reader import ShardReader
from sciml.errors import ConfigError, DataError
from sciml.utils.atomic import atomic_path


def assign_groups(groups: np.ndarray, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Split number (0..len(fractions)-1) for every frame: the sorted unique groups are permuted with ``seed`` and
    cut at the cumulative ``fractions`` of the group count."""
    fr = np.asarray(fractions, float)
    if (fr < 0).any() or abs(fr.sum() - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be non-negative and sum to 1, got {list(fractions)}")
    unique = np.unique(groups)
    perm = np.random.default_rng(seed).permutation(len(unique))
    cuts = np.rint(np.cumsum(fr) * len(unique)).astype(np.int64)
    split_of_rank = np.searchsorted(cuts, np.arange(len(unique)), side="right")
    split_of_group = np.empty(len(unique), np.int64)
    split_of_group[perm] = split_of_rank
    return split_of_group[np.searchsorted(unique, groups)]


def _fingerprint(reader: ShardReader) -> int:
    return int(reader.h5["frames/natoms"].attrs.get("crc32", 0))


def split_by_group(paths: str | os.PathLike | Sequence[str | os.PathLike], outdir: str | os.PathLike,
                   fractions: Sequence[float], names: Sequence[str], seed: int) -> dict[str, tuple[Path, int, int]]:
    """Write ``outdir/<name>.idx.npz`` per split; returns {name: (path, frames, groups)}."""
    if len(names) != len(fractions) or len(set(names)) != len(names):
        raise ConfigError(f"need one distinct name per fraction, got names {list(names)} for {list(fractions)}")
    shard_paths, _ = resolve_paths(paths)
    groups, counts, prints = [], [], []
    for p in shard_paths:
        with ShardReader(p) as r:
            groups.append(r.column("group").astype(np.int64))
            counts.append(r.n_frames)
            prints.append(_fingerprint(r))
    all_groups = np.concatenate(groups)
    split = assign_groups(all_groups, fractions, seed)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rel = np.array([os.path.relpath(Path(p).resolve(), outdir.resolve()) for p in shard_paths])
    written = {}
    for k, name in enumerate(names):
        indices = np.flatnonzero(split == k).astype(np.int64)
        target = outdir / f"{name}.idx.npz"
        with atomic_path(target, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, shards=rel, shard_n_frames=np.array(counts, np.int64),
                     shard_natoms_crc32=np.array(prints, np.int64), indices=indices, seed=np.int64(seed),
                     fractions=np.asarray(fractions, float), names=np.array(names), split=np.int64(k))
        written[name] = (target, int(indices.size), int(np.unique(all_groups[indices]).size))
    return written


def load_index(path: Path) -> tuple[list[Path], np.ndarray]:
    """(shard paths, global frame indices) of a split index file; checks the shards are the ones it was made from."""
    try:
        with np.load(path, allow_pickle=False) as z:
            rel, n_frames, prints, indices = z["shards"], z["shard_n_frames"], z["shard_natoms_crc32"], z["indices"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a readable split index file: {exc}") from None
    shards = [(path.parent / str(r)).resolve() for r in rel]
    for shard, n, fp in zip(shards, n_frames, prints):
        with ShardReader(shard) as r:
            if r.n_frames != int(n) or _fingerprint(r) != int(fp):
                raise DataError(f"{path}: shard {shard} changed since the split was made "
                                f"({r.n_frames} frames now, {int(n)} then); split again")
    return shards, indices.astype(np.int64)
