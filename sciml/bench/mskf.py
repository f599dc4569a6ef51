"""Timing the MSKF surrogate: synthetic WRF tiles from a model's stored statistics, columns/s, cost per column.

No file I/O besides the checkpoint and no netCDF import, so the GPU benchmark can run where netCDF4 is absent.
Reference: MSKF itself costs about 5.5 us per column per call on the project's 2-core machine (WRF v4.7.1,
2 OpenMP threads, 24.3 s extra wall time for 480 steps x 9,216 columns; issue 5).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from models.mskf_bilstm import PROFILE_INPUTS, MSKFNet, build_model
from sciml.coupling.hook import MSKFSurrogate
from sciml.coupling.tile import TILE_PROFILES

#: MSKF's own cost on the 2-core reference machine (s per column per call)
MSKF_SECONDS_PER_COLUMN = 24.3 / (480 * 9216)


def with_levels(model: MSKFNet, n_levels: int, hidden: int | None = None, layers: int | None = None) -> MSKFNet:
    """A model of the same architecture for ``n_levels`` levels (statistics interpolated over the level index;
    trained weights kept where the shapes allow). Timing does not depend on the weights' values."""
    out = build_model(model.architecture, n_levels, hidden=hidden or model.hidden, layers=layers or model.layers)
    src = np.linspace(0.0, 1.0, model.n_levels)
    dst = np.linspace(0.0, 1.0, n_levels)
    state = out.state_dict()
    for name, value in model.state_dict().items():
        if name in ("prof_mean", "prof_std"):
            state[name] = torch.from_numpy(np.stack([np.interp(dst, src, row) for row in value.double().cpu().numpy()]))
        elif name in state and state[name].shape == value.shape:
            state[name] = value
    out.load_state_dict(state)
    return out.eval()


def synthetic_state(model: MSKFNet, ni: int, nj: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A hook state for an ``ni`` x ``nj`` tile (WRF memory order, Fortran arrays, float32) drawn around the
    model's per-level training means (0.3 standard deviations of noise); NCA = 0 everywhere (all columns evaluated)."""
    rng = np.random.default_rng(seed)
    nk = model.n_levels
    mean, std = model.prof_mean.double().cpu().numpy(), model.prof_std.double().cpu().numpy()

    def field(channel: int, levels: int = nk) -> np.ndarray:
        m = np.interp(np.linspace(0, 1, levels), np.linspace(0, 1, nk), mean[channel])
        s = np.interp(np.linspace(0, 1, levels), np.linspace(0, 1, nk), std[channel])
        x = m[None, :, None] + 0.3 * s[None, :, None] * rng.standard_normal((ni, levels, nj))
        return np.asfortranarray(x, dtype=np.float32)

    state = {name: field(PROFILE_INPUTS.index(name)) for name in TILE_PROFILES}
    state["w"] = field(PROFILE_INPUTS.index("w"), nk + 1)
    for c, name in enumerate(("hfx", "ust", "pblh")):
        m, s = float(model.sfc_mean[c]), float(model.sfc_std[c])
        state[name] = np.asfortranarray(np.abs(m + 0.3 * s * rng.standard_normal((ni, nj))), dtype=np.float32)
    state["nca"] = np.zeros((ni, nj), np.float32, order="F")
    return state


def time_call(fn: Callable[[], Any], repeats: int, sync: Callable[[], None] = lambda: None,
              warmup: int = 1, budget_s: float = 20.0) -> dict[str, float]:
    """Median / min wall time (s) of ``fn`` over up to ``repeats`` calls after ``warmup`` calls (stops early
    once ``budget_s`` is spent)."""
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (not times or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": len(times)}


def bench_case(model: MSKFNet, ni: int, nj: int, device: str, dtype: torch.dtype = torch.float32,
               repeats: int = 5, budget_s: float = 20.0, end_to_end: bool = True) -> dict[str, Any]:
    """Network-only (tile module on device-resident tensors) and end-to-end hook timings for one tile size: median
    and best (``*_best_*``) of the repeats; ``vs_mskf`` / ``vs_mskf_best`` compare the step time with MSKF's."""
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    surrogate = MSKFSurrogate(model, device=dev, precision="bfloat16" if dtype == torch.bfloat16 else "float32")
    state = synthetic_state(model, ni, nj)
    args = surrogate.inputs(state, dt=45.0)  # packed once, outside the timing
    autocast = torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32)

    def network() -> None:
        with torch.inference_mode(), autocast:
            surrogate.tile(*args)

    cols = ni * nj
    row: dict[str, Any] = {"device": str(dev), "dtype": str(dtype).replace("torch.", ""), "ni": ni, "nj": nj,
                           "nk": model.n_levels, "columns": cols, "architecture": model.architecture,
                           "hidden": model.hidden, "layers": model.layers,
                           "threads": torch.get_num_threads() if dev.type == "cpu" else None,
                           "max_columns": surrogate.tile.max_columns}
    net = time_call(network, repeats, sync, budget_s=budget_s)
    row.update({"network_s": net["median_s"], "network_us_per_column": 1e6 * net["median_s"] / cols,
                "network_columns_per_s": cols / net["median_s"],
                "network_best_us_per_column": 1e6 * net["min_s"] / cols,
                "network_repeats": net["repeats"]})
    key = "network"
    if end_to_end:
        e2e = time_call(lambda: surrogate.step(state, dt=45.0), repeats, sync, budget_s=budget_s)
        row.update({"step_s": e2e["median_s"], "step_us_per_column": 1e6 * e2e["median_s"] / cols,
                    "step_columns_per_s": cols / e2e["median_s"], "step_best_us_per_column": 1e6 * e2e["min_s"] / cols,
                    "step_repeats": e2e["repeats"]})
        key = "step"
    mskf_us = 1e6 * MSKF_SECONDS_PER_COLUMN
    row["vs_mskf"] = row[f"{key}_us_per_column"] / mskf_us
    row["vs_mskf_best"] = row[f"{key}_best_us_per_column"] / mskf_us
    return row
