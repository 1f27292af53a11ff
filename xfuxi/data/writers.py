"""Write xfuxi forecasts and analyses back out: WeatherBench2 zarr and CF netCDF.

xfuxi's canonical layout (:mod:`xfuxi.data.schema`) already uses WeatherBench2's variable
names and dimensions, so writing a WeatherBench2-compatible store means checking the
layout, putting the dimensions in WeatherBench2's order (``time, prediction_timedelta,
number, level, latitude, longitude``), giving coordinates and variables their attributes
(units, long names) and writing the store atomically (:func:`xfuxi.files.replace_directory`).
A store written here is read back by :func:`xfuxi.data.readers.from_weatherbench2` and by
WeatherBench2's own tools (``time`` is the initial time of a forecast,
``prediction_timedelta`` its lead, as in WeatherBench2's forecast stores).

:func:`write_netcdf` writes the same layout to a CF-compliant netCDF4 file
(:func:`to_cf_layout`: UDUNITS units, CF standard names, the forecast reference time and
period of a forecast), atomically as well. It writes scores too (the results of
:mod:`xfuxi.verify`, which carry a ``metric`` attribute: an RMSE by lead and level, a
scorecard), whatever their dims; WeatherBench2 writes its evaluation results as netCDF
as well, so :func:`write_weatherbench2`, whose zarr stores hold gridded forecasts and
analyses, refuses a score without a latitude-longitude grid and points to
:func:`write_netcdf`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..config import is_integer
from ..docstrings import docstring_parts
from ..files import (
    WRITER_ATTRS,
    atomic_write_netcdf,
    check_file_replaceable,
    netcdf_written_by,
    replace_directory,
)
from .schema import CANONICAL_DIMS, DIM_ALIASES, VARIABLES, SchemaError, validate

__all__ = [
    "CF_STANDARD_NAMES",
    "NETCDF_WRITER",
    "WEATHERBENCH2_KIND",
    "to_cf_layout",
    "to_weatherbench2_layout",
    "write_netcdf",
    "write_weatherbench2",
]

#: the ``kind`` recorded in the marker of a WeatherBench2 store written by xfuxi
WEATHERBENCH2_KIND = "weatherbench2-zarr"

#: the outcome both writers document alike: ``path`` back, or an output never replaced
_doc = docstring_parts({
    "written_returns": """\
Returns
-------
pathlib.Path
    ``path``.

Raises
------
xfuxi.files.OutputExistsError
    ``path`` exists and may not be replaced.""",
})  # fmt: skip

_COORD_ATTRS: dict[str, dict[str, str]] = {
    "time": {"long_name": "time", "standard_name": "time"},
    "prediction_timedelta": {
        "long_name": "lead time (prediction_timedelta)",
        "standard_name": "forecast_period",
    },
    "number": {"long_name": "ensemble member number", "standard_name": "realization"},
    "level": {
        "long_name": "pressure level",
        "standard_name": "air_pressure",
        "units": "hPa",
        "positive": "down",
    },
    "latitude": {"long_name": "latitude", "standard_name": "latitude", "units": "degrees_north"},
    "longitude": {
        "long_name": "longitude",
        "standard_name": "longitude",
        "units": "degrees_east",
    },
}

#: the attributes of a forecast's ``time``, its initial time (WeatherBench2's layout: the
#: valid time is ``time + prediction_timedelta``), in place of ``time``'s in
#: :data:`_COORD_ATTRS`, which say "valid time" to a CF reader
_FORECAST_TIME_ATTRS = {
    "long_name": "initial time of the forecast",
    "standard_name": "forecast_reference_time",
}


def to_weatherbench2_layout(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` in WeatherBench2's layout, ready to be written to a zarr store.

    Parameters
    ----------
    ds : xarray.Dataset
        A forecast or analysis in xfuxi's canonical layout (or one that
        :func:`xfuxi.data.schema.validate` brings into it: ERA5 short names, ``lat``,
        ``valid_time``, ``pressure_level``, ``member`` ... are renamed). Forecasts carry
        ``time`` (initial time) and ``prediction_timedelta`` (lead); ensembles ``number``.

    Returns
    -------
    xarray.Dataset
        A new Dataset (``ds`` is not modified): WeatherBench2 variable names, dims in the
        order ``time, prediction_timedelta, number, level, latitude, longitude``, latitude
        and longitude ascending, coordinate attributes (units, long and standard names:
        a forecast's ``time``, its initial time, is the CF ``forecast_reference_time`` and
        its ``prediction_timedelta`` the ``forecast_period``; WeatherBench2's forecast
        stores hold no valid time, which is ``time + prediction_timedelta``), variable
        ``units`` and ``long_name`` from :data:`xfuxi.data.schema.VARIABLES`
        where the variable does not already carry them, and the global attribute
        ``xfuxi_layout = "weatherbench2"``.

    Raises
    ------
    SchemaError
        ``ds`` cannot be brought into the canonical layout, or it has a dimension that
        WeatherBench2 stores do not have (named in the message), or it is a score (a
        ``metric`` attribute) without latitude and longitude, which the message says to
        write with :func:`write_netcdf`.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.full((2, 3, 4), 250.0), dims=("lat", "lon", "time"),
    ...                   coords={"lat": [10.0, -10.0], "lon": [0.0, 90.0, 180.0],
    ...                           "time": np.arange(4).astype("datetime64[D]")})
    >>> out = to_weatherbench2_layout(da.to_dataset(name="t"))
    >>> list(out.data_vars), out["temperature"].dims, out["temperature"].attrs["units"]
    (['temperature'], ('time', 'latitude', 'longitude'), 'K')
    """
    return _layout(ds, netcdf=False)


def _layout(ds: xr.Dataset, *, netcdf: bool) -> xr.Dataset:
    """:func:`to_weatherbench2_layout`; for netCDF (``netcdf=True``) a score may lack the
    grid and have dims of its own (``score``, ``region``, ...)."""
    score = _is_score_data(ds)
    if score and not netcdf and not _on_grid(ds):
        raise SchemaError(_score_not_a_store(ds))
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"expected an xarray.Dataset, got {type(ds).__name__}")
    # a score of every grid point (a bias by lead: xfuxi.bias(..., dim="time")) is checked
    # as the field; one averaged over the grid has no latitude or longitude to check
    out = validate(ds, require_grid=not score)
    extra = [str(d) for d in out.dims if d not in CANONICAL_DIMS]
    if extra and not (netcdf and score):  # netCDF holds a score's own dims (score, region)
        raise SchemaError(
            f"dimension(s) {extra} are not WeatherBench2 dimensions; expected only "
            f"{list(CANONICAL_DIMS)} (select or combine {extra} first)"
        )
    for name, attrs in _COORD_ATTRS.items():
        if name in out.coords:
            out[name].attrs = {**attrs, **out[name].attrs}
            if name == "level":  # validate sets the unit to hPa; it must stay so
                out[name].attrs["units"] = "hPa"
    # a forecast (a lead dim, or the scalar lead of one lead selected): its ``time`` is the
    # initial time, whatever the data said (standard_name "time" is the valid time)
    if "prediction_timedelta" in out.coords and "time" in out.coords:
        out["time"].attrs.update(_FORECAST_TIME_ATTRS)
    for name in out.data_vars:
        units, description = VARIABLES.get(str(name), (None, None))
        if units is None or _is_score(out, name):  # a score says its own units (or none)
            continue
        filled = {"units": units}  # an increment is in the field's units, not the field
        if not _is_increment(out):
            filled["long_name"] = description
        out[name].attrs = {**filled, **out[name].attrs}
    out.attrs = {**out.attrs, "xfuxi_layout": "weatherbench2"}
    return out


def _is_score(ds: xr.Dataset, name: Any) -> bool:
    """A score of the variable (xfuxi.verify's ``metric`` attribute), not the field."""
    return "metric" in ds[name].attrs or "metric" in ds.attrs


def _is_score_data(obj: Any) -> bool:
    """A score (xfuxi.verify's ``metric`` attribute on the object or on a variable)."""
    if isinstance(obj, xr.DataArray):
        return "metric" in obj.attrs
    if isinstance(obj, xr.Dataset):
        return "metric" in obj.attrs or any("metric" in v.attrs for v in obj.data_vars.values())
    return False


#: the names of latitude and longitude that :func:`~xfuxi.data.schema.validate` accepts
_GRID_NAMES: dict[str, frozenset[str]] = {
    dim: frozenset({dim} | {k for k, v in DIM_ALIASES.items() if v == dim})
    for dim in ("latitude", "longitude")
}


def _on_grid(obj: xr.Dataset | xr.DataArray) -> bool:
    """Whether ``obj`` has both a latitude and a longitude dim (or their aliases)."""
    dims = {str(d) for d in obj.dims}
    return all(names & dims for names in _GRID_NAMES.values())


def _score_metric(obj: xr.Dataset | xr.DataArray) -> str:
    if "metric" in obj.attrs:
        return str(obj.attrs["metric"])
    found = [
        v.attrs["metric"] for v in getattr(obj, "data_vars", {}).values() if "metric" in v.attrs
    ]
    return str(found[0]) if found else "?"


def _score_not_a_store(obj: xr.Dataset | xr.DataArray) -> str:
    """Why :func:`write_weatherbench2` does not write a score without the grid."""
    return (
        f"this is a score (metric {_score_metric(obj)!r}) with dims "
        f"{[str(d) for d in obj.dims]}, not gridded data on latitude and longitude: "
        "write_weatherbench2 writes forecasts and analyses as WeatherBench2 zarr stores, "
        "and WeatherBench2 writes its evaluation results as netCDF files; write the score "
        "with xfuxi.write_netcdf(score, 'scores.nc')"
    )


def _as_dataset(obj: Any) -> Any:
    """A DataArray as a Dataset of its one variable: under its name, or an unnamed score
    under its metric (``rmse``); anything else is returned as it is."""
    if not isinstance(obj, xr.DataArray):
        return obj
    name = obj.name if obj.name is not None else obj.attrs.get("metric")
    if name is None:
        raise TypeError(
            "write_netcdf writes a Dataset or a named DataArray; this DataArray has no name: "
            "name it first (da.rename('temperature')) or give da.to_dataset(name=...)"
        )
    return obj.to_dataset(name=name)


def _is_increment(ds: xr.Dataset) -> bool:
    """An analysis increment (analysis minus background: xfuxi's ``description``)."""
    return str(ds.attrs.get("description", "")).startswith("analysis minus background")


def _plain_attrs(attrs: Mapping[Any, Any]) -> dict[str, Any]:
    """Attributes that zarr and netCDF can store: numbers, strings and lists of them."""
    plain: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, (np.generic,)):
            value = value.item()
        if isinstance(value, bool):
            value = int(value)
        scalar = (str, int, float)
        if isinstance(value, scalar) or (
            isinstance(value, (list, tuple)) and all(isinstance(v, scalar) for v in value)
        ):
            plain[str(key)] = value
        elif isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
            plain[str(key)] = value
        else:
            raise SchemaError(
                f"attribute {key!r} has a value of type {type(value).__name__} that cannot be "
                "written to a file; expected a number, a string or a list of them"
            )
    return plain


def _with_plain_attrs(ds: xr.Dataset) -> xr.Dataset:
    out = ds.copy(deep=False)
    out.attrs = _plain_attrs(out.attrs)
    for name in out.variables:
        out[name].attrs = _plain_attrs(out[name].attrs)
    return out


@_doc
def write_weatherbench2(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    chunks: Mapping[str, int] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a forecast or analysis to a WeatherBench2-compatible zarr store, atomically.

    Parameters
    ----------
    ds : xarray.Dataset
        A forecast or analysis (see :func:`to_weatherbench2_layout`).
    path : path-like
        The store to create. It is written to a temporary directory beside it and renamed
        into place, marked as xfuxi's (kind :data:`WEATHERBENCH2_KIND`); see the
        data-safety policy in the documentation (docs/safety.md).
    overwrite : bool, default False
        Replace a store at ``path`` that xfuxi wrote earlier with this function. A store
        or directory that xfuxi did not write is never replaced.
    chunks : mapping of str to int, optional
        Chunk sizes of the store by dimension (default: one chunk per ``time`` value, the
        other dimensions whole, as WeatherBench2's stores are chunked).
    metadata : mapping, optional
        Extra JSON-serialisable entries for the store's marker file (else a
        ``TypeError`` before anything is written).

    {{written_returns}}
    SchemaError
        ``ds`` cannot be written in WeatherBench2's layout (see
        :func:`to_weatherbench2_layout`). A score (a ``metric`` attribute, as
        :mod:`xfuxi.verify` sets it) without a latitude-longitude grid (an RMSE by lead and
        level, a scorecard) is refused, naming :func:`write_netcdf`: WeatherBench2 stores
        hold gridded forecasts and analyses, and WeatherBench2 writes its evaluation
        results as netCDF.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, xarray as xr
    >>> from xfuxi.data.readers import from_weatherbench2
    >>> ds = xr.Dataset({"temperature": (("time", "latitude", "longitude"),
    ...                                   np.full((2, 3, 4), 250.0))},
    ...                 coords={"time": np.arange(2).astype("datetime64[D]"),
    ...                         "latitude": [-45.0, 0.0, 45.0],
    ...                         "longitude": [0.0, 90.0, 180.0, 270.0]})
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "analysis.zarr"
    >>> back = from_weatherbench2(write_weatherbench2(ds, store))
    >>> bool(back["temperature"].equals(ds["temperature"]))
    True
    >>> store = ds.fuxi.write_weatherbench2(store.with_name("copy.zarr"))  # accessor form
    >>> store.name
    'copy.zarr'
    """
    out = _with_plain_attrs(to_weatherbench2_layout(ds))
    # the record of the writer of a file the data were read from (write_netcdf's
    # xfuxi_writer, xfuxi_file) is not this store's: the marker file is its record
    out.attrs = {k: v for k, v in out.attrs.items() if k not in WRITER_ATTRS}
    sizes = {"time": 1} if chunks is None and "time" in out.dims else {}
    sizes.update(dict(chunks or {}))
    unknown = [d for d in sizes if d not in out.dims]
    if unknown:
        raise SchemaError(f"chunks name dimension(s) {unknown} that the data do not have")
    bad = {d: n for d, n in sizes.items() if not is_integer(n) or n < 1}
    if bad:  # (zarr's ZeroDivisionError, or its own words, otherwise)
        raise ValueError(
            f"chunks must be positive integers (a whole dimension: its size); got {bad}"
        )
    if metadata is not None:
        try:  # before any work: the marker, written last, would fail after the data
            json.dumps(dict(metadata))
        except (TypeError, ValueError) as err:
            raise TypeError(f"metadata must be JSON-serialisable: {err}") from err
    out = out.drop_encoding()
    if any(out[name].chunks is not None for name in out.variables):
        # dask-backed data: rechunk lazily, every dim (the others whole): zarr needs even
        # chunks, and the input's may be uneven along any dim
        out = out.chunk({d: sizes.get(str(d), -1) for d in out.dims})
    else:  # data in memory: zarr chunks by encoding (no dask needed)
        for name in out.variables:
            var = out[name]
            # index coordinates whole, as the dask path writes them: a time coordinate in
            # chunks of one was one file per time (58 000 for 40 years, opened 100x slower)
            if var.ndim and name not in out.indexes:
                var.encoding["chunks"] = tuple(sizes.get(str(d), var.sizes[d]) for d in var.dims)

    def write(store: Path) -> None:
        out.to_zarr(store, mode="w", consolidated=True, zarr_format=2)

    return replace_directory(
        path,
        write,
        kind=WEATHERBENCH2_KIND,
        overwrite=overwrite,
        metadata={"layout": "weatherbench2", **dict(metadata or {})},
    )


#: long name -> CF standard name (CF standard name table)
CF_STANDARD_NAMES: dict[str, str] = {
    "geopotential": "geopotential",
    "temperature": "air_temperature",
    "u_component_of_wind": "eastward_wind",
    "v_component_of_wind": "northward_wind",
    "vertical_velocity": "lagrangian_tendency_of_air_pressure",
    "specific_humidity": "specific_humidity",
    "relative_humidity": "relative_humidity",
    "surface_pressure": "surface_air_pressure",
    "mean_sea_level_pressure": "air_pressure_at_mean_sea_level",
    "2m_temperature": "air_temperature",
    "10m_u_component_of_wind": "eastward_wind",
    "10m_v_component_of_wind": "northward_wind",
    # in metres: liquid water equivalent (precipitation_amount is in kg m-2)
    "total_precipitation_6hr": "lwe_thickness_of_precipitation_amount",
    "2m_dewpoint_temperature": "dew_point_temperature",
    "total_column_water_vapour": "atmosphere_mass_content_of_water_vapor",
    "sea_surface_temperature": "sea_surface_temperature",
    "land_sea_mask": "land_area_fraction",  # a fraction 0..1 (land_binary_mask is 0 or 1)
    "geopotential_at_surface": "surface_geopotential",
}

# WeatherBench2's unit spellings -> UDUNITS (what CF requires)
_UDUNITS = {
    "m**2 s**-2": "m2 s-2",
    "m s**-1": "m s-1",
    "Pa s**-1": "Pa s-1",
    "kg kg**-1": "kg kg-1",
    "J m**-2": "J m-2",
    "kg m**-2": "kg m-2",
    "%": "percent",
}

#: the value of the global attribute ``xfuxi_writer`` in netCDF files written by xfuxi
NETCDF_WRITER = "xfuxi.write_netcdf"


def to_cf_layout(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` as a CF-compliant Dataset (CF-1.8), ready for netCDF.

    Parameters
    ----------
    ds : xarray.Dataset
        A forecast or analysis (see :func:`to_weatherbench2_layout`), or a score (a
        ``metric`` attribute on the Dataset or its variables, as :mod:`xfuxi.verify` sets
        it): a score may lack latitude and longitude (an RMSE by lead and level) and have
        dims of its own (a scorecard's ``score`` and ``region``).

    Returns
    -------
    xarray.Dataset
        :func:`to_weatherbench2_layout` plus CF metadata: ``Conventions = "CF-1.8"``,
        units in UDUNITS spelling (``m2 s-2``), ``standard_name`` of the variables known to
        the CF table (``air_temperature``, ...), ``axis`` of the coordinates (X, Y, Z, T).
        A forecast's ``time`` (its initial time) is the ``forecast_reference_time``, its
        ``prediction_timedelta`` (a dim, or the scalar lead of one lead selected) the
        ``forecast_period``, and a coordinate ``valid_time`` (``time +
        prediction_timedelta``, always computed anew: a ``valid_time`` that ``ds``
        carries is replaced) carries the standard name ``time``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"geopotential": (("latitude", "longitude"), np.ones((2, 3)))},
    ...                 coords={"latitude": [-45.0, 45.0], "longitude": [0.0, 120.0, 240.0]})
    >>> out = to_cf_layout(ds)
    >>> out.attrs["Conventions"], out["geopotential"].attrs["units"]
    ('CF-1.8', 'm2 s-2')
    """
    from .._version import __version__

    if (
        isinstance(ds, xr.Dataset)
        and "valid_time" in ds.variables
        and "valid_time" not in ds.dims
        and {"prediction_timedelta", "lead_time"} & set(ds.variables)
    ):  # a forecast's valid times, made anew below: a stale one is no error here
        ds = ds.drop_vars("valid_time")
    out = _layout(ds, netcdf=True)
    for name in out.data_vars:
        attrs = dict(out[name].attrs)
        if "units" in attrs:
            attrs["units"] = _UDUNITS.get(str(attrs["units"]), attrs["units"])
        derived = _is_score(out, name) or _is_increment(out)  # not the field itself
        if str(name) in CF_STANDARD_NAMES and not derived:
            attrs.setdefault("standard_name", CF_STANDARD_NAMES[str(name)])
        out[name].attrs = attrs
    axes = {"latitude": "Y", "longitude": "X", "level": "Z", "time": "T"}
    for name, axis in axes.items():
        if name in out.coords:
            out[name].attrs["axis"] = axis
    # a lead dim, or the scalar lead of one lead selected (fc.sel(prediction_timedelta="6h"))
    if "prediction_timedelta" in out.coords:
        out["prediction_timedelta"].attrs["standard_name"] = "forecast_period"
    # lead-time data without initial times (a score or bias over all of them) have no
    # forecast reference time nor valid time
    if "prediction_timedelta" in out.coords and "time" in out.coords:
        out["time"].attrs.update(
            standard_name="forecast_reference_time", long_name="initial time of the forecast"
        )
        out["time"].attrs.pop("axis", None)
        # made anew: one the data carry (read back from a file) is stale once the initial
        # times or the leads were relabelled, and the file said valid_time != time + lead
        valid = out["time"] + out["prediction_timedelta"]
        out = out.drop_vars("valid_time", errors="ignore").assign_coords(
            valid_time=valid.assign_attrs(standard_name="time", long_name="valid time")
        )
    history = f"written by xfuxi {__version__}"
    out.attrs = {
        **out.attrs,
        "Conventions": "CF-1.8",
        "history": f"{out.attrs['history']}\n{history}" if "history" in out.attrs else history,
    }
    return out


@_doc
def write_netcdf(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    compress: bool = True,
) -> Path:
    """Write a forecast, analysis or score to a CF-compliant netCDF4 file, atomically.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        A forecast or analysis, or a score of one with any dims (``xfuxi.rmse(fc, truth,
        dim=["time", "latitude", "longitude"])``, a scorecard): see :func:`to_cf_layout`.
        A score keeps its attributes (``metric``, ``units``, ...) and is not labelled as
        the field (no standard name, long name or units filled in). A DataArray is
        written as a Dataset of its one variable, under its name (an unnamed score under
        its metric, ``rmse``).
    path : path-like
        The file to create; written to a temporary file beside it and renamed into place
        (its folder is made if it does not exist).
    overwrite : bool, default False
        Replace a file at ``path`` that xfuxi wrote (its global attributes ``xfuxi_writer``
        and ``xfuxi_file`` say so). A file that xfuxi did not write is never replaced.
    compress : bool, default True
        Compress the data variables (zlib, level 4; lossless). float16 data, which netCDF
        cannot hold, are written as float32 (exactly the same values).

    {{written_returns}}
    SchemaError
        ``ds`` cannot be brought into the layout (see :func:`to_cf_layout`).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, xarray as xr
    >>> ds = xr.Dataset({"temperature": (("latitude", "longitude"), np.full((2, 3), 250.0))},
    ...                 coords={"latitude": [-45.0, 45.0], "longitude": [0.0, 120.0, 240.0]})
    >>> path = write_netcdf(ds, pathlib.Path(tempfile.mkdtemp()) / "analysis.nc")
    >>> with xr.open_dataset(path) as back:
    ...     back["temperature"].attrs["standard_name"], back.attrs["Conventions"]
    ('air_temperature', 'CF-1.8')
    >>> path = ds.fuxi.write_netcdf(path.with_name("copy.nc"))  # through the accessor
    >>> with xr.open_dataset(path) as back:
    ...     float(back["temperature"].mean())
    250.0
    """
    path = Path(path).expanduser()
    out = _with_plain_attrs(to_cf_layout(_as_dataset(ds))).drop_encoding()
    half = [name for name in out.data_vars if out[name].dtype == np.float16]
    if half:  # netCDF has no float16 (a raw netCDF4 TypeError); float32 holds them exactly
        out = out.assign({name: out[name].astype("float32") for name in half})
    replacing = check_file_replaceable(
        path, overwrite=overwrite, writer=NETCDF_WRITER,
        ours=lambda p: netcdf_written_by(p, NETCDF_WRITER),
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)  # as write_weatherbench2 makes its own
    encoding = {
        str(name): {"zlib": True, "complevel": 4}
        for name in out.data_vars
        if compress and out[name].dtype.kind in "iuf"
    }
    lazy = [name for name in out.data_vars if out[name].chunks is not None]
    for name in lazy:  # dask data are written a block at a time: see _netcdf_chunksizes
        if str(name) in encoding and out[name].ndim:
            encoding[str(name)]["chunksizes"] = _netcdf_chunksizes(out[name])
    if lazy:
        out = out.assign({name: _time_blocks(out[name]) for name in lazy})
    return atomic_write_netcdf(out, path, writer=NETCDF_WRITER, format="NETCDF4",
                               engine="netcdf4", encoding=encoding,
                               replacing=replacing)  # fmt: skip


#: the most bytes of a netCDF chunk of one time step written from dask data (level kept
#: whole below it), and of a dask block written at once
_NETCDF_CHUNK_BYTES = 4 * 2**20
_WRITE_BLOCK_BYTES = 16 * 2**20
_SPATIAL = ("latitude", "longitude")


def _netcdf_chunksizes(da: xr.DataArray) -> tuple[int, ...]:
    """HDF5 chunks for compressed dask data: one step along every dim but the spatial ones
    and ``level`` (one level too where a step of all levels is over
    :data:`_NETCDF_CHUNK_BYTES`).

    Without them netCDF picks chunks spanning hundreds of times (``[364, 2, 16, 32]`` for
    half a year on 32 × 64); dask writes one time chunk at a time, so each compressed
    chunk is read back, decompressed, changed and recompressed for every time written
    into it, and once it no longer fits the chunk cache the cost grows with the square of
    the length. One-step chunks are each written once, whole."""
    keep = set(_SPATIAL) | {"level"}
    sizes = [da.sizes[d] if d in keep else 1 for d in da.dims]
    if int(np.prod(sizes, dtype="int64")) * da.dtype.itemsize > _NETCDF_CHUNK_BYTES:
        sizes = [da.sizes[d] if d in _SPATIAL else 1 for d in da.dims]
    return tuple(sizes)


def _time_blocks(da: xr.DataArray) -> xr.DataArray:
    """Dask data with small chunks along ``time`` (one time per chunk, as WeatherBench2
    stores are) merged into blocks of about :data:`_WRITE_BLOCK_BYTES`: fewer, larger
    writes. Larger chunks, and data without ``time``, are returned as they are."""
    if "time" not in da.dims or len(da.chunksizes["time"]) < 2:
        return da
    row = da.dtype.itemsize * int(
        np.prod([max(c) for d, c in da.chunksizes.items() if d != "time"], dtype="int64")
    )
    per = max(1, _WRITE_BLOCK_BYTES // max(row, 1))
    if max(da.chunksizes["time"]) >= per:
        return da
    return da.chunk({"time": per})
