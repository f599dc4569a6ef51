"""The learning-curve figure of a run (matplotlib, Agg backend), written atomically."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sciml.utils.atomic import atomic_path


def plot_learning_curve(history: list[dict[str, Any]], step_log: list[list[float]], path: Path) -> None:
    """Three panels against the optimiser step: the loss (training every ``log_every`` steps, validation at each
    validation), the task's metrics (train dashed, validation solid; log scale) and the learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [row["step"] for row in history]
    names = sorted({k[4:] for row in history for k in row if k.startswith("val_") and k not in ("val_score",
                                                                                              "val_loss")})
    fig, (ax_loss, ax, ax_lr) = plt.subplots(1, 3, figsize=(15, 4))
    if step_log:
        ax_loss.plot([r[0] for r in step_log], [r[1] for r in step_log], lw=0.8, alpha=0.8, label="train (interval)")
        ax_lr.plot([r[0] for r in step_log], [r[2] for r in step_log])
    ax_loss.plot(steps, [row.get("train_loss", math.nan) for row in history], "--", marker=".", label="train")
    ax_loss.plot(steps, [row.get("val_loss", math.nan) for row in history], marker=".", label="validation")
    for i, name in enumerate(names):
        color = f"C{i % 10}"
        for prefix, style in (("train_", "--"), ("val_", "-")):
            ys = [row.get(prefix + name, math.nan) for row in history]
            if any(isinstance(y, float) and math.isfinite(y) and y > 0 for y in ys):
                ax.plot(steps, ys, style, color=color, marker=".", label=prefix + name)
    for axis, title in ((ax_loss, "loss"), (ax, "metrics (dashed: train, solid: validation)"),
                        (ax_lr, "learning rate")):
        axis.set_xlabel("optimiser step")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    ax_loss.set_yscale("log")
    ax_loss.legend(fontsize=7)
    ax.set_yscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
