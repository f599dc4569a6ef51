"""Streaming writer for sciml HDF5 shards: buffers frames, appends to chunked resizable arrays, checksums as it goes.

The file is written to a temporary path and only renamed to its final name by the caller once :meth:`AtomsWriter.finish`
returned, so an interrupted conversion never leaves a file that looks complete (the root attribute ``complete`` is
also only set then).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_tools.format import (ATOM_CHUNK, ATOM_FIELDS, CHECKSUMS, ENERGY_CONVENTIONS, EXTRA_NAME, FORMAT_NAME,
                               FRAME_CHUNK,
                               FRAME_FIELDS, PAIR_CHUNK, PAIR_COUNT, PAIR_INDEX, RESERVED_EXTRA_NAMES, SCHEMA_VERSION,
                               VALUES_CHUNK, row_kind)
from sciml.errors import DataError

MAX_Z = 118
_CHUNK = {"atoms": ATOM_CHUNK, "frames": FRAME_CHUNK, "pairs": PAIR_CHUNK}


def _chunk_rows(path: str) -> int:
    kind = row_kind(path)
    return VALUES_CHUNK if kind.startswith("values/") else _CHUNK[kind]


@dataclass
class Extras:
    """Model-specific arrays stored with a frame under ``/extras`` (schema 2), e.g. cached input features.

    ``atoms``: {name: [n, ...]}; ``frames``: {name: one value or array per frame}; ``pair_index`` [P, 2] the two atoms
    of each pair (indices within the frame) with ``pairs``: {name: [P, ...]}; ``values``: {name: 1-D array of any
    length} (e.g. a flattened Jacobian whose size depends on the frame). Names are lower-case identifiers; every frame
    of a shard carries the same names, dtypes and trailing shapes. Units are the producer's to document.
    """

    atoms: dict[str, np.ndarray] = field(default_factory=dict)
    frames: dict[str, Any] = field(default_factory=dict)
    pair_index: np.ndarray | None = None
    pairs: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)


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
    extras: Extras | None = None  # optional model-specific arrays (/extras)


def _validate_extras(extras: Extras, n: int) -> str | None:
    n_pairs = 0
    if extras.pair_index is not None:
        index = np.asarray(extras.pair_index)
        if index.ndim != 2 or index.shape[1] != 2 or not np.issubdtype(index.dtype, np.integer):
            return f"extras pair_index must be an integer array [P, 2], got {index.dtype} {index.shape}"
        if index.size and (index.min() < 0 or index.max() >= n):
            return f"extras pair_index holds atom indices outside 0..{n - 1}"
        n_pairs = index.shape[0]
    elif extras.pairs:
        return "extras pair arrays given without pair_index"
    for kind, arrays, rows in (("atoms", extras.atoms, n), ("frames", extras.frames, None),
                               ("pairs", extras.pairs, n_pairs), ("values", extras.values, None)):
        for name, value in arrays.items():
            if not EXTRA_NAME.match(name) or name in RESERVED_EXTRA_NAMES[kind]:
                return f"invalid extras name {kind}/{name!r} (lower-case identifier, not {RESERVED_EXTRA_NAMES[kind]})"
            arr = np.asarray(value)
            if arr.dtype.kind not in "biuf":
                return f"extras {kind}/{name} must be numeric or boolean, got dtype {arr.dtype}"
            if rows is not None and (arr.ndim == 0 or arr.shape[0] != rows):
                return f"extras {kind}/{name} has shape {arr.shape}, expected {rows} rows"
            if kind == "values" and arr.ndim != 1:
                return f"extras values/{name} must be 1-D, got shape {arr.shape}"
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                return f"non-finite extras {kind}/{name}"
    return None


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
    return _validate_extras(frame.extras, n) if frame.extras is not None else None


def frame_arrays(frame: Frame, storage: bool = True) -> dict[str, np.ndarray]:
    """``frame`` as rows of the stored arrays, keyed by HDF5 path (``atoms/positions``, ``frames/energy``,
    ``extras/pairs/index``, ...). ``storage=False`` keeps positions and forces in float64 instead of the stored
    float32 (model input for inference); a missing energy is then left out instead of being an error."""
    n = len(frame.numbers)
    out: dict[str, np.ndarray] = {}

    def put(group: str, name: str, value: Any, shape: tuple[int, ...]) -> None:
        dtype = (ATOM_FIELDS if group == "atoms" else FRAME_FIELDS)[name][0]
        if not storage and dtype.kind == "f":
            dtype = np.dtype(np.float64)
        out[f"{group}/{name}"] = np.asarray(value, dtype=dtype).reshape(shape)

    put("atoms", "numbers", frame.numbers, (n,))
    put("atoms", "positions", frame.positions, (n, 3))
    if frame.forces is not None:
        put("atoms", "forces", frame.forces, (n, 3))
    put("atoms", "fixed", np.zeros(n) if frame.fixed is None else frame.fixed, (n,))
    put("atoms", "tags", np.zeros(n) if frame.tags is None else frame.tags, (n,))
    put("frames", "natoms", n, (1,))
    if frame.energy is not None or storage:
        put("frames", "energy", frame.energy, (1,))
    put("frames", "cell", np.zeros((3, 3)) if frame.cell is None else frame.cell, (1, 3, 3))
    put("frames", "pbc", np.zeros(3) if frame.pbc is None else frame.pbc, (1, 3))
    put("frames", "group", frame.group, (1,))
    put("frames", "frame_id", frame.frame_id, (1,))
    for key, value in frame.extra.items():
        put("frames", key, value, (1,) + FRAME_FIELDS[key][1])
    if frame.extras is not None:
        out.update(_extras_arrays(frame.extras))
    return out


def _extras_arrays(extras: Extras) -> dict[str, np.ndarray]:
    def stored(value: Any) -> np.ndarray:
        arr = np.asarray(value)
        return arr.astype(np.uint8) if arr.dtype == np.bool_ else arr

    out = {f"extras/atoms/{k}": stored(v) for k, v in extras.atoms.items()}
    out.update({f"extras/frames/{k}": stored(v)[None] for k, v in extras.frames.items()})
    if extras.pair_index is not None:
        index = np.asarray(extras.pair_index, dtype=np.int32).reshape(-1, 2)
        out[PAIR_INDEX] = index
        out[PAIR_COUNT] = np.array([index.shape[0]], np.uint32)
        out.update({f"extras/pairs/{k}": stored(v) for k, v in extras.pairs.items()})
    for k, v in extras.values.items():
        out[f"extras/values/{k}"] = stored(v)
        out[f"extras/counts/{k}"] = np.array([len(v)], np.uint32)
    return out


def _crc(arr: np.ndarray, crc: int) -> int:
    return zlib.crc32(np.ascontiguousarray(arr).view(np.uint8).reshape(-1), crc)


class _ChunkChecksums:
    """CRC-32 of every HDF5 chunk of one array (rows ``k*rows:(k+1)*rows``), computed as rows are appended."""

    def __init__(self, rows: int):
        self.rows, self.done, self.crc, self.filled = rows, [], 0, 0

    def add(self, data: np.ndarray) -> None:
        start = 0
        while start < len(data):
            take = min(self.rows - self.filled, len(data) - start)
            self.crc = _crc(data[start:start + take], self.crc)
            self.filled += take
            start += take
            if self.filled == self.rows:
                self.done.append(self.crc)
                self.crc, self.filled = 0, 0

    def finish(self) -> np.ndarray:
        return np.array(self.done + ([self.crc] if self.filled else []), np.uint32)


def _units(path: str) -> str:
    group, _, name = path.partition("/")
    spec = {"atoms": ATOM_FIELDS, "frames": FRAME_FIELDS}.get(group)
    return spec[name][2] if spec is not None else ""


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
        self._chunk_crc: dict[str, _ChunkChecksums] = {}
        self._nonzero: dict[str, bool] = {}
        self._layout: dict[str, tuple[np.dtype, tuple[int, ...]]] | None = None  # path -> (dtype, row shape)
        self.n_frames = 0
        self.n_atoms = 0
        self._elements: set[int] = set()

    def _use_layout(self, arrays: dict[str, np.ndarray], message: str) -> None:
        """Create the arrays on first use; later raise DataError(``message`` with the differing names) if a frame
        brings another set of arrays (or extras of another dtype or shape)."""
        layout = {path: (arr.dtype, arr.shape[1:]) for path, arr in arrays.items()}
        if self._layout is None:
            self._layout = layout
            self._create(layout)
            return
        if layout.keys() != self._layout.keys():
            diff = {p.rpartition("/")[2] if not p.startswith("extras") else p for p in
                    layout.keys() ^ self._layout.keys()}
            raise DataError(message.format(sorted(diff)))
        for path, (dtype, shape) in layout.items():
            if path.startswith("extras") and (dtype, shape) != self._layout[path]:
                raise DataError(f"{path}: dtype/shape {dtype}{list(shape)} differs from the first frame's "
                                f"{self._layout[path][0]}{list(self._layout[path][1])}")

    def append(self, frame: Frame) -> None:
        """Buffer one validated frame (call :func:`validate_frame` first). Raises DataError on a layout change."""
        self._append(frame_arrays(frame), "fields {} present in some frames but not in others "
                                          "(all frames of a shard must carry the same fields)")

    def append_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Append frames given as stored arrays keyed by HDF5 path (``ShardReader.raw_rows`` of another shard, with
        ``frames/natoms`` and, where there are pairs, ``extras/pairs/count``); used to merge shards."""
        self._append(arrays, "arrays {} differ between the shards being merged")

    def _append(self, arrays: dict[str, np.ndarray], message: str) -> None:
        self._use_layout(arrays, message)
        for path, arr in arrays.items():
            self._buf[path].append(arr)
        n = len(arrays["frames/natoms"])
        self.n_frames += n
        self.n_atoms += len(arrays["atoms/numbers"])
        self._elements.update(np.unique(arrays["atoms/numbers"]).tolist())
        self._buffered += n
        if self._buffered >= self._flush_frames:
            self._flush()

    def _create(self, layout: dict[str, tuple[np.dtype, tuple[int, ...]]]) -> None:
        for path in sorted(layout):
            dtype, shape = layout[path]
            ds = self._h5.create_dataset(path, shape=(0,) + shape, maxshape=(None,) + shape, dtype=dtype,
                                         chunks=(_chunk_rows(path),) + shape)
            if _units(path):
                ds.attrs["units"] = _units(path)
            self._buf[path] = []
            self._crc[path] = 0
            self._chunk_crc[path] = _ChunkChecksums(ds.chunks[0])
            self._nonzero[path] = False

    def _flush(self) -> None:
        if not self._layout:
            return
        pending = {path: np.concatenate(self._buf[path]).astype(self._h5[path].dtype, copy=False)
                   for path in self._layout if self._buf[path]}
        self._ensure_space(pending)
        try:
            for path, data in pending.items():
                ds = self._h5[path]
                start = ds.shape[0]
                ds.resize(start + data.shape[0], axis=0)
                ds[start:] = data
                self._crc[path] = _crc(data, self._crc[path])
                self._chunk_crc[path].add(data)
                self._nonzero[path] = self._nonzero[path] or bool(data.any())
                self._buf[path] = []
        except OSError as exc:
            raise self._write_error(exc) from None
        self._buffered = 0

    def _ensure_space(self, pending: dict[str, np.ndarray]) -> None:
        """Refuse before HDF5 hits a full disk (it fails there badly): the new chunks the write allocates, plus
        1 MiB for HDF5's own metadata, must fit in the free space of the file system."""
        need = 1 << 20
        for path, data in pending.items():
            ds = self._h5[path]
            rows = ds.chunks[0]
            new_chunks = -(-(ds.shape[0] + data.shape[0]) // rows) - -(-ds.shape[0] // rows)
            need += new_chunks * rows * data[:1].nbytes
        free = shutil.disk_usage(self.path.parent).free
        if free < need:
            raise DataError(f"no space left on {self.path.parent}: writing {self.path.name} needs about "
                            f"{need / 2**20:.1f} MiB more, {free / 2**20:.1f} MiB are free")

    def _write_error(self, exc: OSError) -> DataError:
        if exc.errno == errno.ENOSPC or "No space left" in str(exc):
            return DataError(f"no space left on {self.path.parent} while writing {self.path.name}")
        return DataError(f"{self.path}: write failed: {exc}")

    def finish(self) -> None:
        """Flush, write checksums and metadata, mark the file complete and close it."""
        if self.n_frames == 0:
            self._h5.close()
            raise DataError(f"{self.path}: no valid frames to write")
        self._flush()
        try:
            self._write_metadata()
            self._h5.close()
        except OSError as exc:
            raise self._write_error(exc) from None

    def _write_metadata(self) -> None:
        for path in self._layout:
            self._h5[path].attrs["crc32"] = np.uint32(self._crc[path])
            self._h5.create_dataset(f"{CHECKSUMS}/{path}", data=self._chunk_crc[path].finish())
            self._h5[path].attrs["all_zero"] = not self._nonzero[path]
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

    def abort(self) -> None:
        """Close without finishing (the caller removes the temporary file)."""
        try:
            self._h5.close()
        except Exception:  # noqa: BLE001 - best effort on an error path
            pass
