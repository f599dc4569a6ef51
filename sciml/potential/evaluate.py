"""Evaluate a trained potential on labelled structures (extxyz / any ASE file, or sciml HDF5): metrics and parity
data, streamed in batches (memory flat in the number of frames). Backs ``sciml eval``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from data_tools.paths import is_hdf5_like
from sciml.errors import DataError
from sciml.potential.inputs import ModelInputs
from sciml.potential.metrics import metric_sums, reduce_metric_sums

#: force components kept for a parity plot (a uniform random sample beyond this)
PLOT_FORCE_COMPONENTS = 200_000


def labelled_frames(path: str | os.PathLike) -> tuple[int | None, Iterator[Data]]:
    """(number of frames if known, stream of dataset items with reference ``energy`` (eV) and, where present,
    ``forces`` (eV/Angstrom)). HDF5 shards/folders/globs/index files are read in blocks with
    :class:`~data_tools.dataset.AtomsDataset`, anything else frame by frame with ASE
    (:func:`~data_tools.items.atoms_to_item`)."""
    if is_hdf5_like(str(path)):
        from data_tools.dataset import AtomsDataset

        ds = AtomsDataset(path)

        def blocks() -> Iterator[Data]:
            for start in range(0, len(ds), ds.block_frames):
                yield from ds.__getitems__(list(range(start, min(start + ds.block_frames, len(ds)))))

        return len(ds), blocks()
    if not Path(path).is_file():
        raise DataError(f"{path}: no such data file")

    def atoms() -> Iterator[Data]:
        import ase.io

        from data_tools.items import atoms_to_item

        n = 0
        for n, frame in enumerate(ase.io.iread(str(path), index=":"), start=1):
            item = atoms_to_item(frame)
            if "energy" not in item:
                raise DataError(f"{path}: frame {n - 1} has no reference energy (info key 'energy')")
            yield item
        if n == 0:
            raise DataError(f"{path}: no frames")

    return None, atoms()


def load_labelled(path: str | os.PathLike) -> list[Data]:
    """All frames of ``path`` as a list (see :func:`labelled_frames`; for small sets and tests)."""
    return list(labelled_frames(path)[1])


@dataclass
class Evaluation:
    """Metrics (``reduce_metric_sums`` keys), throughput and, when kept, per-frame energies and a sample of force
    components for parity plots."""

    metrics: dict[str, float]
    frames_per_s: float = 0.0
    natoms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    energy_true: np.ndarray = field(default_factory=lambda: np.zeros(0))
    energy_pred: np.ndarray = field(default_factory=lambda: np.zeros(0))
    forces_true: np.ndarray = field(default_factory=lambda: np.zeros((0,)))
    forces_pred: np.ndarray = field(default_factory=lambda: np.zeros((0,)))


def _batches(frames: Iterable[Data], max_atoms: int) -> Iterator[list[Data]]:
    """Consecutive frames in lists of at most ``max_atoms`` atoms (a larger frame alone)."""
    chunk: list[Data] = []
    atoms = 0
    for item in frames:
        n = int(item.z.numel())
        if chunk and atoms + n > max_atoms:
            yield chunk
            chunk, atoms = [], 0
        chunk.append(item)
        atoms += n
    if chunk:
        yield chunk


def evaluate(model: torch.nn.Module, frames: Iterable[Data], inputs: ModelInputs, device: str | torch.device = "cpu",
             max_atoms: int = 4096, keep_parity: bool = False, total: int | None = None,
             progress: bool = False) -> Evaluation:
    """Run ``model`` (a :class:`~models.potential.forces.ForceField`, in its current dtype, on ``device``) over
    ``frames`` in batches of at most ``max_atoms`` atoms built by ``inputs``. Only metric sums are kept, unless
    ``keep_parity`` (per-frame energies and up to :data:`PLOT_FORCE_COMPONENTS` force components, sampled)."""
    from tqdm import tqdm

    model.eval()
    sums: dict[str, float] = {}
    natoms, e_true, e_pred = [], [], []
    sample = _ForceSample(PLOT_FORCE_COMPONENTS)
    bar = tqdm(total=total, unit="frame", desc="sciml eval", disable=not progress, mininterval=1.0)
    t0 = time.perf_counter()
    n_frames = 0
    for chunk in _batches(frames, max_atoms):
        batch = inputs(chunk).to(device)
        has_forces = getattr(batch, "forces", None) is not None
        out = model(batch, compute_forces=has_forces)
        n = torch.bincount(batch.batch, minlength=batch.num_graphs)
        for key, value in metric_sums(out["energy"], batch.energy, n, out.get("forces"),
                                      batch.forces if has_forces else None).items():
            sums[key] = sums.get(key, 0.0) + float(value)
        n_frames += len(chunk)
        bar.update(len(chunk))
        if not keep_parity:
            continue
        natoms.append(n.cpu().numpy())
        e_true.append(batch.energy.reshape(-1).double().cpu().numpy())
        e_pred.append(out["energy"].detach().double().cpu().numpy())
        if has_forces:
            sample.add(batch.forces.double().cpu().numpy().ravel(), out["forces"].detach().double().cpu().numpy().ravel())
    bar.close()
    seconds = time.perf_counter() - t0
    result = Evaluation(reduce_metric_sums(sums), n_frames / seconds if seconds > 0 else float("inf"))
    if keep_parity:
        result.natoms, result.energy_true, result.energy_pred = (np.concatenate(a) for a in (natoms, e_true, e_pred))
        result.forces_true, result.forces_pred = sample.true, sample.pred
    return result


class _ForceSample:
    """A uniform random sample of at most ``size`` (true, predicted) force components from a stream: each component
    draws a random key and the ``size`` smallest keys are kept (memory O(size))."""

    def __init__(self, size: int):
        self.size, self.rng = size, np.random.default_rng(0)
        self.keys, self.true, self.pred = np.zeros(0), np.zeros(0), np.zeros(0)

    def add(self, true: np.ndarray, pred: np.ndarray) -> None:
        keys = np.concatenate([self.keys, self.rng.random(true.size)])
        true, pred = np.concatenate([self.true, true]), np.concatenate([self.pred, pred])
        if keys.size > self.size:
            keep = np.argpartition(keys, self.size)[:self.size]
            keys, true, pred = keys[keep], true[keep], pred[keep]
        self.keys, self.true, self.pred = keys, true, pred


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
