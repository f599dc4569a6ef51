"""MSKF surrogate on wrfout files: offline inference output, grid refusal, missing-field errors (CLI level)."""

from __future__ import annotations

import json

import netCDF4
import numpy as np
import pytest
import torch
from mskf_helpers import write_checkpoint

from sciml.cli import main
from sciml.mskf.task import MSKFTask

CROP = "examples/data/wrf_mskf_crop.nc"
DT = 45.0


@pytest.fixture(scope="module")
def checkpoint(repo_dir, tmp_path_factory):
    """An untrained small surrogate whose normalisation is fitted on the crop, saved as ``sciml train`` saves it."""
    from data_tools.wrf.extract import extract_columns

    tmp = tmp_path_factory.mktemp("mskf_wrf")
    extract_columns([repo_dir / CROP], tmp / "cols.h5", progress=False)
    task = MSKFTask({"path": str(tmp / "cols.h5"), "val_frames": 0, "test_frames": 0, "batch_size": 64},
                    {"hidden": 8, "layers": 1, "n_levels": 0},
                    {"trigger_weight": 1.0, "regression_weight": 1.0, "regression": "mse"})
    torch.manual_seed(3)
    model = task.build_model(task.datasets()[0])
    return write_checkpoint(tmp / "model.pt", task, model)


def test_infer_writes_wrf_shaped_fields_with_wrf_attributes(repo_dir, checkpoint, tmp_path, capsys):
    out = tmp_path / "pred.nc"
    assert main(["wrf", "infer", "--checkpoint", str(checkpoint), str(repo_dir / CROP), "-o", str(out), "-q"]) == 0
    assert "wrote" in capsys.readouterr().out
    with netCDF4.Dataset(repo_dir / CROP) as src, netCDF4.Dataset(out) as nc:
        assert nc.Conventions == "CF-1.8" and nc.DT == src.DT and nc.CU_PHYSICS == 11
        assert nc["Times"][:].tobytes() == src["Times"][:].tobytes()
        for name in ("RTHCUTEN", "RQVCUTEN", "RQCCUTEN", "RQRCUTEN", "RQICUTEN", "RQSCUTEN", "W0AVG", "PRATEC",
                     "RAINCV", "NCA"):
            assert nc[name].dimensions == src[name].dimensions and nc[name].shape == src[name].shape
            assert nc[name].description == src[name].description and nc[name].MemoryOrder == src[name].MemoryOrder
            assert nc[name].units == (src[name].units or "s")  # WRF leaves NCA's unit empty
        prob = nc["TRIGGER_PROB"][0]
        off = prob <= 0.5
        assert 0 < off.sum() < off.size  # an untrained model: some columns each way
        assert np.all(nc["RTHCUTEN"][0][:, off] == 0) and np.all(nc["PRATEC"][0][off] == 0)
        assert np.all(nc["PRATEC"][:] >= 0) and np.all(np.remainder(nc["NCA"][:], DT) == 0)
        np.testing.assert_allclose(nc["RAINCV"][:], nc["PRATEC"][:] * DT, rtol=1e-6)
        # W0AVG: the hook's running-mean update reproduces the file's W0AVG (inverted and re-applied)
        np.testing.assert_allclose(nc["W0AVG"][:], src["W0AVG"][:], atol=1e-5)
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize("name,levels", [("wrfpython_ci_test_crop.nc", 14), ("salem_wrf_d01_t0.nc", 27)])
def test_files_on_another_vertical_grid_are_refused(repo_dir, checkpoint, tmp_path, capsys, name, levels):
    path = repo_dir / "examples" / "data" / "wrf_samples" / name
    for cmd in (["infer", "-o", str(tmp_path / "x.nc")], ["eval"]):
        assert main(["wrf", *cmd, "--checkpoint", str(checkpoint), str(path), "-q"]) == 2
        err = capsys.readouterr().err
        assert name in err and f"nz: 40 vs {levels}" in err and "training vertical grid" in err
    assert not (tmp_path / "x.nc").exists()


def test_eval_names_the_missing_mskf_fields(repo_dir, checkpoint, tmp_path, capsys):
    dropped = {"RTHCUTEN", "RQVCUTEN", "NCA"}
    copy = tmp_path / "no_tendencies.nc"
    with netCDF4.Dataset(repo_dir / CROP) as src, netCDF4.Dataset(copy, "w") as dst:
        dst.setncatts({k: src.getncattr(k) for k in src.ncattrs()})
        for dim, d in src.dimensions.items():
            dst.createDimension(dim, None if d.isunlimited() else len(d))
        for name, var in src.variables.items():
            if name not in dropped:
                v = dst.createVariable(name, var.datatype, var.dimensions)
                v.setncatts({k: var.getncattr(k) for k in var.ncattrs() if k != "_FillValue"})
                v[:] = var[:]
    assert main(["wrf", "eval", "--checkpoint", str(checkpoint), str(copy), "-q"]) == 2
    err = capsys.readouterr().err
    assert str(copy) in err and "RTHCUTEN" in err and "RQVCUTEN" in err and "NCA" in err
    assert "+:h:0:" in err and "RQCCUTEN," not in err  # only what is missing is listed


@pytest.mark.slow
def test_eval_reports_trigger_and_r2_by_wrf_name(repo_dir, checkpoint, tmp_path, capsys):
    plots = tmp_path / "plots"
    assert main(["wrf", "eval", "--checkpoint", str(checkpoint), str(repo_dir / CROP), "--json", "-q",
                 "--plots", str(plots)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["columns"] == 768 and report["deep_columns"] + report["shallow_columns"] == report["trigger_columns"]
    assert report["deep_columns"] == 356  # the crop's README: 356 deep-convective columns
    for key in ("trigger_precision", "trigger_recall", "trigger_f1"):
        assert 0.0 <= report[key] <= 1.0
    assert set(report["r2"]) >= {"RTHCUTEN", "RQVCUTEN", "PRATEC"}
    assert len(report["deep"]["per_level"]["RTHCUTEN"]["r2"]) == 40
    assert (plots / "mskf_r2_profiles.png").stat().st_size > 0 and (plots / "mskf_pratec_maps.png").stat().st_size > 0


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("architecture", ["bilstm", "mlp"])
def test_shipped_model_loads_through_the_engine_and_exports(repo_dir, tmp_path, capsys, architecture):
    from models.mskf_bilstm import ARCHITECTURES
    from sciml.mskf.checkpoint import load_mskf_model
    from sciml.training.checkpoint import load_model

    shipped = repo_dir / f"examples/pretrained/mskf-{architecture}.pt"
    model, _, config = load_model(shipped)
    assert type(model) is ARCHITECTURES[architecture] and model.n_levels == 40 and config["task"] == "mskf"
    ours = load_mskf_model(shipped)
    for (name, a), b in zip(model.state_dict().items(), ours.state_dict().values()):
        assert torch.equal(a, b), name
    out = tmp_path / "mskf.pt"
    assert main(["wrf", "export", "--checkpoint", str(shipped), "-o", str(out)]) == 0
    assert "profiles" in capsys.readouterr().out and out.stat().st_size > 0
    extra = {"interface.json": ""}
    exported = torch.jit.load(str(out), _extra_files=extra).state_dict()
    assert json.loads(extra["interface.json"])["grid"]["n_levels"] == 40
    for name, value in model.state_dict().items():  # the exported file carries the shipped weights
        assert torch.equal(exported[f"model.{name}"], value), name


@pytest.mark.parametrize("architecture", ["bilstm", "mlp"])
def test_shipped_model_finds_mskf_convection_on_the_bundled_crop(repo_dir, capsys, architecture):
    """A sanity check of the shipped weights (the crop is a training frame, so this is not a skill test)."""
    shipped = repo_dir / f"examples/pretrained/mskf-{architecture}.pt"
    assert main(["wrf", "eval", "--checkpoint", str(shipped), str(repo_dir / CROP), "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trigger_f1"] > 0.8 and report["r2"]["RTHCUTEN"] > 0.5
