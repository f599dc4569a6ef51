"""GPU-machine check of the data pipeline: HDF5 read rates and DataLoader -> CUDA throughput.

    python benchmarks/gpu_data.py [--out DIR]     # on CUDA: writes DIR/gpu_data.json (default $OUT)
    python benchmarks/gpu_data.py --smoke         # CPU smoke test, a few seconds

Needs only numpy, h5py, torch and torch_geometric (no ASE/LMDB): the shard holds synthetic H/C/N/O molecules of
9-33 atoms (mean 21). Measures block reads, random single-frame reads, in-process batches, and the DataLoader with
2 and 4 workers (block-shuffling sampler, <= 4096 and <= 1024 atoms per batch, pinned memory, batches copied
to the GPU).
The device machine is not shared, so these are the uncontended numbers. Finishes in about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sciml.bench.data import build_shard, loader_benchmarks, machine, synthetic_frames  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "benchmarks/results")))
    ap.add_argument("--frames", type=int, default=50_000)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run (no CUDA needed)")
    args = ap.parse_args()
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    cuda = torch.cuda.is_available() and not args.smoke
    frames, repeats, workers = (args.frames, 2, [2, 4]) if not args.smoke else (3000, 1, [2])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        shard = Path(tmp) / "synthetic.h5"
        build_shard(synthetic_frames(), shard, frames)
        result = {"machine": machine(), "gpu": torch.cuda.get_device_name(0) if cuda else None,
                  "read": loader_benchmarks(shard, repeats, workers, device="cuda" if cuda else "cpu")}
    result["seconds"] = time.perf_counter() - t0
    text = json.dumps(result, indent=2)
    print(text)
    if cuda:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_data.json").write_text(text)


if __name__ == "__main__":
    main()
