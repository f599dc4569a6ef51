"""Data tools: atomistic HDF5 format and converters (issue 2), WRF reader and column datasets (issue 5)."""
