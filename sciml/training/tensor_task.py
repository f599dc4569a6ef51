"""A :class:`~sciml.training.task.Task` base for datasets whose items are tuples of tensors (``TensorDataset``)."""

from __future__ import annotations

import torch

from sciml.training.samplers import IndexBatchSampler
from sciml.training.task import ResumableBatchSampler, Task


class TensorTask(Task):
    """Items are equal-length tuples of tensors; a batch is the tuple of their stacks ([B, ...] each), in batches of
    ``data.batch_size`` items (:class:`IndexBatchSampler`). Subclasses write ``datasets``, ``build_model``, ``loss``
    and ``reduce_metrics``, and must list ``batch_size`` in ``data_defaults``."""

    def batch_sampler(self, dataset: torch.utils.data.Dataset, *, train: bool, seed: int, rank: int,
                      world_size: int) -> ResumableBatchSampler:
        return IndexBatchSampler(len(dataset), int(self.data_cfg["batch_size"]), train=train, seed=seed, rank=rank,
                                 world_size=world_size)

    def collate(self, items: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
        return tuple(torch.stack(field) for field in zip(*items))

    def to_device(self, batch: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
        return tuple(t.to(device, non_blocking=True) for t in batch)
