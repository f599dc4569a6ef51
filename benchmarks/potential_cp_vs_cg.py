"""Same network, same data, same seed: train the TDN potential with the CP product (exact rank) and with e3nn's CG
product, then compare wall time and held-out errors. Short runs (CPU), stated as such in docs/benchmarks.md.

    OMP_NUM_THREADS=1 python benchmarks/potential_cp_vs_cg.py --epochs 6 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    from sciml.potential.evaluate import evaluate, load_labelled
    from sciml.training.checkpoint import load_model
    from sciml.training.config import validate_config
    from sciml.training.trainer import Trainer
    from sciml.utils.atomic import atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--work", type=Path, default=Path("/tmp/sciml-cp-vs-cg"))
    p.add_argument("--ood", type=Path, default=REPO.parent / "shared" / "mlip_data" / "acac" / "train_600K.xyz")
    args = p.parse_args()
    model = {"lmax": 2, "channels": 16, "layers": 2, "cutoff": 5.0}
    rows = []
    for tp in ("cp", "cg"):
        cfg = validate_config({
            "task": "potential",
            "data": {"train": str(REPO / "examples/data/acac/train_300K.xyz"), "n_train": 450, "n_val": 50,
                     "max_atoms": 75},
            "model": {**model, "tensor_product": tp},
            "loss": {"energy_weight": 1.0, "force_weight": 20.0},
            "optim": {"lr": 0.005}, "schedule": {"name": "cosine", "warmup_steps": 50, "min_lr_factor": 0.01},
            "train": {"max_epochs": args.epochs, "seed": 0, "device": "cpu", "progress": False, "ema_decay": 0.99,
                      "val_every": args.epochs},
            "output": {"dir": str(args.work / tp)},
        })
        t0 = time.perf_counter()
        Trainer(cfg).run()
        seconds = time.perf_counter() - t0
        net, task, _ = load_model(args.work / tp / "best.pt")
        _, val = task.datasets()
        row = {"tensor_product": tp, **model, "epochs": args.epochs, "train_wall_s": seconds,
               "val": evaluate(net, val.__getitems__(list(range(len(val)))), task.inputs).metrics}
        if args.ood.is_file():
            row["ood_600K"] = evaluate(net, load_labelled(args.ood), task.inputs).metrics
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "potential_cp_vs_cg.json",
                      json.dumps({"loadavg": os.getloadavg(), "results": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
