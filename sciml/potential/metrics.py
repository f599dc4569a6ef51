"""Energy / force error metrics: per-batch sums (additive over batches and ranks) and their reduction to meV units."""

from __future__ import annotations

import math

import torch


def metric_sums(pred_energy: torch.Tensor, energy: torch.Tensor, natoms: torch.Tensor,
                pred_forces: torch.Tensor | None = None, forces: torch.Tensor | None = None,
                force_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Detached float64 sums for one batch: energies [B] (eV), natoms [B], forces [N, 3] (eV/Angstrom),
    ``force_mask`` [N] bool (atoms whose forces count, e.g. not fixed)."""
    de = (pred_energy.detach().double() - energy.double()).reshape(-1)
    dpa = de / natoms.double().reshape(-1)
    sums = {"n_frames": torch.tensor(float(de.numel()), dtype=torch.float64, device=de.device),
            "e_abs": de.abs().sum(), "e_sq": de.square().sum(), "epa_abs": dpa.abs().sum(),
            "epa_sq": dpa.square().sum()}
    if pred_forces is not None and forces is not None:
        df = pred_forces.detach().double() - forces.double()
        if force_mask is not None:
            df = df[force_mask]
        sums.update(n_fcomp=torch.tensor(float(df.numel()), dtype=torch.float64, device=df.device),
                    f_abs=df.abs().sum(), f_sq=df.square().sum())
    return sums


def reduce_metric_sums(sums: dict[str, float]) -> dict[str, float]:
    """MAE / RMSE of total energy (meV), energy per atom (meV/atom) and force components (meV/Angstrom); the counts
    ``n_frames`` and ``n_force_components`` as integers."""
    n = max(sums.get("n_frames", 0.0), 1.0)
    out = {"n_frames": int(round(sums.get("n_frames", 0.0))),
           "energy_mae_meV": 1e3 * sums["e_abs"] / n, "energy_rmse_meV": 1e3 * math.sqrt(sums["e_sq"] / n),
           "energy_mae_meV_per_atom": 1e3 * sums["epa_abs"] / n,
           "energy_rmse_meV_per_atom": 1e3 * math.sqrt(sums["epa_sq"] / n)}
    if sums.get("n_fcomp"):
        nf = sums["n_fcomp"]
        out.update(n_force_components=int(round(nf)), forces_mae_meV_per_A=1e3 * sums["f_abs"] / nf,
                   forces_rmse_meV_per_A=1e3 * math.sqrt(sums["f_sq"] / nf))
    return out
