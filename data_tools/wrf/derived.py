"""Thermodynamic and grid diagnostics exactly as WRF computes them (``phy_prep``, KF/MSKF).

Every function works on NumPy, dask or xarray arrays alike (pure element-wise arithmetic plus slicing).
Constants follow WRF's ``share/module_model_constants.F``; the saturation vapour pressure uses the
Bolton/Buck constants of the KF/MSKF schemes.
"""

from __future__ import annotations

from typing import Any

Array = Any  # numpy.ndarray | dask.array.Array | xarray.DataArray

R_D = 287.0  #: gas constant of dry air, J kg-1 K-1
CP = 7.0 * R_D / 2.0  #: specific heat of dry air at constant pressure, J kg-1 K-1 (1004.5)
RCP = R_D / CP  #: Rd/cp = 2/7
R_V = 461.6  #: gas constant of water vapour, J kg-1 K-1
G = 9.81  #: gravity, m s-2
P1000MB = 1.0e5  #: reference pressure of the Exner function, Pa
T0 = 300.0  #: base potential temperature added to wrfout T, K
SVP1 = 0.6112  #: kPa, saturation vapour pressure at SVPT0
SVP2 = 17.67  #: dimensionless
SVP3 = 29.65  #: K
SVPT0 = 273.15  #: K
EP_2 = 0.622  #: ratio of molecular weights water/dry air used in the saturation mixing ratio


def pressure(P: Array, PB: Array) -> Array:
    """Full pressure at mass points, Pa: perturbation ``P`` + base state ``PB`` (both Pa)."""
    return P + PB


def theta(T: Array) -> Array:
    """Dry potential temperature, K, from the wrfout perturbation ``T`` (K): T + 300."""
    return T + T0


def exner(p: Array) -> Array:
    """Exner function (dimensionless) of pressure ``p`` (Pa): (p / 1e5) ** (Rd/cp)."""
    return (p / P1000MB) ** RCP


def temperature(th: Array, pi: Array) -> Array:
    """Temperature, K, from potential temperature ``th`` (K) and Exner ``pi``."""
    return th * pi


def geopotential_height(PH: Array, PHB: Array) -> Array:
    """Height of the w levels above mean sea level, m: (PH + PHB) / g (geopotentials in m2 s-2)."""
    return (PH + PHB) / G


def layer_thickness(z_w: Array, axis: int = -3) -> Array:
    """Thickness of each mass layer, m (``dz8w``): z_w[k+1] - z_w[k] along the staggered vertical ``axis``."""
    return _upper(z_w, axis) - _lower(z_w, axis)


def destagger(a: Array, axis: int) -> Array:
    """Mean of neighbouring staggered points along ``axis`` (length n+1 -> n): u, v at mass points, layer-mean w,
    mass-level heights."""
    return 0.5 * (_lower(a, axis) + _upper(a, axis))


def density(p: Array, t: Array, qv: Array) -> Array:
    """Moist air density, kg m-3, as WRF's ``rho = (1 + qv) / alt`` with the inverse dry density
    ``alt = Rd T (1 + Rv/Rd qv) / p`` (p in Pa, t in K, qv in kg kg-1)."""
    return (1.0 + qv) * p / (R_D * t * (1.0 + (R_V / R_D) * qv))


def saturation_vapor_pressure(t: Array) -> Array:
    """Saturation vapour pressure over water, Pa: 1000 SVP1 exp(SVP2 (t - SVPT0) / (t - SVP3)), t in K."""
    import numpy as np

    return 1000.0 * SVP1 * np.exp(SVP2 * (t - SVPT0) / (t - SVP3))


def saturation_mixing_ratio(p: Array, t: Array) -> Array:
    """Saturation water-vapour mixing ratio, kg kg-1, as in KF/MSKF: EP_2 es / (p - es) (p in Pa, t in K)."""
    es = saturation_vapor_pressure(t)
    return EP_2 * es / (p - es)


def relative_humidity(qv: Array, qvs: Array) -> Array:
    """Relative humidity as a fraction in [0, 1]: clip(qv / qvs, 0, 1) (both kg kg-1)."""
    r = qv / qvs
    return r.clip(0.0, 1.0)


def dry_layer_pressure_thickness(mut: Array, dnw: Array, c1h: Array | None = None,
                                 c2h: Array | None = None) -> Array:
    """Dry-air pressure thickness of each mass layer, Pa (positive): -(C1H * MUT + C2H) * DNW.

    ``mut`` = MU + MUB (Pa, shape (..., ny, nx)) and ``dnw``, ``c1h``, ``c2h`` per level (..., nz);
    without the hybrid coefficients (``hybrid_opt = 0``) C1H = 1, C2H = 0. Returns (..., nz, ny, nx).
    """
    m = mut[..., None, :, :]
    col = c1h[..., :, None, None] * m if c1h is not None else m
    if c2h is not None:
        col = col + c2h[..., :, None, None]
    return -col * dnw[..., :, None, None]


def _lower(a: Array, axis: int) -> Array:
    idx = [slice(None)] * a.ndim
    idx[axis] = slice(None, -1)
    return a[tuple(idx)]


def _upper(a: Array, axis: int) -> Array:
    idx = [slice(None)] * a.ndim
    idx[axis] = slice(1, None)
    return a[tuple(idx)]
