"""``sciml data convert``: stream input files into sciml HDF5 shards (format detection, sharding, workers,
validation, progress bar). Output naming: without ``shard_size`` one file ``OUT.h5``; with it ``OUT_0000.h5,
OUT_0001.h5, ...`` of ``shard_size`` frames each (the last one fewer), frames in input order. ``workers > 1``
converts one input per process into staged files and then concatenates them into the same output (a fast array copy),
so the result does not depend on ``workers``. Everything is staged in a hidden ``.tmp-*`` folder beside the output
and moved to the final names only when every input converted: an interrupted run leaves no final-looking file."""

from __future__ import annotations

import concurrent.futures
import importlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data_tools.writer import AtomsWriter, Frame, validate_frame
from sciml.errors import DataError
from sciml.utils.atomic import atomic_path

SOURCES = {"ase": "data_tools.sources.ase_files", "oc20-extxyz": "data_tools.sources.oc20_extxyz",
           "oc20-lmdb": "data_tools.sources.oc20_lmdb", "pubchemqcr": "data_tools.sources.pubchemqcr"}


@dataclass(frozen=True)
class ConvertOptions:
    """Conversion settings (see ``sciml data convert --help``)."""

    fmt: str = "auto"
    shard_size: int | None = None
    workers: int = 1
    skip_invalid: bool = False
    group_by: str = "frame"
    adsorption_energy: bool = False
    energy_convention: str = "referenced"
    stages: tuple[str, ...] = ("DFT_1st",)
    ref_energies: Path | None = None
    progress: bool = True


@dataclass
class ConvertResult:
    """What :func:`convert` wrote: output files, source format, frame/atom/skip counts and wall time (s)."""

    outputs: list[Path]
    fmt: str
    n_frames: int
    n_atoms: int
    n_skipped: int
    seconds: float
    skipped_reasons: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """Human-readable report (printed by ``sciml data convert``)."""
        rate = self.n_frames / self.seconds if self.seconds > 0 else float("inf")
        lines = [f"converted {self.n_frames} frames ({self.n_atoms} atoms, format {self.fmt}) in {self.seconds:.1f} s "
                 f"({rate:.0f} frames/s) -> {len(self.outputs)} file(s): "
                 + ", ".join(str(p) for p in self.outputs[:4]) + (" ..." if len(self.outputs) > 4 else "")]
        if self.n_skipped:
            lines.append(f"skipped {self.n_skipped} invalid frames: "
                         + "; ".join(f"{n} x {r}" for r, n in sorted(self.skipped_reasons.items())))
        return "\n".join(lines)


def detect_format(path: Path) -> str:
    """Guess the input format of ``path`` (see module docstring of each source)."""
    from data_tools.sources.ase_files import is_extxyz

    if path.suffix == ".lmdb" or (path.is_dir() and (path / "data.mdb").exists()):
        from data_tools.sources.lmdb_io import first_value

        value = first_value(path)
        return "pubchemqcr" if value[:2] == b"\x1f\x8b" else "oc20-lmdb"
    if is_extxyz(path):
        from data_tools.sources.oc20_extxyz import sidecar

        return "oc20-extxyz" if sidecar(path) is not None else "ase"
    return "ase"


def load_reference_energies(path: Path) -> dict[int, float]:
    """Element reference energies {Z: eV} from JSON ``{"H": -13.6, ...}`` or an ASE file of isolated atoms."""
    from ase.data import atomic_numbers

    if path.suffix == ".json":
        try:
            raw = json.loads(path.read_text())
            return {atomic_numbers[k] if isinstance(k, str) and not k.isdigit() else int(k): float(v)
                    for k, v in raw.items()}
        except (ValueError, KeyError) as exc:
            raise DataError(f"{path}: reference energies must be JSON {{symbol: eV}}: {exc}") from None
    from data_tools.sources.ase_files import atoms_to_frame, iter_atoms

    refs = {}
    for index, atoms in iter_atoms(path):
        if isinstance(atoms, str) or len(atoms) != 1:
            raise DataError(f"{path}: frame {index}: reference file must hold single isolated atoms")
        energy = atoms_to_frame(atoms, 0, index).energy
        if energy is None:
            raise DataError(f"{path}: frame {index}: isolated atom without energy")
        refs[int(atoms.numbers[0])] = energy
    return refs


class _ShardSink:
    """Writes validated frames into staged shards ``<stage>/<prefix>_<part>.h5`` rolling over every ``shard_size``."""

    def __init__(self, stage: Path, prefix: str, shard_size: int | None, meta: dict[str, Any]):
        self.stage, self.prefix, self.shard_size, self.meta = stage, prefix, shard_size, meta
        self.files: list[Path] = []
        self.writer: AtomsWriter | None = None
        self.n_frames = self.n_atoms = 0

    def _current(self) -> AtomsWriter:
        if self.writer is None:
            path = self.stage / f"{self.prefix}_{len(self.files):06d}.h5"
            self.writer = AtomsWriter(path, **self.meta)
            self.files.append(path)
        return self.writer

    def _roll(self) -> None:
        if self.shard_size and self.writer is not None and self.writer.n_frames >= self.shard_size:
            self.close()

    def append(self, frame: Frame) -> None:
        self._current().append(frame)
        self._roll()

    def room(self) -> int:
        """Frames that still fit in the current shard."""
        if not self.shard_size:
            return 1 << 62
        return self.shard_size - (self.writer.n_frames if self.writer is not None else 0)

    def append_arrays(self, atoms: dict[str, Any], frames: dict[str, Any]) -> None:
        """Append stored arrays of at most :meth:`room` frames (see ``AtomsWriter.append_arrays``)."""
        self._current().append_arrays(atoms, frames)
        self._roll()

    def close(self) -> None:
        if self.writer is not None:
            self.n_frames += self.writer.n_frames
            self.n_atoms += self.writer.n_atoms
            self.writer.finish()
            self.writer = None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def _stream(path: Path, index: int, fmt: str, opts: ConvertOptions, sink: _ShardSink,
            skipped: dict[str, int]) -> None:
    source = importlib.import_module(SOURCES[fmt])
    total = source.count(path)
    bar = tqdm(total=total, desc=path.name[-30:], unit="frame", disable=not opts.progress, mininterval=0.5,
               file=sys.stderr)
    try:
        for number, item in source.iter_frames(path, opts, index):
            reason = item if isinstance(item, str) else validate_frame(item)
            bar.update(1)
            if reason is None:
                try:
                    sink.append(item)  # refuses a frame whose set of arrays differs from the shard's
                    continue
                except DataError as exc:
                    reason = str(exc)
            if not opts.skip_invalid:
                raise DataError(f"{path}: frame {number}: {reason} (use --skip-invalid to skip such frames)")
            key = re.sub(r"[-+]?\d[\d.e+-]*", "N", reason)
            skipped[key] = skipped.get(key, 0) + 1
    finally:
        bar.close()


def _convert_input(args: tuple) -> tuple[list[str], int, int, dict[str, int]]:
    """Worker: convert one input into one staged file; returns (staged files, frames, atoms, skipped reasons)."""
    path, index, fmt, opts, stage, meta = args
    sink = _ShardSink(Path(stage), f"in{index:06d}", None, meta)
    skipped: dict[str, int] = {}
    try:
        _stream(path, index, fmt, opts, sink, skipped)
        sink.close()
    except BaseException:
        sink.abort()
        raise
    return [str(f) for f in sink.files], sink.n_frames, sink.n_atoms, skipped


def _run_parallel(paths: list[Path], fmt: str, opts: ConvertOptions, stage: Path,
                  meta: dict[str, Any]) -> list[tuple[list[str], int, int, dict[str, int]]]:
    """One process per input (at most ``opts.workers`` at a time); a progress bar over input files."""
    worker_opts = replace(opts, progress=False)
    jobs = [(p, i, fmt, worker_opts, str(stage), meta) for i, p in enumerate(paths)]
    ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    results: dict[int, Any] = {}
    bar = tqdm(total=len(jobs), desc="inputs", unit="file", disable=not opts.progress, file=sys.stderr)
    pool = concurrent.futures.ProcessPoolExecutor(min(opts.workers, len(jobs)), mp_context=ctx)
    try:
        futures = {pool.submit(_convert_input, job): job[1] for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
            bar.update(1)
            bar.set_postfix(frames=sum(r[1] for r in results.values()))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return [results[i] for i in range(len(jobs))]


def _merge(staged: list[tuple[Path, Path]], sink: _ShardSink, chunk: int = 65536) -> None:
    """Concatenate staged shards (input path, staged path) into ``sink``, which cuts them at its shard size."""
    from data_tools.reader import ShardReader

    for source, path in staged:
        with ShardReader(path) as r:
            lo = 0
            while lo < r.n_frames:
                hi = min(r.n_frames, lo + chunk, lo + sink.room())
                a0, a1 = int(r.offsets[lo]), int(r.offsets[hi])
                try:
                    sink.append_arrays({n: r.read_raw("atoms", n, a0, a1) for n in r.atom_fields},
                                       {n: r.read_raw("frames", n, lo, hi) for n in r.frame_fields})
                except DataError as exc:
                    raise DataError(f"{source}: {exc} (all inputs must carry the same arrays)") from None
                lo = hi
        path.unlink()


def _final_names(output: Path, n: int, single: bool) -> list[Path]:
    if single:
        return [output]
    stem = output.name[:-3] if output.name.endswith(".h5") else output.name
    return [output.with_name(f"{stem}_{i:04d}.h5") for i in range(n)]


def _commit(staged: list[Path], finals: list[Path], single: bool) -> None:
    for src, dst in zip(staged, finals):
        with atomic_path(dst, suffix=".h5") as tmp:
            os.replace(src, tmp)
    if not single:
        stem = finals[0].name[:-8]
        for old in finals[0].parent.glob(f"{stem}_[0-9][0-9][0-9][0-9].h5"):
            if old not in finals:  # stale shard of an earlier, larger conversion
                old.unlink()


def convert(inputs: Iterable[str | os.PathLike], output: str | os.PathLike, opts: ConvertOptions) -> ConvertResult:
    """Convert ``inputs`` to sciml HDF5 at ``output`` (see module docstring for naming)."""
    from sciml import __version__

    t0 = time.perf_counter()
    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.exists():
            raise DataError(f"{p}: no such file")
    output = Path(output)
    if opts.fmt == "auto":
        fmts = {p: detect_format(p) for p in paths}
        if len(set(fmts.values())) > 1:
            raise DataError("inputs have different formats: "
                            + ", ".join(f"{p.name}={f}" for p, f in fmts.items()) + "; convert them separately")
        fmt = fmts[paths[0]]
        print(f"format: auto-detected {fmt}", file=sys.stderr)
    else:
        fmt = opts.fmt
    if opts.shard_size is not None and opts.shard_size < 1:
        raise DataError("--shard-size must be positive")
    convention = {"oc20-extxyz": "referenced" if opts.adsorption_energy else "total",
                  "oc20-lmdb": opts.energy_convention}.get(fmt, "total")
    refs = load_reference_energies(opts.ref_energies) if opts.ref_energies else {}
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items() if k != "progress"}
    options["fmt"] = fmt
    single = opts.shard_size is None
    output.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".tmp-{output.name}-", dir=output.parent))
    try:
        prov = {"converter": f"sciml data convert --format {fmt}", "sciml_version": __version__,
                "sources": [{"path": str(s.resolve()), "bytes": s.stat().st_size if s.is_file() else None}
                            for s in paths], "options": options}
        meta = {"energy_convention": convention, "provenance": prov, "element_reference_energies": refs}
        skipped: dict[str, int] = {}
        sink = _ShardSink(stage, "out", opts.shard_size, meta)
        try:
            if opts.workers > 1 and len(paths) > 1:
                results = _run_parallel(paths, fmt, opts, stage, meta)
                for r in results:
                    for k, v in r[3].items():
                        skipped[k] = skipped.get(k, 0) + v
                _merge([(p, Path(f)) for p, r in zip(paths, results) for f in r[0]], sink)
            else:
                for i, p in enumerate(paths):
                    _stream(p, i, fmt, opts, sink, skipped)
            sink.close()
        except BaseException:
            sink.abort()
            raise
        staged, n_frames, n_atoms = sink.files, sink.n_frames, sink.n_atoms
        if not staged:
            raise DataError("no valid frames in " + ", ".join(str(p) for p in paths))
        finals = _final_names(output, len(staged), single)
        _commit(staged, finals, single)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ConvertResult(finals, fmt, n_frames, n_atoms, sum(skipped.values()), time.perf_counter() - t0, skipped)
