"""``sciml data info``: counts, elements, energy/force statistics of one data set (one or many shards) and checksum
verification. Statistics are streamed in blocks with a numerically stable merge (Chan et al.)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase.data import chemical_symbols

from data_tools.paths import resolve_paths
from data_tools.reader import ShardReader
from sciml.errors import DataError

BLOCK_ROWS = 1 << 20


class RunningStats:
    """Mean, standard deviation, min and max over values fed in blocks (float64 accumulation)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.min, self.max = np.inf, -np.inf

    def update(self, values: np.ndarray) -> None:
        x = np.asarray(values, np.float64).reshape(-1)
        if x.size == 0:
            return
        n_b, mean_b = x.size, float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n
        self.min, self.max = min(self.min, float(x.min())), max(self.max, float(x.max()))

    def as_dict(self) -> dict[str, float | None]:
        if self.n == 0:
            return {"mean": None, "std": None, "min": None, "max": None}
        return {"mean": self.mean, "std": float(np.sqrt(self.m2 / self.n)), "min": self.min, "max": self.max}


def dataset_info(paths: str | os.PathLike | Sequence[str | os.PathLike], verify: bool = True) -> dict[str, Any]:
    """Summary of the shards in ``paths`` (JSON-serialisable). Raises DataError when a checksum does not match."""
    shard_paths, _ = resolve_paths(paths)
    energy, per_atom, forces, natoms = RunningStats(), RunningStats(), RunningStats(), RunningStats()
    counts: dict[int, int] = {}
    groups: set[int] = set()
    files, bad, conventions, has_forces = [], [], set(), True
    n_frames = n_atoms = 0
    for path in shard_paths:
        with ShardReader(path) as r:
            conventions.add(r.energy_convention)
            e = r.column("energy")
            energy.update(e)
            per_atom.update(e / r.natoms)
            natoms.update(r.natoms)
            groups.update(np.unique(r.column("group")).tolist())
            for start in range(0, r.n_atoms, BLOCK_ROWS):
                stop = min(start + BLOCK_ROWS, r.n_atoms)
                z, cnt = np.unique(r.h5["atoms/numbers"][start:stop], return_counts=True)
                for zi, ci in zip(z.tolist(), cnt.tolist()):
                    counts[zi] = counts.get(zi, 0) + ci
                if "forces" in r.atom_fields:
                    forces.update(r.h5["atoms/forces"][start:stop])
            has_forces &= "forces" in r.atom_fields
            mismatched = r.verify() if verify else []
            bad.extend(f"{path}:{name}" for name in mismatched)
            files.append({"path": str(path), "schema_version": r.schema_version, "n_frames": r.n_frames,
                          "n_atoms": r.n_atoms, "extras": [p.removeprefix("extras/") for p in r.extras],
                          "checksums": "not checked" if not verify else ("ok" if not mismatched else "MISMATCH"),
                          "provenance": r.provenance})
            n_frames += r.n_frames
            n_atoms += r.n_atoms
    info = {
        "n_files": len(files), "n_frames": n_frames, "n_atoms": n_atoms, "n_groups": len(groups),
        "elements": [chemical_symbols[z] for z in sorted(counts)],
        "element_counts": {chemical_symbols[z]: c for z, c in sorted(counts.items())},
        "natoms": natoms.as_dict(),
        "energy_convention": sorted(conventions)[0] if len(conventions) == 1 else sorted(conventions),
        "energy": energy.as_dict(), "energy_per_atom": per_atom.as_dict(),
        "forces": forces.as_dict() if has_forces else None,
        "units": {"energy": "eV", "forces": "eV/Angstrom", "positions": "Angstrom"},
        "checksums_verified": verify and not bad, "files": files,
    }
    if bad:
        raise DataError("checksum mismatch (file modified or corrupt): " + ", ".join(bad))
    return info


def format_info(info: dict[str, Any]) -> str:
    """Human-readable summary of :func:`dataset_info`."""
    def stats(d: dict[str, Any] | None, unit: str) -> str:
        if not d or d["mean"] is None:
            return "n/a"
        return f"mean {d['mean']:.6g}  std {d['std']:.4g}  min {d['min']:.6g}  max {d['max']:.6g} {unit}"

    lines = [f"files:     {info['n_files']}  ({', '.join(f['path'] for f in info['files'][:3])}"
             + (" ...)" if info["n_files"] > 3 else ")"),
             f"frames:    {info['n_frames']}   atoms: {info['n_atoms']}   groups: {info['n_groups']}",
             f"natoms:    {stats(info['natoms'], '')}",
             "elements:  " + ", ".join(f"{k} {v}" for k, v in info["element_counts"].items()),
             f"energy ({info['energy_convention']}): {stats(info['energy'], 'eV')}",
             f"energy/atom: {stats(info['energy_per_atom'], 'eV/atom')}",
             f"forces:    {stats(info['forces'], 'eV/Angstrom')} (per component)",
             *([f"extras:    {', '.join(sorted({e for f in info['files'] for e in f['extras']}))}"]
               if any(f["extras"] for f in info["files"]) else []),
             "checksums: " + ("verified OK" if info["checksums_verified"] else "not verified")]
    return "\n".join(lines)
