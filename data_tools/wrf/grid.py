"""Grid signature of a wrfout file: what must match for files to be concatenated or for a model to apply.

A signature is a plain JSON-able dict: ``nx``, ``ny``, ``nz`` (mass points), ``DX``, ``DY`` (m), ``DT`` (s),
``P_TOP`` (Pa), ``ZNU``/``ZNW`` (eta of mass/w levels, bottom to top), ``HYBRID_OPT``; a value is ``None``
where the file lacks it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import xarray as xr

from sciml.errors import DataError

HORIZONTAL = ("nx", "ny", "DX", "DY")
VERTICAL = ("nz", "P_TOP", "ZNU", "ZNW")


def grid_signature(ds: xr.Dataset) -> dict[str, Any]:
    """Signature of ``ds`` (first output time for the eta levels and P_TOP)."""

    def attr(name: str) -> float | None:
        return float(ds.attrs[name]) if name in ds.attrs else None

    def first(name: str) -> Any:
        if name not in ds.variables:
            return None
        a = ds[name]
        a = a.isel(Time=0) if "Time" in a.dims else a
        return np.asarray(a.values, dtype=float).tolist()

    return {
        "nx": int(ds.sizes["west_east"]), "ny": int(ds.sizes["south_north"]), "nz": int(ds.sizes["bottom_top"]),
        "DX": attr("DX"), "DY": attr("DY"), "DT": attr("DT"),
        "P_TOP": first("P_TOP"), "ZNU": first("ZNU"), "ZNW": first("ZNW"),
        "HYBRID_OPT": int(ds.attrs["HYBRID_OPT"]) if "HYBRID_OPT" in ds.attrs else None,
    }


def differences(a: dict[str, Any], b: dict[str, Any], keys: Iterable[str] = HORIZONTAL + VERTICAL,
                rtol: float = 1e-5) -> list[str]:
    """Human-readable differences between signatures ``a`` and ``b`` over ``keys`` (None matches anything)."""
    out = []
    for key in keys:
        va, vb = a.get(key), b.get(key)
        if va is None or vb is None:
            continue
        if np.shape(va) != np.shape(vb) or not np.allclose(va, vb, rtol=rtol, atol=0.0):
            out.append(f"{key}: {_short(va)} vs {_short(vb)}")
    return out


def check_same_grid(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str,
                    keys: Iterable[str] = HORIZONTAL + VERTICAL) -> None:
    """Raise :class:`DataError` naming both files if their grids differ in any of ``keys``."""
    diff = differences(a, b, keys)
    if diff:
        raise DataError(f"{name_b} has another grid than {name_a} (values: {name_a} vs {name_b}): " + "; ".join(diff)
                        + ". Files with different grids or level counts cannot be combined.")


def _short(v: Any) -> str:
    if isinstance(v, list):
        return f"{len(v)} levels [{v[0]:.5g} .. {v[-1]:.5g}]" if v else "[]"
    return f"{v:g}" if isinstance(v, float) else str(v)
