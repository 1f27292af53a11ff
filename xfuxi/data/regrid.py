"""Regridding from global latitude–longitude grids: regular, Gaussian, WeatherBench2.

Real data rarely come on the grid of a model: ERA5 is delivered on a 0.25° grid (or any
grid the CDS is asked for), WeatherBench2 stores use equiangular grids with or without the
poles (64 × 32, 240 × 121, 1440 × 721), and the Held–Suarez world and its models use the
T21 Gaussian grid (64 × 32, latitudes ±85.76°). :func:`regrid` moves data between any two
of them, or to a regional grid (a box, which may cross 0°):

* ``"bilinear"``: bilinear interpolation in latitude and longitude through the
  ``xarray-regrid`` library (the ``regrid`` extra), periodic in longitude, with the poles
  padded by the zonal mean of the outermost rows (as ESMF does) so that targets poleward
  of the source's outermost latitude are filled; wind components
  (:data:`~xfuxi.data.channels.VECTOR_COMPONENTS`), whose local frame turns over at the
  pole, are padded instead by the outermost row seen from across the pole (the value at
  ``λ + 180°``, sign flipped), so that a flow across the pole is kept;
* ``"conservative"``: first-order conservative remapping. Each target cell takes the
  area-weighted mean of the source cells it overlaps, with cells bounded by the midpoints
  between neighbouring latitudes and longitudes. An outermost latitude within one grid
  spacing of a pole (every global grid) has its cell reach the pole — the cells of
  :func:`xfuxi.grid.area_weights`; the outermost cell of a latitude band or region
  stops half a spacing beyond it, as do the first and last longitude cells of a regional
  target. The area integral is kept to rounding (the ``xarray-regrid`` conservative
  scheme approximates the cell areas on non-uniform grids and does not keep it on
  Gaussian grids, so xfuxi computes the exact overlaps itself; the remap factorises into
  one matrix for latitude and one for longitude). A target cell only partly covered by
  the source (data on a latitude band) or by valid values (NaN) takes the mean over its
  covered part; one not covered at all is NaN;
* ``"auto"`` (the default): conservative for fluxes and totals (accumulations such as
  ``total_precipitation_6hr``: their area integral is what matters), bilinear for
  instantaneous fields.

The method used is recorded in each variable's ``regrid_method`` attribute.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, Literal, overload

import numpy as np
import xarray as xr

from ..grid import latitude_bounds, longitude_gaps, wide_longitude_gaps
from .channels import VECTOR_COMPONENTS
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
    lat_values, lon_values = (
        np.atleast_1d(np.asarray(v, "float64")) for v in (latitude, longitude)
    )  # a single point as numbers, as a one-point grid
    for name, v in (("latitude", lat_values), ("longitude", lon_values)):
        if v.ndim != 1:
            raise ValueError(
                f"the target's {name} must be one sequence of degrees (a regular grid is "
                f"given by its latitudes and its longitudes); got an array of shape {v.shape}"
            )
    grid = validate(_grid(lat_values, lon_values))
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


def _overlap(
    src_lo: np.ndarray, src_hi: np.ndarray, tgt_lo: np.ndarray, tgt_hi: np.ndarray
) -> np.ndarray:
    """Overlap lengths of target (rows) and source (columns) intervals ``[lo, hi]``."""
    lo = np.maximum(tgt_lo[:, None], src_lo[None, :])
    hi = np.minimum(tgt_hi[:, None], src_hi[None, :])
    return np.clip(hi - lo, 0.0, None)


def _is_global_longitude(centres: np.ndarray) -> bool:
    """Whether longitudes go round the whole circle: no gap between neighbours (the one
    across 360° included) is wider than 1.5 times the grid spacing, the most common gap
    (:func:`xfuxi.grid.wide_longitude_gaps`). A missing column leaves a gap of two spacings,
    and so does each of several."""
    if centres.size < 2:
        return False
    return wide_longitude_gaps(centres)[0].size == 0


def _longitude_cells(centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Lower and upper bounds of the longitude cells (degrees, in the order given), and
    whether they go round the circle.

    Cells meet at the midpoints between neighbouring longitudes. Global longitudes
    (:func:`_is_global_longitude`) are periodic: the cells tile the circle. Regional ones
    (a box, which may cross 0°) end half a spacing beyond the first and last longitude of
    the region, the widest gap lying outside it.
    """
    if _is_global_longitude(centres):
        ext = np.concatenate([[centres[-1] - 360.0], centres, [centres[0] + 360.0]])
        bounds = (ext[:-1] + ext[1:]) / 2
        return bounds[:-1], bounds[1:], True
    n = centres.size
    start = (int(np.argmax(longitude_gaps(centres))) + 1) % n  # the region's first point
    unwrapped = np.roll(centres, -start) + 360.0 * (np.arange(n) >= n - start)
    mid = (unwrapped[:-1] + unwrapped[1:]) / 2
    lo = np.concatenate([[unwrapped[0] - (unwrapped[1] - unwrapped[0]) / 2], mid])
    hi = np.concatenate([mid, [unwrapped[-1] + (unwrapped[-1] - unwrapped[-2]) / 2]])
    return np.roll(lo, start), np.roll(hi, start), False


def _latitude_weights(src: np.ndarray, tgt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractions of each target cell's area in each source cell, in sin(latitude), and
    whether each target cell lies wholly within the source's cells."""
    sb, tb = latitude_bounds(src), latitude_bounds(tgt)
    s, t = np.sin(np.deg2rad(sb)), np.sin(np.deg2rad(tb))
    inside = (tb[:-1] >= sb[0]) & (tb[1:] <= sb[-1])
    return _overlap(s[:-1], s[1:], t[:-1], t[1:]) / np.diff(t)[:, None], inside


def _longitude_weights(src: np.ndarray, tgt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractions of each target cell's width in each source cell, modulo 360°, and whether
    each target cell lies wholly within the source's cells."""
    s_lo, s_hi, s_global = _longitude_cells(src)
    t_lo, t_hi, _ = _longitude_cells(tgt)
    overlap = sum(
        _overlap(s_lo + shift, s_hi + shift, t_lo, t_hi) for shift in (-360.0, 0.0, 360.0)
    )
    if s_global:
        inside = np.ones(tgt.size, dtype=bool)
    else:
        first, last = s_lo.min(), s_hi.max()
        inside = np.zeros(tgt.size, dtype=bool)
        for shift in (-360.0, 0.0, 360.0):
            inside |= (t_lo >= first + shift) & (t_hi <= last + shift)
    return overlap / (t_hi - t_lo)[:, None], inside


def _conservative(da: xr.DataArray, grid: xr.Dataset) -> xr.DataArray:
    for name, src, tgt in (
        ("latitude", da["latitude"].values, grid["latitude"].values),
        ("longitude", da["longitude"].values, grid["longitude"].values),
    ):
        if min(src.size, tgt.size) < 2:
            raise ValueError(
                f"conservative regridding needs at least 2 {name}s on each grid to bound its "
                f"cells; the data have {src.size} and the target {tgt.size}"
            )
    lat_weights, lat_inside = _latitude_weights(da["latitude"].values, grid["latitude"].values)
    lon_weights, lon_inside = _longitude_weights(da["longitude"].values, grid["longitude"].values)
    wlat = xr.DataArray(lat_weights, dims=("__lat", "latitude"))
    wlon = xr.DataArray(lon_weights, dims=("__lon", "longitude"))
    # dask data take the masked path whatever they hold: asking whether all is valid would
    # read every block now (and again when the result is computed). So do target cells
    # reaching beyond the source's cells (a regional source): like NaN data, only the
    # covered part of such a cell counts, and a cell not covered at all is NaN
    covered = bool(lat_inside.all() and lon_inside.all())
    if covered and da.chunks is None and not bool(da.isnull().any()):
        # in-memory data without a gap: no mask and no filled copy (each as large as da)
        out = xr.dot(wlat, wlon, da, dim=["latitude", "longitude"])
    else:  # the mean over the valid part of each target cell; NaN where none is valid
        valid = da.notnull()
        summed = xr.dot(wlat, wlon, da.fillna(0.0), dim=["latitude", "longitude"])
        cover = xr.dot(wlat, wlon, valid.astype("float64"), dim=["latitude", "longitude"])
        out = summed / cover.where(cover > 0)  # no 0 / 0 (a warning from dask)
    out = out.rename(__lat="latitude", __lon="longitude")
    out = out.assign_coords(latitude=grid["latitude"], longitude=grid["longitude"])
    return _like_input(out.transpose(*da.dims), da)


def _like_input(out: xr.DataArray, da: xr.DataArray) -> xr.DataArray:
    """``out`` in the float type of ``da`` (float32 stays float32); integer input (a mask of
    0 and 1) gives float64, since its regridded values are fractions.

    On dask the cast is made inside each block: xarray-regrid declares the input's dtype
    for its dask result but computes float64, so a declared-dtype ``astype`` would be a
    no-op and the computed blocks would stay float64."""
    if da.dtype.kind != "f":
        return out
    if out.chunks is None:
        return out.astype(da.dtype, copy=False)
    dtype = da.dtype
    data = out.data.map_blocks(_cast_block, dtype, dtype=dtype)
    return out.copy(data=data)


def _cast_block(block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return block.astype(dtype, copy=False)


#: bytes (float64) a dask block should reach before regridding: data chunked one time per
#: chunk (WeatherBench2's stores) are merged along their other dims into blocks this large,
#: so that the number of tasks, and the graph's memory, do not grow with the record
_BLOCK_BYTES = 16 * 2**20


def _merge_small_chunks(data: xr.Dataset) -> xr.Dataset:
    """``data`` with the dask chunks of each variable along its non-spatial dims (time
    first, then the others in order) merged up to about :data:`_BLOCK_BYTES` of float64 per
    block; latitude and longitude are made one chunk (regridding mixes them). Chunks already
    larger are kept; numpy data are returned as they are."""
    changed = {}
    for name, var in data.data_vars.items():
        if var.chunks is None:
            continue
        spatial = [d for d in var.dims if d in ("latitude", "longitude")]
        others = [d for d in var.dims if d not in spatial]
        others.sort(key=lambda d: d != "time")  # time first: blocks of consecutive times
        want = {d: -1 for d in spatial if len(var.chunksizes[d]) > 1}
        plane = 8 * int(np.prod([var.sizes[d] for d in spatial], dtype="int64"))
        budget = max(1, _BLOCK_BYTES // max(plane, 1))  # non-spatial points per block
        for d in others:
            have = max(var.chunksizes[d])
            rest = int(np.prod([max(var.chunksizes[o]) for o in others if o != d], dtype="int64"))
            per = max(1, budget // max(rest, 1))
            if have < per and len(var.chunksizes[d]) > 1:
                want[d] = min(per, var.sizes[d])
                break  # one dim merged (the time dim where there is one)
        if want:
            changed[name] = var.chunk(want)
    return data.assign(changed) if changed else data


def _bilinear(ds: xr.Dataset, grid: xr.Dataset) -> xr.Dataset:
    if grid.sizes["longitude"] == 1:  # xarray-regrid needs two (a raw "zero-size array")
        lon = float(grid["longitude"][0])
        pair = np.sort([lon, (lon + 180.0) % 360.0])
        wide = xr.Dataset(coords={"latitude": grid["latitude"], "longitude": pair})
        return _bilinear(ds, wide).sel(longitude=grid["longitude"].values)
    try:
        import xarray_regrid  # noqa: F401  (registers the .regrid accessor)
    except ImportError as err:
        raise ImportError(
            "bilinear regridding needs xarray-regrid: pip install 'xfuxi[regrid]'"
        ) from err
    vectors = [n for n in ds.data_vars if n in VECTOR_COMPONENTS]
    scalars = [n for n in ds.data_vars if n not in VECTOR_COMPONENTS]
    parts = []
    if scalars:
        parts.append(ds[scalars].regrid.linear(grid, time_dim=None))
    if vectors:
        # xarray-regrid pads a source that stops short of a pole with the zonal mean of
        # its outermost row: right for a scalar, but a wind component is in a local frame
        # that turns over the pole, and its zonal mean is about 0 (a 10 m/s flow across
        # the pole came out 0 at the pole and 3.5 m/s at 88.5°). Components get the row
        # across the pole instead, as the observation operator does.
        parts.append(_across_the_poles(ds[vectors]).regrid.linear(grid, time_dim=None))
    out = xr.merge(parts, compat="override", join="override") if len(parts) > 1 else parts[0]
    out = out.assign_coords(latitude=grid["latitude"], longitude=grid["longitude"])
    for name in out.data_vars:  # xarray-regrid computes in float64: float32 stays float32
        if name in ds.data_vars:
            out[name] = _like_input(out[name], ds[name])
    return out


def _across_the_poles(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` (wind components, latitude ascending) with a row beyond each pole that the
    data approach within a grid spacing without reaching it (where xarray-regrid would pad
    the zonal mean): the outermost row seen from across the pole, at latitude ``±180 − φ``,
    longitude ``λ`` holding the value at ``λ + 180°`` with its sign flipped. Interpolating
    between the two gives the component of the vector field on both sides of the pole."""
    lat = ds["latitude"].values.astype("float64")
    if lat.size < 2:
        return ds
    spacing = float(np.max(np.diff(lat)))
    south = [_seen_across(ds, 0, -180.0 - lat[0])] if -90.0 < lat[0] <= spacing - 90.0 else []
    north = [_seen_across(ds, -1, 180.0 - lat[-1])] if 90.0 - spacing <= lat[-1] < 90.0 else []
    if not south and not north:
        return ds
    out = xr.concat([*south, ds, *north], dim="latitude", combine_attrs="override")
    for name in ds.data_vars:
        out[name].attrs = ds[name].attrs
    return out


def _seen_across(ds: xr.Dataset, i: int, beyond: float) -> xr.Dataset:
    """Row ``i`` of ``ds`` seen from across the pole, put at latitude ``beyond``: at each
    longitude ``λ`` the value at ``λ + 180°`` (taken where the grid has it, an even number
    of evenly spaced longitudes; else interpolated, periodic), sign flipped."""
    lon = ds["longitude"].values.astype("float64")
    target = lon[0] + (lon + 180.0 - lon[0]) % 360.0  # λ + 180° in [lon[0], lon[0] + 360)
    index = np.searchsorted(lon, target).clip(0, lon.size - 1)
    row = ds.isel(latitude=[i])
    if np.allclose(lon[index], target, rtol=0.0, atol=1e-6):
        row = row.isel(longitude=index)
    else:
        ring = xr.concat(
            [row, row.isel(longitude=[0]).assign_coords(longitude=[lon[0] + 360.0])],
            dim="longitude",
        )
        row = ring.interp(longitude=target)
    return -row.assign_coords(latitude=[beyond], longitude=ds["longitude"].values)


@overload
def regrid(
    ds: xr.Dataset, target: Any, *, method: Literal["auto", "bilinear", "conservative"] = ...
) -> xr.Dataset: ...
@overload
def regrid(
    ds: xr.DataArray, target: Any, *, method: Literal["auto", "bilinear", "conservative"] = ...
) -> xr.DataArray: ...
def regrid(
    ds: xr.Dataset | xr.DataArray,
    target: Any,
    *,
    method: Literal["auto", "bilinear", "conservative"] = "auto",
) -> xr.Dataset | xr.DataArray:
    """Regrid latitude–longitude data, global in longitude, to another grid.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Data with dims ``latitude`` and ``longitude`` (any others are carried along, with
        their coordinates; a non-index coordinate along latitude or longitude is refused),
        global in longitude (no gap between neighbouring longitudes, the one across 360°
        included, over 1.5 grid spacings, the spacing being the most common gap) and global
        or a band in latitude; brought into the canonical layout first
        (:func:`xfuxi.data.schema.validate`).
    target : str, xarray.Dataset, xarray.DataArray, mapping or model
        The grid (see :func:`target_grid`): ``"T21"`` (the world's Gaussian grid),
        ``"wb2_64x32"``, ``"wb2_240x121"``, data on the grid, ``{"latitude": ...,
        "longitude": ...}``, or a model. It may be regional (a box, which may cross 0°).
    method : {"auto", "bilinear", "conservative"}, default "auto"
        ``"auto"``: conservative for fluxes and totals (:func:`is_flux_or_total`), bilinear
        for the rest. See the module documentation for both schemes.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        A new object on the target grid (``ds`` is not modified), each variable's dims in
        the canonical order that :func:`~xfuxi.data.schema.validate` gives them (whatever
        the input's order of dims or variables), without encodings
        (the input's chunks and codecs do not apply); each variable's
        ``regrid_method`` attribute says how it was regridded. Where the data cover only
        a latitude band, the target outside it is NaN (conservative: cells the band does
        not reach at all; a cell it covers in part is the mean over that part).

    Raises
    ------
    ValueError
        Unknown method or grid name; conservative regridding with fewer than 2
        latitudes or longitudes on either grid (its cells cannot be bounded); a target
        whose latitude or longitude is not one sequence of degrees.
    SchemaError
        ``ds`` has no ``latitude``/``longitude``, fewer than 2 latitudes, is not global in
        longitude (the error
        names each gap over 1.5 grid spacings, the spacing being the most common gap), has
        a variable without latitude or longitude, or has a non-index coordinate along
        latitude or longitude (a mask kept as a coordinate: drop it, or make it a data
        variable to regrid it).
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
    data = validate(ds)  # (big-endian values made native: pandas' lookups fail on them)
    grid = target_grid(target)  # validated: in the machine's byte order
    # each variable's own (validated, canonical) dim order is the output's: not the
    # Dataset's dim insertion order, which depends on the order of the variables
    dims_order = {name: tuple(data[name].dims) for name in data.data_vars}
    data = _merge_small_chunks(data)  # dask data chunked one time per chunk: bounded graph
    # a non-index coordinate along latitude or longitude (a land-sea mask or orography kept
    # as a coordinate, a weight per latitude) has no value on the target grid without a
    # method to move it, which xfuxi cannot tell: conservative regridding dropped it and
    # xarray-regrid failed on it, so it is refused up front, named
    spatial_coords = [
        str(c)
        for c in data.coords
        if c not in data.dims and {"latitude", "longitude"} & set(data[c].dims)
    ]
    if spatial_coords:
        raise SchemaError(
            f"coordinate(s) {spatial_coords} lie along latitude or longitude; regrid cannot "
            "tell how to move them to the new grid: drop them "
            f"(ds.drop_vars({spatial_coords})), or make a field on both latitude and "
            f"longitude a data variable (ds.reset_coords({spatial_coords})) to regrid it "
            "with the others"
        )
    lon = data["longitude"].values
    if not _is_global_longitude(lon):
        raise SchemaError(_not_global(lon))
    if data.sizes["latitude"] < 2:  # (NumPy's error of a reduction over nothing otherwise)
        raise SchemaError(
            f"regrid needs at least two latitudes to interpolate between or to bound cells; "
            f"the data hold {data.sizes['latitude']} ({data['latitude'].values.tolist()})"
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
            n: out_vars[n]
            .transpose(*[d for d in dims_order[n] if d in out_vars[n].dims], ...)
            .assign_attrs({**data[n].attrs, "regrid_method": chosen[n]})
            for n in spatial
        }
    ).assign_attrs(data.attrs)
    for name in ("latitude", "longitude"):
        out[name].attrs = {**data[name].attrs, **grid[name].attrs}
    # new data on a new grid: no encoding of the input (its chunks, a zarr-v2 store's
    # codecs, which made to_zarr fail) or of the target grid applies to them
    return out.drop_encoding()


def _not_global(lon: np.ndarray) -> str:
    """Why longitudes are not global, for the error."""
    if lon.size < 2:
        return (
            f"data have {lon.size} longitude(s); regrid needs global data (longitudes "
            "around the whole circle)"
        )
    gaps = longitude_gaps(lon)
    wide, spacing = wide_longitude_gaps(lon)
    named = [
        f"a gap of {gaps[i]:g}° between {lon[i]:g} and {lon[(i + 1) % lon.size]:g}"
        for i in wide[:5]
    ]
    if wide.size > 5:
        named.append(f"{wide.size - 5} more")
    return (
        f"data longitudes span {lon[0]:g}..{lon[-1]:g} with {', '.join(named)} (the grid "
        f"spacing, the most common gap, is {spacing:g}°; a global grid has no gap over 1.5 "
        "spacings, a missing column leaves 2); regrid needs global data (longitudes around "
        "the whole circle)"
    )
