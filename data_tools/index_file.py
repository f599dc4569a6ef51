"""Split index files ``<name>.idx.npz``: a subset of frames of a set of shards, without copying data.

An index file holds the shard paths (relative to the index file), each shard's frame count and natoms checksum (so
a changed shard is detected when the index is loaded) and the sorted global frame indices of the subset.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_tools.reader import ShardReader
from sciml.errors import DataError
from sciml.utils.atomic import atomic_path

SUFFIX = ".idx.npz"


def shard_fingerprint(reader: ShardReader) -> int:
    """CRC-32 of the shard's natoms array, as stored by the writer."""
    return int(reader.h5["frames/natoms"].attrs.get("crc32", 0))


def write_index(target: str | os.PathLike, shard_paths: Sequence[Path], counts: Sequence[int],
                fingerprints: Sequence[int], indices: np.ndarray, **meta: Any) -> Path:
    """Write an index file atomically; ``meta`` (numbers, strings, arrays) is stored beside the indices."""
    target = Path(target)
    rel = np.array([os.path.relpath(Path(p).resolve(), target.parent.resolve()) for p in shard_paths])
    with atomic_path(target, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, shards=rel, shard_n_frames=np.array(counts, np.int64),
                 shard_natoms_crc32=np.array(fingerprints, np.int64), indices=np.asarray(indices, np.int64),
                 **{k: np.asarray(v) for k, v in meta.items()})
    return target


def load_index(path: str | os.PathLike) -> tuple[list[Path], np.ndarray]:
    """(shard paths, global frame indices) of an index file; checks the shards are the ones it was made from."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            rel, n_frames, prints, indices = z["shards"], z["shard_n_frames"], z["shard_natoms_crc32"], z["indices"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a readable split index file: {exc}") from None
    shards = [(path.parent / str(r)).resolve() for r in rel]
    for shard, n, fp in zip(shards, n_frames, prints):
        with ShardReader(shard) as r:
            if r.n_frames != int(n) or shard_fingerprint(r) != int(fp):
                raise DataError(f"{path}: shard {shard} changed since the split was made "
                                f"({r.n_frames} frames now, {int(n)} then); split again")
    return shards, indices.astype(np.int64)
