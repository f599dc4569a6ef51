"""MSKF surrogate speed: columns/s and cost per column of the tile network and the WRF hook, vs MSKF itself.

Each checkpoint's model is timed on synthetic WRF tiles drawn around its stored per-level statistics (timing does
not depend on the values; ``--levels`` re-sizes the model to another level count), for every tile size, thread
count and precision asked for: "network" = the tile module on ready tensors, "step" = ``MSKFSurrogate.step`` end to
end (NumPy Fortran arrays in, layout conversion, network, post-constraints, NumPy out); median and best of the
repeats, in us per column and columns per second. MSKF itself costs about 5.5 us per column per call on the
project's 2-core machine (WRF v4.7.1, 2 OpenMP threads: 24.3 s extra wall time for 480 steps x 9,216 columns).

Reads nothing but the checkpoints and imports no netCDF4, so the GPU benchmark can run where netCDF4 is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.mskf_bilstm import PROFILE_INPUTS, MSKFNet, build_model, flops_per_column
from sciml.coupling.hook import MSKFSurrogate
from sciml.coupling.tile import TILE_PROFILES
from sciml.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
#: the shipped surrogates, timed by default
SHIPPED = (REPO / "examples/pretrained/mskf-bilstm.pt", REPO / "examples/pretrained/mskf-mlp.pt")
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}

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


def summary_line(row: dict[str, Any]) -> str:
    """One line for a :func:`bench_case` row: model, tile, threads, precision, us per column (best in brackets)."""
    line = (f"{row['architecture']} {row['layers']}x{row['hidden']} {row['ni']}x{row['nj']}x{row['nk']} "
            f"threads={row['threads']} {row['dtype']}: network {row['network_us_per_column']:.1f} "
            f"(best {row['network_best_us_per_column']:.1f}) us/col")
    if "step_us_per_column" in row:
        line += f", step {row['step_us_per_column']:.1f} (best {row['step_best_us_per_column']:.1f}) us/col"
    return line + f" ({row['vs_mskf_best']:.2f} x MSKF's time at best)"


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON result of a run: machine, CPU count, torch version, MSKF's cost (us per column) and the rows."""
    return {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "mskf_us_per_column": 1e6 * MSKF_SECONDS_PER_COLUMN, "rows": rows}


def _tile(text: str) -> tuple[int, int]:
    ni, sep, nj = text.lower().partition("x")
    if not (sep and ni.isdigit() and nj.isdigit() and int(ni) > 0 and int(nj) > 0):
        raise argparse.ArgumentTypeError(f"expected a tile size NIxNJ such as 96x96, got {text!r}")
    return int(ni), int(nj)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, nargs="+", default=list(SHIPPED),
                   help="surrogate checkpoint(s) to time (default: the shipped mskf-bilstm.pt and mskf-mlp.pt)")
    p.add_argument("--tiles", type=_tile, nargs="+", default=[(96, 96)], metavar="NIxNJ",
                   help="tile sizes in columns (default 96x96: 9,216 columns, MSKF's reference)")
    p.add_argument("--levels", type=int, default=0,
                   help="vertical levels of the timed tiles (default 0: each checkpoint's own)")
    p.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()],
                   help="CPU thread counts (default: torch's current count)")
    p.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["float32"],
                   help="network precisions (bfloat16 = autocast; default float32)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median and best reported)")
    p.add_argument("--budget", type=float, default=20.0, help="seconds per measurement after the first timed call")
    p.add_argument("--network-only", action="store_true", help="time the tile network only, not the hook's step")
    p.add_argument("--json", action="store_true", help="print the result (machine and rows) as JSON")
    p.add_argument("-o", "--output", type=Path, default=None, help="also write the result JSON to this file")


def run(args: argparse.Namespace) -> int:
    from sciml.mskf.checkpoint import load_mskf_model
    from sciml.utils.atomic import atomic_write_text

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: CUDA is not available on this machine")
    for name, value, least in (("--levels", args.levels, 0), ("--repeats", args.repeats, 1),
                               ("--threads", min(args.threads), 1)):
        if value < least:
            raise ConfigError(f"{name} must be >= {least}, got {value}")
    threads_before = torch.get_num_threads()
    rows = []
    try:
        for path in args.checkpoint:
            ref = load_mskf_model(path)
            model = with_levels(ref, args.levels or ref.n_levels)
            for ni, nj in args.tiles:
                for threads in args.threads:
                    torch.set_num_threads(threads)
                    for dtype in args.dtypes:
                        row = bench_case(model, ni, nj, args.device, dtype=DTYPES[dtype], repeats=args.repeats,
                                         budget_s=args.budget, end_to_end=not args.network_only)
                        row.update({"checkpoint": str(path), "flops_per_column": flops_per_column(model),
                                    "load_avg_1min": os.getloadavg()[0]})
                        rows.append(row)
                        if not args.json:
                            print(summary_line(row), flush=True)
    finally:
        torch.set_num_threads(threads_before)
    result = report(rows)
    if args.json:
        print(json.dumps(result, indent=1))
    if args.output is not None:
        atomic_write_text(args.output, json.dumps(result, indent=1))
        if not args.json:
            print(f"wrote {args.output}")
    return 0
