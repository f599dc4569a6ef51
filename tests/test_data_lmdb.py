"""OC20 pickled-PyG LMDB and PubChemQCR gzip-pickle LMDB converters (files built from real frames), and the
restricted unpickler."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase.units import Bohr, Hartree
from torch_geometric.data import Data

from data_tools.convert import ConvertOptions, convert, detect_format
from data_tools.dataset import AtomsDataset
from data_tools.lmdb_builders import write_oc20_lmdb, write_pubchemqcr_lmdb
from data_tools.safe_pickle import UnsafePickleError, loads_plain, loads_pyg
from data_tools.sources.lmdb_io import open_env
from sciml.errors import DataError

QUIET = dict(progress=False)
DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_unpickler_decodes_real_pyg_data():
    d = Data(pos=torch.randn(5, 3), atomic_numbers=torch.tensor([1, 6, 8, 1, 1], dtype=torch.uint8),
             force=torch.randn(3, 5).t(), cell=torch.eye(3).view(1, 3, 3) * 7.5, natoms=5, y=-1.25, sid=42,
             fid=3, tags=torch.tensor([0, 1, 2, 2, 2]), fixed=torch.tensor([1.0, 0, 0, 0, 0]))
    for protocol in (2, 4, 5):
        fields = loads_pyg(pickle.dumps(d, protocol=protocol))
        for key in ("pos", "atomic_numbers", "force", "cell", "tags", "fixed"):
            np.testing.assert_array_equal(fields[key], d[key].numpy())
            assert fields[key].dtype == d[key].numpy().dtype
        assert (fields["natoms"], fields["y"], fields["sid"], fields["fid"]) == (5, -1.25, 42, 3)


def test_restricted_unpickler_decodes_pyg1_style_data(monkeypatch):
    """PyG-1.x-era Data pickles keep fields in ``__dict__`` (no ``_store``), as in old OC20 LMDBs."""
    import sys
    import types

    fake = types.ModuleType("torch_geometriX.data.data")   # same length as the real module name

    class OldData:
        pass

    OldData.__module__, OldData.__qualname__, OldData.__name__ = fake.__name__, "Data", "Data"
    fake.Data = OldData
    for name in ("torch_geometriX", "torch_geometriX.data"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    old = OldData()
    old.__dict__.update(pos=torch.randn(4, 3), atomic_numbers=torch.tensor([8.0, 1, 1, 6]), natoms=4, y=2.5,
                        force=torch.randn(4, 3), sid=9, fid=1, __num_nodes__=None)
    blob = pickle.dumps(old, protocol=4).replace(b"torch_geometriX", b"torch_geometric")
    fields = loads_pyg(blob)
    assert sorted(fields) == ["atomic_numbers", "fid", "force", "natoms", "pos", "sid", "y"]
    np.testing.assert_array_equal(fields["pos"], old.pos.numpy())
    np.testing.assert_array_equal(fields["force"], old.force.numpy())


def test_malicious_pickles_are_refused(tmp_path):
    payload = pickle.dumps(Evil())
    with pytest.raises(UnsafePickleError, match="system"):
        loads_pyg(payload)
    with pytest.raises(UnsafePickleError, match="system"):
        loads_plain(payload)
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        loads_plain(pickle.dumps({"a": eval}))
    # inside the LMDB formats: conversion stops with an error naming file and key, nothing is written
    import lmdb

    for name, value in (("evil_oc20.lmdb", payload), ("evil_pcq.lmdb", gzip.compress(payload))):
        env = lmdb.open(str(tmp_path / name), subdir=False, map_size=1 << 20)
        with env.begin(write=True) as txn:
            txn.put(b"000000001" if "pcq" in name else b"0", value)
        env.close()
        fmt = "pubchemqcr" if "pcq" in name else "oc20-lmdb"
        with pytest.raises(UnsafePickleError, match=rf"{name}: (key 0|CID 000000001).*posix.system"):
            convert([tmp_path / name], tmp_path / "o.h5", ConvertOptions(fmt=fmt, skip_invalid=True, **QUIET))
        assert not (tmp_path / "o.h5").exists()


@pytest.fixture(scope="module")
def toy():
    return ase.io.read(DATA / "oc20" / "toy_c3h8_relax.extxyz", ":")


def test_oc20_lmdb_round_trip(toy, tmp_path):
    path = tmp_path / "data.0000.lmdb"
    write_oc20_lmdb(path, [(a, 1234, 2 * i) for i, a in enumerate(toy)])
    assert detect_format(path) == "oc20-lmdb"
    result = convert([path], tmp_path / "oc.h5", ConvertOptions(**QUIET))
    assert result.fmt == "oc20-lmdb" and result.n_frames == len(toy)
    ds = AtomsDataset(tmp_path / "oc.h5")
    assert ds.energy_convention == "referenced"   # published S2EF LMDB energies are referenced
    for i in (0, 37, 100):
        a, d = toy[i], ds[i]
        assert d.z.tolist() == a.numbers.tolist()
        np.testing.assert_array_equal(d.pos.numpy(), a.positions.astype(np.float32))
        np.testing.assert_array_equal(d.forces.numpy(), a.get_forces(apply_constraint=False).astype(np.float32))
        np.testing.assert_allclose(d.cell[0].numpy(), a.cell[:], rtol=1e-7)
        assert float(d.energy) == a.get_potential_energy()
        assert d.tags.tolist() == a.get_tags().tolist()
        assert d.fixed.tolist() == [j in set(a.constraints[0].index) for j in range(len(a))]
        assert d.pbc.tolist() == [[True, True, True]]
        assert int(d.group) == 1234 and int(d.frame_id) == 2 * i


def test_oc20_lmdb_is2re_energy_key_and_total_convention(toy, tmp_path):
    path = tmp_path / "is2re.lmdb"
    write_oc20_lmdb(path, [(a, 7, 0) for a in toy[:5]], total_energy_key="y_relaxed")
    convert([path], tmp_path / "o.h5", ConvertOptions(energy_convention="total", **QUIET))
    ds = AtomsDataset(tmp_path / "o.h5")
    assert ds.energy_convention == "total"
    assert [float(ds[i].energy) for i in range(5)] == [a.get_potential_energy() for a in toy[:5]]


@pytest.fixture(scope="module")
def molecules():
    acac = ase.io.read(DATA / "acac" / "train_300K.xyz", ":30")
    eth = ase.io.read(DATA / "ethanol" / "train_first100.xyz", ":20")
    return acac, eth


def _records(acac, eth):
    return [(15111, {"pm3": acac[:4], "hf": acac[4:8], "DFT_1st": acac[8:18], "DFT_2nd": [acac[17]] + acac[18:24]}),
            (702, {"pm3": eth[:3], "hf": eth[3:6], "DFT_1st": None, "DFT_2nd": eth[6:20]})]


def test_pubchemqcr_units_groups_stages(molecules, tmp_path):
    acac, eth = molecules
    path = tmp_path / "Data06.lmdb"
    write_pubchemqcr_lmdb(path, _records(acac, eth))
    assert detect_format(path) == "pubchemqcr"
    # the stored values really are Hartree and Hartree/Bohr
    env = open_env(path)
    with env.begin() as txn:
        rec = loads_plain(gzip.decompress(txn.get(b"000015111")))
    env.close()
    assert rec["DFT_1st"][0]["energy"] == pytest.approx(acac[8].get_potential_energy() / 27.211386, rel=1e-6)
    assert rec["DFT_2nd"] is not None and rec.keys() == {"pm3", "hf", "DFT_1st", "DFT_2nd"}

    convert([path], tmp_path / "dft1.h5", ConvertOptions(fmt="pubchemqcr", **QUIET))
    ds = AtomsDataset(tmp_path / "dft1.h5")
    assert len(ds) == 10 and set(ds.groups.tolist()) == {15111}   # CID 702 has no DFT_1st stage
    for k in range(10):
        a, d = acac[8 + k], ds[k]
        assert float(d.energy) == pytest.approx(a.get_potential_energy(), rel=0, abs=1e-9)
        # forces = -gradient * Hartree/Bohr, undoing the writer's -F / (Hartree/Bohr)
        np.testing.assert_allclose(d.forces.numpy(), a.get_forces(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(d.pos.numpy(), a.positions, atol=4e-6, rtol=0)
        assert d.z.tolist() == a.numbers.tolist() and int(d.frame_id) == k and int(d.stage) == 2
        assert d.pbc.tolist() == [[False, False, False]]

    convert([path], tmp_path / "dft.h5", ConvertOptions(stages=("DFT_1st", "DFT_2nd"), **QUIET))
    ds = AtomsDataset(tmp_path / "dft.h5")
    # keys in CID order; DFT_2nd's first step repeats DFT_1st's last and is dropped
    assert ds.groups.tolist() == [702] * 14 + [15111] * 16
    assert [int(ds[i].stage) for i in range(14, 30)] == [2] * 10 + [3] * 6
    assert [int(ds[i].frame_id) for i in range(14, 30)] == list(range(16))
    assert float(ds[13].energy) == pytest.approx(eth[19].get_potential_energy(), abs=1e-9)
    assert float(ds[29].energy) == pytest.approx(acac[23].get_potential_energy(), abs=1e-9)


def test_pubchemqcr_bad_steps(molecules, tmp_path):
    acac, _ = molecules
    path = tmp_path / "bad.lmdb"
    write_pubchemqcr_lmdb(path, [(5, {"pm3": None, "hf": None, "DFT_1st": acac[:4], "DFT_2nd": None})])
    import lmdb

    env = lmdb.open(str(path), subdir=False, map_size=1 << 24)
    with env.begin(write=True) as txn:
        rec = loads_plain(gzip.decompress(txn.get(b"000000005")))
        rec["DFT_1st"][1]["energy"] = None
        rec["DFT_1st"][2]["coordinates"][0]["atom"] = "Qq"
        rec["DFT_1st"][3]["gradient"] = rec["DFT_1st"][3]["gradient"][:-1]
        txn.put(b"000000005", gzip.compress(pickle.dumps(rec)))
    env.close()
    with pytest.raises(DataError, match=r"bad\.lmdb: frame CID 000000005 step 1: missing energy"):
        convert([path], tmp_path / "o.h5", ConvertOptions(fmt="pubchemqcr", **QUIET))
    result = convert([path], tmp_path / "o.h5", ConvertOptions(fmt="pubchemqcr", skip_invalid=True, **QUIET))
    assert result.n_frames == 1 and result.n_skipped == 3
    assert "unknown element symbol 'Qq'" in result.summary() and "forces shape" in result.summary()
    with pytest.raises(DataError, match="unknown PubChemQCR stage"):
        convert([path], tmp_path / "o2.h5", ConvertOptions(fmt="pubchemqcr", stages=("DFT3",), **QUIET))


def test_unit_constants_are_exact():
    from data_tools.sources import pubchemqcr

    assert pubchemqcr.EV_PER_HARTREE == Hartree
    assert pubchemqcr.EV_PER_ANGSTROM_PER_HARTREE_PER_BOHR == Hartree / Bohr
    assert Hartree == pytest.approx(27.211386, rel=1e-7) and Bohr == pytest.approx(0.52917721, rel=1e-7)
