"""``sciml data split`` (by group, deterministic, no leak) and ``sciml data info`` (counts, statistics, JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import h5py
import numpy as np
import pytest

from data_tools.convert import ConvertOptions, convert
from data_tools.dataset import AtomsDataset
from data_tools.splits import sizes_from_fractions, split_frames
from sciml.cli import main
from sciml.errors import ConfigError, DataError

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


@pytest.fixture(scope="module")
def oc20_like(tmp_path_factory):
    """The toy OC20 relaxation as 2 shards with 7 groups (sids) of varying size, via the OC20 extxyz converter."""
    folder = tmp_path_factory.mktemp("split")
    src = DATA / "oc20" / "toy_c3h8_relax.extxyz"
    (folder / "0.extxyz").write_bytes(src.read_bytes())
    sids = [int(i ** 0.5) for i in range(101)]   # groups 0..10 with growing sizes
    (folder / "0.txt").write_text("".join(f"random{s},frame{i},-1.0\n" for i, s in enumerate(sids)))
    out = convert([folder / "0.extxyz"], folder / "oc.h5", ConvertOptions(shard_size=60, progress=False))
    return out.outputs, np.array(sids)


def test_group_split_never_leaks_and_is_deterministic():
    groups = np.random.default_rng(0).integers(0, 300, 5000)
    sizes = dict(zip(("train", "val", "test"), sizes_from_fractions([0.8, 0.1, 0.1], len(np.unique(groups)))))
    a = split_frames(groups, sizes, seed=4, by="group")
    assert all(np.array_equal(a[k], v) for k, v in split_frames(groups, sizes, seed=4, by="group").items())
    assert not np.array_equal(a["val"], split_frames(groups, sizes, seed=5, by="group")["val"])
    assert sorted(np.concatenate(list(a.values())).tolist()) == list(range(len(groups)))
    members = {k: set(groups[v].tolist()) for k, v in a.items()}
    assert not (members["train"] & members["val"]) and not (members["val"] & members["test"])
    assert not (members["train"] & members["test"])
    assert [len(members[k]) for k in ("train", "val", "test")] == [240, 30, 30]
    with pytest.raises(ConfigError, match="sum to 1"):
        sizes_from_fractions([0.5, 0.2], 10)


def test_split_cli_and_dataset_accepts_index(oc20_like, tmp_path, capsys):
    paths, sids = oc20_like
    args = ["data", "split", *map(str, paths), "--fractions", "0.6,0.2,0.2", "--seed", "3", "-o", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "train:" in out and "val:" in out and "test:" in out
    parts = {name: AtomsDataset(tmp_path / f"{name}.idx.npz") for name in ("train", "val", "test")}
    groups = {name: set(ds.groups.tolist()) for name, ds in parts.items()}
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"])
    assert not (groups["val"] & groups["test"])
    assert sum(len(ds) for ds in parts.values()) == 101
    assert set().union(*groups.values()) == set(sids.tolist())
    full = AtomsDataset(paths)
    val = parts["val"]
    for k in range(len(val)):
        g = int(val.indices[k])
        assert float(val[k].energy) == float(full[g].energy) and int(val[k].group) == sids[g]
    first = (tmp_path / "val.idx.npz").read_bytes()
    assert main(args) == 0
    assert (tmp_path / "val.idx.npz").read_bytes() == first   # deterministic
    sub = AtomsDataset(tmp_path / "train.idx.npz", indices=[0, 1])
    assert sub.indices.tolist() == parts["train"].indices[:2].tolist()


def test_split_detects_changed_shards(oc20_like, tmp_path):
    paths, _ = oc20_like
    copies = []
    for p in paths:
        copies.append(tmp_path / p.name)
        copies[-1].write_bytes(p.read_bytes())
    main(["data", "split", *map(str, copies), "--fractions", "0.5,0.5", "--names", "a,b", "-o", str(tmp_path / "s")])
    with h5py.File(copies[0], "r+") as f:
        f["frames/natoms"].attrs["crc32"] = np.uint32(12345)
    with pytest.raises(DataError, match="changed since the split was made"):
        AtomsDataset(tmp_path / "s" / "a.idx.npz")


def test_info_json_statistics(tmp_path, capsys):
    src = DATA / "ethanol" / "train_first100.xyz"
    out = tmp_path / "eth.h5"
    convert([src], out, ConvertOptions(progress=False))
    assert main(["data", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    frames = ase.io.read(src, ":")
    energy = np.array([a.get_potential_energy() for a in frames])
    forces = np.concatenate([a.get_forces() for a in frames]).astype(np.float32).astype(np.float64)
    assert info["n_frames"] == 100 and info["n_atoms"] == 900 and info["elements"] == ["H", "C", "O"]
    assert info["element_counts"] == {"H": 600, "C": 200, "O": 100}
    for key, ref in (("energy", energy), ("forces", forces)):
        stats = info[key]
        assert stats["mean"] == pytest.approx(ref.mean(), rel=1e-9, abs=1e-9)
        assert stats["std"] == pytest.approx(ref.std(), rel=1e-9)
        assert (stats["min"], stats["max"]) == (pytest.approx(ref.min()), pytest.approx(ref.max()))
    assert info["checksums_verified"] is True and info["files"][0]["checksums"] == "ok"
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "frames:    100   atoms: 900" in text and "checksums: verified OK" in text and "eV/Angstrom" in text
