"""Evaluate a trained potential on labelled structures (extxyz / any ASE file, or sciml HDF5): metrics and parity
data. Backs ``sciml eval``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from data_tools.paths import is_hdf5_like
from sciml.errors import DataError
from sciml.potential.inputs import ModelInputs, chunks_by_atoms
from sciml.potential.metrics import metric_sums, reduce_metric_sums


def load_labelled(path: str | os.PathLike) -> list[Data]:
    """All frames of ``path`` as dataset items with reference ``energy`` (eV) and, where present, ``forces``
    (eV/Angstrom). HDF5 shards/folders/globs/index files are read with :class:`~data_tools.dataset.AtomsDataset`,
    anything else with ASE (:func:`~data_tools.items.atoms_to_item`)."""
    if is_hdf5_like(str(path)):
        from data_tools.dataset import AtomsDataset

        ds = AtomsDataset(path)
        return ds.__getitems__(list(range(len(ds))))
    import ase.io

    from data_tools.items import atoms_to_item

    if not Path(path).is_file():
        raise DataError(f"{path}: no such data file")
    frames = []
    for i, atoms in enumerate(ase.io.iread(str(path), index=":")):
        item = atoms_to_item(atoms)
        if "energy" not in item:
            raise DataError(f"{path}: frame {i} has no reference energy (info key 'energy')")
        frames.append(item)
    if not frames:
        raise DataError(f"{path}: no frames")
    return frames


@dataclass
class Evaluation:
    """Metrics (``reduce_metric_sums`` keys) and per-frame / per-component predictions for parity plots."""

    metrics: dict[str, float]
    natoms: np.ndarray
    energy_true: np.ndarray
    energy_pred: np.ndarray
    forces_true: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    forces_pred: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))


def evaluate(model: torch.nn.Module, frames: list[Data], inputs: ModelInputs, device: str | torch.device = "cpu",
             max_atoms: int = 4096) -> Evaluation:
    """Run ``model`` (a :class:`~models.potential.forces.ForceField`, in its current dtype) over ``frames`` in batches
    of at most ``max_atoms`` atoms built by ``inputs``."""
    model.eval()
    sums: dict[str, float] = {}
    e_true, e_pred, f_true, f_pred, natoms = [], [], [], [], []
    for chunk in chunks_by_atoms([int(f.z.numel()) for f in frames], max_atoms):
        batch = inputs([frames[i] for i in chunk]).to(device)
        has_forces = getattr(batch, "forces", None) is not None
        out = model(batch, compute_forces=has_forces)
        n = torch.bincount(batch.batch, minlength=batch.num_graphs)
        for key, value in metric_sums(out["energy"], batch.energy, n, out.get("forces"),
                                      batch.forces if has_forces else None).items():
            sums[key] = sums.get(key, 0.0) + float(value)
        e_true.append(batch.energy.reshape(-1).double().cpu().numpy())
        e_pred.append(out["energy"].detach().double().cpu().numpy())
        natoms.append(n.cpu().numpy())
        if has_forces:
            f_true.append(batch.forces.double().cpu().numpy())
            f_pred.append(out["forces"].detach().double().cpu().numpy())
    result = Evaluation(reduce_metric_sums(sums), np.concatenate(natoms), np.concatenate(e_true),
                        np.concatenate(e_pred))
    if f_true:
        result.forces_true, result.forces_pred = np.concatenate(f_true), np.concatenate(f_pred)
    return result


def parity_plot(result: Evaluation, path: str | os.PathLike, title: str = "") -> None:
    """Energy-per-atom and force-component parity plots (meV/atom, eV/Angstrom) written atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sciml.utils.atomic import atomic_path

    n_panels = 2 if result.forces_true.size else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(5 * n_panels, 4.5), squeeze=False)
    ref = result.energy_true / result.natoms
    pred = result.energy_pred / result.natoms
    shift = ref.mean()
    panels: list[tuple[Any, np.ndarray, np.ndarray, str, str]] = [
        (axes[0, 0], 1e3 * (ref - shift), 1e3 * (pred - shift), "energy per atom - mean (meV/atom)",
         f"E MAE {result.metrics['energy_mae_meV_per_atom']:.3g} meV/atom")]
    if n_panels == 2:
        panels.append((axes[0, 1], result.forces_true.ravel(), result.forces_pred.ravel(),
                       "force component (eV/Angstrom)", f"F MAE {result.metrics['forces_mae_meV_per_A']:.3g} meV/A"))
    for ax, x, y, label, note in panels:
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.scatter(x, y, s=4, alpha=0.5)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
        ax.set_title(note)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
