"""Batch samplers the training engine can resume: the :class:`ResumableBatchSampler` protocol and the block-shuffling,
atom-budget, DDP-aware :class:`BlockShuffleBatchSampler`.

Per epoch (seed, epoch): the frame positions 0..N-1 are cut into blocks of ``block_frames`` consecutive frames;
the blocks are permuted and dealt round-robin to the ranks (so no frame goes to two ranks); each rank shuffles
its frames within windows of ``buffer_blocks`` consecutive blocks (the shuffle buffer) and packs them greedily
into batches of at most ``max_atoms`` atoms (and ``max_frames`` frames). Ranks end up with equal batch counts by
splitting their largest batches (every frame is still seen exactly once); only when a rank has fewer frames than
another has batches are surplus tail batches dropped. A frame with more atoms than ``max_atoms`` forms its own batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np

from sciml.errors import ConfigError


class ResumableBatchSampler(ABC):
    """Yields lists of dataset indices; deterministic given (seed, epoch, rank, world_size).

    Under DDP every training rank must yield the same number of batches per epoch (the engine checks it).

    Resuming: the engine itself records the epoch and how many batches of it were trained on (DataLoader workers
    prefetch, so a sampler's own count runs ahead) and resumes by ``set_epoch(epoch)`` and dropping the first
    batches of ``__iter__`` (index lists only, no data is read). So ``__iter__`` must be a pure function of
    (seed, epoch, rank, world_size) and ``set_epoch``; ``state_dict`` is stored in checkpoints for the record.
    """

    @abstractmethod
    def set_epoch(self, epoch: int) -> None: ...

    @abstractmethod
    def __iter__(self) -> Iterator[list[int]]: ...

    @abstractmethod
    def __len__(self) -> int: ...

    def state_dict(self) -> dict[str, Any]:
        """Primitives/tensors describing the sampler (stored in checkpoints; not needed to resume)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Counterpart of :meth:`state_dict` (the engine does not call it; resume goes through ``set_epoch``)."""


def pack_by_atoms(frames: np.ndarray, natoms: np.ndarray, max_atoms: int,
                  max_frames: int | None = None) -> list[np.ndarray]:
    """Greedily cut ``frames`` (in order) into batches whose ``natoms`` sum to at most ``max_atoms``."""
    csum = np.concatenate([[0], np.cumsum(natoms[frames], dtype=np.int64)])
    batches, start, n = [], 0, len(frames)
    while start < n:
        stop = int(np.searchsorted(csum, csum[start] + max_atoms, side="right")) - 1
        if max_frames is not None:
            stop = min(stop, start + max_frames)
        stop = max(stop, start + 1)
        batches.append(frames[start:stop])
        start = stop
    return batches


def _equalise(per_rank: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    target = max(len(b) for b in per_rank)
    if any(sum(len(x) for x in b) < target for b in per_rank):
        target = min(len(b) for b in per_rank)
        return [b[:target] for b in per_rank]
    out = []
    for batches in per_rank:
        batches = list(batches)
        while len(batches) < target:
            k = max(range(len(batches)), key=lambda i: (len(batches[i]), i))
            big = batches[k]
            half = len(big) // 2
            batches[k:k + 1] = [big[:half], big[half:]]
        out.append(batches)
    return out


class BlockShuffleBatchSampler(ResumableBatchSampler):
    """Batches of dataset positions for one rank (see the module docstring).

    ``natoms``: atoms per frame (e.g. ``AtomsDataset.natoms``). ``shuffle=False`` keeps file order (validation).
    """

    def __init__(self, natoms: np.ndarray, max_atoms: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1, block_frames: int = 256, buffer_blocks: int = 16,
                 max_frames: int | None = None):
        if max_atoms < 1 or block_frames < 1 or buffer_blocks < 1 or world_size < 1:
            raise ConfigError("max_atoms, block_frames, buffer_blocks and world_size must be positive")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} outside 0..{world_size - 1}")
        self.natoms = np.asarray(natoms, dtype=np.int64)
        self.max_atoms, self.max_frames = int(max_atoms), max_frames
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, int(seed), int(rank), int(world_size)
        self.block_frames, self.buffer_blocks = int(block_frames), int(buffer_blocks)
        self.epoch = 0
        self._skip = 0      # batches of the current epoch to skip (set by load_state_dict)
        self._yielded = 0   # batches yielded so far in the current epoch (including skipped ones)
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def _rank_frames(self, blocks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, bf = len(self.natoms), self.block_frames
        starts = blocks * bf
        lengths = np.minimum(bf, n - starts)
        frames = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())
        if self.shuffle:
            bounds = np.concatenate([[0], np.cumsum(lengths)])[::self.buffer_blocks]
            bounds = np.append(bounds, len(frames)) if bounds[-1] != len(frames) else bounds
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                frames[lo:hi] = frames[lo:hi][rng.permutation(hi - lo)]
        return frames

    def plan(self, epoch: int) -> list[np.ndarray]:
        """All batches of ``epoch`` for this rank (cached for the current epoch)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        n_blocks = -(-len(self.natoms) // self.block_frames)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n_blocks) if self.shuffle else np.arange(n_blocks)
        per_rank = []
        for r in range(self.world_size):
            frames = self._rank_frames(order[r::self.world_size], np.random.default_rng([self.seed, epoch, r]))
            per_rank.append(pack_by_atoms(frames, self.natoms, self.max_atoms, self.max_frames))
        batches = _equalise(per_rank)[self.rank]
        self._cache = (epoch, batches)
        return batches

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self._skip, self._yielded = int(epoch), 0, 0

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.plan(self.epoch)
        start, self._skip = self._skip, 0
        self._yielded = start
        for batch in batches[start:]:
            self._yielded += 1
            yield batch.tolist()

    def __len__(self) -> int:
        """Batches the next ``__iter__`` yields (the whole epoch, or what is left after a mid-epoch resume)."""
        return len(self.plan(self.epoch)) - self._skip

    def state_dict(self, batches_done: int | None = None) -> dict[str, Any]:
        """Position to resume from. ``batches_done``: batches of this epoch the training loop consumed (pass it when a
        DataLoader prefetches ahead of the loop); default: batches yielded by the iterator so far."""
        done = self._yielded if batches_done is None else int(batches_done)
        return {"epoch": self.epoch, "batches_done": done, "seed": self.seed, "world_size": self.world_size,
                "rank": self.rank}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["seed"]) != self.seed or int(state["world_size"]) != self.world_size:
            raise ConfigError(f"sampler state was saved with seed={state['seed']}, world_size={state['world_size']};"
                              f" this run has seed={self.seed}, world_size={self.world_size}: cannot resume exactly")
        self.epoch = int(state["epoch"])
        self._skip = self._yielded = int(state["batches_done"])
