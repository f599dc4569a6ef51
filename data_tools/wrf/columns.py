"""Grid <-> column mapping shared by the wrfout reader and the WRF coupling hook.

Column order: column index ``c = j * nx + i`` (i = west_east fastest), each column's levels bottom to top.
Two source layouts map to the same columns:

* wrfout / netCDF (C order): 3-D ``(..., nk, ny, nx)`` = (bottom_top, south_north, west_east), 2-D ``(..., ny, nx)``;
* WRF memory order (Fortran, ``MemoryOrder = "XYZ"``): 3-D ``(nx, nk, ny)`` = (i, k, j), 2-D ``(nx, ny)`` = (i, j).

Column arrays are ``(..., ncol, nk)`` for 3-D fields and ``(..., ncol)`` for 2-D ones. ``nk`` is any level count
(mass levels or the nk+1 staggered w levels).

Copies: grid -> columns is a view (a transpose) for wrfout arrays; WRF memory -> columns needs one copy for 3-D
fields (columns are strided in (i, k, j) memory) and none for Fortran-ordered 2-D fields; the inverse functions
write into ``out`` (for example WRF's own Fortran buffer) when given.
"""

from __future__ import annotations

import numpy as np


def column_index(i: np.ndarray | int, j: np.ndarray | int, nx: int) -> np.ndarray | int:
    """Column index of grid point (i, j): ``j * nx + i``."""
    return j * nx + i


def column_ij(c: np.ndarray | int, nx: int) -> tuple[np.ndarray | int, np.ndarray | int]:
    """Inverse of :func:`column_index`: ``(i, j) = (c % nx, c // nx)``."""
    return c % nx, c // nx


def grid_to_columns(a: np.ndarray) -> np.ndarray:
    """``(..., nk, ny, nx)`` -> ``(..., ny*nx, nk)`` (a view when ``a`` is C-contiguous)."""
    *lead, nk, ny, nx = a.shape
    return a.reshape(*lead, nk, ny * nx).swapaxes(-1, -2)


def columns_to_grid(c: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """``(..., ny*nx, nk)`` -> ``(..., nk, ny, nx)``; inverse of :func:`grid_to_columns`."""
    *lead, ncol, nk = c.shape
    _check_ncol(ncol, ny, nx)
    return c.swapaxes(-1, -2).reshape(*lead, nk, ny, nx)


def grid2d_to_columns(a: np.ndarray) -> np.ndarray:
    """``(..., ny, nx)`` -> ``(..., ny*nx)``."""
    *lead, ny, nx = a.shape
    return a.reshape(*lead, ny * nx)


def columns_to_grid2d(c: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """``(..., ny*nx)`` -> ``(..., ny, nx)``; inverse of :func:`grid2d_to_columns`."""
    _check_ncol(c.shape[-1], ny, nx)
    return c.reshape(*c.shape[:-1], ny, nx)


def wrf_memory_to_columns(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """WRF tile ``(nx, nk, ny)`` (i, k, j) -> C-contiguous ``(ny*nx, nk)``; one copy (into ``out`` if given)."""
    nx, nk, ny = a.shape
    view = a.transpose(2, 0, 1)  # (ny, nx, nk), no copy
    if out is None:
        return np.ascontiguousarray(view).reshape(ny * nx, nk)
    if out.shape != (ny * nx, nk) or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous ({ny * nx}, {nk}) array, got {out.shape}")
    out.reshape(ny, nx, nk)[...] = view
    return out


def columns_to_wrf_memory(c: np.ndarray, ny: int, nx: int, out: np.ndarray | None = None) -> np.ndarray:
    """``(ny*nx, nk)`` -> WRF tile ``(nx, nk, ny)``; a Fortran-ordered new array, or written into ``out``."""
    ncol, nk = c.shape
    _check_ncol(ncol, ny, nx)
    if out is None:
        out = np.empty((nx, nk, ny), dtype=c.dtype, order="F")
    out.transpose(2, 0, 1)[...] = c.reshape(ny, nx, nk)
    return out


def wrf_memory2d_to_columns(a: np.ndarray) -> np.ndarray:
    """WRF 2-D tile ``(nx, ny)`` (i, j) -> ``(ny*nx,)``; a view for Fortran-ordered input."""
    nx, ny = a.shape
    return a.T.reshape(ny * nx)


def columns_to_wrf_memory2d(c: np.ndarray, ny: int, nx: int, out: np.ndarray | None = None) -> np.ndarray:
    """``(ny*nx,)`` -> WRF 2-D tile ``(nx, ny)``; a Fortran-ordered view of ``c``, or written into ``out``."""
    _check_ncol(c.shape[0], ny, nx)
    grid = c.reshape(ny, nx).T  # (nx, ny), Fortran-ordered view
    if out is None:
        return grid
    out[...] = grid
    return out


def _check_ncol(ncol: int, ny: int, nx: int) -> None:
    if ncol != ny * nx:
        raise ValueError(f"{ncol} columns do not fit a {ny} x {nx} (ny x nx) grid")
