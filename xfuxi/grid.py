"""The sphere and its grids: latitude area weights, cell bounds, longitude gaps and
great-circle distances.

Ground floor of the package: NumPy and xarray only. Every score, loss and localization
that weights by area or measures distance on the sphere uses these functions, and
regridding and the observation operator decide with them whether a grid is global.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from .constants import EARTH_RADIUS

__all__ = [
    "area_weights",
    "great_circle_distance",
    "is_whole_circle",
    "latitude_bounds",
    "longitude_gaps",
    "wide_longitude_gaps",
]


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
    bounds = latitude_bounds(asc) if asc.size > 1 else np.array([-90.0, 90.0])
    area = np.diff(np.sin(np.deg2rad(bounds)))
    area = area / area.mean()
    if descending:
        area = area[::-1]
    # a DataArray on latitude keeps its coordinate (attributes too); one on another dim
    # (``lat``: xarray refused it as the coordinate of a dim of another name) gives values
    on_latitude = isinstance(latitude, xr.DataArray) and latitude.dims == ("latitude",)
    coords = {"latitude": latitude if on_latitude else lat}
    return xr.DataArray(area, dims=["latitude"], coords=coords, name="area_weights")


def latitude_bounds(centres: np.ndarray) -> np.ndarray:
    """Bounds of the latitude cells (``n + 1`` for ``n >= 2`` ascending centres), in degrees.

    Cells meet at the midpoints between neighbouring latitudes. An outermost cell reaches
    the pole when its latitude lies within one grid spacing of it (the pole row itself, the
    rows of an equiangular grid without poles, a Gaussian grid's outermost rows: every
    global grid); otherwise, as for a regional grid or a latitude band, it stops half a
    spacing beyond its latitude. The cells of :func:`area_weights` and of ``xfuxi.regrid``.

    Examples
    --------
    >>> latitude_bounds(np.array([-45.0, 0.0, 45.0])).tolist()
    [-90.0, -22.5, 22.5, 90.0]
    >>> latitude_bounds(np.array([40.0, 45.0, 50.0])).tolist()  # a band
    [37.5, 42.5, 47.5, 52.5]
    """
    first, last = centres[1] - centres[0], centres[-1] - centres[-2]
    tol = 1e-9
    low = -90.0 if centres[0] - first <= -90.0 + tol else centres[0] - first / 2
    high = 90.0 if centres[-1] + last >= 90.0 - tol else centres[-1] + last / 2
    return np.concatenate([[low], (centres[:-1] + centres[1:]) / 2, [high]])


def longitude_gaps(centres: np.ndarray) -> np.ndarray:
    """The gap after each of the ascending longitudes (in [0, 360)), round the circle.

    Examples
    --------
    >>> longitude_gaps(np.array([0.0, 90.0, 270.0])).tolist()
    [90.0, 180.0, 90.0]
    """
    return np.diff(np.concatenate([centres, [centres[0] + 360.0]]))


def is_whole_circle(longitude: Any) -> bool:
    """Whether the longitudes, in any order and convention (rolled, -180..180, descending),
    are evenly spaced round the whole circle once: every gap between neighbours modulo 360
    (the one across 360° included) is ``360 / n`` to a thousandth of it (float32
    coordinates of a 0.1° grid are that far off).

    Examples
    --------
    >>> is_whole_circle(np.arange(-180.0, 180.0, 90.0)), is_whole_circle([0.0, 90.0, 180.0])
    (True, False)
    """
    lon = np.sort(np.mod(np.asarray(longitude, dtype="float64").ravel(), 360.0))
    if lon.size < 2 or not np.all(np.isfinite(lon)):
        return False
    spacing = 360.0 / lon.size
    return bool(np.allclose(longitude_gaps(lon), spacing, rtol=0, atol=1e-3 * spacing))


def wide_longitude_gaps(centres: np.ndarray) -> tuple[np.ndarray, float]:
    """Indices of the ascending longitudes followed by a gap (the one across 360° included)
    wider than 1.5 grid spacings, and that spacing: none for a grid round the whole circle.

    The spacing is the (lower) median gap, the most common one: robust to any number of
    missing columns short of half the grid (the second-widest gap is itself a
    missing-column gap where two columns are missing), and the lower median, not the mean
    of the two middle gaps, so that two longitudes 90° apart (gaps of 90° and 270°) have a
    spacing of 90°, not 180°. A missing column leaves a gap of two spacings.

    Examples
    --------
    >>> wide, spacing = wide_longitude_gaps(np.array([0.0, 10.0, 20.0, 40.0, 50.0]))
    >>> wide.tolist(), spacing
    ([2, 4], 10.0)
    """
    gaps = longitude_gaps(centres)
    spacing = float(np.sort(gaps)[(gaps.size - 1) // 2])
    return np.nonzero(gaps > 1.5 * spacing + 1e-9)[0], spacing


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
