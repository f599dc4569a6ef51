"""Call the MSKF surrogate the way WRF would: one tile in WRF memory order (i, k, j), Fortran-ordered arrays.

    python examples/mskf_hook_tile.py

The tile is cut from the bundled WRF crop; `data_tools.wrf` derives the state WRF's cumulus driver passes to MSKF.
"""

from pathlib import Path

import numpy as np

from data_tools.wrf import open_wrf
from sciml.coupling import MSKFSurrogate

HERE = Path(__file__).resolve().parent
DT = 45.0  # s, the model time step of the run the crop comes from

frame = open_wrf(HERE / "data" / "wrf_mskf_crop.nc").isel(Time=0).load()
surrogate = MSKFSurrogate.from_checkpoint(HERE / "pretrained" / "mskf-mlp.pt")


def wrf_memory(name: str) -> np.ndarray:
    """wrfout (k, j, i) or (j, i) -> WRF memory order (i, k, j) or (i, j), Fortran-ordered float32 (no copy needed
    inside WRF, where the arrays already have this layout)."""
    a = np.asarray(frame[name].values, dtype=np.float32)
    return np.asfortranarray(a.transpose(2, 0, 1) if a.ndim == 3 else a.T)


state = {name: wrf_memory(src) for name, src in [("u", "u"), ("v", "v"), ("t", "t"), ("qv", "qv"), ("p", "p"),
                                                 ("th", "th"), ("dz8w", "dz8w"), ("rho", "rho"), ("pi", "pi"),
                                                 ("w0avg", "W0AVG"), ("w", "W"), ("hfx", "HFX"), ("ust", "UST"),
                                                 ("pblh", "PBLH")]}
state["nca"] = np.zeros_like(state["hfx"])  # no column is inside a held deep-convection period

out = surrogate.step(state, dt=DT)
ni, nk, nj = state["t"].shape
print(f"tile: ni={ni}, nk={nk}, nj={nj} ({ni * nj} columns)")
for name, value in out.items():
    print(f"{name:>12}: shape {value.shape}, Fortran-ordered {value.flags.f_contiguous}, "
          f"min {value.min():.3g}, max {value.max():.3g}")
print(f"columns triggered: {(out['trigger_prob'] > 0.5).sum()} of {ni * nj}")
