"""ASE calculators for sciml models: ``MLIPCalculator`` (any registered potential) and ``OrbNetCalculator`` (orbnet
models, with charge and multiplicity)."""

from sciml.calculators.mlip import MLIPCalculator
from sciml.calculators.orbnet import OrbNetCalculator

__all__ = ["MLIPCalculator", "OrbNetCalculator"]
