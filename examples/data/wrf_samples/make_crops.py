"""Make the small WRF test samples in examples/data/wrf_samples/ from the real files in ../shared/wrf_samples.

Usage (from the repository root, where ../shared holds the project data):

    python examples/data/wrf_samples/make_crops.py [--src ../shared/wrf_samples] [--out examples/data/wrf_samples]

* ``wrfpython_ci_test_crop.nc``: output times 0..1 (2005-08-28_12:00 and 15:00) and the 10 x 12 columns
  south_north 38..47, west_east 36..47 (the north-east corner, with Katrina's centre), all 14 levels, of wrf-python's
  ``ci_test_file.nc``.
* ``wrfpython_ci_result_crop.nc``: the same 10 x 12 columns of wrf-python's diagnostics of output time 0
  (``ci_result_file.nc``); the variables not on the model grid (``vertcross``, ``interpline``, ``xy``, ``ll``:
  a cross-section, a line and a point defined on the full 48 x 48 grid) are left out.
* ``salem_wrf_d01_t0.nc``: output time 0 (2005-09-21_00:00), all 8 x 10 columns and 27 levels, of salem's
  ``wrf_d01_allvars_cropped.nc``.

Every other variable and every attribute is kept and values are copied unchanged (the WRF files' grid-dimension
attributes already name the uncropped domain upstream and are left as they are); each file gets a global attribute
``sciml_crop`` saying what was cut. netCDF-4; variables of 8 KiB or more deflated (level 9, shuffle), smaller ones
stored contiguous.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import netCDF4
import numpy as np

from sciml.utils.atomic import atomic_path

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent

#: variables smaller than this (bytes) are stored contiguous and uncompressed: a chunked variable costs a few KiB of
#: HDF5 index, more than deflate saves on them
SMALL = 8192

#: window of the wrf-python sample: 10 x 12 columns, the staggered dimensions one longer
KATRINA = {"south_north": slice(38, 48), "west_east": slice(36, 48),
           "south_north_stag": slice(38, 49), "west_east_stag": slice(36, 49)}


def crop(src: Path, out: Path, windows: dict[str, slice], note: str, drop: tuple[str, ...] = ()) -> None:
    """Copy ``src`` to ``out`` with the dimensions in ``windows`` cut to their slices and the variables in ``drop``
    left out (dimensions no kept variable uses are left out too)."""
    with netCDF4.Dataset(src) as s, atomic_path(out, suffix=".nc") as tmp:
        keep = [v for name, v in s.variables.items() if name not in drop]
        used = {dim for v in keep for dim in v.dimensions}
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as d:
            for name, dim in s.dimensions.items():
                if name in used:
                    size = len(range(*windows[name].indices(len(dim)))) if name in windows else len(dim)
                    d.createDimension(name, None if dim.isunlimited() else size)
            d.setncatts({**{k: s.getncattr(k) for k in s.ncattrs()}, "sciml_crop": note})
            for var in keep:
                index = tuple(windows.get(dim, slice(None)) for dim in var.dimensions)
                shape = [len(d.dimensions[dim]) for dim in var.dimensions]
                fill = var.getncattr("_FillValue") if "_FillValue" in var.ncattrs() else None
                if var.dtype == str or np.prod(shape) * var.dtype.itemsize < SMALL:
                    v = d.createVariable(var.name, var.dtype, var.dimensions, contiguous=True, fill_value=fill)
                else:
                    chunks = [1 if dim == "Time" else n for dim, n in zip(var.dimensions, shape)]
                    v = d.createVariable(var.name, var.dtype, var.dimensions, zlib=True, complevel=9, shuffle=True,
                                         chunksizes=chunks, fill_value=fill)
                v.setncatts({k: var.getncattr(k) for k in var.ncattrs() if k != "_FillValue"})
                var.set_auto_maskandscale(False)
                v.set_auto_maskandscale(False)
                v[:] = var[index]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", type=Path, default=REPO.parent / "shared" / "wrf_samples")
    p.add_argument("--out", type=Path, default=HERE)
    a = p.parse_args()
    columns = "south_north 38..47, west_east 36..47 (10 x 12 of 48 x 48 columns)"
    crop(a.src / "wrfpython_ci_test_file.nc", a.out / "wrfpython_ci_test_crop.nc",
         {"Time": slice(0, 2), **KATRINA},
         f"cropped by sciml (examples/data/wrf_samples/make_crops.py) from wrf-python test/ci_tests/ci_test_file.nc: "
         f"output times 0..1 of 4, {columns}; values unchanged")
    crop(a.src / "wrfpython_ci_result_file.nc", a.out / "wrfpython_ci_result_crop.nc", KATRINA,
         f"cropped by sciml (examples/data/wrf_samples/make_crops.py) from wrf-python test/ci_tests/ci_result_file.nc: "
         f"{columns}; vertcross, interpline, xy and ll (defined on the full grid) left out; values unchanged",
         drop=("vertcross", "interpline", "xy", "ll"))
    crop(a.src / "salem_wrf_d01_allvars_cropped.nc", a.out / "salem_wrf_d01_t0.nc", {"Time": slice(0, 1)},
         "cropped by sciml (examples/data/wrf_samples/make_crops.py) from salem-sample-data "
         "salem-test/grid/wrf_d01_allvars_cropped.nc: output time 0 of 4; values unchanged")
    for name in ("wrfpython_ci_test_crop.nc", "wrfpython_ci_result_crop.nc", "salem_wrf_d01_t0.nc"):
        print(f"wrote {a.out / name} ({(a.out / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
