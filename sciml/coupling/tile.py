"""One MSKF call on a WRF tile in WRF memory order, as a TorchScript-able module.

This module is the single inference path: the NumPy hook (:class:`sciml.coupling.MSKFSurrogate`), the TorchScript
export for FTorch (``sciml wrf export``) and offline inference over wrfout files all run it, so they agree exactly.

Inputs (float32; any strides, Fortran-ordered arrays are read without reordering; ni, nk, nj = tile sizes):

* ``profiles`` (ni, nk, nj, 10): u, v (m s-1, mass points), T (K), qv (kg kg-1), p (Pa), theta (K), dz8w (m),
  rho (kg m-3), Exner (1), W0AVG (m s-1, the value from the previous call) - channel order :data:`TILE_PROFILES`;
* ``w`` (ni, nk+1, nj): vertical velocity on w levels (m s-1);
* ``surface`` (ni, nj, 5): HFX (W m-2), UST (m s-1), PBLH (m), NCA (s, before the call), PRATEC (mm s-1, held);
* ``held`` (ni, nk, nj, 6): the tendencies WRF currently holds (returned unchanged where NCA >= 0.5 dt);
* ``params`` (2,): dt (s), TST (W0AVG averaging length in calls; MSKF uses 2 * max(1, nint(cudt * 60 / dt))).

Outputs (float32, Fortran-ordered, i.e. ``out[..., c]`` is a contiguous (i, k, j) array):

* ``tendencies`` (ni, nk, nj, 6): RTHCUTEN (K s-1), RQVCUTEN, RQCCUTEN, RQRCUTEN, RQICUTEN, RQSCUTEN (kg kg-1 s-1);
* ``column`` (ni, nj, 4): PRATEC (mm s-1), RAINCV (mm per step = PRATEC * dt), NCA (s), P(trigger) (1);
* ``w0avg`` (ni, nk, nj): updated W0AVG = (W0AVG * (TST - 1) + w_layer_mean) / TST (m s-1).
"""

from __future__ import annotations

import torch
from torch import nn

from models.mskf_bilstm import MSKFNet, apply_constraints

#: channel order of the ``profiles`` tile input
TILE_PROFILES: tuple[str, ...] = ("u", "v", "t", "qv", "p", "th", "dz8w", "rho", "pi", "w0avg")
#: channel order of the ``surface`` tile input
TILE_SURFACE: tuple[str, ...] = ("hfx", "ust", "pblh", "nca", "pratec")
#: channel order of the ``column`` tile output
TILE_COLUMN: tuple[str, ...] = ("pratec", "raincv", "nca", "trigger_prob")


def _fortran(x: torch.Tensor) -> torch.Tensor:
    """The same values with column-major (Fortran) strides."""
    dims = list(range(x.dim() - 1, -1, -1))
    return x.permute(dims).contiguous().permute(dims)


class MSKFTile(nn.Module):
    """Normalisation, network (any architecture) and MSKF post-constraints for one WRF tile (see the module docstring for shapes)."""

    def __init__(self, model: MSKFNet, threshold: float = 0.5):
        super().__init__()
        self.model = model
        self.threshold = float(threshold)
        self.n_levels = int(model.n_levels)

    def forward(self, profiles: torch.Tensor, w: torch.Tensor, surface: torch.Tensor, held: torch.Tensor,
                params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ni, nk, nj = profiles.shape[0], profiles.shape[1], profiles.shape[2]
        if nk != self.n_levels:
            raise RuntimeError("MSKF surrogate: tile has " + str(nk) + " levels but the model was trained on "
                               + str(self.n_levels) + "; a model only applies to its training vertical grid")
        if w.shape[1] != nk + 1:
            raise RuntimeError("MSKF surrogate: w must have nk + 1 = " + str(nk + 1) + " levels, got "
                               + str(w.shape[1]))
        dt = float(params[0].item())
        tst = float(params[1].item())
        wbar = 0.5 * (w[:, :-1, :] + w[:, 1:, :])
        w0avg = (profiles[:, :, :, 9] * (tst - 1.0) + wbar) / tst
        # model channel order: u, v, w, t, qv, p, th, dz8w, rho, pi, w0avg; gathered channel-major (c, k, j, i), i.e.
        # in contiguous runs of ni for Fortran-ordered inputs, and viewed as [N, K, 11] with column c = j * ni + i
        n = ni * nj
        cm = profiles.permute(3, 1, 2, 0)
        prof = torch.cat([cm[0:2], wbar.permute(1, 2, 0).unsqueeze(0), cm[2:9], w0avg.permute(1, 2, 0).unsqueeze(0)],
                         dim=0).reshape(11, nk, n).permute(2, 1, 0)
        sfc = surface.permute(1, 0, 2).reshape(n, 5)
        prev = held.permute(3, 1, 2, 0).reshape(6, nk, n).permute(2, 1, 0)
        logit, tend_n, col_n = self.model(prof, sfc[:, 0:3])
        tend, col = self.model.denormalise(tend_n, col_n)
        tend, pratec, nca, prob = apply_constraints(logit, tend, col, sfc[:, 3], prev, sfc[:, 4], dt,
                                                    self.threshold)
        column = torch.stack([pratec, pratec * dt, nca, prob], dim=-1)
        tend_out = tend.reshape(nj, ni, nk, 6).permute(1, 2, 0, 3)
        col_out = column.reshape(nj, ni, 4).permute(1, 0, 2)
        return _fortran(tend_out), _fortran(col_out), _fortran(w0avg)
