"""Open one or many wrfout files as one lazy, dask-chunked :class:`xarray.Dataset` with WRF's diagnostics added.

Files are concatenated along ``Time`` in the order given; all must share one grid (see :mod:`.grid`).
WRF variables keep their upper-case names and attributes; derived per-level fields are lower-case
(``p``, ``p_hyd``, ``th``, ``pi``, ``t``, ``qv``, ``z_w``, ``z``, ``dz8w``, ``u``, ``v``, ``w``, ``rho``,
``qvs``, ``rh``, ``dp_dry``), each with ``units`` and ``description`` attributes. A derived field whose
sources are absent is simply not added; ask :func:`data_tools.wrf.requirements.require` for an error.
Variables present in only some of the files are dropped; ``ds.attrs["sciml_missing_in"]`` (JSON) maps each
to the files that lack it.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from data_tools.wrf import derived as d
from data_tools.wrf.grid import check_same_grid, grid_signature
from sciml.errors import DataError

PathLike = str | os.PathLike

MASS = ("Time", "bottom_top", "south_north", "west_east")
STAG = ("Time", "bottom_top_stag", "south_north", "west_east")

#: derived name -> (units, description); the order is the order they are added
DERIVED: dict[str, tuple[str, str]] = {
    "p": ("Pa", "pressure at mass points, P + PB"),
    "p_hyd": ("Pa", "hydrostatic pressure at mass points (P_HYD)"),
    "th": ("K", "dry potential temperature, T + 300"),
    "pi": ("1", "Exner function (p / 1e5) ** (Rd/cp), Rd/cp = 2/7"),
    "t": ("K", "temperature, th * pi"),
    "qv": ("kg kg-1", "water vapour mixing ratio (QVAPOR)"),
    "z_w": ("m", "height of w levels above mean sea level, (PH + PHB) / 9.81"),
    "z": ("m", "height of mass levels above mean sea level, mean of neighbouring z_w"),
    "dz8w": ("m", "layer thickness z_w[k+1] - z_w[k]"),
    "u": ("m s-1", "x-wind at mass points, mean of neighbouring U"),
    "v": ("m s-1", "y-wind at mass points, mean of neighbouring V"),
    "w": ("m s-1", "layer-mean vertical velocity, mean of W at the layer's bottom and top"),
    "rho": ("kg m-3", "moist air density (1 + qv) / alt, alt = Rd t (1 + Rv/Rd qv) / p"),
    "qvs": ("kg kg-1", "saturation mixing ratio over water 0.622 es / (p - es), es from SVP1..SVP3"),
    "rh": ("1", "relative humidity clip(qv / qvs, 0, 1)"),
    "dp_dry": ("Pa", "dry-air pressure thickness of the layer, -(C1H (MU + MUB) + C2H) DNW (C1H, C2H used when "
                     "HYBRID_OPT > 0)"),
}


def open_wrf(paths: PathLike | Sequence[PathLike], chunks: dict[str, int] | str | None = None,
             derive: bool = True) -> xr.Dataset:
    """Open wrfout file(s) lazily and add the derived diagnostics.

    ``paths``: one path or a sequence, concatenated along ``Time`` in that order. ``chunks``: dask chunks
    (default one output time per chunk, ``{"Time": 1}``). Raises :class:`DataError` naming the file for an
    unreadable or non-WRF file, or for files whose grids differ. Adds a ``time`` coordinate (datetime64 parsed
    from ``Times``) and ``source_file`` (index into ``ds.attrs["sciml_files"]``) along ``Time``.
    """
    files = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not files:
        raise DataError("no wrfout files given")
    chunks = {"Time": 1} if chunks is None else chunks
    parts = [_open_one(f, chunks) for f in files]
    signatures = [grid_signature(p) for p in parts]
    for f, sig in zip(files[1:], signatures[1:]):
        check_same_grid(signatures[0], sig, str(files[0]), str(f))
    common = set.intersection(*(set(p.variables) for p in parts))
    dropped = sorted(set.union(*(set(p.variables) for p in parts)) - common)
    lacking = {v: [str(f) for f, p in zip(files, parts) if v not in p.variables] for v in dropped}
    parts = [p[[v for v in p.data_vars if v in common]] for p in parts]
    for n, p in enumerate(parts):
        p.coords["source_file"] = ("Time", np.full(p.sizes["Time"], n, dtype=np.int32))
    ds = parts[0] if len(parts) == 1 else xr.concat(
        parts, dim="Time", data_vars="minimal", coords="minimal", compat="override", join="override",
        combine_attrs="override")
    ds.attrs["sciml_files"] = [str(f) for f in files]
    ds.attrs["sciml_missing_in"] = json.dumps(lacking)  # variable -> files without it (dropped from ds)
    return add_derived(ds) if derive else ds


def _open_one(path: Path, chunks: dict[str, int] | str) -> xr.Dataset:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # files stored with several times per netCDF chunk are still read right
            warnings.filterwarnings("ignore", message="The specified chunks separate the stored chunks")
            ds = xr.open_dataset(path, engine="netcdf4", chunks=chunks, decode_times=False, mask_and_scale=False)
    except Exception as exc:  # netCDF4/HDF5 raise many types for corrupt files
        raise DataError(f"{path}: cannot be read as netCDF ({exc})") from exc
    try:
        return ds.assign_coords(time=("Time", _check_wrfout(ds, path)))
    except DataError:
        ds.close()
        raise


def _check_wrfout(ds: xr.Dataset, path: Path) -> np.ndarray:
    """The output times of ``ds`` (datetime64[s] from ``Times``); DataError if it does not look like wrfout."""
    for dim in ("Time", "bottom_top", "south_north", "west_east"):
        if dim not in ds.dims:
            raise DataError(f"{path}: not a wrfout file (no '{dim}' dimension; dims are {dict(ds.sizes)})")
    if "Times" not in ds.variables:
        raise DataError(f"{path}: not a wrfout file (no 'Times' variable)")
    if ds.sizes["Time"] == 0:
        raise DataError(f"{path}: no output times (Time dimension is empty)")
    times = [t.decode() if isinstance(t, bytes) else str(t) for t in np.asarray(ds["Times"].values).ravel()]
    try:
        return np.array([np.datetime64(t.replace("_", "T"), "s") for t in times], dtype="datetime64[s]")
    except ValueError as exc:
        raise DataError(f"{path}: unreadable Times {times!r} ({exc})") from exc


def add_derived(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` with every derived field of :data:`DERIVED` whose WRF sources are present (lazy)."""
    v = ds.variables
    new: dict[str, tuple[tuple[str, ...], object]] = {}
    if {"P", "PB"} <= v.keys():
        new["p"] = (MASS, d.pressure(ds["P"].data, ds["PB"].data))
        new["pi"] = (MASS, d.exner(new["p"][1]))
    if "P_HYD" in v:
        new["p_hyd"] = (MASS, ds["P_HYD"].data)
    if "T" in v:
        new["th"] = (MASS, d.theta(ds["T"].data))
        if "pi" in new:
            new["t"] = (MASS, d.temperature(new["th"][1], new["pi"][1]))
    if "QVAPOR" in v:
        new["qv"] = (MASS, ds["QVAPOR"].data)
    if {"PH", "PHB"} <= v.keys():
        z_w = d.geopotential_height(ds["PH"].data, ds["PHB"].data)
        new["z_w"] = (STAG, z_w)
        new["z"] = (MASS, d.destagger(z_w, axis=1))
        new["dz8w"] = (MASS, d.layer_thickness(z_w, axis=1))
    if "U" in v:
        new["u"] = (MASS, d.destagger(ds["U"].data, axis=3))
    if "V" in v:
        new["v"] = (MASS, d.destagger(ds["V"].data, axis=2))
    if "W" in v:
        new["w"] = (MASS, d.destagger(ds["W"].data, axis=1))
    if "t" in new:
        p, t = new["p"][1], new["t"][1]
        if "qv" in new:
            new["rho"] = (MASS, d.density(p, t, new["qv"][1]))
        new["qvs"] = (MASS, d.saturation_mixing_ratio(p, t))
        if "qv" in new:
            new["rh"] = (MASS, d.relative_humidity(new["qv"][1], new["qvs"][1]))
    hybrid = int(ds.attrs.get("HYBRID_OPT", 0)) > 0
    if {"MU", "MUB", "ZNW"} <= v.keys() and (not hybrid or {"C1H", "C2H"} <= v.keys()):
        dnw = d.layer_thickness(_per_time(ds, "ZNW"), axis=1)  # (Time, nz), negative
        c1h, c2h = (_per_time(ds, n) if hybrid else None for n in ("C1H", "C2H"))
        new["dp_dry"] = (MASS, d.dry_layer_pressure_thickness(ds["MU"].data + ds["MUB"].data, dnw, c1h, c2h))
    out = ds.copy()
    for name in DERIVED:
        if name in new:
            dims, data = new[name]
            units, desc = DERIVED[name]
            out[name] = xr.DataArray(data, dims=dims, attrs={"units": units, "description": desc})
    return out


def _per_time(ds: xr.Dataset, name: str) -> object:
    """The data of a per-level variable as (Time, levels), whether or not the file stores it with ``Time``."""
    a = ds[name]
    return (a if "Time" in a.dims else a.expand_dims(Time=ds.sizes["Time"])).transpose("Time", ...).data
