"""Throughput of the TDN potential (energy + forces) and its training step, ``cp`` vs ``cg``.

Runs on CPU or GPU without ASE or vesin (structures are read by a minimal extxyz parser, graphs built in torch).
CPU use:  OMP_NUM_THREADS=1 python benchmarks/potential_bench.py --out benchmarks/results
GPU use:  see benchmarks/gpu_potential.py (same functions, GPU configurations).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ACAC = REPO / "examples" / "data" / "acac" / "train_300K.xyz"
SLAB = REPO / "examples" / "data" / "oc20" / "toy_c3h8_relax.extxyz"
SYMBOLS = {"H": 1, "C": 6, "N": 7, "O": 8, "Cu": 29}


def read_xyz(path: Path, n_frames: int) -> list[dict[str, Any]]:
    """First ``n_frames`` of an extxyz file: z, pos [n, 3] (Angstrom), cell [3, 3], pbc [3], energy, forces."""
    frames = []
    with open(path) as fh:
        while len(frames) < n_frames:
            head = fh.readline()
            if not head.strip():
                break
            n, comment = int(head), fh.readline()
            rows = [fh.readline().split() for _ in range(n)]
            lattice = re.search(r'Lattice="([^"]+)"', comment)
            pbc = re.search(r'pbc="([^"]+)"', comment)
            energy = re.search(r"energy=(\S+)", comment)
            columns, start = {}, 0
            for name, _, width in re.findall(r"(\w+):(\w):(\d+)", comment.split("Properties=")[1].split()[0]):
                columns[name], start = (start, start + int(width)), start + int(width)
            fa, fb = columns.get("forces", (1, 4))
            frames.append({
                "z": torch.tensor([SYMBOLS[r[0]] for r in rows]),
                "pos": torch.tensor([[float(v) for v in r[1:4]] for r in rows], dtype=torch.float64),
                "cell": torch.tensor([float(v) for v in lattice.group(1).split()], dtype=torch.float64).reshape(3, 3)
                if lattice else torch.zeros(3, 3, dtype=torch.float64),
                "pbc": torch.tensor([c == "T" for c in pbc.group(1).split()]) if pbc else torch.zeros(3, dtype=bool),
                "energy": float(energy.group(1)) if energy else 0.0,
                "forces": torch.tensor([[float(v) for v in r[fa:fb]] for r in rows], dtype=torch.float64),
            })
    return frames


def make_batch(frames: list[dict[str, Any]], batch_size: int, device: torch.device, cutoff: float,
               dtype: torch.dtype = torch.float32) -> Any:
    """``batch_size`` structures (cycling through ``frames``) as a PyG Batch on ``device`` with a torch radius graph."""
    from torch_geometric.data import Batch, Data

    from data_tools.neighbors import radius_graph

    items = []
    for i in range(batch_size):
        f = frames[i % len(frames)]
        items.append(Data(z=f["z"], pos=f["pos"].to(dtype), cell=f["cell"].to(dtype)[None], pbc=f["pbc"][None],
                          natoms=torch.tensor([len(f["z"])]), energy=torch.tensor([f["energy"]], dtype=torch.float64),
                          forces=f["forces"].to(dtype)))
    batch = Batch.from_data_list(items).to(device)
    batch.edge_index, batch.edge_shift = radius_graph(batch.pos, batch.batch, batch.num_graphs, cutoff, batch.cell,
                                                      batch.pbc)
    return batch


def build_model(elements: list[int], device: torch.device, **config: Any) -> torch.nn.Module:
    """A randomly initialised TDN potential with forces (statistics: E0 = 0, scale 1, 10 neighbours)."""
    from models.potential.forces import ForceField
    from models.tdn_potential import TDNPotential

    model = TDNPotential(**config)
    model.set_statistics(elements, {z: 0.0 for z in elements}, scale=1.0, shift=0.0, avg_num_neighbors=10.0)
    return ForceField(model).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Any, device: torch.device, min_seconds: float, warmup: int = 2, max_iters: int = 200) -> float:
    """Median-free simple mean seconds per call after ``warmup`` calls, repeating for at least ``min_seconds``."""
    for _ in range(warmup):
        fn()
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        _sync(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds or n >= max_iters:
            return elapsed / n


def energy_forces_row(frames: list[dict[str, Any]], batch_size: int, config: dict[str, Any], device: torch.device,
                      min_seconds: float, label: str) -> dict[str, Any]:
    """Inference throughput (energy + autograd forces, float32, graph prebuilt)."""
    elements = sorted({int(z) for f in frames for z in f["z"]})
    model = build_model(elements, device, **config).eval()
    batch = make_batch(frames, batch_size, device, config.get("cutoff", 5.0))
    seconds = time_call(lambda: model(batch, compute_forces=True), device, min_seconds)
    n_atoms = int(batch.z.numel())
    return {"kind": "energy_forces", "system": label, "batch": batch_size, "atoms": n_atoms,
            "edges": int(batch.edge_index.shape[1]), **config, "ms_per_batch": 1e3 * seconds,
            "structures_per_s": batch_size / seconds, "atoms_per_s": n_atoms / seconds,
            "params": sum(p.numel() for p in model.parameters())}


def train_step_row(frames: list[dict[str, Any]], batch_size: int, config: dict[str, Any], device: torch.device,
                   min_seconds: float, label: str) -> dict[str, Any]:
    """One optimiser step: energy + forces, E/F loss, backward through the force graph, AdamW (float32)."""
    elements = sorted({int(z) for f in frames for z in f["z"]})
    model = build_model(elements, device, **config).train()
    batch = make_batch(frames, batch_size, device, config.get("cutoff", 5.0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        out = model(batch, compute_forces=True)
        loss = ((out["energy"] - batch.energy) / batch.natoms).square().mean().float() \
            + 10 * (out["forces"] - batch.forces).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds = time_call(step, device, min_seconds, max_iters=50)
    return {"kind": "train_step", "system": label, "batch": batch_size, "atoms": int(batch.z.numel()), **config,
            "ms_per_step": 1e3 * seconds, "structures_per_s": batch_size / seconds,
            "params": sum(p.numel() for p in model.parameters())}


def run_rows(rows: list[tuple[Any, ...]], device: torch.device, budget_s: float, min_seconds: float,
             after_row: Any = None, t0: float | None = None) -> list[dict]:
    """Run (function, system, frames, batch, config) rows; errors are recorded per row; rows starting later than
    ``budget_s`` after ``t0`` are skipped; ``after_row(results)`` runs after every row (e.g. to save partial JSON)."""
    results, t0 = [], time.perf_counter() if t0 is None else t0
    for fn, label, frames, batch_size, config in rows:
        if time.perf_counter() - t0 > budget_s:
            results.append({"system": label, "batch": batch_size, **config, "skipped": "time budget"})
            continue
        try:
            results.append(fn(frames, batch_size, config, device, min_seconds, label))
        except Exception as exc:  # one failing row (e.g. out of memory) must not lose the others
            results.append({"system": label, "batch": batch_size, **config, "error": f"{type(exc).__name__}: {exc}"})
        print(json.dumps(results[-1]), flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if after_row is not None:
            after_row(results)
    return results


def machine(device: torch.device) -> dict[str, Any]:
    info = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "loadavg": os.getloadavg()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_json(path: Path, payload: dict[str, Any]) -> None:
    from sciml.utils.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
    print(f"wrote {path}")


def cpu_rows(acac: list, slab: list) -> list[tuple[Any, ...]]:
    shipped = {"lmax": 2, "channels": 32, "layers": 3}
    mace_sized = {"lmax": 1, "channels": 64, "layers": 2}
    rows = []
    for tp in ("cp", "cg"):
        for cfg in (shipped, mace_sized):
            c = {**cfg, "tensor_product": tp}
            rows += [(energy_forces_row, "acac", acac, 1, c), (energy_forces_row, "acac", acac, 32, c),
                     (energy_forces_row, "oc20_slab_38", slab, 1, c)]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--min-seconds", type=float, default=3.0)
    p.add_argument("--budget", type=float, default=900.0)
    args = p.parse_args()
    device = torch.device("cpu")
    acac, slab = read_xyz(ACAC, 32), read_xyz(SLAB, 1)
    results = run_rows(cpu_rows(acac, slab), device, args.budget, args.min_seconds)
    write_json(args.out / "potential_cpu.json", {"machine": machine(device), "results": results})


if __name__ == "__main__":
    main()
