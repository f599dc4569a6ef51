"""AtomsDataset (fields, dtypes, shards, subsets, workers) and the block-shuffling batch sampler."""

from __future__ import annotations

import pickle
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from data_tools.convert import ConvertOptions, convert
from data_tools.collate import collate_atoms
from data_tools.dataset import AtomsDataset
from data_tools.sampler import BlockShuffleBatchSampler
from data_tools.sampler import ResumableBatchSampler

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """acac (500 x 15 atoms) + 3bpa (40 x 27) in 4 shards of <= 150 frames."""
    out = tmp_path_factory.mktemp("ds") / "mix.h5"
    srcs = [DATA / "acac" / "train_300K.xyz", DATA / "3bpa" / "train_300K_first40.xyz"]
    result = convert(srcs, out, ConvertOptions(shard_size=150, progress=False))
    frames = [a for s in srcs for a in ase.io.read(s, ":")]
    return result.outputs, frames


def test_item_fields_and_dtypes(shards):
    paths, frames = shards
    ds = AtomsDataset(paths)
    assert len(paths) == 4 and len(ds) == len(frames) == 540
    d = ds[517]
    a = frames[517]
    expected = {"z": (torch.long, (27,)), "pos": (torch.float32, (27, 3)), "forces": (torch.float32, (27, 3)),
                "energy": (torch.float64, (1,)), "cell": (torch.float32, (1, 3, 3)), "pbc": (torch.bool, (1, 3)),
                "fixed": (torch.bool, (27,)), "tags": (torch.long, (27,)), "natoms": (torch.long, (1,)),
                "group": (torch.long, (1,)), "frame_id": (torch.long, (1,))}
    assert set(d.keys()) == set(expected)
    for key, (dtype, shape) in expected.items():
        assert d[key].dtype == dtype and tuple(d[key].shape) == shape, key
    assert float(d.energy) == a.get_potential_energy() and int(d.frame_id) == 17
    np.testing.assert_allclose(d.pos.numpy(), a.positions, atol=4e-6, rtol=0)
    assert ds.natoms.tolist() == [len(f) for f in frames]
    assert ds[-1].z.tolist() == frames[-1].numbers.tolist()
    with pytest.raises(IndexError):
        ds[540]


def test_fast_construction_and_collate_equal_pyg(shards):
    ds = AtomsDataset(shards[0])
    items = ds.__getitems__([3, 520, 4, 539, 0])
    plain = [Data(**{k: d[k] for k in d.keys()}) for d in items]
    ours, ref = collate_atoms(items), Batch.from_data_list(plain)
    assert type(ours) is type(ref) and ours.num_graphs == ref.num_graphs == 5
    assert sorted(ours.keys()) == sorted(ref.keys())
    for k in ref.keys():
        assert torch.equal(ours[k], ref[k]) and ours[k].dtype == ref[k].dtype, k
    for attr in ("_slice_dict", "_inc_dict"):
        assert {k: v.tolist() for k, v in getattr(ours, attr).items()} == \
            {k: v.tolist() for k, v in getattr(ref, attr).items()}
    for a, b in zip(ours.to_data_list(), plain):
        assert all(torch.equal(a[k], b[k]) for k in b.keys())
    # items with other fields (a neighbour list) take PyG's path, with index increments
    with_edges = [d.clone() for d in items[:2]]
    for d in with_edges:
        d.edge_index = torch.tensor([[0, 1], [1, 0]])
    assert collate_atoms(with_edges).edge_index.tolist() == [[0, 1, 15, 16], [1, 0, 16, 15]]


def test_subsets_batches_and_block_reads(shards):
    paths, frames = shards
    idx = [539, 3, 4, 5, 520, 149, 150]
    sub = AtomsDataset(paths, indices=idx)
    full = AtomsDataset(paths, frame_cache_mb=0)   # per-frame arrays read on demand
    assert sub.natoms.tolist() == [len(frames[i]) for i in idx]
    items = sub.__getitems__(list(range(len(idx))))
    for i, item in zip(idx, items):
        assert float(item.energy) == frames[i].get_potential_energy()
        ref = full[i]
        for k in ref.keys():
            assert torch.equal(ref[k], item[k]), k
    block = full.read_block(10, 20)
    assert block["positions"].shape == (150, 3) and block["energy"].shape == (10,)
    with pytest.raises(ValueError, match="not consecutive"):
        full.read_block(140, 160)   # crosses a shard boundary
    batch = collate_atoms(items)
    assert batch.num_graphs == len(idx) and batch.pos.shape[0] == sum(len(frames[i]) for i in idx)
    assert batch.energy.shape == (len(idx),) and batch.cell.shape == (len(idx), 3, 3)


def test_items_do_not_alias_cached_arrays(shards):
    ds = AtomsDataset(shards[0])
    d = ds[10]
    d.energy -= 5.0
    d.natoms += 1
    assert float(ds[10].energy) == float(d.energy) + 5.0 and int(ds[10].natoms) == 15
    batch_item = ds.__getitems__([10, 11])[0]   # served from the per-process block cache
    batch_item.pos += 1.0
    batch_item.z[:] = 0
    again = ds.__getitems__([11, 10])[1]
    assert torch.equal(again.pos, ds[10].pos) and again.z.tolist() == ds[10].z.tolist() and again.z.min() > 0


def test_pickling_drops_handles_and_workers_match(shards):
    paths, frames = shards
    ds = AtomsDataset(paths)
    ds[0]
    assert ds._readers
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._readers == {} and float(clone[5].energy) == float(ds[5].energy)
    sampler = BlockShuffleBatchSampler(ds.natoms, max_atoms=400, seed=3, block_frames=32, buffer_blocks=4)
    expected = [collate_atoms(ds.__getitems__(b)) for b in sampler]
    # forked workers inherit the parent's open handles: they must open their own (spawn is covered by pickling)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_atoms, num_workers=2,
                                         multiprocessing_context="fork")
    got = list(loader)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):   # worker batches arrive as one shared-memory segment: same content
        assert sorted(a.keys()) == sorted(b.keys()) and a.num_graphs == b.num_graphs
        assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in b.keys())
        assert all(torch.equal(a._slice_dict[k], b._slice_dict[k]) for k in b._slice_dict)
        assert a.get_example(1).z.tolist() == b.get_example(1).z.tolist()


# -- sampler ------------------------------------------------------------------------------------------------

def _natoms(n=5003, seed=0):
    return np.random.default_rng(seed).integers(5, 60, n)


def test_sampler_contract_and_atom_budget():
    natoms = _natoms()
    s = BlockShuffleBatchSampler(natoms, max_atoms=300, seed=1)
    assert isinstance(s, ResumableBatchSampler)
    batches = list(s)
    assert len(batches) == len(s)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(natoms)))          # every frame exactly once
    assert max(natoms[b].sum() for b in batches) <= 300
    assert all(natoms[b].sum() + natoms[n[0]] > 300 for b, n in zip(batches[:-1], batches[1:]))  # greedy
    s2 = BlockShuffleBatchSampler(natoms, max_atoms=300, seed=1, max_frames=4)
    assert max(len(b) for b in s2) == 4
    big = natoms.copy()
    big[7] = 1000
    assert [7] in list(BlockShuffleBatchSampler(big, max_atoms=300, seed=1))   # oversize frame alone


def test_sampler_block_structure_and_determinism():
    natoms = _natoms()
    kw = dict(max_atoms=300, block_frames=64, buffer_blocks=4)
    a = list(BlockShuffleBatchSampler(natoms, seed=5, **kw))
    b = list(BlockShuffleBatchSampler(natoms, seed=5, **kw))
    assert a == b
    s = BlockShuffleBatchSampler(natoms, seed=5, **kw)
    s.set_epoch(1)
    assert list(s) != a
    assert list(BlockShuffleBatchSampler(natoms, seed=6, **kw)) != a
    # a shuffle window of 4 blocks spans at most 4 distinct 64-frame blocks
    order = np.concatenate(a)
    first_window = order[: 4 * 64]
    assert len(set((first_window // 64).tolist())) == 4
    ordered = list(BlockShuffleBatchSampler(natoms, shuffle=False, **kw))
    assert np.concatenate(ordered).tolist() == list(range(len(natoms)))


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_sampler_ddp_disjoint_equal_batches(world_size):
    natoms = _natoms()
    for epoch in (0, 1):
        ranks = []
        for r in range(world_size):
            s = BlockShuffleBatchSampler(natoms, max_atoms=300, seed=2, rank=r, world_size=world_size,
                                         block_frames=64)
            s.set_epoch(epoch)
            ranks.append(list(s))
            assert len(ranks[-1]) == len(s)
        assert len({len(b) for b in ranks}) == 1                      # same batch count on every rank
        flat = [i for batches in ranks for b in batches for i in b]
        assert len(flat) == len(set(flat)) == len(natoms)            # no frame twice, none dropped
        assert all(natoms[b].sum() <= 300 for batches in ranks for b in batches)


def test_sampler_tiny_dataset_drops_to_equal_count():
    natoms = np.full(5, 10)   # one frame per batch: rank 0 gets 2 batches, the others 1 and cannot split theirs
    ranks = [list(BlockShuffleBatchSampler(natoms, 10, rank=r, world_size=4, block_frames=1)) for r in range(4)]
    assert {len(b) for b in ranks} == {1}
    flat = [i for b in ranks for x in b for i in x]
    assert len(flat) == len(set(flat)) == 4


def test_sampler_resume_mid_epoch_equals_uninterrupted():
    natoms = _natoms()
    kw = dict(max_atoms=300, seed=9, rank=1, world_size=2, block_frames=64)
    full = BlockShuffleBatchSampler(natoms, **kw)
    epochs = []
    for e in range(2):
        full.set_epoch(e)
        epochs.append(list(full))
    run = BlockShuffleBatchSampler(natoms, **kw)
    run.set_epoch(1)
    it = iter(run)
    seen = [next(it) for _ in range(7)]
    state = run.state_dict()
    assert state["epoch"] == 1 and state["batches_done"] == 7
    resumed = BlockShuffleBatchSampler(natoms, **kw)
    resumed.load_state_dict(pickle.loads(pickle.dumps(state)))
    resumed.set_epoch(1)   # the engine calls set_epoch on the resumed epoch: must not reset the position
    assert len(resumed) == len(epochs[1]) - 7
    assert seen + list(resumed) == epochs[1]
    resumed.set_epoch(2)
    full.set_epoch(2)
    assert list(resumed) == list(full)
    # explicit count (DataLoader prefetching ahead of the loop)
    assert run.state_dict(batches_done=5)["batches_done"] == 5
    with pytest.raises(Exception, match="world_size"):
        BlockShuffleBatchSampler(natoms, max_atoms=300, seed=9, world_size=3).load_state_dict(state)


def test_shards_with_different_arrays_are_refused(shards, tmp_path):
    other = tmp_path / "oc.h5"
    ext = tmp_path / "0.extxyz"
    ext.write_bytes((DATA / "oc20" / "toy_c3h8_relax.extxyz").read_bytes())
    (tmp_path / "0.txt").write_text("random1,frame0,-1.0\n" * 101)
    convert([ext], other, ConvertOptions(progress=False))   # has ref_energy, the molecules do not
    with pytest.raises(Exception, match=r"oc\.h5: arrays \['ref_energy'\] differ"):
        AtomsDataset([shards[0][0], other])
