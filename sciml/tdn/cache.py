"""Where CP factors come from: shipped files, then the on-disk cache, then a (deterministic) fit.

Shipped: ``sciml/data/tdn/cp_{parity}_L{lmax}_R{rank}.npz`` (the exact and default ranks, L = 1..6).
Disk cache: ``$SCIML_CACHE_DIR/tdn`` (default ``~/.cache/sciml/tdn``). Fits are written with write-temp-then-rename
under an exclusive lock file, so several DDP ranks starting together fit once: the first takes the lock and fits,
the others wait, then read the finished file. The arrays are deterministic, so even without working locks
(e.g. some network file systems) concurrent writers produce identical files and the rename stays safe.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from sciml.tdn.factors import FIT_VERSION, CPFactors, resolve_rank
from sciml.utils.atomic import atomic_write_bytes

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "data" / "tdn"


def file_name(lmax: int, parity: str, rank: int | str) -> str:
    """Cache/shipped file name; ``rank`` is an int or ``"per_path"``."""
    return f"cp_{parity}_L{lmax}_R{rank}.npz"


def cache_dir() -> Path:
    """``$SCIML_CACHE_DIR/tdn`` or ``~/.cache/sciml/tdn``."""
    root = os.environ.get("SCIML_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "sciml") / "tdn"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except (ImportError, OSError):  # no flock (Windows, some NFS): deterministic content keeps it safe
            pass
        yield


def _read(path: Path) -> CPFactors:
    return CPFactors.from_bytes(path.read_bytes(), source=str(path))


def load_or_fit(lmax: int, parity: str, rank: int | str, per_path: bool = False, directory: Path | None = None) -> CPFactors:
    """CP factors for (lmax, parity, rank): shipped file, else cache file, else fit and cache.

    ``per_path=True`` returns the exact per-path factorisation (``rank`` is ignored).
    """
    from sciml.tdn.fit import fit_factors, per_path_factors

    key: int | str = "per_path" if per_path else resolve_rank(lmax, parity, rank)
    name = file_name(lmax, parity, key)
    shipped = SHIPPED_DIR / name
    if shipped.is_file():
        return _read(shipped)
    folder = (directory or cache_dir()) / FIT_VERSION
    target = folder / name
    if target.is_file():
        return _read(target)
    with _locked(folder / (name + ".lock")):
        if target.is_file():  # another process fitted it while we waited
            return _read(target)
        factors = per_path_factors(lmax, parity) if per_path else fit_factors(lmax, parity, int(key))
        atomic_write_bytes(target, factors.to_bytes())
    return factors
