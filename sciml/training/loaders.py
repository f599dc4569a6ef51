"""DataLoaders around a task's dataset, batch sampler and collate, with dataset indices carried to every batch.

Each batch arrives as ``(indices, batch)`` so the engine can name the exact dataset items of a failing batch and
count samples, and the training loader can resume mid-epoch by skipping index lists (no data is read for them).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from sciml.training.task import ResumableBatchSampler


class IndexedDataset(Dataset):
    """``dataset[i]`` returned as ``(i, dataset[i])``."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]


class IndexedCollate:
    """Picklable collate: ``[(i, item), ...] -> (indices, collate(items))``."""

    def __init__(self, collate: Callable[[list[Any]], Any]):
        self.collate = collate

    def __call__(self, pairs: list[tuple[int, Any]]) -> tuple[list[int], Any]:
        return [int(i) for i, _ in pairs], self.collate([item for _, item in pairs])


class SkippingBatchSampler:
    """Wraps a :class:`ResumableBatchSampler`; the next pass leaves out its first ``skip`` batches (resume)."""

    def __init__(self, sampler: ResumableBatchSampler):
        self.sampler = sampler
        self.skip = 0

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        return itertools.islice(iter(self.sampler), skip, None)

    def __len__(self) -> int:
        return len(self.sampler) - self.skip


def make_loader(dataset: Dataset, batch_sampler: Any, collate: Callable[[list[Any]], Any], *, num_workers: int,
                pin_memory: bool, generator: torch.Generator | None = None) -> DataLoader:
    """A DataLoader yielding ``(indices, batch)``; workers persist across epochs when ``num_workers > 0``."""
    return DataLoader(IndexedDataset(dataset), batch_sampler=batch_sampler, collate_fn=IndexedCollate(collate),
                      num_workers=num_workers, pin_memory=pin_memory, persistent_workers=num_workers > 0,
                      generator=generator)
