"""WRF reader: diagnostics against wrf-python's own results and physical checks on real WRF files (crops shipped in
examples/data; the full MSKF file in ../shared where present)."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from data_tools.wrf import grid_signature, open_wrf, require
from data_tools.wrf.requirements import iofields_lines
from sciml.errors import DataError


@pytest.fixture(scope="module")
def samples(repo_dir: Path) -> Path:
    """Crops of three third-party WRF files (examples/data/wrf_samples/README.md)."""
    return repo_dir / "examples" / "data" / "wrf_samples"


@pytest.fixture(scope="module")
def mskf_file(shared_dir: Path) -> Path:
    return shared_dir / "wrf_mskf" / "wrf_mskf_tc_train.nc"


def _maxrel(a: np.ndarray, b: np.ndarray) -> float:
    """Largest relative difference; |b| below 1 (e.g. the sea-level height of z_w[0]) counts as 1."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0)))


def test_matches_wrf_python_diagnostics(samples: Path) -> None:
    ds = open_wrf(samples / "wrfpython_ci_test_crop.nc").isel(Time=0)
    ref = xr.open_dataset(samples / "wrfpython_ci_result_crop.nc")
    assert _maxrel(ds["p"].values / 100.0, ref["pressure"].values) < 1e-3  # wrf-python pressure is in hPa
    assert _maxrel(ds["th"].values, ref["theta"].values) < 1e-3
    assert _maxrel(ds["t"].values, ref["tk"].values) < 1e-3
    assert _maxrel(ds["z"].values, ref["z"].values) < 1e-3
    assert _maxrel(ds["z_w"].values, ref["zstag"].values) < 1e-3
    for ours, theirs in (("u", "ua"), ("v", "va"), ("w", "wa")):
        np.testing.assert_allclose(ds[ours].values, ref[theirs].values, atol=1e-4)
    # wrf-python's RH uses qvs = 0.622 es / (p - 0.378 es); WRF/MSKF's qvs = 0.622 es / (p - es) is larger,
    # so our RH is lower by the factor (p - es) / (p - 0.378 es): at most a few percent in the tropics.
    rh, ref_rh = 100.0 * ds["rh"].values, ref["rh"].values
    assert np.all(rh <= ref_rh + 1e-3)
    assert np.all(rh >= 0.96 * ref_rh - 1e-3)


def test_staggered_shapes_and_units(samples: Path) -> None:
    ds = open_wrf(samples / "wrfpython_ci_test_crop.nc")
    nt, nz, ny, nx = ds["T"].shape
    assert ds["U"].shape == (nt, nz, ny, nx + 1) and ds["V"].shape == (nt, nz, ny + 1, nx)
    assert ds["W"].shape == ds["PH"].shape == ds["z_w"].shape == (nt, nz + 1, ny, nx)
    for name in ("p", "th", "pi", "t", "z", "dz8w", "u", "v", "w", "rho", "qvs", "rh", "qv"):
        assert ds[name].shape == (nt, nz, ny, nx), name
        assert ds[name].attrs["units"], name
    assert ds["p"].attrs["units"] == "Pa" and ds["t"].attrs["units"] == "K" and ds["rho"].attrs["units"] == "kg m-3"
    assert ds["T"].attrs["units"] == "K"  # WRF's own attributes are kept
    assert ds["p"].chunks is not None  # lazy and dask-chunked


def test_tibet_full_columns(samples: Path) -> None:
    ds = open_wrf(samples / "salem_wrf_d01_t0.nc").compute()
    assert ds.sizes["bottom_top"] == 27 and ds.sizes["south_north"] * ds.sizes["west_east"] == 80
    for name in ("PBLH", "HFX", "UST"):
        assert ds[name].dims == ("Time", "south_north", "west_east")
    dz = ds["dz8w"].values
    assert dz.min() > 0 and 40.0 < dz.min() < 60.0  # lowest layer about 50 m
    # top w level near P_TOP = 5000 Pa: the column is complete
    assert float(ds["p"].isel(bottom_top=-1).max()) < 8000.0
    np.testing.assert_allclose(ds["p"].values, ds["p_hyd"].values, rtol=3e-3)
    _check_hydrostatic(ds)


@pytest.fixture(params=["bundled crop", "shared file"])
def frame_16h(request: pytest.FixtureRequest, repo_dir: Path) -> xr.Dataset:
    """The 16 h output time of MSKF run A: the bundled crop (768 columns) or the shared file (4,096 columns)."""
    if request.param == "bundled crop":
        return open_wrf(repo_dir / "examples" / "data" / "wrf_mskf_crop.nc").isel(Time=0).compute()
    shared = request.getfixturevalue("shared_dir")
    return open_wrf(shared / "wrf_mskf" / "wrf_mskf_tc_train.nc").isel(Time=2).compute()


def test_mskf_moisture_budget(frame_16h: xr.Dataset) -> None:
    ds = frame_16h
    assert ds.sizes["bottom_top"] == 40 and str(ds["time"].values) == "2007-09-01T16:00:00"
    q = sum(ds[n] for n in ("RQVCUTEN", "RQCCUTEN", "RQRCUTEN", "RQICUTEN", "RQSCUTEN"))
    column = (q * ds["dp_dry"]).sum("bottom_top").values / 9.81  # kg m-2 s-1 == mm s-1
    deep = (ds["NCA"].values >= 0.5 * float(ds.attrs["DT"])) & (ds["PRATEC"].values > 0)
    ratio = column[deep] / ds["PRATEC"].values[deep]
    assert deep.sum() > 300
    assert -0.991 < np.median(ratio) < -0.979  # data README (full 16 h frame): median -0.985, 5-95 % -0.991..-0.979
    lo, hi = np.percentile(ratio, [5, 95])
    assert -0.995 < lo and hi < -0.975
    np.testing.assert_allclose(ds["dp_dry"].sum("bottom_top"), ds["MU"] + ds["MUB"], rtol=1e-5)
    _check_hydrostatic(ds.expand_dims("Time"))


def _check_hydrostatic(ds: xr.Dataset) -> None:
    """-dp/dz = rho g between mass levels: ties p, z and rho together (non-hydrostatic deviations are small)."""
    p, z, rho = ds["p"].values, ds["z"].values, ds["rho"].values
    dpdz = -(p[:, 1:] - p[:, :-1]) / (z[:, 1:] - z[:, :-1])
    err = np.abs(dpdz / (9.81 * np.sqrt(rho[:, 1:] * rho[:, :-1])) - 1.0)
    assert np.median(err) < 3e-3 and np.percentile(err, 95) < 2e-2


def test_several_files_concatenate_with_source_index(repo_dir: Path) -> None:
    crop = repo_dir / "examples" / "data" / "wrf_mskf_crop.nc"
    ds = open_wrf([crop, crop])
    assert ds.sizes["Time"] == 2 and ds["source_file"].values.tolist() == [0, 1]
    assert ds.attrs["sciml_files"] == [str(crop), str(crop)]
    np.testing.assert_array_equal(ds["t"].isel(Time=0).values, ds["t"].isel(Time=1).values)


def test_different_grids_refused_by_name(samples: Path, repo_dir: Path) -> None:
    tibet = samples / "salem_wrf_d01_t0.nc"
    crop = repo_dir / "examples" / "data" / "wrf_mskf_crop.nc"
    with pytest.raises(DataError, match=r"salem_wrf_d01_t0\.nc has another grid than .*wrf_mskf_crop\.nc"
                                        r".*nz: 40 vs 27"):
        open_wrf([crop, tibet])


def test_vertical_grid_signature(repo_dir: Path) -> None:
    sig = grid_signature(open_wrf(repo_dir / "examples" / "data" / "wrf_mskf_crop.nc"))
    assert sig["nz"] == 40 and len(sig["ZNU"]) == 40 and len(sig["ZNW"]) == 41
    assert sig["ZNW"][0] == 1.0 and sig["ZNW"][-1] == 0.0
    assert sig["DX"] == 9000.0 and sig["DT"] == 45.0 and abs(sig["P_TOP"] - 2594.08) < 0.01


def test_missing_variables_error_says_how_to_get_them(samples: Path) -> None:
    path = samples / "wrfpython_ci_test_crop.nc"
    ds = open_wrf(path)
    with pytest.raises(DataError) as info:
        require(str(path), ds.variables, ["th", "PBLH", "RTHCUTEN", "NCA"])
    msg = str(info.value)
    assert str(path) in msg and "+:h:0:PBLH,RTHCUTEN,NCA" in msg
    assert "iofields_filename" in msg and "ignore_iofields_warning" in msg
    assert "Restart-only" in msg and "PBLH" not in msg.split("Restart-only")[1].split("\n")[0]
    require(str(path), ds.variables, ["th", "rho", "HGT"])  # present: no error


def test_iofields_lines_respect_wrf_limit() -> None:
    names = [f"VARIABLE_{k:03d}" for k in range(60)]
    lines = iofields_lines(names)
    assert len(lines) > 1 and all(len(line) <= 256 and line.startswith("+:h:0:") for line in lines)
    assert [n for line in lines for n in line[6:].split(",")] == names


def test_non_wrf_file_refused(samples: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="wrfpython_ci_result_crop.nc: not a wrfout file"):
        open_wrf(samples / "wrfpython_ci_result_crop.nc")
    bad = tmp_path / "broken.nc"
    bad.write_bytes(b"not netcdf at all")
    with pytest.raises(DataError, match="broken.nc: cannot be read as netCDF"):
        open_wrf(bad)
    with pytest.raises(DataError, match="nothing.nc: no such file"):
        open_wrf(tmp_path / "nothing.nc")


def test_bundled_crop_matches_source(mskf_file: Path, repo_dir: Path) -> None:
    crop = netCDF4.Dataset(repo_dir / "examples" / "data" / "wrf_mskf_crop.nc")
    with netCDF4.Dataset(mskf_file) as src, crop:
        np.testing.assert_array_equal(crop["RTHCUTEN"][0], src["RTHCUTEN"][2, :, 20:44, 16:48])
        np.testing.assert_array_equal(crop["U"][0], src["U"][2, :, 20:44, 16:49])
        assert crop.getncattr("WEST-EAST_GRID_DIMENSION") == 33 and crop.CU_PHYSICS == 11
