"""Offline MSKF surrogate inference over wrfout files (``sciml wrf infer``).

Each output time is run through the same tile path as the WRF hook (:class:`sciml.coupling.MSKFSurrogate`), in
slabs of whole ``south_north`` rows. Offline, no previous MSKF call exists: every column is treated as one MSKF
evaluates (input NCA = 0, nothing held), i.e. the surrogate predicts from the state alone. The W0AVG written by WRF
is the value *after* the update of the last call, which is what the model saw in training; the hook updates W0AVG
itself, so the file value is first mapped back to the pre-update value (exact inverse of the running mean).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from data_tools.wrf import differences, grid_signature, open_wrf, require
from sciml.coupling.hook import HELD, MSKFSurrogate, w0avg_length
from sciml.coupling.tile import TILE_PROFILES
from sciml.errors import DataError
from sciml.mskf.data import source_name

#: global ``title`` of the files ``sciml wrf infer`` writes (how a rerun recognises its own output)
TITLE = "MSKF cumulus fields predicted by the sciml surrogate"
#: dataset variables the surrogate reads (derived lower-case, WRF upper-case); W is the staggered w
INPUT_VARIABLES: tuple[str, ...] = (*(source_name(n) for n in TILE_PROFILES), "W", "HFX", "UST", "PBLH")
#: predicted fields written to the output (WRF names), 3-D first
OUTPUT_3D: tuple[str, ...] = (*(n.upper() for n in HELD), "W0AVG")
OUTPUT_2D: tuple[str, ...] = ("PRATEC", "RAINCV", "NCA", "TRIGGER_PROB")
#: (units, description) used where the input file does not carry WRF's attributes for a field
FIELD_ATTRS: dict[str, tuple[str, str]] = {
    "RTHCUTEN": ("K s-1", "THETA TENDENCY DUE TO CUMULUS SCHEME"),
    "RQVCUTEN": ("kg kg-1 s-1", "Q_V TENDENCY DUE TO CUMULUS SCHEME"),
    "RQCCUTEN": ("kg kg-1 s-1", "Q_C TENDENCY DUE TO CUMULUS SCHEME"),
    "RQRCUTEN": ("kg kg-1 s-1", "Q_R TENDENCY DUE TO CUMULUS SCHEME"),
    "RQICUTEN": ("kg kg-1 s-1", "Q_I TENDENCY DUE TO CUMULUS SCHEME"),
    "RQSCUTEN": ("kg kg-1 s-1", "Q_S TENDENCY DUE TO CUMULUS SCHEME"),
    "W0AVG": ("m s-1", "AVERAGE VERTICAL VELOCITY FOR KF CUMULUS SCHEME"),
    "PRATEC": ("mm s-1", "PRECIP RATE FROM CUMULUS SCHEME"),
    "RAINCV": ("mm", "TIME-STEP CUMULUS PRECIPITATION"),
    "NCA": ("s", "COUNTER FOR CUMULUS SCHEME, TIME LEFT BEFORE MSKF EVALUATES THE COLUMN AGAIN"),
    "TRIGGER_PROB": ("1", "SURROGATE PROBABILITY THAT MSKF CONVECTION IS ACTIVE"),
}


def open_checked(paths: Sequence[str | os.PathLike], surrogate: MSKFSurrogate,
                 also: Sequence[str] = ()) -> xr.Dataset:
    """Open ``paths`` and refuse them unless their vertical grid is the model's and the inputs (and ``also``) are
    all present; the error lists every missing variable and the iofields line that makes WRF write it."""
    ds = open_wrf(paths)
    where = ", ".join(str(p) for p in paths)
    check_vertical_grid(ds, surrogate, where)
    require(where, ds.variables, [*INPUT_VARIABLES, *also])
    return ds


def check_vertical_grid(ds: xr.Dataset, surrogate: MSKFSurrogate, where: str) -> None:
    """Raise :class:`DataError` if ``ds`` has another level count, model top or eta levels than the training grid."""
    model = surrogate.tile.model
    eta = model.grid_eta.numpy()
    trained = {"nz": model.n_levels,
               "P_TOP": None if np.isnan(float(model.grid_p_top)) else float(model.grid_p_top),
               "ZNW": None if np.isnan(eta).any() else eta.tolist()}
    diff = differences(trained, grid_signature(ds), keys=("nz", "P_TOP", "ZNW"))
    if diff:
        raise DataError(f"{where}: vertical grid differs from the one the surrogate was trained on ("
                        + "; ".join(f"model vs file {d}" for d in diff) + "). A surrogate only applies to its "
                        "training vertical grid (level count, model top and eta levels); train one on this grid.")


def frame_dt(ds: xr.Dataset) -> tuple[float, float]:
    """(dt in s, cudt in min) from the WRF global attributes ``DT`` and ``CUDT`` (cudt 0 if absent)."""
    if "DT" not in ds.attrs:
        raise DataError(f"{', '.join(ds.attrs.get('sciml_files', []))}: no DT global attribute (model time step)")
    return float(ds.attrs["DT"]), float(ds.attrs.get("CUDT", 0.0))


def nonfinite_columns(values: dict[str, np.ndarray]) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Columns (ny, nx) with a non-finite value in any input, and (variable, j, i) of the first per variable."""
    bad = None
    first = []
    for name, arr in values.items():
        col = ~np.isfinite(arr).all(axis=0) if arr.ndim == 3 else ~np.isfinite(arr)
        if col.any():
            j, i = np.argwhere(col)[0]
            first.append((name, int(j), int(i)))
        bad = col if bad is None else bad | col
    return bad, first


def predict_frame(surrogate: MSKFSurrogate, frame: xr.Dataset, dt: float, cudt: float, max_columns: int = 16384,
                  mask_nonfinite: bool = False, where: str = "") -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Surrogate outputs for one output time (``frame`` without ``Time``), in wrfout layout: 3-D (nk, ny, nx),
    2-D (ny, nx), float32, names as :data:`OUTPUT_3D` / :data:`OUTPUT_2D`, and the mask (ny, nx) of columns whose
    inputs are not all finite. Such columns raise :class:`DataError` naming variable, time (``where``) and column,
    or, with ``mask_nonfinite``, get NaN outputs."""
    values = {n: np.asarray(frame[n].values, dtype=np.float32) for n in INPUT_VARIABLES}
    masked, first = nonfinite_columns(values)
    if first and not mask_nonfinite:
        listed = "; ".join(f"{name} at column (i={i}, j={j})" for name, j, i in first)
        raise DataError(f"{where}: non-finite inputs in {int(masked.sum())} column(s): {listed}. Fix the input, "
                        "or pass --mask-nonfinite to skip those columns (NaN outputs, counted in the output)")
    if first:
        values = {n: np.where(masked, 0.0, v).astype(np.float32) for n, v in values.items()}
    nk, ny, nx = values["t"].shape
    tst = w0avg_length(dt, cudt)
    wbar = 0.5 * (values["W"][:-1] + values["W"][1:])
    values["W0AVG"] = (values["W0AVG"] * tst - wbar) / (tst - 1.0)  # pre-update W0AVG (see module docstring)
    out = {n: np.empty((nk, ny, nx), np.float32) for n in OUTPUT_3D}
    out.update({n: np.empty((ny, nx), np.float32) for n in OUTPUT_2D})
    rows = max(1, max_columns // nx)
    for j0 in range(0, ny, rows):
        sl = slice(j0, min(ny, j0 + rows))
        state = {name: values[source_name(name)][:, sl, :].transpose(2, 0, 1) for name in TILE_PROFILES}
        state["w"] = values["W"][:, sl, :].transpose(2, 0, 1)
        state.update({name.lower(): values[name][sl, :].T for name in ("HFX", "UST", "PBLH")})
        state["nca"] = np.zeros((nx, sl.stop - sl.start), np.float32)
        res = surrogate.step(state, dt=dt, cudt=cudt)
        for name in OUTPUT_3D:
            out[name][:, sl, :] = res[name.lower()].transpose(1, 2, 0)
        for name in OUTPUT_2D:
            out[name][sl, :] = res[name.lower()].T
    for name, arr in out.items():
        arr[..., masked] = np.nan
    return out, masked


def iter_predictions(surrogate: MSKFSurrogate, ds: xr.Dataset, progress: bool = True,
                     mask_nonfinite: bool = False) -> Iterator[tuple[int, dict[str, np.ndarray], np.ndarray]]:
    """``(time index, outputs, masked columns)`` of :func:`predict_frame` for every output time of ``ds``, with an
    optional progress bar."""
    from tqdm import tqdm

    dt, cudt = frame_dt(ds)
    files = ", ".join(str(f) for f in ds.attrs.get("sciml_files", []))
    times = np.asarray(ds["time"].values).astype("datetime64[s]") if "time" in ds.coords else None
    for t in tqdm(range(ds.sizes["Time"]), desc="MSKF surrogate", unit="frame", disable=not progress):
        where = f"{files}: output time {t}" + (f" ({times[t]})" if times is not None else "")
        out, masked = predict_frame(surrogate, ds[list(INPUT_VARIABLES)].isel(Time=t).compute(), dt, cudt,
                                    mask_nonfinite=mask_nonfinite, where=where)
        yield t, out, masked


def write_predictions(ds: xr.Dataset, surrogate: MSKFSurrogate, out_path: str | os.PathLike, checkpoint: str,
                      progress: bool = True, overwrite: bool = False, mask_nonfinite: bool = False) -> dict[str, Any]:
    """Run the surrogate over every output time of ``ds`` and write a CF-style netCDF on the WRF grid (atomically).

    The file has WRF's dimensions (``Time``, ``bottom_top``, ``south_north``, ``west_east``), ``Times``/``XTIME``
    and ``XLAT``/``XLONG`` when present, the predicted fields under their WRF names with WRF's attributes (copied from
    the input where it has them) plus ``long_name``, and WRF's global attributes. ``out_path`` is never one of the
    input files, and an existing file there that this command did not write is only replaced with ``overwrite``.
    Columns with non-finite inputs are refused, or with ``mask_nonfinite`` written as NaN and counted in the global
    attribute ``sciml_masked_columns``. Returns a summary.
    """
    import netCDF4

    from sciml import __version__
    from sciml.utils.atomic import atomic_path
    from sciml.utils.outputs import check_outputs, hdf5_attr

    check_outputs([Path(out_path)], ds.attrs.get("sciml_files", []), overwrite=overwrite,
                  ours=lambda f: hdf5_attr(f, "title") == TITLE, command="sciml wrf infer")

    nt, nk = ds.sizes["Time"], ds.sizes["bottom_top"]
    ny, nx = ds.sizes["south_north"], ds.sizes["west_east"]
    with atomic_path(out_path, suffix=".nc") as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        for key, value in ds.attrs.items():
            if not key.startswith("sciml_"):
                nc.setncattr(key, value)
        nc.setncattr("Conventions", "CF-1.8")
        nc.setncattr("title", TITLE)
        nc.setncattr("source", f"sciml {__version__} MSKF surrogate, checkpoint {checkpoint}")
        nc.setncattr("input_files", ", ".join(ds.attrs.get("sciml_files", [])))
        nc.setncattr("comment", "offline inference from the state alone: every column treated as evaluated by "
                                "MSKF (input NCA = 0, no held tendencies); see docs/wrf.md")
        nc.createDimension("Time", None)
        nc.createDimension("DateStrLen", 19)
        nc.createDimension("bottom_top", nk)
        nc.createDimension("south_north", ny)
        nc.createDimension("west_east", nx)
        _copy_static(ds, nc)
        vars_ = {}
        for name in (*OUTPUT_3D, *OUTPUT_2D):
            is3d = name in OUTPUT_3D
            dims = ("Time", "bottom_top", "south_north", "west_east") if is3d else ("Time", "south_north", "west_east")
            v = nc.createVariable(name, "f4", dims, zlib=True, complevel=4,
                                  chunksizes=(1, nk, ny, nx) if is3d else (1, ny, nx))
            v.setncatts(_field_attrs(ds, name, len(dims) - 1))
            vars_[name] = v
        n_masked = 0
        for t, pred, masked in iter_predictions(surrogate, ds, progress, mask_nonfinite):
            for name, v in vars_.items():
                v[t] = pred[name]
            n_masked += int(masked.sum())
        if mask_nonfinite:
            nc.setncattr("sciml_masked_columns", n_masked)
            nc.setncattr("sciml_masked_columns_comment", "columns (summed over output times) whose inputs were not "
                                                         "all finite: outputs NaN (--mask-nonfinite)")
    return {"out": str(out_path), "frames": nt, "columns_per_frame": nx * ny, "levels": nk, "masked": n_masked}


def _copy_static(ds: xr.Dataset, nc: Any) -> None:
    """Times, XTIME and the lat/lon fields of ``ds`` (as WRF stores them)."""
    if "Times" in ds.variables:
        v = nc.createVariable("Times", "S1", ("Time", "DateStrLen"))
        v[:] = np.asarray(ds["Times"].values).astype("S19").view("S1").reshape(-1, 19)
    for name in ("XTIME", "XLAT", "XLONG"):
        if name in ds.variables and ds[name].dims[0] == "Time":
            src = ds[name]
            v = nc.createVariable(name, "f4", src.dims)
            v.setncatts({k: val for k, val in src.attrs.items() if k != "_FillValue"})
            v[:] = np.asarray(src.values, dtype=np.float32)


def _field_attrs(ds: xr.Dataset, name: str, ndim: int) -> dict[str, Any]:
    units, description = FIELD_ATTRS[name]
    attrs: dict[str, Any] = {"FieldType": np.int32(104), "MemoryOrder": "XYZ" if ndim == 3 else "XY ",
                             "description": description, "units": units, "stagger": ""}
    if name in ds.variables:
        attrs.update({k: v for k, v in ds[name].attrs.items() if k != "_FillValue"})
    attrs["units"] = attrs.get("units") or units  # WRF leaves NCA's unit empty
    attrs["long_name"] = attrs["description"]
    if "XLAT" in ds.variables:
        attrs.setdefault("coordinates", "XLONG XLAT XTIME")
    return attrs
