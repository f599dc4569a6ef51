"""Load an MSKF surrogate from a ``sciml train`` checkpoint (or a shipped ``.pt``, which is one) without unpickling
code: the network is rebuilt from the checkpoint's stored config, then given its weights."""

from __future__ import annotations

import os

from models.mskf_bilstm import MSKFNet
from sciml.errors import DataError
from sciml.training.checkpoint import load_model


def load_mskf_model(path: str | os.PathLike) -> MSKFNet:
    """The MSKF surrogate (:class:`MSKFNet`, the architecture its config names) stored in the ``sciml train``
    checkpoint ``path``, with the EMA weights where the run kept them; on the CPU, in eval mode, float32. A missing
    or unreadable file, a checkpoint of another task or weights that do not fit the config raise
    :class:`~sciml.errors.DataError` naming the file."""
    model, _, _ = load_model(path, device="cpu", use_ema=True, task="mskf")
    if not isinstance(model, MSKFNet):  # a user's MSKFTask subclass may build another network
        raise DataError(f"checkpoint {path} holds a {type(model).__name__}, not an MSKF surrogate")
    return model
