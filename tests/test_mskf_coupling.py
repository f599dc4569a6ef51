"""MSKF coupling: the NumPy tile hook in WRF memory order and the TorchScript export, on real WRF columns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data_tools.wrf import open_wrf
from models.mskf_bilstm import TENDENCIES, MSKFBiLSTM, apply_constraints, build_model
from sciml.coupling import MSKFSurrogate
from sciml.coupling.export import export_torchscript
from sciml.coupling.state import wrf_tile_state
from sciml.coupling.tile import TILE_PROFILES, MSKFTile
from sciml.errors import DataError
from sciml.mskf.data import source_name

DT = 45.0
HELD = [n.lower() for n in TENDENCIES]


@pytest.fixture(scope="module")
def frame(repo_dir):
    """The bundled WRF crop's only output time as NumPy arrays in wrfout layout ((nk, ny, nx) / (ny, nx))."""
    names = [source_name(n) for n in TILE_PROFILES] + ["W", "HFX", "UST", "PBLH", "NCA", "PRATEC", *TENDENCIES]
    ds = open_wrf(repo_dir / "examples/data/wrf_mskf_crop.nc")[names].isel(Time=0).compute()
    return {n: np.asarray(ds[n].values, dtype=np.float32) for n in names}


@pytest.fixture(scope="module", params=["bilstm", "mlp"])
def model(frame, request):
    """A small model of each architecture with normalisation fitted on the crop and a trigger biased on, so outputs
    are non-zero."""
    torch.manual_seed(1)
    m = build_model(request.param, 40, hidden=8, layers=2)
    prof = torch.from_numpy(np.stack([frame["u"], frame["v"], 0.5 * (frame["W"][:-1] + frame["W"][1:]),
                                      *(frame[source_name(n)] for n in TILE_PROFILES[2:])], axis=-1))
    prof = prof.reshape(40, -1, 11).transpose(0, 1)
    sfc = torch.from_numpy(np.stack([frame[n].ravel() for n in ("HFX", "UST", "PBLH")], axis=-1))
    tend = torch.from_numpy(np.stack([frame[n] for n in TENDENCIES], -1)).reshape(40, -1, 6).transpose(0, 1)
    col = torch.from_numpy(np.stack([frame["PRATEC"].ravel(), frame["NCA"].ravel()], -1))
    m.fit_normalisation(prof, sfc, tend, col, torch.from_numpy(frame["NCA"].ravel() > 22.5))
    with torch.no_grad():  # trigger logit and NCA biased up
        bias = m.column_bias if isinstance(m, MSKFBiLSTM) else m.out.bias
        bias[0] = 4.0
        bias[-1] = 2.0
    return m.eval()


def tile_state(frame, i0, ni, j0, nj, nca=None):
    """Hook state for the tile i0:i0+ni, j0:j0+nj in WRF memory order, as Fortran-ordered arrays."""
    state = wrf_tile_state(frame, slice(i0, i0 + ni), slice(j0, j0 + nj))
    if nca is not None:
        state["nca"] = nca
    return state


def column_reference(model, state, i, j, dt, tst):
    """The model and constraints applied to the single column (i, j) of a hook state, without the tile code."""
    wbar = 0.5 * (state["w"][i, :-1, j] + state["w"][i, 1:, j])
    w0 = (state["w0avg"][i, :, j] * (tst - 1) + wbar) / tst
    prof = np.stack([state["u"][i, :, j], state["v"][i, :, j], wbar,
                     *(state[n][i, :, j] for n in TILE_PROFILES[2:9]), w0], axis=-1)
    sfc = np.array([state[n][i, j] for n in ("hfx", "ust", "pblh")], np.float32)
    with torch.no_grad():
        logit, tn, cn = model(torch.from_numpy(prof[None].astype(np.float32)), torch.from_numpy(sfc[None]))
        tend, col = model.denormalise(tn, cn)
        held = torch.from_numpy(np.stack([state[n][i, :, j] for n in HELD], -1)[None])
        out = apply_constraints(logit, tend, col, torch.tensor([state["nca"][i, j]]), held,
                                torch.tensor([state["pratec"][i, j]]), dt)
    return [o[0].numpy() for o in out], w0


@pytest.mark.parametrize("ni,nj,max_columns", [(7, 5, 4096), (1, 1, 4096), (3, 11, 4096), (7, 5, 14), (3, 11, 1)])
def test_hook_maps_wrf_memory_order_to_columns_and_back(frame, model, ni, nj, max_columns):
    state = tile_state(frame, 9, ni, 4, nj)
    before = {k: v.copy() for k, v in state.items()}
    out = MSKFSurrogate(model, max_columns=max_columns).step(state, dt=DT, cudt=0.0)  # whole tile or slabs of rows
    assert all(np.array_equal(before[k], state[k]) for k in state)  # inputs untouched
    for name in [*HELD, "w0avg"]:
        assert out[name].shape == (ni, 40, nj) and out[name].flags.f_contiguous and out[name].dtype == np.float32
    for name in ("pratec", "raincv", "nca", "trigger_prob"):
        assert out[name].shape == (ni, nj) and out[name].flags.f_contiguous
    held = state["nca"] >= 0.5 * DT
    for i in range(ni):
        for j in range(nj):
            (tend, pratec, nca, prob), w0 = column_reference(model, state, i, j, DT, 2.0)
            got = np.stack([out[n][i, :, j] for n in HELD], -1)
            # float32 GEMMs over a batch vs one column sum in another order: ~1e-7 of each field's scale
            scale = np.abs(tend).max(axis=0) + 1e-37
            np.testing.assert_allclose(got / scale, tend / scale, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(out["pratec"][i, j], pratec, rtol=1e-5)
            assert out["nca"][i, j] == nca and out["raincv"][i, j] == pytest.approx(pratec * DT, rel=1e-6)
            np.testing.assert_allclose(out["w0avg"][i, :, j], w0, rtol=1e-6)
            if held[i, j]:  # MSKF skips these columns: WRF's held values come back bit for bit
                assert np.array_equal(got, np.stack([state[n][i, :, j] for n in HELD], -1)) and prob == 1
    assert np.all(np.remainder(out["nca"][~held], DT) == 0)


def test_hook_writes_into_wrf_buffers_without_extra_arrays(frame, model):
    state = tile_state(frame, 0, 6, 0, 4, nca=np.zeros((6, 4), np.float32, order="F"))
    buffers = {n: np.zeros((6, 40, 4), np.float32, order="F") for n in HELD}
    out = MSKFSurrogate(model).step(state, dt=DT, out=buffers)
    assert all(out[n] is buffers[n] for n in HELD)
    assert np.abs(buffers["rthcuten"]).max() > 0  # the trigger is biased on: real values were written
    # result arrays are views into one Fortran-ordered block (no per-variable copies)
    assert out["pratec"].base is not None and out["pratec"].base is out["nca"].base


def test_hook_refuses_another_level_count(frame, model):
    state = tile_state(frame, 0, 2, 0, 2)
    state = {k: (v[:, :14] if v.ndim == 3 else v) for k, v in state.items()}
    with pytest.raises(DataError, match="14 levels but the surrogate was trained on 40"):
        MSKFSurrogate(model).step(state, dt=DT)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_matches_the_python_model_exactly(frame, model, tmp_path):
    path = tmp_path / "mskf.pt"
    export_torchscript(model, path, max_columns=20)  # 9 x 7 tile: slabs of 2 rows, the last one of 1
    extra = {"interface.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=extra)
    spec = json.loads(extra["interface.json"])
    assert spec["inputs"]["profiles"]["channels"] == list(TILE_PROFILES) and spec["grid"]["n_levels"] == 40
    state = tile_state(frame, 3, 9, 2, 7)
    ni, nj = 9, 7
    prof = torch.from_numpy(np.stack([state[n] for n in TILE_PROFILES], axis=-1))
    sfc = torch.from_numpy(np.stack([state[n] for n in ("hfx", "ust", "pblh", "nca", "pratec")], axis=-1))
    held = torch.from_numpy(np.stack([state[n] for n in HELD], axis=-1))
    args = (prof, torch.from_numpy(state["w"]), sfc, held, torch.tensor([DT, 2.0]))
    with torch.no_grad():
        ref = MSKFTile(model, max_columns=20)(*args)
        whole = MSKFTile(model, max_columns=0)(*args)
        got = loaded(*args)
    for r, g, a in zip(ref, got, whole):
        assert torch.equal(r, g)
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-6 * float(r.abs().max()))
    assert got[0].shape == (ni, 40, nj, 6) and got[1].shape == (ni, nj, 4) and got[2].shape == (ni, 40, nj)
    # the same module behind the NumPy hook
    out = MSKFSurrogate(model, max_columns=20).step(state, dt=DT)
    assert np.array_equal(out["rthcuten"], got[0][..., 0].numpy())


def test_bfloat16_network_keeps_float32_outputs_and_exact_constraints(frame, model):
    state = tile_state(frame, 2, 5, 3, 4)
    ref = MSKFSurrogate(model).step(state, dt=DT)
    low = MSKFSurrogate(model, precision="bfloat16").step(state, dt=DT)
    held = state["nca"] >= 0.5 * DT
    for name in [*HELD, "pratec", "nca"]:
        assert low[name].dtype == np.float32 and low[name].flags.f_contiguous
    mask = np.broadcast_to(held[:, None, :], low["rthcuten"].shape)
    assert mask.any() and np.array_equal(low["rthcuten"][mask], state["rthcuten"][mask])  # held: passed through
    assert np.all(np.remainder(low["nca"][~held], DT) == 0)
    on = (ref["trigger_prob"] > 0.6) & (low["trigger_prob"] > 0.6) & ~held
    scale = np.abs(ref["rthcuten"]).max()
    np.testing.assert_allclose(low["rthcuten"].transpose(0, 2, 1)[on], ref["rthcuten"].transpose(0, 2, 1)[on],
                               atol=0.05 * scale)
    with pytest.raises(Exception, match="precision"):
        MSKFSurrogate(model, precision="float16")
