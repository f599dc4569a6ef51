"""CPU benchmark of the MSKF surrogate: columns/s and cost per column vs MSKF (5.5 us/column/call on 2 cores).

    OMP_NUM_THREADS=2 nice python benchmarks/bench_mskf.py [--architectures bilstm,mlp] [--out FILE.json]

Cases, per architecture (its shipped checkpoint; an untrained model of the same size if absent - weights do not
change the cost): a 96 x 96 x 40 tile (the training run's domain: 9,216 columns, MSKF's reference) and a
220 x 200 x 44 tile (the paper's domain), 1 and 2 threads, float32 and bfloat16 autocast (AMX; Bi-LSTM: the
220 x 200 tile in bfloat16 on 1 thread only), plus two smaller sizes of each architecture (timing only, 96 x 96,
2 threads). "network" = tile module on ready tensors; "step" = MSKFSurrogate.step end to end (NumPy Fortran arrays
in, layout conversion, network, post-constraints, NumPy out); median and best of the repeats. The 1-minute load
average is recorded: the machine is shared, so timings are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.mskf_bilstm import MSKFNet, build_model, flops_per_column  # noqa: E402
from sciml.bench.mskf import bench_case, report, summary_line, with_levels  # noqa: E402


#: default size (hidden, layers) of each architecture when its checkpoint is absent
DEFAULT_SIZE: dict[str, tuple[int, int]] = {"bilstm": (32, 3), "mlp": (128, 2)}


def load_reference(path: Path, architecture: str) -> MSKFNet:
    """The shipped surrogate of ``architecture``, or an untrained one of the default size if ``path`` is absent."""
    if path.is_file():
        from sciml.mskf.checkpoint import load_mskf_model

        return load_mskf_model(path)
    hidden, layers = DEFAULT_SIZE[architecture]
    print(f"note: {path} not found, timing an untrained {architecture} {layers} x {hidden}", file=sys.stderr)
    return build_model(architecture, 40, hidden, layers)


def cases(architecture: str, ref: MSKFNet) -> list[tuple[int, int, int, int, int, int, torch.dtype]]:
    """(layers, hidden, ni, nj, nk, threads, dtype) for one architecture (see the module docstring)."""
    f32, bf16 = torch.float32, torch.bfloat16
    size = (ref.layers, ref.hidden)
    tiles = [(96, 96, 40), (220, 200, 44)]
    if architecture == "bilstm":  # slow: the big tile in bfloat16 on one thread only
        rows = [(*size, 96, 96, 40, t, d) for t in (1, 2) for d in (f32, bf16)]
        rows += [(*size, 220, 200, 44, t, f32) for t in (1, 2)] + [(*size, 220, 200, 44, 1, bf16)]
        return rows + [(layers, hidden, 96, 96, 40, 2, f32) for layers, hidden in ((1, 16), (1, 8))]
    rows = [(*size, *tile, t, d) for tile in tiles for t in (1, 2) for d in (f32, bf16)]
    return rows + [(layers, hidden, 96, 96, 40, 2, f32) for layers, hidden in ((2, 64), (1, 32))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=REPO / "examples/pretrained/mskf-bilstm.pt",
                    help="the Bi-LSTM's checkpoint")
    ap.add_argument("--mlp-checkpoint", type=Path, default=REPO / "examples/pretrained/mskf-mlp.pt")
    ap.add_argument("--architectures", default="bilstm,mlp", help="comma-separated: bilstm, mlp")
    ap.add_argument("--repeats", type=int, default=7, help="timed calls per case (fewer once 10 s are spent)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/bench_mskf.json")
    ap.add_argument("--quick", action="store_true", help="one small case per architecture (smoke test)")
    args = ap.parse_args()
    checkpoints = {"bilstm": args.checkpoint, "mlp": args.mlp_checkpoint}
    rows = []
    for architecture in args.architectures.split(","):
        ref = load_reference(checkpoints[architecture], architecture)
        todo = cases(architecture, ref) if not args.quick else [(ref.layers, ref.hidden, 16, 16, 40, 1, torch.float32)]
        for layers, hidden, ni, nj, nk, threads, dtype in todo:
            torch.set_num_threads(threads)
            model = with_levels(ref, nk, hidden=hidden, layers=layers)
            row = bench_case(model, ni, nj, "cpu", dtype=dtype, repeats=args.repeats, budget_s=10.0)
            row.update({"flops_per_column": flops_per_column(model), "load_avg_1min": os.getloadavg()[0]})
            rows.append(row)
            print(f"{summary_line(row)}, load {row['load_avg_1min']:.1f}", flush=True)
    result = report(rows)
    if not args.quick:
        from sciml.utils.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
