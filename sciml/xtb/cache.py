"""Feature caches: GFN1-xTB energies, gradients, orbital features and their exact Jacobians with respect to the
positions, stored beside the frames in a schema-2 HDF5 shard, so a model can train on forces without running the SCF
again in every epoch.

Per frame (extras, units as in :mod:`sciml.xtb.features`): ``frames/e_gfn1`` (eV), ``frames/xtb_charge`` and
``frames/xtb_uhf`` (the charge and unpaired electrons the calculation used), ``atoms/g_gfn1`` [n, 3] (eV/Angstrom),
``atoms/node`` [n, 37], ``pairs/edge`` [P, 10] for the atom pairs within the model's cutoff, and ``values/jacobian``
[(37 n + 10 P) * 3 n]: d(features)/d(positions, Angstrom), row-major over (atom features, pair features) x (atom,
xyz). The Jacobian is computed exactly by automatic differentiation (3n double-backward products through dxtb).

The cache of an input is named by a hash of everything that determines it (the input shards and their checksums,
the frames selected, the method, the cutoff, the feature layout, the dxtb and tblite versions), so a changed input,
method or charge is never read as the old one; it is built in parts of :data:`PART_FRAMES` frames in a staging folder
beside it, and a killed build resumes from the parts that were finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sciml.errors import DataError

METHOD = "GFN1-xTB"
#: version of the feature layout and of the cache format (part of the cache key)
FEATURE_VERSION = 1
PART_FRAMES = 32


def cache_key(dataset: Any, cutoff: float) -> str:
    """16 hex digits identifying the cache of ``dataset`` (an AtomsDataset) at ``cutoff``."""
    from data_tools.reader import ShardReader

    shards = []
    for path in dataset.shard_paths:
        with ShardReader(path) as r:  # every array's checksum: a charge or geometry changed is another cache
            shards.append([str(Path(path).resolve()), r.n_frames,
                           {p: int(r.h5[p].attrs.get("crc32", -1)) for p in r.arrays}])
    payload = {"shards": shards, "frames": hashlib.sha1(dataset.indices.tobytes()).hexdigest(), "method": METHOD,
               "cutoff": float(cutoff), "features": FEATURE_VERSION,
               "dxtb": version("dxtb"), "tblite": version("tblite")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def frame_extras(numbers: np.ndarray, positions: np.ndarray, charge: int, uhf: int, cutoff: float,
                 where: str, xtb: Any = None) -> dict[str, np.ndarray]:
    """The cached arrays of one frame, keyed by HDF5 path (``extras/...``), after cross-checking dxtb with tblite."""
    from models.orbnet_potential import close_pairs
    from sciml.xtb.backend import DxtbGFN1, check_agreement, tblite_gfn1
    from sciml.xtb.features import orbital_features

    xtb = xtb or DxtbGFN1()
    n = len(numbers)
    pos = torch.tensor(np.asarray(positions, np.float64), requires_grad=True)
    res = xtb.singlepoint(torch.as_tensor(numbers), pos, charge, uhf, where)
    e_tblite, _ = tblite_gfn1(numbers, positions, charge, uhf, where)
    check_agreement(float(res.energy.detach()), e_tblite, where)
    node, pairs = orbital_features(res, n)
    a, b = close_pairs(pos.detach(), cutoff)
    edge = pairs[a, b]
    flat = torch.cat([node.reshape(-1), edge.reshape(-1)])
    grad = torch.autograd.grad(res.energy, pos, retain_graph=True)[0]
    w = torch.zeros_like(flat, requires_grad=True)
    jt_w = torch.autograd.grad(flat, pos, w, create_graph=True)[0].reshape(-1)  # J^T w, linear in w
    eye = torch.eye(3 * n, dtype=torch.float64)
    columns = [torch.autograd.grad(jt_w, w, eye[k], retain_graph=k < 3 * n - 1)[0] for k in range(3 * n)]
    jacobian = torch.stack(columns, 1)  # [F, 3n]: d(J^T w . e_k)/dw = J e_k
    return {"extras/frames/e_gfn1": np.array([float(res.energy.detach())]),
            "extras/frames/xtb_charge": np.array([charge], np.int16),
            "extras/frames/xtb_uhf": np.array([uhf], np.int16),
            "extras/atoms/g_gfn1": grad.detach().numpy(),
            "extras/atoms/node": node.detach().numpy(),
            "extras/pairs/index": torch.stack([a, b], 1).numpy().astype(np.int32),
            "extras/pairs/count": np.array([len(a)], np.uint32),
            "extras/pairs/edge": edge.detach().numpy(),
            "extras/values/jacobian": jacobian.detach().numpy().reshape(-1),
            "extras/counts/jacobian": np.array([jacobian.numel()], np.uint32)}


def _build_part(args: tuple) -> str:
    """Cache frames ``lo:hi`` of the dataset into ``part`` (written atomically); returns its path."""
    from data_tools.dataset import AtomsDataset
    from data_tools.writer import AtomsWriter
    from sciml.utils.atomic import atomic_path
    from sciml.xtb.backend import DxtbGFN1

    paths, indices, lo, hi, cutoff, part, meta = args
    ds = AtomsDataset(paths, indices=indices[lo:hi])
    xtb = DxtbGFN1()
    with atomic_path(part, suffix=".h5") as tmp:
        writer = AtomsWriter(tmp, **meta)
        try:
            for k in range(len(ds)):
                shard, local = (int(v[0]) for v in ds.locate(np.array([k])))
                reader = ds._reader(shard)
                rows = reader.raw_rows(local, local + 1)
                item = ds[k]
                charge = int(item.charge) if "charge" in item else 0
                uhf = int(item.spin) if "spin" in item else 0
                where = f"{ds.shard_paths[shard]}: frame {local}"
                rows.update(frame_extras(item.z.numpy(), item.pos.double().numpy(), charge, uhf, cutoff, where, xtb))
                writer.append_arrays(rows)
            writer.finish()
        except BaseException:
            writer.abort()
            raise
    return str(part)


def cached_features(path: str | os.PathLike, cutoff: float, cache_dir: str | os.PathLike | None = None,
                    progress: bool = True, workers: int = 1) -> Path:
    """The feature cache of the HDF5 data ``path`` (shards, folder, glob or split index), built if needed, in
    ``cache_dir/xtb`` (default ``$SCIML_CACHE_DIR/xtb`` or ``~/.cache/sciml/xtb``)."""
    from tqdm import tqdm

    from data_tools.dataset import AtomsDataset
    from data_tools.reader import ShardReader
    from sciml.potential.data import cache_root

    ds = AtomsDataset(path)
    key = cache_key(ds, cutoff)
    root = (Path(cache_dir) if cache_dir else cache_root().parent) / "xtb"
    target = root / f"{Path(str(path)).name.removesuffix('.h5')}-{key}.h5"
    if target.is_file():
        return target
    if any(ds.natoms > 500):
        raise DataError(f"{path}: the xTB feature cache is meant for molecules (largest frame: {ds.natoms.max()} "
                        "atoms)")
    stage = root / f".tmp-{target.name}"
    stage.mkdir(parents=True, exist_ok=True)
    with ShardReader(ds.shard_paths[0]) as r:
        meta = {"energy_convention": r.energy_convention, "element_reference_energies": r.element_reference_energies,
                "provenance": {"feature_cache": {"method": METHOD, "cutoff": cutoff, "features": FEATURE_VERSION,
                                                 "source": [str(p) for p in ds.shard_paths]}, "source": r.provenance}}
    starts = list(range(0, len(ds), PART_FRAMES))
    parts = [stage / f"part_{i:06d}.h5" for i in range(len(starts))]
    todo = [(ds.shard_paths, ds.indices, lo, min(lo + PART_FRAMES, len(ds)), cutoff, part, meta)
            for lo, part in zip(starts, parts) if not part.is_file()]
    bar = tqdm(total=len(ds), initial=len(ds) - sum(job[3] - job[2] for job in todo), unit="frame",
               desc=f"xTB features {Path(str(path)).name}", disable=not progress)
    if workers > 1 and len(todo) > 1:
        import concurrent.futures
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            for job, _ in zip(todo, pool.map(_build_part, todo)):
                bar.update(job[3] - job[2])
    else:
        for job in todo:
            _build_part(job)
            bar.update(job[3] - job[2])
    bar.close()
    _merge(parts, target, meta)
    shutil.rmtree(stage, ignore_errors=True)
    return target


def _merge(parts: list[Path], target: Path, meta: dict[str, Any]) -> None:
    from data_tools.reader import ShardReader
    from data_tools.writer import AtomsWriter
    from sciml.utils.atomic import atomic_path

    with atomic_path(target, suffix=".h5") as tmp:
        writer = AtomsWriter(tmp, **meta)
        try:
            for part in parts:
                with ShardReader(part) as r:
                    writer.append_arrays(r.raw_rows(0, r.n_frames))
            writer.finish()
        except BaseException:
            writer.abort()
            raise
