"""Quickstart step for the data pipeline: convert the bundled samples, summarise them, time the DataLoader."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from data_tools.convert import ConvertOptions, convert
from data_tools.collate import collate_atoms
from data_tools.dataset import AtomsDataset
from data_tools.info import dataset_info, format_info
from data_tools.sampler import BlockShuffleBatchSampler

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


def loader_throughput(dataset: AtomsDataset, max_atoms: int = 512, workers: int = 2, epochs: int = 4) -> float:
    """Frames per second through the block-shuffling sampler and a DataLoader with ``workers`` processes
    (after one warm-up epoch that starts the workers)."""
    sampler = BlockShuffleBatchSampler(dataset.natoms, max_atoms, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_atoms,
                                         num_workers=workers, persistent_workers=workers > 0)
    frames, t0 = 0, 0.0
    for epoch in range(epochs + 1):
        if epoch == 1:
            t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        for batch in loader:
            frames += batch.num_graphs if epoch else 0
    return frames / (time.perf_counter() - t0)


def run_quickstart(workdir: Path) -> None:
    """Convert examples/data/acac/train_300K.xyz (with isolated-atom reference energies) and the OC20 sample to
    HDF5 under ``workdir/data``, print their summaries and the loader throughput."""
    out = workdir / "data"
    acac = EXAMPLES / "acac"
    jobs = [([acac / "train_300K.xyz"], out / "acac_train_300K.h5", f"--ref-energies {acac / 'isolated_atoms.xyz'}",
             ConvertOptions(ref_energies=acac / "isolated_atoms.xyz", progress=False)),
            ([EXAMPLES / "oc20" / "toy_c3h8_relax.extxyz"], out / "oc20_toy_c3h8.h5", "--group-by file",
             ConvertOptions(group_by="file", progress=False))]
    for inputs, target, flags, opts in jobs:
        print(f"$ sciml data convert {' '.join(str(p) for p in inputs)} -o {target} {flags}")
        print(convert(inputs, target, opts).summary())
        print(f"$ sciml data info {target}")
        print(format_info(dataset_info(target)))
    dataset = AtomsDataset(out / "acac_train_300K.h5")
    rate = loader_throughput(dataset)
    print(f"DataLoader (2 workers, block-shuffled, <=512 atoms/batch): {rate:,.0f} frames/s on {len(dataset)} "
          f"acetylacetone frames; files written to {out}")
