"""The contract between the training engine and a model family.

The engine (``sciml train CONFIG.yaml``) owns the loop: devices, DDP, AMP, optimiser, schedule, EMA, gradient
clipping, checkpoints, exact resume, NaN handling, logging and plots. A *task* owns everything specific to a model
family: its config sections, data, model, loss and metrics.

A YAML config has the top-level keys ``task`` (a name in :data:`TASKS`, or ``"package.module:Class"``), ``data``,
``model`` and ``loss`` (validated against :attr:`Task.data_defaults` / :attr:`Task.model_defaults` /
:attr:`Task.loss_defaults`: unknown keys and wrong types are an error) plus the engine's own sections (see
``sciml/training/config.py`` and ``docs/training.md``).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from data_tools.sampler import ResumableBatchSampler

#: task name -> "module:Class"
TASKS: dict[str, str] = {
    "mskf": "sciml.mskf.task:MSKFTask",
    "potential": "sciml.potential.task:PotentialTask",
}


def get_task_class(name: str) -> type[Task]:
    """Resolve a task name from the config (a key of :data:`TASKS` or ``"module:Class"``) to its class."""
    from sciml.errors import ConfigError

    if name in TASKS:
        target = TASKS[name]
    elif ":" in name:  # a user's own Task subclass, "package.module:Class"
        target = name
    else:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS)) or 'none'} "
                          "(or give 'package.module:Class')")
    module, cls = target.split(":")
    try:
        task_cls = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"task {name!r}: cannot import {target}: {exc}") from None
    if not (isinstance(task_cls, type) and issubclass(task_cls, Task)):
        raise ConfigError(f"task {name!r}: {target} is not a sciml.training.task.Task subclass")
    return task_cls


class Task(ABC):
    """A model family the engine can train. Instances are built from the validated ``data`` / ``model`` sections."""

    name: ClassVar[str]
    #: allowed keys of the ``data`` section and their defaults (``None`` = required)
    data_defaults: ClassVar[dict[str, Any]]
    #: allowed keys of the ``model`` section and their defaults
    model_defaults: ClassVar[dict[str, Any]]
    #: allowed keys of the ``loss`` section and their defaults
    loss_defaults: ClassVar[dict[str, Any]] = {}
    #: allowed values of section keys, checked with the config (before any data is read): {section: {key: choices}}
    config_choices: ClassVar[dict[str, dict[str, tuple[Any, ...]]]] = {}
    #: run validation with autograd enabled (e.g. forces as -dE/dx); otherwise under ``torch.no_grad()``
    eval_requires_grad: ClassVar[bool] = False

    def __init__(self, data: dict[str, Any], model: dict[str, Any], loss: dict[str, Any]):
        self.data_cfg, self.model_cfg, self.loss_cfg = data, model, loss

    # -- config -------------------------------------------------------------------------------------------
    @classmethod
    def section_defaults(cls, section: str, given: dict[str, Any] | None) -> dict[str, Any]:
        """Allowed keys and defaults of task section ``section`` (``data``, ``model`` or ``loss``); ``given`` is the
        raw section from the config, for tasks whose keys depend on a value in it (e.g. ``model.name``)."""
        return {"data": cls.data_defaults, "model": cls.model_defaults, "loss": cls.loss_defaults}[section]

    @classmethod
    def check_config(cls, cfg: dict[str, Any]) -> None:
        """Raise :class:`~sciml.errors.ConfigError` for values outside :attr:`config_choices` (subclasses add their
        own checks); ``cfg`` is the whole config with defaults filled in."""
        from sciml.errors import ConfigError

        for section, keys in cls.config_choices.items():
            for key, choices in keys.items():
                if cfg[section][key] not in choices:
                    raise ConfigError(f"{section}.{key} must be one of {', '.join(map(str, choices))}, "
                                      f"got {cfg[section][key]!r}")

    # -- data -------------------------------------------------------------------------------------------
    @abstractmethod
    def datasets(self) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset | None]:
        """(train, validation) map-style datasets; validation may be None."""

    @abstractmethod
    def batch_sampler(self, dataset: torch.utils.data.Dataset, *, train: bool, seed: int, rank: int,
                      world_size: int) -> ResumableBatchSampler:
        """Batches for ``dataset``; shuffled when ``train``."""

    @abstractmethod
    def collate(self, items: list[Any]) -> Any:
        """Turn dataset items into one batch (must be picklable for DataLoader workers)."""

    # -- model ------------------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self, train_dataset: torch.utils.data.Dataset | None) -> nn.Module:
        """A fresh model. With a dataset, statistics (normalisation, reference energies, ...) are fitted on it;
        with ``None`` (loading a checkpoint) they are left for ``load_state_dict`` to fill in."""

    # -- objective ----------------------------------------------------------------------------------------
    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss to minimise and detached per-batch metrics (summed quantities + counts, see below).

        ``model`` may be wrapped in DistributedDataParallel during training: call it (``model(...)``) rather than
        its methods, and reach attributes through ``getattr(model, "module", model)``. The engine wraps the call in
        bf16 autocast when AMP is on (CUDA only)."""

    @abstractmethod
    def reduce_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Turn metric sums accumulated over an epoch (keys as returned by :meth:`loss`) into reported values
        (e.g. MAE, RMSE in physical units). The key ``"val_score"`` (lower is better) selects the best checkpoint."""

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Optimiser parameter groups (default: one group of every parameter). A group with ``"no_decay": True`` gets
        weight decay 0 whatever ``optim.weight_decay`` says, also after a resume."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def to_device(self, batch: Any, device: torch.device) -> Any:
        """Move a batch to ``device`` (default: ``batch.to(device)``)."""
        return batch.to(device)

