"""OC20 S2EF shard pairs: ``N.extxyz[.xz]`` frames + ``N.txt[.xz]`` sidecar, line i = ``random<sid>,frame<fid>,<ref>``
(system id, frame index in the system's trajectory, reference energy in eV). Group id = system id; frame_id = fid;
``ref_energy`` is stored; with ``adsorption_energy`` the stored energy is total minus reference."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_tools.sources.ase_files import atoms_to_frame, iter_extxyz_text, open_text, parse_extxyz_frame
from data_tools.writer import Frame
from sciml.errors import DataError


def sidecar(path: Path) -> Path | None:
    """The ``.txt`` / ``.txt.xz`` file beside an OC20 ``.extxyz`` / ``.extxyz.xz`` file, if any."""
    name = path.name
    for ext in (".extxyz.xz", ".extxyz"):
        if name.endswith(ext):
            stem = name[: -len(ext)]
            for txt in (f"{stem}.txt.xz", f"{stem}.txt"):
                if (path.parent / txt).exists():
                    return path.parent / txt
    return None


def parse_txt_line(line: str, txt: Path, number: int) -> tuple[int, int, float]:
    """(system id, frame id, reference energy eV) from ``random<sid>,frame<fid>,<ref>``."""
    try:
        sid, fid, ref = line.strip().split(",")
        if not (sid.startswith("random") and fid.startswith("frame")):
            raise ValueError("expected random<sid>,frame<fid>,<ref>")
        return int(sid[6:]), int(fid[5:]), float(ref)
    except ValueError as exc:
        raise DataError(f"{txt}: line {number + 1}: cannot parse {line.strip()[:80]!r}: {exc}") from None


def iter_frames(path: Path, opts: Any, input_index: int) -> Iterator[tuple[int, Frame | str]]:
    """(frame number in the source, Frame) per frame of ``path``, or (number, reason) for an invalid frame."""
    txt = sidecar(path)
    if txt is None:
        raise DataError(f"{path}: no OC20 sidecar {path.name.split('.')[0]}.txt[.xz] beside it")
    with open_text(txt) as lines:
        for number, text in iter_extxyz_text(path):
            line = lines.readline()
            if not line:
                raise DataError(f"{txt}: has {number} lines but {path.name} has more frames")
            sid, fid, ref = parse_txt_line(line, txt, number)
            atoms = parse_extxyz_frame(text)
            if isinstance(atoms, str):
                yield number, atoms
                continue
            frame = atoms_to_frame(atoms, group=sid, frame_id=fid)
            if frame.energy is not None and opts.adsorption_energy:
                frame.energy -= ref
            frame.extra["ref_energy"] = ref
            yield number, frame
        if lines.readline().strip():
            raise DataError(f"{txt}: has more lines than {path.name} has frames")


def count(path: Path) -> int | None:
    """Frames in ``path`` when known without parsing it, else None (see the package docstring)."""
    return None
