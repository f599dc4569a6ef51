"""Helpers shared by tests/test_mskf_*.py: ``sciml train``-format checkpoints of small MSKF surrogates."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from sciml.mskf.task import MSKFTask


def write_checkpoint(path: Path, task: MSKFTask, model: nn.Module, ema: nn.Module | None = None) -> Path:
    """``model`` (built by ``task``) saved as ``sciml train`` saves it: the task's validated config, the raw
    weights and, if given, ``ema``'s weights as the EMA weights."""
    from sciml.training.checkpoint import save_checkpoint
    from sciml.training.config import validate_config

    config = validate_config({"task": "mskf", "data": task.data_cfg, "model": task.model_cfg, "loss": task.loss_cfg})
    save_checkpoint(path, {"config": config, "task": "mskf", "model": model.state_dict(),
                           "ema": None if ema is None else {"decay": 0.9, "updates": 1, "weights": ema.state_dict()}})
    return path
