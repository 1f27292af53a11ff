"""Read ERA5 and WeatherBench2 data as they are delivered into xfuxi's canonical layout.

:func:`from_era5` takes what the Copernicus Climate Data Store (CDS) delivers — GRIB
(through ``cfgrib``, the ``grib`` extra), netCDF in the layout of 2024 and later
(``valid_time``, ``pressure_level``, ``expver`` along time) and in the older layout
(``time``, ``level``, ``expver`` as a dimension), netCDF written by ``cfgrib`` (``time``,
``step`` and ``valid_time``), and the zip of several netCDFs that the CDS returns for
requests mixing instantaneous and accumulated fields. :func:`from_weatherbench2` opens a
WeatherBench2 zarr store lazily (dask), locally or in the cloud (``storage_options``).

What the readers do to the data is said in the result's attributes, never silently: ERA5
and ERA5T combined (``expver``), hourly accumulations summed to 6-hour totals. Every file
is recognised by its content, not its name, and a file of the wrong kind is refused with
an error that names it and says what was expected. See the data page of the documentation
(docs/data.md).
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .schema import VARIABLES, SchemaError, same_unit, validate

__all__ = [
    "ACCUMULATED_SHORT_NAMES",
    "EXPVER_NAMES",
    "file_kind",
    "from_era5",
    "from_weatherbench2",
]

#: ERA5 short names of accumulated fields -> the WeatherBench2 long name of their hourly
#: value; :func:`from_era5` sums them to ``<long name>_6hr`` (the 6 hours up to ``time``)
ACCUMULATED_SHORT_NAMES: dict[str, str] = {
    "tp": "total_precipitation",
    "tisr": "toa_incident_solar_radiation",
}

#: ERA5 ``expver`` values and what they mean
EXPVER_NAMES: dict[int, str] = {1: "ERA5", 5: "ERA5T"}

# cfgrib's scalar coordinates that only restate the level type of the variable
_LEVEL_TYPE_COORDS = (
    "surface",
    "heightAboveGround",
    "meanSea",
    "entireAtmosphere",
    "atmosphere",
    "depthBelowLandLayer",
    "nominalTop",
)
_LEVEL_NAMES = ("isobaricInhPa", "pressure_level", "level", "plev")
_ZARR_MARKERS = (".zgroup", ".zmetadata", ".zarray", "zarr.json")
_EXPECTED_ERA5 = "ERA5 as the CDS delivers it: a GRIB file, a netCDF file or the CDS zip of netCDFs"


def file_kind(path: str | os.PathLike[str]) -> str:
    """Say what kind of data ``path`` holds, from its content (not its name).

    Parameters
    ----------
    path : path-like
        A local file or directory.

    Returns
    -------
    str
        ``"netcdf"`` (netCDF3 or netCDF4/HDF5), ``"grib"``, ``"zip"``, ``"zarr"`` (a
        directory with zarr metadata), ``"directory"`` (any other directory) or
        ``"unknown"``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.nc"
    >>> _ = p.write_bytes(b"GRIB....")
    >>> file_kind(p)
    'grib'
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: '{path}'")
    if path.is_dir():
        return "zarr" if any((path / m).exists() for m in _ZARR_MARKERS) else "directory"
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:3] == b"CDF" or head == b"\x89HDF\r\n\x1a\n":
        return "netcdf"
    if head[:4] == b"GRIB":
        return "grib"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    return "unknown"


def _open_grib(path: Path) -> list[xr.Dataset]:
    try:
        import cfgrib
    except ImportError as err:  # the eccodes binary comes as a wheel (eccodeslib)
        raise ImportError(
            f"reading the GRIB file '{path}' needs cfgrib and eccodes: pip install 'xfuxi[grib]'"
        ) from err
    # indexpath="": cfgrib writes no index file beside the user's file
    with warnings.catch_warnings():  # cfgrib's own merge warns of xarray's future defaults
        warnings.filterwarnings("ignore", category=FutureWarning, module="cfgrib")
        parts = cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""})
    if not parts:
        raise SchemaError(f"the GRIB file '{path}' holds no fields that cfgrib can read")
    return parts


def _open_zip(path: Path) -> list[xr.Dataset]:
    """The CDS zip: every member (netCDF or GRIB) read into memory."""
    parts = []
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as tmp:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if not members:
            raise SchemaError(f"the zip file '{path}' is empty; expected the CDS's netCDF files")
        for member in members:
            local = Path(archive.extract(member, tmp))
            kind = file_kind(local)
            if kind == "netcdf":
                with xr.open_dataset(local) as ds:
                    parts.append(ds.load())
            elif kind == "grib":
                parts.extend(ds.load() for ds in _open_grib(local))
            else:
                raise SchemaError(
                    f"member {member.filename!r} of the zip file '{path}' is not netCDF or "
                    f"GRIB ({kind}); expected the CDS's netCDF files"
                )
    return parts


def _open_era5_path(path: str | os.PathLike[str]) -> list[xr.Dataset]:
    path = Path(path)
    kind = file_kind(path)
    if kind == "netcdf":
        return [xr.open_dataset(path)]
    if kind == "grib":
        return _open_grib(path)
    if kind == "zip":
        return _open_zip(path)
    if kind == "zarr":
        raise SchemaError(
            f"'{path}' is a zarr store; from_era5 reads {_EXPECTED_ERA5}. "
            "Read zarr stores (WeatherBench2, ARCO-ERA5) with from_weatherbench2"
        )
    raise SchemaError(f"'{path}' is not GRIB, netCDF or zip ({kind}); expected {_EXPECTED_ERA5}")


def _expver_label(value: Any) -> tuple[int, str]:
    try:
        number = int(str(value).strip())
    except ValueError as err:
        raise SchemaError(f"expver value {value!r} is not a number like '0001' or 5") from err
    return number, f"{EXPVER_NAMES.get(number, 'expver')} (expver {number:04d})"


def _times_text(times: np.ndarray) -> str:
    times = np.asarray(times)
    if times.size == 0:
        return "no time"
    first, last = (str(np.datetime_as_string(t, unit="m")) for t in (times.min(), times.max()))
    return f"{times.size} time(s) from {first} to {last}" if times.size > 1 else f"1 time: {first}"


def _combine_expver(ds: xr.Dataset, source: str) -> xr.Dataset:
    """ERA5 where present, else ERA5T (what users do), and say so in ``attrs['expver']``."""
    if "expver" not in ds.variables:
        return ds
    expver = ds["expver"]
    attrs = dict(ds.attrs)
    if expver.ndim == 0:
        attrs["expver"] = _expver_label(expver.values.item())[1]
        return ds.drop_vars("expver").assign_attrs(attrs)
    if "expver" in ds.dims:  # old CDS layout: one slice per expver, NaN where absent
        order = sorted(expver.values.tolist(), key=lambda v: _expver_label(v)[0])
        first = ds.sel(expver=order[0]).drop_vars("expver")
        out = first
        notes = [f"{_expver_label(order[0])[1]} where present"]
        for value in order[1:]:
            part = ds.sel(expver=value).drop_vars("expver")
            missing = out.to_array().isnull()
            other = [d for d in missing.dims if d != "time"]
            filled = (missing & part.to_array().notnull()).any(other)
            out = out.fillna(part)
            used = np.asarray(out["time"].values[filled.values] if "time" in filled.dims else [])
            notes.append(f"else {_expver_label(value)[1]} (used at {_times_text(used)})")
        attrs["expver"] = ", ".join(notes) + f"; combined by xfuxi from '{source}'"
        return out.assign_attrs(attrs)
    if expver.ndim == 1:  # CDS layout since 2024: the expver of each time
        (dim,) = expver.dims
        times = ds[dim].values
        labels = [_expver_label(v) for v in expver.values.tolist()]
        notes = []
        for number, label in sorted(set(labels)):
            used = times[[n == number for n, _ in labels]]
            notes.append(f"{label} at {_times_text(used)}")
        attrs["expver"] = "; ".join(notes) + f" (from '{source}')"
        return ds.drop_vars("expver").assign_attrs(attrs)
    raise SchemaError(f"'{source}': 'expver' has dims {expver.dims}; expected one dim or none")


def _cfgrib_times(ds: xr.Dataset, source: str) -> xr.Dataset:
    """cfgrib's ``time`` (reference time) + ``step`` → one ``valid_time``, the data's time."""
    if not ("valid_time" in ds.variables and "time" in ds.variables):
        return ds
    valid = ds["valid_time"]
    if "step" in ds.dims:  # accumulations: (time, step) → the valid times, in order
        if "time" not in ds.dims:
            ds = ds.swap_dims(step="valid_time").drop_vars(["time", "step"])
        else:
            ds = ds.stack(__valid=("time", "step")).reset_index("__valid")
            ds = ds.swap_dims(__valid="valid_time").drop_vars(
                ["time", "step", "__valid"], errors="ignore"
            )
            # cfgrib pads the (time, step) cube with NaN where no field was delivered (e.g.
            # the steps of the previous day's 18 UTC run before the first requested hour):
            # those valid times hold no data and are left out
            other = [d for d in ds.dims if d != "valid_time"]
            held = ds.to_array().notnull().any(["variable", *other])
            ds = ds.isel(valid_time=np.flatnonzero(held.values)).sortby("valid_time")
    elif valid.ndim == 1 and valid.dims == ("time",):
        ds = ds.swap_dims(time="valid_time").drop_vars(["time", "step"], errors="ignore")
    elif valid.ndim == 0:
        ds = ds.drop_vars(["time", "step"], errors="ignore").expand_dims("valid_time")
    else:
        raise SchemaError(
            f"'{source}': cannot make one time from cfgrib's 'time' {ds['time'].dims}, "
            f"'valid_time' {valid.dims}; expected valid_time along time or (time, step)"
        )
    if not pd.Index(ds["valid_time"].values).is_unique:
        raise SchemaError(f"'{source}': the valid times of the GRIB fields repeat")
    return ds


def _standardise_part(ds: xr.Dataset, source: str) -> xr.Dataset:
    """One file's part: one time coordinate, ERA5 with ERA5T, scalar coordinates settled."""
    ds = _cfgrib_times(ds, source)
    ds = _combine_expver(ds, source)
    drop = [c for c in _LEVEL_TYPE_COORDS if c in ds.coords and ds[c].ndim == 0]
    if "number" in ds.coords and "number" not in ds.dims:
        drop.append("number")  # the member of a deterministic analysis (0)
    ds = ds.drop_vars(drop)
    for name in _LEVEL_NAMES:  # a single pressure level: cfgrib makes it scalar
        if name in ds.coords and ds[name].ndim == 0:
            ds = ds.expand_dims(name)
    # geopotential without a level is the surface geopotential (orography)
    if "z" in ds.data_vars and not any(n in ds["z"].dims for n in _LEVEL_NAMES):
        ds = ds.rename(z="geopotential_at_surface")
    return ds


def _duration(td: pd.Timedelta) -> str:
    """``1h``, ``6h``, ``30min``: a duration as people write it."""
    minutes = td / pd.Timedelta("1min")
    return f"{minutes / 60:g}h" if minutes % 60 == 0 else f"{minutes:g}min"


def _accumulate(ds: xr.Dataset, period: pd.Timedelta, source: str) -> xr.Dataset:
    """Hourly accumulations (``tp``, ``tisr``) → 6-hour totals, named ``<name>_6hr``."""
    six = pd.Timedelta("6h")
    for short, long_name in ACCUMULATED_SHORT_NAMES.items():
        if short not in ds.data_vars:
            continue
        target = f"{long_name}_6hr"
        if target in ds.data_vars:
            raise SchemaError(f"'{source}' has both {short!r} and {target!r}")
        da = ds[short]
        if period == six:
            note = "6-hour accumulation as given (accumulation_period='6h')"
            total = da
        else:
            if period <= pd.Timedelta(0) or six % period != pd.Timedelta(0):
                raise SchemaError(
                    f"accumulation_period {_duration(period)} does not divide 6 hours; "
                    "expected e.g. '1h'"
                )
            n = int(six / period)
            if "time" not in da.dims:
                raise SchemaError(f"variable {short!r} of '{source}' has no time dimension")
            steps = np.unique(np.diff(ds["time"].values)).astype("timedelta64[ns]")
            if steps.size > 1 or (steps.size == 1 and pd.Timedelta(steps[0]) != period):
                given = ", ".join(_duration(pd.Timedelta(s)) for s in steps)
                raise SchemaError(
                    f"variable {short!r} of '{source}' holds {_duration(period)} accumulations "
                    f"(ERA5 hourly) but its times are {given} apart; a 6-hour total needs "
                    f"every {_duration(period)}: download all hours, or pass "
                    "accumulation_period='6h' if the values are already 6-hour totals"
                )
            if da.sizes["time"] < n:
                raise SchemaError(
                    f"variable {short!r} of '{source}' holds {_duration(period)} accumulations; "
                    f"summing them to 6-hour totals needs at least {n} consecutive times"
                )
            total = da.rolling(time=n, min_periods=n).sum()
            note = (
                f"sum of the {n} accumulations of {_duration(period)} ending at each time (the 6 "
                f"hours up to and including 'time'); NaN at the first {n - 1} time(s), where "
                "the 6 hours are not all in the data"
            )
        units = VARIABLES.get(target, (da.attrs.get("units", ""),))[0]
        given = da.attrs.get("units")
        if given is not None and not same_unit(units, str(given)):
            # the units attribute is set below: a mismatch must be refused here, not relabelled
            raise SchemaError(
                f"variable {short!r} of '{source}' has units {given!r}; expected {units!r} "
                f"for {target!r} (convert the values first: xfuxi does not guess)"
            )
        total = total.assign_attrs(units=units, long_name=target, accumulation=note)
        ds = ds.drop_vars(short).assign({target: total})
    return ds


def from_era5(
    obj: Any,
    *,
    accumulation_period: str | pd.Timedelta = "1h",
    **validate_kwargs: Any,
) -> xr.Dataset:
    """Read ERA5 as the Copernicus CDS delivers it into the canonical layout.

    Parameters
    ----------
    obj : path, list of paths or xarray.Dataset
        What the CDS delivers, recognised by content (not by name):

        * GRIB (the CDS default; needs the ``grib`` extra: cfgrib and eccodes);
        * netCDF of 2024 and later: dims ``valid_time``, ``pressure_level``, ``latitude``
          (90 → −90), ``longitude``; scalar ``number``; ``expver`` along ``valid_time``;
        * older netCDF: dims ``time``, ``level`` (millibars), packed short integers, and
          ``expver`` as a dimension where ERA5 and ERA5T are mixed;
        * netCDF written by cfgrib (``time``, ``step`` and ``valid_time``);
        * the CDS zip holding several netCDFs (instantaneous and accumulated fields).

        Several paths (or a Dataset already opened) are combined by their coordinates.
    accumulation_period : str or pandas.Timedelta, default "1h"
        The period each value of an accumulated field (``tp``, ``tisr``) covers as given:
        ERA5's hourly data hold 1-hour accumulations, which are summed to the 6-hour totals
        of WeatherBench2 (``total_precipitation_6hr``: the 6 hours up to ``time``). Pass
        ``"6h"`` if the values already are 6-hour totals.
    **validate_kwargs
        Passed to :func:`xfuxi.data.schema.validate`.

    Returns
    -------
    xarray.Dataset
        Canonical copy: long names (``z`` → ``geopotential``, ``d2m`` →
        ``2m_dewpoint_temperature``, ``z`` without a level → ``geopotential_at_surface``,
        ...), ``time``, ``level``, latitude ascending. ``attrs['expver']`` says how ERA5 and
        ERA5T were combined (ERA5 where present, else ERA5T); accumulated fields say in
        their ``accumulation`` attribute how they were summed. Instantaneous fields keep
        their values.

    Raises
    ------
    SchemaError
        The file is of another kind (a zarr store, ...), named with what was expected; or
        the data cannot be brought into the canonical layout (see ``validate``).
    FileNotFoundError
        A path does not exist.
    ImportError
        A GRIB file without cfgrib installed (``pip install 'xfuxi[grib]'``).

    Examples
    --------
    A CDS netCDF of 2024 (short names, ``valid_time``, ``pressure_level``, latitude from
    north to south), here already opened (its path, or a list of paths, reads the same):

    >>> import numpy as np, pandas as pd, xarray as xr
    >>> era = xr.Dataset(
    ...     {"t": (("valid_time", "pressure_level", "latitude", "longitude"),
    ...            np.full((2, 1, 3, 4), 250.0))},
    ...     coords={"valid_time": pd.date_range("2024-01-01", periods=2, freq="6h"),
    ...             "pressure_level": [500.0], "latitude": [90.0, 0.0, -90.0],
    ...             "longitude": [0.0, 90.0, 180.0, 270.0]})
    >>> ds = from_era5(era)
    >>> list(ds.data_vars), ds["temperature"].dims, ds["latitude"].values.tolist()
    (['temperature'], ('time', 'level', 'latitude', 'longitude'), [-90.0, 0.0, 90.0])
    """
    period = pd.Timedelta(accumulation_period)
    if isinstance(obj, xr.Dataset):
        named = [("the given Dataset", obj)]
    elif isinstance(obj, (str, os.PathLike)):
        named = [(os.fspath(obj), p) for p in _open_era5_path(obj)]
    elif isinstance(obj, Sequence) and obj and all(isinstance(p, (str, os.PathLike)) for p in obj):
        named = [(os.fspath(path), p) for path in obj for p in _open_era5_path(path)]
    else:
        raise TypeError(f"expected a path, a list of paths or an xarray.Dataset, got {type(obj)}")
    parts = [_standardise_part(ds, source) for source, ds in named]
    sources = sorted({source for source, _ in named})
    if len(parts) == 1:
        ds = parts[0]
    else:
        try:
            ds = xr.combine_by_coords(
                parts, compat="no_conflicts", join="outer", combine_attrs="drop_conflicts"
            )
        except (ValueError, KeyError) as err:
            raise SchemaError(f"cannot combine the data of {sources}: {err}") from err
        # each part's note on ERA5/ERA5T is kept (combine_attrs drops differing values)
        notes = list(dict.fromkeys(p.attrs["expver"] for p in parts if "expver" in p.attrs))
        if notes:
            ds = ds.assign_attrs(expver="; ".join(notes))
    # the time coordinate's name before validate renames it
    ds = ds.rename(valid_time="time") if "valid_time" in ds.dims and "time" not in ds else ds
    ds = _accumulate(ds, period, ", ".join(sources))
    return validate(ds, **validate_kwargs)


def _has_dask() -> bool:
    try:
        import dask  # noqa: F401
    except ImportError:
        return False
    return True


def from_weatherbench2(
    obj: Any,
    *,
    storage_options: Mapping[str, Any] | None = None,
    **validate_kwargs: Any,
) -> xr.Dataset:
    """Read a WeatherBench2 zarr store (analysis or forecast), lazily, into the canonical layout.

    Parameters
    ----------
    obj : path, URL or xarray.Dataset
        A zarr store with long variable names and dims ``time``, ``level``, ``latitude``,
        ``longitude`` (forecasts add ``prediction_timedelta``), local or remote
        (``gs://weatherbench2/...``, any fsspec URL).
    storage_options : mapping, optional
        Passed to fsspec for a remote store (e.g. ``{"token": "anon"}``).
    **validate_kwargs
        Passed to :func:`xfuxi.data.schema.validate`.

    Returns
    -------
    xarray.Dataset
        Canonical copy; when read from a store, dask-backed with the store's chunks
        (nothing is loaded until computed). Without dask installed, lazily indexed.

    Raises
    ------
    SchemaError
        A local path that is not a zarr store (a netCDF or GRIB file, a plain directory),
        named with what was expected.
    FileNotFoundError
        A local path does not exist.

    Examples
    --------
    >>> import pathlib, tempfile, numpy as np, pandas as pd, xarray as xr, xfuxi
    >>> ds = xr.Dataset({"temperature": (("time", "latitude", "longitude"),
    ...                                  np.full((2, 3, 4), 250.0))},
    ...                 coords={"time": pd.date_range("2000-01-01", periods=2, freq="6h"),
    ...                         "latitude": [-45.0, 0.0, 45.0],
    ...                         "longitude": [0.0, 90.0, 180.0, 270.0]})
    >>> store = xfuxi.write_weatherbench2(ds, pathlib.Path(tempfile.mkdtemp()) / "a.zarr")
    >>> back = from_weatherbench2(store)
    >>> back["temperature"].chunks  # lazy, one time per chunk
    ((1, 1), (3,), (4,))
    >>> float(back["temperature"].mean())
    250.0
    """
    if isinstance(obj, xr.Dataset):
        return validate(obj, **validate_kwargs)
    if not isinstance(obj, (str, os.PathLike)):
        raise TypeError(f"expected a path, a URL or an xarray.Dataset, got {type(obj)}")
    location = os.fspath(obj)
    if "://" not in location:
        kind = file_kind(location)
        if kind != "zarr":
            hint = " (read ERA5 files with from_era5)" if kind in ("netcdf", "grib", "zip") else ""
            what = "a directory without zarr metadata" if kind == "directory" else f"a {kind} file"
            raise SchemaError(
                f"'{location}' is {what}; from_weatherbench2 reads WeatherBench2 zarr stores{hint}"
            )
    ds = xr.open_zarr(
        location,
        chunks={} if _has_dask() else None,
        storage_options=dict(storage_options) if storage_options else None,
        decode_timedelta=True,
    )
    return validate(ds, **validate_kwargs)
