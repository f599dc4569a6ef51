"""ASE calculators for sciml models."""

from sciml.calculators.mlip import MLIPCalculator

__all__ = ["MLIPCalculator"]
