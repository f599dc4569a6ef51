"""Output paths checked before any work starts: never an input, never a file the command did not write itself (unless
``--overwrite``), a writable directory to write into. Every refusal is a :class:`~sciml.errors.SciMLError` naming the
path."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import h5py

from sciml.errors import SciMLError


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file (links and relative paths resolved; False if either is missing)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def hdf5_attr(path: str | os.PathLike, name: str) -> str | None:
    """The root attribute ``name`` of an HDF5 (or netCDF-4) file as text, or None (not HDF5, unreadable, absent)."""
    try:
        with h5py.File(path, "r") as h5:
            value = h5.attrs.get(name)
    except (OSError, ValueError):
        return None
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def writable_directory(directory: Path) -> None:
    """Create ``directory`` if needed and check that a file can be written in it."""
    for parent in (directory, *directory.parents):
        if parent.exists():
            if not parent.is_dir():
                raise SciMLError(f"cannot write into {directory}: {parent} is a file, not a directory")
            break
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".sciml-write-test-"):
            pass
    except OSError as exc:
        reason = "read-only file system" if exc.errno == errno.EROFS else (exc.strerror or str(exc))
        raise SciMLError(f"cannot write into {directory}: {reason}") from None


def check_outputs(outputs: Iterable[Path], inputs: Iterable[str | os.PathLike], *, overwrite: bool,
                  ours: Callable[[Path], bool], command: str) -> None:
    """Refuse, before any work: an output that is an input (even with ``overwrite``), an output that is a directory,
    an existing output that ``ours`` does not recognise as written by ``command`` (unless ``overwrite``), and an
    output directory that cannot be written."""
    outputs = [Path(p) for p in outputs]
    inputs = [Path(p) for p in inputs]
    for out in outputs:
        for src in inputs:
            if same_file(out, src):
                raise SciMLError(f"refusing to write {out}: it is an input of this command; choose another output")
        if out.is_dir():
            raise SciMLError(f"output {out} is a directory; give a file name")
        if out.exists() and not overwrite and not ours(out):
            raise SciMLError(f"output {out} exists and was not written by {command}; pass --overwrite to replace it")
    for directory in {out.parent for out in outputs}:
        writable_directory(directory)
