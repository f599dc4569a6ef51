"""Streaming writer for sciml HDF5 shards: buffers frames, appends to chunked resizable arrays, checksums as it goes.

The file is written to a temporary path and only renamed to its final name by :meth:`AtomsWriter.commit`, so an
interrupted conversion never leaves a file that looks complete (the root attribute ``complete`` is also only set
then).
"""

from __future__ import annotations

import json
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_tools.format import (ATOM_CHUNK, ATOM_FIELDS, ENERGY_CONVENTIONS, FORMAT_NAME, FRAME_CHUNK, FRAME_FIELDS,
                               SCHEMA_VERSION)
from sciml.errors import DataError

MAX_Z = 118


@dataclass
class Frame:
    """One structure. Units: positions/cell Angstrom, energy eV, forces eV/Angstrom, stress eV/Angstrom^3 (Voigt xx,
    yy, zz, yz, xz, xy). Arrays: numbers [n], positions [n,3], forces [n,3] or None, fixed [n] bool, tags [n] int."""

    numbers: np.ndarray
    positions: np.ndarray
    energy: float | None
    forces: np.ndarray | None = None
    cell: np.ndarray | None = None
    pbc: np.ndarray | None = None
    fixed: np.ndarray | None = None
    tags: np.ndarray | None = None
    group: int = 0
    frame_id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # optional per-frame fields: ref_energy, stress, charge, ...


def validate_frame(frame: Frame) -> str | None:
    """Return why ``frame`` is invalid (shapes, non-finite values, unknown elements, missing energy) or None."""
    numbers = np.asarray(frame.numbers)
    n = numbers.shape[0] if numbers.ndim == 1 else -1
    if n <= 0:
        return f"atomic numbers must be a non-empty 1-D array, got shape {numbers.shape}"
    if numbers.min() < 1 or numbers.max() > MAX_Z:
        return f"unknown element: atomic number {int(numbers.min() if numbers.min() < 1 else numbers.max())}"
    pos = np.asarray(frame.positions)
    if pos.shape != (n, 3):
        return f"positions shape {pos.shape} does not match {n} atoms"
    if not np.isfinite(pos).all():
        return "non-finite (NaN/inf) positions"
    if frame.energy is None:
        return "missing energy"
    if not np.isfinite(frame.energy):
        return f"non-finite energy {frame.energy}"
    if frame.forces is not None:
        forces = np.asarray(frame.forces)
        if forces.shape != (n, 3):
            return f"forces shape {forces.shape} does not match {n} atoms"
        if not np.isfinite(forces).all():
            return "non-finite (NaN/inf) forces"
    for name in ("fixed", "tags"):
        value = getattr(frame, name)
        if value is not None and np.shape(value) != (n,):
            return f"{name} shape {np.shape(value)} does not match {n} atoms"
    if frame.cell is not None and (np.shape(frame.cell) != (3, 3) or not np.isfinite(frame.cell).all()):
        return "cell must be a finite 3x3 matrix"
    for key, value in frame.extra.items():
        if key not in FRAME_FIELDS:
            return f"unknown per-frame field {key!r}"
        if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.isfinite(value).all():
            return f"non-finite {key}"
    return None


def _crc(arr: np.ndarray, crc: int) -> int:
    return zlib.crc32(np.ascontiguousarray(arr).view(np.uint8).reshape(-1), crc)


class AtomsWriter:
    """Append :class:`Frame` objects to a new shard at ``tmp_path``; :meth:`finish` writes the metadata.

    Root attributes: ``energy_convention`` (see format.ENERGY_CONVENTIONS), ``provenance``
    (dict, stored as JSON), ``element_reference_energies`` ({atomic number: eV}, stored as JSON).
    """

    def __init__(self, tmp_path: str | os.PathLike, *, energy_convention: str = "total",
                 provenance: dict[str, Any] | None = None,
                 element_reference_energies: dict[int, float] | None = None, flush_frames: int = 4096):
        if energy_convention not in ENERGY_CONVENTIONS:
            raise ValueError(f"energy_convention must be one of {ENERGY_CONVENTIONS}")
        self.path = Path(tmp_path)
        # HDF5 1.10 file format: modern chunk indexes for appendable arrays, still readable by HDF5 >= 1.10
        self._h5 = h5py.File(self.path, "w", libver=("v110", "v110"))
        self._attrs = {"energy_convention": energy_convention, "provenance": provenance or {},
                       "element_reference_energies": {int(k): float(v) for k, v in
                                                      (element_reference_energies or {}).items()}}
        self._flush_frames = flush_frames
        self._buffered = 0  # frames in the buffers
        self._buf: dict[str, list[np.ndarray]] = {}
        self._crc: dict[str, int] = {}
        self._nonzero: dict[str, bool] = {}
        self._fields: tuple[set[str], set[str]] | None = None  # (atom fields, frame fields), fixed by frame 0
        self.n_frames = 0
        self.n_atoms = 0
        self._elements: set[int] = set()

    def _use_layout(self, layout: tuple[set[str], set[str]], message: str) -> None:
        """Create the arrays for ``layout`` on first use; later raise DataError(``message`` with the differing
        names) if a frame brings another set of arrays."""
        if self._fields is None:
            self._fields = layout
            self._create(layout)
        elif layout != self._fields:
            diff = (self._fields[0] ^ layout[0]) | (self._fields[1] ^ layout[1])
            raise DataError(message.format(sorted(diff)))

    def _layout(self, frame: Frame) -> tuple[set[str], set[str]]:
        atom = {"numbers", "positions", "fixed", "tags"} | ({"forces"} if frame.forces is not None else set())
        per_frame = {"natoms", "energy", "cell", "pbc", "group", "frame_id"} | set(frame.extra)
        return atom, per_frame

    def append(self, frame: Frame) -> None:
        """Buffer one validated frame (call :func:`validate_frame` first). Raises DataError on a layout change."""
        self._use_layout(self._layout(frame), "fields {} present in some frames but not in others "
                                              "(all frames of a shard must carry the same fields)")
        n = len(frame.numbers)
        b = self._buf
        b["numbers"].append(np.asarray(frame.numbers, dtype=np.uint8))
        b["positions"].append(np.asarray(frame.positions, dtype=np.float32))
        if frame.forces is not None:
            b["forces"].append(np.asarray(frame.forces, dtype=np.float32))
        b["fixed"].append(np.zeros(n, np.uint8) if frame.fixed is None else np.asarray(frame.fixed, dtype=np.uint8))
        b["tags"].append(np.zeros(n, np.int8) if frame.tags is None else np.asarray(frame.tags, dtype=np.int8))
        b["natoms"].append(np.array([n], np.uint32))
        b["energy"].append(np.array([frame.energy], np.float64))
        b["cell"].append(np.zeros((1, 3, 3)) if frame.cell is None else np.asarray(frame.cell, np.float64)[None])
        b["pbc"].append(np.zeros((1, 3), np.uint8) if frame.pbc is None
                        else np.asarray(frame.pbc, dtype=np.uint8).reshape(1, 3))
        b["group"].append(np.array([frame.group], np.int64))
        b["frame_id"].append(np.array([frame.frame_id], np.int64))
        for key, value in frame.extra.items():
            b[key].append(np.asarray(value, dtype=FRAME_FIELDS[key][0]).reshape((1,) + FRAME_FIELDS[key][1]))
        self._elements.update(np.unique(frame.numbers).tolist())
        self.n_frames += 1
        self.n_atoms += n
        self._buffered += 1
        if self._buffered >= self._flush_frames:
            self._flush()

    def append_arrays(self, atoms: dict[str, np.ndarray], frames: dict[str, np.ndarray]) -> None:
        """Append frames given as stored arrays (``/atoms/*`` rows and ``/frames/*`` rows, ``natoms`` included),
        e.g. a range read from another shard; used to merge shards."""
        self._use_layout((set(atoms), set(frames)), "arrays {} differ between the shards being merged")
        for name, arr in atoms.items():
            self._buf[name].append(np.asarray(arr, dtype=ATOM_FIELDS[name][0]))
        for name, arr in frames.items():
            self._buf[name].append(np.asarray(arr, dtype=FRAME_FIELDS[name][0]))
        n = len(frames["natoms"])
        self.n_frames += n
        self.n_atoms += len(atoms["numbers"])
        self._elements.update(np.unique(atoms["numbers"]).tolist())
        self._buffered += n
        if self._buffered >= self._flush_frames:
            self._flush()

    def _create(self, layout: tuple[set[str], set[str]]) -> None:
        for group, fields, spec, chunk in (("atoms", layout[0], ATOM_FIELDS, ATOM_CHUNK),
                                           ("frames", layout[1], FRAME_FIELDS, FRAME_CHUNK)):
            grp = self._h5.require_group(group)
            for name in sorted(fields):
                dtype, shape, units = spec[name]
                ds = grp.create_dataset(name, shape=(0,) + shape, maxshape=(None,) + shape, dtype=dtype,
                                        chunks=(chunk,) + shape)
                if units:
                    ds.attrs["units"] = units
                self._buf[name] = []
                self._crc[name] = 0
                self._nonzero[name] = False

    def _flush(self) -> None:
        if not self._fields:
            return
        for group, fields in (("atoms", self._fields[0]), ("frames", self._fields[1])):
            for name in fields:
                if not self._buf[name]:
                    continue
                data = np.concatenate(self._buf[name])
                ds = self._h5[group][name]
                start = ds.shape[0]
                ds.resize(start + data.shape[0], axis=0)
                ds[start:] = data
                self._crc[name] = _crc(data.astype(ds.dtype, copy=False), self._crc[name])
                self._nonzero[name] = self._nonzero[name] or bool(data.any())
                self._buf[name] = []
        self._buffered = 0

    def finish(self) -> None:
        """Flush, write checksums and metadata, mark the file complete and close it."""
        if self.n_frames == 0:
            self._h5.close()
            raise DataError(f"{self.path}: no valid frames to write")
        self._flush()
        for group, fields in (("atoms", self._fields[0]), ("frames", self._fields[1])):
            for name in fields:
                self._h5[group][name].attrs["crc32"] = np.uint32(self._crc[name])
                self._h5[group][name].attrs["all_zero"] = not self._nonzero[name]
        a = self._h5.attrs
        a["format"] = FORMAT_NAME
        a["schema_version"] = SCHEMA_VERSION
        a["n_frames"] = self.n_frames
        a["n_atoms"] = self.n_atoms
        a["elements"] = np.array(sorted(self._elements), np.uint8)
        a["energy_convention"] = self._attrs["energy_convention"]
        a["units"] = json.dumps({"energy": "eV", "positions": "Angstrom", "forces": "eV/Angstrom",
                                 "cell": "Angstrom", "stress": "eV/Angstrom^3"})
        prov = {"created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **self._attrs["provenance"]}
        a["provenance"] = json.dumps(prov)
        a["element_reference_energies"] = json.dumps(self._attrs["element_reference_energies"])
        a["complete"] = True
        self._h5.close()

    def abort(self) -> None:
        """Close without finishing (the caller removes the temporary file)."""
        try:
            self._h5.close()
        except Exception:  # noqa: BLE001 - best effort on an error path
            pass
