"""Metric sinks of a run (rank 0 only): ``metrics.csv``, TensorBoard events under ``tb/`` and ``learning_curve.png``."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from sciml.training.plots import plot_learning_curve
from sciml.utils.atomic import atomic_write_text


class MetricsLog:
    """Validation rows to CSV, TensorBoard and a plot; step-level scalars to TensorBoard.

    Args:
        outdir: the run's output folder (``metrics.csv``, ``learning_curve.png``, ``tb/``).
    """

    def __init__(self, outdir: Path):
        self.outdir = Path(outdir)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a declared dependency, but a bare GPU image may lack it
            print("tensorboard is not installed: no TensorBoard events (metrics.csv and the plot are written)",
                  flush=True)
            self.writer = None
        else:
            self.writer = SummaryWriter(log_dir=str(self.outdir / "tb"))

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        """Step-level scalars (training loss, lr, throughput) to TensorBoard."""
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(f"step/{key}", value, step)

    def log_validation(self, history: list[dict[str, Any]], step_log: list[list[float]]) -> None:
        """Send the newest row of ``history`` (rows hold ``step``) to TensorBoard; rewrite the CSV and the plot
        (``step_log``: ``[step, training loss, lr]`` rows at every ``log_every`` steps)."""
        row = history[-1]
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self.writer.add_scalar(key.replace("_", "/", 1), value, row["step"])
            self.writer.flush()
        self._write_csv(history)
        plot_learning_curve(history, step_log, self.outdir / "learning_curve.png")

    def _write_csv(self, history: list[dict[str, Any]]) -> None:
        columns: list[str] = []
        for row in history:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.outdir / "metrics.csv", buf.getvalue())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
