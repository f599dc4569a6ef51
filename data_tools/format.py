"""The sciml atomistic HDF5 layout (schema version 2): names, dtypes, units. Described in docs/data_format.md.

Version 2 adds the optional ``/extras`` group (model-specific per-atom, per-frame and per-pair arrays); files of
version 1 (no extras) are read unchanged.
"""

from __future__ import annotations

import re

import numpy as np

FORMAT_NAME = "sciml-atoms"
SCHEMA_VERSION = 2
#: schema versions this code reads
READABLE_VERSIONS = (1, 2)

#: rows per HDF5 chunk: per-atom arrays (8,192 atoms = 96 KiB of float32 positions), per-frame and per-pair arrays
ATOM_CHUNK = 8192
FRAME_CHUNK = 8192
PAIR_CHUNK = 8192
#: elements per chunk of a values array (256 KiB of float32)
VALUES_CHUNK = 1 << 16

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

#: group holding, for every array at path P, ``/checksums/P``: uint32 [chunks] CRC-32 of each HDF5 chunk's rows
#: (schema 2; the reader verifies a chunk the first time it reads it)
CHECKSUMS = "checksums"

# -- extras (schema 2) --------------------------------------------------------------------------------------------
#: /extras/<kind>/<name>: rows per atom, per frame, per pair, or a 1-D array of any length per frame ("values").
#: Pairs are CSR-indexed: /extras/pairs/count [N] uint32 pairs per frame, /extras/pairs/index [P, 2] int32 the two
#: atoms of each pair (indices within its frame). Each values array has its own CSR count, /extras/counts/<name> [N]
EXTRA_KINDS = ("atoms", "frames", "pairs", "values", "counts")
PAIR_COUNT = "extras/pairs/count"
PAIR_INDEX = "extras/pairs/index"
#: extras names: lower-case identifiers; "count" and "index" are the pair bookkeeping arrays
EXTRA_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED_EXTRA_NAMES = {"pairs": ("count", "index"), "frames": ("id",), "atoms": (), "values": ()}
#: prefix of an extras array in dataset items and reader blocks (``/extras/atoms/q`` -> ``atom_q``)
ITEM_PREFIX = {"atoms": "atom_", "frames": "frame_", "pairs": "pair_", "values": "values_"}


def block_key(path: str) -> str:
    """Name of the array at HDF5 ``path`` in reader blocks and dataset items: core arrays keep their name
    (``atoms/positions`` -> ``positions``), extras get their kind's prefix
    (``extras/pairs/index`` -> ``pair_index``)."""
    parts = path.split("/")
    if parts[0] == "extras":
        return ITEM_PREFIX[parts[1]] + parts[2] if parts[1] != "counts" else f"counts_{parts[2]}"
    return parts[1]


def row_kind(path: str) -> str:
    """What the rows of the array at ``path`` count: ``atoms``, ``frames``, ``pairs``, or for a values array
    ``values/<name>`` (its own elements)."""
    parts = path.split("/")
    if parts[0] == "extras":
        if path == PAIR_COUNT or parts[1] == "counts":
            return "frames"
        return f"values/{parts[2]}" if parts[1] == "values" else parts[1]
    return parts[0]
