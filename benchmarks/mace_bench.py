"""MACE energy+forces throughput on the same structures as benchmarks/potential_bench.py (comparison baseline).

Needs a separate environment with mace-torch (it pins e3nn 0.4.4):
    python3 -m venv /tmp/mace-venv && /tmp/mace-venv/bin/pip install torch==2.13.0 mace-torch
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 OMP_NUM_THREADS=1 /tmp/mace-venv/bin/python benchmarks/mace_bench.py
Model: randomly initialised ScaleShiftMACE, float32, 2 layers, r_max 5 A, 8 Bessel, p=5, max_ell 3, correlation 3.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def build_mace(hidden: str, atomic_numbers: list[int]) -> torch.nn.Module:
    from e3nn import o3
    from mace import modules

    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    return modules.ScaleShiftMACE(
        r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3, interaction_cls=block,
        interaction_cls_first=block, num_interactions=2, num_elements=len(atomic_numbers),
        hidden_irreps=o3.Irreps(hidden), MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.zeros(len(atomic_numbers)),
        avg_num_neighbors=10.0, atomic_numbers=atomic_numbers, correlation=3, gate=torch.nn.functional.silu,
        radial_MLP=[64, 64, 64], atomic_inter_scale=1.0, atomic_inter_shift=0.0).float().eval()


def mace_batch(structures: list, batch_size: int, atomic_numbers: list[int]) -> dict[str, torch.Tensor]:
    from mace import data, tools
    from mace.tools import torch_geometric

    z_table = tools.AtomicNumberTable(atomic_numbers)
    items = [data.AtomicData.from_config(data.config_from_atoms(structures[i % len(structures)]), z_table=z_table,
                                         cutoff=5.0) for i in range(batch_size)]
    loader = torch_geometric.dataloader.DataLoader(items, batch_size=batch_size, shuffle=False)
    return next(iter(loader)).to_dict()


def time_row(model: torch.nn.Module, batch: dict, min_seconds: float) -> float:
    for _ in range(2):
        model(dict(batch), compute_force=True, training=False)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds or n < 2:
        model(dict(batch), compute_force=True, training=False)
        n += 1
    return (time.perf_counter() - t0) / n


def main() -> None:
    import ase.io

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--min-seconds", type=float, default=3.0)
    args = p.parse_args()
    torch.set_default_dtype(torch.float32)
    acac = ase.io.read(str(REPO / "examples/data/acac/train_300K.xyz"), ":32")
    slab = ase.io.read(str(REPO / "examples/data/oc20/toy_c3h8_relax.extxyz"), ":1")
    results = []
    for hidden in ("64x0e+64x1o", "128x0e+128x1o+128x2e"):
        for label, structures, z, batch_size in (("acac", acac, [1, 6, 8], 1), ("acac", acac, [1, 6, 8], 32),
                                                 ("oc20_slab_38", slab, [1, 6, 29], 1)):
            model = build_mace(hidden, z)
            batch = mace_batch(structures, batch_size, z)
            seconds = time_row(model, batch, args.min_seconds)
            n_atoms = int(batch["positions"].shape[0])
            results.append({"kind": "energy_forces", "model": "MACE", "hidden_irreps": hidden, "system": label,
                            "batch": batch_size, "atoms": n_atoms, "ms_per_batch": 1e3 * seconds,
                            "structures_per_s": batch_size / seconds, "atoms_per_s": n_atoms / seconds,
                            "params": sum(p.numel() for p in model.parameters())})
            print(json.dumps(results[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "mace_cpu.json"
    tmp = target.with_name(f".tmp-{target.name}")
    tmp.write_text(json.dumps({"machine": {"torch": torch.__version__, "python": platform.python_version(),
                                           "threads": torch.get_num_threads(), "loadavg": os.getloadavg()},
                               "results": results}, indent=1) + "\n")
    os.replace(tmp, target)
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
