"""GPU check of the TDN potential: training-step time (L=2, 128 channels, 4 layers) and energy+forces throughput,
``cp`` vs ``cg``, on acetylacetone batches and a 38-atom OC20 slab. No ASE / vesin (torch radius graphs).

    python benchmarks/gpu_potential.py --out $OUT          # CUDA: JSON to $OUT/gpu_potential.json, < 2 min on an H100
    python benchmarks/gpu_potential.py --quick --out /tmp  # CPU smoke test (seconds)
Every row is timed separately; a failing row (e.g. out of memory) is recorded and the others still run; the JSON
is rewritten after every row and rows starting after --budget seconds are skipped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import potential_bench as pb  # noqa: E402


def gpu_rows(acac: list, slab: list) -> list[tuple]:
    big = {"lmax": 2, "channels": 128, "layers": 4}
    shipped = {"lmax": 2, "channels": 32, "layers": 3}
    rows = []
    for tp in ("cp", "cg"):  # the required comparison first
        rows.append((pb.train_step_row, "acac", acac, 32, {**big, "tensor_product": tp}))
    for tp in ("cp", "cg"):
        rows.append((pb.energy_forces_row, "acac", acac, 256, {**big, "tensor_product": tp}))
    for tp in ("cp", "cg"):
        for label, frames, batch in (("acac", acac, 1), ("acac", acac, 32), ("acac", acac, 512),
                                     ("oc20_slab_38", slab, 16)):
            rows.append((pb.energy_forces_row, label, frames, batch, {**shipped, "tensor_product": tp}))
    for tp in ("cp", "cg"):
        rows.append((pb.train_step_row, "acac", acac, 128, {**big, "tensor_product": tp}))
    return rows


def quick_rows(acac: list, slab: list) -> list[tuple]:
    tiny = {"lmax": 1, "channels": 8, "layers": 1}
    return [(pb.train_step_row, "acac", acac, 2, {**tiny, "tensor_product": "cp"}),
            (pb.energy_forces_row, "acac", acac, 4, {**tiny, "tensor_product": "cg"}),
            (pb.energy_forces_row, "oc20_slab_38", slab, 1, {**tiny, "tensor_product": "cp"})]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    p.add_argument("--quick", action="store_true", help="tiny CPU smoke test")
    p.add_argument("--budget", type=float, default=60.0,
                   help="seconds (from the script start) after which remaining rows are skipped")
    args = p.parse_args()
    t0 = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    acac, slab = pb.read_xyz(pb.ACAC, 64), pb.read_xyz(pb.SLAB, 1)
    rows = quick_rows(acac, slab) if args.quick else gpu_rows(acac, slab)

    def save(results: list) -> None:  # after every row, so a hard kill still leaves the finished rows
        pb.write_json(args.out / "gpu_potential.json", {"machine": pb.machine(device), "tf32": device.type == "cuda",
                                                        "wall_s": time.perf_counter() - t0, "results": results})

    pb.run_rows(rows, device, args.budget, 0.05 if args.quick else 1.0, after_row=save, t0=t0)


if __name__ == "__main__":
    main()
