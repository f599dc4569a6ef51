"""Learning-rate schedules: linear warm-up followed by cosine decay, reduce-on-plateau, or constant.

The schedule owns the learning rate of every parameter group (``group["lr"] = base_lr * factor``); it is advanced
once per optimiser step (:meth:`LRSchedule.step`) and told each validation score (:meth:`LRSchedule.observe`).
Its state is plain numbers, so it round-trips through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class LRSchedule:
    """Learning-rate factor as a function of the optimiser step (and, for ``plateau``, of validation scores).

    Args:
        optimizer: its groups' ``lr`` are overwritten with ``base_lr * factor``.
        cfg: the validated ``schedule`` section.
        total_steps: steps of the whole run (cosine decays to ``min_lr_factor`` over them); ignored otherwise.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: dict[str, Any], total_steps: int):
        self.optimizer = optimizer
        self.name: str = cfg["name"]
        self.warmup = int(cfg["warmup_steps"])
        self.min_factor = float(cfg["min_lr_factor"])
        self.patience = int(cfg["patience"])
        self.cut = float(cfg["factor"])
        self.threshold = float(cfg["threshold"])
        self.total_steps = max(int(total_steps), 1)
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.step_count = 0
        self.plateau_factor = 1.0
        self.best = math.inf
        self.bad_validations = 0
        self._apply()

    def factor(self) -> float:
        """Current multiplier of the base learning rate."""
        warm = min(1.0, (self.step_count + 1) / self.warmup) if self.warmup else 1.0
        if self.name == "cosine":
            span = max(self.total_steps - self.warmup, 1)
            progress = min(max(self.step_count - self.warmup, 0) / span, 1.0)
            decay = self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
            return warm * decay
        if self.name == "plateau":
            return warm * self.plateau_factor
        return warm

    def _apply(self) -> None:
        f = self.factor()
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def step(self) -> None:
        """Advance by one optimiser step."""
        self.step_count += 1
        self._apply()

    def observe(self, score: float) -> None:
        """A validation score (lower is better); ``plateau`` cuts the lr after ``patience`` without improvement."""
        if self.name != "plateau" or not math.isfinite(score):
            return
        if score < self.best - self.threshold * abs(self.best) or math.isinf(self.best):
            self.best, self.bad_validations = score, 0
            return
        self.bad_validations += 1
        if self.bad_validations > self.patience:
            self.plateau_factor = max(self.plateau_factor * self.cut, self.min_factor)
            self.bad_validations = 0
        self._apply()

    @property
    def lr(self) -> float:
        """Learning rate of the first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count, "plateau_factor": self.plateau_factor, "best": self.best,
                "bad_validations": self.bad_validations, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the position; the base learning rates stay those of the optimiser this schedule was built on
        (so a resumed run may change ``optim.lr``; ``state["base_lrs"]`` is kept for the record)."""
        self.step_count = int(state["step_count"])
        self.plateau_factor = float(state["plateau_factor"])
        self.best = float(state["best"])
        self.bad_validations = int(state["bad_validations"])
        self._apply()
