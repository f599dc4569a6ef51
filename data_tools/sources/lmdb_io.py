"""Read-only LMDB access shared by the OC20 and PubChemQCR sources (single-file ``subdir=False`` or directory)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sciml.errors import DataError


def open_env(path: Path) -> Any:
    """Open an LMDB file or directory read-only, without locking (safe for concurrent readers)."""
    import lmdb

    try:
        return lmdb.open(str(path), subdir=path.is_dir(), readonly=True, lock=False, readahead=False,
                         meminit=False, max_readers=1)
    except lmdb.Error as exc:
        raise DataError(f"{path}: cannot open as LMDB: {exc}") from None


def first_value(path: Path) -> bytes:
    """The value stored under the first key (used to detect the format)."""
    env = open_env(path)
    try:
        with env.begin() as txn:
            for key, value in txn.cursor():
                if key != b"length":
                    return bytes(value)
    finally:
        env.close()
    raise DataError(f"{path}: LMDB holds no records")


def n_entries(path: Path) -> int:
    """Number of records in the LMDB database at ``path``."""
    env = open_env(path)
    try:
        return int(env.stat()["entries"])
    finally:
        env.close()


def iter_items(path: Path, numeric_keys: bool) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs; with ``numeric_keys`` in the order b"0", b"1", ... (the OC20 index order) when the file
    has key b"0", else in LMDB (lexicographic) order. The ``length`` key of old OC20 files is skipped."""
    env = open_env(path)
    try:
        with env.begin(buffers=False) as txn:
            if numeric_keys and txn.get(b"0") is not None:
                n = env.stat()["entries"] - (txn.get(b"length") is not None)
                for i in range(n):
                    key = str(i).encode()
                    value = txn.get(key)
                    if value is None:
                        raise DataError(f"{path}: key {i} missing (keys must be 0..{n - 1})")
                    yield key, value
            else:
                for key, value in txn.cursor():
                    if key != b"length":
                        yield key, value
    finally:
        env.close()
