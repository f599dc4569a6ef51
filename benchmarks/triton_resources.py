"""Registers, spills, shared memory and occupancy of the fused TDN kernels compiled for sm_90 (H100 / H200), no GPU:
every SH-first candidate (channel chunk, warps) at each padded size, and the rank kernels with the automatic
launch configuration next to the former fixed one (64 rows, rank chunk 32, 4 warps). Markdown on stdout.

    python benchmarks/triton_resources.py [--arch 90] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton's launch default; silences its 3.9 notice

from sciml.tdn import triton_cp  # noqa: E402
from sciml.tdn.triton_resources import rank_resources, stage_resources  # noqa: E402

CHUNKS = ((16, 4), (32, 4), (64, 4), (16, 8), (32, 8), (64, 8))


def cell(res: dict) -> str:
    spill = f", **spills {res['spill_bytes']} B**" if res["spill_bytes"] else ""
    return f"{res['registers']} regs{spill}, {res['warps_per_sm']} warps/SM"


def sh_first_rows(arch: int) -> list[dict]:
    rows = []
    for stage, per_dp in triton_cp.EDGE_MATRIX_CONFIGS.items():
        for dp in sorted(per_dp):
            for bc, nw in CHUNKS:
                row = {"stage": stage, "DP": dp, "BC": bc, "num_warps": nw, "shipped": (bc, nw) in per_dp[dp]}
                for prec in ("ieee", "tf32x3"):
                    row[prec] = stage_resources(stage, dp, bc, nw, prec, arch=arch)
                rows.append(row)
    return rows


def rank_rows(arch: int) -> list[dict]:
    rows = []
    for channels in (64, 128):
        for lmax in range(1, 7):
            d = (lmax + 1) ** 2
            for label, config in (("former", (64, 32, 4)), ("automatic", ())):
                triton_cp.set_config(*config)
                row = {"lmax": lmax, "channels": channels, "config": label, **triton_cp.rank_config(d, channels)}
                for name in ("cp_fwd_kernel", "cp_bwd_kernel"):
                    row[name] = rank_resources(name, d, channels, arch=arch)
                rows.append(row)
            triton_cp.set_config()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, default=90, help="CUDA compute capability x 10 (90 = H100 / H200)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sh, rank = sh_first_rows(args.arch), rank_rows(args.arch)
    print(f"### SH-first kernels, float32, sm_{args.arch} (shipped = autotuner candidate)\n")
    print("| stage | DP | BC | warps | shipped | ieee | tf32x3 | shared (ieee) |\n|---|---|---|---|---|---|---|---|")
    for r in sh:
        print(f"| {r['stage']} | {r['DP']} | {r['BC']} | {r['num_warps']} | {'yes' if r['shipped'] else 'no'} | "
              f"{cell(r['ieee'])} | {cell(r['tf32x3'])} | {r['ieee']['shared_bytes'] // 1024} KiB |")
    print(f"\n### Rank kernels, float32 ieee, sm_{args.arch}\n")
    print("| L | C | config | rows | BR | warps | forward | backward |\n|---|---|---|---|---|---|---|---|")
    for r in rank:
        print(f"| {r['lmax']} | {r['channels']} | {r['config']} | {r['BE'] * r['CP']} | {r['BR']} | {r['num_warps']} | "
              f"{cell(r['cp_fwd_kernel'])} | {cell(r['cp_bwd_kernel'])} |")
    if args.json:
        args.json.write_text(json.dumps({"arch": args.arch, "sh_first": sh, "rank": rank}, indent=1))


if __name__ == "__main__":
    main()
