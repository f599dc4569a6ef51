"""Streaming per-feature statistics with a numerically stable merge (Chan, Golub & LeVeque 1979)."""

from __future__ import annotations

import numpy as np


class RunningStats:
    """Count, mean, variance (via M2), min, max and abs-max over axis 0 of batches shaped ``(n, *shape)``.

    Accumulates in float64; each batch is reduced with a two-pass mean/M2 and merged pairwise, so one pass over
    the data gives the same result as a single reduction over everything (up to rounding).
    Non-finite values must be rejected before :meth:`update`.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.count = 0
        self.mean = np.zeros(shape)
        self.m2 = np.zeros(shape)
        self.min = np.full(shape, np.inf)
        self.max = np.full(shape, -np.inf)

    def update(self, batch: np.ndarray) -> None:
        """Add the rows of ``batch`` ``(n, *shape)``."""
        n = batch.shape[0]
        if n == 0:
            return
        x = batch.astype(np.float64, copy=False)
        mean = x.mean(axis=0)
        m2 = ((x - mean) ** 2).sum(axis=0)
        self.merge_moments(n, mean, m2, x.min(axis=0), x.max(axis=0))

    def merge(self, other: RunningStats) -> None:
        """Merge another accumulator of the same shape into this one."""
        if other.count:
            self.merge_moments(other.count, other.mean, other.m2, other.min, other.max)

    def merge_moments(self, n: int, mean: np.ndarray, m2: np.ndarray, vmin: np.ndarray, vmax: np.ndarray) -> None:
        """Merge summary moments of ``n`` rows."""
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total
        self.min = np.minimum(self.min, vmin)
        self.max = np.maximum(self.max, vmax)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation."""
        return np.sqrt(self.m2 / max(self.count, 1))

    @property
    def absmax(self) -> np.ndarray:
        """max(|min|, |max|), the scale of the paper's abs-max normalisation."""
        return np.maximum(np.abs(self.min), np.abs(self.max))

    def reduce_last_axis(self) -> RunningStats:
        """Statistics over the last axis pooled too (e.g. per variable over all levels), shape ``shape[:-1]``."""
        out = RunningStats(self.mean.shape[:-1])
        for k in range(self.mean.shape[-1]):
            out.merge_moments(self.count, self.mean[..., k], self.m2[..., k], self.min[..., k], self.max[..., k])
        return out

    def as_dict(self) -> dict[str, np.ndarray]:
        """``count``, ``mean``, ``std``, ``min``, ``max``, ``absmax`` as float64 arrays."""
        return {"count": np.full(self.mean.shape, float(self.count)), "mean": self.mean, "std": self.std,
                "min": self.min, "max": self.max, "absmax": self.absmax}
