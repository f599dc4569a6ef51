"""Make the small atomistic test samples in examples/data/ from the full files in ../shared.

Usage (from the repository root, where ../shared holds the project data):

    python examples/data/make_atomistic_crops.py [--shared ../shared]

* ``3bpa/train_300K_first40.xyz``: the first 40 frames of ``mlip_data/3bpa/train_300K.xyz`` (BOTNet-datasets, MIT),
  lines copied unchanged.
* ``ethanol/train_first100.xyz``: the first 100 frames of ``mlip_data/ethanol/train.xyz`` (BOTNet-datasets, MIT),
  lines copied unchanged.
* ``oc20/oxides_every25th.db``: rows 1, 26, ..., 276 (12 of 295) of ``oc_samples/oxides.db`` (fairchem, MIT), each
  row copied with ASE's db interface (positions, cell, pbc, energy, forces, unique_id, ctime, user, key-value pairs
  and data unchanged), then VACUUMed with 1 KiB pages.
* ``oc20/slab_atoms.json`` and ``oc20/27998_vasprun.xml``: copied unchanged from ``oc_samples/``.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
from pathlib import Path

import ase.db

from sciml.utils.atomic import atomic_path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "examples" / "data"


def head_frames(src: Path, out: Path, n: int) -> None:
    """Copy the first ``n`` frames of an (ext)xyz file, line by line."""
    lines = src.read_text().splitlines(keepends=True)
    i = 0
    for _ in range(n):
        i += int(lines[i]) + 2
    with atomic_path(out, suffix=".xyz") as tmp:
        tmp.write_text("".join(lines[:i]))


def every_kth_row(src: Path, out: Path, k: int) -> None:
    """Copy rows 1, 1 + k, 1 + 2k, ... of an ASE database."""
    with atomic_path(out, suffix=".db") as tmp:
        tmp.unlink()  # ase.db picks the backend from the suffix and needs an absent or empty file
        with ase.db.connect(tmp) as dst:
            for row in list(ase.db.connect(src).select())[::k]:
                dst.write(row, key_value_pairs=row.key_value_pairs, data=row.get("data", {}))
        con = sqlite3.connect(tmp)
        con.execute("PRAGMA page_size=1024")
        con.execute("VACUUM")
        con.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    a = p.parse_args()
    head_frames(a.shared / "mlip_data/3bpa/train_300K.xyz", OUT / "3bpa/train_300K_first40.xyz", 40)
    head_frames(a.shared / "mlip_data/ethanol/train.xyz", OUT / "ethanol/train_first100.xyz", 100)
    every_kth_row(a.shared / "oc_samples/oxides.db", OUT / "oc20/oxides_every25th.db", 25)
    for name in ("slab_atoms.json", "27998_vasprun.xml"):
        shutil.copyfile(a.shared / "oc_samples" / name, OUT / "oc20" / name)
    for d in ("3bpa", "ethanol"):
        shutil.copyfile(a.shared / "mlip_data/LICENSE.BOTNet-datasets", OUT / d / "LICENSE")


if __name__ == "__main__":
    main()
