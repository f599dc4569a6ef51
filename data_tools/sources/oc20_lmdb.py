"""OC20/OC22 LMDB of pickled torch_geometric ``Data`` (fairchem v0-v1 ``LmdbDataset``
layout), decoded with the restricted unpickler. Fields: ``pos`` [n,3] Angstrom, ``atomic_numbers`` [n],
``cell`` [1,3,3], ``natoms``, ``tags`` [n], ``fixed`` [n], energy from ``energy`` / ``y`` / ``y_relaxed``, forces from
``forces`` / ``force`` (optional), ``sid`` -> group, ``fid`` -> frame_id (key index when absent). OC20 cells are
periodic in all three directions unless the record has ``pbc``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from data_tools.safe_pickle import loads_pyg
from data_tools.sources.lmdb_io import iter_items, n_entries
from data_tools.writer import Frame
from sciml.errors import DataError

ENERGY_KEYS = ("energy", "y", "y_relaxed")
FORCE_KEYS = ("forces", "force")


def _first(fields: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if fields.get(key) is not None:
            return fields[key]
    return None


def record_to_frame(fields: dict[str, Any], index: int) -> Frame | str:
    """Map one decoded record to a Frame (or a reason string)."""
    if fields.get("pos") is None or fields.get("atomic_numbers") is None:
        return "record has no pos / atomic_numbers"
    z = np.asarray(fields["atomic_numbers"]).reshape(-1)
    numbers = np.rint(z).astype(np.int64)
    if not np.array_equal(numbers, z):
        return "non-integer atomic numbers"
    n = len(numbers)
    if fields.get("natoms") is not None and int(np.asarray(fields["natoms"]).reshape(-1)[0]) != n:
        return f"natoms {int(np.asarray(fields['natoms']).reshape(-1)[0])} != {n} atomic numbers"
    energy = _first(fields, ENERGY_KEYS)
    forces = _first(fields, FORCE_KEYS)
    cell = fields.get("cell")
    pbc = fields.get("pbc")
    sid, fid = fields.get("sid"), fields.get("fid")
    return Frame(numbers=numbers, positions=np.asarray(fields["pos"]),
                 energy=None if energy is None else float(np.asarray(energy).reshape(-1)[0]),
                 forces=None if forces is None else np.asarray(forces),
                 cell=None if cell is None else np.asarray(cell, float).reshape(3, 3),
                 pbc=np.ones(3, bool) if pbc is None else np.asarray(pbc, bool).reshape(3),
                 fixed=None if fields.get("fixed") is None else np.asarray(fields["fixed"]).reshape(-1) != 0,
                 tags=None if fields.get("tags") is None else np.asarray(fields["tags"]).reshape(-1),
                 group=int(np.asarray(sid).reshape(-1)[0]) if sid is not None else 0,
                 frame_id=int(np.asarray(fid).reshape(-1)[0]) if fid is not None else index)


def iter_frames(path: Path, opts: Any, input_index: int) -> Iterator[tuple[int, Frame | str]]:
    """(frame number in the source, Frame) per frame of ``path``, or (number, reason) for an invalid frame."""
    for index, (key, value) in enumerate(iter_items(path, numeric_keys=True)):
        try:
            fields = loads_pyg(value)
        except DataError as exc:
            raise type(exc)(f"{path}: key {key.decode(errors='replace')}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - truncated/corrupt pickles raise many types
            yield index, f"undecodable record (key {key.decode(errors='replace')}): {type(exc).__name__}: {exc}"
            continue
        yield index, record_to_frame(fields, index)


def count(path: Path) -> int | None:
    """Frames in ``path`` when known without parsing it, else None (see the package docstring)."""
    return n_entries(path)
