"""Call the MSKF surrogate the way WRF would: one tile in WRF memory order (i, k, j), Fortran-ordered arrays.

    python examples/mskf_hook_tile.py

The tile is the bundled WRF crop; `wrf_tile_state` builds the state WRF's cumulus driver passes to MSKF.
"""

from pathlib import Path

from data_tools.wrf import open_wrf
from sciml.coupling import MSKFSurrogate
from sciml.coupling.state import wrf_tile_state

HERE = Path(__file__).resolve().parent
DT = 45.0  # s, the model time step of the run the crop comes from

frame = open_wrf(HERE / "data" / "wrf_mskf_crop.nc").isel(Time=0).load()
surrogate = MSKFSurrogate.from_checkpoint(HERE / "pretrained" / "mskf-mlp.pt")
state = wrf_tile_state(frame)  # the whole crop as one tile; NCA, PRATEC and held tendencies from the file
out = surrogate.step(state, dt=DT)
ni, nk, nj = state["t"].shape
print(f"tile: ni={ni}, nk={nk}, nj={nj} ({ni * nj} columns)")
for name, value in out.items():
    print(f"{name:>12}: shape {value.shape}, Fortran-ordered {value.flags.f_contiguous}, "
          f"min {value.min():.3g}, max {value.max():.3g}")
print(f"columns triggered: {(out['trigger_prob'] > 0.5).sum()} of {ni * nj}")
