"""The contract between the training engine and a model family.

The engine (``sciml train CONFIG.yaml``) owns the loop: devices, DDP, AMP, optimiser, schedule, EMA, gradient
clipping, checkpoints, exact resume, NaN handling, logging and plots. A *task* owns everything specific to a model
family: its config sections, data, model, loss and metrics.

A YAML config has the top-level keys ``task`` (a name in :data:`TASKS`), ``data`` and ``model`` (validated by the
task against :attr:`Task.data_defaults` / :attr:`Task.model_defaults`: unknown keys are an error) plus the engine's
own sections.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn

#: task name -> "module:Class"
TASKS: dict[str, str] = {}


def get_task_class(name: str) -> type[Task]:
    """Resolve a task name from the config to its class."""
    from sciml.errors import ConfigError

    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS)) or 'none'}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


class ResumableBatchSampler(ABC):
    """Yields lists of dataset indices; deterministic given (seed, epoch, rank, world_size).

    ``state_dict`` / ``load_state_dict`` carry the epoch and how many batches of it were already consumed, so a
    resumed run sees exactly the batches an uninterrupted one would. Under DDP every rank yields the same number of
    batches per epoch.
    """

    @abstractmethod
    def set_epoch(self, epoch: int) -> None: ...

    @abstractmethod
    def __iter__(self) -> Iterator[list[int]]: ...

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Task(ABC):
    """A model family the engine can train. Instances are built from the validated ``data`` / ``model`` sections."""

    name: ClassVar[str]
    #: allowed keys of the ``data`` section and their defaults (``None`` = required)
    data_defaults: ClassVar[dict[str, Any]]
    #: allowed keys of the ``model`` section and their defaults
    model_defaults: ClassVar[dict[str, Any]]
    #: allowed keys of the ``loss`` section and their defaults
    loss_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, data: dict[str, Any], model: dict[str, Any], loss: dict[str, Any]):
        self.data_cfg, self.model_cfg, self.loss_cfg = data, model, loss

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
        """Scalar loss to minimise and detached per-batch metrics (summed quantities + counts, see below)."""

    @abstractmethod
    def reduce_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Turn metric sums accumulated over an epoch (keys as returned by :meth:`loss`) into reported values
        (e.g. MAE, RMSE in physical units). The key ``"val_score"`` (lower is better) selects the best checkpoint."""

    def to_device(self, batch: Any, device: torch.device) -> Any:
        """Move a batch to ``device`` (default: ``batch.to(device)``)."""
        return batch.to(device)

