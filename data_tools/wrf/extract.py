"""Stream wrfout files into the ``sciml-wrf-columns`` HDF5 format (see :mod:`.column_file`)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from data_tools.wrf.column_file import (
    ROW_ORDER, SCHEMA, SCHEMA_VERSION, write_block_header, write_grid, write_stats,
)
from data_tools.wrf.features import DEFAULT_INPUTS, DEFAULT_TARGETS, frame_columns, split_features, units_of
from data_tools.wrf.grid import grid_signature
from data_tools.wrf.reader import open_wrf
from data_tools.wrf.stats import RunningStats
from sciml.errors import DataError
from sciml.utils.atomic import atomic_path

#: WRF global attributes copied into the provenance record
SOURCE_ATTRS = ("TITLE", "START_DATE", "SIMULATION_START_DATE", "DX", "DY", "DT", "CU_PHYSICS", "CUDT",
                "KF_EDRATES", "MP_PHYSICS", "BL_PBL_PHYSICS", "SF_SFCLAY_PHYSICS", "RA_LW_PHYSICS", "RA_SW_PHYSICS",
                "SHCU_PHYSICS", "ISHALLOW", "HYBRID_OPT", "USE_THETA_M", "MAP_PROJ_CHAR")
#: cumulus outputs that leak the target when used as inputs of the same output time
LEAKY = frozenset(DEFAULT_TARGETS) | {"RUCUTEN", "RVCUTEN", "CUTOP", "CUBOT", "HTOP", "HBOT", "RAINC"}


def extract_columns(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                    inputs: Sequence[str] = DEFAULT_INPUTS, targets: Sequence[str] = DEFAULT_TARGETS,
                    time_chunk: int = 1, progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Write every column of every output time of ``paths`` to ``out`` (atomically), streaming ``time_chunk``
    output times at a time, with per-level normalisation statistics from the same pass.

    ``inputs``/``targets``: feature names (derived lower-case or WRF upper-case), split into per-level and
    single-level blocks in the given order. ``out`` is never one of ``paths``, and an existing ``out`` that is not a
    column file is only replaced with ``overwrite``. Returns a summary (rows, frames, seconds, names).
    """
    from sciml.utils.outputs import check_outputs, hdf5_attr

    if time_chunk < 1:
        raise DataError(f"time_chunk must be >= 1, got {time_chunk}")
    check_outputs([Path(out)], paths, overwrite=overwrite, ours=lambda f: hdf5_attr(f, "schema") == SCHEMA,
                  command="sciml wrf extract")
    overlap = set(inputs) & set(targets)
    if overlap:
        raise DataError(f"{', '.join(sorted(overlap))} requested both as input and as target")
    ds = open_wrf(paths, chunks={"Time": time_chunk})
    split_features(ds, [*inputs, *targets])  # one error listing everything missing
    (in_levels, in_single), (t_levels, t_single) = split_features(ds, list(inputs)), split_features(ds, list(targets))
    blocks = {"inputs": (in_levels, in_single), "targets": (t_levels, t_single)}
    leaky = [n for n in inputs if n in LEAKY]
    if leaky:
        print(f"warning: inputs {', '.join(leaky)} are cumulus outputs of the same output time and leak the target",
              file=sys.stderr)
    nt, nz = ds.sizes["Time"], ds.sizes["bottom_top"]
    ny, nx = ds.sizes["south_north"], ds.sizes["west_east"]
    ncol = ny * nx
    n_rows = nt * ncol
    files = [str(p) for p in ds.attrs["sciml_files"]]
    frame_file = ds["source_file"].values.astype(np.int32)
    frame_time = ds["time"].values.astype("datetime64[s]").astype(np.int64)
    _warn_time_order(ds, frame_time, files, frame_file)
    t_start = time.perf_counter()
    with atomic_path(out, suffix=".h5") as tmp, h5py.File(tmp, "w") as h5:
        dsets, stats = {}, {}
        for kind, (levels, single) in blocks.items():
            for block, names, shape in ((kind, levels, (n_rows, len(levels), nz)),
                                        (f"{kind}_2d", single, (n_rows, len(single)))):
                dsets[block] = write_block_header(h5, block, shape, names, [units_of(ds, n) for n in names])
                stats[block] = RunningStats(shape[1:])
        _write_rows_index(h5, nt, ny, nx, frame_file, frame_time)
        _write_frames(h5, ds, frame_file, frame_time, files)
        write_grid(h5, grid_signature(ds))
        _write_provenance(h5, ds)
        bar = tqdm(total=nt, unit="time", desc="wrf extract", disable=not progress, file=sys.stderr)
        for start in range(0, nt, time_chunk):
            stop = min(nt, start + time_chunk)
            rows = slice(start * ncol, stop * ncol)
            x3, x2 = frame_columns(ds, [*in_levels, *t_levels], [*in_single, *t_single], start, stop)
            for block, x in (("inputs", x3[:, :len(in_levels)]), ("targets", x3[:, len(in_levels):]),
                             ("inputs_2d", x2[:, :len(in_single)]), ("targets_2d", x2[:, len(in_single):])):
                dsets[block][rows] = x
                stats[block].update(x)
            bar.update(stop - start)
        bar.close()
        for block, s in stats.items():
            write_stats(h5, block, s, per_level=not block.endswith("_2d"))
    seconds = time.perf_counter() - t_start
    return {"rows": n_rows, "frames": nt, "columns_per_frame": ncol, "levels": nz, "seconds": seconds,
            "inputs": blocks["inputs"], "targets": blocks["targets"], "files": files, "out": str(out)}


def _warn_time_order(ds: Any, frame_time: np.ndarray, files: list[str], frame_file: np.ndarray) -> None:
    """Warn when output times repeat or go backwards: rows would be duplicated and a split by time could leak."""
    back = np.nonzero(np.diff(frame_time) <= 0)[0]
    if back.size:
        k = int(back[0]) + 1
        print(f"warning: output time {str(ds['time'].values[k])} of {files[frame_file[k]]} does not follow "
              f"{str(ds['time'].values[k - 1])} of {files[frame_file[k - 1]]} ({back.size} such step(s)); "
              "give the files in time order without overlap, or splits by time may leak", file=sys.stderr)


def _write_rows_index(h5: h5py.File, nt: int, ny: int, nx: int, frame_file: np.ndarray,
                      frame_time: np.ndarray) -> None:
    jj, ii = np.divmod(np.arange(ny * nx, dtype=np.int32), nx)
    frame = np.repeat(np.arange(nt, dtype=np.int32), ny * nx)
    h5.create_dataset("i", data=np.tile(ii, nt))
    h5.create_dataset("j", data=np.tile(jj, nt))
    h5.create_dataset("frame", data=frame)
    h5.create_dataset("file", data=frame_file[frame])
    h5.create_dataset("time", data=frame_time[frame]).attrs["units"] = "seconds since 1970-01-01 00:00:00 UTC"


def _write_frames(h5: h5py.File, ds: Any, frame_file: np.ndarray, frame_time: np.ndarray, files: list[str]) -> None:
    group = h5.create_group("frames")
    group.create_dataset("Times", data=np.asarray(ds["Times"].values).astype("S19"))
    xtime = ds["XTIME"].values.astype(np.float64) if "XTIME" in ds.variables else np.full(len(frame_time), np.nan)
    group.create_dataset("XTIME", data=xtime).attrs["units"] = "minutes since simulation start"
    group.create_dataset("time", data=frame_time).attrs["units"] = "seconds since 1970-01-01 00:00:00 UTC"
    group.create_dataset("file", data=frame_file)
    h5.create_dataset("files", data=np.array(files, dtype=h5py.string_dtype()))
    h5["files"].attrs["sizes"] = np.array([Path(f).stat().st_size for f in files], dtype=np.int64)


def _write_provenance(h5: h5py.File, ds: Any) -> None:
    from sciml import __version__

    h5.attrs["schema"] = SCHEMA
    h5.attrs["schema_version"] = SCHEMA_VERSION
    h5.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    h5.attrs["sciml_version"] = __version__
    h5.attrs["command"] = " ".join(sys.argv)
    h5.attrs["row_order"] = ROW_ORDER
    source = {k: _jsonable(ds.attrs[k]) for k in SOURCE_ATTRS if k in ds.attrs}
    h5.attrs["source"] = json.dumps(source)


def _jsonable(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
