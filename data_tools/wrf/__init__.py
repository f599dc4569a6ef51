"""WRF output for the MSKF surrogate: reader with WRF's diagnostics, grid <-> column mapping, column datasets."""

from data_tools.wrf.columns import (
    column_index,
    column_ij,
    columns_to_grid,
    columns_to_grid2d,
    columns_to_wrf_memory,
    columns_to_wrf_memory2d,
    grid2d_to_columns,
    grid_to_columns,
    wrf_memory2d_to_columns,
    wrf_memory_to_columns,
)
from data_tools.wrf.grid import check_same_grid, differences, grid_signature
from data_tools.wrf.reader import DERIVED, open_wrf
from data_tools.wrf.requirements import require

__all__ = [
    "DERIVED", "check_same_grid", "column_index", "column_ij", "columns_to_grid", "columns_to_grid2d",
    "columns_to_wrf_memory", "columns_to_wrf_memory2d", "differences", "grid2d_to_columns", "grid_signature",
    "grid_to_columns", "open_wrf", "require", "wrf_memory2d_to_columns", "wrf_memory_to_columns",
]
