"""Atomistic data in the sciml HDF5 format: converters, reader, dataset, samplers, splits (docs/data_format.md)."""

from data_tools.dataset import AtomsDataset, collate_atoms
from data_tools.sampler import BlockShuffleBatchSampler

__all__ = ["AtomsDataset", "BlockShuffleBatchSampler", "collate_atoms"]
