"""Skill of the MSKF surrogate against the MSKF fields in wrfout files (``sciml wrf eval``).

Truth classes per column (from the file's own fields, see :func:`sciml.mskf.data.activity`): *deep* (NCA >=
0.5 dt; tendencies computed at the trigger step, up to ~NCA earlier, and held) and *shallow* (NCA < 0.5 dt with
nonzero tendencies; recomputed every step). Trigger scores compare P(trigger) > 0.5 with deep-or-shallow. Regression
scores use the post-constrained outputs (what WRF would receive) on truly active columns: per level and pooled over
levels ("r2" = 1 - SSE / SST over all (column, level) pairs; "r2_within_level" = 1 - SSE / sum over levels of
the SST about each level's own mean, which gives no credit for knowing the mean vertical profile and is stricter). Every score is reported for all active, deep and shallow columns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from sciml.coupling.hook import MSKFSurrogate
from sciml.errors import DataError
from sciml.mskf.data import activity
from sciml.mskf.infer import OUTPUT_3D, frame_dt, iter_predictions, open_checked

#: fields compared (WRF names): the six tendencies per level, then PRATEC and NCA per column
SCORED_3D: tuple[str, ...] = tuple(n for n in OUTPUT_3D if n != "W0AVG")
SCORED_2D: tuple[str, ...] = ("PRATEC", "NCA")
CLASSES: tuple[str, ...] = ("active", "deep", "shallow")
_SUMS = ("n", "sy", "syy", "sp", "se", "sae", "sse")


class Skill:
    """Streaming sums per class, field and level for R^2, RMSE, MAE and bias, plus trigger counts."""

    def __init__(self, n_levels: int):
        self.sums = {c: {f: {s: np.zeros(n_levels if f in SCORED_3D else 1) for s in _SUMS}
                         for f in (*SCORED_3D, *SCORED_2D)} for c in CLASSES}
        self.counts: dict[str, float] = {}
        self.pratec_maps: list[tuple[np.ndarray, np.ndarray]] = []

    def _count(self, key: str, value: Any) -> None:
        self.counts[key] = self.counts.get(key, 0.0) + float(np.sum(value))

    def add(self, truth: dict[str, np.ndarray], pred: dict[str, np.ndarray], dt: float,
            keep: np.ndarray | None = None) -> None:
        """One output time: ``truth`` / ``pred`` in wrfout layout (3-D (nk, ny, nx), 2-D (ny, nx)); only the columns
        in ``keep`` (ny, nx; default all) are scored."""
        tend = np.stack([truth[f] for f in SCORED_3D], axis=-1)               # (nk, ny, nx, 6)
        deep, shallow = activity(np.moveaxis(tend, 0, -2), truth["NCA"], dt)  # (ny, nx)
        keep = np.ones(deep.shape, bool) if keep is None else keep
        deep, shallow = deep & keep, shallow & keep
        active = deep | shallow
        on = (pred["TRIGGER_PROB"] > 0.5) & keep
        pred_deep = on & (pred["NCA"] >= 0.5 * dt)
        self._count("columns", keep)
        for name, t, p in (("trigger", active, on), ("deep", deep, pred_deep), ("shallow", shallow, on & ~pred_deep)):
            self._count(f"{name}_tp", t & p)
            self._count(f"{name}_fp", ~t & p)
            self._count(f"{name}_fn", t & ~p)
        self._count("trigger_tn", keep & ~active & ~on)
        true_nca = np.where(deep, truth["NCA"], 0.0)
        for cls, mask in (("active", active), ("deep", deep), ("shallow", shallow)):
            for f in (*SCORED_3D, *SCORED_2D):
                y = truth[f][:, mask].T if f in SCORED_3D else (true_nca if f == "NCA" else truth[f])[mask][:, None]
                p = pred[f][:, mask].T if f in SCORED_3D else pred[f][mask][:, None]
                y, p = y.astype(np.float64), p.astype(np.float64)
                s = self.sums[cls][f]
                s["n"] += len(y)
                s["sy"] += y.sum(0)
                s["syy"] += (y * y).sum(0)
                s["sp"] += p.sum(0)
                s["se"] += (p - y).sum(0)
                s["sae"] += np.abs(p - y).sum(0)
                s["sse"] += ((p - y) ** 2).sum(0)
        self.pratec_maps.append((truth["PRATEC"], pred["PRATEC"]))

    def report(self) -> dict[str, Any]:
        """JSON-able scores (see the module docstring): top-level = all active columns, plus "deep"/"shallow"."""
        out: dict[str, Any] = {"columns": int(self.counts.get("columns", 0))}
        for name in ("trigger", "deep", "shallow"):
            tp, fp, fn = (self.counts.get(f"{name}_{k}", 0.0) for k in ("tp", "fp", "fn"))
            prec, rec = tp / max(tp + fp, 1.0), tp / max(tp + fn, 1.0)
            out[f"{name}_precision"], out[f"{name}_recall"] = prec, rec
            out[f"{name}_f1"] = 2 * prec * rec / max(prec + rec, 1e-12)
            out[f"{name}_columns"] = int(tp + fn)
        out["trigger_accuracy"] = (self.counts.get("trigger_tp", 0.0) + self.counts.get("trigger_tn", 0.0)) \
            / max(out["columns"], 1)
        ref_var = {f: self._pooled_var("active", f) for f in self.sums["active"]}
        for cls in CLASSES:
            scores = self._class_scores(cls, ref_var)
            if cls == "active":
                out.update(scores)
            else:
                out[cls] = scores
        return out

    def _pooled_var(self, cls: str, f: str) -> float:
        s = self.sums[cls][f]
        n = s["n"].sum()
        return float((s["syy"].sum() - s["sy"].sum() ** 2 / n) / n) if n > 0 else 0.0

    def _class_scores(self, cls: str, ref_var: dict[str, float]) -> dict[str, Any]:
        """Scores of one class; R^2 is None where the truth barely varies in this class (variance below 1e-6 of
        its variance over all active columns, e.g. ice tendencies of shallow columns), where it means nothing."""
        res: dict[str, Any] = {k: {} for k in ("r2", "r2_within_level", "rmse", "mae", "bias", "per_level")}
        res["truth_std"] = {}
        for f, s in self.sums[cls].items():
            n = s["n"]
            if n.sum() == 0:
                continue
            sst_level = s["syy"] - s["sy"] ** 2 / np.maximum(n, 1)
            sst_pooled = s["syy"].sum() - s["sy"].sum() ** 2 / n.sum()
            res["truth_std"][f] = float(np.sqrt(max(sst_pooled, 0.0) / n.sum()))
            meaningful = sst_pooled / n.sum() > 1e-6 * ref_var[f]
            res["r2"][f] = float(1 - s["sse"].sum() / sst_pooled) if meaningful else None
            res["rmse"][f] = float(np.sqrt(s["sse"].sum() / n.sum()))
            res["mae"][f] = float(s["sae"].sum() / n.sum())
            res["bias"][f] = float(s["se"].sum() / n.sum())
            varies = (sst_level / np.maximum(n, 1) > 1e-6 * ref_var[f]) & meaningful
            r2_level = np.where(varies, 1 - s["sse"] / np.where(varies, sst_level, 1.0), np.nan)
            res["r2_within_level"][f] = float(1 - s["sse"].sum() / sst_level.sum()) if meaningful else None
            if f in SCORED_3D:
                res["per_level"][f] = {
                    "r2": [None if np.isnan(v) else float(v) for v in r2_level],
                    "rmse": (np.sqrt(s["sse"] / np.maximum(n, 1))).tolist(),
                    "mae": (s["sae"] / np.maximum(n, 1)).tolist(),
                    "bias": (s["se"] / np.maximum(n, 1)).tolist(),
                }
        res["count"] = int(self.sums[cls]["PRATEC"]["n"][0])
        return res


TRUTH_VARIABLES: tuple[str, ...] = (*SCORED_3D, *SCORED_2D)


def evaluate(checkpoint: str | os.PathLike, paths: Sequence[str | os.PathLike], device: str = "cpu",
             progress: bool = True, frames: slice = slice(None), precision: str = "float32",
             mask_nonfinite: bool = False) -> tuple[dict[str, Any], Skill]:
    """Scores of the surrogate in ``checkpoint`` on the output times ``frames`` of ``paths`` (all by default;
    indices into the concatenated files) - see :meth:`Skill.report`. Columns with non-finite inputs are refused, or
    with ``mask_nonfinite`` left out of every score and counted as ``masked_columns``."""
    surrogate = MSKFSurrogate.from_checkpoint(checkpoint, device=device, precision=precision)
    ds = open_checked(paths, surrogate, also=TRUTH_VARIABLES)
    ds = ds.isel(Time=frames)
    if ds.sizes["Time"] == 0:
        raise DataError(f"no output times selected by {frames} in {', '.join(str(p) for p in paths)}")
    dt, _ = frame_dt(ds)
    skill = Skill(surrogate.n_levels)
    n_masked = 0
    for t, pred, masked in iter_predictions(surrogate, ds, progress, mask_nonfinite):
        truth = {f: np.asarray(v, np.float32) for f, v in
                 ds[list(TRUTH_VARIABLES)].isel(Time=t).compute().data_vars.items()}
        skill.add(truth, pred, dt, keep=~masked)
        n_masked += int(masked.sum())
    report = skill.report()
    report["masked_columns"] = n_masked
    times = [str(t) for t in np.asarray(ds["time"].values).astype("datetime64[s]")] if "time" in ds.coords else []
    report.update({"checkpoint": str(checkpoint), "files": [str(p) for p in paths], "frames": int(ds.sizes["Time"]),
                   "times": times, "dt": dt, "precision": precision})
    return report, skill
