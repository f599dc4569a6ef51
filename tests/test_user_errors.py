"""What a demanding user does wrong, and what sciml must do then: never destroy an input or a file it did not write,
stop with a one-line error (rc 2, no traceback, no staging left) on full disks, unwritable or odd output paths,
binary input, NaN WRF states, coincident atoms, periodic structures without a cell, flipped bits and absurdly dense
input; report relaxations that did not converge; stream `sciml eval`."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ase.io
import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ACAC = REPO / "examples" / "data" / "acac" / "train_300K.xyz"
CROP = REPO / "examples" / "data" / "wrf_mskf_crop.nc"
MLP = REPO / "examples" / "pretrained" / "mskf-mlp.pt"
TDN = REPO / "examples" / "pretrained" / "acac-tdn.pt"


def sciml(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """The CLI in a subprocess (a crash shows as a negative return code)."""
    return subprocess.run([sys.executable, "-m", "sciml", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})


def refused(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]


def no_staging(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A small tmpfs at ``path`` (needs mount rights: skipped where there are none)."""
    path.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                                        capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


# -- data loss ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_output_that_is_an_input_is_refused(tmp_path) -> None:
    xyz, nc = tmp_path / "a.xyz", tmp_path / "x.nc"
    shutil.copy(ACAC, xyz)
    shutil.copy(CROP, nc)
    refused(sciml("data", "convert", xyz, "-o", xyz, "--overwrite"), "it is an input of this command")
    refused(sciml("wrf", "extract", nc, "-o", nc, "--overwrite", "-q"), "it is an input of this command")
    refused(sciml("wrf", "infer", "--checkpoint", MLP, nc, "-o", nc, "--overwrite", "-q"),
            "it is an input of this command")
    refused(sciml("relax", "--checkpoint", TDN, xyz, "-o", xyz), "it is an input of this command")
    assert xyz.read_bytes() == ACAC.read_bytes() and nc.read_bytes() == CROP.read_bytes()


@pytest.mark.slow
def test_a_file_the_command_did_not_write_is_kept_unless_overwrite(tmp_path) -> None:
    precious = {name: tmp_path / name for name in ("p.h5", "q.h5", "r.nc")}
    for path in precious.values():
        path.write_text("precious\n")
    refused(sciml("data", "convert", ACAC, "-o", precious["p.h5"]), "was not written by sciml data convert")
    refused(sciml("wrf", "extract", CROP, "-o", precious["q.h5"], "-q"), "was not written by sciml wrf extract")
    refused(sciml("wrf", "infer", "--checkpoint", MLP, CROP, "-o", precious["r.nc"], "-q"),
            "was not written by sciml wrf infer")
    assert all(p.read_text() == "precious\n" for p in precious.values())
    # its own earlier output is replaced without asking; another tool's needs --overwrite
    assert sciml("wrf", "extract", CROP, "-o", tmp_path / "c.h5", "-q").returncode == 0
    assert sciml("wrf", "extract", CROP, "-o", tmp_path / "c.h5", "-q").returncode == 0
    refused(sciml("data", "convert", ACAC, "-o", tmp_path / "c.h5"), "was not written by sciml data convert")
    assert sciml("data", "convert", ACAC, "-o", precious["p.h5"], "--overwrite").returncode == 0
    assert h5py.is_hdf5(precious["p.h5"])


@pytest.mark.slow
def test_a_full_disk_is_a_clear_error_and_frees_its_staging(tmp_path) -> None:
    with tmpfs(tmp_path / "small", "400k") as small:
        result = sciml("data", "convert", ACAC, "-o", small / "out.h5")
        refused(result, f"no space left on {small}")
        assert list(small.iterdir()) == []  # staging removed: the disk is free again
        assert shutil.disk_usage(small).used < 64 << 10


def test_too_little_free_space_is_refused_before_hdf5_writes(tmp_path, monkeypatch) -> None:
    """Where no tmpfs can be mounted: the writer's free-space check, with the file system reporting 1 MiB free."""
    import collections

    from data_tools import writer
    from data_tools.convert import ConvertOptions, convert
    from sciml.errors import DataError

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(writer.shutil, "disk_usage", lambda path: usage(1 << 30, (1 << 30) - (1 << 20), 1 << 20))
    with pytest.raises(DataError, match=f"no space left on {tmp_path}.*needs about .* MiB more, 1.0 MiB are free"):
        convert([ACAC], tmp_path / "out.h5", ConvertOptions(progress=False))
    assert list(tmp_path.iterdir()) == []


# -- silent wrong answers ----------------------------------------------------------------------------------------
def nan_wrfout(tmp_path: Path) -> Path:
    import netCDF4

    path = tmp_path / "nan.nc"
    shutil.copy(CROP, path)
    with netCDF4.Dataset(path, "r+") as nc:
        t = nc["T"][:]
        t[0, 5, 10, 7] = np.nan  # level 5 of the column west_east 7, south_north 10
        nc["T"][:] = t
    return path


@pytest.mark.slow
def test_nan_in_the_wrf_state_is_refused_or_masked(tmp_path) -> None:
    import netCDF4

    wrfout = nan_wrfout(tmp_path)
    for cmd in (["infer", "--checkpoint", MLP, wrfout, "-o", tmp_path / "s.nc", "-q"],
                ["eval", "--checkpoint", MLP, wrfout, "--json", "-q"]):
        refused(sciml("wrf", *cmd), "output time 0 (2007-09-01T16:00:00): non-finite inputs in 1 column(s): t at "
                                    "column (i=7, j=10)")
    assert not (tmp_path / "s.nc").exists()
    assert sciml("wrf", "infer", "--checkpoint", MLP, wrfout, "-o", tmp_path / "s.nc", "-q",
                 "--mask-nonfinite").returncode == 0
    with netCDF4.Dataset(tmp_path / "s.nc") as nc:
        assert nc.getncattr("sciml_masked_columns") == 1
        prob = nc["TRIGGER_PROB"][0].filled(np.nan)
        assert np.isnan(prob[10, 7]) and np.isfinite(np.delete(prob.ravel(), 10 * prob.shape[1] + 7)).all()
    import json

    report = json.loads(sciml("wrf", "eval", "--checkpoint", MLP, wrfout, "--json", "-q", "--mask-nonfinite").stdout)
    assert report["masked_columns"] == 1 and report["columns"] == 24 * 32 - 1


@pytest.mark.slow
def test_coincident_atoms_and_a_periodic_structure_without_cell_are_named(tmp_path) -> None:
    from ase import Atoms

    from sciml.calculators import MLIPCalculator
    from sciml.errors import DataError

    calc = MLIPCalculator.from_checkpoint(TDN, dtype="float64")
    atoms = ase.io.read(str(ACAC), 0)
    atoms.positions[3] = atoms.positions[2]
    atoms.calc = calc
    with pytest.raises(DataError, match=r"atoms 2 \(C\) and 3 \(O\) are 0 Angstrom apart"):
        atoms.get_potential_energy()
    periodic = Atoms("CO", positions=[[0, 0, 0], [1.13, 0, 0]], pbc=True)
    periodic.calc = calc
    with pytest.raises(DataError, match="periodic along xyz but the cell .* has no volume"):
        periodic.get_forces()
    ase.io.write(str(tmp_path / "bad.xyz"), atoms)
    refused(sciml("relax", "--checkpoint", TDN, tmp_path / "bad.xyz", "-o", tmp_path / "r.xyz"),
            "atoms 2 (C) and 3 (O) are 0 Angstrom apart")


@pytest.mark.slow
def test_a_flipped_bit_is_refused_when_read(tmp_path) -> None:
    from data_tools.convert import ConvertOptions, convert
    from data_tools.dataset import AtomsDataset
    from sciml.errors import DataError

    h5 = convert([ACAC], tmp_path / "acac.h5", ConvertOptions(progress=False)).outputs[0]
    with h5py.File(h5, "r+") as f:
        f["atoms/positions"][5000, 1] += np.float32(1e-3)  # atom 5000: frame 333
    with pytest.raises(DataError, match=r"acac.h5: /atoms/positions rows 0:7500 \(frames 0:500\) fail their checksum"):
        AtomsDataset(h5)[333]
    refused(sciml("eval", "--checkpoint", TDN, "--data", h5, "-q"), "/atoms/positions rows 0:7500")


def test_absurdly_dense_input_is_refused_before_any_edge_is_built() -> None:
    from ase import Atoms

    from sciml.calculators import MLIPCalculator
    from sciml.errors import DataError

    grid = np.stack(np.meshgrid(*[np.arange(10) * 0.3] * 3, indexing="ij"), -1).reshape(-1, 3)
    dense = Atoms("C1000", positions=grid, cell=[3.0] * 3, pbc=True)  # 37 atoms per cubic Angstrom
    dense.calc = MLIPCalculator.from_checkpoint(TDN)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataError, match=r"about 19,3\d\d,\d\d\d neighbour pairs within 5 Angstrom for 1000 atoms"):
        dense.get_potential_energy()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # kB: nothing large was built


# -- clear errors and exit codes -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_bad_outputs_and_binary_input_are_refused_before_work(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir.h5").mkdir()
    refused(sciml("data", "convert", ACAC, "-o", tmp_path / "file" / "x.h5"), "file is a file, not a directory")
    refused(sciml("data", "convert", ACAC, "-o", tmp_path / "dir.h5"), "is a directory; give a file name")
    binary = tmp_path / "binary.xyz"
    binary.write_bytes(bytes(range(256)) * 64)
    refused(sciml("data", "convert", binary, "-o", tmp_path / "b.h5"), "binary.xyz: frame 0: not a text file")
    assert no_staging(tmp_path) and not (tmp_path / "b.h5").exists()
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        refused(sciml("data", "convert", ACAC, "-o", ro / "x.h5"), "read-only file system")


@pytest.mark.slow
def test_relax_reports_non_convergence_and_refuses_bad_arguments(tmp_path) -> None:
    mol = tmp_path / "mol.xyz"
    ase.io.write(str(mol), ase.io.read(str(ACAC), 0))
    result = sciml("relax", "--checkpoint", TDN, mol, "-o", tmp_path / "r.xyz", "--steps", "2")
    assert result.returncode == 3 and "not converged" in result.stderr
    assert (tmp_path / "r.xyz").is_file() and (tmp_path / "r_summary.json").is_file()
    refused(sciml("relax", "--checkpoint", TDN, mol, "-o", tmp_path / "s.xyz", "--fmax", "-1"), "--fmax must be > 0")
    refused(sciml("relax", "--checkpoint", TDN, mol, "-o", tmp_path / "s.xyz", "--steps", "0"), "--steps must be")


@pytest.mark.slow
def test_eval_streams_and_prints_integer_counts(tmp_path) -> None:
    import weakref

    from potential_helpers import write_checkpoint

    from sciml.calculators import MLIPCalculator
    from sciml.potential.evaluate import evaluate, labelled_frames

    ckpt = write_checkpoint(tmp_path / "small.pt", [1, 6, 8])
    total, stream = labelled_frames(ACAC)
    assert total is None and not isinstance(stream, list)  # extxyz: parsed as it is consumed
    alive: list[weakref.ref] = []
    most = 0

    def tracked():
        nonlocal most
        for item in stream:
            alive.append(weakref.ref(item))
            most = max(most, sum(r() is not None for r in alive))
            yield item

    calc = MLIPCalculator.from_checkpoint(ckpt)
    result = evaluate(calc.model, tracked(), calc.inputs, max_atoms=150)
    # at most the batch being evaluated (10 molecules of 15 atoms) and the next one being gathered are alive
    assert result.metrics["n_frames"] == 500 and most <= 21, most
    out = sciml("eval", "--checkpoint", ckpt, "--data", ACAC)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "n_frames                     500\n" in out.stdout  # integers as integers, not 5e+02
    assert "n_force_components           22500\n" in out.stdout
    assert "frames/s" in out.stdout and "sciml eval:" in out.stderr  # rate, and a progress bar
