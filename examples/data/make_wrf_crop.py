"""Make examples/data/wrf_mskf_crop.nc: one output time, 32 x 24 columns of the MSKF training file.

The window is west_east 16..47 x south_north 20..43 (the default arguments), all 40 levels.

Usage (from the repository root, where ../shared holds the project data):

    python examples/data/make_wrf_crop.py [--src ../shared/wrf_mskf/wrf_mskf_tc_train.nc] [--out ...]

Every variable and global attribute of the source is kept; values are copied unchanged (float32 as WRF wrote
them), netCDF-4 deflate level 9 with shuffle. The grid-dimension attributes are set to the cropped (staggered)
sizes, as WRF would write them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import netCDF4

from sciml.utils.atomic import atomic_path

REPO = Path(__file__).resolve().parents[2]


def make_crop(src: Path, out: Path, time: int, j0: int, ny: int, i0: int, nx: int) -> None:
    """Copy output time ``time`` and columns j0:j0+ny, i0:i0+nx (staggered dims one longer) of ``src`` to ``out``."""
    windows = {"Time": slice(time, time + 1), "south_north": slice(j0, j0 + ny), "west_east": slice(i0, i0 + nx),
               "south_north_stag": slice(j0, j0 + ny + 1), "west_east_stag": slice(i0, i0 + nx + 1)}
    with netCDF4.Dataset(src) as s, atomic_path(out, suffix=".nc") as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as d:
            for name, dim in s.dimensions.items():
                size = len(range(*windows[name].indices(len(dim)))) if name in windows else len(dim)
                d.createDimension(name, None if dim.isunlimited() else size)
            attrs = {k: s.getncattr(k) for k in s.ncattrs()}
            attrs["WEST-EAST_GRID_DIMENSION"] = nx + 1
            attrs["SOUTH-NORTH_GRID_DIMENSION"] = ny + 1
            attrs["SUBSET_NOTE"] = (f"{attrs.get('SUBSET_NOTE', '')}; sciml crop: output time {time} "
                                    f"({s['Times'][time].tobytes().decode()}), south_north {j0}..{j0 + ny - 1}, "
                                    f"west_east {i0}..{i0 + nx - 1} of the file above; values unchanged")
            d.setncatts(attrs)
            for name, var in s.variables.items():
                chunks = [1 if dim == "Time" else len(d.dimensions[dim]) for dim in var.dimensions]
                v = d.createVariable(name, var.dtype, var.dimensions, zlib=True, complevel=9, shuffle=True,
                                     chunksizes=chunks or None)
                v.setncatts({k: var.getncattr(k) for k in var.ncattrs()})
                v[:] = var[tuple(windows.get(dim, slice(None)) for dim in var.dimensions)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", type=Path, default=REPO.parent / "shared/wrf_mskf/wrf_mskf_tc_train.nc")
    p.add_argument("--out", type=Path, default=REPO / "examples/data/wrf_mskf_crop.nc")
    p.add_argument("--time", type=int, default=2, help="output time index (default 2: 2007-09-01_16:00:00)")
    p.add_argument("--j0", type=int, default=20)
    p.add_argument("--ny", type=int, default=24)
    p.add_argument("--i0", type=int, default=16)
    p.add_argument("--nx", type=int, default=32)
    a = p.parse_args()
    make_crop(a.src, a.out, a.time, a.j0, a.ny, a.i0, a.nx)
    print(f"wrote {a.out} ({a.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
