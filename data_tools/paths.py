"""What a data argument names: shard files, directories of shards, glob patterns or one split index file."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_tools.index_file import SUFFIX, load_index
from sciml.errors import DataError

PathsLike = str | os.PathLike | Sequence[str | os.PathLike]
HDF5_SUFFIXES = (".h5", ".hdf5")


def is_hdf5_like(path: str | os.PathLike) -> bool:
    """Whether ``path`` names the HDF5 dataset format (shard file, directory, ``.idx.npz`` subset or glob)."""
    p = Path(path)
    return p.suffix in HDF5_SUFFIXES or p.is_dir() or str(path).endswith(SUFFIX) or any(c in str(path) for c in "*?[")


def resolve_paths(paths: PathsLike) -> tuple[list[Path], np.ndarray | None]:
    """Expand ``paths`` (files, directories -> sorted ``*.h5``, glob patterns, or one split index ``*.idx.npz``)
    into shard paths and, for an index file, the global frame indices it selects."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if len(items) == 1 and str(items[0]).endswith(SUFFIX):
        return load_index(Path(items[0]))
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(p.glob("*.h5"))
            if not found:
                raise DataError(f"{p}: directory contains no .h5 shards")
            out.extend(found)
        elif any(ch in str(item) for ch in "*?[") and not p.exists():
            found = sorted(Path(x) for x in glob.glob(str(item)))
            if not found:
                raise DataError(f"{item}: pattern matches no files")
            out.extend(found)
        else:
            out.append(p)
    if not out:
        raise DataError("no data files given")
    return out, None
