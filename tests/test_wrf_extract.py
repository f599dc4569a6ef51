"""`sciml wrf extract`: HDF5 column datasets from real WRF output, streaming statistics, CLI errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pytest

from data_tools.wrf.column_file import read_grid_signature, read_names, read_stats
from data_tools.wrf.extract import LEAKY, extract_columns
from data_tools.wrf.features import DEFAULT_INPUTS, DEFAULT_TARGETS
from data_tools.wrf.stats import RunningStats
from sciml.cli import main
from sciml.errors import DataError

CROP = Path(__file__).resolve().parents[1] / "examples" / "data" / "wrf_mskf_crop.nc"
#: (output times, south_north, west_east) and XTIME (minutes) of the bundled crop and of the full file in ../shared
LAYOUT = {"wrf_mskf_crop.nc": ((1, 24, 32), [960.0]),
          "wrf_mskf_tc_train.nc": ((5, 64, 64), [480.0, 720.0, 960.0, 1200.0, 1440.0])}


@pytest.fixture(scope="module", params=["bundled crop", pytest.param("shared file", marks=pytest.mark.slow)])
def mskf_columns(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Columns of the bundled crop, or of the full MSKF training file in ../shared (skipped where absent)."""
    if request.param == "bundled crop":
        src = CROP
    else:
        src = request.getfixturevalue("shared_dir") / "wrf_mskf" / "wrf_mskf_tc_train.nc"
    out = tmp_path_factory.mktemp("wrf") / "columns.h5"
    extract_columns([src], out, progress=False)
    return src, out


def test_rows_match_the_netcdf_file(mskf_columns: tuple[Path, Path]) -> None:
    src, out = mskf_columns
    (nt, ny, nx), xtime = LAYOUT[src.name]
    with h5py.File(out) as h5, netCDF4.Dataset(src) as nc:
        assert nc["T"].shape == (nt, 40, ny, nx)
        assert h5["inputs"].shape == (nt * ny * nx, 13, 40) and h5["inputs_2d"].shape == (nt * ny * nx, 3)
        assert h5["targets"].shape == (nt * ny * nx, 6, 40) and h5["targets_2d"].shape == (nt * ny * nx, 3)
        assert h5["inputs"].dtype == np.float32
        names = read_names(out)
        rng = np.random.default_rng(0)
        for row in rng.integers(0, h5["i"].shape[0], 25):
            i, j, t = int(h5["i"][row]), int(h5["j"][row]), int(h5["frame"][row])
            assert row == t * ny * nx + j * nx + i
            for f, name in enumerate(names["targets"]):
                np.testing.assert_array_equal(h5["targets"][row, f], nc[name][t, :, j, i])
            for f, name in enumerate(names["targets_2d"]):
                assert h5["targets_2d"][row, f] == nc[name][t, j, i]
            qv = names["inputs"].index("qv")
            np.testing.assert_array_equal(h5["inputs"][row, qv], nc["QVAPOR"][t, :, j, i])
            th = names["inputs"].index("th")
            np.testing.assert_allclose(h5["inputs"][row, th], nc["T"][t, :, j, i] + 300.0, rtol=1e-6)
            w = names["inputs"].index("w")
            np.testing.assert_allclose(h5["inputs"][row, w], 0.5 * (nc["W"][t, 1:, j, i] + nc["W"][t, :-1, j, i]),
                                       rtol=1e-6, atol=1e-7)
            times = nc["Times"][t].tobytes().decode()
            assert h5["frames/Times"][t].decode() == times
            assert np.datetime64(int(h5["time"][row]), "s") == np.datetime64(times.replace("_", "T"))
        assert h5["frames/XTIME"][:].tolist() == xtime
        assert h5["files"][:].astype(str).tolist() == [str(src)] and (h5["file"][:] == 0).all()
        assert h5["inputs"].attrs["units"][names["inputs"].index("p")] == "Pa"
        assert h5["targets_2d"].attrs["units"][names["targets_2d"].index("NCA")] == "s"
        assert h5.attrs["schema"] == "sciml-wrf-columns" and h5.attrs["schema_version"] == 1
        source = json.loads(h5.attrs["source"])
        assert source["CU_PHYSICS"] == 11 and "V4.7.1" in source["TITLE"]


def test_streaming_statistics_equal_a_full_pass(mskf_columns: tuple[Path, Path]) -> None:
    _, out = mskf_columns
    with h5py.File(out) as h5:
        for block in ("inputs", "targets"):
            x = h5[block][:].astype(np.float64)
            s = read_stats(out, block)
            np.testing.assert_allclose(s["mean"], x.mean(axis=0), rtol=1e-9, atol=1e-12 * np.abs(x).max())
            np.testing.assert_allclose(s["std"], x.std(axis=0), rtol=1e-7, atol=1e-12 * np.abs(x).max())
            np.testing.assert_array_equal(s["min"], x.min(axis=0))
            np.testing.assert_array_equal(s["absmax"], np.abs(x).max(axis=0))
            assert (s["count"] == x.shape[0]).all()
            pooled = read_stats(out, block, per_level=False)
            np.testing.assert_allclose(pooled["std"], x.transpose(1, 0, 2).reshape(x.shape[1], -1).std(axis=1),
                                       rtol=1e-7)
        x2 = h5["targets_2d"][:].astype(np.float64)
        np.testing.assert_array_equal(read_stats(out, "targets_2d", per_level=False)["max"], x2.max(axis=0))


def test_grid_signature_stored(mskf_columns: tuple[Path, Path]) -> None:
    _, out = mskf_columns
    sig = read_grid_signature(out)
    assert sig["nz"] == 40 and len(sig["ZNW"]) == 41 and sig["DT"] == 45.0 and sig["DX"] == 9000.0
    with h5py.File(out) as h5:
        np.testing.assert_allclose(h5["grid/ZNU"][:], sig["ZNU"])
        assert abs(h5["grid"].attrs["P_TOP"] - 2594.08) < 0.01


def test_running_stats_is_numerically_stable() -> None:
    rng = np.random.default_rng(1)
    x = 1e8 + rng.normal(size=(10_000, 3))  # a naive sum-of-squares variance loses every digit here
    s = RunningStats((3,))
    for batch in np.array_split(x, 37):
        s.update(batch)
    np.testing.assert_allclose(s.std, x.std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(s.mean, x.mean(axis=0), rtol=1e-14)
    a, b = RunningStats((3,)), RunningStats((3,))
    a.update(x[:10])
    b.update(x[10:])
    a.merge(b)
    np.testing.assert_allclose(a.std, x.std(axis=0), rtol=1e-6)


def test_time_chunks_and_files_give_identical_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    extract_columns([CROP, CROP], one, time_chunk=1, progress=False)
    assert "output time 2007-09-01T16:00:00 of" in capsys.readouterr().err  # the same time twice is flagged
    extract_columns([CROP, CROP], two, time_chunk=2, progress=False)
    with h5py.File(one) as a, h5py.File(two) as b:
        np.testing.assert_array_equal(a["inputs"][:], b["inputs"][:])
        np.testing.assert_array_equal(a["file"][:], np.repeat([0, 1], 32 * 24))
        np.testing.assert_array_equal(a["i"][:32 * 24], np.tile(np.arange(32), 24))
        np.testing.assert_array_equal(a["j"][:32 * 24], np.repeat(np.arange(24), 32))
        np.testing.assert_array_equal(a["inputs"][:768], a["inputs"][768:])
    for block, per_level in (("inputs", True), ("targets_2d", False)):
        sa, sb = read_stats(one, block, per_level), read_stats(two, block, per_level)
        for key in ("mean", "std", "min", "max"):
            np.testing.assert_allclose(sa[key], sb[key], rtol=1e-10, atol=1e-20)


def test_default_inputs_do_not_leak_targets() -> None:
    # written out here, independently of LEAKY (which is built from DEFAULT_TARGETS): WRF cumulus-scheme outputs
    cumulus_outputs = {"RTHCUTEN", "RQVCUTEN", "RQCCUTEN", "RQRCUTEN", "RQICUTEN", "RQSCUTEN", "RUCUTEN", "RVCUTEN",
                       "PRATEC", "RAINCV", "RAINC", "NCA", "CUTOP", "CUBOT", "HTOP", "HBOT"}
    assert not set(DEFAULT_INPUTS) & (LEAKY | cumulus_outputs)
    assert set(DEFAULT_TARGETS) <= LEAKY and cumulus_outputs <= LEAKY


def test_cli_extract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crop.h5"
    assert main(["wrf", "extract", str(CROP), "-o", str(out), "-q", "--inputs", "t,qv,p,HFX",
                 "--targets", "RTHCUTEN,PRATEC"]) == 0
    assert "768 columns" in capsys.readouterr().out
    assert read_names(out) == {"inputs": ["t", "qv", "p"], "inputs_2d": ["HFX"], "targets": ["RTHCUTEN"],
                               "targets_2d": ["PRATEC"]}
    assert main(["wrf", "extract", str(CROP), "-o", str(out), "--inputs", "theta"]) == 2
    assert "unknown derived quantity theta" in capsys.readouterr().err
    assert main(["wrf", "extract", str(CROP), "-o", str(out), "--inputs", "z_w"]) == 2
    assert "use the mass-level versions" in capsys.readouterr().err
    assert main(["wrf", "extract", str(CROP), "-o", str(out), "-q", "--inputs", "t,NCA"]) == 2
    assert "NCA requested both as input and as target" in capsys.readouterr().err
    assert main(["wrf", "extract", str(CROP), "-o", str(out), "-q", "--inputs", "t,NCA", "--targets", "PRATEC"]) == 0
    assert "NCA are cumulus outputs of the same output time and leak the target" in capsys.readouterr().err


def test_cli_missing_variables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tibet = CROP.parent / "wrf_samples" / "salem_wrf_d01_t0.nc"   # 1 output time x 8 x 10 columns, 27 levels
    bad = tmp_path / "tibet.h5"
    assert main(["wrf", "extract", str(tibet), "-o", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert "salem_wrf_d01_t0.nc: missing WRF variable(s) W0AVG" in err
    assert "+:h:0:W0AVG,RTHCUTEN,RQVCUTEN,RQCCUTEN,RQRCUTEN,RQICUTEN,RQSCUTEN,PRATEC,NCA,RAINCV" in err
    assert not bad.exists() and list(tmp_path.glob(".tmp-*")) == []  # atomic: nothing half-written
    assert main(["wrf", "extract", str(tibet), "-o", str(bad), "-q", "--inputs", "t,qv,PBLH", "--targets", ""]) == 0
    with h5py.File(bad) as h5:
        assert h5["inputs"].shape == (1 * 80, 2, 27) and h5["targets"].shape == (1 * 80, 0, 27)


def test_non_finite_value_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.nc"
    shutil.copy(CROP, broken)
    with netCDF4.Dataset(broken, "a") as d:
        d["QVAPOR"][0, 3, 5, 7] = np.nan
    with pytest.raises(DataError, match=r"broken.nc: qv has non-finite values at 2007-09-01T16:00:00"):
        extract_columns([broken], tmp_path / "x.h5", progress=False)
    assert not (tmp_path / "x.h5").exists()


def test_variable_missing_in_one_file_named(tmp_path: Path) -> None:
    import xarray as xr

    partial = tmp_path / "no_w0avg.nc"
    with xr.open_dataset(CROP, decode_times=False, mask_and_scale=False) as ds:
        ds.drop_vars("W0AVG").to_netcdf(partial)
    with pytest.raises(DataError) as info:
        extract_columns([CROP, partial], tmp_path / "x.h5", progress=False)
    msg = str(info.value)
    assert msg.startswith(f"{partial}: missing WRF variable(s) W0AVG") and "+:h:0:W0AVG" in msg
    extract_columns([CROP, partial], tmp_path / "x.h5", inputs=["t", "qv"], progress=False)  # W0AVG not needed
