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


def _fortran_empty(shape: list[int], device: torch.device) -> torch.Tensor:
    """An uninitialised float32 tensor of ``shape`` with column-major (Fortran) strides."""
    return torch.empty(shape[::-1], dtype=torch.float32, device=device).permute(list(range(len(shape) - 1, -1, -1)))


class MSKFTile(nn.Module):
    """Normalisation, network (any architecture) and MSKF post-constraints for one WRF tile (see the module
    docstring for shapes).

    The tile is processed in slabs of whole ``i`` rows of at most ``max_columns`` columns (0 = all at once), written
    into the Fortran-ordered outputs: on a CPU the slab's temporaries stay in cache and its allocations are reused,
    ~1.5-2x faster than one 9,216- or 44,000-column batch; on a GPU one batch is best.
    """

    def __init__(self, model: MSKFNet, threshold: float = 0.5, max_columns: int = 4096):
        super().__init__()
        self.model = model
        self.threshold = float(threshold)
        self.n_levels = int(model.n_levels)
        self.max_columns = int(max_columns)

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
        tend_out = _fortran_empty([ni, nk, nj, 6], profiles.device)
        col_out = _fortran_empty([ni, nj, 4], profiles.device)
        w0avg_out = _fortran_empty([ni, nk, nj], profiles.device)
        rows = nj if self.max_columns <= 0 else max(1, self.max_columns // ni)
        for j0 in range(0, nj, rows):
            j1 = min(nj, j0 + rows)
            tend, column, w0avg = self._slab(profiles[:, :, j0:j1], w[:, :, j0:j1], surface[:, j0:j1],
                                             held[:, :, j0:j1], dt, tst)
            tend_out[:, :, j0:j1].copy_(tend)
            col_out[:, j0:j1].copy_(column)
            w0avg_out[:, :, j0:j1].copy_(w0avg)
        return tend_out, col_out, w0avg_out

    def _slab(self, profiles: torch.Tensor, w: torch.Tensor, surface: torch.Tensor, held: torch.Tensor, dt: float,
              tst: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One slab of whole i rows: outputs (ni, nk, nj', 6), (ni, nj', 4), (ni, nk, nj') as views, any strides."""
        ni, nk, nj = profiles.shape[0], profiles.shape[1], profiles.shape[2]
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
        return (tend.reshape(nj, ni, nk, 6).permute(1, 2, 0, 3), column.reshape(nj, ni, 4).permute(1, 0, 2), w0avg)
