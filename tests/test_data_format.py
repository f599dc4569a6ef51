"""HDF5 format: round trip against ASE on real data, metadata, checksums, and bad/corrupt files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ase.io
import h5py
import numpy as np
import pytest

from data_tools.convert import ConvertOptions, convert
from data_tools.format import SCHEMA_VERSION
from data_tools.info import dataset_info
from data_tools.reader import ShardReader
from sciml.cli import main
from sciml.errors import DataError

ACAC = Path(__file__).resolve().parents[1] / "examples" / "data" / "acac"


@pytest.fixture(scope="module")
def acac(tmp_path_factory):
    src = ACAC / "train_300K.xyz"
    out = tmp_path_factory.mktemp("fmt") / "acac.h5"
    convert([src], out, ConvertOptions(progress=False, ref_energies=ACAC / "isolated_atoms.xyz"))
    return src, out


def test_round_trip_matches_ase(acac):
    src, out = acac
    frames = ase.io.read(src, ":")
    with ShardReader(out) as r:
        assert r.n_frames == len(frames) == 500
        assert r.n_atoms == sum(len(a) for a in frames)
        block = r.read_range(0, r.n_frames)
        assert r.h5["atoms/positions"].dtype == np.float32 and r.h5["frames/energy"].dtype == np.float64
        assert r.h5["atoms/positions"].attrs["units"] == "Angstrom"
        assert r.h5["atoms/forces"].attrs["units"] == "eV/Angstrom"
        assert r.h5["frames/energy"].attrs["units"] == "eV"
        assert r.h5.attrs["schema_version"] == SCHEMA_VERSION
        assert r.energy_convention == "total"
        assert r.provenance["sources"][0]["path"].endswith("train_300K.xyz")
    pos = np.concatenate([a.positions for a in frames])
    forces = np.concatenate([a.get_forces() for a in frames])
    np.testing.assert_array_equal(block["numbers"], np.concatenate([a.numbers for a in frames]))
    np.testing.assert_allclose(block["positions"], pos, rtol=0, atol=4e-6)   # float32: |x| < 32 A -> < 4e-6 A
    np.testing.assert_allclose(block["forces"], forces, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(block["energy"], [a.get_potential_energy() for a in frames])  # float64: exact
    np.testing.assert_array_equal(block["natoms"], 15)
    assert (block["offsets"] == np.arange(501) * 15).all()


def test_reference_energies_in_metadata(acac):
    _, out = acac
    iso = {int(a.numbers[0]): a.get_potential_energy() for a in ase.io.read(ACAC / "isolated_atoms.xyz", ":")}
    with ShardReader(out) as r:
        assert r.element_reference_energies == iso
        assert r.elements == [1, 6, 8]


def test_checksums_verify_and_detect_corruption(acac, tmp_path):
    _, out = acac
    with ShardReader(out) as r:
        assert r.verify() == []
    bad = tmp_path / "bad.h5"
    shutil.copy(out, bad)
    with h5py.File(bad, "r") as f:
        offset = f["atoms/positions"].id.get_chunk_info(0).byte_offset
    with open(bad, "r+b") as fh:
        fh.seek(offset + 100)
        byte = fh.read(1)
        fh.seek(offset + 100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with ShardReader(bad) as r:
        assert r.verify() == ["/atoms/positions"]
    with pytest.raises(DataError, match=r"checksum mismatch.*bad\.h5:/atoms/positions"):
        dataset_info(bad)
    assert main(["data", "info", str(bad)]) == 2


def test_truncated_file_is_refused(acac, tmp_path):
    _, out = acac
    cut = tmp_path / "cut.h5"
    data = out.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.h5.*(truncated|corrupt)"):
        ShardReader(cut)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(DataError, match=r"garbage\.h5: not a readable HDF5 file"):
        ShardReader(garbage)
    with pytest.raises(DataError, match="no such file"):
        ShardReader(tmp_path / "missing.h5")


@pytest.mark.parametrize("attr,value,message", [
    ("schema_version", 99, "unsupported schema version 99"),
    ("format", "other", "not a sciml atoms file"),
    ("complete", False, "incomplete file"),
])
def test_bad_metadata_is_refused(acac, tmp_path, attr, value, message):
    _, out = acac
    f2 = tmp_path / "x.h5"
    shutil.copy(out, f2)
    with h5py.File(f2, "r+") as f:
        f.attrs[attr] = value
    with pytest.raises(DataError, match=message) as err:
        ShardReader(f2)
    assert "x.h5" in str(err.value)


def test_inconsistent_lengths_are_refused(acac, tmp_path):
    _, out = acac
    f2 = tmp_path / "short.h5"
    shutil.copy(out, f2)
    with h5py.File(f2, "r+") as f:
        f["atoms/forces"].resize(100, axis=0)
    with pytest.raises(DataError, match=r"short\.h5: /atoms/forces has 100 rows"):
        ShardReader(f2)


def test_all_zero_arrays_are_flagged_and_not_stored_wrongly(acac):
    _, out = acac
    with ShardReader(out) as r:
        assert bool(r.h5["atoms/tags"].attrs["all_zero"]) and bool(r.h5["atoms/fixed"].attrs["all_zero"])
        assert not bool(r.h5["atoms/positions"].attrs["all_zero"])
        assert (r.h5["atoms/tags"][:] == 0).all()
        units = json.loads(r.h5.attrs["units"])
        assert units["energy"] == "eV" and units["forces"] == "eV/Angstrom"
