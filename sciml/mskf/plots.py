"""Evaluation plots: vertical R^2 profiles per tendency and convective precipitation maps, truth vs surrogate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from sciml.utils.atomic import atomic_path

MM_PER_HOUR = 3600.0  # mm s-1 -> mm h-1


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip("."))
    return path


def r2_profiles(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Per-level R^2 of each tendency (rows: level index, bottom to top) for active, deep and shallow columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = list(report["per_level"])
    fig, axes = plt.subplots(1, len(fields), figsize=(2.6 * len(fields), 4.2), sharey=True)
    for ax, f in zip(np.atleast_1d(axes), fields):
        for label, block in (("all active", report), ("deep", report["deep"]), ("shallow", report["shallow"])):
            r2 = block["per_level"].get(f, {}).get("r2")
            if r2:
                vals = np.array([np.nan if v is None else v for v in r2], dtype=float)
                ax.plot(np.clip(vals, -1, 1), np.arange(1, len(vals) + 1), label=label)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set_xlim(-1, 1)
        ax.set_title(f, fontsize=9)
        ax.set_xlabel("R$^2$ (clipped at -1)")
    np.atleast_1d(axes)[0].set_ylabel("model level (1 = lowest)")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    out = _save(fig, Path(path))
    plt.close(fig)
    return out


def precipitation_maps(truth: np.ndarray, pred: np.ndarray, path: str | os.PathLike, title: str = "") -> Path:
    """Side-by-side maps (ny, nx) of MSKF's PRATEC and the surrogate's, in mm h-1, on one colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vmax = max(float(np.max(truth)), float(np.max(pred)), 1e-9) * MM_PER_HOUR
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for ax, field, name in zip(axes, (truth, pred), ("MSKF (WRF)", "surrogate")):
        im = ax.pcolormesh(field * MM_PER_HOUR, vmin=0, vmax=vmax, cmap="Blues")
        ax.set_title(f"{name} PRATEC", fontsize=10)
        ax.set_xlabel("west_east index")
        ax.set_aspect("equal")
    axes[0].set_ylabel("south_north index")
    fig.colorbar(im, ax=axes, label="convective precipitation (mm h$^{-1}$)", shrink=0.85)
    if title:
        fig.suptitle(title, fontsize=10)
    out = _save(fig, Path(path))
    plt.close(fig)
    return out
