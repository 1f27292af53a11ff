"""The sphere and its grids: latitude area weights and great-circle distances.

Ground floor of the package: NumPy and xarray only. Every score, loss and localization
that weights by area or measures distance on the sphere uses these functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from .constants import EARTH_RADIUS

__all__ = ["area_weights", "great_circle_distance"]


def area_weights(latitude: xr.DataArray | Sequence[float] | np.ndarray) -> xr.DataArray:
    """Return latitude area weights normalised to mean 1 (WeatherBench2 ``get_lat_weights``).

    Parameters
    ----------
    latitude : DataArray or array_like
        Cell-centre latitudes in degrees, strictly monotonic (either order), within [-90, 90].

    Returns
    -------
    xarray.DataArray
        Weights on dimension ``latitude``, in the order given, with mean 1.

    Raises
    ------
    ValueError
        If latitudes are not one-dimensional, not strictly monotonic, or outside [-90, 90].

    Notes
    -----
    The weight of a cell is its area ``sin(φ_upper) − sin(φ_lower)`` with cell bounds at the
    midpoints between neighbouring latitudes and at ±90° for the outermost cells, normalised
    so the weights average to 1 — exactly WeatherBench2's ``get_lat_weights``. Defined in the
    documentation, docs/design.md (Verification).

    That holds for every global grid: its outermost latitudes lie within one grid spacing
    of the poles (a pole row, the outer rows of an equiangular grid without poles or of a
    Gaussian grid). An outermost latitude further from its pole (a latitude band, a
    regional grid: 40°, 45°, 50°) bounds its cell half a spacing beyond it instead, as
    :func:`xfuxi.regrid` bounds the cells of such a grid: with ±90° its edge rows would
    take the whole polar cap beyond them (84 % of the weight of a 40–50° band on its 40°
    row). The weights of such a band are those of its rows within a global grid through
    them of the same spacing, renormalised (WeatherBench2 weights a region by cutting the
    global weights, which is the same).

    Examples
    --------
    >>> w = area_weights([-45.0, 0.0, 45.0])
    >>> [round(float(v), 4) for v in w]
    [0.926, 1.1481, 0.926]
    >>> float(w.mean())
    1.0
    >>> [round(float(v), 4) for v in area_weights([40.0, 45.0, 50.0])]  # a band
    [1.0861, 1.0025, 0.9114]
    """
    lat = np.asarray(latitude, dtype="float64")
    if lat.ndim != 1 or lat.size == 0:
        raise ValueError(f"latitude must be a non-empty 1-D array; got shape {lat.shape}")
    if np.any(~np.isfinite(lat)) or lat.min() < -90 or lat.max() > 90:
        raise ValueError("latitude must lie within [-90, 90] degrees")
    descending = lat.size > 1 and lat[0] > lat[-1]
    asc = lat[::-1] if descending else lat
    if asc.size > 1 and not np.all(np.diff(asc) > 0):
        raise ValueError("latitude must be strictly monotonic")
    bounds = np.concatenate([[-90.0], (asc[1:] + asc[:-1]) / 2.0, [90.0]])
    if asc.size > 1:  # a band or region: outer bounds half a spacing out, not at the poles
        first, last, tol = asc[1] - asc[0], asc[-1] - asc[-2], 1e-9
        if asc[0] - first > -90.0 + tol:
            bounds[0] = asc[0] - first / 2.0
        if asc[-1] + last < 90.0 - tol:
            bounds[-1] = asc[-1] + last / 2.0
    area = np.diff(np.sin(np.deg2rad(bounds)))
    area = area / area.mean()
    if descending:
        area = area[::-1]
    coords = {"latitude": latitude} if isinstance(latitude, xr.DataArray) else {"latitude": lat}
    return xr.DataArray(area, dims=["latitude"], coords=coords, name="area_weights")


def great_circle_distance(
    lat_a: np.ndarray, lon_a: np.ndarray, lat_b: np.ndarray, lon_b: np.ndarray
) -> np.ndarray:
    """Great-circle distance in metres between points in degrees (broadcasting).

    Examples
    --------
    >>> d = great_circle_distance(np.array(0.0), np.array(0.0), np.array(0.0), np.array(90.0))
    >>> round(float(d) / 1e3)
    10008
    """
    pa, pb = np.deg2rad(lat_a), np.deg2rad(lat_b)
    dlon = np.deg2rad(np.asarray(lon_b) - np.asarray(lon_a))
    h = np.sin((pb - pa) / 2) ** 2 + np.cos(pa) * np.cos(pb) * np.sin(dlon / 2) ** 2
    return 2.0 * EARTH_RADIUS * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
