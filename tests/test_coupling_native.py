"""The WRF coupling routes outside Python, on a real tile of the bundled WRF crop: the exported TorchScript module
run by a C++ libtorch program (what FTorch does from Fortran: torch::jit::load, column-major tensors around the
caller's buffers), and the CFFI plugin called from a Fortran program through ISO_C_BINDING (the WRF-ML route).
Each must return, bit for bit, what Python returns. Skipped where g++ / gfortran / cffi are missing."""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from data_tools.wrf import open_wrf
from sciml.coupling import MSKFSurrogate
from sciml.coupling.export import export_torchscript
from sciml.coupling.hook import HELD
from sciml.coupling.state import wrf_tile_state
from sciml.mskf.checkpoint import load_mskf_model

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "examples" / "coupling"
CHECKPOINT = ROOT / "examples" / "pretrained" / "mskf-mlp.pt"
DT = 45.0
TILE = (slice(3, 12), slice(2, 9))  # ni = 9, nj = 7 columns of the 32 x 24 crop


@pytest.fixture(scope="module")
def state():
    return wrf_tile_state(open_wrf(ROOT / "examples/data/wrf_mskf_crop.nc").isel(Time=0).load(), *TILE)


def _write(folder: Path, name: str, array: np.ndarray) -> None:
    np.asarray(array, dtype=np.float32).ravel(order="F").tofile(folder / f"{name}.f32")


def _read(folder: Path, name: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.fromfile(folder / f"{name}.out.f32", dtype=np.float32).reshape(shape, order="F")


def _run(cmd: list, **kwargs) -> str:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{cmd[0]}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.slow
def test_libtorch_cpp_runs_the_exported_module_like_python(state, tmp_path):
    torch_dir = Path(torch.__file__).parent
    exe = tmp_path / "mskf_libtorch"
    _run(["g++", "-std=c++20", "-O1", "-w", SRC / "mskf_libtorch.cpp", f"-I{torch_dir / 'include'}",
          f"-I{torch_dir / 'include/torch/csrc/api/include'}", f"-L{torch_dir / 'lib'}",
          f"-Wl,-rpath,{torch_dir / 'lib'}", "-ltorch", "-ltorch_cpu", "-lc10", "-o", exe])
    model = load_mskf_model(CHECKPOINT)
    model_file = tmp_path / "mskf.pt"
    export_torchscript(model, model_file)
    ni, nk, nj = state["t"].shape
    inputs = MSKFSurrogate(model).inputs(state, dt=DT)  # what the hook passes to the tile module
    for name, tensor in zip(("profiles", "w", "surface", "held", "params"), inputs):
        _write(tmp_path, name, tensor.numpy())
    assert "ok: 9 x 40 x 7 tile" in _run([exe, model_file, tmp_path, ni, nk, nj])
    got = [_read(tmp_path, "tendencies", (ni, nk, nj, 6)), _read(tmp_path, "column", (ni, nj, 4)),
           _read(tmp_path, "w0avg", (ni, nk, nj))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the C++ driver
    try:
        with torch.no_grad():
            ref = torch.jit.load(str(model_file))(*inputs)
    finally:
        torch.set_num_threads(threads)
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g, r.numpy())  # same libtorch, one thread: bit for bit
    assert np.count_nonzero(got[0]) > 0 and np.array_equal(got[1][..., 3] > 0.5, ref[1][..., 3].numpy() > 0.5)


@pytest.mark.skipif(shutil.which("gfortran") is None or importlib.util.find_spec("cffi") is None,
                    reason="needs gfortran and cffi")
@pytest.mark.slow
def test_fortran_calls_the_cffi_plugin_like_python(state, tmp_path):
    sys.path.insert(0, str(SRC))
    try:
        from build_mskf_plugin import build
    finally:
        sys.path.remove(str(SRC))
    lib = build(tmp_path / "build")
    exe = tmp_path / "mskf_cffi_driver"
    _run(["gfortran", "-O1", SRC / "mskf_cffi_driver.f90", f"-L{lib.parent}", "-lmskf_plugin",
          f"-Wl,-rpath,{lib.parent}", "-o", exe])
    for name, array in state.items():
        _write(tmp_path, name, array)
    _write(tmp_path, "raincv", np.zeros_like(state["hfx"]))
    ni, nk, nj = state["t"].shape
    # the host process embeds Python: it must find sciml and its dependencies
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), *site.getsitepackages()]))
    assert "ok: 9 x 40 x 7 tile" in _run([exe, CHECKPOINT, tmp_path, ni, nk, nj, DT], env=env)
    ref = MSKFSurrogate.from_checkpoint(CHECKPOINT, threads=1).step(state, dt=DT)
    for name in [*HELD, "w0avg", "nca", "pratec", "raincv"]:
        np.testing.assert_array_equal(_read(tmp_path, name, ref[name].shape), ref[name], err_msg=name)
    assert np.count_nonzero(_read(tmp_path, "rthcuten", ref["rthcuten"].shape)) > 0
