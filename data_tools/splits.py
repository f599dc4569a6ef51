"""Seeded, reproducible train / validation / test splits by frame or by group (no group in two splits).

One implementation serves ``sciml data split`` (fractions or counts, written as index files ``<name>.idx.npz``) and
``sciml train`` (``data.n_train`` / ``data.n_val``): with the same data, seed, unit and sizes both give the same
frames. The rule (:func:`split_frames`): the units (frames, or the sorted unique group ids) are permuted with
``numpy.random.default_rng(seed)``; the held-out splits (every split but the first) are cut from the front of that
order in the order given; the first split (training) takes the units that follow (all the rest by default).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_tools.index_file import SUFFIX, shard_fingerprint, write_index
from data_tools.paths import PathsLike, resolve_paths
from data_tools.reader import ShardReader
from sciml.errors import ConfigError

SPLIT_UNITS = ("frame", "group")


def split_frames(groups: np.ndarray, sizes: dict[str, int | None], seed: int,
                 by: str = "frame") -> dict[str, np.ndarray]:
    """Sorted frame indices of each split.

    Args:
        groups: group id of every frame [N] (only read with ``by="group"``).
        sizes: {split name: number of units}, training split first; its size ``None`` or 0 means all units not
            held out. Held-out sizes must be positive or 0.
        seed: permutation seed.
        by: ``frame`` (units are frames) or ``group`` (units are whole groups, e.g. trajectories).
    """
    if by not in SPLIT_UNITS:
        raise ConfigError(f"split unit must be one of {', '.join(SPLIT_UNITS)}, got {by!r}")
    groups = np.asarray(groups)
    units = np.arange(len(groups)) if by == "frame" else np.unique(groups)
    names = list(sizes)
    held = {name: int(sizes[name] or 0) for name in names[1:]}
    first = int(sizes[names[0]] or 0)
    if any(v < 0 for v in held.values()) or first < 0:
        raise ConfigError(f"split sizes must be >= 0, got {sizes}")
    n_held = sum(held.values())
    if n_held >= len(units):
        raise ConfigError(f"cannot hold out {n_held} {by}s ({held}) out of {len(units)}: none would be left to train")
    if first > len(units) - n_held:
        raise ConfigError(f"{names[0]} asks for {first} {by}s but only {len(units) - n_held} are left after "
                          f"holding out {held}")
    order = units[np.random.default_rng(seed).permutation(len(units))]
    chosen: dict[str, np.ndarray] = {}
    start = 0
    for name, count in held.items():
        chosen[name] = order[start:start + count]
        start += count
    chosen[names[0]] = order[start:start + first] if first else order[start:]
    if by == "frame":
        return {name: np.sort(chosen[name]) for name in names}
    return {name: np.flatnonzero(np.isin(groups, chosen[name])) for name in names}


def sizes_from_fractions(fractions: Sequence[float], n_units: int) -> list[int]:
    """Unit counts for ``fractions`` (non-negative, summing to 1) of ``n_units``: cuts at the rounded cumulative
    fractions, so the counts sum to ``n_units``."""
    fr = np.asarray(fractions, float)
    if (fr < 0).any() or abs(fr.sum() - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be non-negative and sum to 1, got {list(fractions)}")
    cuts = np.rint(np.cumsum(fr) * n_units).astype(np.int64)
    return np.diff(np.concatenate([[0], cuts])).tolist()


def write_splits(paths: PathsLike, outdir: str | os.PathLike, names: Sequence[str], seed: int, by: str = "group",
                 fractions: Sequence[float] | None = None,
                 counts: Sequence[int] | None = None) -> dict[str, tuple[Path, int, int]]:
    """Split the frames of ``paths`` (sizes given as ``fractions`` or unit ``counts``, one per name, training first)
    and write ``outdir/<name>.idx.npz`` per split; returns {name: (path, frames, groups)}."""
    sizes = fractions if fractions is not None else counts
    if sizes is None or (fractions is not None and counts is not None):
        raise ConfigError("give split sizes either as fractions or as counts")
    if len(names) != len(sizes) or len(set(names)) != len(names):
        raise ConfigError(f"need one distinct name per split size, got names {list(names)} for {list(sizes)}")
    shard_paths, subset = resolve_paths(paths)
    if subset is not None:
        raise ConfigError(f"{paths}: split the shards themselves, not an index file")
    groups, n_frames, prints = [], [], []
    for p in shard_paths:
        with ShardReader(p) as r:
            groups.append(r.column("group").astype(np.int64))
            n_frames.append(r.n_frames)
            prints.append(shard_fingerprint(r))
    all_groups = np.concatenate(groups)
    n_units = len(all_groups) if by == "frame" else len(np.unique(all_groups))
    unit_counts = sizes_from_fractions(fractions, n_units) if fractions is not None else [int(c) for c in counts]
    if fractions is None and sum(unit_counts) > n_units:
        raise ConfigError(f"split counts {unit_counts} add up to more than the {n_units} {by}s")
    split = split_frames(all_groups, dict(zip(names, unit_counts)), seed, by)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = {}
    for k, name in enumerate(names):
        target = write_index(outdir / f"{name}{SUFFIX}", shard_paths, n_frames, prints, split[name],
                             seed=np.int64(seed), by=by, sizes=np.asarray(unit_counts), names=np.array(names),
                             split=np.int64(k))
        written[name] = (target, int(split[name].size), int(np.unique(all_groups[split[name]]).size))
    return written
