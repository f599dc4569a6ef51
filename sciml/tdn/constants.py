"""Buffers that hold float64 constants (CG coefficients, CP factors) exactly, whatever dtype the module is cast to."""

from __future__ import annotations

import torch
from torch import nn


class Float64Constants(nn.Module):
    """A module whose constant buffers (registered with :meth:`register_constant`) keep a float64 master copy.

    Casting a module built in float32 to float64 (``.double()``, ``.to(torch.float64)``) would otherwise widen the
    float32 rounding of its CG coefficients and CP factors and cap float64 accuracy at ~1e-7; here the float64
    buffers are refilled from the masters after every cast. ``state_dict`` stores the masters (float64) whatever
    the module's dtype, and ``load_state_dict`` makes the loaded values the new masters, so a checkpoint written by a
    float32 model runs exactly in float64. Subclasses call ``super().__init__()`` first.
    """

    def __init__(self) -> None:
        super().__init__()
        self._constants: dict[str, torch.Tensor] = {}

    def register_constant(self, name: str, value: torch.Tensor, persistent: bool = True) -> None:
        """Register (or replace) buffer ``name`` = ``value``, stored in the default dtype (or the dtype of the buffer
        it replaces) and on the device of the buffer it replaces."""
        master = value.detach().to("cpu", torch.float64).contiguous()
        self._constants[name] = master
        old = getattr(self, name, None)
        dtype, device = (old.dtype, old.device) if isinstance(old, torch.Tensor) else (torch.get_default_dtype(), "cpu")
        self.register_buffer(name, master.to(device, dtype), persistent=persistent)

    def constant(self, name: str) -> torch.Tensor:
        """The float64 master of constant ``name`` (CPU)."""
        return self._constants[name]

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - torch's signature
        super()._apply(fn, recurse)
        with torch.no_grad():
            for name, master in self._constants.items():
                buf = getattr(self, name)
                if buf.dtype == torch.float64:
                    buf.copy_(master)
        return self

    def _save_to_state_dict(self, destination, prefix, keep_vars):  # noqa: ANN001
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name, master in self._constants.items():
            if prefix + name in destination:
                destination[prefix + name] = master.to(getattr(self, name).device)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # noqa: ANN001
        n_errors = len(error_msgs)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if len(error_msgs) > n_errors:
            return
        for name in self._constants:  # the buffers were filled by the call above
            value = state_dict.get(prefix + name)
            if isinstance(value, torch.Tensor):
                self._constants[name] = value.detach().to("cpu", torch.float64).contiguous()
