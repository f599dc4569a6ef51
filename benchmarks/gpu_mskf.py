"""GPU benchmark of the MSKF surrogate: columns/s and cost per column vs MSKF's 5.5 us/column/call.

    python benchmarks/gpu_mskf.py [--out DIR]          # on CUDA: writes DIR/gpu_mskf.json (default $OUT)
    python benchmarks/gpu_mskf.py --smoke              # CPU smoke test, seconds

No netCDF4 or file reading besides the shipped checkpoint: tiles are synthesised in memory around the model's stored
per-level statistics. Cases: tiles of 64 x 64, 96 x 96 (9,216 columns) and 220 x 200 with 44 levels (the paper's
domain, 44,000 columns), float32 and bfloat16 autocast, "network" (tensors already on the GPU) and
"step" (MSKFSurrogate.step: NumPy Fortran arrays on the host -> GPU -> NumPy, transfers included), for both
architectures (the shipped Bi-LSTM and column MLP; an untrained model of the same size if a checkpoint is absent).
Also host-CPU rows on 2 threads, an uncontended CPU reference (the project's own 2-core machine is shared): the MLP
on both tiles (float32, bfloat16), the Bi-LSTM's shipped size (3 x 32) and two smaller Bi-LSTMs (1 x 16, 1 x 8) on
96 x 96. Runs in well under 2 minutes on an H100.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.mskf_bilstm import MSKFNet, build_model  # noqa: E402
from sciml.bench.mskf import MSKF_SECONDS_PER_COLUMN, bench_case, with_levels  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "benchmarks")))
    ap.add_argument("--checkpoint", type=Path, default=REPO / "examples/pretrained/mskf-bilstm.pt")
    ap.add_argument("--mlp-checkpoint", type=Path, default=REPO / "examples/pretrained/mskf-mlp.pt")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run (no CUDA needed)")
    args = ap.parse_args()
    t_start = time.perf_counter()

    def load(path: Path, architecture: str, hidden: int, layers: int) -> MSKFNet:
        if path.is_file():
            from sciml.mskf.checkpoint import load_mskf_model

            return load_mskf_model(path)
        return build_model(architecture, 40, hidden, layers)

    ref = load(args.checkpoint, "bilstm", 32, 3)
    mlp = load(args.mlp_checkpoint, "mlp", 128, 2)
    cuda = torch.cuda.is_available() and not args.smoke
    result = {"device": torch.cuda.get_device_name(0) if cuda else "cpu (smoke test)", "torch": torch.__version__,
              "mskf_us_per_column": 1e6 * MSKF_SECONDS_PER_COLUMN, "rows": []}

    def record(case: str, run: Callable[[], dict[str, Any]]) -> None:
        """Run one case; a failure is recorded (not fatal) and the JSON is rewritten after every case."""
        try:
            row = run()
        except Exception as exc:  # noqa: BLE001 - keep the other cases' numbers
            row = {"case": case, "error": f"{type(exc).__name__}: {exc}"}
        row["case"] = case
        result["rows"].append(row)
        result["wall_s"] = time.perf_counter() - t_start
        print(json.dumps(row), flush=True)
        if cuda:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "gpu_mskf.json").write_text(json.dumps(result, indent=1))

    if not cuda:
        torch.set_num_threads(1)
        for net in (ref, mlp):
            record(f"smoke {net.architecture}", lambda m=net: bench_case(with_levels(m, 40), 8, 8, "cpu", repeats=2,
                                                                         budget_s=5.0))
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    for net in (ref, mlp):
        for ni, nj, nk in ((64, 64, 40), (96, 96, 40), (220, 200, 44)):
            model = with_levels(net, nk)
            for dtype in (torch.float32, torch.bfloat16):
                record(f"cuda {net.architecture} {ni}x{nj}x{nk} {dtype}",
                       lambda m=model, a=ni, b=nj, d=dtype: bench_case(m, a, b, "cuda", dtype=d, repeats=10,
                                                                       budget_s=3.0))
    torch.set_num_threads(2)
    for ni, nj, nk in ((96, 96, 40), (220, 200, 44)):
        for dtype in (torch.float32, torch.bfloat16):
            record(f"cpu 2 threads mlp {mlp.layers}x{mlp.hidden} {ni}x{nj}x{nk} {dtype}",
                   lambda a=ni, b=nj, k=nk, d=dtype: bench_case(with_levels(mlp, k), a, b, "cpu", dtype=d, repeats=5,
                                                                budget_s=4.0))
    for layers, hidden in ((3, 32), (1, 16), (1, 8)):
        if time.perf_counter() - t_start > 80:  # stay well inside the 2-minute slot
            break
        record(f"cpu 2 threads bilstm {layers}x{hidden} 96x96x40",
               lambda l=layers, h=hidden: bench_case(with_levels(ref, 40, hidden=h, layers=l), 96, 96, "cpu",
                                                     repeats=2, budget_s=8.0))
    print(f"wrote {args.out / 'gpu_mskf.json'} in {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
