"""Exponential moving average of model weights (used for validation and the best checkpoint)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    """A shadow copy of ``model`` whose floating-point parameters follow ``p_ema <- d p_ema + (1 - d) p``.

    The effective decay warms up as ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early weights
    (random initialisation) are forgotten quickly. Buffers (normalisation statistics, ...) are copied as they are.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow weights towards ``model``'s current weights."""
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for p_ema, p in zip(self.module.parameters(), model.parameters()):
            if p_ema.dtype.is_floating_point:
                p_ema.lerp_(p.detach(), 1.0 - d)
            else:
                p_ema.copy_(p)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "weights": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["weights"])
