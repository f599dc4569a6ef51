"""``sciml data convert``: stream input files into sciml HDF5 shards (format detection, sharding, workers,
validation, progress bar). Output naming: without ``shard_size`` one file ``OUT.h5``; with it ``OUT_0000.h5,
OUT_0001.h5, ...`` of ``shard_size`` frames each (the last one fewer), frames in input order.

Staging and resume. Everything is written into a hidden stage folder beside the output,
``.tmp-<OUT name>-<key>``, where ``key`` is a short hash of what determines the result (resolved input paths with
their size and mtime_ns, the resolved format, every option except ``progress``/``workers``, the sciml version), and
moved to the final names only when every input converted: an interrupted run leaves no final-looking file. With
several inputs each input is converted into its own staged file (one process per input with ``workers > 1``, one
after the other otherwise), which is renamed into place and then recorded as complete by an atomically written
manifest ``in<index>.json``; the staged files are then concatenated in input order into the outputs (a fast array
copy), so the result does not depend on ``workers``. A rerun of a killed or interrupted conversion with the same
inputs and options finds the stage folder, reuses the inputs whose manifests are complete (``resuming: N of M inputs
already converted``) and converts the others again; stage folders of the same output with another key (inputs
touched or options changed) are removed. An input is deleted from the stage once it has been merged, so a run killed
during the final merge converts those inputs again. A single input is streamed straight into the staged outputs (no
extra copy; nothing to resume). An invalid frame (``DataError``) removes the stage folder, since a rerun would stop at
the same frame; success removes it too. The stage folder is locked while in use, so a second conversion into the same
output with the same inputs stops with an error instead of sharing it."""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import importlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data_tools.writer import AtomsWriter, Frame, validate_frame
from sciml.errors import DataError
from sciml.utils.atomic import atomic_path, atomic_write_text

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
    overwrite: bool = False  # replace an existing output that is not a sciml atoms file (never an input)
    max_record_mb: float = 64.0  # PubChemQCR: largest decompressed record accepted (a gzip bomb is refused)


#: options that do not change the converted data (left out of the stage key)
_RUN_OPTIONS = ("progress", "workers", "overwrite", "max_record_mb")


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

    def append_arrays(self, arrays: dict[str, Any]) -> None:
        """Append stored arrays of at most :meth:`room` frames (see ``AtomsWriter.append_arrays``)."""
        self._current().append_arrays(arrays)
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


def _manifest_name(index: int) -> str:
    return f"in{index:06d}.json"


def _convert_input(args: tuple) -> dict[str, Any]:
    """Convert one input into one staged file ``in<index>.h5`` and mark it complete with ``in<index>.json``.

    The file is written under a temporary name and renamed (fsynced) when the input finished; the manifest (staged
    file names and sizes, frame/atom counts, skipped reasons) is written atomically after that, so a manifest always
    describes a complete staged file. Returns the manifest. Runs in a worker process with ``workers > 1``."""
    path, index, fmt, opts, stage, meta = args
    stage = Path(stage)
    sink = _ShardSink(stage, f"in{index:06d}.part", None, meta)
    skipped: dict[str, int] = {}
    try:
        _stream(path, index, fmt, opts, sink, skipped)
        sink.close()
    except BaseException:
        sink.abort()
        raise
    files = []
    for part in sink.files:  # one file at most (no shard size); none when every frame was skipped
        final = stage / f"in{index:06d}.h5"
        with atomic_path(final, suffix=".h5") as tmp:
            os.replace(part, tmp)
        files.append([final.name, final.stat().st_size])
    manifest = {"index": index, "input": str(Path(path).resolve()), "files": files, "frames": sink.n_frames,
                "atoms": sink.n_atoms, "skipped": skipped}
    atomic_write_text(stage / _manifest_name(index), json.dumps(manifest))
    return manifest


def _run_parallel(jobs: list[tuple], opts: ConvertOptions, n_inputs: int) -> dict[int, dict[str, Any]]:
    """Run :func:`_convert_input` jobs in at most ``opts.workers`` processes; a progress bar over all input files
    (those reused from the stage count as done). Returns {input index: manifest}."""
    ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    results: dict[int, Any] = {}
    bar = tqdm(total=n_inputs, initial=n_inputs - len(jobs), desc="inputs", unit="file", disable=not opts.progress,
               file=sys.stderr)
    pool = concurrent.futures.ProcessPoolExecutor(min(opts.workers, len(jobs)), mp_context=ctx)
    try:
        futures = {pool.submit(_convert_input, job): job[1] for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
            bar.update(1)
            bar.set_postfix(frames=sum(r["frames"] for r in results.values()))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return results


def _merge(staged: list[tuple[Path, list[Path], Path]], sink: _ShardSink, chunk: int = 65536) -> None:
    """Concatenate staged inputs (input path, staged files, manifest) into ``sink``, which cuts them at its shard
    size. Each input's manifest and files are deleted once it is merged (peak disk use stays about one copy of the
    data); a run killed here converts those inputs again on resume."""
    from data_tools.reader import ShardReader

    for source, paths, manifest in staged:
        for path in paths:
            with ShardReader(path) as r:
                lo = 0
                while lo < r.n_frames:
                    hi = min(r.n_frames, lo + chunk, lo + sink.room())
                    try:
                        sink.append_arrays(r.raw_rows(lo, hi))
                    except DataError as exc:
                        raise DataError(f"{source}: {exc} (all inputs must carry the same arrays)") from None
                    lo = hi
        manifest.unlink()
        for path in paths:
            path.unlink()


def _stat_entry(path: Path) -> dict[str, Any]:
    """What identifies the content of an input for the stage key: resolved path, size and mtime_ns (of every file
    in a directory input such as an LMDB folder, lock files excepted)."""
    path = path.resolve()
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and not f.name.endswith("lock.mdb"))
        return {"path": str(path), "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]}
    st = path.stat()
    return {"path": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def stage_key(paths: list[Path], fmt: str, opts: ConvertOptions, version: str) -> str:
    """16 hex digits of SHA-256 over everything that determines the converted data: inputs (resolved path, size,
    mtime_ns), the resolved format, every option except ``progress`` and ``workers`` (the ``--ref-energies`` file
    by path, size and mtime_ns) and the sciml version."""
    options = {k: v for k, v in asdict(opts).items() if k not in (*_RUN_OPTIONS, "fmt", "ref_energies")}
    payload = {"sciml_version": version, "format": fmt, "options": options,
               "inputs": [_stat_entry(p) for p in paths],
               "ref_energies": _stat_entry(opts.ref_energies) if opts.ref_energies else None}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


_STAGE_SUFFIX = re.compile(r"[0-9a-f]{16}|[a-z0-9_]{8}")  # this version's key, or an older tempfile.mkdtemp name


@contextlib.contextmanager
def _locked(stage: Path, strict: bool = True):
    """Hold an exclusive ``flock`` on ``stage/lock`` (POSIX; a no-op elsewhere). When another process holds it:
    DataError if ``strict``, else yield False."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield True
        return
    fd = os.open(stage / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if strict:
                raise DataError(f"{stage} is in use by another conversion into the same output") from None
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _remove_stale_stages(output: Path, stage: Path) -> None:
    """Remove stage folders of ``output`` other than ``stage`` (another key: inputs, options or version changed)."""
    prefix = f".tmp-{output.name}-"
    for entry in output.parent.iterdir():
        if (entry == stage or not entry.name.startswith(prefix) or not entry.is_dir()
                or not _STAGE_SUFFIX.fullmatch(entry.name[len(prefix):])):
            continue
        with _locked(entry, strict=False) as free:
            if not free:
                print(f"leaving staging folder {entry.name}: in use by another conversion", file=sys.stderr)
                continue
            print(f"removing stale staging folder {entry.name} (inputs, options or sciml version changed)",
                  file=sys.stderr)
            shutil.rmtree(entry, ignore_errors=True)


def _clear_stage(stage: Path, keep: set[str]) -> None:
    """Delete everything in ``stage`` except the lock and the entries named in ``keep`` (partial files of a killed
    run)."""
    for entry in stage.iterdir():
        if entry.name != "lock" and entry.name not in keep:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _reusable_inputs(stage: Path, paths: list[Path]) -> dict[int, dict[str, Any]]:
    """Manifests of inputs already converted into ``stage`` (staged files present with the recorded sizes); every
    other file in ``stage`` (partial files of a killed run) is deleted."""
    done: dict[int, dict[str, Any]] = {}
    keep: set[str] = set()
    for index, path in enumerate(paths):
        try:
            manifest = json.loads((stage / _manifest_name(index)).read_text())
            ok = manifest["index"] == index and manifest["input"] == str(path.resolve()) and all(
                (stage / name).is_file() and (stage / name).stat().st_size == size
                for name, size in manifest["files"])
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if ok:
            done[index] = manifest
            keep.update([_manifest_name(index)] + [name for name, _ in manifest["files"]])
    _clear_stage(stage, keep)
    return done


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


def _existing_outputs(output: Path, single: bool) -> list[Path]:
    """Files a conversion into ``output`` would replace or remove: ``output``, or its existing numbered shards."""
    if single:
        return [output]
    stem = output.name[:-3] if output.name.endswith(".h5") else output.name
    return sorted(output.parent.glob(f"{stem}_[0-9][0-9][0-9][0-9].h5")) or [_final_names(output, 1, False)[0]]


def _check_outputs(output: Path, paths: list[Path], opts: ConvertOptions) -> None:
    """Before any work: never write over an input, nor over a file that is not a sciml atoms file unless
    ``opts.overwrite``; the output directory must be writable."""
    from data_tools.format import FORMAT_NAME
    from sciml.utils.outputs import check_outputs, hdf5_attr

    inputs = [f for p in paths for f in (sorted(p.rglob("*")) if p.is_dir() else [p])]
    check_outputs(_existing_outputs(output, opts.shard_size is None), inputs, overwrite=opts.overwrite,
                  ours=lambda f: hdf5_attr(f, "format") == FORMAT_NAME, command="sciml data convert")


def convert(inputs: Iterable[str | os.PathLike], output: str | os.PathLike, opts: ConvertOptions) -> ConvertResult:
    """Convert ``inputs`` to sciml HDF5 at ``output`` (see module docstring for naming)."""
    from sciml import __version__

    t0 = time.perf_counter()
    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.exists():
            raise DataError(f"{p}: no such file")
    output = Path(output)
    _check_outputs(output, paths, opts)
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
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()
               if k not in ("progress", "overwrite")}
    options["fmt"] = fmt
    single = opts.shard_size is None
    output.parent.mkdir(parents=True, exist_ok=True)
    stage = output.parent / f".tmp-{output.name}-{stage_key(paths, fmt, opts, __version__)}"
    _remove_stale_stages(output, stage)
    stage.mkdir(exist_ok=True)
    prov = {"converter": f"sciml data convert --format {fmt}", "sciml_version": __version__,
            "sources": [{"path": str(s.resolve()), "bytes": s.stat().st_size if s.is_file() else None}
                        for s in paths], "options": options}
    meta = {"energy_convention": convention, "provenance": prov, "element_reference_energies": refs}
    skipped: dict[str, int] = {}
    remove_stage = False
    with _locked(stage):
        try:
            sink = _ShardSink(stage, "out", opts.shard_size, meta)
            try:
                if len(paths) == 1:  # straight into the outputs: no per-input file to copy, nothing to resume
                    _clear_stage(stage, set())
                    _stream(paths[0], 0, fmt, opts, sink, skipped)
                else:
                    done = _reusable_inputs(stage, paths)
                    if done:
                        print(f"resuming: {len(done)} of {len(paths)} inputs already converted (staged in "
                              f"{stage.name})", file=sys.stderr)
                    jobs = [(p, i, fmt, opts if opts.workers <= 1 else replace(opts, progress=False), str(stage),
                             meta) for i, p in enumerate(paths) if i not in done]
                    if opts.workers > 1 and len(jobs) > 1:
                        done.update(_run_parallel(jobs, opts, len(paths)))
                    else:
                        for job in jobs:
                            done[job[1]] = _convert_input(job)
                    for i in range(len(paths)):
                        for k, v in done[i]["skipped"].items():
                            skipped[k] = skipped.get(k, 0) + v
                    _merge([(p, [stage / name for name, _ in done[i]["files"]], stage / _manifest_name(i))
                            for i, p in enumerate(paths)], sink)
                sink.close()
            except BaseException:
                sink.abort()
                raise
            staged, n_frames, n_atoms = sink.files, sink.n_frames, sink.n_atoms
            if not staged:
                raise DataError("no valid frames in " + ", ".join(str(p) for p in paths))
            finals = _final_names(output, len(staged), single)
            _commit(staged, finals, single)
            remove_stage = True
        except DataError:
            remove_stage = True  # invalid data: a rerun would stop at the same frame, so nothing is worth keeping
            raise
        except BaseException:
            if len(paths) > 1:
                print(f"conversion stopped; converted inputs are kept in {stage}: rerun the same command to resume",
                      file=sys.stderr)
            raise
        finally:
            if remove_stage:
                shutil.rmtree(stage, ignore_errors=True)
    return ConvertResult(finals, fmt, n_frames, n_atoms, sum(skipped.values()), time.perf_counter() - t0, skipped)
