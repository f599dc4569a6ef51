"""PubChemQCR LMDB shards (as published with the TDN paper): key = 9-digit zero-padded PubChem CID, value =
``gzip(pickle(record))`` with ``record[stage]`` (stage in pm3, hf, DFT_1st, DFT_2nd; may be None) a list of steps
``{'coordinates': [{'atom', 'x', 'y', 'z', ...}], 'energy': Hartree, 'gradient': [{'atom', 'dx', 'dy', 'dz', ...}]}``.

Stored: positions Angstrom (unchanged), energy = E * Hartree (eV), forces = -gradient * Hartree / Bohr (eV/Angstrom),
with ``ase.units`` (CODATA 2014). group = CID (one per molecule/trajectory, so splits never leak a molecule), frame_id
= step number within the chosen stages, ``stage`` code = index in ``format.STAGES``. With several stages the first
step of a stage is dropped when it repeats the previous stage's last geometry and energy.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import atomic_numbers
from ase.units import Bohr, Hartree

from data_tools.format import STAGES
from data_tools.safe_pickle import loads_plain
from data_tools.sources.lmdb_io import iter_items
from data_tools.writer import Frame
from sciml.errors import DataError

EV_PER_HARTREE = Hartree
EV_PER_ANGSTROM_PER_HARTREE_PER_BOHR = Hartree / Bohr


def _element(symbol: Any) -> int:
    if isinstance(symbol, (int, np.integer)):
        return int(symbol)
    try:
        return atomic_numbers[str(symbol).strip().capitalize()]
    except KeyError:
        raise ValueError(f"unknown element symbol {symbol!r}") from None


def step_to_frame(step: Any, cid: int, frame_id: int, stage: int) -> Frame | str:
    """One optimisation step -> Frame in eV / Angstrom (or a reason string)."""
    if not isinstance(step, dict):
        return "step is not a dict"
    coords, grad, energy = step.get("coordinates"), step.get("gradient"), step.get("energy")
    if not coords:
        return "missing coordinates"
    if energy is None:
        return "missing energy"
    if grad is None:
        return "missing gradient (forces)"
    try:
        numbers = np.array([_element(a["atom"]) for a in coords], np.int64)
        pos = np.array([[a["x"], a["y"], a["z"]] for a in coords], np.float64)
        gradient = np.array([[g["dx"], g["dy"], g["dz"]] for g in grad], np.float64)
    except ValueError as exc:
        return str(exc)
    except (KeyError, TypeError) as exc:
        return f"malformed atom entry: {exc!r}"
    return Frame(numbers=numbers, positions=pos, energy=float(energy) * EV_PER_HARTREE,
                 forces=-gradient * EV_PER_ANGSTROM_PER_HARTREE_PER_BOHR if gradient.size else gradient.reshape(0, 3),
                 pbc=np.zeros(3, bool), group=cid, frame_id=frame_id, extra={"stage": stage})


def _same_geometry(a: Any, b: Any) -> bool:
    try:
        return a["energy"] == b["energy"] and [(c["x"], c["y"], c["z"]) for c in a["coordinates"]] == \
            [(c["x"], c["y"], c["z"]) for c in b["coordinates"]]
    except (KeyError, TypeError):
        return False


def record_frames(record: Any, cid: int, stages: tuple[str, ...]) -> Iterator[tuple[int, Frame | str]]:
    """(step number, Frame or reason) of one molecule's record for the chosen stages, in order."""
    if not isinstance(record, dict):
        yield 0, "record is not a dict"
        return
    frame_id, previous = 0, None
    for stage in stages:
        steps = record.get(stage) or []
        for k, step in enumerate(steps):
            if k == 0 and previous is not None and _same_geometry(previous, step):
                continue
            yield frame_id, step_to_frame(step, cid, frame_id, STAGES.index(stage))
            frame_id += 1
        if steps:
            previous = steps[-1]


def gunzip_capped(value: bytes, limit: int, step: int = 1 << 24) -> bytes:
    """gzip-decompress ``value`` (one or more members) in ``step``-byte pieces, refusing (DataError) more than
    ``limit`` bytes of output (a gzip bomb) while holding at most about ``limit`` bytes."""
    pieces, size, data = [], 0, value
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while True:
            piece = inflater.decompress(data, min(step, limit + 1 - size))
            data = inflater.unconsumed_tail
            pieces.append(piece)
            size += len(piece)
            if size > limit:
                raise DataError(f"record decompresses to more than {limit / 2**20:g} MiB (--max-record-mb): refused")
            if inflater.eof or not (piece or data):
                break
        if not inflater.eof:
            raise zlib.error("truncated gzip stream")
        data = inflater.unused_data
    return b"".join(pieces)


def iter_frames(path: Path, opts: Any, input_index: int) -> Iterator[tuple[str, Frame | str]]:
    """(frame key in the source, Frame) per frame of ``path``, or (key, reason) for an invalid frame."""
    bad = [s for s in opts.stages if s not in STAGES]
    if bad or not opts.stages:
        raise DataError(f"unknown PubChemQCR stage(s) {bad}; choose from {', '.join(STAGES)}")
    for key, value in iter_items(path, numeric_keys=False):
        name = key.decode(errors="replace")
        try:
            cid = int(name)
        except ValueError:
            raise DataError(f"{path}: key {name!r} is not a PubChem CID") from None
        try:
            record = loads_plain(gunzip_capped(value, int(opts.max_record_mb * 2**20)))
        except DataError as exc:
            raise type(exc)(f"{path}: CID {name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - corrupt gzip/pickle raise many types
            yield f"CID {name}", f"undecodable record: {type(exc).__name__}: {exc}"
            continue
        for frame_id, item in record_frames(record, cid, opts.stages):
            yield f"CID {name} step {frame_id}", item


def count(path: Path) -> int | None:
    """Frames in ``path`` when known without parsing it, else None (see the package docstring)."""
    return None
