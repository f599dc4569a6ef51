"""Write small LMDB files in the OC20 pickled-PyG and PubChemQCR gzip-pickle layouts, as the published datasets
store them, from ASE structures with energies/forces in eV and eV/Angstrom. No public samples of these formats exist:
tests and benchmarks use these writers to check every field and unit round-trips through the converters."""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Iterable
from typing import Any

import numpy as np
from ase.units import Bohr, Hartree


def _env(path: str | os.PathLike, map_size: int) -> Any:
    import lmdb

    return lmdb.open(str(path), subdir=False, map_size=map_size, lock=False, meminit=False)


def write_oc20_lmdb(path: str | os.PathLike, frames: Iterable[tuple[Any, int, int]], *, total_energy_key: str = "y",
                    map_size: int = 1 << 30) -> int:
    """``frames``: (ase.Atoms with energy/forces, sid, fid). Values are ``pickle.dumps(torch_geometric Data)`` with the
    fairchem-v1 S2EF fields: pos, cell [1,3,3], atomic_numbers (float32 as in older files), natoms, tags (long),
    fixed (float 0/1), ``y`` (energy, eV), force [n,3], sid, fid; keys b"0".. plus b"length". Returns the count."""
    import torch
    from ase.constraints import FixAtoms
    from torch_geometric.data import Data

    env, n = _env(path, map_size), 0
    with env.begin(write=True) as txn:
        for atoms, sid, fid in frames:
            fixed = np.zeros(len(atoms), np.float32)
            for c in atoms.constraints:
                if isinstance(c, FixAtoms):
                    fixed[c.index] = 1.0
            data = Data(pos=torch.tensor(atoms.positions, dtype=torch.float32),
                        cell=torch.tensor(np.asarray(atoms.cell[:]), dtype=torch.float32).view(1, 3, 3),
                        atomic_numbers=torch.tensor(atoms.numbers, dtype=torch.float32), natoms=len(atoms),
                        tags=torch.tensor(atoms.get_tags(), dtype=torch.long), fixed=torch.from_numpy(fixed),
                        force=torch.tensor(atoms.get_forces(apply_constraint=False), dtype=torch.float32),
                        sid=int(sid), fid=int(fid))
            data[total_energy_key] = float(atoms.get_potential_energy())
            txn.put(str(n).encode(), pickle.dumps(data, protocol=-1))
            n += 1
        txn.put(b"length", pickle.dumps(n, protocol=-1))
    env.close()
    return n


def pubchemqcr_step(atoms: Any) -> dict[str, Any]:
    """One optimisation step in PubChemQCR units: coordinates Angstrom, energy Hartree, gradient Hartree/Bohr."""
    pos, grad = atoms.positions, -atoms.get_forces(apply_constraint=False) / (Hartree / Bohr)
    symbols = atoms.get_chemical_symbols()
    return {"coordinates": [{"atom": s, "charge": 0.0, "x": float(p[0]), "y": float(p[1]), "z": float(p[2])}
                            for s, p in zip(symbols, pos)],
            "energy": float(atoms.get_potential_energy()) / Hartree,
            "gradient": [{"atom": s, "charge": 0.0, "dx": float(g[0]), "dy": float(g[1]), "dz": float(g[2])}
                         for s, g in zip(symbols, grad)]}


def write_pubchemqcr_lmdb(path: str | os.PathLike, records: Iterable[tuple[int, dict[str, Any]]], *,
                          map_size: int = 1 << 30) -> int:
    """``records``: (CID, {stage: list of ase.Atoms or None}) -> key = 9-digit CID, value =
    ``gzip.compress(pickle.dumps({stage: [step, ...] or None}))``. Returns the number of records."""
    env, n = _env(path, map_size), 0
    with env.begin(write=True) as txn:
        for cid, stages in records:
            record = {stage: None if steps is None else [pubchemqcr_step(a) for a in steps]
                      for stage, steps in stages.items()}
            txn.put(f"{cid:09d}".encode(), gzip.compress(pickle.dumps(record)))
            n += 1
    env.close()
    return n
