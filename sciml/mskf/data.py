"""MSKF training arrays from a ``sciml-wrf-columns`` HDF5 file (written by ``sciml wrf extract``).

What is an input and what is a target (see docs/wrf.md, "MSKF surrogate"): inputs are the model state only
(:data:`models.mskf_bilstm.PROFILE_INPUTS` per level, :data:`~models.mskf_bilstm.SURFACE_INPUTS` per column); the
frame's own tendencies, PRATEC and NCA are targets and never inputs (they would leak the answer). A column is
*active* when MSKF acts on it: deep (NCA >= 0.5 dt, tendencies held) or shallow (NCA < 0.5 dt, nonzero tendencies).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data_tools.wrf.column_file import open_column_file, read_features
from models.mskf_bilstm import COLUMN_OUTPUTS, PROFILE_INPUTS, SURFACE_INPUTS, TENDENCIES
from sciml.errors import DataError

#: model input name -> name in the column file / the wrfout dataset (derived fields lower-case, WRF fields upper)
SOURCE_NAME: dict[str, str] = {"w0avg": "W0AVG", "hfx": "HFX", "ust": "UST", "pblh": "PBLH"}


def source_name(name: str) -> str:
    """The column-file / dataset variable holding model input ``name``."""
    return SOURCE_NAME.get(name, name)


def activity(tendencies: np.ndarray, nca: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(deep, shallow) boolean masks per column from true ``tendencies`` [..., K, 6] and ``nca`` [...] (s)."""
    deep = nca >= 0.5 * dt
    shallow = ~deep & np.any(tendencies != 0, axis=(-1, -2))
    return deep, shallow


@dataclass
class ColumnArrays:
    """Rows of one split: raw inputs and targets in WRF units (float32 tensors)."""

    profiles: torch.Tensor    # [N, K, 11]
    surface: torch.Tensor     # [N, 3]
    tendencies: torch.Tensor  # [N, K, 6]
    column: torch.Tensor      # [N, 2] PRATEC (mm s-1), NCA (s; 0 where not deep)
    deep: torch.Tensor        # [N] bool
    shallow: torch.Tensor     # [N] bool

    @property
    def active(self) -> torch.Tensor:
        return self.deep | self.shallow

    def __len__(self) -> int:
        return int(self.profiles.shape[0])

    def select(self, rows: np.ndarray) -> ColumnArrays:
        return ColumnArrays(*(t[torch.as_tensor(rows)] for t in (self.profiles, self.surface, self.tendencies,
                                                                  self.column, self.deep, self.shallow)))


def load_columns(path: str | os.PathLike) -> tuple[ColumnArrays, np.ndarray, dict]:
    """All rows of a column file: (arrays, output-time index per row [N], grid info ``{"DT", "P_TOP", "ZNW"}``)."""
    path = Path(path)
    with open_column_file(path) as h5:
        prof = read_features(h5, "inputs", [source_name(n) for n in PROFILE_INPUTS]).transpose(0, 2, 1)
        sfc = read_features(h5, "inputs_2d", [source_name(n) for n in SURFACE_INPUTS])
        tend = read_features(h5, "targets", list(TENDENCIES)).transpose(0, 2, 1)
        col = read_features(h5, "targets_2d", list(COLUMN_OUTPUTS))
        frame = h5["frame"][()]
        grid = h5["grid"]
        dt = float(grid.attrs["DT"])
        info = {"DT": dt, "P_TOP": float(grid.attrs.get("P_TOP", np.nan)),
                "ZNW": grid["ZNW"][()] if "ZNW" in grid else None}
    bad = ~np.isfinite(prof).all(axis=(1, 2)) | ~np.isfinite(sfc).all(axis=1)
    if bad.any():
        raise DataError(f"{path}: {int(bad.sum())} rows have non-finite inputs (first row {int(np.argmax(bad))})")
    deep, shallow = activity(tend, col[:, 1], dt)
    col = col.copy()
    col[:, 1] = np.where(deep, col[:, 1], 0.0)  # NCA target: time scale left for deep columns, 0 otherwise
    arrays = ColumnArrays(torch.from_numpy(np.ascontiguousarray(prof, dtype=np.float32)),
                          torch.from_numpy(np.ascontiguousarray(sfc, dtype=np.float32)),
                          torch.from_numpy(np.ascontiguousarray(tend, dtype=np.float32)),
                          torch.from_numpy(np.ascontiguousarray(col, dtype=np.float32)),
                          torch.from_numpy(deep), torch.from_numpy(shallow))
    return arrays, frame, info


def split_by_time(frame: np.ndarray, val_frames: int, test_frames: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, validation) split by output time: the last ``test_frames`` times are left out entirely
    (kept for a final test), the ``val_frames`` times before them validate, the rest train."""
    times = np.unique(frame)
    if val_frames + test_frames >= len(times):
        raise DataError(f"cannot hold out {val_frames} + {test_frames} of {len(times)} output times; "
                        "at least one must train")
    n_train = len(times) - val_frames - test_frames
    is_train = np.isin(frame, times[:n_train])
    is_val = np.isin(frame, times[n_train:n_train + val_frames])
    return np.flatnonzero(is_train), np.flatnonzero(is_val)
