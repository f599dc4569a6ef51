"""Open and validate one sciml HDF5 shard; read frame ranges with one slice per array; verify checksums."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_tools.format import ATOM_FIELDS, FORMAT_NAME, FRAME_FIELDS, REQUIRED_ATOM, REQUIRED_FRAME, SCHEMA_VERSION
from sciml.errors import DataError

#: HDF5 chunk cache per open file (bytes, hash slots): holds a few hundred chunks of every array
CHUNK_CACHE = dict(rdcc_nbytes=32 * 1024 * 1024, rdcc_nslots=10007)


class ShardReader:
    """A validated, read-only sciml shard. ``natoms`` [N] int64 and ``offsets`` [N+1] int64 (atom start of each
    frame) are held in RAM; everything else is read on demand."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.h5 = h5py.File(self.path, "r", **CHUNK_CACHE)
        except FileNotFoundError:
            raise DataError(f"{self.path}: no such file") from None
        except OSError as exc:
            raise DataError(f"{self.path}: not a readable HDF5 file (truncated or corrupt?): {exc}") from None
        try:
            self._validate()
        except BaseException:
            self.h5.close()
            raise

    def _validate(self) -> None:
        a = self.h5.attrs
        if a.get("format") != FORMAT_NAME:
            raise DataError(f"{self.path}: not a sciml atoms file (root attribute format={a.get('format')!r})")
        version = int(a.get("schema_version", -1))
        if version != SCHEMA_VERSION:
            raise DataError(f"{self.path}: unsupported schema version {version} (this sciml reads version "
                            f"{SCHEMA_VERSION}); convert the source data again")
        if not a.get("complete", False):
            raise DataError(f"{self.path}: incomplete file (the conversion that wrote it did not finish)")
        for group, names in (("atoms", REQUIRED_ATOM), ("frames", REQUIRED_FRAME)):
            for name in names:
                if f"{group}/{name}" not in self.h5:
                    raise DataError(f"{self.path}: missing required array /{group}/{name}")
        self.atom_fields = tuple(k for k in self.h5["atoms"] if k in ATOM_FIELDS)
        self.frame_fields = tuple(k for k in self.h5["frames"] if k in FRAME_FIELDS)
        # h5py group lookups cost ~100 us each: resolve every array once
        self._arrays = {(g, k): self.h5[g][k] for g, names in (("atoms", self.atom_fields),
                                                               ("frames", self.frame_fields)) for k in names}
        # arrays flagged all-zero (e.g. tags/fixed of molecules) are not read, saving a call per frame
        self._zero = {key: (ds.shape[1:], ds.dtype) for key, ds in self._arrays.items()
                      if bool(ds.attrs.get("all_zero", False))}
        self.n_frames = int(a["n_frames"])
        self.n_atoms = int(a["n_atoms"])
        for (group, name), ds in self._arrays.items():
            rows = self.n_atoms if group == "atoms" else self.n_frames
            if ds.shape[0] != rows:
                raise DataError(f"{self.path}: /{group}/{name} has {ds.shape[0]} rows, expected {rows} "
                                "(truncated or corrupt)")
        self.natoms = self._read("frames", "natoms", 0, self.n_frames).astype(np.int64)
        self.offsets = np.zeros(self.n_frames + 1, np.int64)
        np.cumsum(self.natoms, out=self.offsets[1:])
        if self.offsets[-1] != self.n_atoms:
            raise DataError(f"{self.path}: sum of natoms {self.offsets[-1]} != n_atoms {self.n_atoms} (corrupt)")

    # -- metadata -----------------------------------------------------------------------------------------
    @property
    def energy_convention(self) -> str:
        return str(self.h5.attrs["energy_convention"])

    @property
    def provenance(self) -> dict[str, Any]:
        return json.loads(self.h5.attrs["provenance"])

    @property
    def element_reference_energies(self) -> dict[int, float]:
        """{atomic number: reference energy in eV} (empty if none was given at conversion)."""
        return {int(k): float(v) for k, v in json.loads(self.h5.attrs["element_reference_energies"]).items()}

    @property
    def elements(self) -> list[int]:
        return [int(z) for z in self.h5.attrs["elements"]]

    # -- data ---------------------------------------------------------------------------------------------
    def _read(self, group: str, name: str, lo: int, hi: int, raw: bool = False) -> np.ndarray:
        if not raw and (group, name) in self._zero:
            shape, dtype = self._zero[(group, name)]
            return np.zeros((hi - lo,) + shape, dtype)
        try:
            return self._arrays[(group, name)][lo:hi]
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"{self.path}: cannot read /{group}/{name} rows {lo}:{hi} (corrupt file?): {exc}") from None

    def read_raw(self, group: str, name: str, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` of ``/group/name`` exactly as stored."""
        return self._read(group, name, lo, hi, raw=True)

    def column(self, name: str) -> np.ndarray:
        """A whole per-frame array (e.g. ``group``, ``energy``)."""
        return self._read("frames", name, 0, self.n_frames)

    @property
    def frame_bytes(self) -> int:
        """Bytes of all per-frame arrays."""
        return sum(ds.dtype.itemsize * int(np.prod(ds.shape)) for (g, _), ds in self._arrays.items() if g == "frames")

    def frame_columns(self) -> dict[str, np.ndarray]:
        """All per-frame arrays of the shard (for holding them in RAM)."""
        return {name: self.column(name) for name in self.frame_fields if name != "natoms"}

    def read_range(self, lo: int, hi: int, columns: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Frames ``lo:hi`` as numpy arrays: per-frame fields sliced [hi-lo, ...] (from ``columns``, the output of
        :meth:`frame_columns`, when given), per-atom fields for the atoms of those frames, plus ``offsets``
        [hi-lo+1] (atom offsets relative to frame ``lo``)."""
        if not 0 <= lo <= hi <= self.n_frames:
            raise IndexError(f"{self.path}: frame range {lo}:{hi} outside 0:{self.n_frames}")
        a0, a1 = int(self.offsets[lo]), int(self.offsets[hi])
        if columns is not None:
            out = {name: col[lo:hi].copy() for name, col in columns.items()}  # items must not alias the cache
        else:
            out = {name: self._read("frames", name, lo, hi) for name in self.frame_fields if name != "natoms"}
        out.update({name: self._read("atoms", name, a0, a1) for name in self.atom_fields})
        out["natoms"] = self.natoms[lo:hi].copy()
        out["offsets"] = self.offsets[lo:hi + 1] - a0
        return out

    def verify(self, block_rows: int = 1 << 20) -> list[str]:
        """Recompute every array's CRC32; return the names of arrays whose checksum does not match."""
        bad = []
        for group, names in (("atoms", self.atom_fields), ("frames", self.frame_fields)):
            for name in names:
                ds = self._arrays[(group, name)]
                crc = 0
                for start in range(0, ds.shape[0], block_rows):
                    block = self._read(group, name, start, min(start + block_rows, ds.shape[0]), raw=True)
                    crc = zlib.crc32(np.ascontiguousarray(block).view(np.uint8).reshape(-1), crc)
                    if (group, name) in self._zero and block.any():
                        crc = -1  # flagged all-zero but is not
                if "crc32" not in ds.attrs or int(ds.attrs["crc32"]) != crc:
                    bad.append(f"/{group}/{name}")
        return bad

    def close(self) -> None:
        self.h5.close()

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
