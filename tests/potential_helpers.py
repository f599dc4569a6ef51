"""Helpers shared by tests/test_potential_*.py: small randomly initialised potentials and checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
ACAC = REPO / "examples" / "data" / "acac" / "train_300K.xyz"
TOY_SLAB = REPO / "examples" / "data" / "oc20" / "toy_c3h8_relax.extxyz"

SMALL = {"lmax": 2, "channels": 8, "layers": 2, "cutoff": 5.0}


def potential_config(elements_file: str = "unused.xyz", **model: Any) -> dict[str, Any]:
    from sciml.training.config import validate_config

    return validate_config({"task": "potential", "data": {"train": elements_file}, "model": {**SMALL, **model},
                            "train": {"max_steps": 1}})


def make_model(elements: list[int], dtype: torch.dtype = torch.float64, seed: int = 0, **model: Any) -> torch.nn.Module:
    """A TDN potential (ForceField) with random weights and plausible statistics (E0 = -Z eV, scale 0.5 eV)."""
    from sciml.potential.task import build_potential

    torch.manual_seed(seed)
    net = build_potential(potential_config(**model)["model"])
    net.model.set_statistics(elements, {z: -float(z) for z in elements}, scale=0.5, shift=0.0,
                             avg_num_neighbors=10.0)
    return net.to(dtype)


def write_checkpoint(path: Path, elements: list[int], **model: Any) -> Path:
    """A ``sciml train``-format checkpoint of :func:`make_model` (float32 weights)."""
    from sciml.training.checkpoint import save_checkpoint

    net = make_model(elements, torch.float32, **model)
    save_checkpoint(path, {"config": potential_config(**model), "task": "potential", "model": net.state_dict(),
                           "ema": None})
    return path


def batch_of(structures: list) -> Any:
    """ASE structures -> model input (float64) without edges: the model builds the torch radius graph."""
    from data_tools.neighbors import NeighborList
    from sciml.potential.inputs import ModelInputs

    return ModelInputs(NeighborList(5.0, "torch")).from_atoms(structures)


