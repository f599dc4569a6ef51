"""MSKF surrogate: post-constraints, normalisation inside the model, training on real WRF columns, the column files
and checkpoints it is trained from and loaded from."""

from __future__ import annotations

import re
import shutil

import h5py
import numpy as np
import pytest
import torch
from mskf_helpers import write_checkpoint

from models.mskf_bilstm import ARCHITECTURES, apply_constraints, build_model, saturation_mixing_ratio
from sciml.errors import DataError
from sciml.mskf.checkpoint import load_mskf_model
from sciml.mskf.data import load_columns
from sciml.mskf.task import MSKFTask

DT = 45.0


def test_constraints_zero_off_columns_quantise_nca_and_pass_held_columns_through():
    n, k = 6, 5
    g = torch.Generator().manual_seed(0)
    logit = torch.tensor([3.0, -3.0, 2.0, 2.0, -1.0, 4.0])
    tend = torch.randn(n, k, 6, generator=g)
    col = torch.tensor([[-1e-4, 700.0], [2e-4, 300.0], [3e-4, 1000.0], [1e-4, 10.0], [5e-4, 500.0], [1e-4, 91.0]])
    nca_in = torch.tensor([0.0, -100.0, 0.0, 0.0, 900.0, 22.4])
    held = torch.randn(n, k, 6, generator=g)
    held_pratec = torch.rand(n, generator=g)
    out_tend, pratec, nca, prob = apply_constraints(logit, tend, col, nca_in, held, held_pratec, DT)
    on = torch.tensor([True, False, True, True, False, True])
    # off columns: exact zeros, NCA untouched
    assert torch.equal(out_tend[1], torch.zeros(k, 6)) and pratec[1] == 0 and nca[1] == -100.0
    # on columns: regression passed through, PRATEC clipped at 0, NCA a whole number of steps
    assert torch.equal(out_tend[[0, 2, 3, 5]], tend[[0, 2, 3, 5]])
    assert pratec[0] == 0 and pratec[2] == col[2, 0]
    assert torch.equal(nca[on], torch.tensor([720.0, 990.0, 0.0, 90.0]))
    assert torch.all(torch.remainder(nca[on], DT) == 0)
    # column 4: NCA >= 0.5 dt on input -> held outputs unchanged, even though the trigger says "off"
    assert torch.equal(out_tend[4], held[4]) and pratec[4] == held_pratec[4] and nca[4] == 900.0 and prob[4] == 1
    # column 5: NCA 22.4 s < 0.5 dt -> MSKF evaluates it again
    assert torch.equal(out_tend[5], tend[5])


def test_saturation_mixing_ratio_matches_wrf_buck_formula():
    t, p = torch.tensor([300.0, 273.15, 250.0]), torch.tensor([100000.0, 70000.0, 30000.0])
    es = 611.2 * np.exp(17.67 * (t.numpy() - 273.15) / (t.numpy() - 29.65))
    np.testing.assert_allclose(saturation_mixing_ratio(t, p).numpy(), 0.622 * es / (p.numpy() - es), rtol=1e-6)
    assert 0.021 < float(saturation_mixing_ratio(t, p)[0]) < 0.023  # ~22 g/kg at 300 K, 1000 hPa


@pytest.fixture(scope="module")
def crop_columns(repo_dir, tmp_path_factory):
    """Columns of the bundled WRF crop (one output time, 768 columns, 40 levels) in the extract format."""
    from data_tools.wrf.extract import extract_columns

    out = tmp_path_factory.mktemp("mskf") / "crop_columns.h5"
    extract_columns([repo_dir / "examples/data/wrf_mskf_crop.nc"], out, progress=False)
    return out


def _task(path, hidden=8, layers=1, architecture="bilstm"):
    return MSKFTask({"path": str(path), "val_frames": 0, "test_frames": 0, "batch_size": 128},
                    {"architecture": architecture, "hidden": hidden, "layers": layers, "n_levels": 0},
                    {"trigger_weight": 1.0, "regression_weight": 1.0, "regression": "mse"})


@pytest.mark.parametrize("architecture", ["bilstm", "mlp"])
def test_normalisation_lives_in_the_state_dict_and_level_count_comes_from_data(crop_columns, architecture):
    task = _task(crop_columns, architecture=architecture)
    train, val = task.datasets()
    assert val is None and len(train) == 768
    model = task.build_model(train)
    assert model.n_levels == 40 and model.prof_mean.shape == (12, 40)
    assert abs(float(model.grid_p_top) - 2594.08) < 0.01 and model.grid_eta.shape == (41,)
    # per-level mean temperature decreases upward in the troposphere
    assert model.prof_mean[3, 0] > model.prof_mean[3, 10] > 200
    # a model built without data (as load_model does) adopts the checkpoint's level count
    blank = task.build_model(None)
    blank.load_state_dict(model.state_dict())
    assert blank.n_levels == 40 and torch.equal(blank.tend_scale, model.tend_scale)


@pytest.mark.parametrize("edit,message", [
    ({"schema_version": 2}, r"sciml-wrf-columns schema_version 2 is newer than the version this sciml reads \(1\)"),
    ({"schema_version": 0}, r"sciml-wrf-columns schema_version 0 is older than the version this sciml reads \(1\)"),
    ({"schema_version": None}, "sciml-wrf-columns file without an integer schema_version attribute"),
    ({"schema": "sciml-atoms"}, r"not a sciml-wrf-columns file \(schema attribute 'sciml-atoms'\)"),
])
def test_training_refuses_column_files_of_another_schema_or_version(crop_columns, tmp_path, edit, message):
    bad = tmp_path / "columns.h5"
    shutil.copy(crop_columns, bad)
    with h5py.File(bad, "r+") as h5:
        for key, value in edit.items():
            if value is None:
                del h5.attrs[key]
            else:
                h5.attrs[key] = value
    with pytest.raises(DataError, match=re.escape(f"{bad}: ") + message):
        load_columns(bad)
    with pytest.raises(DataError, match=re.escape(f"{bad}: ") + message):
        _task(bad).datasets()  # what `sciml train` calls


def test_training_refuses_files_that_are_not_column_files(repo_dir, tmp_path):
    wrfout = repo_dir / "examples/data/wrf_mskf_crop.nc"  # netCDF-4 is HDF5: it opens, but has no schema
    with pytest.raises(DataError, match=re.escape(f"{wrfout}: not a sciml-wrf-columns file (schema attribute None); "
                                                  "make one with `sciml wrf extract`")):
        load_columns(wrfout)
    text = tmp_path / "columns.h5"
    text.write_text("inputs,targets\n")
    with pytest.raises(DataError, match=re.escape(f"{text}: cannot be opened as HDF5")):
        load_columns(text)


@pytest.mark.parametrize("architecture,hidden,layers", [("bilstm", 8, 2), ("mlp", 16, 3)])
def test_checkpoint_rebuilds_its_configured_model_with_the_ema_weights(crop_columns, tmp_path, architecture, hidden,
                                                                       layers):
    task = _task(crop_columns, hidden=hidden, layers=layers, architecture=architecture)
    train, _ = task.datasets()
    torch.manual_seed(0)
    raw = task.build_model(train).eval()
    torch.manual_seed(1)
    ema = task.build_model(train).eval()
    loaded = load_mskf_model(write_checkpoint(tmp_path / "last.pt", task, raw, ema=ema))
    assert type(loaded) is ARCHITECTURES[architecture] and not loaded.training
    assert loaded.config() == {"architecture": architecture, "n_levels": 40, "hidden": hidden, "layers": layers}
    rows = slice(0, 200)
    with torch.no_grad():
        got = loaded(train.arrays.profiles[rows], train.arrays.surface[rows])
        want = ema(train.arrays.profiles[rows], train.arrays.surface[rows])
        other = raw(train.arrays.profiles[rows], train.arrays.surface[rows])
    assert all(torch.equal(g, w) for g, w in zip(got, want))
    assert not torch.equal(got[1], other[1])  # the EMA weights, not the raw ones
    assert torch.equal(loaded.grid_eta, raw.grid_eta) and torch.equal(loaded.prof_mean, raw.prof_mean)


@pytest.mark.parametrize("stored", [{"architecture": "mlp"}, {"hidden": 16}])
def test_checkpoint_whose_config_does_not_build_its_weights_is_refused(crop_columns, tmp_path, stored):
    task = _task(crop_columns)
    model = task.build_model(task.datasets()[0])
    path = write_checkpoint(tmp_path / "last.pt", _task(crop_columns, **stored), model)
    with pytest.raises(DataError, match=re.escape(f"checkpoint {path}: weights do not fit the model its config "
                                                  "builds")):
        load_mskf_model(path)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # TDN import
def test_checkpoints_that_are_not_mskf_surrogates_are_refused(repo_dir, crop_columns, tmp_path):
    potential = repo_dir / "examples/pretrained/acac-tdn.pt"
    with pytest.raises(DataError, match=re.escape(f"checkpoint {potential} was trained with task 'potential', "
                                                  "not 'mskf'")):
        load_mskf_model(potential)
    task = _task(crop_columns)
    bare = tmp_path / "weights.pt"
    torch.save({"model": task.build_model(task.datasets()[0]).state_dict()}, bare)
    with pytest.raises(DataError, match=re.escape(f"{bare} is not a sciml training checkpoint")):
        load_mskf_model(bare)


@pytest.mark.parametrize("architecture,hidden", [("bilstm", 8), ("mlp", 32)])
@pytest.mark.slow
def test_training_reduces_the_loss_on_real_columns(crop_columns, architecture, hidden):
    torch.manual_seed(0)
    task = _task(crop_columns, hidden=hidden, architecture=architecture)
    train, _ = task.datasets()
    model = task.build_model(train)
    batch = task.collate([train[i] for i in range(len(train))])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        first, metrics = task.loss(model, batch)
    for _ in range(40):
        loss, _ = task.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last, metrics = task.loss(model, batch)
    assert float(last) < 0.7 * float(first)
    report = task.reduce_metrics({k: float(v) for k, v in metrics.items()})
    assert report["trigger_f1"] > 0.7 and report["r2_RTHCUTEN"] > 0.0


@pytest.mark.parametrize("architecture", ["bilstm", "mlp"])
def test_model_is_not_fixed_to_44_levels(architecture):
    model = build_model(architecture, n_levels=17, hidden=4, layers=2)
    logit, tend, col = model(torch.rand(3, 17, 11) + 1.0, torch.rand(3, 3))
    assert logit.shape == (3,) and tend.shape == (3, 17, 6) and col.shape == (3, 2)


def test_mlp_reads_the_same_column_from_any_memory_layout():
    """The tile passes channel-major views, training contiguous batches: a column's outputs must not depend on it."""
    torch.manual_seed(0)
    model = build_model("mlp", n_levels=9, hidden=16, layers=2).eval()
    prof, sfc = torch.rand(5, 9, 11) + 1.0, torch.rand(5, 3)
    channel_major = prof.permute(2, 1, 0).contiguous().permute(2, 1, 0)
    with torch.no_grad():
        a, b = model(prof, sfc), model(channel_major, sfc)
        one = model(prof[2:3], sfc[2:3])
    for x, y, z in zip(a, b, one):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
        torch.testing.assert_close(x[2:3], z, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown MSKF architecture"):
        build_model("transformer", 9, 16, 2)


def test_split_by_time_keeps_test_frames_out_of_training_and_validation():
    from sciml.errors import DataError
    from sciml.mskf.data import split_by_time

    frame = np.repeat(np.arange(5), 3)
    train, val = split_by_time(frame, val_frames=1, test_frames=1)
    assert set(frame[train]) == {0, 1, 2} and set(frame[val]) == {3}
    train, val = split_by_time(frame, val_frames=1)
    assert set(frame[train]) == {0, 1, 2, 3} and set(frame[val]) == {4}
    with pytest.raises(DataError, match="at least one must train"):
        split_by_time(frame, val_frames=3, test_frames=2)
