"""``sciml quickstart`` step: the shipped MSKF surrogate offline on the bundled WRF crop (netCDF + precipitation map)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CROP = REPO / "examples/data/wrf_mskf_crop.nc"
MODEL = REPO / "examples/pretrained/mskf-bilstm.pt"


def quickstart_step(workdir: Path) -> None:
    """Run ``sciml wrf infer`` on ``examples/data/wrf_mskf_crop.nc`` and plot PRATEC, WRF's MSKF vs the surrogate."""
    import numpy as np

    from data_tools.wrf import open_wrf
    from sciml.coupling import MSKFSurrogate
    from sciml.mskf.infer import open_checked, write_predictions
    from sciml.mskf.plots import precipitation_maps

    out = workdir / "mskf"
    surrogate = MSKFSurrogate.from_checkpoint(MODEL)
    ds = open_checked([CROP], surrogate)
    summary = write_predictions(ds, surrogate, out / "crop_surrogate.nc", str(MODEL), progress=False)
    print(f"MSKF surrogate ({MODEL.relative_to(REPO)}) on {CROP.relative_to(REPO)}: {summary['columns_per_frame']} "
          f"columns x {summary['levels']} levels -> {summary['out']}")
    import netCDF4

    with netCDF4.Dataset(out / "crop_surrogate.nc") as nc:
        pred = np.asarray(nc["PRATEC"][0])
    truth = np.asarray(open_wrf(CROP)["PRATEC"].isel(Time=0).values)
    png = precipitation_maps(truth, pred, out / "crop_pratec.png",
                             "bundled crop, 16 h of the training run (a training frame: a demo, not a skill test)")
    print(f"convective precipitation, mean over the crop: WRF MSKF {truth.mean() * 3600:.3f} mm/h, surrogate "
          f"{pred.mean() * 3600:.3f} mm/h; map: {png}")
