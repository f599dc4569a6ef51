"""TDN potential network: symmetries, conservative forces, cutoff smoothness, periodic images, stress."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
import torch
from potential_helpers import ACAC, TOY_SLAB, batch_of, make_model
from scipy.spatial.transform import Rotation

from data_tools.neighbors import radius_graph, radius_graph_vesin
from models.potential.base import UnknownElementError
from models.potential.forces import ForceField

HCO = [1, 6, 8]


@pytest.fixture(scope="module")
def acac_frames() -> list:
    return ase.io.read(str(ACAC), ":4")


@pytest.fixture(scope="module")
def slab():
    return ase.io.read(str(TOY_SLAB), 0)


def energy_forces(model: ForceField, structures: list) -> tuple[torch.Tensor, torch.Tensor]:
    out = model(batch_of(structures))
    return out["energy"].detach(), out["forces"].detach()


@pytest.mark.parametrize("tp", ["cp", "cg"])
def test_rotation_translation_permutation(acac_frames: list, tp: str) -> None:
    model = make_model(HCO, tensor_product=tp)
    atoms = acac_frames[0]
    e, f = energy_forces(model, [atoms])
    rot = Rotation.random(random_state=3).as_matrix()
    moved = atoms.copy()
    moved.positions = atoms.positions @ rot.T + np.array([1.5, -7.0, 3.3])
    e2, f2 = energy_forces(model, [moved])
    assert torch.allclose(e2, e, atol=1e-9, rtol=0)
    assert torch.allclose(f2, f @ torch.as_tensor(rot).T, atol=1e-8)
    perm = np.random.default_rng(0).permutation(len(atoms))
    e3, f3 = energy_forces(model, [atoms[perm]])
    assert torch.allclose(e3, e, atol=1e-9, rtol=0)
    assert torch.allclose(f3, f[perm], atol=1e-9)


def test_mirror_image_same_energy(acac_frames: list) -> None:
    atoms = acac_frames[1]
    mirror = atoms.copy()
    mirror.positions[:, 1] *= -1
    e, f = energy_forces(make_model(HCO), [atoms])
    em, fm = energy_forces(make_model(HCO), [mirror])
    assert torch.allclose(em, e, atol=1e-9, rtol=0)
    assert torch.allclose(fm, f * torch.tensor([1.0, -1.0, 1.0], dtype=f.dtype), atol=1e-8)
    # without parity (so3, the TDN paper's choice) cross products are taken for vectors; from the third layer on they
    # reach the scalars as triple products and the energy becomes chiral
    # (exact e3nn products here, so the comparison does not depend on the CP factors)
    gaps = {}
    for parity in ("o3", "so3"):
        model = make_model(HCO, parity=parity, layers=3, tensor_product="cg")
        gaps[parity] = (energy_forces(model, [atoms])[0] - energy_forces(model, [mirror])[0]).abs().item()
    assert gaps["o3"] < 1e-12 and gaps["so3"] > 1e-9


def test_batched_equals_single(acac_frames: list) -> None:
    model = make_model(HCO)
    e, f = energy_forces(model, acac_frames)
    singles = [energy_forces(model, [a]) for a in acac_frames]
    assert torch.allclose(e, torch.cat([s[0] for s in singles]), atol=1e-10, rtol=0)
    assert torch.allclose(f, torch.cat([s[1] for s in singles]), atol=1e-10)


def test_forces_are_minus_energy_gradient(acac_frames: list) -> None:
    model = make_model(HCO)
    atoms = acac_frames[2]
    _, f = energy_forces(model, [atoms])
    h = 1e-5
    for i, k in [(0, 0), (5, 1), (11, 2), (14, 0)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        fd = -(energy_forces(model, [plus])[0] - energy_forces(model, [minus])[0]) / (2 * h)
        assert abs(fd.item() - f[i, k].item()) < 1e-6 * max(1.0, abs(f[i, k].item()))


def test_energy_continuous_across_cutoff() -> None:
    from ase import Atoms

    model = make_model(HCO)
    rc = model.cutoff

    def e_and_f(r: float) -> tuple[float, float]:
        e, f = energy_forces(model, [Atoms("CO", positions=[[0, 0, 0], [r, 0, 0]])])
        return e.item(), f.abs().max().item()

    isolated = sum(energy_forces(model, [Atoms(s)])[0].item() for s in "CO")
    inside, f_inside = e_and_f(rc * (1 - 1e-4))
    outside, f_outside = e_and_f(rc * (1 + 1e-4))
    assert outside == pytest.approx(isolated, abs=1e-12)
    assert abs(inside - outside) < 1e-9
    assert f_inside < 1e-9 and f_outside == 0.0
    # the pair interaction is not trivially zero inside the cutoff
    assert abs(e_and_f(rc * 0.6)[0] - isolated) > 1e-4


def test_periodic_image_and_supercell(slab) -> None:
    model = make_model([1, 6, 29])
    e, f = energy_forces(model, [slab])
    shifted = slab.copy()
    shifted.positions[20] += slab.cell[0] - 2 * slab.cell[1]
    shifted.positions[3] -= slab.cell[2]
    e2, f2 = energy_forces(model, [shifted])
    assert torch.allclose(e2, e, atol=1e-9, rtol=0)
    assert torch.allclose(f2, f, atol=1e-9)
    # a 2x1x1 supercell holds exactly twice the energy and the same forces
    e_super, f_super = energy_forces(model, [slab.repeat((2, 1, 1))])
    assert e_super.item() == pytest.approx(2 * e.item(), abs=1e-8)
    assert torch.allclose(f_super[: len(slab)], f, atol=1e-9)


def test_stress_matches_finite_strain(slab) -> None:
    from ase.calculators.fd import calculate_numerical_stress

    from sciml.calculators import MLIPCalculator

    atoms = slab.copy()
    atoms.calc = MLIPCalculator(make_model([1, 6, 29]), dtype="float64")
    stress = atoms.get_stress()
    numeric = calculate_numerical_stress(atoms, eps=1e-5)
    assert np.abs(stress).max() > 1e-5
    np.testing.assert_allclose(stress, numeric, atol=1e-8)


def test_torch_and_vesin_neighbour_lists_agree(slab, acac_frames: list) -> None:
    def canonical(edge_index: np.ndarray, shifts: np.ndarray) -> list:
        return sorted(zip(*edge_index.tolist(), *np.rint(shifts).astype(int).T.tolist()))

    unwrapped = slab.copy()
    unwrapped.positions += np.random.default_rng(1).normal(scale=4.0, size=(len(slab), 3))
    for atoms in [unwrapped, acac_frames[0]]:
        edges, shifts = radius_graph(torch.tensor(atoms.positions), torch.zeros(len(atoms), dtype=torch.long), 1, 5.0,
                                     torch.tensor(atoms.cell.array)[None], torch.tensor(atoms.pbc)[None])
        ev, sv = radius_graph_vesin(atoms.positions, atoms.cell.array, atoms.pbc, 5.0)
        assert len(ev[0]) > 0
        assert canonical(edges.numpy(), shifts.numpy()) == canonical(ev, sv)


def test_direct_force_head_is_equivariant_not_conservative(acac_frames: list) -> None:
    model = make_model(HCO, force_mode="direct")
    atoms = acac_frames[0]
    e, f = energy_forces(model, [atoms])
    rot = Rotation.random(random_state=5).as_matrix()
    turned = atoms.copy()
    turned.positions = atoms.positions @ rot.T
    _, f2 = energy_forces(model, [turned])
    assert torch.allclose(f2, f @ torch.as_tensor(rot).T, atol=1e-8)
    pos = batch_of([atoms])
    pos.pos.requires_grad_(True)
    grad = torch.autograd.grad(model(pos, compute_forces=False)["energy"].sum(), pos.pos)[0]
    assert not torch.allclose(-grad, f, atol=1e-3)


def test_unseen_element_is_named(slab) -> None:
    with pytest.raises(UnknownElementError, match=r"Cu \(Z=29\)"):
        make_model(HCO)(batch_of([slab]))


def test_float32_energy_keeps_reference_precision(acac_frames: list) -> None:
    model64 = make_model(HCO)
    model32 = make_model(HCO).to(torch.float32)
    model32.model.set_statistics(HCO, {1: -13.568422178253735, 6: -1026.8538996116154, 8: -2037.796869412825},
                           scale=0.5, shift=0.0, avg_num_neighbors=10.0)
    model64.model.set_statistics(HCO, {1: -13.568422178253735, 6: -1026.8538996116154, 8: -2037.796869412825},
                           scale=0.5, shift=0.0, avg_num_neighbors=10.0)
    e32 = model32(batch_of(acac_frames), compute_forces=False)["energy"]
    e64 = model64(batch_of(acac_frames), compute_forces=False)["energy"]
    assert e32.dtype == torch.float64
    assert (e32 - e64).abs().max().item() < 2e-5  # float32 would round totals of ~-5800 eV to ~0.5 meV
