"""GPU check of the training engine (``sciml.training``): the CUDA code paths CPU tests cannot reach.

1. ``amp``: bf16 autocast + TF32 + EMA + gradient clipping + pinned-memory loading on CUDA; the checkpoint holds
   the CUDA RNG state and ``load_model(..., device="cuda", dtype=torch.float64)`` reproduces the logged validation.
2. ``overhead``: optimiser steps/s of the engine against a bare PyTorch loop (same model, data, AdamW, autocast):
   the cost of the NaN check, EMA, clipping, schedule and metric bookkeeping per step.
3. ``resume``: ``train.deterministic: true``; a run stopped mid-epoch (injected stop after a checkpoint) and
   resumed ends with bit-identical parameters to an uninterrupted run.

The task is a synthetic regression (a smooth function of 64 inputs, fixed seed): it exercises the engine, not a
model family. Runs on CPU too (tiny sizes) as a smoke test. Usage::

    python benchmarks/gpu_training.py [--out DIR]      # JSON to DIR/gpu_training.json (default $OUT or .)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before cuBLAS starts: deterministic check

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sciml.training.checkpoint import load_model  # noqa: E402
from sciml.training.config import validate_config  # noqa: E402
from sciml.training.tensor_task import TensorTask  # noqa: E402
from sciml.training.task import TASKS  # noqa: E402
from sciml.training.trainer import Trainer  # noqa: E402
from sciml.utils.atomic import atomic_write_text  # noqa: E402

N_IN = 64
TIME_BUDGET_S = 90  # checks not started by then are skipped (the whole script must stay under 2 min)
#: injected stop: raise after this many loss calls in this process (None = off)
STOP_AFTER: list[int | None] = [None]


class InjectedStop(RuntimeError):
    """Stands in for a killed process."""


class SyntheticRegressionTask(TensorTask):
    """y = sum_k sin(x . w_k) for fixed random w (float32 inputs, N_IN features); MSE loss."""

    name = "synthetic-regression"
    data_defaults = {"n_train": 8192, "n_val": 1024, "batch_size": 256}
    model_defaults = {"width": 512, "depth": 4}

    def datasets(self) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
        g = torch.Generator().manual_seed(1234)
        n = self.data_cfg["n_train"] + self.data_cfg["n_val"]
        x = torch.randn(n, N_IN, generator=g)
        y = torch.sin(x @ torch.randn(N_IN, 8, generator=g) / math.sqrt(N_IN)).sum(1)
        k = self.data_cfg["n_train"]
        return torch.utils.data.TensorDataset(x[:k], y[:k]), torch.utils.data.TensorDataset(x[k:], y[k:])

    def build_model(self, train_dataset) -> nn.Module:
        return make_mlp(self.model_cfg["width"], self.model_cfg["depth"])

    def loss(self, model, batch):
        if STOP_AFTER[0] is not None:
            STOP_AFTER[0] -= 1
            if STOP_AFTER[0] < 0:
                raise InjectedStop("injected stop")
        x, y = batch
        err = model(x).squeeze(-1).float() - y
        return err.square().mean(), {"sq": err.detach().square().sum(), "n": torch.tensor(float(len(y)))}

    def reduce_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        rmse = math.sqrt(sums["sq"] / sums["n"])
        return {"rmse": rmse, "val_score": rmse}


def make_mlp(width: int, depth: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(N_IN, width), nn.SiLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.SiLU()]
    return nn.Sequential(*layers, nn.Linear(width, 1))


def config(outdir: Path, device: str, sizes: dict[str, int], **train: Any) -> dict[str, Any]:
    return validate_config({
        "task": "synthetic-regression",
        "data": {"n_train": sizes["n_train"], "n_val": sizes["n_val"], "batch_size": sizes["batch"]},
        "model": {"width": sizes["width"], "depth": 4},
        "optim": {"lr": 2e-3},
        "schedule": {"name": "cosine", "warmup_steps": 20},
        "train": {"max_epochs": sizes["epochs"], "device": device, "progress": False, "log_every": 50, **train},
        "output": {"dir": str(outdir)},
    })


def check_amp(tmp: Path, device: str, sizes: dict[str, int]) -> dict[str, Any]:
    cfg = config(tmp / "amp", device, sizes, amp=True, tf32=True, ema_decay=0.99, grad_clip=5.0)
    t0 = time.perf_counter()
    summary = Trainer(cfg).run()
    wall = time.perf_counter() - t0
    ckpt = torch.load(tmp / "amp" / "last.pt", map_location="cpu", weights_only=True)
    model, task, _ = load_model(tmp / "amp" / "last.pt", device=device, dtype=torch.float64)
    _, val = task.datasets()
    x, y = (t.to(device, torch.float64) for t in val.tensors)
    with torch.no_grad():
        rmse64 = float((model(x).squeeze(-1) - y).square().mean().sqrt())
    return {"steps": summary["steps"], "wall_s": wall, "steps_per_s": summary["steps"] / wall,
            "val_rmse_first": ckpt["history"][0]["val_rmse"], "val_rmse_last": ckpt["history"][-1]["val_rmse"],
            "val_rmse_float64_reload": rmse64, "cuda_rng_states": len(ckpt["rng"]["cuda"]),
            "loss_decreased": ckpt["history"][-1]["val_rmse"] < ckpt["history"][0]["val_rmse"]}


def bare_loop_steps_per_s(device: str, sizes: dict[str, int], steps: int) -> float:
    """AdamW + bf16 autocast on the same data and model, no engine."""
    torch.manual_seed(0)
    task = SyntheticRegressionTask({"n_train": sizes["n_train"], "n_val": sizes["n_val"],
                                    "batch_size": sizes["batch"]}, {"width": sizes["width"], "depth": 4}, {})
    train, _ = task.datasets()
    x_all, y_all = (t.to(device) for t in train.tensors)
    model = task.build_model(train).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    b = sizes["batch"]
    nb = len(train) // b
    for warm in (True, False):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(10 if warm else steps):
            x, y = x_all[(i % nb) * b:(i % nb + 1) * b], y_all[(i % nb) * b:(i % nb + 1) * b]
            with amp:
                loss = (model(x).squeeze(-1).float() - y).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def check_overhead(tmp: Path, device: str, sizes: dict[str, int]) -> dict[str, Any]:
    """Marginal engine time per step: (T(3 epochs) - T(1 epoch)) / (2 epochs of steps), so the fixed costs of the
    final validation, checkpoint and plot cancel."""
    times, steps = [], []
    for epochs in (1, 3):
        trainer = Trainer(config(tmp / f"e{epochs}", device, sizes, amp=True, val_every=0, max_epochs=epochs))
        t0 = time.perf_counter()
        steps.append(trainer.run()["steps"])
        times.append(time.perf_counter() - t0)
    engine_ms = 1e3 * (times[1] - times[0]) / (steps[1] - steps[0])
    bare_ms = 1e3 / bare_loop_steps_per_s(device, sizes, steps[1])
    return {"engine_ms_per_step": engine_ms, "bare_loop_ms_per_step": bare_ms,
            "engine_overhead_ms_per_step": engine_ms - bare_ms,
            "note": "engine: DataLoader collation from CPU tensors + host-to-device copy, NaN check (one sync), "
                    "grad-norm, schedule, metric sums; bare loop: slices of tensors already on the device"}


def check_resume(tmp: Path, device: str, sizes: dict[str, int]) -> dict[str, Any]:
    extra = {"deterministic": True, "amp": False, "tf32": False, "ema_decay": 0.99, "checkpoint_every_steps": 5}
    Trainer(config(tmp / "ref", device, sizes, **extra)).run()
    cut_cfg = config(tmp / "cut", device, sizes, **extra)
    STOP_AFTER[0] = sizes["stop_after"]
    try:
        Trainer(cut_cfg).run()
        raise AssertionError("the injected stop did not fire")
    except InjectedStop:
        pass
    finally:
        STOP_AFTER[0] = None
    stopped_at = torch.load(tmp / "cut" / "last.pt", map_location="cpu", weights_only=True)["step"]
    Trainer(cut_cfg, resume=True).run()
    a = torch.load(tmp / "ref" / "last.pt", map_location="cpu", weights_only=True)
    b = torch.load(tmp / "cut" / "last.pt", map_location="cpu", weights_only=True)
    same = all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    same_ema = all(torch.equal(a["ema"]["weights"][k], b["ema"]["weights"][k]) for k in a["model"])
    max_diff = max(float((a["model"][k].float() - b["model"][k].float()).abs().max()) for k in a["model"])
    return {"resumed_from_step": stopped_at, "final_step": b["step"], "bit_identical_params": same,
            "bit_identical_ema": same_ema, "max_abs_param_diff": max_diff}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    sizes = ({"n_train": 16384, "n_val": 2048, "batch": 512, "width": 1024, "epochs": 6, "stop_after": 45} if cuda
             else {"n_train": 512, "n_val": 128, "batch": 64, "width": 32, "epochs": 2, "stop_after": 14})
    TASKS["synthetic-regression"] = f"{__name__}:SyntheticRegressionTask"
    result: dict[str, Any] = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
                              "sizes": sizes}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, check in (("amp", check_amp), ("overhead", check_overhead), ("resume", check_resume)):
            if time.perf_counter() - t_start > TIME_BUDGET_S:
                result[name] = {"skipped": f"time budget of {TIME_BUDGET_S} s used up"}
                continue
            t0 = time.perf_counter()
            try:
                result[name] = check(Path(tmp) / name, device, sizes)
            except Exception as exc:  # record and go on: one failed check must not hide the others
                result[name] = {"error": f"{type(exc).__name__}: {exc}"}
            result[name]["check_wall_s"] = time.perf_counter() - t0
            print(name, json.dumps(result[name]), flush=True)
            if cuda:  # after every check, so a timeout still leaves the finished ones
                atomic_write_text(args.out / "gpu_training.json", json.dumps(result, indent=1) + "\n")
    if cuda:
        print(f"wrote {args.out / 'gpu_training.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
