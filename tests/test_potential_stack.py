"""The model-agnostic potential stack: a second energy model trains, evaluates, relaxes and runs in the calculator
through the same task, engine, CLI and ForceField; weight decay never touches E0; config values are checked before
data is read; `sciml data split` and `sciml train` split alike; old checkpoints load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import pytest
import torch
from potential_helpers import ACAC

from sciml.cli import main
from sciml.training.config import validate_config
from sciml.training.trainer import Trainer

SHIPPED = Path(__file__).resolve().parents[1] / "examples" / "pretrained" / "acac-tdn.pt"


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def pair_registered(monkeypatch):
    """examples/custom_model.py's PairModel registered as ``pair``."""
    from models import registry

    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setitem(registry.ENERGY_MODELS, "pair", "custom_model:PairModel")


def pair_config(tmp_path: Path, name: str, **train: Any) -> dict[str, Any]:
    return validate_config({
        "task": "potential",
        "data": {"train": str(ACAC), "n_train": 40, "n_val": 10, "max_atoms": 150, "cache_dir": str(tmp_path / "c")},
        "model": {"name": "pair", "cutoff": 4.0, "hidden": 8},
        "optim": {"lr": 0.02}, "schedule": {"name": "constant"},
        "train": {"max_epochs": 3, "progress": False, "seed": 0, "device": "cpu", **train},
        "output": {"dir": str(tmp_path / name)}})


@pytest.mark.slow
def test_a_second_model_trains_evaluates_relaxes_and_computes(pair_registered, tmp_path) -> None:
    from sciml.calculators import MLIPCalculator

    cfg = pair_config(tmp_path, "pair")
    assert set(cfg["model"]) == {"name", "init_from", "cutoff", "hidden"}
    summary = Trainer(cfg).run()
    assert summary["steps"] > 0 and "val_energy_mae_meV" in summary["last"]
    ckpt = tmp_path / "pair" / "best.pt"
    calc = MLIPCalculator.from_checkpoint(ckpt, dtype="float64")
    assert type(calc.model.model).__name__ == "PairModel"
    atoms = ase.io.read(str(ACAC), 3)
    atoms.calc = calc
    forces = atoms.get_forces()
    h = 1e-5
    for i, k in [(0, 0), (7, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        plus.calc = minus.calc = calc
        fd = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        assert abs(fd - forces[i, k]) < 1e-6 * max(1.0, abs(forces[i, k]))
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(ACAC), "--out", str(tmp_path / "m.json")]) == 0
    ase.io.write(str(tmp_path / "mol.xyz"), ase.io.read(str(ACAC), 0))
    assert main(["relax", "--checkpoint", str(ckpt), str(tmp_path / "mol.xyz"), "-o", str(tmp_path / "r.xyz"),
                 "--steps", "5", "--fmax", "1e-6"]) == 3  # outputs written, not converged
    assert len(ase.io.read(str(tmp_path / "r_traj.extxyz"), ":")) >= 2


def test_unknown_model_and_bad_values_are_refused_before_any_data_is_read(tmp_path, capsys) -> None:
    cache = tmp_path / "cache"
    base = ["train", "examples/pretrained/acac-tdn.yaml", "--set", f"data.cache_dir={cache}",
            "--set", f"output.dir={tmp_path / 'run'}"]
    for override, message in (("model.tensor_product=foo", "model.tensor_product must be one of cp, cg, got 'foo'"),
                              ("model.name=mace", "unknown model.name 'mace'; registered models: orbnet, tdn"),
                              ("data.split_by=trajectory", "data.split_by must be one of frame, group"),
                              ("model.channels=0", "model.channels must be an integer >= 1")):
        assert main([*base, "--set", override]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert not cache.exists()  # refused before the extxyz was converted
    for override, message in (("model.architecture=transformer", "model.architecture must be one of bilstm, mlp"),
                              ("loss.regression=huber", "loss.regression must be one of mse, mae"),
                              ("model.layers=0", "model.layers must be >= 1")):
        assert main(["train", "examples/pretrained/mskf-bilstm.yaml", "--set", override]) == 2
        assert message in capsys.readouterr().err


def test_weight_decay_never_pulls_reference_energies_or_biases(tmp_path) -> None:
    from potential_helpers import SMALL

    cfg = validate_config({"task": "potential",
                           "data": {"train": str(ACAC), "n_train": 20, "n_val": 5, "cache_dir": str(tmp_path / "c")},
                           "model": SMALL, "optim": {"weight_decay": 0.5, "lr": 0.1},
                           "train": {"max_steps": 1, "progress": False, "device": "cpu"},
                           "output": {"dir": str(tmp_path / "wd")}})
    trainer = Trainer(cfg)
    net = trainer.model.model
    assert net.atomic_energies[6].item() < -100  # fitted E0 of carbon, about -1e3 eV
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    for p in trainer.model.parameters():
        p.grad = torch.zeros_like(p)  # Adam's step is 0: only decoupled weight decay can move a parameter
    trainer.optimizer.step()
    after = dict(trainer.model.named_parameters())
    assert torch.equal(after["model.atomic_energies"], before["model.atomic_energies"])
    biases = [n for n in before if n.endswith(".bias")]
    assert biases and all(torch.equal(after[n], before[n]) for n in biases)
    assert not torch.equal(after["model.embedding.weight"], before["model.embedding.weight"])  # decay is on


def test_data_split_and_train_split_alike_and_train_takes_split_files(tmp_path) -> None:
    from data_tools.convert import ConvertOptions, convert
    from data_tools.dataset import AtomsDataset
    from sciml.potential.task import PotentialTask

    h5 = convert([ACAC], tmp_path / "acac.h5", ConvertOptions(progress=False)).outputs[0]
    splits = tmp_path / "splits"
    assert main(["data", "split", str(h5), "--by", "frame", "--counts", "450,50", "--names", "train,val",
                 "--seed", "0", "-o", str(splits)]) == 0
    assert main(["data", "split", str(h5), "--by", "frame", "--fractions", "0.9,0.1", "--names", "train,val",
                 "--seed", "0", "-o", str(tmp_path / "frac")]) == 0
    files = {name: AtomsDataset(splits / f"{name}.idx.npz").indices for name in ("train", "val")}
    base = {"task": "potential", "model": {"lmax": 1}, "train": {"max_steps": 1}}
    cfg = validate_config({**base, "data": {"train": str(h5), "n_train": 450, "n_val": 50, "split_seed": 0}})
    train, val = PotentialTask(cfg["data"], cfg["model"], cfg["loss"]).datasets()
    assert np.array_equal(train.indices, files["train"]) and np.array_equal(val.indices, files["val"])
    assert np.array_equal(AtomsDataset(tmp_path / "frac" / "val.idx.npz").indices, files["val"])
    cfg = validate_config({**base, "data": {"train": str(splits / "train.idx.npz"),
                                            "val": [str(splits / "val.idx.npz")]}})
    train, val = PotentialTask(cfg["data"], cfg["model"], cfg["loss"]).datasets()
    assert np.array_equal(train.indices, files["train"]) and np.array_equal(val.indices, files["val"])


def test_version_1_checkpoints_load_under_the_force_wrapper() -> None:
    from sciml.training.checkpoint import load_checkpoint

    raw = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    assert raw["version"] == 1 and "atomic_energies" in raw["model"]
    ckpt = load_checkpoint(SHIPPED)
    assert ckpt["version"] == 2 and ckpt["config"]["model"]["name"] == "tdn"
    assert set(ckpt["model"]) == {f"model.{k}" for k in raw["model"]}
    assert set(ckpt["ema"]["weights"]) == {f"model.{k}" for k in raw["ema"]["weights"]}


def test_a_degenerate_cp_rank_is_a_one_line_error(tmp_path, monkeypatch, capsys) -> None:
    """A rank whose CP fit is degenerate stops `sciml train` with a sciml error (rc 2, no traceback)."""
    import sciml.tdn.fit

    monkeypatch.setenv("SCIML_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sciml.tdn.fit, "DEGENERACY_LIMIT", 0.0)  # every fit counts as degenerate
    args = ["train", "examples/pretrained/acac-tdn.yaml", "--set", "model.lmax=1", "--set", "model.rank=3",
            "--set", "data.n_train=5", "--set", "data.n_val=2", "--set", f"output.dir={tmp_path / 'run'}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "degenerate" in err and "use a larger rank" in err and "Traceback" not in err
