"""Data pipeline throughput: HDF5 block / random / DataLoader reads vs ase.io.read, and converter frames/s.

Builds a page-cached shard of ``--frames`` real molecules (AcAc 15 atoms, plus 3BPA 27 atoms when ../shared is
there: mean about 21 atoms) and times: 256-frame block reads (raw arrays and as Data objects), random single-frame
``dataset[i]``, batches in one process, and the full DataLoader path (block-shuffling sampler, ``--workers``
processes, collated PyG batches of at most 4096 and 1024 atoms); each beside ``ase.io.read`` of the same molecules
from their extxyz. Then every converter's frames/s on files in its format.
Rates are the best of ``--repeats`` runs (the median is in the JSON). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
#: DataLoader atom budgets per batch: the first is the headline (about 195 molecules of 21 atoms)
MAX_ATOMS = (4096, 1024)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=50_000, help="frames in the read-benchmark shard (default 50000)")
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions per measurement (best is reported)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared",
                   help="folder with mlip_data/ (default ../shared; the bundled AcAc sample is used without it)")
    p.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_data.json",
                   help="raw results (default benchmarks/results/bench_data.json)")
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary folder)")


def _rates(fn: Callable[[], int], repeats: int) -> dict[str, float]:
    """Run ``fn`` (returns items processed) ``repeats`` times: best and median items per wall second, and items per
    CPU second of this process (``cpu``, best; robust to other users' load, meaningless for worker processes)."""
    rates, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
        cpu.append(n / max(time.process_time() - c0, 1e-9))
    return {"best": max(rates), "median": statistics.median(rates), "cpu": max(cpu)}


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of processes ``pids`` so far (Linux /proc; 0 elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return total


def machine() -> dict[str, Any]:
    model = platform.processor()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), model)
    except (OSError, subprocess.SubprocessError):
        pass
    import h5py
    import torch

    return {"cpu": model, "cores": os.cpu_count(), "load_avg_1_5_15": list(os.getloadavg()),
            "python": platform.python_version(), "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version,
            "torch": torch.__version__, "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _sources(shared: Path) -> list[Path]:
    acac = shared / "mlip_data" / "acac" / "train_300K.xyz"
    bpa = shared / "mlip_data" / "3bpa" / "train_300K.xyz"
    if acac.exists() and bpa.exists():
        return [acac, bpa]
    return [REPO / "examples" / "data" / "acac" / "train_300K.xyz"]


def real_frames(sources: list[Path]) -> list[Any]:
    """Frames (``data_tools.writer.Frame``) of the real molecules in ``sources``."""
    import ase.io

    from data_tools.sources.ase_files import atoms_to_frame

    return [atoms_to_frame(a, 0, 0) for src in sources for a in ase.io.read(src, ":")]


def synthetic_frames(n: int = 1000, seed: int = 0) -> list[Any]:
    """Random H/C/N/O molecules of 9-33 atoms (mean 21) with energies and forces, for machines without ASE."""
    from data_tools.writer import Frame

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(9, 34))
        out.append(Frame(numbers=rng.choice([1, 1, 6, 7, 8], k), positions=rng.normal(0, 2, (k, 3)),
                         energy=float(rng.normal(-5000, 100)), forces=rng.normal(0, 1, (k, 3))))
    return out


def build_shard(frames: list[Any], path: Path, n_frames: int) -> None:
    """Replicate ``frames`` (shuffled) into one shard of ``n_frames`` frames."""
    from data_tools.writer import AtomsWriter

    order = np.random.default_rng(0).permutation(len(frames))
    writer = AtomsWriter(path)
    for i in range(n_frames):
        frame = frames[order[i % len(frames)]]
        frame.group, frame.frame_id = i, i
        writer.append(frame)
    writer.finish()


def loader_benchmarks(shard: Path, repeats: int, workers: list[int], device: str = "cpu") -> dict[str, Any]:
    """Block, random and batch read rates of ``shard``, then DataLoader epochs for each worker count (batches moved
    to ``device`` from pinned memory when it is CUDA). The first worker count is reported as ``dataloader``."""
    import torch

    from data_tools.collate import collate_atoms
    from data_tools.dataset import AtomsDataset
    from data_tools.sampler import BlockShuffleBatchSampler

    ds = AtomsDataset(shard)
    n = len(ds)
    out: dict[str, Any] = {"frames": n, "mean_atoms": float(ds.natoms.mean())}

    def blocks_raw() -> int:
        for start in range(0, n, 256):
            ds.read_block(start, min(start + 256, n))
        return n

    def blocks_data() -> int:
        for start in range(0, n, 256):
            ds.__getitems__(range(start, min(start + 256, n)))
        return n

    picks = np.random.default_rng(1).integers(0, n, min(n, 20_000))

    def random_single() -> int:
        for i in picks:
            ds[int(i)]
        return len(picks)

    def first_pass(verify: bool) -> Callable[[], int]:
        def blocks() -> int:
            fresh = AtomsDataset(shard, verify=verify)  # new readers: every chunk is read (and checked) anew
            for start in range(0, n, 256):
                fresh.read_block(start, min(start + 256, n))
            return n
        return blocks

    out["block_raw_first_pass"] = _rates(first_pass(True), repeats)
    out["block_raw_first_pass_unverified"] = _rates(first_pass(False), repeats)
    out["block_raw"] = _rates(blocks_raw, repeats)
    out["block_data"] = _rates(blocks_data, repeats)
    out["random_single"] = _rates(random_single, repeats)
    sampler = BlockShuffleBatchSampler(ds.natoms, max_atoms=MAX_ATOMS[0], seed=0)

    def in_process() -> int:
        sampler.set_epoch(0)
        return sum(collate_atoms(ds.__getitems__(b)).num_graphs for b in sampler)

    out["batches_in_process"] = _rates(in_process, repeats)
    cuda = device.startswith("cuda")
    for k, (w, max_atoms) in enumerate((w, a) for a in MAX_ATOMS for w in workers):
        batches = BlockShuffleBatchSampler(ds.natoms, max_atoms=max_atoms, seed=0)
        loader = torch.utils.data.DataLoader(ds, batch_sampler=batches, collate_fn=collate_atoms, num_workers=w,
                                             persistent_workers=w > 0, prefetch_factor=4 if w else None,
                                             pin_memory=cuda)
        epochs = iter(range(1, 1000))

        def loader_epoch() -> int:
            batches.set_epoch(next(epochs))
            total = 0
            for batch in loader:
                total += batch.num_graphs
                if cuda:
                    batch.to(device, non_blocking=True)
            if cuda:
                torch.cuda.synchronize()
            return total

        loader_epoch()  # starts the workers
        pids = [p.pid for p in getattr(loader._iterator, "_workers", [])]  # private, stable since torch 1.x
        cpu0 = _cpu_seconds(pids) + time.process_time()
        rates = _rates(loader_epoch, repeats)
        cpu = _cpu_seconds(pids) + time.process_time() - cpu0
        rates["cpu"] = repeats * n / cpu if pids and cpu > 0 else float("nan")
        key = "dataloader" if k == 0 else f"dataloader_{w}w_{max_atoms}"
        out[key] = {**rates, "workers": w, "max_atoms": max_atoms, "device": device,
                    "frames_per_batch": n / len(batches)}
        del loader
    return out


def ase_baseline(sources: list[Path], repeats: int) -> dict[str, Any]:
    """``ase.io.read`` of the same molecules from their extxyz: whole-file parse, and random ``index=i`` reads."""
    import ase.io

    lengths = [len(ase.io.read(src, ":")) for src in sources]
    rng = np.random.default_rng(2)
    pick = [(src, int(i)) for src, m in zip(sources, lengths) for i in rng.integers(0, m, 10)]
    return {"ase_frames": sum(lengths),
            "ase_sequential": _rates(lambda: sum(len(ase.io.read(src, ":")) for src in sources), repeats),
            "ase_random": _rates(lambda: len([ase.io.read(src, index=i) for src, i in pick]), 1)}


def convert_benchmarks(sources: list[Path], shared: Path, work: Path) -> dict[str, Any]:
    import ase.io

    from data_tools.convert import ConvertOptions, convert
    from data_tools.lmdb_builders import write_oc20_lmdb, write_pubchemqcr_lmdb

    quiet = ConvertOptions(progress=False)
    res: dict[str, Any] = {}

    def timed(name: str, inputs: list[Path], opts: ConvertOptions) -> None:
        r = convert(inputs, work / f"{name}.h5", opts)
        res[name] = {"frames": r.n_frames, "mean_atoms": r.n_atoms / r.n_frames, "seconds": r.seconds,
                     "frames_per_s": r.n_frames / r.seconds}

    timed("ase-extxyz", sources, quiet)
    toy_src = shared / "oc_samples" / "toy_c3h8_relax.extxyz"
    if not toy_src.exists():
        toy_src = REPO / "examples" / "data" / "oc20" / "toy_c3h8_relax.extxyz"
    toy = ase.io.read(toy_src, ":")
    reps = 10
    (work / "0.extxyz").write_text(toy_src.read_text() * reps)
    (work / "0.txt").write_text("".join(f"random{i % 7},frame{i},-1.5\n" for i in range(len(toy) * reps)))
    timed("oc20-extxyz", [work / "0.extxyz"], quiet)
    write_oc20_lmdb(work / "data.0000.lmdb", [(a, 1, i) for i, a in enumerate(toy * reps)])
    timed("oc20-lmdb", [work / "data.0000.lmdb"], quiet)
    mols = [a for src in sources for a in ase.io.read(src, ":")]
    for shard in range(2):  # 2 LMDB shards of 50 molecules x 20 DFT steps (+ 5 PM3, 5 HF steps each)
        recs = [(shard * 1000 + m, {"pm3": mols[:5], "hf": mols[5:10], "DFT_1st": mols[m * 20 % 900:][:20],
                                    "DFT_2nd": None}) for m in range(50)]
        write_pubchemqcr_lmdb(work / f"Data{shard:02d}.lmdb", recs)
    timed("pubchemqcr", [work / "Data00.lmdb"], quiet)
    timed("pubchemqcr-2shards-2workers", [work / "Data00.lmdb", work / "Data01.lmdb"],
          ConvertOptions(progress=False, workers=2))
    return res


def markdown(result: dict[str, Any]) -> str:
    r, c, m = result["read"], result["convert"], result["machine"]

    def f(x: float) -> str:
        return f"{x:,.0f}"

    ase_seq, ase_rand = r["ase_sequential"]["best"], r["ase_random"]["best"]
    loaders = [(key, v) for key, v in r.items() if key.startswith("dataloader")]
    rows = [("block reads, 256-frame slices -> numpy arrays, first pass (chunk checksums verified)",
             r["block_raw_first_pass"], ase_seq, "1,000,000"),
            ("the same without checksum verification", r["block_raw_first_pass_unverified"], ase_seq, ""),
            ("block reads, 256-frame slices -> numpy arrays (chunks already verified)", r["block_raw"], ase_seq,
             "100,000"),
            ("block reads -> `Data` objects", r["block_data"], ase_seq, ""),
            ("random single-frame `dataset[i]`", r["random_single"], ase_rand, "10,000"),
            ("batches in one process: sampler -> `__getitems__` -> `collate_atoms`", r["batches_in_process"],
             ase_seq, ""),
            *((f"DataLoader, {v['workers']} workers, block-shuffled, collated batches of <= {v['max_atoms']} atoms "
               f"({v['frames_per_batch']:.0f} frames)", v, ase_seq, "10,000" if key == "dataloader" else "")
              for key, v in loaders)]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores; load average at start {m['load_avg_1_5_15'][0]:.1f}; "
             f"h5py {m['h5py']} / HDF5 {m['hdf5']}, torch {m['torch']}; {m['time_utc']}.",
             f"Shard: {r['frames']:,} frames, mean {r['mean_atoms']:.1f} atoms/frame, page-cached. "
             "Rates in frames/s: best (median) of the repeats per wall second, and per CPU second used (for the "
             "DataLoader: main process plus workers, averaged over the repeats), which other users' load "
             "does not change much.", "",
             "| read path | sciml HDF5, wall | per CPU s | ase.io.read extxyz | ratio (wall) | target |",
             "|---|---|---|---|---|---|"]
    for name, ours, ase_rate, target in rows:
        cpu = f(ours["cpu"])
        lines.append(f"| {name} | {f(ours['best'])} ({f(ours['median'])}) | {cpu} | {f(ase_rate)} | "
                     f"{ours['best'] / ase_rate:,.1f}x | {target} |")
    lines += ["", "ase.io.read columns: whole-file sequential parse (`index=':'`) for block and loader rows, "
              "`index=i` for random frames.", "",
              "| converter | frames | atoms/frame | frames/s |", "|---|---|---|---|"]
    for name, v in c.items():
        lines.append(f"| {name} | {v['frames']:,} | {v['mean_atoms']:.0f} | {f(v['frames_per_s'])} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sources = _sources(args.shared)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        build_shard(real_frames(sources), work / "bench.h5", args.frames)
        read = loader_benchmarks(work / "bench.h5", args.repeats, [args.workers])
        read.update(ase_baseline(sources, args.repeats))
        result = {"machine": machine(), "read": read, "convert": convert_benchmarks(sources, args.shared, work)}
    result["machine"]["load_avg_at_end"] = list(os.getloadavg())
    if args.json:
        from sciml.utils.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2))
    print(markdown(result))
    if args.json:
        print(f"\nraw results: {args.json}")
    return 0
