"""Registered atomistic energy models: ``model.name`` in a training config -> class.

Checkpoints name their model by this key, so only these classes are ever built from a checkpoint. A new model is
one line here plus a subclass of :class:`models.potential.base.EnergyModel`.
"""

from __future__ import annotations

import importlib

from models.potential.base import EnergyModel
from sciml.errors import ConfigError

#: model name -> "module:Class"
ENERGY_MODELS: dict[str, str] = {
    "tdn": "models.tdn_potential:TDNPotential",
    "orbnet": "models.orbnet_potential:OrbNetPotential",
}


def energy_model_class(name: str) -> type[EnergyModel]:
    """The class registered as ``name``."""
    if name not in ENERGY_MODELS:
        raise ConfigError(f"unknown model.name {name!r}; registered models: {', '.join(sorted(ENERGY_MODELS))}")
    module, cls = ENERGY_MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)
