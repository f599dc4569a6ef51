"""Any ASE-readable file with energies (and forces): extxyz (plain, .gz, .xz, .bz2) is split into frames here so a bad
frame can be reported and skipped; other formats (ASE db, json, traj, vasprun.xml, ...) go through ``ase.io.iread``."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from data_tools.writer import Frame
from sciml.errors import DataError

_OPENERS = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}
EXTXYZ_SUFFIXES = (".xyz", ".extxyz")


def open_text(path: Path) -> IO[str]:
    """Open a possibly compressed text file (by suffix .xz / .gz / .bz2)."""
    opener = _OPENERS.get(path.suffix)
    return opener(path, "rt") if opener else open(path)  # noqa: SIM115 - caller closes


def is_extxyz(path: Path) -> bool:
    """Whether ``path`` is extended XYZ by its name (also when compressed, e.g. ``.extxyz.gz``)."""
    name = path.name[: -len(path.suffix)] if path.suffix in _OPENERS else path.name
    return name.endswith(EXTXYZ_SUFFIXES)


def iter_extxyz_text(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (frame number, text of that frame) from an (ext)xyz file without parsing the atom lines."""
    index = 0
    try:
        with open_text(path) as fh:
            while True:
                count = fh.readline()
                if not count:
                    return
                if not count.strip():
                    continue
                try:
                    n = int(count)
                except ValueError:
                    raise DataError(f"{path}: frame {index}: expected an atom count line, "
                                    f"got {count.strip()[:60]!r}") from None
                lines = [count, fh.readline()] + [fh.readline() for _ in range(n)]
                if not lines[-1]:
                    raise DataError(f"{path}: frame {index}: file ends inside the frame (truncated?)")
                yield index, "".join(lines)
                index += 1
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: frame {index}: not a text file (undecodable byte 0x{exc.object[exc.start]:02x}); "
                        "is it binary or of another format?") from None
    except (OSError, EOFError, lzma.LZMAError) as exc:  # corrupt or truncated .gz / .xz / .bz2
        raise DataError(f"{path}: frame {index}: cannot be read: {exc}") from None


def parse_extxyz_frame(text: str) -> Any:
    """Parse one extxyz frame; returns ``ase.Atoms`` or a string saying why it is invalid."""
    import ase.io

    try:
        return ase.io.read(io.StringIO(text), format="extxyz")
    except KeyError as exc:
        return f"unknown element symbol {exc.args[0]!r}"
    except (ValueError, IndexError, RuntimeError) as exc:
        return f"cannot parse extxyz frame: {exc}"


def atoms_to_frame(atoms: Any, group: int, frame_id: int) -> Frame:
    """Convert ``ase.Atoms`` with a single-point calculator (or ``energy``/``forces`` in info/arrays) to a Frame."""
    from ase.constraints import FixAtoms

    results = atoms.calc.results if atoms.calc is not None else {}
    energy = results.get("energy", atoms.info.get("energy"))
    forces = results.get("forces", atoms.arrays.get("forces"))
    fixed = np.zeros(len(atoms), bool)
    for c in atoms.constraints:
        if isinstance(c, FixAtoms):
            fixed[c.index] = True
    extra: dict[str, Any] = {}
    stress = results.get("stress", atoms.info.get("stress"))
    if stress is not None:
        stress = np.asarray(stress, float)
        voigt = ([0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1])  # xx yy zz yz xz xy
        extra["stress"] = stress if stress.shape == (6,) else stress.reshape(3, 3)[voigt]
    for key in ("charge", "spin"):
        if key in atoms.info:
            extra[key] = int(atoms.info[key])
    return Frame(numbers=atoms.numbers, positions=atoms.positions, energy=None if energy is None else float(energy),
                 forces=forces, cell=np.asarray(atoms.cell[:], float), pbc=atoms.pbc, fixed=fixed,
                 tags=atoms.get_tags(), group=group, frame_id=frame_id, extra=extra)


def iter_atoms(path: Path) -> Iterator[tuple[int, Any]]:
    """(frame number, ``ase.Atoms`` or reason string) for every frame of an ASE-readable file."""
    if is_extxyz(path):
        for index, text in iter_extxyz_text(path):
            yield index, parse_extxyz_frame(text)
        return
    import ase.io

    try:
        for index, atoms in enumerate(ase.io.iread(path, index=":")):
            yield index, atoms
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - ASE raises many types; report file and cause
        raise DataError(f"{path}: ASE cannot read it: {type(exc).__name__}: {exc}") from None


def iter_frames(path: Path, opts: Any, input_index: int) -> Iterator[tuple[int, Frame | str]]:
    """(frame number in the source, Frame) per frame of ``path``, or (number, reason) for an invalid frame."""
    """Frames of an ASE-readable file; group id per frame (``opts.group_by == "frame"``: input_index * 2**32 +
    frame number) or per file (input_index)."""
    for index, atoms in iter_atoms(path):
        if isinstance(atoms, str):
            yield index, atoms
            continue
        group = input_index if opts.group_by == "file" else (input_index << 32) + index
        yield index, atoms_to_frame(atoms, group=group, frame_id=index)


def count(path: Path) -> int | None:
    """Frames in ``path`` when known without parsing it, else None (see the package docstring)."""
    return None
