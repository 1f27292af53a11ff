"""Balance kernels on the sphere: free functions on arrays, MetPy style.

The geostrophic wind and the hydrostatic temperature of a geopotential field, with the
Earth's constants of :mod:`xfuxi.constants` (``Ω = 7.292115e-5 s⁻¹``, ``a = 6371008.7714
m``, ``R = 287.04 J kg⁻¹ K⁻¹``). Arrays in, arrays out (NumPy, or an array type that
implements NumPy's functions, such as dask); latitude, longitude and pressure are given
explicitly, and no xarray is needed. They are the one implementation used by the balance
diagnostics (:mod:`xfuxi.verify.balance`) and by the balanced perturbations
(:mod:`xfuxi.perturbations.balanced`). See the definitions in the documentation
(docs/design.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .constants import EARTH_RADIUS, OMEGA, R_DRY
from .grid import is_whole_circle

__all__ = ["coriolis_parameter", "geostrophic_wind", "hydrostatic_temperature"]


def coriolis_parameter(latitude: Any) -> np.ndarray:
    """Coriolis parameter ``f = 2Ω sin φ`` (s⁻¹) at latitudes in degrees.

    Examples
    --------
    >>> round(float(coriolis_parameter(45.0)), 10)
    0.0001031261
    """
    return 2.0 * OMEGA * np.sin(np.deg2rad(np.asarray(latitude, dtype="float64")))


def _axis(axis: int, ndim: int, name: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an array of {ndim} dimensions")
    return axis % ndim


def _along(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """``values`` (1-D) shaped to broadcast along ``axis`` of an ``ndim``-D array."""
    shape = [1] * ndim
    shape[axis] = values.size
    return values.reshape(shape)


def geostrophic_wind(
    geopotential: Any,
    latitude: Any,
    longitude: Any,
    *,
    equator_band: float = 10.0,
    latitude_axis: int = -2,
    longitude_axis: int = -1,
) -> tuple[Any, Any]:
    """Geostrophic wind ``(u_g, v_g)`` (m s⁻¹) of geopotential (m² s⁻²) on the sphere.

    Parameters
    ----------
    geopotential : array_like
        Geopotential, any shape with a latitude and a longitude axis.
    latitude : array_like (H,)
        Latitudes in degrees, strictly monotonic (either order), within [-90, 90], at least 3.
    longitude : array_like (W,)
        Longitudes in degrees, evenly spaced and covering the globe (periodic), at least 3,
        in any order and convention (0..360, −180..180, rolled, descending): the
        derivatives are taken along the longitudes sorted modulo 360 and the winds returned
        in the input's order.
    equator_band : float, default 10.0
        Half-width in degrees of the band around the equator where ``f → 0`` and the
        geostrophic relation is regularised (see Notes); 0 for none; below 90.
    latitude_axis, longitude_axis : int, default -2, -1
        The axes of ``geopotential`` along latitude and longitude.

    Returns
    -------
    u, v : arrays of the shape of ``geopotential``
        Eastward and northward geostrophic wind.

    Raises
    ------
    ValueError
        If the grid is not as described, its sizes differ from the array's axes,
        ``equator_band`` is negative or not finite, or ``equator_band`` is 0 and a latitude
        lies on the equator.

    Notes
    -----
    ``u_g = −(1/f) ∂Φ/∂y``, ``v_g = (1/f) ∂Φ/∂x`` with ``f = 2Ω sin φ``,
    ``∂/∂y = (1/a) ∂/∂φ`` and ``∂/∂x = 1/(a cos φ) ∂/∂λ`` (Holton, *An Introduction to
    Dynamic Meteorology*, §3.2; MetPy's ``geostrophic_wind``). Derivatives are
    second-order centred differences, periodic in longitude and on the (possibly
    non-uniform) latitude grid, one-sided second order at the outermost rows.

    The equator (the one handling in xfuxi): within ``|φ| < equator_band`` the magnitude of
    ``f`` is held at its value at ``equator_band`` and the wind is tapered linearly to zero
    at the equator (factor ``|φ| / equator_band``). The wind is thus finite everywhere,
    continuous at the band's edges, zero on the equator, and exactly geostrophic poleward
    of the band. On a pole row (``|φ| = 90°``), where ``1/cos φ`` is singular, ``v`` is that
    of the next row towards the equator (its limit along the meridian). A masking kernel
    (NaN in the band) cannot feed a perturbation or a model, and an unregularised one blows
    up as ``1/f``; callers that want no value in the band (the balance diagnostics) mask it
    themselves.

    Examples
    --------
    >>> lat = np.array([30.0, 40.0, 50.0]); lon = np.arange(0.0, 360.0, 90.0)
    >>> z = np.broadcast_to(-1e4 * np.deg2rad(lat)[:, None], (3, 4))
    >>> u, v = geostrophic_wind(z, lat, lon)
    >>> round(float(u[1, 0]), 3), float(abs(v).max())   # 1e4 / (a f) at 40°N; no v
    (16.743, 0.0)
    """
    lat = np.asarray(latitude, dtype="float64")
    lon = np.asarray(longitude, dtype="float64")
    ndim = np.ndim(geopotential)
    if ndim < 2:
        raise ValueError(f"geopotential must have a latitude and a longitude axis; got {ndim}-D")
    ilat = _axis(latitude_axis, ndim, "latitude_axis")
    ilon = _axis(longitude_axis, ndim, "longitude_axis")
    if ilat == ilon:
        raise ValueError("latitude_axis and longitude_axis must differ")
    if lat.ndim != 1 or lon.ndim != 1 or lat.size < 3 or lon.size < 3:
        raise ValueError("need at least 3 latitudes and 3 longitudes for derivatives")
    shape = np.shape(geopotential)
    if (shape[ilat], shape[ilon]) != (lat.size, lon.size):
        raise ValueError(
            f"geopotential has {shape[ilat]} latitudes and {shape[ilon]} longitudes on its "
            f"axes {ilat} and {ilon}; the grid has {lat.size} and {lon.size}"
        )
    if not np.all(np.isfinite(lat)) or lat.min() < -90 or lat.max() > 90:
        raise ValueError("latitude must be finite and lie within [-90, 90] degrees")
    dlat = np.diff(lat)
    if not (np.all(dlat > 0) or np.all(dlat < 0)):
        raise ValueError("latitude must be strictly monotonic")
    if not np.all(np.isfinite(lon)):
        raise ValueError("longitude must be finite")
    # any whole circle in any order or convention (rolled, -180..180, descending): the
    # derivatives are taken on the longitudes sorted modulo 360, the result put back in the
    # input's order (a grid already in 0..360 ascending order is used as it is)
    circle = np.mod(lon, 360.0)
    order = np.argsort(circle, kind="stable")
    reorder = not np.array_equal(order, np.arange(lon.size))
    dlon = np.diff(circle[order])
    if not is_whole_circle(lon):
        raise ValueError(
            "longitude must be evenly spaced and cover the globe (periodic) once, in any "
            f"order: its {lon.size} values modulo 360 are spaced {dlon.min():g} to "
            f"{dlon.max():g} degrees and span {lon.size * dlon[0]:g} of 360 degrees; give "
            "the whole circle of equally spaced longitudes"
        )
    if not (np.isfinite(equator_band) and 0 <= equator_band < 90):  # 90: all masked, NaN
        raise ValueError(f"equator_band must be in [0, 90) degrees; got {equator_band}")
    if equator_band == 0 and np.any(lat == 0):
        raise ValueError("with equator_band=0 the grid must not have a latitude on the equator")
    phi = np.deg2rad(lat)
    f = coriolis_parameter(lat)
    band = np.abs(lat) < equator_band
    f_edge = coriolis_parameter(float(equator_band))
    f_eff = np.where(band, np.where(lat >= 0, f_edge, -f_edge), f)
    taper = np.where(band, np.abs(lat) / (equator_band if equator_band > 0 else 1.0), 1.0)
    finv = _along(taper / f_eff, ilat, ndim)
    cos = _along(np.cos(phi), ilat, ndim)
    lam_step = np.deg2rad(dlon[0])
    z = geopotential
    dtype = z.dtype if hasattr(z, "dtype") else np.asarray(z).dtype  # (a dask array: lazy)
    if dtype.kind in "biu":  # differences of unsigned integers wrap around
        z = z.astype("float64") if hasattr(z, "astype") else np.asarray(z, dtype="float64")
    if reorder:
        z = np.take(z, order, axis=ilon)
    dzdlam = (np.roll(z, -1, axis=ilon) - np.roll(z, 1, axis=ilon)) / (2 * lam_step)
    dzdphi = np.gradient(z, phi, axis=ilat, edge_order=2)
    u = -finv * dzdphi / EARTH_RADIUS
    v = finv * dzdlam / (EARTH_RADIUS * cos)
    pole = np.abs(lat) > 90.0 - 1e-6  # 1/cos φ is singular on a pole row
    if pole.any():
        # the limit along the meridian: the next row's v (a regridded pole row that varies a
        # little in longitude gave winds of 1e13 m/s)
        inner = np.nonzero(~pole)[0]
        nearest = inner[np.abs(inner[None, :] - np.arange(lat.size)[:, None]).argmin(1)]
        v_rows = np.take(v, nearest, axis=ilat)
        v = np.where(_along(pole, ilat, ndim), v_rows, v)
    if reorder:  # back to the input's longitude order
        back = np.argsort(order)
        u, v = np.take(u, back, axis=ilon), np.take(v, back, axis=ilon)
    return u, v


def hydrostatic_temperature(geopotential: Any, pressure: Sequence[float], *, axis: int = 0) -> Any:
    """Temperature (K) in hydrostatic balance with geopotential on pressure levels.

    Parameters
    ----------
    geopotential : array_like
        Geopotential (m² s⁻²) with a pressure-level axis.
    pressure : sequence of float (L,)
        The levels' pressures (any unit), strictly monotonic, at least 2.
    axis : int, default 0
        The level axis of ``geopotential``.

    Returns
    -------
    array of the shape of ``geopotential``

    Raises
    ------
    ValueError
        If ``pressure`` is not positive and strictly monotonic with at least 2 values, or
        its size differs from the level axis.

    Notes
    -----
    ``∂Φ/∂ln p = −R T``: ``T_k = −(Φ_{k+1} − Φ_{k−1}) / (R (ln p_{k+1} − ln p_{k−1}))``,
    centred in ln p, one-sided at the first and last level.

    Examples
    --------
    >>> p = np.array([500.0, 1000.0])
    >>> hydrostatic_temperature(-287.04 * 250.0 * np.log(p), p).round(6).tolist()
    [250.0, 250.0]
    """
    p = np.asarray(pressure, dtype="float64")
    ndim = np.ndim(geopotential)
    ax = _axis(axis, max(ndim, 1), "axis")
    if p.ndim != 1 or p.size < 2 or not np.all(p > 0):
        raise ValueError(f"pressure must be 1-D, positive, with at least 2 levels; got {p}")
    if not (np.all(np.diff(p) > 0) or np.all(np.diff(p) < 0)):
        raise ValueError(f"pressure must be strictly monotonic; got {p.tolist()}")
    if np.shape(geopotential)[ax] != p.size:
        raise ValueError(
            f"geopotential has {np.shape(geopotential)[ax]} levels on axis {ax}; "
            f"pressure has {p.size}"
        )
    lnp = np.log(p)
    out = []
    for k in range(p.size):
        k0, k1 = max(k - 1, 0), min(k + 1, p.size - 1)
        upper = np.take(geopotential, k1, axis=ax)
        lower = np.take(geopotential, k0, axis=ax)
        out.append(-((upper - lower) / (lnp[k1] - lnp[k0])) / R_DRY)
    return np.stack(out, axis=ax)
