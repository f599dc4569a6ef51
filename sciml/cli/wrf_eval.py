"""``sciml wrf eval``: skill of the MSKF surrogate against the MSKF fields in wrfout files (deep and shallow)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sciml.cli.wrf import add_surrogate_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score the MSKF surrogate on wrfout files that hold MSKF's fields",
                       description=__doc__)
    p.add_argument("wrfout", nargs="+", type=Path, help="wrfout file(s) with RTHCUTEN ... RQSCUTEN, PRATEC, NCA")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--plots", type=Path, default=None, metavar="DIR",
                   help="write R^2 profiles and precipitation maps (PNG) to DIR")
    p.add_argument("--frames", type=_frames, default=slice(None), metavar="START:STOP",
                   help="output times to score, a Python slice over the concatenated files, e.g. --frames=-1: for the "
                        "last one (default: all)")
    add_surrogate_options(p)
    p.set_defaults(func=run)


def _frames(text: str) -> slice:
    try:
        parts = [int(x) if x.strip() else None for x in text.split(":")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a slice: {text!r} (use e.g. 4:, -1:, 0:2)") from None
    if len(parts) == 1:
        return slice(parts[0], None if parts[0] == -1 else parts[0] + 1)
    if len(parts) > 3:
        raise argparse.ArgumentTypeError(f"not a slice: {text!r}")
    return slice(*parts)


def summary_table(report: dict[str, Any]) -> str:
    """A plain-text table of the headline scores."""
    lines = [f"{report['columns']} columns, {report['frames']} output time(s) {', '.join(report['times'])}",
             f"trigger  precision {report['trigger_precision']:.3f}  recall {report['trigger_recall']:.3f}  "
             f"F1 {report['trigger_f1']:.3f}  (deep F1 {report['deep_f1']:.3f}, shallow F1 {report['shallow_f1']:.3f})",
             f"{'field':10s} {'R2 active':>10s} {'R2 deep':>9s} {'R2 shallow':>11s} {'RMSE active':>12s} "
             f"{'bias active':>12s}"]

    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    for f in report["r2"]:
        lines.append(f"{f:10s} {fmt(report['r2'][f]):>10s} {fmt(report['deep']['r2'].get(f)):>9s} "
                     f"{fmt(report['shallow']['r2'].get(f)):>11s} {report['rmse'][f]:12.3e} {report['bias'][f]:12.3e}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from sciml.mskf.evaluate import evaluate

    report, skill = evaluate(args.checkpoint, args.wrfout, device=args.device, progress=not args.quiet,
                             frames=args.frames, precision=args.precision, mask_nonfinite=args.mask_nonfinite)
    if args.plots is not None:
        from sciml.mskf.plots import precipitation_maps, r2_profiles

        truth = sum(t for t, _ in skill.pratec_maps) / len(skill.pratec_maps)
        pred = sum(p for _, p in skill.pratec_maps) / len(skill.pratec_maps)
        report["plots"] = [str(r2_profiles(report, args.plots / "mskf_r2_profiles.png")),
                           str(precipitation_maps(truth, pred, args.plots / "mskf_pratec_maps.png",
                                                  f"mean over {len(skill.pratec_maps)} output time(s)"))]
    print(json.dumps(report, indent=1) if args.json else summary_table(report))
    if args.plots is not None and not args.json:
        print("plots: " + ", ".join(report["plots"]))
    return 0
