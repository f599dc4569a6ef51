"""The NumPy hook's ``state`` for a tile of a wrfout output time: what WRF's cumulus driver would pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from models.mskf_bilstm import TENDENCIES
from sciml.coupling.tile import TILE_PROFILES
from sciml.errors import DataError
from sciml.mskf.data import source_name


def wrf_tile_state(frame: Mapping[str, Any], i: slice = slice(None), j: slice = slice(None)) -> dict[str, np.ndarray]:
    """State for the tile (i, j) of one output time, in WRF memory order (ni, nk, nj) / (ni, nj), Fortran-ordered
    float32. ``frame``: variables in wrfout layout ((nk, ny, nx) / (ny, nx)), e.g. ``open_wrf(path).isel(Time=0)``
    (derived fields t, p, th, ... lower case, WRF fields upper case) or a dict of such arrays. NCA, PRATEC and the
    held tendencies come from the frame where present, else zeros (no convection held from an earlier call)."""

    def memory(name: str, default_like: str | None = None) -> np.ndarray:
        if name not in frame:
            if default_like is None:
                raise DataError(f"wrf_tile_state: the frame lacks {name}")
            return np.zeros_like(memory(default_like))
        a = np.asarray(frame[name], dtype=np.float32)
        a = a[:, j, i].transpose(2, 0, 1) if a.ndim == 3 else a[j, i].T
        return np.asfortranarray(a)

    state = {name: memory(source_name(name)) for name in TILE_PROFILES}
    state["w"] = memory("W")
    state.update({name.lower(): memory(name) for name in ("HFX", "UST", "PBLH")})
    state.update({name.lower(): memory(name, "HFX") for name in ("NCA", "PRATEC")})
    state.update({name.lower(): memory(name, "t") for name in TENDENCIES})
    return state
