"""Schema 2: optional extras (per-atom, per-frame, per-pair arrays) written, checksummed, read and collated; schema 1
files still read; Atoms and shard frames become the same items; the one collate handles edges and pairs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ase.io
import h5py
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from data_tools.collate import collate_atoms
from data_tools.dataset import AtomsDataset
from data_tools.items import atoms_to_item
from data_tools.neighbors import NeighborList
from data_tools.reader import ShardReader
from data_tools.sources.ase_files import atoms_to_frame
from data_tools.writer import AtomsWriter, Extras, validate_frame
from sciml.errors import DataError

REPO = Path(__file__).resolve().parents[1]
ACAC = REPO / "examples" / "data" / "acac" / "train_300K.xyz"


def _pairs(n: int) -> np.ndarray:
    i, j = np.triu_indices(n, 1)
    return np.stack([i, j], 1)


def extras_for(atoms) -> Extras:
    """Deterministic, frame-dependent extras: per-atom charges, a per-frame vector, all pair distances (Angstrom)."""
    pairs = _pairs(len(atoms))
    d = atoms.get_all_distances()[pairs[:, 0], pairs[:, 1]]
    return Extras(atoms={"q": (atoms.numbers * 0.1).astype(np.float32)},
                  frames={"dipole": atoms.positions.mean(0)},
                  pair_index=pairs, pairs={"dist": d.astype(np.float32), "close": d < 1.6},
                  values={"jac": np.arange(len(atoms) * (int(abs(atoms.positions[0, 0]) * 100) % 3 + 1),
                                           dtype=np.float32)})  # a frame-dependent length


@pytest.fixture(scope="module")
def acac_frames() -> list:
    return ase.io.read(str(ACAC), ":7")


@pytest.fixture(scope="module")
def shard(tmp_path_factory, acac_frames) -> Path:
    path = tmp_path_factory.mktemp("extras") / "acac_extras.h5"
    writer = AtomsWriter(path, flush_frames=3)  # several flushes: CSR offsets must continue across them
    for k, atoms in enumerate(acac_frames):
        frame = atoms_to_frame(atoms, group=k, frame_id=k)
        frame.extras = extras_for(atoms)
        assert validate_frame(frame) is None
        writer.append(frame)
    writer.finish()
    return path


def test_extras_round_trip_through_the_dataset(shard, acac_frames) -> None:
    with ShardReader(shard) as r:
        assert r.schema_version == 2 and r.verify() == []
        assert set(r.extras) == {"extras/atoms/q", "extras/frames/dipole", "extras/pairs/index",
                                 "extras/pairs/count", "extras/pairs/dist", "extras/pairs/close",
                                 "extras/values/jac", "extras/counts/jac"}
    ds = AtomsDataset(shard)
    for k in (0, 3, 6):
        atoms, item = acac_frames[k], ds[k]
        ref = extras_for(atoms)
        np.testing.assert_array_equal(item.atom_q.numpy(), ref.atoms["q"])
        np.testing.assert_array_equal(item.frame_dipole.numpy(), ref.frames["dipole"][None])
        assert item.pair_index.dtype == torch.long and item.pair_index.shape == (2, 105)
        np.testing.assert_array_equal(item.pair_index.numpy(), ref.pair_index.T)
        np.testing.assert_array_equal(item.pair_dist.numpy(), ref.pairs["dist"])
        np.testing.assert_array_equal(item.pair_close.numpy().astype(bool), ref.pairs["close"])
        np.testing.assert_array_equal(item.values_jac.numpy(), ref.values["jac"])
    # the block path (__getitems__) gives the same items as the single-frame path
    for a, b in zip(ds.__getitems__([6, 0, 3]), [ds[6], ds[0], ds[3]]):
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a.keys())


def test_a_flipped_bit_in_an_extras_array_is_detected(shard, tmp_path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(shard.read_bytes())
    with h5py.File(bad, "r+") as h:
        h["extras/pairs/dist"][5] = h["extras/pairs/dist"][5] + 1e-3
    with ShardReader(bad) as r:
        assert r.verify() == ["/extras/pairs/dist"]


def test_extras_layout_must_not_change_between_frames(tmp_path, acac_frames) -> None:
    writer = AtomsWriter(tmp_path / "x.h5")
    first = atoms_to_frame(acac_frames[0], 0, 0)
    first.extras = extras_for(acac_frames[0])
    writer.append(first)
    second = atoms_to_frame(acac_frames[1], 0, 1)
    second.extras = extras_for(acac_frames[1])
    second.extras.atoms["q"] = second.extras.atoms["q"].astype(np.float64)
    with pytest.raises(DataError, match="extras/atoms/q: dtype"):
        writer.append(second)
    writer.abort()
    bad = atoms_to_frame(acac_frames[0], 0, 0)
    bad.extras = Extras(pair_index=np.array([[0, 99]]))
    assert "outside 0..14" in validate_frame(bad)
    bad.extras = Extras(atoms={"id": np.zeros(3)})
    assert "expected 15 rows" in validate_frame(bad)


def test_schema_1_files_still_read_and_newer_ones_are_refused(tmp_path, acac_frames) -> None:
    """A version-1 file is the version-2 core layout (no /extras) marked schema_version = 1."""
    path = tmp_path / "v1.h5"
    writer = AtomsWriter(path)
    for k, atoms in enumerate(acac_frames):
        writer.append(atoms_to_frame(atoms, k, k))
    writer.finish()
    def items() -> list:
        ds = AtomsDataset(path)
        out = ds.__getitems__(list(range(7)))
        ds._readers.clear()  # close the lazily opened handle before the file is edited
        return out

    v2_items = items()
    with h5py.File(path, "r+") as h:
        h.attrs["schema_version"] = 1
    for a, b in zip(items(), v2_items):
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a.keys())
    with h5py.File(path, "r+") as h:
        h.attrs["schema_version"] = 3
    with pytest.raises(DataError, match="unsupported schema version 3"):
        ShardReader(path)


def test_atoms_and_shard_frames_become_the_same_item(shard, acac_frames) -> None:
    from_shard = AtomsDataset(shard)[4]
    from_atoms = atoms_to_item(acac_frames[4])
    core = set(from_shard.keys()) - {"atom_q", "frame_dipole", "pair_index", "pair_dist", "pair_close", "values_jac"}
    assert set(from_atoms.keys()) == core
    for key in core:
        a, b = from_atoms[key], from_shard[key]
        assert a.shape == b.shape, key
        if key in ("group", "frame_id"):  # where the frame came from: 0 for a lone Atoms
            assert int(a) == 0 and int(b) == 4
        elif a.dtype.is_floating_point and key != "energy":  # shards store float32, Atoms give float64
            assert a.dtype == torch.float64 and b.dtype == torch.float32, key
            torch.testing.assert_close(a.float(), b, rtol=0, atol=0)
        else:
            assert a.dtype == b.dtype and torch.equal(a, b), key


def test_collate_with_edges_and_pairs_equals_pyg(shard) -> None:
    ds = AtomsDataset(shard)
    featurize = NeighborList(4.0, "vesin")
    items = [featurize(item) for item in ds.__getitems__([2, 0, 5, 1])]
    assert all(item.edge_index.shape[1] > 0 for item in items)
    ours = collate_atoms(items)
    ref = Batch.from_data_list([Data(**{k: d[k] for k in d.keys()}) for d in items])
    assert sorted(ours.keys()) == sorted(ref.keys())
    for key in ref.keys():
        assert torch.equal(ours[key], ref[key]) and ours[key].dtype == ref[key].dtype, key
    for attr in ("_slice_dict", "_inc_dict"):
        assert {k: v.tolist() for k, v in getattr(ours, attr).items()} == \
               {k: v.tolist() for k, v in getattr(ref, attr).items()}, attr
    # incremented indices point at the right atoms: edges are within frames, pairs stay upper-triangular
    assert torch.equal(ours.batch[ours.edge_index[0]], ours.batch[ours.edge_index[1]])
    assert torch.equal(ours.batch[ours.pair_index[0]], ours.batch[ours.pair_index[1]])
    assert bool((ours.pair_index[0] < ours.pair_index[1]).all())
    assert ours.get_example(2).pair_index.tolist() == items[2].pair_index.tolist()


@pytest.mark.slow
def test_data_layer_imports_neither_the_engine_nor_models() -> None:
    code = ("import sys\n"
            "import data_tools.dataset, data_tools.splits, data_tools.sampler, data_tools.collate, data_tools.items, "
            "data_tools.neighbors, data_tools.convert, data_tools.info, data_tools.index_file\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('sciml.training', 'sciml.potential', 'models')))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
