"""Data statistics that initialise a potential: per-element reference energies (least squares), energy scale/shift
and the mean neighbour count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sciml.errors import DataError


def sample_frames(dataset: torch.utils.data.Dataset, max_frames: int, seed: int) -> list[Any]:
    """Up to ``max_frames`` random frames of ``dataset`` (all of them when it is smaller), read in blocks."""
    n = len(dataset)  # type: ignore[arg-type]
    idx = np.arange(n) if n <= max_frames else np.sort(np.random.default_rng(seed).choice(n, max_frames, replace=False))
    getitems = getattr(dataset, "__getitems__", None)
    out: list[Any] = []
    for start in range(0, len(idx), 256):
        chunk = idx[start:start + 256].tolist()
        out.extend(getitems(chunk) if getitems else [dataset[i] for i in chunk])
    return out


def reference_energies(numbers: list[np.ndarray], energies: np.ndarray) -> dict[int, float]:
    """E0 per element (eV) minimising sum_frames (E - sum_atoms E0[Z])^2; minimum-norm where the compositions do not
    determine it (e.g. every frame has the same composition)."""
    elements = sorted({int(z) for zs in numbers for z in np.unique(zs)})
    col = {z: k for k, z in enumerate(elements)}
    counts = np.zeros((len(numbers), len(elements)))
    for i, zs in enumerate(numbers):
        for z, c in zip(*np.unique(zs, return_counts=True)):
            counts[i, col[int(z)]] = c
    e0 = np.linalg.lstsq(counts, energies, rcond=None)[0]
    return {z: float(e0[col[z]]) for z in elements}


def fit_statistics(frames: Sequence[Any], cutoff: float,
                   baseline: tuple[np.ndarray, Sequence[np.ndarray]] | None = None) -> dict[str, Any]:
    """Statistics of training ``frames`` (see :func:`sample_frames`), after subtracting a model's physical
    ``baseline`` (energies [frames] eV, forces eV/Angstrom) where it has one.

    Returns ``elements`` (sorted Z), ``atomic_energies`` {Z: eV}, ``shift`` (mean per-atom energy left after E0, eV),
    ``scale`` (RMS force component, eV/Angstrom, or the per-atom residual std for energy-only data; used as the
    energy unit of the network output) and ``avg_num_neighbors`` within ``cutoff``.
    """
    from data_tools.neighbors import radius_graph

    if not frames:
        raise DataError("the training set is empty: cannot fit reference energies")
    numbers = [f.z.numpy() for f in frames]
    energies = np.array([float(f.energy.reshape(-1)[0]) for f in frames])
    forces = [f.forces.double().numpy() for f in frames if getattr(f, "forces", None) is not None]
    if baseline is not None:
        energies = energies - baseline[0]
        if len(forces) == len(frames):
            forces = [f - b for f, b in zip(forces, baseline[1])]
    e0 = reference_energies(numbers, energies)
    natoms = np.array([len(z) for z in numbers])
    residual = (energies - np.array([sum(e0[int(z)] for z in zs) for zs in numbers])) / natoms
    scale = float(np.sqrt(np.mean(np.concatenate(forces) ** 2))) if forces else float(residual.std())
    neighbours = 0
    for f in frames[:1000]:
        edges, _ = radius_graph(f.pos.double(), torch.zeros(len(f.z), dtype=torch.long), 1, cutoff,
                                f.cell.double().reshape(1, 3, 3), f.pbc.reshape(1, 3))
        neighbours += edges.shape[1]
    return {"elements": sorted(e0), "atomic_energies": e0, "shift": float(residual.mean()),
            "scale": scale if scale > 0 else 1.0,
            "avg_num_neighbors": max(neighbours / max(int(natoms[:1000].sum()), 1), 1.0)}
