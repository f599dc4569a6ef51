"""Hostile inputs built in the test: crafted OC20 / PubChemQCR LMDB records that try to read process memory through
the restricted unpickler, a gzip bomb, and a checkpoint that names a module to import. Each is refused with rc 2,
no crash, and an output that holds nothing."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

REPO = Path(__file__).resolve().parents[1]


class StridedTensor:
    """Pickles as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` with chosen arguments."""

    def __init__(self, offset: int, size: tuple, stride: tuple):
        self.storage = torch.arange(16, dtype=torch.float32).untyped_storage()
        self.args = (offset, size, stride)

    def __reduce__(self):
        typed = torch.storage.TypedStorage(wrap_storage=self.storage, dtype=torch.float32, _internal=True)
        return torch._utils._rebuild_tensor_v2, (typed, *self.args, False, OrderedDict())


class TensorWithState:
    """Pickles as ``torch.Tensor()`` followed by BUILD with a state naming a raw memory address."""

    def __init__(self, address: int):
        self.address = address

    def __reduce__(self):
        interface = {"data": (self.address, True), "shape": (3, 3), "typestr": "<f4", "version": 3}
        return torch.Tensor, (), {"__array_interface__": interface}


def oc20_record(**fields) -> bytes:
    base = dict(pos=torch.zeros(3, 3), atomic_numbers=torch.tensor([8.0, 1.0, 1.0]), natoms=3, y=-1.0,
                cell=torch.eye(3).view(1, 3, 3) * 10, sid=0, fid=0)
    base.update(fields)
    return pickle.dumps(Data(**base), protocol=4)


def write_lmdb(path: Path, values: dict[bytes, bytes]) -> Path:
    import lmdb

    env = lmdb.open(str(path), subdir=False, map_size=1 << 26)
    with env.begin(write=True) as txn:
        for key, value in values.items():
            txn.put(key, value)
    env.close()
    return path


def convert_cli(tmp_path: Path, src: Path, fmt: str, *extra: str) -> subprocess.CompletedProcess:
    """``sciml data convert`` in a subprocess (a crash shows as a negative return code, not a dead test run)."""
    return subprocess.run([sys.executable, "-m", "sciml", "data", "convert", str(src), "-o", str(tmp_path / "o.h5"),
                           "--format", fmt, *extra], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def assert_refused(result: subprocess.CompletedProcess, tmp_path: Path, message: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "o.h5").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-o.h5")]  # no staging left


@pytest.mark.parametrize("offset, size, stride", [(2, (3, 3), (-3, -1)),        # walks back 6 floats before the data
                                                  (0, (3, 3), (-(2 ** 40), 1)),  # far outside the process
                                                  (-8, (3, 3), (3, 1)),          # negative offset
                                                  (10, (3, 3), (3, 1))])         # ends 3 floats past the storage
def test_tensor_outside_its_storage_is_refused(tmp_path, offset, size, stride) -> None:
    src = write_lmdb(tmp_path / "strided.lmdb", {b"0": oc20_record(pos=StridedTensor(offset, size, stride))})
    assert_refused(convert_cli(tmp_path, src, "oc20-lmdb", "--skip-invalid"), tmp_path, "key 0")


def test_state_of_a_tensor_stand_in_never_reaches_numpy(tmp_path) -> None:
    secret = np.frombuffer(b"SECRET-" * 16, np.uint8)
    src = write_lmdb(tmp_path / "state.lmdb", {b"0": oc20_record(pos=TensorWithState(secret.ctypes.data))})
    result = convert_cli(tmp_path, src, "oc20-lmdb", "--skip-invalid")
    assert_refused(result, tmp_path, "key 0")


@pytest.mark.slow
def test_pubchemqcr_gzip_bomb_is_capped(tmp_path) -> None:
    bomb = gzip.compress(b"\0" * (512 << 20), compresslevel=9)  # 512 MiB of zeros in ~0.5 MB
    src = write_lmdb(tmp_path / "bomb.lmdb", {b"000000001": bomb})
    del bomb
    peak = tmp_path / "peak_kb"
    code = ("import sys\nfrom sciml.cli import main\nrc = main(sys.argv[1:])\n"  # VmHWM: this process only
            f"hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
            f"open({str(peak)!r}, 'w').write(hwm)\nsys.exit(rc)\n")
    for cap, message in (("8", "more than 8 MiB"), (None, "more than 64 MiB")):
        result = subprocess.run([sys.executable, "-c", code, "data", "convert", str(src), "-o", str(tmp_path / "o.h5"),
                                 "--format", "pubchemqcr", *(["--max-record-mb", cap] if cap else [])],
                                capture_output=True, text=True, cwd=REPO, timeout=300,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        assert_refused(result, tmp_path, "CID 000000001")
        assert message in result.stderr
        assert int(peak.read_text()) < 400_000  # kB: the record was never held expanded (512 MiB)


def test_checkpoint_cannot_make_sciml_import_a_module(tmp_path, monkeypatch) -> None:
    from potential_helpers import write_checkpoint

    from sciml.calculators import MLIPCalculator
    from sciml.errors import DataError
    from sciml.training.checkpoint import load_checkpoint, save_checkpoint

    marker = tmp_path / "imported"
    (tmp_path / "evil_task.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from sciml.potential.task import PotentialTask\n\nclass EvilTask(PotentialTask):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ckpt = load_checkpoint(write_checkpoint(tmp_path / "ok.pt", [1, 6, 8]))
    ckpt["config"]["task"] = "evil_task:EvilTask"
    save_checkpoint(tmp_path / "evil.pt", {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    with pytest.raises(DataError, match="evil_task:EvilTask.*not a registered task"):
        MLIPCalculator.from_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    # a caller who trusts the class says so
    calc = MLIPCalculator.from_checkpoint(tmp_path / "evil.pt", allow_tasks=["evil_task:EvilTask"])
    assert marker.exists() and calc.model is not None
