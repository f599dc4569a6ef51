"""The training engine on a tiny real regression: acetylacetone DFT energies from inverse interatomic distances.

The test-only task :class:`AcacEnergyTask` lives here; configs name it ``test_training_engine:AcacEnergyTask``
(subprocess runs put this folder on ``PYTHONPATH``).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

from sciml.training.samplers import IndexBatchSampler
from sciml.training.tensor_task import TensorTask

TASK = "test_training_engine:AcacEnergyTask"
HERE = Path(__file__).resolve().parent


class AcacEnergyTask(TensorTask):
    """Energy (eV) of one molecule from its inverse pairwise distances (1/Angstrom) with a small MLP."""

    name = "acac-energy"
    data_defaults = {"path": None, "n_train": 400, "n_val": 100, "batch_size": 16, "poison_index": -1,
                     "sleep_s": 0.0}
    model_defaults = {"hidden": 32}
    loss_defaults = {"scale": 1.0}

    def datasets(self) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
        blob = torch.load(self.data_cfg["path"], weights_only=True)
        x, y = blob["x"], blob["energy"].clone()
        if self.data_cfg["poison_index"] >= 0:
            y[self.data_cfg["poison_index"]] = math.nan
        n_tr, n_va = self.data_cfg["n_train"], self.data_cfg["n_val"]
        train = torch.utils.data.TensorDataset(x[:n_tr], y[:n_tr])
        val = torch.utils.data.TensorDataset(x[n_tr:n_tr + n_va], y[n_tr:n_tr + n_va])
        return train, val

    def build_model(self, train_dataset) -> nn.Module:
        model = _EnergyMLP(105, self.model_cfg["hidden"])
        if train_dataset is not None:
            x, y = train_dataset.tensors
            ok = torch.isfinite(y)
            model.x_mean.copy_(x.mean(0))
            model.x_std.copy_(x.std(0))
            model.y_mean.copy_(y[ok].mean())
            model.y_std.copy_(y[ok].std())
        return model

    def loss(self, model, batch):
        x, y = batch
        time.sleep(self.data_cfg["sleep_s"])
        pred = model(x)
        std = getattr(model, "module", model).y_std
        loss = self.loss_cfg["scale"] * (((pred - y) / std) ** 2).mean()
        err = (pred - y).detach()
        return loss, {"abs": err.abs().sum(), "sq": (err ** 2).sum(), "n": torch.tensor(float(len(y)))}

    def reduce_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        mae = sums["abs"] / sums["n"]
        return {"energy_mae_eV": mae, "energy_rmse_eV": math.sqrt(sums["sq"] / sums["n"]), "val_score": mae}


class _EnergyMLP(nn.Module):
    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        for name in ("x_mean", "x_std"):
            self.register_buffer(name, torch.zeros(n_in))
        for name in ("y_mean", "y_std"):
            self.register_buffer(name, torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.x_mean) / self.x_std).squeeze(-1) * self.y_std + self.y_mean


@pytest.fixture(scope="session")
def acac_features(repo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inverse distances (500 x 105) and DFT energies (eV) of the shipped acac train_300K set (a copy of
    ../shared/mlip_data/acac/train_300K.xyz), saved as a weights-only .pt file."""
    from ase.io import read

    frames = read(repo_dir / "examples" / "data" / "acac" / "train_300K.xyz", index=":")
    iu = torch.triu_indices(15, 15, offset=1)
    xs, es = [], []
    for atoms in frames:
        d = torch.cdist(torch.tensor(atoms.positions), torch.tensor(atoms.positions))
        xs.append(1.0 / d[iu[0], iu[1]])
        es.append(atoms.get_potential_energy())
    path = tmp_path_factory.mktemp("acac") / "acac_invdist.pt"
    torch.save({"x": torch.stack(xs).float(), "energy": torch.tensor(es)}, path)
    return path


def make_config(data_path: Path, outdir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "task": TASK,
        "data": {"path": str(data_path)},
        "model": {"hidden": 32},
        "optim": {"lr": 3e-3},
        "schedule": {"name": "cosine", "warmup_steps": 5},
        "train": {"max_epochs": 3, "seed": 1, "device": "cpu", "progress": False, "deterministic": True},
        "output": {"dir": str(outdir)},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def write_config(cfg: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _env() -> dict[str, str]:
    """Subprocess environment: one thread (bit-identical runs) and this folder importable (the test task)."""
    return dict(os.environ, OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))


def sciml_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sciml", "train", *args]


def train_in_process(cfg: dict[str, Any], resume: bool = False) -> dict[str, Any]:
    from sciml.training.config import validate_config
    from sciml.training.trainer import Trainer

    return Trainer(validate_config(cfg), resume=resume).run()



def read_metrics(run: Path) -> list[dict[str, float]]:
    import csv

    with (run / "metrics.csv").open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


@pytest.mark.slow
def test_training_reduces_error_and_writes_outputs(acac_features: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = train_in_process(make_config(acac_features, run, train={"max_epochs": 4, "ema_decay": 0.9}))
    rows = read_metrics(run)
    assert summary["steps"] == 4 * 25 == rows[-1]["step"]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    blob = torch.load(acac_features, weights_only=True)
    e_train, e_val = blob["energy"][:400], blob["energy"][400:]
    baseline_mae = float((e_val - e_train.mean()).abs().mean())  # predicting the mean energy
    assert rows[-1]["train_loss"] < 0.75 * rows[0]["train_loss"]
    assert rows[-1]["val_energy_mae_eV"] < 0.9 * baseline_mae
    assert summary["best_score"] == min(r["val_score"] for r in rows)
    for name in ("last.pt", "best.pt", "learning_curve.png", "config.yaml", "summary.json"):
        assert (run / name).stat().st_size > 0, name
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(run / "tb")).Reload()
    assert {"step/loss", "step/lr", "step/samples_per_s", "val/score", "train/loss"} <= set(tb.Tags()["scalars"])
    assert [e.value for e in tb.Scalars("val/score")] == pytest.approx([r["val_score"] for r in rows])
    assert not list(run.glob(".tmp-*"))  # atomic writes leave no temporary files


# -- config validation ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("patch", "expected"), [
    ({"train": {"max_epoch": 3}}, "unknown key 'max_epoch' in section 'train' (did you mean 'max_epochs'?)"),
    ({"optimizer": {"lr": 1.0}}, "unknown top-level section 'optimizer' (did you mean 'optim'?)"),
    ({"data": {"batchsize": 8}}, "unknown key 'batchsize' in section 'data' (did you mean 'batch_size'?)"),
    ({"train": {"max_epochs": "ten"}}, "train.max_epochs must be an integer"),
    ({"optim": {"lr": "fast"}}, "optim.lr must be a number"),
    ({"train": {"amp": 1}}, "train.amp must be a boolean"),
    ({"schedule": {"name": "linear"}}, "schedule.name must be one of cosine, plateau, constant"),
    ({"train": {"nan_policy": "ignore"}}, "train.nan_policy must be one of stop, skip"),
    ({"train": {"device": "gpu"}}, "train.device must be auto, cpu, cuda or cuda:N"),
    ({"data": {"path": None}}, "missing required key data.path"),
    ({"task": "no_such_task"}, "unknown task 'no_such_task'"),
    ({"train": ["max_epochs"]}, "config section 'train' must be a mapping"),
])
def test_config_errors_name_section_and_key(tmp_path: Path, patch: dict[str, Any], expected: str) -> None:
    from sciml.errors import ConfigError
    from sciml.training.config import validate_config

    cfg = make_config(tmp_path / "x.pt", tmp_path / "run")
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert expected in str(err.value)


def test_config_defaults_and_overrides(tmp_path: Path) -> None:
    from sciml.training.config import ENGINE_DEFAULTS, load_config

    path = write_config(make_config(tmp_path / "x.pt", tmp_path / "run"), tmp_path / "c.yaml")
    cfg = load_config(path, ["optim.lr=2e-4", "train.grad_clip=10", "data.batch_size=4"])
    assert cfg["optim"]["lr"] == 2e-4 and cfg["train"]["grad_clip"] == 10.0 and cfg["data"]["batch_size"] == 4
    assert isinstance(cfg["train"]["grad_clip"], float)
    assert cfg["data"]["n_train"] == AcacEnergyTask.data_defaults["n_train"]
    assert cfg["schedule"]["patience"] == ENGINE_DEFAULTS["schedule"]["patience"]


def test_print_config_shows_all_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sciml.cli import main
    from sciml.training.config import ENGINE_DEFAULTS

    cfg = write_config(make_config(tmp_path / "x.pt", tmp_path / "run"), tmp_path / "c.yaml")
    assert main(["train", str(cfg), "--print-config", "--set", "train.grad_clip=2"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["train"]["grad_clip"] == 2.0 and shown["data"]["batch_size"] == 16
    assert set(shown["train"]) == set(ENGINE_DEFAULTS["train"]) and not (tmp_path / "run").exists()


def test_cli_reports_config_error_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sciml.cli import main

    cfg = make_config(tmp_path / "x.pt", tmp_path / "run", optim={"weight_decy": 0.1})
    rc = main(["train", str(write_config(cfg, tmp_path / "bad.yaml"))])
    err = capsys.readouterr().err
    assert rc == 2
    assert "bad.yaml" in err and "'weight_decy' in section 'optim' (did you mean 'weight_decay'?)" in err
    assert "Traceback" not in err


# -- schedules and EMA ---------------------------------------------------------------------------------------------
def _schedule(**cfg: Any):
    from sciml.training.config import ENGINE_DEFAULTS
    from sciml.training.schedules import LRSchedule

    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
    return LRSchedule(opt, {**ENGINE_DEFAULTS["schedule"], **cfg}, total_steps=110)


def test_warmup_cosine_schedule() -> None:
    sched = _schedule(name="cosine", warmup_steps=10, min_lr_factor=0.1)
    lrs = [sched.lr]
    for _ in range(110):
        sched.step()
        lrs.append(sched.lr)
    assert lrs[0] == pytest.approx(0.1) and lrs[4] == pytest.approx(0.5)  # linear warm-up, (step + 1) / 10
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert lrs[110] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_plateau_schedule_cuts_after_patience_and_round_trips() -> None:
    sched = _schedule(name="plateau", patience=2, factor=0.5)
    for score in (1.0, 0.9, 0.95, 0.91):  # two validations without improvement: no cut yet
        sched.observe(score)
    assert sched.lr == 1.0
    sched.observe(0.92)
    assert sched.lr == 0.5
    clone = _schedule(name="plateau", patience=2, factor=0.5)
    clone.load_state_dict(sched.state_dict())
    assert clone.lr == 0.5 and clone.best == 0.9


def test_ema_follows_formula() -> None:
    from sciml.training.ema import EMA

    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.5)
    expected = 0.0
    for n, value in enumerate([1.0, 2.0, 4.0], start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
        assert float(ema.module.weight) == pytest.approx(expected)


# -- checkpoints, resume, NaN --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_checkpoint_is_weights_only_and_load_model_matches_validation(acac_features: Path, tmp_path: Path) -> None:
    from sciml.training.checkpoint import load_model

    run = tmp_path / "run"
    summary = train_in_process(make_config(acac_features, run, train={"max_epochs": 2, "ema_decay": 0.95}))
    ckpt = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == summary["steps"] == 50 and ckpt["epoch"] == 2
    assert ckpt["sampler"] == {"epoch": 2, "batches_consumed": 0, "state": ckpt["sampler"]["state"]}
    assert set(ckpt["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert ckpt["config"]["optim"]["lr"] == 3e-3 and len(ckpt["history"]) == 2
    ema_w, raw_w = ckpt["ema"]["weights"]["net.0.weight"], ckpt["model"]["net.0.weight"]
    assert not torch.equal(ema_w, raw_w)  # the EMA lags the raw weights

    model, task, config = load_model(run / "last.pt", device="cpu", allow_tasks=[TASK])
    assert torch.equal(model.net[0].weight, ema_w) and not model.training
    assert config["task"] == TASK and isinstance(task, AcacEnergyTask)
    blob = torch.load(acac_features, weights_only=True)
    with torch.no_grad():
        mae = (model(blob["x"][400:]) - blob["energy"][400:]).abs().mean()
    assert float(mae) == pytest.approx(ckpt["history"][-1]["val_energy_mae_eV"], rel=1e-5)  # validation used the EMA
    raw_model, _, _ = load_model(run / "last.pt", use_ema=False, dtype=torch.float64, allow_tasks=[TASK])
    assert torch.equal(raw_model.net[0].weight, raw_w.double())


def test_failed_checkpoint_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sciml.training.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(3)})

    def crash(obj: Any, f: Any) -> None:
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def _final_state(run: Path) -> dict[str, Any]:
    return torch.load(run / "last.pt", map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(acac_features: Path, tmp_path: Path) -> None:
    common = {"train": {"max_epochs": 3, "checkpoint_every_steps": 7, "ema_decay": 0.9},
              "data": {"path": str(acac_features), "sleep_s": 0.01}}
    cfg_ref = write_config(make_config(acac_features, tmp_path / "ref", **common), tmp_path / "ref.yaml")
    cfg_cut = write_config(make_config(acac_features, tmp_path / "cut", **common), tmp_path / "cut.yaml")
    ref = subprocess.Popen(sciml_cmd(str(cfg_ref)), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    cut = subprocess.Popen(sciml_cmd(str(cfg_cut)), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not (tmp_path / "cut" / "last.pt").exists() and cut.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    cut.send_signal(signal.SIGKILL)
    cut.wait()
    assert cut.returncode == -signal.SIGKILL
    killed_at = _final_state(tmp_path / "cut")["step"]
    assert 0 < killed_at < 75 and killed_at % 7 == 0 and killed_at % 25 != 0  # mid-epoch
    out, _ = ref.communicate(timeout=120)
    assert ref.returncode == 0, out.decode()
    resumed = subprocess.run(sciml_cmd(str(cfg_cut), "--resume"), env=_env(), capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{75 - killed_at} batches in this run" in resumed.stdout

    a, b = _final_state(tmp_path / "ref"), _final_state(tmp_path / "cut")
    assert a["step"] == b["step"] == 75
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
        assert torch.equal(a["ema"]["weights"][key], b["ema"]["weights"][key]), key
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(pa["exp_avg_sq"], pb["exp_avg_sq"])
    assert a["scheduler"] == b["scheduler"]
    assert a["history"] == b["history"]  # including the training metrics pooled across the interruption
    assert (tmp_path / "cut" / "metrics.csv").read_text() == (tmp_path / "ref" / "metrics.csv").read_text()


@pytest.mark.slow
def test_graceful_stops_then_resume_match_uninterrupted_run(acac_features: Path, tmp_path: Path) -> None:
    """SIGTERM and train.max_time_s stop at a step boundary with last.pt written; resuming twice gives the same
    final state as one uninterrupted run (in process: same threads, so bit-identical)."""
    import threading

    from sciml.training.config import validate_config
    from sciml.training.trainer import Trainer

    data = {"path": str(acac_features), "sleep_s": 0.01}
    ref = train_in_process(make_config(acac_features, tmp_path / "ref", data=data, train={"ema_decay": 0.9}))
    cfg = make_config(acac_features, tmp_path / "cut", data=data, train={"ema_decay": 0.9})
    trainer = Trainer(validate_config(cfg))
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
    first = trainer.run()
    assert first["stopped"] == "SIGTERM received" and 0 < first["steps"] < 75
    assert _final_state(tmp_path / "cut")["step"] == first["steps"]
    cfg["train"]["max_time_s"] = 0.2
    second = train_in_process(cfg, resume=True)
    assert second["stopped"] == "train.max_time_s = 0.2 s reached" and first["steps"] < second["steps"] < 75
    cfg["train"]["max_time_s"] = 0.0
    final = train_in_process(cfg, resume=True)
    assert final["stopped"] == "" and final["steps"] == ref["steps"] == 75
    a, b = _final_state(tmp_path / "ref"), _final_state(tmp_path / "cut")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
        assert torch.equal(a["ema"]["weights"][key], b["ema"]["weights"][key]), key
    assert a["history"] == b["history"]


@pytest.mark.slow
def test_resume_refuses_changed_model_and_existing_run(acac_features: Path, tmp_path: Path) -> None:
    from sciml.errors import ConfigError

    cfg = make_config(acac_features, tmp_path / "run", train={"max_epochs": 1})
    train_in_process(cfg)
    with pytest.raises(ConfigError, match="already holds a run"):
        train_in_process(cfg)
    with pytest.raises(ConfigError, match="section\\(s\\) model differ"):
        train_in_process(make_config(acac_features, tmp_path / "run", model={"hidden": 8}), resume=True)
    with pytest.raises(ConfigError, match="no checkpoint"):
        train_in_process(make_config(acac_features, tmp_path / "other"), resume=True)
    # engine sections may change: a second stage with a lower constant lr and more epochs
    stage2 = make_config(acac_features, tmp_path / "run", optim={"lr": 1e-4, "weight_decay": 0.01},
                         schedule={"name": "constant"}, train={"max_epochs": 2})
    assert train_in_process(stage2, resume=True)["steps"] == 50
    ckpt = _final_state(tmp_path / "run")
    group = ckpt["optimizer"]["param_groups"][0]
    assert group["lr"] == 1e-4 and group["weight_decay"] == 0.01 and ckpt["scheduler"]["base_lrs"] == [1e-4]


@pytest.mark.slow
def test_nan_loss_stops_with_step_epoch_and_indices(acac_features: Path, tmp_path: Path) -> None:
    from sciml.training.trainer import NonFiniteLossError

    cfg = make_config(acac_features, tmp_path / "run", data={"path": str(acac_features), "poison_index": 123})
    with pytest.raises(NonFiniteLossError) as err:
        train_in_process(cfg)
    msg = str(err.value)
    assert "non-finite loss at step" in msg and "epoch 0" in msg and "loss = nan" in msg
    indices = [int(i) for i in msg.split("dataset indices [")[1].split("]")[0].split(",")]
    assert 123 in indices and len(indices) == 16
    step = int(msg.split("at step ")[1].split(",")[0])
    batch = int(msg.split("batch ")[1].split(" ")[0])
    assert step == batch + 1  # nothing was skipped before it in epoch 0
    ckpt = _final_state(tmp_path / "run")
    assert ckpt["step"] == step - 1 and ckpt["sampler"]["batches_consumed"] == batch
    cfg["train"]["nan_policy"] = "skip"  # the workflow the message suggests
    summary = train_in_process(cfg, resume=True)
    assert summary["nan_skipped"] == 3 and summary["steps"] == 3 * 25 - 3


@pytest.mark.slow
def test_nan_skip_policy_counts_and_continues(acac_features: Path, tmp_path: Path) -> None:
    cfg = make_config(acac_features, tmp_path / "run", data={"path": str(acac_features), "poison_index": 123},
                      train={"max_epochs": 2, "nan_policy": "skip"})
    summary = train_in_process(cfg)
    assert summary["nan_skipped"] == 2  # index 123 is in one batch per epoch
    assert summary["steps"] == 2 * 25 - 2
    rows = read_metrics(tmp_path / "run")
    assert [r["nan_skipped"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_score"]) for r in rows)


@pytest.mark.slow
def test_torchrun_ddp_two_ranks_step_together(acac_features: Path, tmp_path: Path) -> None:
    from sciml.training.checkpoint import load_model

    # 10 validation items = one batch: rank 1 validates nothing and must still join the metric reduction
    cfg = write_config(make_config(acac_features, tmp_path / "ddp", data={"path": str(acac_features), "n_val": 10},
                                   train={"max_epochs": 2}), tmp_path / "ddp.yaml")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "sciml", "train", str(cfg)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    steps_per_rank = 2 * (25 // 2)  # 25 batches per epoch dealt to 2 ranks, remainder left out
    for rank in (0, 1):
        assert f"rank {rank}/2: done at step {steps_per_rank} (epoch 2); {steps_per_rank} batches" in proc.stdout
    ckpt = _final_state(tmp_path / "ddp")
    assert ckpt["world_size"] == 2 and ckpt["step"] == steps_per_rank
    rows = read_metrics(tmp_path / "ddp")
    assert len(rows) == 2 and all(math.isfinite(r["val_energy_mae_eV"]) for r in rows)
    blob = torch.load(acac_features, weights_only=True)
    model, _, _ = load_model(tmp_path / "ddp" / "last.pt", allow_tasks=[TASK])
    with torch.no_grad():
        mae = (model(blob["x"][400:410]) - blob["energy"][400:410]).abs().mean()
    assert float(mae) == pytest.approx(rows[-1]["val_energy_mae_eV"], rel=1e-5)  # all 10 items, counted once


def test_docs_example_config_is_valid(repo_dir: Path) -> None:
    import re

    from sciml.training.config import validate_config

    text = (repo_dir / "docs" / "training.md").read_text()
    example = re.search(r"### Full example\n\n```yaml\n(.*?)```", text, re.S).group(1)
    cfg = validate_config(yaml.safe_load(example))
    assert cfg["task"] == "potential" and cfg["optim"]["amsgrad"] is True


def test_numpy_in_sampler_state_stays_weights_only_loadable(tmp_path: Path) -> None:
    import numpy as np

    from sciml.training.checkpoint import load_checkpoint, save_checkpoint, to_plain

    state = {"epoch": np.int64(3), "order": np.arange(4), "pair": (np.float32(0.5), 2)}
    save_checkpoint(tmp_path / "c.pt", {"sampler": to_plain(state)})
    loaded = load_checkpoint(tmp_path / "c.pt")["sampler"]
    assert loaded["epoch"] == 3 and type(loaded["epoch"]) is int
    assert torch.equal(loaded["order"], torch.arange(4)) and loaded["pair"] == (0.5, 2)


def test_cli_flags_override_config(acac_features: Path, tmp_path: Path) -> None:
    from sciml.cli import main

    cfg = write_config(make_config(acac_features, tmp_path / "ignored"), tmp_path / "c.yaml")
    out = tmp_path / "odd: name"
    assert main(["train", str(cfg), "-o", str(out), "--max-steps", "3", "--device", "cpu",
                 "--set", "optim.lr=1e-4", "--set", "schedule.name=constant"]) == 0
    ckpt = _final_state(out)
    assert ckpt["step"] == 3 and ckpt["config"]["output"]["dir"] == str(out)
    assert ckpt["config"]["optim"]["lr"] == 1e-4 and ckpt["scheduler"]["base_lrs"] == [1e-4]
    assert not (tmp_path / "ignored").exists()


def test_unequal_batch_counts_across_ranks_are_an_error(acac_features: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sampler giving ranks different batch counts would hang DDP; the engine stops with the counts instead."""
    from sciml.errors import SciMLError
    from sciml.training import distributed

    monkeypatch.setattr(distributed, "all_gather_ints", lambda value, ctx: [value, value - 1])
    with pytest.raises(SciMLError, match=r"epoch 0: .* different batch counts \[25, 24\]"):
        train_in_process(make_config(acac_features, tmp_path / "run"))


def test_index_batch_sampler_splits_ranks_and_epochs() -> None:
    def batches(train: bool, rank: int, epoch: int = 0, world: int = 3) -> list[list[int]]:
        sampler = IndexBatchSampler(103, 8, train=train, seed=5, rank=rank, world_size=world)
        sampler.set_epoch(epoch)
        out = list(sampler)
        assert len(out) == len(sampler)
        return out

    train = [batches(True, r) for r in range(3)]
    assert [len(b) for b in train] == [13 // 3] * 3  # 13 batches, equal share per rank
    flat = [i for b in train for batch in b for i in batch]
    assert len(flat) == len(set(flat))  # no item on two ranks
    assert batches(True, 0) == train[0] and batches(True, 0, epoch=1) != train[0]
    evaluation = [i for r in range(3) for batch in batches(False, r) for i in batch]
    assert sorted(evaluation) == list(range(103))  # every item exactly once


def test_metrics_without_tensorboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU image has no tensorboard package: CSV and plot are still written."""
    from sciml.training.metrics_log import MetricsLog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    log = MetricsLog(tmp_path)
    log.log_step(10, {"loss": 1.0, "lr": 1e-3, "samples_per_s": 5.0})
    log.log_validation([{"step": 10, "epoch": 1, "lr": 1e-3, "train_loss": 1.0, "val_loss": 2.0}], [[10, 1.0, 1e-3]])
    log.close()
    assert read_metrics(tmp_path) == [{"step": 10, "epoch": 1, "lr": 1e-3, "train_loss": 1.0, "val_loss": 2.0}]
    assert (tmp_path / "learning_curve.png").stat().st_size > 0 and not (tmp_path / "tb").exists()


@pytest.mark.slow
def test_deterministic_two_thread_runs_are_bit_identical(tmp_path: Path) -> None:
    """With several CPU threads only ``train.deterministic: true`` promises bit-identical runs, and a run without it
    says so when it starts."""
    repo = HERE.parent
    code = ("import sys, torch\ntorch.set_num_threads(2)\nfrom sciml.cli import main\n"
            "sys.exit(main(['train', 'examples/pretrained/acac-tdn.yaml', *sys.argv[1:]]))\n")
    common = ["--set", "train.max_steps=12", "--set", "train.progress=false", "--set", "model.lmax=1",
              "--set", "model.channels=8", "--set", f"data.cache_dir={tmp_path / 'cache'}"]

    def run(name: str, deterministic: bool) -> tuple[dict[str, torch.Tensor], str]:
        out = subprocess.run([sys.executable, "-c", code, *common, "--set", f"train.deterministic={deterministic}",
                              "--set", f"output.dir={tmp_path / name}"], cwd=repo, capture_output=True, text=True,
                             env=dict(os.environ, OMP_NUM_THREADS="2"), timeout=600, check=True)
        return torch.load(tmp_path / name / "last.pt", weights_only=True)["model"], out.stdout

    a, log_a = run("a", True)
    b, _ = run("b", True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert "note:" not in log_a
    _, log_c = run("c", False)
    assert "note: with 2 CPU threads without train.deterministic" in log_c
