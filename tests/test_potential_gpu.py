"""The potential on CUDA (skipped without a GPU): same energies/forces and graphs as on CPU, force training runs.

No ASE here (GPU nodes may lack it): structures come from the benchmark's minimal extxyz reader."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from potential_helpers import REPO

pytestmark = pytest.mark.gpu


def _bench():
    spec = importlib.util.spec_from_file_location("potential_bench", REPO / "benchmarks" / "potential_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("tp", ["cp", "cg"])
def test_cuda_matches_cpu(tp: str) -> None:
    pb = _bench()
    cuda = torch.device("cuda")
    for frames, n in ((pb.read_xyz(pb.ACAC, 8), 8), (pb.read_xyz(pb.SLAB, 1), 2)):
        elements = sorted({int(z) for f in frames for z in f["z"]})
        torch.manual_seed(0)
        model = pb.build_model(elements, torch.device("cpu"), lmax=2, channels=16, layers=2, tensor_product=tp).eval()
        cpu_batch = pb.make_batch(frames, n, torch.device("cpu"), 5.0)
        gpu_batch = pb.make_batch(frames, n, cuda, 5.0)
        assert torch.equal(cpu_batch.edge_index, gpu_batch.edge_index.cpu())
        ref = model(cpu_batch)
        out = model.to(cuda)(gpu_batch)
        torch.testing.assert_close(out["energy"].cpu(), ref["energy"], atol=1e-4, rtol=1e-6)
        torch.testing.assert_close(out["forces"].cpu(), ref["forces"], atol=1e-4, rtol=1e-3)


def test_cuda_force_training_reduces_loss() -> None:
    """Double backward through the CUDA CP kernel path: 30 AdamW steps on one real batch lower the E/F loss."""
    pb = _bench()
    cuda = torch.device("cuda")
    frames = pb.read_xyz(pb.ACAC, 16)
    torch.manual_seed(0)
    model = pb.build_model([1, 6, 8], cuda, lmax=2, channels=32, layers=2, tensor_product="cp").train()
    model.model.set_statistics([1, 6, 8], {1: -13.57, 6: -1026.85, 8: -2037.80}, scale=1.0, shift=0.0,
                               avg_num_neighbors=12.0)
    batch = pb.make_batch(frames, 16, cuda, 5.0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        out = model(batch)
        loss = ((out["energy"] - batch.energy) / batch.natoms).square().mean().float() \
            + 10 * (out["forces"] - batch.forces).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0], losses
