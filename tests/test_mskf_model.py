"""MSKF Bi-LSTM surrogate: post-constraints, normalisation inside the model, training on real WRF columns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.mskf_bilstm import apply_constraints, build_from_state_dict, build_model, saturation_mixing_ratio
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
    rebuilt = build_from_state_dict(model.state_dict())
    assert rebuilt.config() == model.config()
    assert torch.equal(rebuilt.prof_std, model.prof_std)
    # a model built without data (as load_model does) adopts the checkpoint's level count
    blank = task.build_model(None)
    blank.load_state_dict(model.state_dict())
    assert blank.n_levels == 40 and torch.equal(blank.tend_scale, model.tend_scale)


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
