"""Tensor-product speed: e3nn CG (uvu, per-path weights) vs CP product (plain torch and fused Triton).

Rows: lmax, channels, edges, device, cp_rank, then per implementation the median forward and forward+backward time
(ms, float32, backward w.r.t. x, y and w) and, on CUDA, peak memory (MiB, allocated during forward+backward).
``cp_*`` is the plain three-matmul torch CP product (through the rank), ``shfirst_*`` the same function contracted
the other way (per-edge d x d matrix from y and the CP reconstruction, then applied to x; two torch matmuls, the
default of CPTensorProduct), ``fused_*`` the Triton kernels of the rank contraction (CUDA with triton only),
``fused_tf32x3_*`` / ``fused_tf32_*`` the same with tensor-core dots, ``shfused_*`` (and ``shfused_<precision>_*``)
the SH-first contraction with its per-edge product in Triton kernels (``contraction="sh_first_fused"``), each with
its measured relative error against the plain float32 product. Speed-ups are e3nn time / CP time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from sciml.errors import ConfigError


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], device: torch.device, repeats: int, budget_s: float) -> float:
    """Median wall time of ``fn`` in ms: one warm-up call, then up to ``repeats`` timed calls (at least 2) while the
    total stays within ``budget_s`` seconds."""
    fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 2 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _peak_mib(fn: Callable[[], object], device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    _sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    _sync(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def _measure(prefix: str, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], device: torch.device,
             repeats: int, budget_s: float, chunk: int | None = None) -> dict:
    """Median forward and forward+backward times (and CUDA peak memory) of ``module(*inputs)``. With ``chunk``, each
    call runs over the edges in slices of ``chunk`` (forward, or forward and backward, slice by slice), so only one
    slice's intermediates are alive at a time; the time is the sum over the slices."""
    parts = [inputs] if chunk is None else \
        [tuple(t[i:i + chunk] for t in inputs) for i in range(0, inputs[0].shape[0], chunk)]
    with torch.no_grad():
        grads = [torch.randn_like(module(*part)) for part in parts]

    def fwd() -> object:
        with torch.no_grad():
            return [module(*part) for part in parts]

    def fwdbwd() -> object:
        return [torch.autograd.grad(module(*part), part, grad) for part, grad in zip(parts, grads)]

    return {
        f"{prefix}_fwd_ms": time_ms(fwd, device, repeats, budget_s),
        f"{prefix}_fwdbwd_ms": time_ms(fwdbwd, device, repeats, budget_s),
        f"{prefix}_peak_mib": _peak_mib(fwdbwd, device),
    }


def bench_row(lmax: int, channels: int, edges: int, device: str | torch.device = "cpu", rank: int | str = "default",
              repeats: int = 10, budget_s: float = 2.0, fused: bool | None = None,
              precisions: tuple[str, ...] = ("ieee",), seed: int = 0, e3nn_chunk: int | None = None) -> dict:
    """One table row (float32). ``fused`` defaults to: CUDA and Triton available; one fused column group per
    Triton dot precision in ``precisions`` ("ieee" -> ``fused_*``, others -> ``fused_<precision>_*``).
    A failing fused variant is recorded as ``<prefix>_error`` and the row goes on. ``e3nn_chunk``: time e3nn over
    the edges in slices of that many (for sizes whose e3nn intermediates do not fit in memory; see ``_measure``)."""
    from sciml.tdn import CPTensorProduct, E3nnTensorProduct
    from sciml.tdn.check import random_inputs
    from sciml.tdn.triton_cp import available

    device = torch.device(device)
    fused = (device.type == "cuda" and available()) if fused is None else fused
    cp = CPTensorProduct(lmax, channels, rank=rank, use_triton=False, contraction="rank").float().to(device)
    sf = CPTensorProduct(lmax, channels, rank=rank, contraction="sh_first").float().to(device)
    e3 = E3nnTensorProduct(lmax, channels).float().to(device)
    x, _, y, w = random_inputs(lmax, channels, edges, seed=seed, dtype=torch.float32, device=device)
    wp = torch.randn(edges, e3.num_paths, channels, device=device)
    for t in (x, y, w, wp):
        t.requires_grad_(True)
    row: dict = {"lmax": lmax, "channels": channels, "edges": edges, "device": str(device), "dtype": "float32",
                 "cp_rank": cp.rank, "num_paths": e3.num_paths, "e3nn_chunk": e3nn_chunk}
    row.update(_measure("e3nn", e3, (x, y, wp), device, repeats, budget_s, e3nn_chunk))
    row.update(_measure("cp", cp, (x, y, w), device, repeats, budget_s))
    row.update(_measure("shfirst", sf, (x, y, w), device, repeats, budget_s))
    row["fwd_speedup"] = row["e3nn_fwd_ms"] / row["cp_fwd_ms"]
    row["fwdbwd_speedup"] = row["e3nn_fwdbwd_ms"] / row["cp_fwdbwd_ms"]
    row["shfirst_fwd_speedup"] = row["e3nn_fwd_ms"] / row["shfirst_fwd_ms"]
    row["shfirst_fwdbwd_speedup"] = row["e3nn_fwdbwd_ms"] / row["shfirst_fwdbwd_ms"]
    row["shfirst_vs_cp_fwdbwd"] = row["cp_fwdbwd_ms"] / row["shfirst_fwdbwd_ms"]
    with torch.no_grad():
        ref = cp(x, y, w)
        row["shfirst_rel_error"] = float((sf(x, y, w) - ref).norm() / ref.norm())
    if fused:
        variants = [(name + ("" if p == "ieee" else f"_{p}"), _FusedModule(cp, order, p))
                    for name, order in (("fused", "rank"), ("shfused", "sh_first")) for p in precisions]
        for prefix, module in variants:
            row.update(_measure_variant(prefix, module, (x, y, w), ref, row, device, repeats, budget_s))
    return row


def _measure_variant(prefix: str, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], ref: torch.Tensor,
                     row: dict, device: torch.device, repeats: int, budget_s: float) -> dict:
    """Times, relative error against ``ref`` and speed-ups (over e3nn and plain CP) of one fused variant; a failure
    (e.g. a precision the GPU/Triton lacks) is recorded as ``<prefix>_error``."""
    try:
        res = _measure(prefix, module, inputs, device, repeats, budget_s)
        with torch.no_grad():
            res[f"{prefix}_rel_error"] = float((module(*inputs) - ref).norm() / ref.norm())
    except Exception as exc:
        return {f"{prefix}_error": f"{type(exc).__name__}: {exc}"[:300]}
    res[f"{prefix}_fwd_speedup"] = row["e3nn_fwd_ms"] / res[f"{prefix}_fwd_ms"]
    res[f"{prefix}_fwdbwd_speedup"] = row["e3nn_fwdbwd_ms"] / res[f"{prefix}_fwdbwd_ms"]
    res[f"{prefix}_vs_cp_fwdbwd"] = row["cp_fwdbwd_ms"] / res[f"{prefix}_fwdbwd_ms"]
    res[f"{prefix}_vs_cp_fwd"] = row["cp_fwd_ms"] / res[f"{prefix}_fwd_ms"]
    return res


class _FusedModule(torch.nn.Module):
    """A fused Triton product ("rank" or "sh_first" order) with a CPTensorProduct's factors (benchmark helper)."""

    def __init__(self, cp: torch.nn.Module, order: str, precision: str):
        super().__init__()
        self.cp = cp
        self.order = order
        self.precision = precision

    def forward(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        from sciml.tdn.triton_cp import cp_product_fused, sh_first_fused

        if self.order == "sh_first":
            return sh_first_fused(x, y, w, self.cp.cp_tensor, precision=self.precision)
        return cp_product_fused(x, y, w, self.cp.cp_x, self.cp.cp_y, self.cp.cp_out, precision=self.precision)


COLUMNS = [("lmax", "L"), ("channels", "C"), ("edges", "E"), ("cp_rank", "R"), ("e3nn_fwd_ms", "e3nn fwd ms"),
           ("cp_fwd_ms", "CP fwd ms"), ("fwd_speedup", "fwd x"), ("e3nn_fwdbwd_ms", "e3nn f+b ms"),
           ("cp_fwdbwd_ms", "CP f+b ms"), ("fwdbwd_speedup", "f+b x"), ("shfirst_fwd_ms", "SH-first fwd ms"),
           ("shfirst_fwdbwd_ms", "SH-first f+b ms"), ("shfirst_fwdbwd_speedup", "SH-first f+b x"),
           ("shfirst_vs_cp_fwdbwd", "SH-first/CP f+b x"), ("fused_fwd_ms", "fused fwd ms"),
           ("fused_fwdbwd_ms", "fused f+b ms"), ("fused_fwdbwd_speedup", "fused f+b x"),
           ("fused_vs_cp_fwdbwd", "fused/CP f+b x"), ("fused_tf32x3_fwdbwd_ms", "tf32x3 f+b ms"),
           ("fused_tf32x3_vs_cp_fwdbwd", "tf32x3/CP f+b x"), ("fused_tf32x3_rel_error", "tf32x3 err"),
           ("fused_tf32_fwdbwd_ms", "tf32 f+b ms"), ("fused_tf32_rel_error", "tf32 err"),
           ("shfused_fwd_ms", "fused SH-first fwd ms"), ("shfused_fwd_speedup", "fused SH-first fwd x"),
           ("shfused_fwdbwd_ms", "fused SH-first f+b ms"), ("shfused_fwdbwd_speedup", "fused SH-first f+b x"),
           ("shfused_vs_cp_fwdbwd", "fused SH-first/CP f+b x"), ("shfused_rel_error", "fused SH-first err"),
           ("shfused_tf32x3_fwdbwd_ms", "fused SH-first tf32x3 f+b ms"),
           ("shfused_tf32x3_rel_error", "fused SH-first tf32x3 err"),
           ("e3nn_peak_mib", "e3nn MiB"), ("cp_peak_mib", "CP MiB"), ("shfirst_peak_mib", "SH-first MiB"),
           ("fused_peak_mib", "fused MiB"), ("shfused_peak_mib", "fused SH-first MiB"), ("fused_error", "fused error"),
           ("fused_tf32x3_error", "tf32x3 error"), ("shfused_error", "fused SH-first error")]


def markdown_table(rows: list[dict]) -> str:
    """Markdown table of the columns present in ``rows`` (errors shown in their own column)."""
    cols = [(k, h) for k, h in COLUMNS if any(r.get(k) is not None for r in rows)]
    if any("error" in r for r in rows):
        cols.append(("error", "error"))

    def fmt(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v).replace("|", "/").replace("\n", " ")[:120]

    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(k)) for k, _ in cols) + " |" for r in rows]
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lmax", type=_ints, default=[1, 2, 3, 4, 5, 6], help="comma-separated degrees (default 1..6)")
    p.add_argument("--edges", type=int, default=20000, help="edges E (default 20000)")
    p.add_argument("--channels", type=_ints, default=[64], help="comma-separated channel counts (default 64)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--rank", default="default", help="CP rank: 'default' (7L^2, the paper's), 'exact' or an int")
    p.add_argument("--repeats", type=int, default=10, help="timed repeats per measurement (median)")
    p.add_argument("--budget", type=float, default=2.0, help="seconds per measurement after the first 2 repeats")
    p.add_argument("--precisions", default="ieee",
                   help="fused-kernel dot precisions to time, comma-separated from ieee,tf32x3,tf32 (CUDA only)")
    p.add_argument("--e3nn-chunk", type=int, default=None, metavar="N",
                   help="time e3nn over the edges in slices of N (forward and backward slice by slice; the time is "
                        "the sum) when its intermediates for all E edges do not fit in memory")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list")


def run(args: argparse.Namespace) -> int:
    rank: int | str = args.rank if args.rank in ("default", "exact") else int(args.rank)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: CUDA is not available on this machine")
    rows = []
    for channels in args.channels:
        for lmax in args.lmax:
            row = bench_row(lmax, channels, args.edges, args.device, rank, args.repeats, args.budget,
                            precisions=tuple(args.precisions.split(",")), e3nn_chunk=args.e3nn_chunk)
            rows.append(row)
            if not args.json:
                print(f"L={lmax} C={channels}: e3nn {row['e3nn_fwdbwd_ms']:.2f} ms, CP {row['cp_fwdbwd_ms']:.2f} ms "
                      f"(fwd+bwd, {row['fwdbwd_speedup']:.1f}x)", flush=True)
    print(json.dumps(rows, indent=1) if args.json else "\n" + markdown_table(rows))
    return 0
