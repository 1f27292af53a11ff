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

import collections
import functools
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

from .schema import (
    ERA5_SHORT_NAMES,
    VARIABLES,
    SchemaError,
    same_unit,
    surface_geopotential,
    validate,
)

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
# the variables ERA5 has on pressure levels only (long names, and short names but ``z``,
# which is the surface geopotential in single-level requests)
_PRESSURE_LEVEL_LONG = frozenset(
    {
        "geopotential",
        "temperature",
        "u_component_of_wind",
        "v_component_of_wind",
        "vertical_velocity",
        "specific_humidity",
        "relative_humidity",
    }
)
_PRESSURE_LEVEL_NAMES = _PRESSURE_LEVEL_LONG | frozenset(
    {k for k, v in ERA5_SHORT_NAMES.items() if v in _PRESSURE_LEVEL_LONG and k != "z"}
    | {"vo", "d", "pv", "o3", "cc", "clwc", "ciwc", "crwc", "cswc"}
)
# the variables that are never on a pressure level (single-level fields)
_SURFACE_NAMES = frozenset(
    {k for k, v in ERA5_SHORT_NAMES.items() if v not in _PRESSURE_LEVEL_LONG}
    | (set(VARIABLES) - _PRESSURE_LEVEL_LONG - {"passive_tracer"})
    | set(ACCUMULATED_SHORT_NAMES)
)
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
    path = Path(path).expanduser()
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
    """The datasets of one file: lazily opened (netCDF, GRIB) or loaded (the zip)."""
    path = Path(path).expanduser()  # "~/era5.nc": the home folder, as the writers read it
    kind = file_kind(path)
    if kind == "netcdf":
        # dask-backed (chunks={}: the file's own chunks): several files are then combined
        # lazily; without it the combination loaded every file into memory
        return [xr.open_dataset(path, chunks={})]
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


#: the grid points per dimension of the sample that tells at which times an ``expver``
#: holds data (:func:`_expver_presence`)
_EXPVER_SAMPLE_POINTS = 8


def _expver_presence(ds: xr.Dataset) -> xr.DataArray | None:
    """Whether each ``expver`` holds data at each time of an old-layout CDS file
    (``expver`` a dim, NaN where an expver has no data): a bool DataArray in memory on
    (expver, time); None without an ``expver`` or a ``time`` dim.

    Told from a sample, not from every value (a lazily opened file is not read in full
    while it is opened): the first variable on ``time`` and ``expver``, at up to
    :data:`_EXPVER_SAMPLE_POINTS` points along each of its last two dims (the grid) and
    the first index of any other (the level). An expver holds data at a time where any
    sampled point does (the CDS fills a time of an expver wholly or not at all); at a time
    where no expver has a sampled point (a field NaN there, as the SST over land) every
    value of the variables on ``time`` and ``expver`` at that time decides. Only slices
    are taken of the data as the file gives them (before :func:`_packed_as_float32`: a
    slice of a cast, or of a list of expvers, reads the whole chunks of the file).
    """
    if "expver" not in ds.dims or "time" not in ds.dims:
        return None
    present = xr.DataArray(
        np.zeros((ds.sizes["expver"], ds.sizes["time"]), dtype=bool),
        dims=("expver", "time"),
        coords={"expver": ds["expver"].values, "time": ds["time"].values},
    )
    on_both = [n for n, v in ds.data_vars.items() if {"time", "expver"} <= set(v.dims)]
    if not on_both:  # the expvers' data do not differ: none fills another
        return present
    var = ds[on_both[0]]
    rest = [d for d in var.dims if d not in ("expver", "time")]
    pick: dict[Any, Any] = {d: 0 for d in rest[:-2]}
    for d in rest[-2:]:  # strided: points spread over the grid
        pick[d] = slice(None, None, -(-var.sizes[d] // _EXPVER_SAMPLE_POINTS) or 1)
    sample = var.isel(pick).notnull()
    sample = sample.any([d for d in sample.dims if d not in ("expver", "time")])
    present.values[...] = sample.transpose("expver", "time").values
    unsure = np.flatnonzero(~present.values.any(axis=0))
    if unsure.size:  # every value at those times
        some = ds[on_both].isel(time=unsure).to_array().notnull()
        exact = some.any([d for d in some.dims if d not in ("expver", "time")])
        present.values[:, unsure] = exact.transpose("expver", "time").values
    return present


def _combine_expver(ds: xr.Dataset, source: str, present: xr.DataArray | None = None) -> xr.Dataset:
    """ERA5 where present, else ERA5T (what users do), and say so in ``attrs['expver']``;
    ``present``: :func:`_expver_presence` of the file as read (else of ``ds``)."""
    if "expver" not in ds.variables:
        return ds
    expver = ds["expver"]
    attrs = dict(ds.attrs)
    if expver.ndim == 0:
        attrs["expver"] = _expver_label(expver.values.item())[1]
        return ds.drop_vars("expver").assign_attrs(attrs)
    if "expver" in ds.dims:  # old CDS layout: one slice per expver, NaN where absent
        order = sorted(expver.values.tolist(), key=lambda v: _expver_label(v)[0])
        out = ds.sel(expver=order[0]).drop_vars("expver")
        notes = [f"{_expver_label(order[0])[1]} where present"]
        same = present is not None and "time" in ds.dims
        if not (same and np.array_equal(present["time"].values, ds["time"].values)):
            present = _expver_presence(ds)
        have = None if present is None else present.sel(expver=order).values
        # the times an earlier expver (the first's included) already holds
        held = np.zeros(0, dtype=bool) if have is None else have[0].copy()
        for i, value in enumerate(order[1:], start=1):
            part = ds.sel(expver=value).drop_vars("expver")
            out = out.fillna(part)  # lazy, as the data are
            if have is None:  # no time dim: "used at no time", as before
                used = np.asarray([])
            else:
                used = ds["time"].values[have[i] & ~held]
                held |= have[i]
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


def _on_pressure_level(name: Any, var: xr.DataArray) -> bool | None:
    """Whether ``var`` is a field on pressure levels: True, False, or None (cannot tell)."""
    level_type = var.attrs.get("GRIB_typeOfLevel")
    if level_type is not None:  # cfgrib's (and the CDS netCDF's) own word
        return str(level_type) == "isobaricInhPa"
    if name in _PRESSURE_LEVEL_NAMES:
        return True
    if name in _SURFACE_NAMES:
        return False
    return None  # z (pressure level or orography) and names xfuxi does not know


def _scalar_level(ds: xr.Dataset, name: str, source: str) -> xr.Dataset:
    """A single pressure level as a scalar coordinate (cfgrib's single level, ``.sel``):
    a ``level`` dimension of length 1 for the fields on pressure levels only."""
    kinds = {v: _on_pressure_level(v, ds[v]) for v in ds.data_vars}
    surface = sorted(str(v) for v, k in kinds.items() if k is False)
    if not surface:  # every field is on that level
        return ds.expand_dims(name)
    unsure = sorted(str(v) for v, k in kinds.items() if k is None)
    if unsure:
        raise SchemaError(
            f"'{source}': cannot tell whether the variable(s) {unsure} are on the single "
            f"pressure level {name}={ds[name].values.item()!r} (a scalar coordinate) or at "
            f"the surface, as the field(s) {surface} are. Give the pressure-level fields a "
            f"'{name}' dimension (expand_dims) before merging them with surface fields, or "
            "rename a surface 'z' to 'geopotential_at_surface'"
        )
    on_level = {v: ds[v].expand_dims(name) for v, k in kinds.items() if k}
    return ds.drop_vars(name).assign(on_level)


#: the integer types of packed data (CDS netCDF before 2024: int16) that float32 holds
#: without loss: their 16 bits of counts, scaled, need no float64
_SHORT_PACKED = frozenset({"int8", "uint8", "int16", "uint16"})


def _packed_as_float32(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with its data variables that were packed as short integers (their encoding's
    ``dtype`` int16 and a ``scale_factor`` or ``add_offset``) as float32.

    xarray decodes int16 with a float64 ``scale_factor`` (the CDS's) to float64, twice the
    memory of the float32 that the CDS's newer files and GRIB give; 16 bits of counts lose
    nothing in float32. Variables stored as floats (float64 included) are left as they are.
    """
    cast = {}
    for name, var in ds.data_vars.items():
        enc = var.encoding
        packed = "scale_factor" in enc or "add_offset" in enc
        stored = str(np.dtype(enc["dtype"])) if "dtype" in enc else None
        if packed and stored in _SHORT_PACKED and var.dtype == np.float64:
            cast[name] = var.astype("float32")
            cast[name].encoding = dict(enc)  # the packing is dropped after validate
    return ds.assign(cast) if cast else ds


def _standardise_part(ds: xr.Dataset, source: str) -> xr.Dataset:
    """One file's part: one time coordinate, ERA5 with ERA5T, scalar coordinates settled;
    short-integer packed variables as float32 (:func:`_packed_as_float32`)."""
    # the times of ERA5T in an old-layout file, from a sample of the file as read: a
    # sample of the float32 cast below would read all of it
    present = _expver_presence(ds)
    ds = _packed_as_float32(ds)
    ds = _cfgrib_times(ds, source)
    ds = _combine_expver(ds, source, present)
    drop = [c for c in _LEVEL_TYPE_COORDS if c in ds.coords and ds[c].ndim == 0]
    ds = ds.drop_vars(drop)
    if "number" in ds.coords and ds["number"].ndim == 0:
        if ds["number"].values.item() == 0:  # the member of a deterministic analysis
            ds = ds.drop_vars("number")
        else:  # one member of an ensemble (the EDA): kept as such
            ds = ds.expand_dims("number")
    for name in _LEVEL_NAMES:  # a single pressure level: cfgrib makes it scalar
        if name in ds.coords and ds[name].ndim == 0:
            ds = _scalar_level(ds, name, source)
    # the canonical names of time and level, so that parts of different layouts compare
    names = {"valid_time": "time"} if "valid_time" in ds.dims and "time" not in ds else {}
    level = [n for n in _LEVEL_NAMES if n != "level" and n in ds.dims]
    if len(level) == 1 and "level" not in ds.variables:
        names[level[0]] = "level"
    ds = ds.rename(names) if names else ds
    # geopotential without a level is the surface geopotential (orography): the rule of
    # validate, applied before combining, where a surface and a pressure-level z would clash
    return surface_geopotential(ds)


def _duration(td: pd.Timedelta) -> str:
    """``1h``, ``6h``, ``30min``: a duration as people write it."""
    minutes = td / pd.Timedelta("1min")
    return f"{minutes / 60:g}h" if minutes % 60 == 0 else f"{minutes:g}min"


def _accumulation_period(value: Any) -> pd.Timedelta:
    """``accumulation_period`` of :func:`from_era5` as a Timedelta, with its unit: a number
    or a string without a unit (``"6"``) was read as nanoseconds (and the message then
    spoke of 1e-10min accumulations)."""
    hint = "give it with its unit, e.g. '1h' (ERA5's hourly data) or '6h' (6-hour totals)"
    numbers = (bool, int, float, np.number)
    if isinstance(value, numbers) and not isinstance(value, np.timedelta64):
        raise SchemaError(
            f"accumulation_period must be a duration; got the number {value!r}: {hint}"
        )
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            pass
        else:
            raise SchemaError(
                f"accumulation_period {value!r} has no unit, which would be read as "
                f"nanoseconds; {hint}"
            )
    if isinstance(value, np.timedelta64) and np.datetime_data(value.dtype)[0] == "generic":
        raise SchemaError(f"accumulation_period {value!r} has no unit; {hint}")
    try:
        period = pd.Timedelta(value)
    except (TypeError, ValueError):
        raise SchemaError(
            f"accumulation_period must be a duration; got {value!r}: {hint}"
        ) from None
    if pd.isna(period):
        raise SchemaError(f"accumulation_period must be a duration; got {value!r}: {hint}")
    return period


def _accumulate(ds: xr.Dataset, period: pd.Timedelta, source: str) -> xr.Dataset:
    """Hourly accumulations (``tp``, ``tisr``) → 6-hour totals, named ``<name>_6hr``."""
    six = pd.Timedelta("6h")
    if (
        any(short in ds.data_vars for short in ACCUMULATED_SHORT_NAMES)
        and "time" in ds.indexes
        and not ds.indexes["time"].is_monotonic_increasing
    ):  # summed over the hours before each time, in time order (validate sorts anyway;
        # stored descending, the times were refused as "-1h apart"); a new Dataset
        ds = ds.sortby("time")
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

        Several paths (or a Dataset already opened) are combined by their coordinates:
        they must be on the same latitudes, longitudes and levels, and every variable must
        be given at every time of the data (accumulations may hold other hours, below).
    accumulation_period : str or pandas.Timedelta, default "1h"
        The period each value of an accumulated field (``tp``, ``tisr``) covers as given:
        ERA5's hourly data hold 1-hour accumulations, which are summed to the 6-hour totals
        of WeatherBench2 (``total_precipitation_6hr``: the 6 hours up to ``time``). Pass
        ``"6h"`` if the values already are 6-hour totals. It needs its unit: a number or
        a string without one (``"6"``, which pandas reads as nanoseconds) is refused.
    **validate_kwargs
        Passed to :func:`xfuxi.data.schema.validate`.

    Returns
    -------
    xarray.Dataset
        Canonical copy: long names (``z`` → ``geopotential``, ``d2m`` →
        ``2m_dewpoint_temperature``, ``z`` without a level → ``geopotential_at_surface``,
        ...), ``time``, ``level``, latitude ascending. ``attrs['expver']`` says how ERA5 and
        ERA5T were combined (ERA5 where present, else ERA5T); accumulated fields say in
        their ``accumulation`` attribute how they were summed. Fields packed as short
        integers (``int16`` with ``scale_factor``/``add_offset``: the CDS's netCDF before
        2024) are decoded to **float32**, as the newer files and GRIB are: xarray alone
        gives float64 (the packing's scale is float64), twice the memory, and 16 bits of
        counts lose nothing in float32 (the values are the float64 decoding rounded to
        float32); fields stored as floats keep their type (float64 stays float64).
        Instantaneous fields keep their values (to that rounding), unpacked: the data
        variables carry no packing in their ``encoding``
        (no ``dtype``, ``scale_factor``, ``add_offset``, ``_FillValue``,
        ``missing_value``), so ``to_netcdf`` writes them as floats (the files' int16
        packing, each file its own, would clip the values of the others). Read lazily
        from the files it opened: ``ds.close()`` (or ``with xfuxi.from_era5(path) as
        ds:``) closes them.

    Raises
    ------
    SchemaError
        The file is of another kind (a zarr store, ...), named with what was expected; the
        files are on other latitudes, longitudes or levels, or a variable is missing at
        some of the times of the data (combining would pad them with NaN: the files, the
        variable and the count are named); a single pressure level given as a scalar
        coordinate beside surface fields, with a variable that may be either (``z``, a
        name xfuxi does not know); or the data cannot be brought into the canonical layout
        (see ``validate``); ``accumulation_period`` is not a duration with its unit.
    FileNotFoundError
        A path does not exist.
    ImportError
        A GRIB file without cfgrib installed (``pip install 'xfuxi[grib]'``).

    Notes
    -----
    Scalar coordinates: ``number`` 0 (a deterministic analysis) is dropped, another
    member is kept as a ``number`` dimension of length 1. A single pressure level given as
    a scalar coordinate (cfgrib's single level, ``ds.sel(pressure_level=500)``) becomes a
    ``level`` dimension of length 1 of the fields on pressure levels only; surface fields
    stay without a level. ``z`` without a level is ``geopotential_at_surface``
    (:func:`xfuxi.data.schema.surface_geopotential`, the rule of ``validate``).

    Accumulations (``tp``, ``tisr``) are summed on their own hours and then taken at the
    times of the other variables: hourly accumulations beside 6-hourly fields give the
    6-hour totals at the 6-hourly times. Times of the other variables before the first
    accumulation are NaN (the 6 hours are not in the data, as at the start); later times
    the accumulations lack are refused.

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
    period = _accumulation_period(accumulation_period)
    opened: list[xr.Dataset] = []  # what this call opened, closed with the result
    try:
        if isinstance(obj, xr.Dataset):
            named = [("the given Dataset", obj)]
        elif isinstance(obj, (str, os.PathLike)):
            named = [(os.fspath(obj), p) for p in _opened(obj, opened)]
        elif (
            isinstance(obj, Sequence)
            and obj
            and all(isinstance(p, (str, os.PathLike)) for p in obj)
        ):
            named = [(os.fspath(path), p) for path in obj for p in _opened(path, opened)]
        elif isinstance(obj, Sequence) and not obj:
            raise ValueError("from_era5 of an empty list: give at least one path")
        else:
            raise TypeError(
                f"expected a path, a list of paths or an xarray.Dataset, got {type(obj)}"
            )
        result = _read_era5(named, period, validate_kwargs)
    except BaseException:
        _close_all(opened)
        raise
    if opened:  # ds.close() and `with` close the files (the data are read lazily from them)
        result.set_close(functools.partial(_close_all, opened))
    return result


def _opened(path: str | os.PathLike[str], opened: list[xr.Dataset]) -> list[xr.Dataset]:
    parts = _open_era5_path(path)
    opened.extend(parts)
    return parts


def _close_all(datasets: list[xr.Dataset]) -> None:
    for ds in datasets:
        ds.close()


def _read_era5(
    named: list[tuple[str, xr.Dataset]], period: pd.Timedelta, validate_kwargs: dict[str, Any]
) -> xr.Dataset:
    parts = [(source, _standardise_part(ds, source)) for source, ds in named]
    sources = sorted({source for source, _ in named})
    parts = _same_grid(parts, sources)
    accumulated = [s for s in ACCUMULATED_SHORT_NAMES if any(s in p.data_vars for _, p in parts)]
    for short in accumulated:
        target = f"{ACCUMULATED_SHORT_NAMES[short]}_6hr"
        if any(target in p.data_vars for _, p in parts):
            raise SchemaError(f"'{', '.join(sources)}' has both {short!r} and {target!r}")
    instant = [(s, p.drop_vars(accumulated, errors="ignore")) for s, p in parts]
    instant = [(s, p) for s, p in instant if p.data_vars]
    accum = [(s, p[[v for v in accumulated if v in p.data_vars]]) for s, p in parts]
    accum = [(s, p) for s, p in accum if p.data_vars]
    combined = [_combine(group, sources) for group in (instant, accum) if group]
    if accum:
        totals = _accumulate(combined[-1], period, ", ".join(sources))
        if instant and "time" in combined[0].dims and "time" in totals.dims:
            totals = _at_times(totals, combined[-1], combined[0]["time"].values, sources)
        combined[-1] = totals
    if len(combined) == 1:
        ds = combined[0]
    else:
        try:
            ds = xr.merge(
                combined, compat="no_conflicts", join="exact", combine_attrs="drop_conflicts"
            )
        except (ValueError, KeyError) as err:
            raise SchemaError(f"cannot combine the data of {sources}: {err}") from err
    if len(parts) > 1:
        # each part's note on ERA5/ERA5T is kept (combine_attrs drops differing values)
        notes = list(dict.fromkeys(p.attrs["expver"] for _, p in parts if "expver" in p.attrs))
        if notes:
            ds = ds.assign_attrs(expver="; ".join(notes))
    return _drop_packing(validate(ds, **validate_kwargs))


#: the encoding keys of a packed variable (CDS netCDF before 2024: int16 with its own
#: ``scale_factor``/``add_offset`` per file)
PACKING_KEYS: tuple[str, ...] = (
    "dtype", "scale_factor", "add_offset", "_FillValue", "missing_value",
)  # fmt: skip


def _drop_packing(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with no packing in the encoding of its data variables (edited in place).

    Combined files keep the first file's packing (xarray takes the first part's encoding):
    written again, the values of the other files would be clipped to its range (another
    month's int16 range, 250 K where July reaches 310 K). A single file's packing is
    dropped too: the values read are unpacked floats, and what is done with them (sums,
    differences) need not fit the range the file was packed for.
    """
    for name in ds.data_vars:
        encoding = ds[name].encoding
        for key in PACKING_KEYS:
            encoding.pop(key, None)
    return ds


def _grid_text(dim: str, values: np.ndarray) -> str:
    if dim == "level":
        return f"levels {sorted(values.tolist())}"
    return f"{values.size} points, {values.min():g}..{values.max():g}"


def _same_grid(
    parts: list[tuple[str, xr.Dataset]], sources: list[str]
) -> list[tuple[str, xr.Dataset]]:
    """Every part on the latitudes, longitudes and levels of the first (same order), or raise."""
    parts = list(parts)
    # a source of several parts (a zip of netCDFs, a GRIB file of several level types) is
    # named with the part's number, so that an error does not name one file twice
    counts = collections.Counter(source for source, _ in parts)
    seen: collections.Counter[str] = collections.Counter()
    labels = []
    for source, _ in parts:
        seen[source] += 1
        labels.append(
            f"{source} (part {seen[source]} of {counts[source]})" if counts[source] > 1 else source
        )
    for dim in ("latitude", "longitude", "level"):
        held = [i for i, (_, p) in enumerate(parts) if dim in p.dims]
        if len(held) < 2:
            continue
        ref = parts[held[0]][1]
        ref_source = labels[held[0]]
        ref_values = np.asarray(ref[dim].values)
        for i in held[1:]:
            source, part = parts[i]
            label = labels[i]
            values = np.asarray(part[dim].values)
            if np.array_equal(values, ref_values):
                continue
            if np.array_equal(np.sort(values), np.sort(ref_values)) and (
                np.unique(values).size == values.size
            ):  # the same points in another order (north to south, ...): the first's order
                position = {v: j for j, v in enumerate(values.tolist())}
                parts[i] = (source, part.isel({dim: [position[v] for v in ref_values.tolist()]}))
                continue
            raise SchemaError(
                f"cannot combine the data of {sources}: {dim} differs between "
                f"'{ref_source}' ({_grid_text(dim, ref_values)}) and '{label}' "
                f"({_grid_text(dim, values)}); combining them would fill the rest with NaN. "
                + (
                    "Select the same levels in each file"
                    if dim == "level"
                    else "Regrid the files to one grid first (xfuxi.regrid)"
                )
            )
    return parts


def _combine(parts: list[tuple[str, xr.Dataset]], sources: list[str]) -> xr.Dataset:
    """The parts combined by their coordinates; refused where a variable would be NaN-padded."""
    if len(parts) == 1:
        return parts[0][1]
    timed = [p for _, p in parts if "time" in p.dims]
    if timed:
        every = np.unique(np.concatenate([p["time"].values for p in timed]))
        names = dict.fromkeys(v for p in timed for v in p.data_vars if "time" in p[v].dims)
        for name in names:
            held = [p["time"].values for p in timed if name in p.data_vars]
            missing = np.setdiff1d(every, np.concatenate(held))
            if missing.size:
                raise SchemaError(
                    f"cannot combine the data of {sources}: variable {name!r} is missing at "
                    f"{missing.size} of the {every.size} times of the data "
                    f"({_times_text(missing)}); combining would fill them with NaN. Give "
                    "every variable at the same times (select the common times first)"
                )
    shared = {}  # the same variable at the same time and place in two files: which one?
    for i, (name_i, p) in enumerate(parts):
        for name_j, q in parts[i + 1 :]:
            if (
                "time" not in p.dims
                or "time" not in q.dims
                or not set(p.data_vars) & set(q.data_vars)
            ):
                continue
            apart = any(  # files of other levels (or regions) at the same times combine
                d in p.coords and d in q.coords and p[d].ndim == 1 and q[d].ndim == 1
                and not np.intersect1d(p[d].values, q[d].values).size
                for d in ("level", "latitude", "longitude")
            )  # fmt: skip
            both = np.intersect1d(p["time"].values, q["time"].values)
            if both.size and not apart:
                shared[(name_i, name_j)] = both
    if shared:
        (a, b), both = next(iter(shared.items()))
        raise SchemaError(
            f"cannot combine the data of {sources}: '{a}' and '{b}' hold the same variables "
            f"at {both.size} common time(s) ({_times_text(both)}); give each time once "
            "(files that overlap: select the times of one first)"
        )
    try:
        return xr.combine_by_coords(
            [p for _, p in parts],
            compat="no_conflicts",
            join="exact",
            combine_attrs="drop_conflicts",
        )
    except (ValueError, KeyError) as err:
        raise SchemaError(f"cannot combine the data of {sources}: {err}") from err


def _at_times(
    totals: xr.Dataset, hourly: xr.Dataset, times: np.ndarray, sources: list[str]
) -> xr.Dataset:
    """The accumulated totals at the times of the other variables.

    The accumulations may hold other times than the instantaneous fields: those the sums
    need (hourly values before a 6-hourly time; cfgrib's valid times of each step). Times
    of the other fields before the first accumulation are NaN, as where the 6 hours are
    not all in the data; later times that the accumulations do not hold are refused.
    """
    have = hourly["time"].values
    if np.array_equal(have, times):
        return totals
    missing = times[~np.isin(times, have)]
    late = missing[missing > have.min()] if have.size else missing
    if late.size:
        names = [str(v) for v in hourly.data_vars]
        raise SchemaError(
            f"cannot combine the data of {sources}: the accumulated variable(s) {names} are "
            f"missing at {late.size} of the {times.size} times of the other variables "
            f"({_times_text(late)}); their totals would be NaN there. Give the accumulations "
            "at every time of the other variables (and the hours before, for the sums)"
        )
    early = missing.size
    out = totals.reindex(time=times)
    for name in out.data_vars:
        note = out[name].attrs.get("accumulation", "")
        note += f"; taken at the {times.size} time(s) of the other variables"
        if early:
            note += f", NaN at the {early} before the first accumulation"
        out[name].attrs["accumulation"] = note
    return out


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
        Passed to fsspec for a remote store (e.g. ``{"token": "anon"}``; another type is a
        ``TypeError``).
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
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise TypeError(
            "storage_options must be a mapping of fsspec options, e.g. {'token': 'anon'}; "
            f"got {storage_options!r}"
        )
    if isinstance(obj, xr.Dataset):
        return validate(obj, **validate_kwargs)
    if not isinstance(obj, (str, os.PathLike)):
        raise TypeError(f"expected a path, a URL or an xarray.Dataset, got {type(obj)}")
    location = os.fspath(obj)
    if "://" not in location:
        location = os.path.expanduser(location)  # "~/wb2.zarr": the home folder
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
