"""Column order (c = j * nx + i, levels bottom to top) for wrfout (k, j, i) and WRF memory (i, k, j) arrays."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest

from data_tools.wrf import (
    column_index, column_ij, columns_to_grid, columns_to_grid2d, columns_to_wrf_memory, columns_to_wrf_memory2d,
    grid2d_to_columns, grid_to_columns, wrf_memory2d_to_columns, wrf_memory_to_columns,
)

CROP = Path(__file__).resolve().parents[1] / "examples" / "data" / "wrf_mskf_crop.nc"


@pytest.fixture(scope="module")
def fields() -> dict[str, np.ndarray]:
    """Real fields of the bundled crop (nx = 32 != ny = 24, so an i/j swap cannot pass)."""
    with netCDF4.Dataset(CROP) as d:
        return {n: np.asarray(d[n][0]) for n in ("T", "W", "RTHCUTEN", "PRATEC")}


def test_wrfout_columns_follow_j_nx_plus_i(fields: dict[str, np.ndarray]) -> None:
    for name in ("T", "W", "RTHCUTEN"):  # mass and staggered (nz + 1) levels alike
        a = fields[name]
        nk, ny, nx = a.shape
        cols = grid_to_columns(a)
        assert cols.shape == (ny * nx, nk)
        for j in range(ny):
            for i in range(nx):
                np.testing.assert_array_equal(cols[j * nx + i], a[:, j, i])
        assert np.shares_memory(cols, a)  # a view, no copy
        np.testing.assert_array_equal(columns_to_grid(cols, ny, nx), a)
    t = fields["T"]
    assert grid_to_columns(t)[0, 0] == t[0, 0, 0] and grid_to_columns(t)[0, -1] == t[-1, 0, 0]  # bottom -> top


def test_leading_time_axis(fields: dict[str, np.ndarray]) -> None:
    a = np.stack([fields["T"], fields["T"] + 1.0])
    cols = grid_to_columns(a)
    assert cols.shape == (2, a.shape[2] * a.shape[3], a.shape[1])
    np.testing.assert_array_equal(cols[1], grid_to_columns(fields["T"]) + 1.0)
    np.testing.assert_array_equal(columns_to_grid(cols, a.shape[2], a.shape[3]), a)


def test_wrf_memory_order_gives_the_same_columns(fields: dict[str, np.ndarray]) -> None:
    a = fields["RTHCUTEN"]  # (k, j, i)
    nk, ny, nx = a.shape
    tile = np.asfortranarray(a.transpose(2, 0, 1))  # WRF memory (i, k, j), Fortran order
    assert tile.shape == (nx, nk, ny) and tile.flags.f_contiguous
    cols = wrf_memory_to_columns(tile)
    np.testing.assert_array_equal(cols, grid_to_columns(a))
    assert cols.flags.c_contiguous
    back = columns_to_wrf_memory(cols, ny, nx)
    assert back.flags.f_contiguous
    np.testing.assert_array_equal(back, tile)
    # in place into an existing Fortran buffer (WRF's own array), and into a preallocated column buffer
    buf = np.zeros_like(tile, order="F")
    assert columns_to_wrf_memory(cols, ny, nx, out=buf) is buf
    np.testing.assert_array_equal(buf, tile)
    out = np.empty((ny * nx, nk), dtype=tile.dtype)
    assert wrf_memory_to_columns(tile, out=out) is out
    np.testing.assert_array_equal(out, cols)
    with pytest.raises(ValueError, match="C-contiguous"):
        wrf_memory_to_columns(tile, out=np.empty((nk, ny * nx), dtype=tile.dtype).T)


def test_2d_fields(fields: dict[str, np.ndarray]) -> None:
    a = fields["PRATEC"]  # (j, i)
    ny, nx = a.shape
    cols = grid2d_to_columns(a)
    j, i = 5, 17
    assert cols[column_index(i, j, nx)] == a[j, i]
    assert column_ij(column_index(i, j, nx), nx) == (i, j)
    np.testing.assert_array_equal(columns_to_grid2d(cols, ny, nx), a)
    tile = np.asfortranarray(a.T)  # WRF memory (i, j)
    view = wrf_memory2d_to_columns(tile)
    np.testing.assert_array_equal(view, cols)
    assert np.shares_memory(view, tile)  # no copy for Fortran-ordered 2-D tiles
    back = columns_to_wrf_memory2d(cols, ny, nx)
    assert back.shape == (nx, ny) and back.flags.f_contiguous and np.shares_memory(back, cols)
    np.testing.assert_array_equal(back, tile)
    buf = np.zeros((nx, ny), dtype=a.dtype, order="F")
    columns_to_wrf_memory2d(cols, ny, nx, out=buf)
    np.testing.assert_array_equal(buf, tile)


def test_wrong_grid_size_rejected(fields: dict[str, np.ndarray]) -> None:
    cols = grid_to_columns(fields["T"])
    with pytest.raises(ValueError, match="768 columns do not fit a 24 x 33"):
        columns_to_grid(cols, 24, 33)
    with pytest.raises(ValueError, match="columns do not fit"):
        columns_to_wrf_memory(cols, 23, 32)
