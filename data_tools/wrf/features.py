"""Feature selection and frame -> column arrays: the one path from an opened wrfout dataset to model arrays.

A feature is a variable of :func:`data_tools.wrf.open_wrf`'s dataset: per-level when it has ``bottom_top``
(mass levels), single-level when it is ``(Time, south_north, west_east)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import dask
import numpy as np
import xarray as xr

from data_tools.wrf.columns import grid2d_to_columns, grid_to_columns
from data_tools.wrf.reader import DERIVED
from data_tools.wrf.requirements import require, wrf_sources
from sciml.errors import DataError

#: state fields an MSKF surrogate may use without leaking its target (per-level first, then single-level)
DEFAULT_INPUTS: tuple[str, ...] = ("u", "v", "w", "t", "qv", "p", "th", "dz8w", "rho", "pi", "qvs", "rh", "W0AVG",
                                   "HFX", "UST", "PBLH")
#: MSKF outputs: the six tendencies (per level) and PRATEC, NCA, RAINCV (single level)
DEFAULT_TARGETS: tuple[str, ...] = ("RTHCUTEN", "RQVCUTEN", "RQCCUTEN", "RQRCUTEN", "RQICUTEN", "RQSCUTEN",
                                    "PRATEC", "NCA", "RAINCV")
#: units of WRF fields whose ``units`` attribute WRF leaves empty
UNITS_FALLBACK: dict[str, str] = {"NCA": "s", "CUTOP": "1", "CUBOT": "1", "XLAND": "1", "HTOP": "1", "HBOT": "1",
                                  "LANDMASK": "1", "KPBL": "1"}

_LEVEL_DIMS = ("Time", "bottom_top", "south_north", "west_east")
_SINGLE_DIMS = ("Time", "south_north", "west_east")


def split_features(ds: xr.Dataset, names: Sequence[str], path: str = "") -> tuple[list[str], list[str]]:
    """Split ``names`` into (per-level, single-level) features of ``ds``, keeping their order.

    Raises :class:`DataError` for unknown derived names, missing WRF variables (with the iofields fix) and
    variables on other grids (staggered levels, soil levels, ...).
    """
    where = path or ", ".join(ds.attrs.get("sciml_files", [])) or "dataset"
    unknown = [n for n in names if n.islower() and n not in DERIVED]
    if unknown:
        raise DataError(f"{where}: unknown derived quantity {', '.join(unknown)}; known: {', '.join(DERIVED)} "
                        "(WRF variables are upper-case)")
    dupes = sorted({n for n in names if list(names).count(n) > 1})
    if dupes:
        raise DataError(f"feature(s) listed twice: {', '.join(dupes)}")
    lacking = json.loads(ds.attrs.get("sciml_missing_in", "{}"))
    for var in wrf_sources(names):
        if var in lacking:
            require(", ".join(lacking[var]), (), [var])
    require(where, ds.variables, names)
    underived = [n for n in names if n not in ds.variables]
    if underived:  # e.g. dp_dry of a hybrid-coordinate file without C1H/C2H
        raise DataError(f"{where}: cannot derive {', '.join(underived)} from this file; see docs/wrf.md for the "
                        "WRF variables each derived field needs")
    levels, single = [], []
    for n in names:
        dims = ds[n].dims
        if dims == _LEVEL_DIMS:
            levels.append(n)
        elif dims == _SINGLE_DIMS:
            single.append(n)
        else:
            raise DataError(f"{where}: {n} has dims {dims}; a column feature needs {_LEVEL_DIMS} (mass levels) or "
                            f"{_SINGLE_DIMS} (use the mass-level versions z / w, not z_w / W)")
    return levels, single


def units_of(ds: xr.Dataset, name: str) -> str:
    """The unit string of variable ``name`` (WRF's attribute, or :data:`UNITS_FALLBACK`)."""
    return str(ds[name].attrs.get("units", "")).strip() or UNITS_FALLBACK.get(name, "")


def frame_columns(ds: xr.Dataset, levels: Sequence[str], single: Sequence[str], start: int,
                  stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Output times ``start:stop`` of ``ds`` as column arrays.

    Returns float32 ``(nt * ncol, len(levels), nz)`` and ``(nt * ncol, len(single))``; row = t * ncol + j * nx + i,
    levels bottom to top. Every variable is computed in one dask pass, so shared sources are read once.
    Raises :class:`DataError` naming file, time and variable if a value is not finite.
    """
    names = [*levels, *single]
    values = dask.compute(*[ds[n].data[start:stop] for n in names])  # slicing the arrays, not the whole dataset
    nt = len(range(*slice(start, stop).indices(ds.sizes["Time"])))
    nz, ny, nx = ds.sizes["bottom_top"], ds.sizes["south_north"], ds.sizes["west_east"]
    ncol = ny * nx
    x3 = np.empty((nt, ncol, len(levels), nz), dtype=np.float32)
    x2 = np.empty((nt, ncol, len(single)), dtype=np.float32)
    for f, a in enumerate(values[: len(levels)]):
        x3[:, :, f, :] = grid_to_columns(np.asarray(a))
    for f, a in enumerate(values[len(levels):]):
        x2[:, :, f] = grid2d_to_columns(np.asarray(a))
    _check_finite(ds, x3, levels, start, axes=(1, 3))
    _check_finite(ds, x2, single, start, axes=(1,))
    return x3.reshape(nt * ncol, len(levels), nz), x2.reshape(nt * ncol, len(single))


def _check_finite(ds: xr.Dataset, x: np.ndarray, names: Sequence[str], start: int, axes: tuple[int, ...]) -> None:
    bad = ~np.isfinite(x).all(axis=axes)  # (nt, F)
    if bad.any():
        t, f = (int(a[0]) for a in np.nonzero(bad))
        frame = start + t
        files = ds.attrs.get("sciml_files", ["?"])
        src = files[int(ds["source_file"].values[frame])] if "source_file" in ds.coords else files[0]
        stamp = str(ds["time"].values[frame]) if "time" in ds.coords else f"time index {frame}"
        raise DataError(f"{src}: {names[f]} has non-finite values at {stamp} (output time {frame})")
