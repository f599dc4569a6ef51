"""Training the potential through the engine: the loss falls on real data, and resuming is exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from potential_helpers import ACAC

from sciml.training.config import validate_config
from sciml.training.trainer import Trainer


def config(tmp_path: Path, run: str, **train: Any) -> dict[str, Any]:
    return validate_config({
        "task": "potential",
        "data": {"train": str(ACAC), "n_train": 24, "n_val": 8, "max_atoms": 45, "cache_dir": str(tmp_path / "cache")},
        "model": {"lmax": 1, "channels": 8, "layers": 2},
        "loss": {"energy_weight": 1.0, "force_weight": 10.0},
        "optim": {"lr": 0.01},
        "schedule": {"name": "constant"},
        "train": {"max_epochs": 2, "seed": 3, "device": "cpu", "progress": False, "ema_decay": 0.9, **train},
        "output": {"dir": str(tmp_path / run)},
    })


def validation_loss(cfg: dict[str, Any], model: torch.nn.Module) -> float:
    from sciml.potential.task import PotentialTask

    task = PotentialTask(cfg["data"], cfg["model"], cfg["loss"])
    _, val = task.datasets()
    sums: dict[str, float] = {}
    for start in range(0, len(val), 4):
        _, metrics = task.loss(model.eval(), task.collate([val[i] for i in range(start, min(start + 4, len(val)))]))
        for key, value in metrics.items():
            sums[key] = sums.get(key, 0.0) + float(value)
    return task.reduce_metrics(sums)["val_score"]


@pytest.mark.slow
def test_training_reduces_validation_loss(tmp_path: Path) -> None:
    from sciml.potential.task import PotentialTask
    from sciml.training.checkpoint import load_model

    cfg = config(tmp_path, "run", max_epochs=4)
    task = PotentialTask(cfg["data"], cfg["model"], cfg["loss"])
    train, _ = task.datasets()
    torch.manual_seed(3)
    before = validation_loss(cfg, task.build_model(train))
    Trainer(cfg).run()
    model, _, _ = load_model(tmp_path / "run" / "best.pt")
    after = validation_loss(cfg, model)
    assert after < 0.5 * before, (before, after)
    assert (tmp_path / "run" / "metrics.csv").is_file()
    # a second stage starts from the trained weights and statistics (model.init_from)
    cfg2 = validate_config({**cfg, "model": {**cfg["model"], "init_from": str(tmp_path / "run" / "best.pt")}})
    stage2 = PotentialTask(cfg2["data"], cfg2["model"], cfg2["loss"]).build_model(train)
    assert validation_loss(cfg2, stage2) == after


@pytest.mark.slow
def test_resume_mid_epoch_matches_uninterrupted_run(tmp_path: Path) -> None:
    Trainer(config(tmp_path, "ref")).run()
    Trainer(config(tmp_path, "cut", max_steps=5)).run()  # stops mid-way through epoch 0 (8 batches per epoch)
    Trainer(config(tmp_path, "cut"), resume=True).run()
    ref = torch.load(tmp_path / "ref" / "last.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert ref["step"] == cut["step"] > 5
    for key, value in ref["model"].items():
        assert torch.equal(value, cut["model"][key]), key
        assert torch.equal(ref["ema"]["weights"][key], cut["ema"]["weights"][key]), key


def test_splits_by_frame_group_and_explicit_files(tmp_path: Path) -> None:
    import numpy as np

    from data_tools.splits import split_frames
    from sciml.potential.task import PotentialTask

    groups = np.repeat(np.arange(5), [3, 1, 4, 2, 2])  # e.g. 5 trajectories of uneven length
    train, val = split_frames(groups, {"train": 0, "val": 2}, seed=1, by="group").values()
    assert set(groups[train]).isdisjoint(groups[val]) and len(set(groups[val])) == 2
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(groups)))
    train, val = split_frames(np.zeros(500), {"train": 450, "val": 50}, seed=0).values()
    assert len(train) == 450 and len(val) == 50 and not set(train) & set(val)

    cfg = config(tmp_path, "x")
    cfg["data"] = {**cfg["data"], "val": [str(ACAC)], "n_train": 30}
    train_ds, val_ds = PotentialTask(cfg["data"], cfg["model"], cfg["loss"]).datasets()
    assert len(train_ds) == 30 and len(val_ds) == 500
