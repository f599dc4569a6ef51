"""HDF5 column-dataset format ``sciml-wrf-columns`` (version 1): one row per column per output time.

Layout (N rows, F/F2 per-level/single-level inputs, T/T2 targets, K mass levels, bottom to top)::

    /inputs       float32 [N, F, K]   attrs names, units
    /inputs_2d    float32 [N, F2]     attrs names, units
    /targets      float32 [N, T, K]   attrs names, units
    /targets_2d   float32 [N, T2]     attrs names, units
    /i, /j        int32   [N]         grid position (west_east, south_north), column index = j * nx + i
    /frame        int32   [N]         output time index into /frames (order of the source files)
    /file         int32   [N]         index into /files
    /time         int64   [N]         seconds since 1970-01-01 00:00:00 UTC (from WRF's Times)
    /frames/Times    |S19  [nT]       WRF's Times strings; /frames/XTIME float64 [nT] (minutes since start, NaN if
                                      absent); /frames/time int64 [nT]; /frames/file int32 [nT]
    /files        str     [nfiles]    source paths as given; attr sizes (bytes)
    /grid         attrs nx, ny, nz, DX, DY (m), DT (s), P_TOP (Pa), HYBRID_OPT, signature (JSON);
                  datasets ZNU [K], ZNW [K+1]
    /stats/<block>/per_level/{count,mean,std,min,max,absmax}     float64 [F, K]   (3-D blocks)
    /stats/<block>/per_variable/{count,mean,std,min,max,absmax}  float64 [F]      (all blocks)

Root attrs: schema, schema_version, created (UTC ISO 8601), sciml_version, command, row_order, source
(JSON with the WRF global attributes that describe the physics). Rows are ordered by output time, then column.

Every reader opens the file through :func:`open_column_file`, which refuses other files and other versions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import h5py
import numpy as np

from data_tools.wrf.stats import RunningStats
from sciml.errors import DataError

SCHEMA = "sciml-wrf-columns"
SCHEMA_VERSION = 1
BLOCKS = ("inputs", "inputs_2d", "targets", "targets_2d")
ROW_ORDER = "output time (files in the order given), then column index j * nx + i"


def write_block_header(h5: h5py.File, block: str, shape: tuple[int, ...], names: list[str],
                       units: list[str]) -> h5py.Dataset:
    """Create the float32 dataset ``block`` of ``shape`` (rows first) with its names/units attributes."""
    rows_per_chunk = max(1, min(shape[0], 65536 // max(1, int(np.prod(shape[1:])))))
    dset = h5.create_dataset(block, shape=shape, dtype=np.float32,
                             chunks=(rows_per_chunk, *shape[1:]) if shape[0] and all(shape[1:]) else None)
    dset.attrs["names"] = np.array(names, dtype=h5py.string_dtype())
    dset.attrs["units"] = np.array(units, dtype=h5py.string_dtype())
    return dset


def write_stats(h5: h5py.File, block: str, stats: RunningStats, per_level: bool) -> None:
    """Store ``stats`` (shape [F, K] if ``per_level`` else [F]) under ``/stats/<block>``."""
    group = h5.require_group(f"stats/{block}")
    if per_level:
        for key, value in stats.as_dict().items():
            group.create_dataset(f"per_level/{key}", data=value)
        stats = stats.reduce_last_axis()
    for key, value in stats.as_dict().items():
        group.create_dataset(f"per_variable/{key}", data=value)


def write_grid(h5: h5py.File, signature: dict[str, Any]) -> None:
    """Store the grid signature (see :func:`data_tools.wrf.grid.grid_signature`) under ``/grid``."""
    group = h5.create_group("grid")
    for key, value in signature.items():
        if isinstance(value, list):
            group.create_dataset(key, data=np.asarray(value, dtype=np.float64))
        elif value is not None:
            group.attrs[key] = value
    group.attrs["signature"] = json.dumps(signature)


@contextmanager
def open_column_file(path: str | os.PathLike) -> Iterator[h5py.File]:
    """The column file ``path``, open read-only for the ``with`` block, after checking it is a ``sciml-wrf-columns``
    file of a version this sciml reads (:data:`SCHEMA_VERSION`). Every reader of the format goes through here;
    anything else raises :class:`DataError` naming the file."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: cannot be opened as HDF5 ({exc})") from exc
    with h5:
        schema = h5.attrs.get("schema")
        if schema != SCHEMA:
            raise DataError(f"{path}: not a {SCHEMA} file (schema attribute {schema!r}); "
                            "make one with `sciml wrf extract`")
        version = h5.attrs.get("schema_version")
        if not isinstance(version, (int, np.integer)):
            raise DataError(f"{path}: {SCHEMA} file without an integer schema_version attribute (got {version}); "
                            "re-extract it with `sciml wrf extract`")
        if version != SCHEMA_VERSION:
            newer = version > SCHEMA_VERSION
            raise DataError(f"{path}: {SCHEMA} schema_version {int(version)} is {'newer' if newer else 'older'} "
                            f"than the version this sciml reads ({SCHEMA_VERSION}); "
                            + ("update sciml" if newer else "re-extract it with `sciml wrf extract`"))
        yield h5


def read_features(h5: h5py.File, block: str, names: list[str]) -> np.ndarray:
    """The features ``names`` of ``block`` (one of :data:`BLOCKS`) of an open column file, in that order along
    axis 1: float32 [N, len(names), K] for the per-level blocks, [N, len(names)] for the single-level ones."""
    if block not in h5:
        raise DataError(f"{h5.filename}: column file has no /{block} block")
    have = [str(n) for n in h5[block].attrs["names"]]
    missing = [n for n in names if n not in have]
    if missing:
        raise DataError(f"{h5.filename}: column file lacks {block} {', '.join(missing)} (has {', '.join(have)}); "
                        "re-extract with `sciml wrf extract` and the default --inputs/--targets")
    return h5[block][()][:, [have.index(n) for n in names]]


def read_grid_signature(path: str | os.PathLike) -> dict[str, Any]:
    """The grid signature stored in a column file."""
    with open_column_file(path) as h5:
        return json.loads(h5["grid"].attrs["signature"])


def read_names(path: str | os.PathLike) -> dict[str, list[str]]:
    """Feature names per block: ``{"inputs": [...], "inputs_2d": [...], "targets": [...], "targets_2d": [...]}``."""
    with open_column_file(path) as h5:
        return {b: [str(n) for n in h5[b].attrs["names"]] for b in BLOCKS}


def read_stats(path: str | os.PathLike, block: str, per_level: bool = True) -> dict[str, np.ndarray]:
    """Normalisation statistics of ``block`` (``count``, ``mean``, ``std``, ``min``, ``max``, ``absmax``)."""
    kind = "per_level" if per_level else "per_variable"
    with open_column_file(path) as h5:
        if f"stats/{block}/{kind}" not in h5:
            raise DataError(f"{path}: no {kind} statistics for {block}")
        group = h5[f"stats/{block}/{kind}"]
        return {key: group[key][()] for key in group}
