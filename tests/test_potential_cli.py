"""sciml eval / sciml relax / MLIPCalculator on real structures (acac DFT frames, OC20 Cu slab + C3H8)."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
from potential_helpers import ACAC, REPO, TOY_SLAB, write_checkpoint
from scipy.spatial.transform import Rotation

from sciml.cli import main


@pytest.fixture(scope="module")
def slab_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "slab.pt", [1, 6, 29])


@pytest.fixture(scope="module")
def acac_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "acac.pt", [1, 6, 8])


@pytest.mark.parametrize("which", ["fresh", "shipped"])
def test_float64_calculator_is_invariant_to_round_off(acac_checkpoint: Path, which: str) -> None:
    """Checkpoints of float32 models carry float64 CP factors, so in float64 the energy is invariant and the forces
    equivariant under rotations and reflections to round-off (float32-rounded factors left ~2e-7 eV here)."""
    from sciml.calculators import MLIPCalculator

    path = acac_checkpoint if which == "fresh" else REPO / "examples" / "pretrained" / "acac-tdn.pt"
    calc = MLIPCalculator.from_checkpoint(path, dtype="float64")
    atoms = ase.io.read(str(ACAC), 0)
    ref = calc.predict([atoms])[0]
    for seed in range(4):
        rot = Rotation.random(random_state=seed).as_matrix() * (-1.0) ** seed
        moved = atoms.copy()
        moved.positions = atoms.positions @ rot.T + np.array([0.7, -2.0, 5.1])
        res = calc.predict([moved])[0]
        assert abs(res["energy"] - ref["energy"]) < 1e-9
        np.testing.assert_allclose(res["forces"], ref["forces"] @ rot.T, rtol=0, atol=1e-10)


def test_calculator_single_and_batched_agree(acac_checkpoint: Path) -> None:
    from sciml.calculators import MLIPCalculator

    calc = MLIPCalculator.from_checkpoint(acac_checkpoint, dtype="float64")
    frames = ase.io.read(str(ACAC), ":5")
    batched = calc.predict(frames, max_atoms=40)  # several batches
    for atoms, res in zip(frames, batched):
        atoms.calc = calc
        assert atoms.get_potential_energy() == pytest.approx(res["energy"], abs=1e-9)
        assert atoms.get_potential_energy(force_consistent=True) == atoms.get_potential_energy()
        np.testing.assert_allclose(atoms.get_forces(), res["forces"], atol=1e-9)
    with pytest.raises(Exception, match="3-D periodic"):
        frames[0].get_stress()


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    import torch
    from potential_helpers import batch_of, make_model

    from sciml.training.checkpoint import load_model

    frames = ase.io.read(str(ACAC), ":3")
    path = write_checkpoint(tmp_path / "rt.pt", [1, 6, 8], tensor_product="cg")
    original = make_model([1, 6, 8], torch.float32, tensor_product="cg").eval()
    loaded, task, config = load_model(path)
    assert config["model"]["tensor_product"] == "cg" and task.name == "potential"
    a, b = original(batch_of(frames)), loaded(batch_of(frames))
    assert torch.equal(a["energy"], b["energy"])
    # forces: same weights, but the order of the threaded scatter-adds in the backward may differ between runs
    torch.testing.assert_close(a["forces"], b["forces"], rtol=1e-5, atol=1e-7)
    for key, value in original.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_calculator_float32_and_float64_agree(slab_checkpoint: Path) -> None:
    from sciml.calculators import MLIPCalculator

    atoms = ase.io.read(str(TOY_SLAB), 0)
    r32 = MLIPCalculator.from_checkpoint(slab_checkpoint, dtype="float32").predict([atoms], stress=True)[0]
    r64 = MLIPCalculator.from_checkpoint(slab_checkpoint, dtype="float64").predict([atoms], stress=True)[0]
    assert r32["energy"] == pytest.approx(r64["energy"], abs=1e-4)
    np.testing.assert_allclose(r32["forces"], r64["forces"], atol=1e-4)
    np.testing.assert_allclose(r32["stress"], r64["stress"], atol=1e-5)


def test_relax_cli_keeps_fixed_atoms_fixed(slab_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "relaxed.extxyz"
    code = main(["relax", "--checkpoint", str(slab_checkpoint), str(TOY_SLAB), "-o", str(out), "--fmax", "1e-4",
                 "--steps", "8", "--optimizer", "FIRE"])
    assert code == 3  # 8 steps do not reach 1e-4 eV/A: outputs written, exit status "not converged"
    start = ase.io.read(str(TOY_SLAB), 0)
    fixed = ~start.arrays["move_mask"] if "move_mask" in start.arrays else start.constraints[0].get_indices()
    relaxed = ase.io.read(str(out))
    summary = json.loads((tmp_path / "relaxed_summary.json").read_text())
    traj = ase.io.read(str(tmp_path / "relaxed_traj.extxyz"), ":")
    assert summary["n_fixed"] == 18 and summary["steps"] > 0
    assert len(traj) == summary["steps"] + 1  # the start and every step
    np.testing.assert_array_equal(relaxed.positions[fixed], start.positions[fixed])
    assert summary["max_displacement_fixed_A"] == 0.0 and summary["max_displacement_A"] > 0.0
    assert summary["energy_final_eV"] < summary["energy_initial_eV"]
    assert traj[-1].get_potential_energy() == pytest.approx(summary["energy_final_eV"])


def test_relax_slab_json_keeps_fixatoms(tmp_path: Path) -> None:
    src = REPO / "examples" / "data" / "oc20" / "slab_atoms.json"
    slab = ase.io.read(str(src))
    ckpt = write_checkpoint(tmp_path / "oxide.pt", sorted(set(slab.numbers.tolist())))
    out = tmp_path / "slab_relaxed.json"
    assert main(["relax", "--checkpoint", str(ckpt), str(src), "-o",
                 str(out), "--steps", "3", "--fmax", "1e-5"]) == 3  # outputs written, not converged
    relaxed = ase.io.read(str(out))
    fixed = slab.constraints[0].get_indices()
    np.testing.assert_array_equal(relaxed.positions[fixed], slab.positions[fixed])
    assert np.abs(relaxed.positions - slab.positions).max() > 0


def test_eval_cli_metrics_match_calculator(acac_checkpoint: Path, tmp_path: Path) -> None:
    from sciml.calculators import MLIPCalculator

    data = tmp_path / "few.xyz"
    frames = ase.io.read(str(ACAC), ":6")
    ase.io.write(str(data), frames)
    out, plot = tmp_path / "metrics.json", tmp_path / "parity.png"
    assert main(["eval", "--checkpoint", str(acac_checkpoint), "--data", str(data), "--out", str(out), "--plot",
                 str(plot), "--dtype", "float64"]) == 0
    metrics = json.loads(out.read_text())
    preds = MLIPCalculator.from_checkpoint(acac_checkpoint, dtype="float64").predict(frames)
    de = np.array([p["energy"] - a.get_potential_energy() for p, a in zip(preds, frames)])
    df = np.concatenate([p["forces"] - a.get_forces() for p, a in zip(preds, frames)])
    assert metrics["n_frames"] == 6
    assert metrics["energy_mae_meV"] == pytest.approx(1e3 * np.abs(de).mean(), rel=1e-9)
    assert metrics["energy_rmse_meV_per_atom"] == pytest.approx(1e3 * np.sqrt(np.mean((de / 15) ** 2)), rel=1e-9)
    assert metrics["forces_rmse_meV_per_A"] == pytest.approx(1e3 * np.sqrt(np.mean(df**2)), rel=1e-6)
    assert plot.stat().st_size > 1000
    # the same frames as an HDF5 shard (sciml data convert machinery) give the same numbers
    from sciml.potential.data import as_hdf5

    shard = as_hdf5(str(data), tmp_path / "cache")[0]
    assert main(["eval", "--checkpoint", str(acac_checkpoint), "--data", shard, "--out", str(tmp_path / "h5.json"),
                 "--dtype", "float64"]) == 0
    from_h5 = json.loads((tmp_path / "h5.json").read_text())
    assert from_h5["energy_mae_meV"] == pytest.approx(metrics["energy_mae_meV"], rel=1e-9)
    assert from_h5["forces_mae_meV_per_A"] == pytest.approx(metrics["forces_mae_meV_per_A"], rel=1e-6)


def test_unseen_element_is_a_clean_cli_error(acac_checkpoint: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["relax", "--checkpoint", str(acac_checkpoint), str(TOY_SLAB), "-o", str(tmp_path / "x.extxyz")])
    assert code == 2
    err = capsys.readouterr().err
    assert "Cu (Z=29)" in err and "Traceback" not in err
    assert not (tmp_path / "x.extxyz").exists()
