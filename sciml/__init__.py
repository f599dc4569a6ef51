"""sciml: scientific machine learning for atomistic potentials and weather-model physics."""

__version__ = "0.1.0"
