"""Print markdown tables from the JSON files written by the GPU benchmark scripts.

Usage: python benchmarks/gpu_tables.py [DIR] [--section tdn|potential|mskf|data|training|all]
DIR holds gpu_tdn.json, gpu_potential.json, gpu_mskf.json, gpu_data.json, gpu_training.json (the `--out` folder of
benchmarks/run_gpu_all.sh); default benchmarks/results/gpu_h200. Missing files are skipped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

# Comparison columns of the tdn table. ANCHOR_FWDBWD: target fwd+bwd speed-ups over e3nn of the plain three-matmul
# CP product on an H200, set for this project (not a published measurement). PAPER_FWD: forward speed-ups of the TDN
# tensor product over e3nn reported in the TDN paper (Lin et al., arXiv 2507.01131, Fig. 3c).
ANCHOR_FWDBWD = {1: 2.6, 2: 6.6, 3: 12.0, 4: 20.0, 5: 26.0, 6: 42.0}
PAPER_FWD = {1: 4.0, 2: 4.8, 3: 15.0, 4: 26.7, 5: 47.6, 6: 83.6}


def _g(x: float) -> str:
    """Three significant digits, thousands separators above 1000."""
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _ms_x(r: dict[str, Any], prefix: str) -> str:
    """'<f+b ms> (<x e3nn>x)' of one implementation, '-' where the row lacks it (failed or not run)."""
    if f"{prefix}_fwdbwd_ms" not in r:
        return "-"
    ms = r[f"{prefix}_fwdbwd_ms"]
    return f"{_g(ms)} ({_g(r['e3nn_fwdbwd_ms'] / ms)}x)"


def _opt(r: dict[str, Any], key: str, fmt: Callable[[float], str] = _g, suffix: str = "") -> str:
    return fmt(r[key]) + suffix if r.get(key) is not None else "-"


def tdn(d: dict[str, Any]) -> str:
    """Speed table (ms, medians; x = speed-up) and error/memory table of the tensor-product benchmark.
    fused = Triton kernels of the rank contraction, fused SH-first = Triton kernels of the SH-first contraction
    ("split": its backward ran as two kernels at that row)."""
    speed, acc = [], []
    for r in d["rows"]:
        if "e3nn_fwdbwd_ms" not in r:
            continue
        L, C = r["lmax"], r["channels"]
        shfirst_fwd = _opt(r, "shfirst_fwd_speedup") + " / " + _opt(r, "shfused_fwd_speedup")
        speed.append([
            str(L), str(C), _g(r["e3nn_fwdbwd_ms"]), _ms_x(r, "cp"), _ms_x(r, "shfirst"), _ms_x(r, "fused"),
            _ms_x(r, "shfused") + (" split" if r.get("shfused_backward") == "split" else ""), f"{ANCHOR_FWDBWD[L]:g}x",
            _opt(r, "shfirst_vs_cp_fwdbwd", suffix="x"), _opt(r, "fused_vs_cp_fwdbwd", suffix="x"),
            _opt(r, "shfused_vs_cp_fwdbwd", suffix="x"),
            f"{_g(r['fwd_speedup'])} / {shfirst_fwd}x", f"{PAPER_FWD[L]:g}x",
        ])
        acc.append([
            str(L), str(C), *(_opt(r, f"{k}_rel_error", lambda v: f"{v:.1e}") for k in ("shfirst", "fused", "shfused")),
            f"{r['fused_tf32_rel_error']:.1e} ({_g(r['fused_tf32_vs_cp_fwdbwd'])}x)" if "fused_tf32_rel_error" in r
            else "-",
            " / ".join(_opt(r, f"{k}_peak_mib") for k in ("e3nn", "cp", "shfirst", "fused", "shfused")),
        ])
    return "\n\n".join([
        _table(["L", "C", "e3nn f+b ms", "CP f+b ms (x e3nn)", "SH-first f+b ms (x e3nn)", "fused f+b ms (x e3nn)",
                "fused SH-first f+b ms (x e3nn)", "anchor CP f+b x", "SH-first / CP", "fused / CP",
                "fused SH-first / CP", "fwd x e3nn: CP / SH-first / fused SH-first", "paper fwd x"], speed),
        _table(["L", "C", "SH-first fp32 rel. error", "fused ieee fp32 rel. error", "fused SH-first fp32 rel. error",
                "fused tf32 rel. error (f+b x CP)", "peak MiB e3nn / CP / SH-first / fused / fused SH-first"], acc),
    ])


def potential(d: dict[str, Any]) -> str:
    """`cp` vs `cg` energy+forces throughput and training-step time, paired by workload."""
    pairs: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in d["results"]:
        key = (r["kind"], r["system"], r["batch"], r["atoms"], r["lmax"], r["channels"], r["layers"])
        pairs.setdefault(key, {})[r["tensor_product"]] = r
    rows = []
    for (kind, system, batch, atoms, L, C, layers), p in pairs.items():
        cp, cg = p["cp"], p["cg"]
        ms = "ms_per_step" if kind == "train_step" else "ms_per_batch"
        atoms_s = (f"{_g(cp['atoms_per_s'])} / {_g(cg['atoms_per_s'])}" if "atoms_per_s" in cp else "-")
        rows.append([
            "train step" if kind == "train_step" else "energy+forces", system, str(batch), str(atoms),
            f"L={L}, C={C}, {layers} layers", f"{_g(cp[ms])} / {_g(cg[ms])}",
            f"{_g(cp['structures_per_s'])} / {_g(cg['structures_per_s'])}", atoms_s, f"{cg[ms] / cp[ms]:.1f}x",
        ])
    return _table(["workload", "system", "batch", "atoms", "model", "ms cp / cg", "structures/s cp / cg",
                   "atoms/s cp / cg", "cp speed-up"], rows)


def mskf(d: dict[str, Any]) -> str:
    """Network-only and end-to-end step cost per column against MSKF's cost per column."""
    ref = d["mskf_us_per_column"]
    rows = []
    for r in d["rows"]:
        where = "GPU" if r["device"] == "cuda" else f"CPU, {r['threads']} threads"
        rows.append([
            f"{r['layers']} × {r['hidden']} {'Bi-LSTM' if r['architecture'] == 'bilstm' else 'MLP'}",
            f"{r['ni']} × {r['nj']} × {r['nk']}", where, r["dtype"].replace("torch.", ""),
            f"{r['network_us_per_column']:.3g} ({r['network_best_us_per_column']:.3g})",
            f"{r['step_us_per_column']:.3g} ({r['step_best_us_per_column']:.3g})",
            f"{r['step_s'] * 1e3:.3g} ms", f"{ref / r['network_us_per_column']:.3g}x",
            f"{ref / r['step_us_per_column']:.3g}x",
        ])
    return _table(["model", "tile", "device", "precision", "network µs/col median (best)",
                   "step µs/col median (best)", "tile time (step)", "network vs MSKF", "step vs MSKF"], rows)


def data(d: dict[str, Any]) -> str:
    """Read and DataLoader rates (frames/s) on the GPU host."""
    rows = []
    for name, r in d["read"].items():
        if not isinstance(r, dict):
            continue
        extra = f"{r['workers']} workers, <= {r['max_atoms']} atoms, to {r['device']}" if "workers" in r else ""
        rows.append([name, extra, f"{_g(r['best'])} ({_g(r['median'])})", _g(r["cpu"])])
    return _table(["path", "setup", "wall best (median)", "per CPU s"], rows)


def training(d: dict[str, Any]) -> str:
    """Engine checks: AMP run, per-step overhead, resume equivalence."""
    a, o, r = d["amp"], d["overhead"], d["resume"]
    return "\n".join([
        f"- AMP: {a['steps']} steps at {a['steps_per_s']:.1f} steps/s, val RMSE {a['val_rmse_first']:.4f} -> "
        f"{a['val_rmse_last']:.4f} (float64 reload {a['val_rmse_float64_reload']:.4f}), "
        f"loss decreased: {a['loss_decreased']}",
        f"- overhead: engine {o['engine_ms_per_step']:.2f} ms/step vs bare loop {o['bare_loop_ms_per_step']:.2f} "
        f"ms/step ({o['engine_overhead_ms_per_step']:.2f} ms)",
        f"- resume from step {r['resumed_from_step']} to {r['final_step']}: parameters bit-identical "
        f"{r['bit_identical_params']}, EMA bit-identical {r['bit_identical_ema']}",
    ])


SECTIONS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "tdn": ("gpu_tdn.json", tdn), "potential": ("gpu_potential.json", potential), "mskf": ("gpu_mskf.json", mskf),
    "data": ("gpu_data.json", data), "training": ("gpu_training.json", training),
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", nargs="?", type=Path, default=Path(__file__).parent / "results" / "gpu_h200")
    p.add_argument("--section", choices=[*SECTIONS, "all"], default="all")
    args = p.parse_args(argv)
    for name, (fname, fn) in SECTIONS.items():
        path = args.dir / fname
        if args.section in (name, "all") and path.is_file():
            print(f"<!-- {name}: {path.name} -->\n{fn(json.loads(path.read_text()))}\n")


if __name__ == "__main__":
    main()
