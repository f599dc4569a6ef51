"""Potential training data: any ASE-readable file is converted once into cached HDF5 shards."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from data_tools.paths import is_hdf5_like
from sciml.errors import DataError


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder for converted files: ``cache_dir``, else ``$SCIML_CACHE_DIR/h5``, else ``~/.cache/sciml/h5``."""
    if cache_dir:
        return Path(cache_dir)
    root = os.environ.get("SCIML_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "sciml") / "h5"


def as_hdf5(paths: str | os.PathLike | Sequence[str | os.PathLike], cache_dir: str | os.PathLike | None = None,
            ) -> list[str]:
    """HDF5 shards for ``paths``: HDF5 files/folders/globs/split index files pass through; any ASE-readable file
    (extxyz, ...) is converted once with the ``sciml data convert`` machinery into the cache (keyed on path, size
    and mtime)."""
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
