"""Load an MSKF surrogate from a checkpoint (``sciml train`` output or a shipped ``.pt``) without unpickling code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from models.mskf_bilstm import MSKFNet, build_from_state_dict
from sciml.errors import DataError

#: where a state dict may sit inside a checkpoint dict, most preferred first (EMA weights win)
_STATE_KEYS = ("ema", "weights", "model", "model_state", "state_dict")


def _find_state(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, dict):
        if "prof_mean" in obj or any(k.endswith(".prof_mean") for k in obj if isinstance(k, str)):
            return obj
        for key in _STATE_KEYS:
            found = _find_state(obj.get(key))
            if found is not None:
                return found
    return None


def load_mskf_model(path: str | os.PathLike) -> MSKFNet:
    """The MSKF surrogate (:class:`MSKFNet`, either architecture) stored in ``path`` (CPU, eval mode). Raises
    :class:`DataError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file becomes a user-facing error
        raise DataError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
    state = _find_state(obj)
    if state is None:
        raise DataError(f"{path}: no MSKF surrogate weights found (expected a state dict with 'prof_mean')")
    prefix = next(k for k in state if k.endswith("prof_mean"))[: -len("prof_mean")]
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        model = build_from_state_dict(state)
    except (KeyError, RuntimeError) as exc:
        raise DataError(f"{path}: weights do not form an MSKF surrogate ({exc})") from exc
    return model.eval()
