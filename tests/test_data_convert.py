"""Converters on real files (examples/data): ASE formats, OC20 extxyz+txt, sharding, workers, validation, kills."""

from __future__ import annotations

import lzma
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.constraints import FixAtoms

from data_tools.convert import ConvertOptions, convert, detect_format
from data_tools.dataset import AtomsDataset
from data_tools.reader import ShardReader
from sciml.cli import main
from sciml.errors import DataError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data"
OC20_TOY = DATA / "oc20" / "toy_c3h8_relax.extxyz"
QUIET = dict(progress=False)


def _frames(path: Path) -> list:
    return ase.io.read(path, ":")


@pytest.mark.parametrize("rel", ["acac/train_300K.xyz", "3bpa/train_300K_first40.xyz", "ethanol/train_first100.xyz",
                                 "oc20/toy_c3h8_relax.extxyz", "oc20/oxides_every25th.db", "oc20/slab_atoms.json",
                                 "oc20/27998_vasprun.xml"])
def test_ase_converter_matches_ase(tmp_path, rel):
    src = DATA / rel
    result = convert([src], tmp_path / "out.h5", ConvertOptions(**QUIET))
    assert result.fmt == "ase" and result.outputs == [tmp_path / "out.h5"]
    ref = _frames(src)
    ds = AtomsDataset(tmp_path / "out.h5")
    assert len(ds) == len(ref) == result.n_frames
    for i in sorted({0, len(ref) // 2, len(ref) - 1}):
        a, d = ref[i], ds[i]
        assert d.z.tolist() == a.numbers.tolist()
        np.testing.assert_allclose(d.pos.numpy(), a.positions, atol=4e-6, rtol=0)
        assert float(d.energy) == a.get_potential_energy()
        # raw calculator forces: ASE would zero those of fixed atoms with apply_constraint=True
        np.testing.assert_allclose(d.forces.numpy(), a.get_forces(apply_constraint=False), atol=1e-5, rtol=1e-6)
        np.testing.assert_allclose(d.cell[0].numpy(), a.cell[:], rtol=1e-6)
        assert d.pbc[0].tolist() == a.pbc.tolist()
        fixed = np.zeros(len(a), bool)
        for c in a.constraints:
            if isinstance(c, FixAtoms):
                fixed[c.index] = True
        assert d.fixed.tolist() == fixed.tolist()
        assert d.tags.tolist() == a.get_tags().tolist()
        assert int(d.frame_id) == i and int(d.natoms) == len(a)


def _oc20_pair(folder: Path, compress: bool) -> tuple[Path, list[tuple[int, int, float]]]:
    """An OC20 S2EF shard pair from the real toy relaxation: extxyz (optionally .xz) + txt sidecar."""
    src = OC20_TOY
    rows = [(1000 + i % 3, i, -2.5 - 0.01 * i) for i in range(101)]
    text = "".join(f"random{s},frame{f},{r!r}\n" for s, f, r in rows)
    if compress:
        ext = folder / "0.extxyz.xz"
        ext.write_bytes(lzma.compress(src.read_bytes()))
        (folder / "0.txt.xz").write_bytes(lzma.compress(text.encode()))
    else:
        ext = folder / "0.extxyz"
        ext.write_bytes(src.read_bytes())
        (folder / "0.txt").write_text(text)
    return ext, rows


@pytest.mark.parametrize("compress", [False, True])
def test_oc20_extxyz_pairs(tmp_path, compress, capsys):
    ext, rows = _oc20_pair(tmp_path, compress)
    assert detect_format(ext) == "oc20-extxyz"
    assert main(["data", "convert", str(ext), "-o", str(tmp_path / "total.h5")]) == 0
    assert "auto-detected oc20-extxyz" in capsys.readouterr().err
    convert([ext], tmp_path / "ads.h5", ConvertOptions(adsorption_energy=True, **QUIET))
    ref = _frames(OC20_TOY)
    total, ads = AtomsDataset(tmp_path / "total.h5"), AtomsDataset(tmp_path / "ads.h5")
    assert total.energy_convention == "total" and ads.energy_convention == "referenced"
    assert total.groups.tolist() == [s for s, _, _ in rows]
    for i in (0, 50, 100):
        a, t, d = ref[i], total[i], ads[i]
        sid, fid, e_ref = rows[i]
        assert int(t.group) == sid and int(t.frame_id) == fid
        assert float(t.ref_energy) == e_ref
        assert float(t.energy) == a.get_potential_energy()
        assert float(d.energy) == a.get_potential_energy() - e_ref
        assert t.tags.tolist() == a.get_tags().tolist()
        assert t.fixed.tolist() == [i in set(a.constraints[0].index) for i in range(len(a))]
        assert t.fixed.sum() == 18 and (t.tags == 0).sum() == 18   # subsurface atoms are the fixed ones


def test_oc20_sidecar_mismatch_is_an_error(tmp_path):
    ext, _ = _oc20_pair(tmp_path, False)
    lines = (tmp_path / "0.txt").read_text().splitlines()
    (tmp_path / "0.txt").write_text("\n".join(lines[:50]) + "\n")
    with pytest.raises(DataError, match=r"0\.txt: has 50 lines"):
        convert([ext], tmp_path / "o.h5", ConvertOptions(**QUIET))
    (tmp_path / "0.txt").write_text("random1,frame2,notanumber\n" * 101)
    with pytest.raises(DataError, match=r"0\.txt: line 1: cannot parse"):
        convert([ext], tmp_path / "o.h5", ConvertOptions(**QUIET))
    assert not (tmp_path / "o.h5").exists()


def _xyz(path: Path, frames: list[str]) -> Path:
    path.write_text("".join(frames))
    return path


def _frame(symbols=("O", "H", "H"), energy="-10.0", pos=None, forces=None, with_forces=True) -> str:
    pos = pos or [[0, 0, 0], [0, 0, 0.96], [0.93, 0, -0.24]]
    forces = forces or [[0.1, 0, 0], [-0.1, 0, 0], [0, 0, 0]]
    props = "species:S:1:pos:R:3" + (":forces:R:3" if with_forces else "")
    head = f'Properties={props}' + (f" energy={energy}" if energy is not None else "") + ' pbc="F F F"'
    rows = [f"{s} {p[0]} {p[1]} {p[2]}" + (" " + " ".join(map(str, f)) if with_forces else "")
            for s, p, f in zip(symbols, pos, forces)]
    return f"{len(rows)}\n{head}\n" + "\n".join(rows) + "\n"


BAD = {
    "nan_position": (_frame(pos=[[0, 0, 0], [0, "nan", 0.96], [0.93, 0, -0.24]]), "non-finite.*positions"),
    "inf_energy": (_frame(energy="inf"), "non-finite energy"),
    "nan_forces": (_frame(forces=[[0.1, 0, 0], [-0.1, "nan", 0], [0, 0, 0]]), "non-finite.*forces"),
    "unknown_element": (_frame(symbols=("O", "Xx", "H")), "unknown element symbol 'Xx'"),
    "missing_energy": (_frame(energy=None), "missing energy"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_frames_name_file_and_frame(tmp_path, case):
    bad, pattern = BAD[case]
    src = _xyz(tmp_path / f"{case}.xyz", [_frame(), _frame(), bad, _frame()])
    with pytest.raises(DataError, match=rf"{case}\.xyz: frame 2: {pattern}"):
        convert([src], tmp_path / "o.h5", ConvertOptions(**QUIET))
    assert not (tmp_path / "o.h5").exists()
    result = convert([src], tmp_path / "o.h5", ConvertOptions(skip_invalid=True, **QUIET))
    assert result.n_frames == 3 and result.n_skipped == 1 and "skipped 1 invalid" in result.summary()
    assert AtomsDataset(tmp_path / "o.h5").groups.tolist() == [0, 1, 3]


def test_forces_shape_mismatch(tmp_path):
    from data_tools.writer import Frame, validate_frame

    frame = Frame(numbers=np.array([8, 1, 1]), positions=np.zeros((3, 3)), energy=-1.0, forces=np.zeros((2, 3)))
    assert validate_frame(frame) == "forces shape (2, 3) does not match 3 atoms"
    src = _xyz(tmp_path / "mixed.xyz", [_frame(), _frame(with_forces=False)])
    with pytest.raises(DataError, match=r"mixed\.xyz: frame 1: fields \['forces'\] present in some frames but not"):
        convert([src], tmp_path / "o.h5", ConvertOptions(**QUIET))
    assert convert([src], tmp_path / "o.h5", ConvertOptions(skip_invalid=True, **QUIET)).n_skipped == 1


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    src = _xyz(tmp_path / "bad.xyz", [_frame(), _frame(symbols=("O", "Qq", "H"))])
    assert main(["data", "convert", str(src), "-o", str(tmp_path / "o.h5")]) == 2
    err = capsys.readouterr().err
    assert "bad.xyz: frame 1: unknown element symbol 'Qq'" in err and "Traceback" not in err
    assert main(["data", "convert", str(src), "-o", str(tmp_path / "o.h5"), "--skip-invalid"]) == 0
    assert "skipped 1 invalid frames" in capsys.readouterr().out


@pytest.mark.slow
def test_shards_and_workers_give_identical_output(tmp_path):
    srcs = [DATA / "acac" / "train_300K.xyz", DATA / "ethanol" / "train_first100.xyz"]
    seq = convert(srcs, tmp_path / "a" / "d.h5", ConvertOptions(shard_size=120, **QUIET))
    par = convert(srcs, tmp_path / "b" / "d.h5", ConvertOptions(shard_size=120, workers=2, **QUIET))
    names = [f"d_{i:04d}.h5" for i in range(5)]  # 500 acac + 100 ethanol frames in input order, cut every 120
    assert [p.name for p in seq.outputs] == [p.name for p in par.outputs] == names
    assert [ShardReader(p).n_frames for p in par.outputs] == [120] * 5
    for p, q in zip(seq.outputs, par.outputs):
        with ShardReader(p) as a, ShardReader(q) as b:
            rows_a, rows_b = a.raw_rows(0, a.n_frames), b.raw_rows(0, b.n_frames)
            assert rows_a.keys() == rows_b.keys()
            for path in rows_a:
                assert np.array_equal(rows_a[path], rows_b[path]), path
                assert a.h5[path].attrs["crc32"] == b.h5[path].attrs["crc32"]
            assert a.verify() == b.verify() == []
    one = convert(srcs, tmp_path / "c" / "d.h5", ConvertOptions(workers=2, **QUIET))
    assert one.outputs == [tmp_path / "c" / "d.h5"] and ShardReader(one.outputs[0]).n_frames == 600
    a, b = AtomsDataset(tmp_path / "a"), AtomsDataset(tmp_path / "b")
    assert len(a) == len(b) == 600
    for i in (0, 499, 500, len(a) - 1):
        assert float(a[i].energy) == float(b[i].energy) and a[i].z.tolist() == b[i].z.tolist()
    assert len(set(a.groups.tolist())) == len(a)  # per-frame groups are unique across inputs
    assert not list(tmp_path.glob("*/.tmp-*"))


@pytest.mark.slow
def test_interrupted_conversion_leaves_no_valid_file(tmp_path):
    src = tmp_path / "big.xyz"
    text = ACAC.read_text()
    src.write_text(text * 6)  # 3000 frames: a few seconds to convert
    out = tmp_path / "out" / "big.h5"
    cmd = [sys.executable, "-m", "sciml", "data", "convert", str(src), "-o", str(out), "--shard-size", "500"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.parent.glob(".tmp-*/*.h5")):
        time.sleep(0.02)
    time.sleep(0.3)
    assert proc.poll() is None, "conversion finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(out.parent.glob("*.h5"))  # nothing under a final name
    leftovers = [p for p in out.parent.rglob("*") if p.is_file()]
    assert leftovers and all(any(part.startswith(".tmp-") for part in p.relative_to(out.parent).parts)
                             for p in leftovers)
    with pytest.raises(DataError, match="no .h5 shards"):
        AtomsDataset(out.parent)
    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    ds = AtomsDataset(out.parent)
    assert len(ds) == 3000 and len(list(out.parent.glob("big_*.h5"))) == 6


def test_parallel_worker_errors_reach_the_caller(tmp_path):
    good = _xyz(tmp_path / "good.xyz", [_frame(), _frame()])
    bad = _xyz(tmp_path / "bad.xyz", [_frame(), _frame(energy="nan")])
    with pytest.raises(DataError, match=r"bad\.xyz: frame 1: non-finite energy"):
        convert([good, bad], tmp_path / "o.h5", ConvertOptions(workers=2, **QUIET))
    assert not list(tmp_path.glob("o*.h5")) and not list(tmp_path.glob(".tmp-*"))
    nof = _xyz(tmp_path / "noforces.xyz", [_frame(with_forces=False)])
    with pytest.raises(DataError, match=r"noforces\.xyz: arrays \['forces'\] differ"):
        convert([good, nof], tmp_path / "o.h5", ConvertOptions(workers=2, **QUIET))


ACAC = REPO / "examples" / "data" / "acac" / "train_300K.xyz"


def _frame_texts(path: Path) -> list[str]:
    """The frames of an extxyz file as texts (count line, comment line, one line per atom)."""
    lines = path.read_text().splitlines(keepends=True)
    frames, i = [], 0
    while i < len(lines):
        n = int(lines[i])
        frames.append("".join(lines[i:i + n + 2]))
        i += n + 2
    return frames


def _acac_inputs(folder: Path, n_inputs: int, repeat: int) -> list[Path]:
    """``n_inputs`` extxyz files of the real AcAc frames, each in another order (so a mix-up of inputs shows)."""
    frames = _frame_texts(ACAC)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n_inputs):
        shift = k * len(frames) // n_inputs
        paths.append(_xyz(folder / f"part{k}.xyz", (frames[shift:] + frames[:shift]) * repeat))
    return paths


def _assert_same_outputs(a: list[Path], b: list[Path]) -> None:
    assert [p.name for p in a] == [p.name for p in b]
    for p, q in zip(a, b):
        with ShardReader(p) as x, ShardReader(q) as y:
            assert x.n_frames == y.n_frames and x.n_atoms == y.n_atoms
            assert x.arrays == y.arrays
            rows_x, rows_y = x.raw_rows(0, x.n_frames), y.raw_rows(0, y.n_frames)
            for path in rows_x:
                assert np.array_equal(rows_x[path], rows_y[path]), path
            assert x.verify() == y.verify() == []


def _stages(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob(".tmp-*") if p.is_dir())


@pytest.mark.slow
def test_killed_multi_input_conversion_resumes(tmp_path):
    srcs = _acac_inputs(tmp_path / "in", 4, 2)  # 4 inputs of 1000 frames: about a second each
    out = tmp_path / "out" / "d.h5"
    cmd = [sys.executable, "-m", "sciml", "data", "convert", *map(str, srcs), "-o", str(out), "--shard-size", "700"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.parent.glob(".tmp-d.h5-*/in000000.json")):
        time.sleep(0.01)
    assert proc.poll() is None, "conversion finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(out.parent.glob("*.h5"))  # nothing under a final name
    assert len(_stages(out.parent)) == 1
    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    match = re.search(r"resuming: (\d+) of 4 inputs already converted", rerun.stderr)
    assert match and int(match.group(1)) >= 1, rerun.stderr
    clean = convert(srcs, tmp_path / "clean" / "d.h5", ConvertOptions(shard_size=700, **QUIET))
    resumed = sorted(out.parent.glob("d_*.h5"))
    assert clean.n_frames == 4000 and [p.name for p in resumed] == [f"d_{i:04d}.h5" for i in range(6)]
    _assert_same_outputs(clean.outputs, resumed)
    assert not _stages(out.parent)


@pytest.mark.slow
def test_stage_is_reused_only_for_the_same_inputs_and_options(tmp_path, monkeypatch, capsys):
    import data_tools.convert as conv

    srcs = _acac_inputs(tmp_path / "in", 3, 1)
    out = tmp_path / "o.h5"
    stream = conv._stream

    def interrupt_at_last_input(path, index, *args):
        if index == 2:
            raise KeyboardInterrupt
        return stream(path, index, *args)

    def interrupted(opts: ConvertOptions) -> Path:
        monkeypatch.setattr(conv, "_stream", interrupt_at_last_input)
        with pytest.raises(KeyboardInterrupt):
            convert(srcs, out, opts)
        monkeypatch.setattr(conv, "_stream", stream)
        assert not list(tmp_path.glob("*.h5"))
        (stage,) = _stages(tmp_path)
        assert sorted(p.name for p in stage.glob("in*")) == ["in000000.h5", "in000000.json", "in000001.h5",
                                                             "in000001.json"]
        return stage

    opts = ConvertOptions(**QUIET)
    first = interrupted(opts)
    assert "rerun the same command to resume" in capsys.readouterr().err
    # another option: another stage, the old one is removed
    second = interrupted(replace(opts, group_by="file"))
    err = capsys.readouterr().err
    assert second != first and f"removing stale staging folder {first.name}" in err and "resuming" not in err
    # a touched input: the stage is stale again
    st = srcs[0].stat()
    os.utime(srcs[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    convert(srcs, out, replace(opts, group_by="file"))
    err = capsys.readouterr().err
    assert f"removing stale staging folder {second.name}" in err and "resuming" not in err
    assert not _stages(tmp_path)
    out.unlink()
    # same inputs and options (workers do not matter): resumed, same data as a clean conversion
    interrupted(opts)
    capsys.readouterr()
    result = convert(srcs, out, replace(opts, workers=2))
    assert "resuming: 2 of 3 inputs already converted" in capsys.readouterr().err
    clean = convert(srcs, tmp_path / "clean" / "o.h5", opts)
    assert result.n_frames == clean.n_frames == 1500
    _assert_same_outputs(clean.outputs, result.outputs)
    assert not _stages(tmp_path)


def test_stage_in_use_is_refused(tmp_path):
    import fcntl

    from data_tools.convert import stage_key
    from sciml import __version__

    srcs = _acac_inputs(tmp_path / "in", 2, 1)
    stage = tmp_path / f".tmp-o.h5-{stage_key(srcs, 'ase', ConvertOptions(**QUIET), __version__)}"
    stage.mkdir()
    fd = os.open(stage / "lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(DataError, match="in use by another conversion"):
            convert(srcs, tmp_path / "o.h5", ConvertOptions(**QUIET))
        assert stage.is_dir() and not (tmp_path / "o.h5").exists()
    finally:
        os.close(fd)
    assert convert(srcs, tmp_path / "o.h5", ConvertOptions(**QUIET)).n_frames == 1000
