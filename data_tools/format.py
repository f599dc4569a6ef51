"""The sciml atomistic HDF5 layout (schema version 1): names, dtypes, units. Described in docs/data_format.md."""

from __future__ import annotations

import numpy as np

FORMAT_NAME = "sciml-atoms"
SCHEMA_VERSION = 1

#: rows per HDF5 chunk: per-atom arrays (8,192 atoms = 96 KiB of float32 positions) and per-frame arrays
ATOM_CHUNK = 8192
FRAME_CHUNK = 8192

#: per-atom arrays under /atoms: name -> (dtype, trailing shape, units or "")
ATOM_FIELDS: dict[str, tuple[np.dtype, tuple[int, ...], str]] = {
    "numbers": (np.dtype("u1"), (), ""),
    "positions": (np.dtype("<f4"), (3,), "Angstrom"),
    "forces": (np.dtype("<f4"), (3,), "eV/Angstrom"),
    "fixed": (np.dtype("u1"), (), ""),
    "tags": (np.dtype("i1"), (), ""),
}

#: per-frame arrays under /frames
FRAME_FIELDS: dict[str, tuple[np.dtype, tuple[int, ...], str]] = {
    "natoms": (np.dtype("<u4"), (), ""),
    "energy": (np.dtype("<f8"), (), "eV"),
    "cell": (np.dtype("<f8"), (3, 3), "Angstrom"),
    "pbc": (np.dtype("u1"), (3,), ""),
    "group": (np.dtype("<i8"), (), ""),
    "frame_id": (np.dtype("<i8"), (), ""),
    "ref_energy": (np.dtype("<f8"), (), "eV"),
    "stress": (np.dtype("<f8"), (6,), "eV/Angstrom^3"),
    "charge": (np.dtype("<i2"), (), "e"),
    "spin": (np.dtype("<i2"), (), ""),
    "stage": (np.dtype("u1"), (), ""),
}

REQUIRED_ATOM = ("numbers", "positions", "fixed", "tags")
REQUIRED_FRAME = ("natoms", "energy", "cell", "pbc", "group", "frame_id")

#: PubChemQCR stage codes stored in /frames/stage
STAGES = ("pm3", "hf", "DFT_1st", "DFT_2nd")

#: energy conventions (root attribute ``energy_convention``): "total" = energy as computed by the reference method;
#: "referenced" = total minus /frames/ref_energy (OC20 adsorption energy) or minus the stored per-structure reference
ENERGY_CONVENTIONS = ("total", "referenced")
