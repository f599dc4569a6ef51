"""TorchScript export of the MSKF surrogate tile module, for FTorch / libtorch (``sciml wrf export``)."""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import torch

from models.mskf_bilstm import TENDENCIES, MSKFNet
from sciml.coupling.tile import TILE_COLUMN, TILE_PROFILES, TILE_SURFACE, MSKFTile
from sciml.utils.atomic import atomic_path


def interface(model: MSKFNet) -> dict[str, Any]:
    """Machine-readable description of the exported module's inputs and outputs (stored in the file)."""
    nk = model.n_levels
    return {
        "forward": "(profiles, w, surface, held, params) -> (tendencies, column, w0avg)",
        "inputs": {
            "profiles": {"shape": ["ni", nk, "nj", len(TILE_PROFILES)], "channels": list(TILE_PROFILES)},
            "w": {"shape": ["ni", nk + 1, "nj"]},
            "surface": {"shape": ["ni", "nj", len(TILE_SURFACE)], "channels": list(TILE_SURFACE)},
            "held": {"shape": ["ni", nk, "nj", len(TENDENCIES)], "channels": list(TENDENCIES)},
            "params": {"shape": [2], "channels": ["dt_s", "tst_calls"]},
        },
        "outputs": {
            "tendencies": {"shape": ["ni", nk, "nj", len(TENDENCIES)], "channels": list(TENDENCIES)},
            "column": {"shape": ["ni", "nj", len(TILE_COLUMN)], "channels": list(TILE_COLUMN)},
            "w0avg": {"shape": ["ni", nk, "nj"]},
        },
        "dtype": "float32",
        "layout": "WRF memory order (i, k, j); shapes listed as Fortran shapes; outputs have Fortran strides",
        "model": model.config(),
        "grid": {"n_levels": nk, "p_top_pa": float(model.grid_p_top),
                 "znw": [float(v) for v in model.grid_eta]},
    }


def export_torchscript(model: MSKFNet, path: str | os.PathLike, max_columns: int = 4096) -> torch.jit.ScriptModule:
    """Script :class:`MSKFTile` around ``model`` (CPU, float32, eval; network batches of ``max_columns`` columns,
    0 = whole tile) and save it atomically to ``path``.

    The file also holds ``interface.json`` (see :func:`interface`) as a TorchScript extra file. TorchScript is
    deprecated in recent PyTorch but is what FTorch and libtorch's ``torch::jit::load`` read, so its deprecation
    warnings are silenced here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.script(MSKFTile(model.float().cpu().eval(), max_columns=max_columns).eval())
        with atomic_path(path, suffix=".pt") as tmp:
            torch.jit.save(module, str(tmp), _extra_files={"interface.json": json.dumps(interface(model), indent=1)})
    return module
