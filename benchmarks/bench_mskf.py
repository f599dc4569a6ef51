"""CPU benchmark of the MSKF surrogate: columns/s and cost per column vs MSKF (5.5 us/column/call on 2 cores).

    OMP_NUM_THREADS=2 nice python benchmarks/bench_mskf.py [--checkpoint PT] [--out benchmarks/bench_mskf.json]

Cases: the shipped model (3 layers x 32 units) and two smaller Bi-LSTMs (timing only; weights do not change the
cost) on a 96 x 96 x 40 tile (the training run's domain: 9,216 columns, MSKF's reference) and a 220 x 200 x 44 tile
(the paper's domain), 1 and 2 threads, float32 and (shipped size) bfloat16 autocast (AMX). "network" = tile module on ready tensors; "step" =
MSKFSurrogate.step end to end (NumPy Fortran arrays in, layout conversion, network, NumPy out). The 1-minute load
average is recorded: the machine is shared, so timings are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.mskf_bilstm import MSKFBiLSTM, flops_per_column  # noqa: E402
from sciml.bench.mskf import MSKF_SECONDS_PER_COLUMN, bench_case, with_levels  # noqa: E402


def load_reference(path: Path) -> MSKFBiLSTM:
    """The shipped surrogate, or an untrained one of the same size if the checkpoint is absent."""
    if path.is_file():
        from sciml.mskf.checkpoint import load_mskf_model

        return load_mskf_model(path)
    print(f"note: {path} not found, timing an untrained 3 x 32 model", file=sys.stderr)
    return MSKFBiLSTM(40)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=REPO / "examples/pretrained/mskf-bilstm.pt")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/bench_mskf.json")
    ap.add_argument("--quick", action="store_true", help="one small case (smoke test)")
    args = ap.parse_args()
    ref = load_reference(args.checkpoint)
    f32, bf16 = torch.float32, torch.bfloat16
    cases = [(3, 32, 96, 96, 40, t, d) for t in (1, 2) for d in (f32, bf16)] \
        + [(3, 32, 220, 200, 44, t, f32) for t in (1, 2)] + [(3, 32, 220, 200, 44, 1, bf16)] \
        + [(layers, hidden, 96, 96, 40, 2, f32) for layers, hidden in ((1, 16), (1, 8))]
    if args.quick:
        cases = [(1, 8, 16, 16, 40, 1, f32)]
    rows = []
    for layers, hidden, ni, nj, nk, threads, dtype in cases:
        torch.set_num_threads(threads)
        model = with_levels(ref, nk, hidden=hidden, layers=layers)
        row = bench_case(model, ni, nj, "cpu", dtype=dtype, repeats=3, budget_s=10.0)
        row.update({"flops_per_column": flops_per_column(model), "load_avg_1min": os.getloadavg()[0]})
        rows.append(row)
        print(f"{layers}x{hidden} {ni}x{nj}x{nk} threads={threads} {row['dtype']}: network {row['network_us_per_column']:.1f} "
              f"us/col, step {row['step_us_per_column']:.1f} us/col ({row['vs_mskf']:.0f}x MSKF), "
              f"load {row['load_avg_1min']:.1f}", flush=True)
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "torch": torch.__version__, "mskf_us_per_column": 1e6 * MSKF_SECONDS_PER_COLUMN, "rows": rows}
    if not args.quick:
        from sciml.utils.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
