"""NumPy-in / NumPy-out MSKF hook for one WRF tile in WRF memory order (i, k, j).

Usage (e.g. from a CFFI-embedded Python called by WRF's cumulus driver, see docs/wrf_coupling.md)::

    from sciml.coupling import MSKFSurrogate
    mskf = MSKFSurrogate.from_checkpoint("examples/pretrained/mskf-bilstm.pt")
    out = mskf.step(state, dt=45.0, cudt=0.0)
    out["rthcuten"]   # (ni, nk, nj) Fortran-ordered, K s-1

Copies: float32 inputs are wrapped without copying (``torch.from_numpy``; on a GPU each is one contiguous
transfer) and gathered once into the network's column batch; the held tendencies are only read when some column
holds them (incoming NCA >= 0.5 dt). The outputs are Fortran-ordered views into one result block, so writing them
back into WRF's arrays is one ``np.copyto`` each (or pass ``out=`` arrays to :meth:`MSKFSurrogate.step`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch

from models.mskf_bilstm import TENDENCIES, MSKFNet
from sciml.coupling.tile import TILE_COLUMN, TILE_PROFILES, TILE_SURFACE, MSKFTile
from sciml.errors import ConfigError, DataError

#: hook state keys for the held tendencies (lower-case WRF names)
HELD: tuple[str, ...] = tuple(name.lower() for name in TENDENCIES)
#: network arithmetic: float32, or bfloat16 autocast
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")
#: state keys that may be omitted: previous-call NCA, PRATEC and held tendencies (default: nothing held)
OPTIONAL: tuple[str, ...] = ("nca", "pratec", *HELD)


def w0avg_length(dt: float, cudt: float) -> float:
    """MSKF's W0AVG averaging length TST = 2 * max(1, nint(cudt * 60 / dt)) calls (``cudt`` in minutes, ``dt`` s)."""
    return float(2 * max(1, int(round(cudt * 60.0 / dt))))


class MSKFSurrogate:
    """The MSKF surrogate as a WRF tile hook; see :meth:`step`."""

    def __init__(self, model: MSKFNet, device: str | torch.device = "cpu", threads: int | None = None,
                 precision: str = "float32", max_columns: int | None = None):
        """``precision``: "float32", or "bfloat16" to run the network under bf16 autocast (AMX / tensor cores;
        inputs, normalisation, constraints and outputs stay float32). ``max_columns``: columns per network batch
        (slabs of whole i rows; 0 = the whole tile); default 4096 on a CPU, the whole tile on a GPU."""
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but this PyTorch has no CUDA device; use --device cpu")
        if max_columns is None:
            max_columns = 0 if self.device.type == "cuda" else 4096
        self.tile = MSKFTile(model.eval(), max_columns=max_columns).to(self.device).eval()
        self.n_levels = self.tile.n_levels

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        threads: int | None = None, precision: str = "float32",
                        max_columns: int | None = None) -> MSKFSurrogate:
        """Load a trained surrogate (``sciml train`` checkpoint or ``examples/pretrained/mskf-bilstm.pt``)."""
        from sciml.mskf.checkpoint import load_mskf_model

        return cls(load_mskf_model(path), device=device, threads=threads, precision=precision,
                   max_columns=max_columns)

    def inputs(self, state: Mapping[str, np.ndarray], *, dt: float,
               cudt: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The tile module's inputs ``(profiles, w, surface, held, params)`` for ``state`` (see :meth:`step`), on
        this surrogate's device. Profiles (and held tendencies, when read) are stacked channel-major, which for
        Fortran-ordered fields is one plain copy per field and the layout the tile module gathers from fastest."""
        ni, nk, nj = self._shape(state)
        dev = self.device

        def tensor(name: str) -> torch.Tensor:  # no copy on the CPU for float32 input; one transfer to a GPU
            return torch.from_numpy(np.asarray(state[name], dtype=np.float32)).to(dev)

        def channels(fields: list[torch.Tensor]) -> torch.Tensor:
            # stacked channel-major as (c, j, k, i) memory, a plain copy of Fortran-ordered arrays; (i, k, j, c) view
            return torch.stack([f.permute(2, 1, 0) for f in fields], dim=0).permute(3, 2, 1, 0)

        zeros2d = torch.zeros((ni, nj), dtype=torch.float32, device=dev)
        prof = channels([tensor(n) for n in TILE_PROFILES])
        sfc = torch.stack([tensor(n) if n in state else zeros2d for n in TILE_SURFACE], dim=-1)
        nca = state.get("nca")
        if nca is not None and bool(np.any(np.asarray(nca) >= 0.5 * dt)):
            zeros3d = torch.zeros((ni, nk, nj), dtype=torch.float32, device=dev)
            held = channels([tensor(n) if n in state else zeros3d for n in HELD])
        else:  # nothing is held: the held tendencies are never read (a broadcast zero, no memory)
            held = torch.zeros((1, 1, 1, 1), dtype=torch.float32, device=dev).expand(ni, nk, nj, len(HELD))
        params = torch.tensor([dt, w0avg_length(dt, cudt)], dtype=torch.float32, device=dev)
        return prof, tensor("w"), sfc, held, params

    @torch.inference_mode()
    def step(self, state: Mapping[str, np.ndarray], *, dt: float, cudt: float = 0.0,
             out: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """One MSKF call on a tile.

        ``state``: 3-D arrays (ni, nk, nj) ``u, v, t, qv, p, th, dz8w, rho, pi, w0avg`` and optionally the held
        tendencies ``rthcuten ... rqscuten``; ``w`` (ni, nk+1, nj); 2-D arrays (ni, nj) ``hfx, ust, pblh`` and
        optionally ``nca`` (s) and ``pratec`` (mm s-1) as WRF holds them before the call. Units as MSKF (K, Pa,
        kg kg-1, m s-1, W m-2, m). ``dt`` (s), ``cudt`` (min, the namelist value).

        Returns (ni, nk, nj) ``rthcuten ... rqscuten`` and ``w0avg``, and (ni, nj) ``pratec`` (mm s-1), ``raincv``
        (mm), ``nca`` (s), ``trigger_prob``: float32, Fortran-ordered. With ``out`` (same keys), results are also
        copied into those arrays (e.g. WRF's own buffers) and those arrays are returned.
        """
        dev = self.device
        args = self.inputs(state, dt=dt, cudt=cudt)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
            tend, col, w0avg = self.tile(*args)
        tend, col, w0avg = (x.float().cpu().numpy() for x in (tend, col, w0avg))
        result = {name: tend[..., c] for c, name in enumerate(HELD)}
        result.update({name: col[..., c] for c, name in enumerate(TILE_COLUMN)})
        result["w0avg"] = w0avg
        if out is not None:
            for name, target in out.items():
                np.copyto(target, result[name])
                result[name] = target
        return result

    def _shape(self, state: Mapping[str, np.ndarray]) -> tuple[int, int, int]:
        required = [*TILE_PROFILES, "w", "hfx", "ust", "pblh"]
        missing = [k for k in required if k not in state]
        if missing:
            raise DataError(f"MSKF hook: state lacks {', '.join(missing)}")
        ni, nk, nj = np.shape(state["t"])
        if nk != self.n_levels:
            raise DataError(f"MSKF hook: the tile has {nk} levels but the surrogate was trained on {self.n_levels}; "
                            "it only applies to its training vertical grid")
        for name in [*TILE_PROFILES, *HELD]:
            if name in state and np.shape(state[name]) != (ni, nk, nj):
                raise DataError(f"MSKF hook: {name} has shape {np.shape(state[name])}, expected {(ni, nk, nj)}")
        if np.shape(state["w"]) != (ni, nk + 1, nj):
            raise DataError(f"MSKF hook: w has shape {np.shape(state['w'])}, expected {(ni, nk + 1, nj)}")
        for name in ("hfx", "ust", "pblh", "nca", "pratec"):
            if name in state and np.shape(state[name]) != (ni, nj):
                raise DataError(f"MSKF hook: {name} has shape {np.shape(state[name])}, expected {(ni, nj)}")
        return ni, nk, nj
