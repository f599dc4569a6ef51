"""Open and validate one sciml HDF5 shard; read frame ranges with one slice per array; verify checksums."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_tools.format import (ATOM_FIELDS, CHECKSUMS, EXTRA_KINDS, FORMAT_NAME, FRAME_FIELDS, PAIR_COUNT, PAIR_INDEX,
                               READABLE_VERSIONS, REQUIRED_ATOM, REQUIRED_FRAME, block_key, row_kind)
from sciml.errors import DataError

#: HDF5 chunk cache per open file (bytes, hash slots): holds a few hundred chunks of every array
CHUNK_CACHE = dict(rdcc_nbytes=32 * 1024 * 1024, rdcc_nslots=10007)


class ShardReader:
    """A validated, read-only sciml shard. ``natoms`` [N] int64 and ``offsets`` [N+1] int64 (atom start of each
    frame) are held in RAM, and ``pair_offsets`` [N+1] when the shard has per-pair extras; everything else is read on
    demand. Arrays are named by HDF5 path (``atoms/positions``, ``extras/frames/q``, ...)."""

    def __init__(self, path: str | os.PathLike, verify: bool = True):
        self.path = Path(path)
        #: verify each chunk's checksum the first time it is read (arrays without chunk checksums, as in files of
        #: schema 1: the whole array the first time any of it is read)
        self.verify_reads = verify
        self._checked: dict[str, np.ndarray] = {}  # path -> bool per chunk: verified by this reader
        self._all_checked: set[str] = set()  # arrays whose every chunk this reader verified
        self._window: dict[str, tuple[int, int, np.ndarray]] = {}  # path -> last verified chunks (start, stop, rows)
        self._stored: dict[str, np.ndarray | None] = {}  # path -> the file's chunk checksums (None: not stored)
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
        self.schema_version = int(a.get("schema_version", -1))
        if self.schema_version not in READABLE_VERSIONS:
            raise DataError(f"{self.path}: unsupported schema version {self.schema_version} (this sciml reads "
                            f"versions {', '.join(map(str, READABLE_VERSIONS))}); convert the source data again")
        if not a.get("complete", False):
            raise DataError(f"{self.path}: incomplete file (the conversion that wrote it did not finish)")
        for group, names in (("atoms", REQUIRED_ATOM), ("frames", REQUIRED_FRAME)):
            for name in names:
                if f"{group}/{name}" not in self.h5:
                    raise DataError(f"{self.path}: missing required array /{group}/{name}")
        self.atom_fields = tuple(k for k in self.h5["atoms"] if k in ATOM_FIELDS)
        self.frame_fields = tuple(k for k in self.h5["frames"] if k in FRAME_FIELDS)
        paths = [f"atoms/{k}" for k in self.atom_fields] + [f"frames/{k}" for k in self.frame_fields]
        if self.schema_version >= 2 and "extras" in self.h5:
            paths += [f"extras/{kind}/{name}" for kind in EXTRA_KINDS if kind in self.h5["extras"]
                      for name in self.h5["extras"][kind]]
        # h5py group lookups cost ~100 us each: resolve every array once
        self._arrays = {path: self.h5[path] for path in paths}
        #: extras arrays (HDF5 paths under /extras), pair bookkeeping included
        self.extras = tuple(p for p in paths if p.startswith("extras/"))
        # arrays flagged all-zero (e.g. tags/fixed of molecules) are not read, saving a call per frame
        self._zero = {path: (ds.shape[1:], ds.dtype) for path, ds in self._arrays.items()
                      if bool(ds.attrs.get("all_zero", False))}
        self.n_frames = int(a["n_frames"])
        self.n_atoms = int(a["n_atoms"])
        has_pairs = PAIR_COUNT in self._arrays
        if has_pairs != (PAIR_INDEX in self._arrays) or (not has_pairs and any(row_kind(p) == "pairs"
                                                                               for p in self.extras)):
            raise DataError(f"{self.path}: per-pair extras need both /{PAIR_COUNT} and /{PAIR_INDEX}")
        self.natoms = self._read("frames/natoms", 0, self.n_frames).astype(np.int64)
        self.offsets = np.zeros(self.n_frames + 1, np.int64)
        np.cumsum(self.natoms, out=self.offsets[1:])
        self.pair_offsets: np.ndarray | None = None
        if has_pairs:
            self.pair_offsets = self._csr(PAIR_COUNT)
        #: offsets [N+1] of every row kind that is not one row per frame (atoms, pairs, each values array)
        self.row_offsets = {"atoms": self.offsets, "frames": np.arange(self.n_frames + 1)}
        if has_pairs:
            self.row_offsets["pairs"] = self.pair_offsets
        for path in self.extras:
            if path.startswith("extras/values/"):
                name = path.rpartition("/")[2]
                if f"extras/counts/{name}" not in self._arrays:
                    raise DataError(f"{self.path}: /{path} has no /extras/counts/{name}")
                self.row_offsets[f"values/{name}"] = self._csr(f"extras/counts/{name}")
        rows = {kind: int(offsets[-1]) for kind, offsets in self.row_offsets.items()}
        for path, ds in self._arrays.items():
            if ds.shape[0] != rows[row_kind(path)]:
                raise DataError(f"{self.path}: /{path} has {ds.shape[0]} rows, expected {rows[row_kind(path)]} "
                                "(truncated or corrupt)")
        if self.offsets[-1] != self.n_atoms:
            raise DataError(f"{self.path}: sum of natoms {self.offsets[-1]} != n_atoms {self.n_atoms} (corrupt)")
        #: (path, block key, row kind) of every array read_range returns
        self._layout = [(p, block_key(p), row_kind(p)) for p in self._arrays
                        if p not in ("frames/natoms", PAIR_COUNT) and not p.startswith("extras/counts/")]

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

    @property
    def arrays(self) -> tuple[str, ...]:
        """HDF5 paths of every stored array."""
        return tuple(self._arrays)

    # -- data ---------------------------------------------------------------------------------------------
    def _read(self, path: str, lo: int, hi: int, raw: bool = False) -> np.ndarray:
        if not raw and path in self._zero:
            shape, dtype = self._zero[path]
            return np.zeros((hi - lo,) + shape, dtype)
        ds = self._arrays[path]
        try:
            if raw or not self.verify_reads or hi <= lo or path in self._all_checked:
                return ds[lo:hi]
            window = self._window.get(path)
            if window is not None and window[0] <= lo and hi <= window[1]:
                return window[2][lo - window[0]:hi - window[0]].copy()
            rows = ds.chunks[0]
            checked = self._checked.get(path)
            if checked is None:
                checked = self._checked[path] = np.zeros(-(-ds.shape[0] // rows), bool)
            k0, k1 = lo // rows, (hi - 1) // rows + 1
            if checked[k0:k1].all():
                return ds[lo:hi]
            start, stop = k0 * rows, min(k1 * rows, ds.shape[0])
            block = ds[start:stop]  # the whole chunks: read once, verified, kept for the reads that follow
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"{self.path}: cannot read /{path} rows {lo}:{hi} (corrupt file?): {exc}") from None
        self._verify_chunks(path, block, k0, k1, checked)
        if checked.all():
            self._all_checked.add(path)
            self._window.pop(path, None)
        else:
            self._window[path] = (start, stop, block)
        return block[lo - start:hi - start].copy()

    def _verify_chunks(self, path: str, block: np.ndarray, k0: int, k1: int, checked: np.ndarray) -> None:
        """Check the CRC-32 of chunks ``k0:k1`` (``block`` holds their rows) against ``/checksums/<path>``; without
        chunk checksums, the whole array's against its ``crc32`` attribute."""
        rows = self._arrays[path].chunks[0]
        stored = self._chunk_checksums(path)
        if stored is None:
            bad = self.verify_one(path)
            checked[:] = True
            if bad:
                raise DataError(f"{self.path}: /{path} fails its checksum (file modified or corrupt)")
            return
        for k in range(k0, k1):
            if checked[k]:
                continue
            part = np.ascontiguousarray(block[(k - k0) * rows:(k - k0 + 1) * rows])
            if k >= len(stored) or zlib.crc32(part.view(np.uint8).reshape(-1)) != int(stored[k]):
                lo, hi = k * rows, k * rows + len(part)
                raise DataError(f"{self.path}: /{path} rows {lo}:{hi} ({self._frames_of(path, lo, hi)}) fail their "
                                "checksum: the file was modified or is corrupt; convert the source data again")
            checked[k] = True

    def _chunk_checksums(self, path: str) -> np.ndarray | None:
        if path not in self._stored:
            key = f"{CHECKSUMS}/{path}"
            self._stored[path] = self.h5[key][()] if key in self.h5 else None
        return self._stored[path]

    def _frames_of(self, path: str, lo: int, hi: int) -> str:
        """'frames a:b' holding rows ``lo:hi`` of the array at ``path``."""
        kind = row_kind(path)
        if kind == "frames":
            return f"frames {lo}:{hi}"
        offsets = self.row_offsets[kind]
        first = int(np.searchsorted(offsets, lo, side="right")) - 1
        last = int(np.searchsorted(offsets, hi, side="left"))
        return f"frames {first}:{last}"

    def _csr(self, count_path: str) -> np.ndarray:
        offsets = np.zeros(self.n_frames + 1, np.int64)
        np.cumsum(self._read(count_path, 0, self.n_frames).astype(np.int64), out=offsets[1:])
        return offsets

    def _rows(self, path: str, lo: int, hi: int) -> tuple[int, int]:
        """Rows of the array at ``path`` that belong to frames ``lo:hi``."""
        offsets = self.row_offsets[row_kind(path)]
        return int(offsets[lo]), int(offsets[hi])

    def raw_rows(self, lo: int, hi: int) -> dict[str, np.ndarray]:
        """Every stored array's rows for frames ``lo:hi`` exactly as stored, keyed by HDF5 path (for merging)."""
        return {path: self._read(path, *self._rows(path, lo, hi), raw=True) for path in self._arrays}

    def column(self, name: str) -> np.ndarray:
        """A whole per-frame array (e.g. ``group``, ``energy``)."""
        return self._read(f"frames/{name}", 0, self.n_frames)

    @property
    def frame_bytes(self) -> int:
        """Bytes of all per-frame arrays."""
        return sum(ds.dtype.itemsize * int(np.prod(ds.shape)) for p, ds in self._arrays.items()
                   if row_kind(p) == "frames")

    def frame_columns(self) -> dict[str, np.ndarray]:
        """All per-frame arrays of the shard (for holding them in RAM), keyed as in :meth:`read_range`."""
        return {key: self._read(p, 0, self.n_frames) for p, key, kind in self._layout if kind == "frames"}

    def read_range(self, lo: int, hi: int, columns: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Frames ``lo:hi`` as numpy arrays keyed by :func:`~data_tools.format.block_key` (``positions``,
        ``energy``, ``atom_q``, ``pair_index``, ...): per-frame arrays [hi-lo, ...] (from ``columns``, the output of
        :meth:`frame_columns`, when given), per-atom and per-pair arrays for the atoms and pairs of those frames, plus
        ``offsets`` [hi-lo+1] (atom offsets relative to frame ``lo``) and, with pairs, ``pair_offsets``."""
        if not 0 <= lo <= hi <= self.n_frames:
            raise IndexError(f"{self.path}: frame range {lo}:{hi} outside 0:{self.n_frames}")
        out: dict[str, np.ndarray] = {}
        bounds = {kind: (int(o[lo]), int(o[hi])) for kind, o in self.row_offsets.items()}
        for path, key, kind in self._layout:
            if columns is not None and key in columns:
                out[key] = columns[key][lo:hi].copy()  # items must not alias the cache
            else:
                out[key] = self._read(path, *bounds[kind])
        out["natoms"] = self.natoms[lo:hi].copy()
        out["offsets"] = self.offsets[lo:hi + 1] - self.offsets[lo]
        for kind, offsets in self.row_offsets.items():
            if kind == "pairs" or kind.startswith("values/"):
                key = "pair_offsets" if kind == "pairs" else f"offsets_{kind[7:]}"
                out[key] = offsets[lo:hi + 1] - offsets[lo]
        return out

    def verify_one(self, path: str, block_rows: int = 1 << 20) -> bool:
        """Recompute the CRC-32 of the whole array at ``path``; True if it does not match its ``crc32`` attribute
        (or the array is flagged all-zero but is not)."""
        ds = self._arrays[path]
        crc = 0
        for start in range(0, ds.shape[0], block_rows):
            block = self._read(path, start, min(start + block_rows, ds.shape[0]), raw=True)
            crc = zlib.crc32(np.ascontiguousarray(block).view(np.uint8).reshape(-1), crc)
            if path in self._zero and block.any():
                return True  # flagged all-zero but is not
        return "crc32" not in ds.attrs or int(ds.attrs["crc32"]) != crc

    def verify(self) -> list[str]:
        """Recompute every array's CRC-32; return the paths (``/atoms/positions``, ...) whose checksum does not
        match."""
        return [f"/{path}" for path in self._arrays if self.verify_one(path)]

    def close(self) -> None:
        self.h5.close()

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
