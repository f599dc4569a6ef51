"""OrbNet-style potential: GFN1-xTB back ends, invariant features, exact forces, the feature cache, the calculator.
Needs the ``orbnet`` extra (dxtb, tblite); skipped without it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from scipy.spatial.transform import Rotation

pytest.importorskip("dxtb")
pytest.importorskip("tblite")

from data_tools.items import atoms_to_item  # noqa: E402
from models.orbnet_potential import OrbNetPotential  # noqa: E402
from models.potential.forces import ForceField  # noqa: E402
from sciml.errors import DataError  # noqa: E402
from sciml.potential.inputs import ModelInputs  # noqa: E402
from sciml.xtb.backend import DxtbGFN1, XTBError, check_agreement, tblite_gfn1  # noqa: E402
from sciml.xtb.features import orbital_features  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ACAC = REPO / "examples" / "data" / "acac" / "train_300K.xyz"
pytestmark = pytest.mark.orbnet


@pytest.fixture(scope="module")
def xtb() -> DxtbGFN1:
    return DxtbGFN1()


def structures() -> list[Atoms]:
    """acetylacetone (no symmetry), CH4 (degenerate C p-shell), benzene (degenerate in-plane), C2H2 (linear)."""
    return [ase.io.read(str(ACAC), 0), molecule("CH4"), molecule("C6H6"), molecule("C2H2")]


def small_model(seed: int = 0, **cfg) -> ForceField:
    torch.manual_seed(seed)
    net = OrbNetPotential(hidden=32, edge_hidden=16, layers=2, **cfg)
    net.set_statistics([1, 6, 7, 8], {1: -1.0, 6: -2.0, 7: -2.5, 8: -3.0}, scale=0.5, shift=0.01)
    return ForceField(net).double().eval()


def energy_forces(model: ForceField, atoms: Atoms) -> tuple[float, np.ndarray]:
    out = model(ModelInputs(model.model.featurizer())([atoms_to_item(atoms)]))
    return float(out["energy"]), out["forces"].detach().numpy()


@pytest.mark.parametrize("atoms", structures(), ids=lambda a: a.get_chemical_formula())
def test_backends_agree_and_features_are_invariant(xtb, atoms) -> None:
    def features(positions: np.ndarray, numbers: np.ndarray) -> tuple[torch.Tensor, ...]:
        res = xtb.singlepoint(torch.as_tensor(numbers), torch.tensor(positions))
        e_tblite, _ = tblite_gfn1(numbers, positions)
        check_agreement(float(res.energy), e_tblite, atoms.get_chemical_formula())
        return (res.energy.detach(), *orbital_features(res, len(numbers)))

    e, node, pair = features(atoms.positions, atoms.numbers)
    rot = Rotation.random(random_state=7).as_matrix() @ np.diag([1.0, -1.0, 1.0])  # a rotation and a reflection
    e2, node2, pair2 = features(atoms.positions @ rot.T + [2.0, -1.0, 0.5], atoms.numbers)
    perm = np.random.default_rng(1).permutation(len(atoms))
    e3, node3, pair3 = features(atoms.positions[perm], atoms.numbers[perm])
    assert float(node.abs().max()) > 0.1 and float(pair.abs().max()) > 0.1
    assert abs(float(e - e2)) < 1e-10 and abs(float(e - e3)) < 1e-10
    torch.testing.assert_close(node2, node, atol=1e-10, rtol=0)
    torch.testing.assert_close(pair2, pair, atol=1e-10, rtol=0)
    torch.testing.assert_close(node3, node[perm], atol=1e-10, rtol=0)
    torch.testing.assert_close(pair3, pair[perm][:, perm], atol=1e-10, rtol=0)


@pytest.mark.parametrize("atoms", structures()[:3], ids=lambda a: a.get_chemical_formula())
def test_forces_are_the_exact_negative_gradient(atoms) -> None:
    model = small_model()
    _, forces = energy_forces(model, atoms)

    def central(i: int, k: int, h: float) -> float:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        return -(energy_forces(model, plus)[0] - energy_forces(model, minus)[0]) / (2 * h)

    for i, k in [(0, 0), (1, 2), (len(atoms) - 1, 1)]:
        fd = (4 * central(i, k, 5e-4) - central(i, k, 1e-3)) / 3  # Richardson: the h^2 error cancels
        assert abs(fd - forces[i, k]) < 1e-6 + 1e-5 * abs(forces[i, k]), (i, k, fd, forces[i, k])
    assert np.abs(forces.sum(0)).max() < 1e-8  # no net force on a molecule


def test_energy_is_invariant_and_continuous_across_the_cutoff() -> None:
    model = small_model(cutoff=4.0)
    water, methane = molecule("H2O"), molecule("CH4")
    e, f = energy_forces(model, water)
    turned = water.copy()
    turned.positions = water.positions @ Rotation.random(random_state=2).as_matrix().T + 3.0
    e2, f2 = energy_forces(model, turned)
    assert abs(e - e2) < 1e-10
    # the closest H(water)-H(methane) pair crosses the 4 A cutoff between the two distances
    def pair_energy(shift: float) -> float:
        moved = methane.copy()
        moved.positions += [shift, 0.0, 0.0]
        both = water + moved
        return energy_forces(model, both)[0]

    d_min = np.linalg.norm(water.positions[:, None] - methane.positions[None], axis=-1).min()
    edges = [pair_energy(x) for x in np.linspace(0.0, 0.2, 9) + (4.0 - d_min) - 0.1]
    steps = np.abs(np.diff(edges))
    assert steps.max() < 5 * np.median(steps) + 1e-9  # no jump where a pair leaves the neighbourhood


def test_cached_features_give_the_same_energies_and_forces(tmp_path) -> None:
    from data_tools.convert import ConvertOptions, convert
    from data_tools.dataset import AtomsDataset
    from sciml.xtb.cache import cached_features

    ase.io.write(str(tmp_path / "acac3.xyz"), ase.io.read(str(ACAC), ":3"))
    h5 = convert([tmp_path / "acac3.xyz"], tmp_path / "acac3.h5", ConvertOptions(progress=False)).outputs[0]
    model = small_model()
    cache = cached_features(h5, model.cutoff, tmp_path / "cache", progress=False)
    assert cached_features(h5, model.cutoff, tmp_path / "cache", progress=False) == cache  # reused
    inputs = ModelInputs(model.model.featurizer())
    model.model.integrals = "dxtb"  # the driver the cache is built with (libcint differs by ~1e-9 eV)
    cached = model(inputs(AtomsDataset(cache).__getitems__([0, 1, 2])))
    direct = model(inputs(AtomsDataset(h5).__getitems__([0, 1, 2])))  # the same float32 geometries, through dxtb
    torch.testing.assert_close(cached["energy"], direct["energy"], atol=1e-9, rtol=0)
    torch.testing.assert_close(cached["forces"], direct["forces"], atol=1e-9, rtol=0)
    # another cutoff is another cache; a charge that differs from the cached one is refused
    assert cached_features(h5, 3.0, tmp_path / "cache", progress=False) != cache
    items = AtomsDataset(cache).__getitems__([0])
    items[0].charge = torch.tensor([1])
    with pytest.raises(DataError, match="charge 1 but its feature cache was computed with 0"):
        model(inputs(items))


def test_a_killed_cache_build_resumes_from_finished_parts(tmp_path, monkeypatch) -> None:
    from data_tools.convert import ConvertOptions, convert
    from sciml.xtb import cache as cache_module

    ase.io.write(str(tmp_path / "acac5.xyz"), ase.io.read(str(ACAC), ":5"))
    h5 = convert([tmp_path / "acac5.xyz"], tmp_path / "acac5.h5", ConvertOptions(progress=False)).outputs[0]
    monkeypatch.setattr(cache_module, "PART_FRAMES", 2)
    built = []
    real = cache_module._build_part

    def dies_after_two(job):
        if len(built) == 2:
            raise KeyboardInterrupt  # the build is killed while the third part is being written
        built.append(job[2])
        return real(job)

    monkeypatch.setattr(cache_module, "_build_part", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        cache_module.cached_features(h5, 6.0, tmp_path / "c", progress=False)
    built.clear()
    monkeypatch.setattr(cache_module, "_build_part", lambda job: built.append(job[2]) or real(job))
    path = cache_module.cached_features(h5, 6.0, tmp_path / "c", progress=False)
    assert built == [4]  # only the unfinished part was computed again
    from data_tools.dataset import AtomsDataset

    assert len(AtomsDataset(path)) == 5


def test_unusable_structures_are_refused_by_name(xtb) -> None:
    with pytest.raises(XTBError, match="no parameters for atomic number"):
        xtb.singlepoint(torch.tensor([87, 1]), torch.tensor([[0.0, 0, 0], [2.0, 0, 0]], dtype=torch.float64))
    with pytest.raises(XTBError, match=r"atoms 0 and 1 are 0.05 Angstrom apart"):
        xtb.singlepoint(torch.tensor([1, 1]), torch.tensor([[0.0, 0, 0], [0.05, 0, 0]], dtype=torch.float64))
    kbr = Atoms("KBr", positions=[[0, 0, 0], [2.82, 0, 0]])
    res = xtb.singlepoint(torch.as_tensor(kbr.numbers), torch.tensor(kbr.positions))
    with pytest.raises(XTBError, match="dxtb and tblite GFN1-xTB energies differ"):
        check_agreement(float(res.energy.detach()), tblite_gfn1(kbr.numbers, kbr.positions)[0], "KBr")


def test_calculator_charge_spin_relaxation_and_md() -> None:
    from ase.md.verlet import VelocityVerlet
    from ase.optimize import BFGS
    from ase.units import fs

    from sciml.calculators import OrbNetCalculator

    model = small_model()
    ammonium = molecule("NH3") + Atoms("H", positions=[[0.0, 0.0, -1.02]])
    ammonium.calc = OrbNetCalculator(model, charge=1)
    assert np.isfinite(ammonium.get_potential_energy())
    methyl = molecule("CH3")
    methyl.calc = OrbNetCalculator(model, multiplicity=2)
    assert np.isfinite(methyl.get_forces()).all()
    with pytest.raises(DataError, match="cannot have multiplicity 1"):
        methyl.calc = OrbNetCalculator(model)
        methyl.get_potential_energy()
    slab = molecule("H2O")
    slab.cell, slab.pbc = [5.0, 5.0, 5.0], True
    slab.calc = OrbNetCalculator(model)
    with pytest.raises(DataError, match="periodic cells are not supported"):
        slab.get_potential_energy()
    water = molecule("H2O")
    water.positions[0] += [0.05, -0.03, 0.02]
    water.calc = OrbNetCalculator(model)
    assert BFGS(water, logfile=None).run(fmax=0.01, steps=100)
    water.rattle(0.02, seed=1)
    dyn = VelocityVerlet(water, 0.25 * fs, logfile=None)
    energies = []
    dyn.attach(lambda: energies.append(water.get_total_energy()), interval=1)
    water.set_velocities(np.random.default_rng(0).normal(0.0, 0.01, (3, 3)))
    dyn.run(20)
    assert np.ptp(energies) < 1e-3  # eV: energy is conserved along the trajectory (forces are the exact gradient)


@pytest.mark.slow
def test_train_eval_and_relax_an_orbnet_model(tmp_path) -> None:
    """sciml train builds the feature cache and trains on forces from it; eval and relax take the checkpoint."""
    from sciml.calculators import OrbNetCalculator
    from sciml.cli import main
    from sciml.training.config import validate_config
    from sciml.training.trainer import Trainer

    ase.io.write(str(tmp_path / "acac12.xyz"), ase.io.read(str(ACAC), ":12"))
    cfg = validate_config({
        "task": "potential",
        "data": {"train": str(tmp_path / "acac12.xyz"), "n_val": 2, "max_atoms": 45,
                 "cache_dir": str(tmp_path / "cache")},
        "model": {"name": "orbnet", "hidden": 16, "edge_hidden": 8, "layers": 1, "heads": 2},
        "loss": {"force_weight": 10.0}, "optim": {"lr": 0.01}, "schedule": {"name": "constant"},
        "train": {"max_epochs": 3, "progress": False, "device": "cpu"}, "output": {"dir": str(tmp_path / "run")}})
    summary = Trainer(cfg).run()
    history = summary["last"]
    assert summary["steps"] == 12 and np.isfinite(history["val_forces_rmse_meV_per_A"])
    assert list((tmp_path / "cache" / "xtb").glob("*.h5"))  # the cache sciml train built
    ckpt = tmp_path / "run" / "best.pt"
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(tmp_path / "acac12.xyz"), "-q"]) == 0
    ase.io.write(str(tmp_path / "mol.xyz"), ase.io.read(str(ACAC), 20))
    assert main(["relax", "--checkpoint", str(ckpt), str(tmp_path / "mol.xyz"), "-o", str(tmp_path / "r.xyz"),
                 "--steps", "3", "--fmax", "1e-4"]) == 3
    atoms = ase.io.read(str(tmp_path / "r.xyz"))
    atoms.calc = OrbNetCalculator.from_checkpoint(ckpt)
    assert np.isfinite(atoms.get_forces()).all()


@pytest.mark.parametrize("policy, calls", [("first", 1), ("every", 3)])
def test_calculator_checks_tblite_per_composition_or_every_step(monkeypatch, policy, calls) -> None:
    import sciml.xtb.backend as backend
    from sciml.calculators import OrbNetCalculator

    seen = []
    real = backend.tblite_gfn1
    monkeypatch.setattr(backend, "tblite_gfn1", lambda *a, **k: seen.append(1) or real(*a, **k))
    water = molecule("H2O")
    water.calc = OrbNetCalculator(small_model(), tblite_check=policy)
    for step in range(3):
        water.positions[0, 0] += 0.01
        water.get_forces()
    assert len(seen) == calls
    # a disagreement is found on the first structure of a composition under either policy
    monkeypatch.setattr(backend, "tblite_gfn1", lambda *a, **k: (real(*a, **k)[0] + 1.0, None))
    methanol = molecule("CH3OH")
    methanol.calc = OrbNetCalculator(small_model(), tblite_check=policy)
    with pytest.raises(XTBError, match="energies differ"):
        methanol.get_potential_energy()


@pytest.mark.skipif(importlib.util.find_spec("tad_libcint") is None, reason="needs tad-libcint (dxtb[libcint])")
def test_libcint_and_dxtb_integrals_give_the_same_energy_and_forces() -> None:
    from sciml.calculators import OrbNetCalculator

    atoms = ase.io.read(str(ACAC), 0)
    results = {}
    for driver in ("dxtb", "libcint"):
        calc = OrbNetCalculator(small_model(), integrals=driver)
        results[driver] = calc.predict([atoms])[0]
        assert calc.model.model._xtb.integrals == driver
    assert abs(results["dxtb"]["energy"] - results["libcint"]["energy"]) < 1e-7
    np.testing.assert_allclose(results["dxtb"]["forces"], results["libcint"]["forces"], atol=1e-6)
    # libcint orders p orbitals differently; the block traces do not see it: invariant energy, rotated forces
    rot = Rotation.random(random_state=3).as_matrix()
    turned = atoms.copy()
    turned.positions = atoms.positions @ rot.T + [0.3, -1.2, 2.0]
    res = OrbNetCalculator(small_model(), integrals="libcint").predict([turned])[0]
    assert abs(res["energy"] - results["libcint"]["energy"]) < 1e-8
    np.testing.assert_allclose(res["forces"], results["libcint"]["forces"] @ rot.T, atol=1e-7)
    with pytest.raises(DataError, match="integrals must be"):
        OrbNetCalculator(small_model(), integrals="cuda")
    # "auto" (the model's default): libcint for inference, dxtb's own integrals in training mode (double backward)
    model = small_model()
    inputs = ModelInputs(model.model.featurizer())
    for training, driver in ((False, "libcint"), (True, "dxtb")):
        model.train(training)
        model(inputs([atoms_to_item(atoms)]))
        assert model.model._xtb.integrals == driver
