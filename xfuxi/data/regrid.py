"""Regridding between global latitude–longitude grids: regular, Gaussian, WeatherBench2.

Real data rarely come on the grid of a model: ERA5 is delivered on a 0.25° grid (or any
grid the CDS is asked for), WeatherBench2 stores use equiangular grids with or without the
poles (64 × 32, 240 × 121, 1440 × 721), and the Held–Suarez world and its models use the
T21 Gaussian grid (64 × 32, latitudes ±85.76°). :func:`regrid` moves data between any two
of them:

* ``"bilinear"``: bilinear interpolation in latitude and longitude through the
  ``xarray-regrid`` library (the ``regrid`` extra), periodic in longitude, with the poles
  padded by the zonal mean of the outermost rows (as ESMF does) so that targets poleward
  of the source's outermost latitude are filled;
* ``"conservative"``: first-order conservative remapping. Each target cell takes the
  area-weighted mean of the source cells it overlaps, with cells bounded by the midpoints
  between neighbouring latitudes and longitudes and by ±90° at the poles — the cells of
  :func:`xfuxi.grid.area_weights`. The area integral is kept to rounding (the
  ``xarray-regrid`` conservative scheme approximates the cell areas on non-uniform
  grids and does not keep it on Gaussian grids, so xfuxi computes the exact overlaps
  itself; the remap factorises into one matrix for latitude and one for longitude);
* ``"auto"`` (the default): conservative for fluxes and totals (accumulations such as
  ``total_precipitation_6hr``: their area integral is what matters), bilinear for
  instantaneous fields.

The method used is recorded in each variable's ``regrid_method`` attribute.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, Literal

import numpy as np
import xarray as xr

from .schema import SchemaError, validate

__all__ = [
    "GRIDS",
    "REGRID_METHODS",
    "equiangular_grid",
    "gaussian_grid",
    "is_flux_or_total",
    "regrid",
    "target_grid",
]

#: the methods :func:`regrid` knows
REGRID_METHODS: tuple[str, ...] = ("auto", "bilinear", "conservative")

# names of accumulated fields (totals) and fluxes; regridded conservatively by default
_TOTAL_SUFFIXES = ("_6hr", "_12hr", "_24hr", "_1hr")
_TOTAL_WORDS = ("precipitation", "radiation", "flux", "runoff", "evaporation", "snowfall")


def gaussian_grid(n_latitude: int) -> xr.Dataset:
    """A regular Gaussian grid: ``n_latitude`` Gauss–Legendre latitudes, twice as many
    longitudes from 0°.

    Parameters
    ----------
    n_latitude : int
        Number of latitudes (32 for T21, 64 for T42), even.

    Returns
    -------
    xarray.Dataset
        Coordinates ``latitude`` (ascending) and ``longitude`` only.

    Examples
    --------
    >>> g = gaussian_grid(32)
    >>> g.sizes["longitude"], round(float(g.latitude[-1]), 2)
    (64, 85.76)
    """
    if n_latitude < 2 or n_latitude % 2:
        raise ValueError(f"n_latitude must be an even number >= 2; got {n_latitude}")
    nodes, _ = np.polynomial.legendre.leggauss(n_latitude)
    latitude = np.rad2deg(np.arcsin(nodes))
    longitude = np.arange(2 * n_latitude) * (360.0 / (2 * n_latitude))
    return _grid(latitude, longitude)


def equiangular_grid(n_longitude: int, n_latitude: int, *, poles: bool) -> xr.Dataset:
    """An equiangular latitude–longitude grid as WeatherBench2 uses them.

    Parameters
    ----------
    n_longitude, n_latitude : int
        Number of longitudes (from 0°) and latitudes.
    poles : bool
        Whether the outermost latitudes lie on the poles (WeatherBench2's 240 × 121 and
        1440 × 721 grids) or half a spacing away from them (its 64 × 32 grid).

    Returns
    -------
    xarray.Dataset
        As :func:`gaussian_grid`'s, on this grid.

    Examples
    --------
    >>> g = equiangular_grid(64, 32, poles=False)
    >>> float(g.latitude[0]), float(g.latitude[-1])
    (-87.1875, 87.1875)
    """
    if n_latitude < 2 or n_longitude < 2:
        raise ValueError(f"a grid needs at least 2 × 2 points; got {n_longitude} × {n_latitude}")
    if poles:
        latitude = np.linspace(-90.0, 90.0, n_latitude)
    else:
        step = 180.0 / n_latitude
        latitude = -90.0 + step / 2 + np.arange(n_latitude) * step
    longitude = np.arange(n_longitude) * (360.0 / n_longitude)
    return _grid(latitude, longitude)


def _grid(latitude: np.ndarray, longitude: np.ndarray) -> xr.Dataset:
    return xr.Dataset(
        coords={
            "latitude": ("latitude", latitude, {"units": "degrees_north"}),
            "longitude": ("longitude", longitude, {"units": "degrees_east"}),
        }
    )


#: named grids: the world's Gaussian grids and WeatherBench2's equiangular grids
GRIDS: dict[str, Any] = {
    "T21": lambda: gaussian_grid(32),
    "T42": lambda: gaussian_grid(64),
    "wb2_64x32": lambda: equiangular_grid(64, 32, poles=False),
    "wb2_240x121": lambda: equiangular_grid(240, 121, poles=True),
    "wb2_1440x721": lambda: equiangular_grid(1440, 721, poles=True),
}


def target_grid(target: Any) -> xr.Dataset:
    """The grid to regrid to, from a name, a Dataset/DataArray or a model.

    Parameters
    ----------
    target : str, xarray.Dataset, xarray.DataArray, mapping or model
        A name of :data:`GRIDS` (``"T21"``, ``"wb2_64x32"``, ...), data whose ``latitude``
        and ``longitude`` (or ``lat``/``lon``) give the grid, a mapping of those names to
        arrays (``{"latitude": [...], "longitude": [...]}``), or any object with
        ``latitude`` and ``longitude`` arrays (a :class:`xfuxi.models.base.ForecastModel`).

    Returns
    -------
    xarray.Dataset
        Coordinates ``latitude`` (ascending, within ±90) and ``longitude`` (ascending,
        0..360) only.
    """
    if isinstance(target, str):
        if target not in GRIDS:
            raise ValueError(f"unknown grid {target!r}; expected one of {sorted(GRIDS)}")
        return GRIDS[target]()
    if isinstance(target, (xr.Dataset, xr.DataArray)):
        names = {"lat": "latitude", "lon": "longitude"}
        coords = {names.get(str(k), str(k)): target[k].values for k in target.coords}
        latitude, longitude = coords.get("latitude"), coords.get("longitude")
    elif isinstance(target, Mapping):
        latitude = target.get("latitude", target.get("lat"))
        longitude = target.get("longitude", target.get("lon"))
    else:
        latitude = getattr(target, "latitude", None)
        longitude = getattr(target, "longitude", None)
    if latitude is None or longitude is None:
        raise TypeError(
            f"target {type(target).__name__} gives no latitude and longitude; expected a grid "
            f"name ({sorted(GRIDS)}), a Dataset or DataArray on the grid, a mapping "
            "{'latitude': ..., 'longitude': ...}, or a model"
        )
    grid = validate(_grid(np.asarray(latitude, "float64"), np.asarray(longitude, "float64")))
    return xr.Dataset(coords={"latitude": grid["latitude"], "longitude": grid["longitude"]})


def is_flux_or_total(name: Hashable, attrs: dict[str, Any] | None = None) -> bool:
    """Whether a variable is a flux or an accumulated total (regridded conservatively).

    Parameters
    ----------
    name : hashable
        The variable's long name.
    attrs : dict, optional
        Its attributes: an ``accumulation`` attribute (set by
        :func:`xfuxi.data.readers.from_era5`) marks a total, as do units per area (``m``
        of water for precipitation, ``J m**-2``, ``W m**-2``).

    Returns
    -------
    bool

    Examples
    --------
    >>> is_flux_or_total("total_precipitation_6hr"), is_flux_or_total("temperature")
    (True, False)
    """
    text = str(name).lower()
    if text.endswith(_TOTAL_SUFFIXES) or any(w in text for w in _TOTAL_WORDS):
        return True
    attrs = attrs or {}
    units = str(attrs.get("units", "")).replace(" ", "")
    return "accumulation" in attrs or units in ("Jm**-2", "Wm**-2", "Jm-2", "Wm-2")


def _bounds(centres: np.ndarray, low: float, high: float) -> np.ndarray:
    """Cell bounds: midpoints between centres, and ``low``/``high`` outside."""
    mid = (centres[:-1] + centres[1:]) / 2
    return np.concatenate([[low], mid, [high]])


def _overlap(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """Overlap lengths of target (rows) and source (columns) intervals given by bounds."""
    lo = np.maximum(tgt[:-1, None], src[None, :-1])
    hi = np.minimum(tgt[1:, None], src[None, 1:])
    return np.clip(hi - lo, 0.0, None)


def _latitude_weights(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """Fractions of each target cell's area in each source cell, in sin(latitude)."""
    s = np.sin(np.deg2rad(_bounds(src, -90.0, 90.0)))
    t = np.sin(np.deg2rad(_bounds(tgt, -90.0, 90.0)))
    return _overlap(s, t) / np.diff(t)[:, None]


def _longitude_weights(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """Fractions of each target cell's width in each source cell, periodic in 360°."""

    def periodic_bounds(c: np.ndarray) -> np.ndarray:
        ext = np.concatenate([[c[-1] - 360.0], c, [c[0] + 360.0]])
        return (ext[:-1] + ext[1:]) / 2

    s = periodic_bounds(src)
    t = periodic_bounds(tgt)
    overlap = sum(_overlap(s + shift, t) for shift in (-360.0, 0.0, 360.0))
    return overlap / np.diff(t)[:, None]


def _conservative(da: xr.DataArray, grid: xr.Dataset) -> xr.DataArray:
    wlat = xr.DataArray(
        _latitude_weights(da["latitude"].values, grid["latitude"].values),
        dims=("__lat", "latitude"),
    )
    wlon = xr.DataArray(
        _longitude_weights(da["longitude"].values, grid["longitude"].values),
        dims=("__lon", "longitude"),
    )
    valid = da.notnull()
    summed = xr.dot(wlat, wlon, da.fillna(0.0), dim=["latitude", "longitude"])
    # dask data take the masked path whatever they hold: asking whether all is valid would
    # read every block now (and again when the result is computed)
    if da.chunks is None and bool(valid.all()):
        out = summed
    else:  # the mean over the valid part of each target cell; NaN where none is valid
        cover = xr.dot(wlat, wlon, valid.astype("float64"), dim=["latitude", "longitude"])
        out = (summed / cover).where(cover > 0)
    out = out.rename(__lat="latitude", __lon="longitude")
    out = out.assign_coords(latitude=grid["latitude"], longitude=grid["longitude"])
    return _like_input(out.transpose(*da.dims), da)


def _like_input(out: xr.DataArray, da: xr.DataArray) -> xr.DataArray:
    """``out`` in the float type of ``da`` (float32 stays float32); integer input (a mask of
    0 and 1) gives float64, since its regridded values are fractions."""
    return out.astype(da.dtype, copy=False) if da.dtype.kind == "f" else out


def _bilinear(ds: xr.Dataset, grid: xr.Dataset) -> xr.Dataset:
    try:
        import xarray_regrid  # noqa: F401  (registers the .regrid accessor)
    except ImportError as err:
        raise ImportError(
            "bilinear regridding needs xarray-regrid: pip install 'xfuxi[regrid]'"
        ) from err
    out = ds.regrid.linear(grid, time_dim=None)
    out = out.assign_coords(latitude=grid["latitude"], longitude=grid["longitude"])
    for name in out.data_vars:  # xarray-regrid computes in float64: float32 stays float32
        if name in ds.data_vars:
            out[name] = _like_input(out[name], ds[name])
    return out


def regrid(
    ds: xr.Dataset | xr.DataArray,
    target: Any,
    *,
    method: Literal["auto", "bilinear", "conservative"] = "auto",
) -> xr.Dataset | xr.DataArray:
    """Regrid global latitude–longitude data to another grid.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Global data with dims ``latitude`` and ``longitude`` (any others are carried
        along); brought into the canonical layout first
        (:func:`xfuxi.data.schema.validate`).
    target : str, xarray.Dataset, xarray.DataArray, mapping or model
        The grid (see :func:`target_grid`): ``"T21"`` (the world's Gaussian grid),
        ``"wb2_64x32"``, ``"wb2_240x121"``, data on the grid, ``{"latitude": ...,
        "longitude": ...}``, or a model.
    method : {"auto", "bilinear", "conservative"}, default "auto"
        ``"auto"``: conservative for fluxes and totals (:func:`is_flux_or_total`), bilinear
        for the rest. See the module documentation for both schemes.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        A new object on the target grid (``ds`` is not modified); each variable's
        ``regrid_method`` attribute says how it was regridded.

    Raises
    ------
    ValueError
        Unknown method or grid name.
    SchemaError
        ``ds`` has no ``latitude``/``longitude`` or is not global in longitude.
    ImportError
        Bilinear regridding without xarray-regrid (``pip install 'xfuxi[regrid]'``).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> src = equiangular_grid(64, 32, poles=False)
    >>> da = xr.ones_like(src.latitude * src.longitude).rename("total_precipitation_6hr")
    >>> out = regrid(da, "T21")
    >>> out.sizes["latitude"], float(out.mean()), out.attrs["regrid_method"]
    (32, 1.0, 'conservative')
    >>> out = da.fuxi.regrid("T21", method="bilinear")  # through the accessor
    >>> out.sizes["latitude"], out.attrs["regrid_method"]
    (32, 'bilinear')
    """
    if method not in REGRID_METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {list(REGRID_METHODS)}")
    if isinstance(ds, xr.DataArray):
        name = ds.name if ds.name is not None else "__xfuxi_unnamed__"
        out = regrid(ds.to_dataset(name=name), target, method=method)[name]
        return out.rename(None) if ds.name is None else out
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"expected an xarray.Dataset or DataArray, got {type(ds).__name__}")
    data = validate(ds)
    grid = target_grid(target)
    lon = data["longitude"].values
    if lon.size < 2 or lon[-1] - lon[0] < 360.0 - 2 * np.max(np.diff(lon)) - 1e-9:
        raise SchemaError(
            f"data longitudes span {lon[0]:g}..{lon[-1]:g}; regrid needs global data "
            "(longitudes around the whole circle)"
        )
    chosen = {
        name: (
            method
            if method != "auto"
            else "conservative"
            if is_flux_or_total(name, data[name].attrs)
            else "bilinear"
        )
        for name in data.data_vars
    }
    spatial = [n for n in data.data_vars if {"latitude", "longitude"} <= set(data[n].dims)]
    others = [n for n in data.data_vars if n not in spatial]
    if others:
        raise SchemaError(
            f"variable(s) {others} lack latitude or longitude; regrid only spatial fields "
            "(select them first)"
        )
    out_vars = {}
    bilinear = [n for n in spatial if chosen[n] == "bilinear"]
    if bilinear:
        done = _bilinear(data[bilinear], grid)
        out_vars.update({n: done[n] for n in bilinear})
    for name in spatial:
        if chosen[name] == "conservative":
            out_vars[name] = _conservative(data[name], grid)
    out = xr.Dataset(
        {
            n: out_vars[n].assign_attrs({**data[n].attrs, "regrid_method": chosen[n]})
            for n in spatial
        }
    ).assign_attrs(data.attrs)
    for name in ("latitude", "longitude"):
        out[name].attrs = {**data[name].attrs, **grid[name].attrs}
    return out.transpose(*[d for d in data.dims if d in out.dims])
