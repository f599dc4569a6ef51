"""A ready-made :class:`~sciml.training.task.ResumableBatchSampler` for map-style datasets that fit random access."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from sciml.training.task import ResumableBatchSampler


class IndexBatchSampler(ResumableBatchSampler):
    """Batches of ``batch_size`` indices of ``range(num_items)``, split over DDP ranks.

    Training (``train=True``): a fresh permutation per epoch from ``seed + epoch``; rank ``r`` takes batches
    ``r, r + world_size, ...`` and every rank gets ``num_batches // world_size`` of them (the remainder is left out,
    so all ranks step together). Evaluation: the same split without shuffling and without dropping, so every item
    is seen exactly once over all ranks (ranks may then differ by one batch).
    """

    def __init__(self, num_items: int, batch_size: int, *, train: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.num_items, self.batch_size, self.train = int(num_items), int(batch_size), train
        self.seed, self.rank, self.world_size, self.drop_last = int(seed), int(rank), int(world_size), drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _all_batches(self) -> list[list[int]]:
        if self.train:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.num_items, generator=g).tolist()
        else:
            order = list(range(self.num_items))
        batches = [order[i:i + self.batch_size] for i in range(0, self.num_items, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        mine = self._all_batches()[self.rank::self.world_size]
        yield from mine[:len(self)] if self.train else mine

    def __len__(self) -> int:
        n = self._num_batches()
        return n // self.world_size if self.train else len(range(self.rank, n, self.world_size))

    def _num_batches(self) -> int:
        full, rest = divmod(self.num_items, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seed": self.seed, "num_items": self.num_items, "batch_size": self.batch_size}
