"""GPU benchmark and checks of the TDN tensor product; on CPU a quick smoke run.

    python benchmarks/gpu_tdn.py --out DIR        # default DIR: $OUT, else ./gpu_tdn_out

CUDA: (1) CPU-vs-CUDA equivalence (torch paths and fused Triton kernels, float64 and float32, forward,
gradients, double backward) and float32 accuracy of each kernel precision against float64; (2) a
launch-configuration sweep of the fused kernels at L = 6, and the SH-first backward as one kernel vs two; (3) the
table
L = 1..6, E = 20000, C = 64 then C = 128: e3nn uvu (per-path weights) vs plain three-matmul CP vs the SH-first
contraction (torch) vs fused Triton of the rank contraction (ieee fp32; tf32x3 at C = 64; tf32 at C = 64, L = 1 and 6;
with measured errors) vs the SH-first contraction with its per-edge product fused in Triton (ieee fp32, autotuned
launch configuration, recorded in info.sh_first_fused_configs; its backward as one kernel or two, whichever step (2)
timed faster at that L, recorded per row as shfused_backward), float32, TF32 off for torch, median times and peak
memory.
Every step and row is guarded: errors are recorded and the run goes on; a global deadline (--deadline s) skips
what is left. Writes gpu_tdn.json (all results) and gpu_tdn.md (tables) atomically into --out after every step,
so an outer time limit loses at most the step in progress.
Imports nothing outside torch, e3nn, triton, numpy/scipy and sciml.tdn (no ase/netCDF4/vesin/lmdb).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from sciml.utils.atomic import atomic_write_text  # noqa: E402

T0 = time.perf_counter()


def elapsed() -> float:
    return time.perf_counter() - T0


def guarded(results: list, name: str, fn, *args, **kwargs):
    """Run fn, append {"name", "result" | "error", "seconds"} to results; never raises."""
    t = time.perf_counter()
    entry: dict = {"name": name}
    try:
        entry["result"] = fn(*args, **kwargs)
    except Exception as exc:  # record and continue
        entry["error"] = f"{type(exc).__name__}: {exc}"[:500]
        entry["traceback"] = traceback.format_exc()[-2000:]
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    entry["seconds"] = round(time.perf_counter() - t, 2)
    results.append(entry)
    print(json.dumps({k: v for k, v in entry.items() if k != "traceback"})[:600], flush=True)
    return entry.get("result")


def double_backward_check(device: str, fused: bool, lmax: int = 2, channels: int = 8, contraction: str = "rank") -> dict:
    """Force-style second derivative (d/dw of ||dE/dy||^2) on CPU vs device, exact rank, float64."""
    from sciml.tdn import CPTensorProduct
    from sciml.tdn.check import random_inputs

    vals = []
    for dev, use in (("cpu", False), (device, fused)):
        tp = CPTensorProduct(lmax, channels, rank="exact", use_triton=use, contraction=contraction).to(dev, torch.float64)
        x, _, y, w = (t.to(dev) for t in random_inputs(lmax, channels, 32, dtype=torch.float64))
        y.requires_grad_()
        w.requires_grad_()
        energy = tp(x, y, w)[:, 0].sum()
        (force,) = torch.autograd.grad(energy, y, create_graph=True)
        (gw,) = torch.autograd.grad((force ** 2).sum(), w)
        vals.append(gw.cpu())
    return {"rel_diff": float((vals[0] - vals[1]).norm() / vals[0].norm())}


def float32_fused_vs_torch(device: str, lmax: int, channels: int = 64, edges: int = 2000) -> dict:
    """float32 fused kernels (each precision) vs the plain torch product on the GPU, relative to a float64 result."""
    from sciml.tdn import CPTensorProduct
    from sciml.tdn.check import random_inputs
    from sciml.tdn.triton_cp import PRECISIONS, cp_product_fused, sh_first_fused

    tp = CPTensorProduct(lmax, channels, rank="default", use_triton=False, contraction="rank").to(device)
    x, _, y, w = (t.to(device) for t in random_inputs(lmax, channels, edges, dtype=torch.float64))
    ref = tp.double()(x, y, w)
    tp = tp.float()
    xf, yf, wf = x.float(), y.float(), w.float()
    out = {"torch_fp32": float((tp(xf, yf, wf).double() - ref).norm() / ref.norm())}
    for p in PRECISIONS:
        try:
            res = cp_product_fused(xf, yf, wf, tp.cp_x, tp.cp_y, tp.cp_out, precision=p)
            out[f"fused_{p}"] = float((res.double() - ref).norm() / ref.norm())
        except Exception as exc:
            out[f"fused_{p}"] = f"{type(exc).__name__}: {exc}"[:200]
        try:
            res = sh_first_fused(xf, yf, wf, tp.cp_tensor, precision=p)
            out[f"shfused_{p}"] = float((res.double() - ref).norm() / ref.norm())
        except Exception as exc:
            out[f"shfused_{p}"] = f"{type(exc).__name__}: {exc}"[:200]
    return out


def config_sweep(device: str, lmax: int, channels: int, edges: int) -> list[dict]:
    """Time the rank kernels' fwd+bwd for a few launch configurations (None = the automatic choice of
    ``triton_cp.rank_config``); returns rows sorted by time. The automatic choice stays in place afterwards."""
    from sciml.bench.tp import time_ms
    from sciml.tdn import CPTensorProduct
    from sciml.tdn import triton_cp
    from sciml.tdn.check import random_inputs

    tp = CPTensorProduct(lmax, channels, rank="default", contraction="rank").float().to(device)
    x, _, y, w = (t.to(device).requires_grad_() for t in random_inputs(lmax, channels, edges, dtype=torch.float32))
    g = torch.randn_like(x)
    rows = []
    for rows_, br, nw in ((64, None, None), (64, 32, 4), (64, 16, 4), (64, 16, 8), (32, 16, 4), (128, 16, 8)):
        triton_cp.set_config(rows_, br, nw)
        try:
            def run():
                out = triton_cp.cp_product_fused(x, y, w, tp.cp_x, tp.cp_y, tp.cp_out)
                return torch.autograd.grad(out, (x, y, w), g)
            ms = time_ms(run, torch.device(device), 10, 0.5)
            rows.append({"rows": rows_, "block_rank": br, "num_warps": nw, "fwdbwd_ms": ms})
        except Exception as exc:
            rows.append({"rows": rows_, "block_rank": br, "num_warps": nw, "error": f"{type(exc).__name__}: {exc}"[:200]})
    triton_cp.set_config()
    return sorted(rows, key=lambda r: r.get("fwdbwd_ms", float("inf")))


@contextlib.contextmanager
def sh_first_backward(mode: str):
    """Run the enclosed block with the SH-first backward in ``mode`` ("fused" / "split"), then restore the default."""
    from sciml.tdn import triton_cp

    triton_cp.set_sh_first_backward(mode)
    try:
        yield
    finally:
        triton_cp.set_sh_first_backward()


def sh_backward_modes(device: str, lmaxes: list[int], channels: int, edges: int) -> dict:
    """fwd+bwd ms of the fused SH-first product with its backward in one kernel ("fused") and in two ("split"),
    per lmax; "best" maps lmax -> the faster mode (the table below uses it, and says so per row)."""
    from sciml.bench.tp import time_ms
    from sciml.tdn import CPTensorProduct
    from sciml.tdn.check import random_inputs

    rows, best = [], {}
    for lmax in lmaxes:
        tp = CPTensorProduct(lmax, channels, rank="default", contraction="sh_first_fused").float().to(device)
        x, _, y, w = (t.to(device).requires_grad_() for t in random_inputs(lmax, channels, edges,
                                                                           dtype=torch.float32))
        g = torch.randn_like(x)
        row = {"lmax": lmax, "channels": channels}
        def run():
            return torch.autograd.grad(tp(x, y, w), (x, y, w), g)
        for mode in ("fused", "split"):
            with sh_first_backward(mode):
                row[f"{mode}_fwdbwd_ms"] = time_ms(run, torch.device(device), 10, 0.5)
        best[lmax] = min(("fused", "split"), key=lambda m: row[f"{m}_fwdbwd_ms"])
        rows.append(row)
    return {"rows": rows, "best": best}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_tdn_out")))
    ap.add_argument("--edges", type=int, default=20000)
    ap.add_argument("--deadline", type=float, default=110.0, help="seconds; table rows after it are skipped")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    from sciml.bench.tp import bench_row, markdown_table
    from sciml.tdn import triton_cp
    from sciml.tdn.check import compare_devices

    info = {"device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
            "torch": torch.__version__, "python": platform.python_version(), "triton_available": triton_cp.available(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    import e3nn

    info["e3nn"] = e3nn.__version__
    print(json.dumps(info), flush=True)
    checks: list = []
    sweep: list = []
    rows: list[dict] = []

    def save() -> None:
        """Write what is there so far (the caller may be killed by an outer time limit at any point)."""
        info["total_seconds"] = round(elapsed(), 1)
        result = {"info": info, "checks": checks, "config_sweep": sweep, "rows": rows}
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "gpu_tdn.json", json.dumps(result, indent=1))
        md = [f"# TDN tensor product on {info['device']}", "",
              f"torch {info['torch']}, triton {info['triton']}, e3nn {info['e3nn']}; float32, TF32 off for torch "
              f"matmuls; CP rank = 7L^2 (paper default); fused config {info.get('fused_config')}; "
              f"{info['total_seconds']} s", "", markdown_table(rows), "", "## Checks", ""]
        md += [f"- {c['name']}: {json.dumps(c.get('result', c.get('error')))}" for c in checks + sweep]
        atomic_write_text(args.out / "gpu_tdn.md", "\n".join(md) + "\n")
    # on CPU a smoke run: tiny sizes; with TRITON_INTERPRET=1 the fused paths run in Triton's interpreter
    dev = "cuda" if cuda else "cpu"
    edges = args.edges if cuda else 64
    lmaxes = [1, 2, 3, 4, 5, 6] if cuda else [1, 2]
    channels_list = [64, 128] if cuda else [16]
    fused_ok = triton_cp.available() and (cuda or os.environ.get("TRITON_INTERPRET") == "1")
    info["fused_tested"] = fused_ok
    for lmax in (1, 2, 3):
        guarded(checks, f"cpu_vs_{dev}_torch_L{lmax}_f64", compare_devices, lmax, 16, dev)
        guarded(checks, f"cpu_vs_{dev}_shfirst_L{lmax}_f64", compare_devices, lmax, 16, dev, contraction="sh_first")
        if fused_ok:
            guarded(checks, f"cpu_vs_{dev}_fused_L{lmax}_f64", compare_devices, lmax, 16, dev, fused=True)
            guarded(checks, f"cpu_vs_{dev}_shfused_L{lmax}_f64", compare_devices, lmax, 16, dev, fused=True,
                    contraction="sh_first_fused")
        save()
    guarded(checks, f"double_backward_{dev}_torch", double_backward_check, dev, False)
    if fused_ok:
        guarded(checks, f"cpu_vs_{dev}_fused_L2_f32", compare_devices, 2, 16, dev, fused=True, dtype=torch.float32)
        guarded(checks, f"double_backward_{dev}_fused", double_backward_check, dev, True)
        guarded(checks, f"cpu_vs_{dev}_shfused_L6_f32", compare_devices, 6, 64, dev, edges=256, fused=True,
                contraction="sh_first_fused", dtype=torch.float32)
        guarded(checks, f"double_backward_{dev}_shfused", double_backward_check, dev, True,
                contraction="sh_first_fused")
        with sh_first_backward("split"):
            guarded(checks, f"cpu_vs_{dev}_shfused_split_L3_f64", compare_devices, 3, 16, dev, fused=True,
                    contraction="sh_first_fused")
        guarded(checks, "float32_accuracy_L6" if cuda else "float32_accuracy_L1", float32_fused_vs_torch, dev,
                6 if cuda else 1, 64 if cuda else 8, 2000 if cuda else 16)
        guarded(sweep, "config_sweep_L6" if cuda else "config_sweep_L1", config_sweep, dev, 6 if cuda else 1,
                64 if cuda else 16, edges)
        modes = guarded(sweep, "sh_first_backward_modes", sh_backward_modes, dev, lmaxes, channels_list[0], edges)
        info["sh_first_backward"] = (modes or {}).get("best", {})
    save()
    info["fused_config"] = {f"L{lmax}_C{c}": triton_cp.rank_config((lmax + 1) ** 2, c)
                            for c in channels_list for lmax in lmaxes}
    save()
    for channels in channels_list:
        for lmax in lmaxes:
            if elapsed() > args.deadline:
                rows.append({"lmax": lmax, "channels": channels, "edges": edges, "error": "skipped: deadline"})
                continue
            precisions = ("ieee", "tf32x3", "tf32") if channels == 64 and lmax in (1, 6) else \
                ("ieee", "tf32x3") if channels == 64 else ("ieee",)
            reps, budget = (10, 0.4) if lmax <= 4 else (5, 0.3)
            mode = info.get("sh_first_backward", {}).get(lmax, "fused")
            with sh_first_backward(mode):
                entry = guarded([], f"row_L{lmax}_C{channels}", bench_row, lmax, channels, edges, dev, "default",
                                reps, budget, fused_ok, precisions if cuda else ("ieee",))
            if isinstance(entry, dict):
                entry["shfused_backward"] = mode
            rows.append(entry if isinstance(entry, dict) and "lmax" in entry else
                        {"lmax": lmax, "channels": channels, "edges": edges, "error": "failed, see log"})
            if cuda:
                torch.cuda.empty_cache()
            info["sh_first_fused_configs"] = triton_cp.tuned_configs()
            save()
    save()
    print((args.out / "gpu_tdn.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
