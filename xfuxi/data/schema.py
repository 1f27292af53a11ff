"""Canonical names, dimensions and validation of xfuxi data (docs/design.md, data conventions).

Everything that enters xfuxi passes through :func:`validate`, which returns a canonical
*copy* (the input is never modified) or raises an error that names what is wrong.
The conventions follow WeatherBench2 and ERA5:

* variables carry WeatherBench2's long names (``geopotential``, ``temperature``, ...)
  in SI units;
* dimensions are ``time``, ``level`` (hPa), ``latitude`` (ascending, −90..90) and
  ``longitude`` (ascending, 0..360); forecasts add ``prediction_timedelta`` (the lead,
  ``timedelta64``) with ``time`` the initial time; ensembles add ``number``;
* dimensions are ordered ``time, prediction_timedelta, number, level, latitude,
  longitude`` (any other dimension goes first).
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "CANONICAL_DIMS",
    "DIM_ALIASES",
    "ERA5_PRESSURE_LEVELS",
    "ERA5_SHORT_NAMES",
    "LEVEL_NAMES",
    "PHYSICAL_RANGES",
    "PROVENANCE_KEYS",
    "VARIABLES",
    "SchemaError",
    "canonical_unit",
    "check_no_time_zone",
    "check_unpacked",
    "input_source",
    "likely_unit_mistake",
    "native_byte_order",
    "parse_time",
    "parse_times",
    "physical_range_error",
    "check_state_dims",
    "require_dataset",
    "same_unit",
    "states_at_valid_times",
    "surface_geopotential",
    "time_dtype_problem",
    "unit_hint",
    "validate",
]


class SchemaError(ValueError):
    """Raised when data cannot be brought into xfuxi's canonical layout."""


#: canonical dimension order; dims not listed here are put first, in their given order
CANONICAL_DIMS: tuple[str, ...] = (
    "time",
    "prediction_timedelta",
    "number",
    "level",
    "latitude",
    "longitude",
)

#: long name -> (units, description); units as WeatherBench2 / ERA5 give them
VARIABLES: dict[str, tuple[str, str]] = {
    "geopotential": ("m**2 s**-2", "geopotential on pressure levels"),
    "temperature": ("K", "air temperature"),
    "u_component_of_wind": ("m s**-1", "eastward wind"),
    "v_component_of_wind": ("m s**-1", "northward wind"),
    "vertical_velocity": ("Pa s**-1", "pressure vertical velocity"),
    "specific_humidity": ("kg kg**-1", "specific humidity"),
    "relative_humidity": ("%", "relative humidity"),
    "surface_pressure": ("Pa", "surface pressure"),
    "mean_sea_level_pressure": ("Pa", "mean sea-level pressure"),
    "2m_temperature": ("K", "2-metre temperature"),
    "10m_u_component_of_wind": ("m s**-1", "10-metre eastward wind"),
    "10m_v_component_of_wind": ("m s**-1", "10-metre northward wind"),
    "total_precipitation_6hr": ("m", "6-hour accumulated precipitation"),
    "toa_incident_solar_radiation_6hr": ("J m**-2", "6-hour accumulated TOA incident solar"),
    "2m_dewpoint_temperature": ("K", "2-metre dewpoint temperature"),
    "total_column_water_vapour": ("kg m**-2", "total column water vapour"),
    "sea_surface_temperature": ("K", "sea surface temperature"),
    "skin_temperature": ("K", "skin temperature"),
    "total_cloud_cover": ("1", "total cloud cover (fraction)"),
    "land_sea_mask": ("1", "land-sea mask (fraction of land)"),
    "geopotential_at_surface": ("m**2 s**-2", "geopotential at the surface (orography)"),
    "100m_u_component_of_wind": ("m s**-1", "100-metre eastward wind"),
    "100m_v_component_of_wind": ("m s**-1", "100-metre northward wind"),
    "passive_tracer": ("1", "passive tracer mixing ratio (Held–Suarez world; not humidity)"),
}

#: long name -> (lowest, highest) value physically possible in the canonical units; checked by
#: ``validate(check_ranges=True)`` (values outside are wrong units or corrupt data, e.g. °C
#: taken as K)
PHYSICAL_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (100.0, 400.0),
    "2m_temperature": (100.0, 400.0),
    "surface_pressure": (5.0e3, 1.5e5),
    "mean_sea_level_pressure": (5.0e3, 1.5e5),
}

# canonical units -> (scale, offset, what the user likely gave): canonical = given * scale + offset
_UNIT_MISTAKES: dict[str, tuple[tuple[float, float, str], ...]] = {
    "K": ((1.0, 273.15, "°C instead of K"),),
    "Pa": ((100.0, 0.0, "hPa instead of Pa"),),
    "m**2 s**-2": ((9.80665, 0.0, "geopotential height in m instead of geopotential in m² s⁻²"),),
    "kg kg**-1": ((1.0e-3, 0.0, "g/kg instead of kg/kg"),),
}

#: ERA5 (CDS) short names -> WeatherBench2 long names. Accumulated fields (``tp``, ``tisr``)
#: are not here: their hourly values are not 6-hour totals, and
#: :func:`xfuxi.data.readers.from_era5` sums them (``tp`` -> ``total_precipitation_6hr``)
ERA5_SHORT_NAMES: dict[str, str] = {
    "z": "geopotential",
    "t": "temperature",
    "u": "u_component_of_wind",
    "v": "v_component_of_wind",
    "w": "vertical_velocity",
    "q": "specific_humidity",
    "r": "relative_humidity",
    "sp": "surface_pressure",
    "msl": "mean_sea_level_pressure",
    "t2m": "2m_temperature",
    "u10": "10m_u_component_of_wind",
    "v10": "10m_v_component_of_wind",
    "d2m": "2m_dewpoint_temperature",
    "tcwv": "total_column_water_vapour",
    "sst": "sea_surface_temperature",
    "skt": "skin_temperature",
    "tcc": "total_cloud_cover",
    "lsm": "land_sea_mask",
    "u100": "100m_u_component_of_wind",
    "v100": "100m_v_component_of_wind",
}

#: the 37 ERA5 pressure levels (hPa); WeatherBench2's 13 levels are a subset
ERA5_PRESSURE_LEVELS: tuple[int, ...] = (
    1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100, 125, 150, 175, 200, 225, 250, 300, 350, 400,
    450, 500, 550, 600, 650, 700, 750, 775, 800, 825, 850, 875, 900, 925, 950, 975, 1000,
)  # fmt: skip

#: other names of the dims that :func:`validate` renames to xfuxi's (``lat`` → ``latitude``)
DIM_ALIASES: dict[str, str] = {
    "lat": "latitude",
    "lon": "longitude",
    "valid_time": "time",
    "pressure_level": "level",
    "isobaricInhPa": "level",
    "plev": "level",
    "lead_time": "prediction_timedelta",
    "step": "prediction_timedelta",
    "member": "number",
    "realization": "number",
}

# spellings of the same unit that appear in the wild
_UNIT_SPELLINGS = {
    "m**2 s**-2": {"m**2 s**-2", "m2 s-2", "m^2 s^-2", "m^2/s^2", "m2/s2", "m**2/s**2"},
    "m s**-1": {"m s**-1", "m s-1", "m/s", "m s^-1"},
    "Pa s**-1": {"Pa s**-1", "Pa s-1", "Pa/s"},
    "kg kg**-1": {"kg kg**-1", "kg kg-1", "kg/kg", "1"},
    "K": {"K", "kelvin"},
    "Pa": {"Pa", "pascal"},
    "%": {"%", "percent"},
    "m": {"m", "metre", "meter"},
    "J m**-2": {"J m**-2", "J m-2", "J/m^2", "J/m2"},
    "kg m**-2": {"kg m**-2", "kg m-2", "kg/m^2", "kg/m2"},
    "1": {"1", "", "dimensionless", "(0 - 1)", "0-1"},
}


#: spellings of units xfuxi's variables are not in, but data often are (:func:`canonical_unit`)
_OTHER_SPELLINGS = {
    "degC": {"degC", "°C", "deg_C", "celsius", "degree_Celsius", "degrees_Celsius", "C"},
    "hPa": {"hPa", "mbar", "millibar", "millibars", "mb", "hectopascal", "hectopascals"},
}


def canonical_unit(units: str) -> str | None:
    """The unit of which ``units`` is a known spelling (``"m/s"`` → ``"m s**-1"``,
    ``"(0 - 1)"`` → ``"1"``, ``"Kelvin"`` → ``"K"``), or None for a spelling xfuxi does not
    know (two such cannot be told the same or different).

    Examples
    --------
    >>> canonical_unit("m/s"), canonical_unit("Kelvin"), canonical_unit("°C")
    ('m s**-1', 'K', 'degC')
    >>> canonical_unit("1"), canonical_unit("(0 - 1)"), canonical_unit("furlong") is None
    ('1', '1', True)
    """
    given = units.strip()
    table = {**_UNIT_SPELLINGS, **_OTHER_SPELLINGS}
    if given in table:  # a unit's own name ("1" is also a spelling of kg kg**-1)
        return given
    for canonical, spellings in table.items():
        if given in spellings or given.lower() in {x.lower() for x in spellings}:
            return canonical
    return None


def same_unit(expected: str, given: str) -> bool:
    """Whether ``given`` is a spelling of the unit ``expected`` (``"m s**-1"``, ``"m/s"``, ...).

    Examples
    --------
    >>> same_unit("K", "K"), same_unit("K", "degC")
    (True, False)
    """
    return given.strip() in _UNIT_SPELLINGS.get(expected, {expected})


#: units often given instead of the canonical ones, with the conversion (for the error)
_UNIT_HINTS: dict[str, tuple[tuple[frozenset[str], str], ...]] = {
    "m**2 s**-2": (
        (frozenset({"m", "gpm", "metre", "metres", "meter", "meters"}),
         "geopotential height, not geopotential: multiply metres by 9.80665"),
    ),
    "K": ((frozenset({"degC", "C", "°C", "celsius", "degree_Celsius"}), "°C: add 273.15"),),
    "Pa": ((frozenset({"hPa", "mbar", "mb", "millibar", "millibars"}), "hPa: multiply by 100"),),
    "kg kg**-1": ((frozenset({"g kg**-1", "g/kg", "g kg-1"}), "g/kg: divide by 1000"),),
}  # fmt: skip


def unit_hint(expected: str, given: str) -> str:
    """`` (…: the conversion)`` for a known mistake, else ``""``.

    >>> unit_hint("m**2 s**-2", "gpm")
    ' (geopotential height, not geopotential: multiply metres by 9.80665)'
    """
    for spellings, hint in _UNIT_HINTS.get(expected, ()):
        if given.strip() in spellings:
            return f" ({hint})"
    return ""


def likely_unit_mistake(variable: str, value: float, expected: float, tolerance: float) -> str:
    """Name the unit mistake that would explain ``value`` where ``expected`` was expected.

    Parameters
    ----------
    variable : str
        Long name of the variable (its canonical units are looked up in :data:`VARIABLES`).
    value : float
        A typical value of the data as given (e.g. its mean).
    expected : float
        The typical value in canonical units (e.g. a model's mean of the channel).
    tolerance : float
        How close the converted value must come to ``expected``.

    Returns
    -------
    str
        For instance ``"°C instead of K"``, or ``""`` if no known unit mistake explains it.

    Examples
    --------
    >>> likely_unit_mistake("temperature", -20.0, 255.0, 30.0)
    '°C instead of K'
    >>> likely_unit_mistake("temperature", 1000.0, 255.0, 30.0)
    ''
    """
    units = VARIABLES.get(str(variable), ("", ""))[0]
    for scale, offset, what in _UNIT_MISTAKES.get(units, ()):
        if abs(value * scale + offset - expected) <= tolerance:
            return what
    return ""


#: names of the pressure-level dimension (the canonical ``level`` and its aliases)
LEVEL_NAMES: tuple[str, ...] = ("level", *(k for k, v in DIM_ALIASES.items() if v == "level"))


def surface_geopotential(ds: xr.Dataset) -> xr.Dataset:
    """Rename ERA5's ``z`` to ``geopotential_at_surface`` where it is the orography.

    ERA5 calls the geopotential ``z`` on pressure levels and at the surface alike; a ``z``
    with neither a pressure-level dimension nor a scalar pressure-level coordinate (a
    single-level request) is the surface geopotential, not ``geopotential``. The one rule,
    used by :func:`validate` and :func:`xfuxi.data.readers.from_era5`.

    Parameters
    ----------
    ds : xarray.Dataset
        Data with ERA5 short names or long names; not modified.

    Returns
    -------
    xarray.Dataset
        ``ds`` itself, or a copy with ``z`` renamed.

    Raises
    ------
    SchemaError
        ``ds`` holds the surface ``z`` and ``geopotential_at_surface`` both.

    Examples
    --------
    >>> orog = xr.Dataset({"z": (("latitude", "longitude"), np.zeros((2, 3)))})
    >>> list(surface_geopotential(orog).data_vars)
    ['geopotential_at_surface']
    >>> list(surface_geopotential(orog.expand_dims(level=[500.0])).data_vars)
    ['z']
    """
    if "z" not in ds.data_vars:
        return ds
    z = ds["z"]
    if any(name in z.dims or name in z.coords for name in LEVEL_NAMES):
        return ds
    if "geopotential_at_surface" in ds.data_vars:
        raise SchemaError(
            "data has both 'z' and 'geopotential_at_surface' (a 'z' without a pressure "
            "level is the surface geopotential)"
        )
    return ds.rename(z="geopotential_at_surface")


def _rename_aliases(ds: xr.Dataset) -> xr.Dataset:
    names = {**{k: v for k, v in DIM_ALIASES.items() if k in ds.variables or k in ds.dims}}
    # "number" and "step" are scalar coordinates in CDS files; only rename real dimensions
    for alias in ("step", "member", "realization"):
        if alias in names and alias not in ds.dims:
            names.pop(alias)
    # a forecast's valid_time(time, lead), as xfuxi's netCDF writer and cfgrib's forecasts
    # carry it, is a derived coordinate beside the initial time, not another name for time
    if (
        "valid_time" in names
        and "valid_time" not in ds.dims
        and ({"prediction_timedelta", "step"} & set(ds.dims))
    ):
        names.pop("valid_time")
    # the same of one lead, selected (fc.sel(prediction_timedelta="12h")): its lead is a
    # scalar coordinate, and valid_time what the writer made of it (time + lead)
    lead = next((n for n in _LEAD_NAMES if n in ds.coords and n not in ds.dims), None)
    stale = False
    if "valid_time" in names and "valid_time" not in ds.dims and lead and "time" in ds.coords:
        if _is_time_plus_lead(ds["valid_time"], ds["time"], ds[lead]):
            names.pop("valid_time")
        else:
            stale = True
    for src, dst in list(names.items()):
        if dst in ds.variables or dst in ds.dims:
            hint = (
                " (cfgrib's layout: read GRIB and cfgrib's netCDF with from_era5, which makes "
                "one time of them)"
                if {src, dst} == {"valid_time", "time"}
                else ""
            )
            if stale and src == "valid_time":
                hint = (
                    f" ('valid_time' is not time + {lead}, which it must be beside a lead: "
                    "drop it, ds.drop_vars('valid_time'), or correct it)"
                )
            raise SchemaError(
                f"data has both {src!r} and {dst!r}; cannot rename {src!r} to the canonical "
                f"{dst!r}{hint}"
            )
    return ds.rename(names) if names else ds


def _is_time_plus_lead(valid: xr.DataArray, time: xr.DataArray, lead: xr.DataArray) -> bool:
    """Whether ``valid`` is ``time + lead`` (a forecast's valid times), value for value."""
    if valid.dtype.kind != "M" or time.dtype.kind != "M" or lead.dtype.kind != "m":
        return False
    expected = time.variable + lead.variable.astype("timedelta64[ns]")
    if set(valid.dims) != set(expected.dims):
        return False
    return bool((valid.variable == expected).all())


def _check_monotonic(name: str, values: np.ndarray) -> int:
    """Return +1 for strictly increasing, -1 for strictly decreasing, else raise."""
    if values.size < 2:
        return 1
    d = np.diff(values.astype("float64") if values.dtype.kind in "iuf" else values)
    if np.all(d > 0):
        return 1
    if np.all(d < 0):
        return -1
    if values.dtype.kind in "iuf" and np.any(d == 0):
        raise SchemaError(f"coordinate {name!r} has duplicated values")
    raise SchemaError(
        f"coordinate {name!r} is not monotonic; expected strictly increasing or decreasing values"
    )


def _degrees(ds: xr.Dataset, name: str) -> None:
    """Refuse a latitude or longitude that is not numbers of degrees: strings (NumPy's
    "ufunc 'isfinite' not supported" otherwise), or radians by their units (values within
    ±1.57 would pass as degrees: a grid squeezed onto the equator)."""
    values = ds[name]
    if values.dtype.kind not in "fiu":
        raise SchemaError(f"coordinate {name!r} must be numbers of degrees; got {values.dtype}")
    units = str(values.attrs.get("units", "")).strip().lower()
    if units in ("rad", "radian", "radians"):
        raise SchemaError(
            f"coordinate {name!r} is in {units}; xfuxi's coordinates are degrees: convert "
            f"them (np.degrees) and set units='degrees_{'north' if name == 'latitude' else 'east'}'"
        )


def _fix_latitude(ds: xr.Dataset) -> xr.Dataset:
    _degrees(ds, "latitude")
    lat = np.asarray(ds["latitude"].values)
    if lat.ndim != 1:
        raise SchemaError("coordinate 'latitude' must be one-dimensional")
    if np.any(~np.isfinite(lat)) or lat.min() < -90 or lat.max() > 90:
        raise SchemaError(
            f"coordinate 'latitude' must lie within [-90, 90]; got {lat.min()}..{lat.max()}"
        )
    if _check_monotonic("latitude", lat) < 0:
        ds = _mark_increasing(ds.isel(latitude=slice(None, None, -1)), "latitude")
    return ds


def _mark_increasing(ds: xr.Dataset, name: str) -> xr.Dataset:
    """After sorting: a ``stored_direction`` attribute (cfgrib's) must say so too."""
    if "stored_direction" in ds[name].attrs:
        ds = ds.assign_coords({name: ds[name].assign_attrs(stored_direction="increasing")})
    return ds


def _fix_longitude(ds: xr.Dataset) -> xr.Dataset:
    _degrees(ds, "longitude")
    lon = np.asarray(ds["longitude"].values, dtype="float64")
    if lon.ndim != 1:
        raise SchemaError("coordinate 'longitude' must be one-dimensional")
    if np.any(~np.isfinite(lon)):
        raise SchemaError("coordinate 'longitude' has non-finite values")
    if lon.min() < -180 or lon.max() > 360:
        raise SchemaError(
            f"coordinate 'longitude' must lie within [-180, 360]; got {lon.min()}..{lon.max()}"
        )
    wrapped = np.mod(lon, 360.0)
    if np.unique(wrapped).size != wrapped.size:
        raise SchemaError("coordinate 'longitude' has duplicated values (after wrapping to 0..360)")
    if not np.array_equal(wrapped, lon):
        ds = ds.assign_coords(
            longitude=xr.Variable("longitude", wrapped, ds["longitude"].attrs.copy())
        )
    if wrapped.size > 1 and not np.all(np.diff(ds["longitude"].values) > 0):
        ds = _mark_increasing(ds.sortby("longitude"), "longitude")
    return ds


def _fix_level(ds: xr.Dataset, levels: Sequence[float] | None) -> xr.Dataset:
    if "level" not in ds.coords:  # positions 0, 1, ... were read as the level 0 hPa
        raise SchemaError(
            "dimension 'level' has no coordinate values; assign the pressures in hPa "
            "(ds.assign_coords(level=[...]))"
        )
    lev = np.asarray(ds["level"].values, dtype="float64")
    if lev.ndim != 1:
        raise SchemaError("coordinate 'level' must be one-dimensional")
    units = str(ds["level"].attrs.get("units", "hPa"))
    if units in ("Pa", "pascal"):
        raise SchemaError(
            "coordinate 'level' is in Pa; xfuxi expects pressure levels in hPa "
            "(divide by 100 and set units='hPa')"
        )
    if units not in ("hPa", "millibar", "millibars", "mbar", "mb", "hectopascal", "hectopascals"):
        raise SchemaError(f"coordinate 'level' has units {units!r}; expected 'hPa'")
    allowed = np.asarray(ERA5_PRESSURE_LEVELS if levels is None else levels, dtype="float64")
    unknown = [float(v) for v in lev if not np.any(np.isclose(v, allowed))]
    if unknown:
        in_pa = all(np.any(np.isclose(v / 100.0, allowed)) for v in lev)
        hint = " (they look like Pa: divide the levels by 100)" if in_pa else ""
        raise SchemaError(
            f"unknown pressure level(s) {unknown} hPa{hint}; expected levels among "
            f"{allowed.tolist()}"
        )
    if lev.size > 1:
        if _check_monotonic("level", lev) < 0:
            ds = _mark_increasing(ds.sortby("level"), "level")
    ds = ds.assign_coords(level=ds["level"].assign_attrs(units="hPa", long_name="pressure level"))
    return ds



def is_utc(tz: Any) -> bool:
    """Whether the time zone ``tz`` (a tzinfo, or None) is UTC itself (``"Z"``,
    ``"+00:00"``, ``tz="UTC"``): times marked so are xfuxi's times, which are UTC. A zone
    that is at offset 0 only part of the year (Europe/London) is not.

    Examples
    --------
    >>> is_utc(pd.Timestamp("2001-03-01T06Z").tz), is_utc(None)
    (True, False)
    >>> is_utc(pd.Timestamp("2001-03-01T06", tz="Europe/London").tz)
    False
    >>> is_utc(pd.Timestamp("2001-03-01T06", tz="Etc/GMT").tz)
    True
    """
    if tz is None:
        return False
    # whatever its name (UTC, Z, GMT, Etc/GMT, a dateutil or zoneinfo UTC): at offset 0
    # without daylight saving in winter and summer, then and now
    zero = datetime.timedelta(0)
    try:
        for year in (1970, 2000, 2030):
            for month in (1, 7):
                when = datetime.datetime(year, month, 1, 12)
                if tz.utcoffset(when) != zero or tz.dst(when) not in (None, zero):
                    return False
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def _naive_utc(times: Any) -> Any:
    """``times`` (a Timestamp or a DatetimeIndex) marked UTC as naive times (xfuxi's);
    others as they are."""
    return times.tz_convert(None) if is_utc(times.tz) else times


def check_no_time_zone(
    times: pd.Timestamp | pd.DatetimeIndex,
    subject: str,
    *,
    error: type[Exception] = SchemaError,
) -> None:
    """Raise ``error`` if ``times`` (a Timestamp, or a DatetimeIndex: several) carries a
    time zone: compared with the data's times (UTC without one) it fails or matches none.
    ``subject`` names them in the message.

    Examples
    --------
    >>> check_no_time_zone(pd.Timestamp("2001-03-01T06:00"), "the analysis time")
    >>> zoned = pd.DatetimeIndex(["2001-03-01T06:00+01:00"])
    >>> check_no_time_zone(zoned, "init_times")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xfuxi.data.schema.SchemaError: init_times carry a time zone (UTC+01:00); give them as UTC ...
    """
    if times.tz is None:
        return
    several = isinstance(times, pd.DatetimeIndex)
    them = "them" if several else "it"
    if is_utc(times.tz):  # (parse_times reads these as naive times)
        how = "without one (e.g. '2001-03-01T06:00')"
    else:
        how = (
            "without one (e.g. '2001-03-01T06:00') or marked UTC ('2001-03-01T06:00Z'): "
            "converted, e.g. with .tz_convert('UTC')"
        )
    raise error(
        f"{subject} {'carry' if several else 'carries'} a time zone ({times.tz}); give "
        f"{them} as UTC {how}, as the data's times are"
    )


def time_dtype_problem(coord: xr.DataArray | xr.Variable, name: Hashable = "time") -> str | None:
    """What is wrong with the times of ``coord`` (the coordinate ``name``), or None.

    xfuxi's times are ``datetime64`` in UTC without a time zone. cftime dates (a model
    calendar: ``noleap``, ``360_day``, ...) and times carrying a time zone cannot be added
    to leads nor compared with such times; the message names the problem and the
    conversion. ``datetime64`` of a coarser unit than ns (``[s]``, ``[us]``: xarray keeps
    them) holding times outside the years 1678 to 2261 are named too: xfuxi computes its
    times in ``datetime64[ns]``, where they would wrap round to other dates (2300 became
    1715). Other dtypes (strings, numbers) are None here: the caller's own check names
    their dtype.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.date_range("2000-01-01", periods=2, freq="6h")
    >>> time_dtype_problem(xr.DataArray(t, dims="time")) is None
    True
    >>> time_dtype_problem(xr.DataArray(t.tz_localize("UTC"), dims="time"))[:50]
    "coordinate 'time' carries a time zone (UTC); xfuxi"
    >>> far = xr.Variable("time", np.array(["2300-01-01"], dtype="datetime64[s]"))
    >>> time_dtype_problem(far)[:70]
    "coordinate 'time' holds times outside the years 1678 to 2261 that date"
    """
    tz = getattr(coord.dtype, "tz", None)
    first = None
    if tz is None and coord.dtype.kind == "O" and coord.size:
        flat = np.ravel(np.asarray(coord.values))
        first = next((v for v in flat if v is not None and v == v), None)
        tz = getattr(first, "tzinfo", None) if first is not None else None
    if tz is not None:
        return (
            f"coordinate {name!r} carries a time zone ({tz}); xfuxi's times are UTC without "
            f"one: drop it, e.g. ds.assign_coords({name}=ds.indexes[{name!r}]"
            ".tz_convert('UTC').tz_localize(None))"
        )
    if first is not None and type(first).__module__.startswith("cftime"):
        calendar = getattr(first, "calendar", "") or "unknown"
        align = ", align_on='year'" if calendar == "360_day" else ""
        convert = f"convert_calendar('standard', use_cftime=False{align})"
        years = [v.year for v in flat if v is not None and v == v and hasattr(v, "year")]
        late, early = max(years) > 2261, min(years) < 1678
        if not (late or early):
            return (
                f"coordinate {name!r} holds cftime dates ({calendar} calendar), not "
                f"datetime64; convert them first: ds.{convert}"
            )
        # (convert_calendar alone fails there: "Source time range is not valid for numpy
        # datetimes"): shift by whole 400-year cycles of the calendar first
        days = _CYCLE_DAYS.get(calendar.lower(), _GREGORIAN_CYCLE_DAYS)
        sign = "-" if late else "+"
        return (
            f"coordinate {name!r} holds cftime dates ({calendar} calendar), not datetime64, "
            f"of years {min(years)} to {max(years)}, outside the years 1678 to 2261 that "
            "datetime64[ns] holds: shift them into those years by whole 400-year cycles of "
            "their calendar (which keep each day of the year), then convert them: "
            f"ds.assign_coords({name}=ds.indexes[{str(name)!r}] {sign} "
            f"datetime.timedelta(days={days})).{convert}"
        )
    if isinstance(coord.dtype, np.dtype) and coord.dtype.kind == "M":
        return _beyond_ns_problem(coord, name)
    return None


#: the days of 400 Gregorian years: a shift by them keeps every date's day of the year,
#: weekday and leap day
_GREGORIAN_CYCLE_DAYS = 146097

#: the days of 400 years of cftime's other calendars (a shift keeps each day of the year)
_CYCLE_DAYS = {
    "noleap": 146000, "365_day": 146000, "all_leap": 146400, "366_day": 146400,
    "360_day": 144000, "julian": 146100,
}  # fmt: skip


def _beyond_ns_problem(coord: xr.DataArray | xr.Variable, name: Hashable) -> str | None:
    """What :func:`time_dtype_problem` says of datetime64 ``coord`` holding times that
    ``datetime64[ns]`` cannot (a coarser unit: NumPy's cast to ns wraps them round
    silently), or None."""
    unit = np.datetime_data(coord.dtype)[0]
    if unit in ("ns", "ps", "fs", "as", "generic") or not coord.size:
        return None
    values = np.ravel(np.asarray(coord.values))
    # compared in microseconds (a comparison in ns would cast, and wrap, the values)
    low = np.datetime64(pd.Timestamp.min.ceil("us").value // 1000, "us")
    high = np.datetime64(pd.Timestamp.max.floor("us").value // 1000, "us")
    known = values[~np.isnat(values)]
    in_us = known.astype("datetime64[us]")
    outside = known[(in_us < low) | (in_us > high)]
    if not outside.size:
        return None
    shown = [str(v) for v in np.unique(outside)[:5]]
    sign = "-" if (in_us > high).any() else "+"  # later than 2261: back, else forward
    return (
        f"coordinate {name!r} holds times outside the years 1678 to 2261 that "
        f"datetime64[ns] holds: {shown}; xfuxi computes times in datetime64[ns], where "
        "they would become other dates: shift them into those years by whole 400-year "
        f"Gregorian cycles (which keep each day of the year), e.g. {_shift_example(name, sign)}"
    )


def _shift_example(name: Hashable, sign: str, obj: str = "ds") -> str:
    """The code that shifts the times ``obj[name]`` by one 400-year Gregorian cycle, back
    (``sign`` ``"-"``) or forward (``"+"``), as :func:`_beyond_ns_problem` suggests it
    (``obj`` the name of the Dataset in the example)."""
    return (
        f"{obj}.assign_coords({name}={obj}[{str(name)!r}] {sign} "
        f"np.timedelta64({_GREGORIAN_CYCLE_DAYS}, 'D'))"
    )


def _is_number(value: Any) -> bool:
    """A plain number (bool included), not a time: pandas reads 5 as 5 ns after 1970."""
    numbers = (int, float, complex, np.number, np.bool_)
    return isinstance(value, numbers) and not isinstance(value, np.timedelta64)


#: how :func:`parse_times` asks for a time
_TIME_EXAMPLE = "(e.g. '2020-01-01T06:00', a datetime or a datetime64)"


def parse_times(
    times: Any,
    name: str,
    *,
    error: type[Exception] = SchemaError,
    allow_missing: bool = False,
) -> pd.DatetimeIndex:
    """Dates and times as given to a function (one, a sequence, an array, a DataArray) as a
    :class:`pandas.DatetimeIndex` of ``datetime64[ns]``, checked: the one way xfuxi reads
    the times it is given.

    ISO 8601 strings may differ in precision (``"2020-01-01T06"`` beside
    ``"2020-01-01T12:00"``); other strings are read one by one (``"1 Jan 2020"``).

    Parameters
    ----------
    times : datetime-like or sequence of them
        Strings, :class:`datetime.datetime`, :class:`pandas.Timestamp`, ``datetime64``, or
        an array, Index, Series or DataArray of them (read flat).
    name : str
        The argument, to start the error messages (``"init_times"``).
    error : type of Exception, default SchemaError
        The error raised (a caller that documents another class passes it).
    allow_missing : bool, default False
        Let a missing time (``None``, ``"NaT"``, NaT) through as NaT.

    Returns
    -------
    pandas.DatetimeIndex
        The times in the order given, flat (one time given alone: an index of one).

    Raises
    ------
    SchemaError
        (or ``error``) A value that is not a date and time (named); a number (pandas
        would read 5 as 5 nanoseconds after 1970) or a time span; a time zone other than
        UTC (xfuxi's times are UTC: times marked UTC, ``"Z"``, ``"+00:00"`` or
        ``tz="UTC"``, are read as naive times) or cftime dates; a missing time unless
        ``allow_missing``; a time outside ``datetime64[ns]`` (years 1678 to 2261).

    Examples
    --------
    >>> parse_times(["2020-01-01T06", "2020-01-01T12:00"], "init_times").hour.tolist()
    [6, 12]
    >>> parse_times(["2020-01-01T06Z", "2020-01-01T12:00+00:00"], "init_times").hour.tolist()
    [6, 12]
    >>> parse_times(["noon"], "init_times")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xfuxi.data.schema.SchemaError: init_times must be dates and times (...); 'noon' is not one
    >>> parse_times(5, "time", error=ValueError)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: time must be a date and time (...); got the number 5, which would be read ...
    """
    if isinstance(times, (xr.DataArray, xr.Variable)) and is_utc(getattr(times.dtype, "tz", None)):
        times = pd.DatetimeIndex(np.ravel(times.data)).tz_convert(None)  # UTC: xfuxi's times
    if isinstance(times, (xr.DataArray, xr.Variable)):
        problem = time_dtype_problem(times, name)
        if problem is not None:  # cftime dates or a time zone: named, with the fix
            raise error(problem.replace(f"coordinate {name!r}", name, 1))
        times = times.values
    if isinstance(times, (pd.Series, pd.Index)) and isinstance(times.dtype, pd.DatetimeTZDtype):
        times = _naive_utc(pd.DatetimeIndex(times))  # marked UTC: xfuxi's times
        check_no_time_zone(times, name, error=error)
    if isinstance(times, (pd.Timestamp, datetime.datetime)) and is_utc(times.tzinfo):
        times = pd.Timestamp(times).tz_convert(None)
    if isinstance(times, (Iterator, set, frozenset)):  # a generator: its times, as a list
        times = list(times)
    one = isinstance(times, (str, bytes)) or np.ndim(times) == 0
    what = f"{name} must be {'a date and time' if one else 'dates and times'} {_TIME_EXAMPLE}"
    if one:
        items = np.empty(1, dtype=object)
        items[0] = times.item() if isinstance(times, np.ndarray) else times
    else:
        items = np.asarray(times).ravel()
    if items.dtype.kind == "m" and items.size:
        raise error(f"{what}; got the time span {str(pd.Timedelta(items[0]))!r}")
    if items.dtype.kind != "M":  # strings, numbers, objects: each looked at
        items = items.astype(object)
        for item in items:
            if _is_number(item):
                raise error(
                    f"{what}; got the number {item!r}, which would be read as nanoseconds "
                    "after 1970"
                )
            if isinstance(item, (np.timedelta64, pd.Timedelta, datetime.timedelta)):
                raise error(f"{what}; got the time span {item!r}")
        items = np.asarray([v.decode() if isinstance(v, bytes) else v for v in items], object)
    index = None
    try:  # ISO 8601 of any precision, together ("%Y-%m-%dT%H" was inferred, and "T12:00" refused)
        index = pd.DatetimeIndex(
            items if items.dtype.kind == "M" else pd.to_datetime(items, format="ISO8601")
        )
    except (ValueError, TypeError, OverflowError):
        pass
    if index is None:  # another format, or mixed time zones: one by one, naming a bad one
        stamps = [_one_time(v, what, error) for v in items]
        stamps = [_naive_utc(v) if v is not pd.NaT else v for v in stamps]  # "Z": UTC
        for stamp in stamps:
            if stamp is not pd.NaT:
                check_no_time_zone(stamp, name, error=error)
        index = pd.DatetimeIndex(stamps)
    index = _naive_utc(index)  # marked UTC ("Z", "+00:00", tz="UTC"): xfuxi's times
    # one time given: "carries ... give it" (an index reads "carry ... give them")
    check_no_time_zone(index[0] if one and index.size == 1 else index, name, error=error)
    try:
        index = index.as_unit("ns")
    except (ValueError, OverflowError):
        shown = [str(t) for t in index[(index < pd.Timestamp.min) | (index > pd.Timestamp.max)]]
        raise error(
            f"{name} holds times outside the years 1678 to 2261 that datetime64[ns] holds: "
            f"{shown[:5]}"
        ) from None
    if not allow_missing and index.hasnans:
        raise error(f"{name} holds a missing time (NaT); give every time")
    return index


def parse_time(value: Any, name: str, *, error: type[Exception] = SchemaError) -> pd.Timestamp:
    """One date and time, read as :func:`parse_times` reads times (the same refusals), or
    ``error`` if ``value`` holds another number of times than one.

    Examples
    --------
    >>> parse_time("2020-01-01T06", "start")
    Timestamp('2020-01-01 06:00:00')
    >>> parse_time(["2020-01-01", "2020-01-02"], "start", error=ValueError)
    Traceback (most recent call last):
    ...
    ValueError: start must be one date and time; got 2
    """
    times = parse_times(value, name, error=error)
    if times.size != 1:
        raise error(f"{name} must be one date and time; got {times.size}")
    return times[0]


def _one_time(value: Any, what: str, error: type[Exception]) -> pd.Timestamp:
    """One time of :func:`parse_times`, read alone, or ``error`` naming it after ``what``
    (``"init_times must be dates and times (...)"``)."""
    try:
        return pd.Timestamp(value) if value is not None else pd.NaT
    except (ValueError, TypeError, OverflowError):
        raise error(f"{what}; {value!r} is not one") from None


def refuse_lead_dim(
    ds: xr.Dataset | xr.DataArray, what: str, error: type[Exception] = SchemaError
) -> None:
    """Raise ``error`` if ``ds`` has a lead dim (``prediction_timedelta`` or
    ``lead_time``: a forecast of several leads) where states on ``time`` are expected.

    Examples
    --------
    >>> fc = xr.Dataset(coords={"prediction_timedelta": pd.to_timedelta([6, 12], "h")})
    >>> refuse_lead_dim(fc, "the truth")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xfuxi.data.schema.SchemaError: the truth must be states on 'time' (analyses, the truth); ...
    """
    lead = next((n for n in _LEAD_NAMES if n in ds.dims), None)
    if lead is not None:
        raise error(
            f"{what} must be states on 'time' (analyses, the truth); got a forecast of several "
            f"leads (dim {lead!r}): select one lead, e.g. fc.sel({lead}=np.timedelta64(6, "
            "'h')), whose states are taken at their valid times (time + lead)"
        )


def add_lead(time: Any, lead: Any, what: str, error: type[Exception] = SchemaError) -> np.ndarray:
    """``time + lead`` (broadcast; datetime64[ns]), refusing a sum outside
    ``datetime64[ns]``, which NumPy would wrap without a word (a valid time past
    2262-04-11 came out in 1677).

    Parameters
    ----------
    time : array_like of datetime64
        Initial times.
    lead : array_like of timedelta64
        Leads, broadcast against ``time``.
    what : str
        What is computed, to start the error message.
    error : type of Exception, default SchemaError
        The error raised.

    Returns
    -------
    numpy.ndarray
        The valid times, datetime64[ns] (NaT where a time or a lead is NaT).

    Raises
    ------
    SchemaError
        (or ``error``) A valid time lies beyond the years 1678 to 2261 of
        ``datetime64[ns]``.

    Examples
    --------
    >>> t = np.array(["2262-04-09"], "datetime64[ns]")
    >>> add_lead(t, np.timedelta64(24, "h"), "valid times")
    array(['2262-04-10T00:00:00.000000000'], dtype='datetime64[ns]')
    >>> add_lead(t, np.timedelta64(72, "h"), "valid times")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xfuxi.data.schema.SchemaError: valid times: 2262-04-09T00:00:00 + 3 days 00:00:00 lies past ...
    """
    t, lead_ns = np.broadcast_arrays(
        np.asarray(time).astype("datetime64[ns]"), np.asarray(lead).astype("timedelta64[ns]")
    )
    ti, li = t.view("i8"), lead_ns.view("i8")
    nat = np.iinfo(np.int64).min
    with np.errstate(over="ignore"):
        vi = np.asarray(ti + li)  # int64 wraps as datetime64 does (0-d: an array too)
    known = (ti != nat) & (li != nat)
    bad = known & ((vi == nat) | ((li > 0) & (vi < ti)) | ((li < 0) & (vi > ti)))
    if bad.any():
        i = np.flatnonzero(bad.ravel())[0]
        late = li.ravel()[i] > 0
        edge = (
            "past 2262-04-11T23:47:16, the end" if late else "before 1677-09-21T00:12:43, the start"
        )
        raise error(
            f"{what}: {str(t.ravel()[i])[:19]} + {pd.Timedelta(lead_ns.ravel()[i])} lies {edge} "
            "of datetime64[ns] (the times of xarray and pandas); give initial times and leads "
            "whose valid times lie within it"
        )
    out = vi.view("datetime64[ns]").copy()
    out[~known] = np.datetime64("NaT")
    return out


#: the names of a forecast's lead that :func:`validate` reads as ``prediction_timedelta``
#: when they are coordinates without a dim (cfgrib's scalar ``step`` is not among them)
_LEAD_NAMES: tuple[str, ...] = ("prediction_timedelta", "lead_time")


def states_at_valid_times(
    ds: xr.Dataset | xr.DataArray,
    what: str = "the states",
    *,
    error: type[Exception] = SchemaError,
) -> xr.Dataset | xr.DataArray:
    """States picked from a forecast at one lead, labelled with the times they are valid at.

    ``fc.sel(prediction_timedelta="6h")`` keeps ``time`` (the initial time) and a scalar
    coordinate ``prediction_timedelta`` (the lead): those states are valid at ``time +
    lead``, not at ``time``. Everything that takes states (forecasts, analyses,
    persistence, climatologies, synthetic observations) reads them through this function,
    so that it labels them by the time they are valid at. A lead may also be a coordinate
    along ``time`` (one per state); ``lead_time`` counts as ``prediction_timedelta``, as
    :func:`validate` renames it.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        States; not modified.
    what : str, default "the states"
        What ``ds`` is, to start the error messages.
    error : type of Exception, default SchemaError
        The error raised (a caller that documents another class passes it).

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        ``ds`` itself where it holds no lead, a lead dim (a forecast of several leads:
        the caller refuses it or takes it whole) or times that are not datetime64 or
        lie outside ``datetime64[ns]`` (which :func:`validate` names); otherwise a copy
        whose ``time`` is ``time + lead``, without the lead (and without a
        ``valid_time`` coordinate, which xfuxi's netCDF writer and cfgrib add). A lead of
        zero just drops the lead.

    Raises
    ------
    SchemaError
        (or ``error``) The lead is not a time span (``timedelta64``: a plain number would
        be nanoseconds), or it lies along another dim than ``time``; a valid time lies
        beyond ``datetime64[ns]`` (past 2262-04-11: :func:`add_lead`).

    Examples
    --------
    >>> t = pd.to_datetime(["2000-01-01T00", "2000-01-01T06"])
    >>> fc = xr.Dataset({"x": (("time", "prediction_timedelta"), [[1.0, 2.0], [3.0, 4.0]])},
    ...                 coords={"time": t, "prediction_timedelta": pd.to_timedelta([0, 6], "h")})
    >>> states = states_at_valid_times(fc.sel(prediction_timedelta="6h"))
    >>> [str(v) for v in states["time"].values], "prediction_timedelta" in states.coords
    (['2000-01-01T06:00:00.000000000', '2000-01-01T12:00:00.000000000'], False)
    >>> states_at_valid_times(fc) is fc  # a lead dim: as it is
    True
    """
    name = next((n for n in _LEAD_NAMES if n in ds.coords and n not in ds.dims), None)
    if name is None or any(n in ds.dims for n in _LEAD_NAMES):
        return ds
    lead = ds[name]
    if lead.dtype.kind != "m":  # 6 would be read as 6 ns
        raise error(
            f"{what}: {name} must be a time span (timedelta64), the lead of the forecast "
            f"the states come from; got dtype {lead.dtype}: e.g. np.timedelta64(6, 'h')"
        )
    if set(lead.dims) - {"time"}:
        raise error(
            f"{what}: {name} lies along {list(lead.dims)}; the lead of states is one value, "
            "or one per time (along 'time')"
        )
    if "time" in ds.coords and (
        ds["time"].dtype.kind != "M" or time_dtype_problem(ds["time"]) is not None
    ):  # cftime dates, strings, times beyond datetime64[ns]: validate names the problem
        return ds
    out = ds.drop_vars([name, "valid_time"], errors="ignore")
    if "time" not in out.coords:
        return out
    time = out["time"]
    lead_ns = lead.variable.astype("timedelta64[ns]")
    valid = time.variable + lead_ns
    # (time + lead past 2262 wrapped to 1677; a lead is one value, or one per time)
    add_lead(time.values, lead_ns.values, f"{what}: the valid time (time + {name})", error)
    attrs = dict(time.attrs)
    if attrs.get("standard_name") == "forecast_reference_time":  # now the valid time
        attrs.pop("standard_name")
        attrs.pop("long_name", None)
    new = xr.Variable(time.dims, valid.values, attrs, time.encoding)
    return out.assign_coords(time=new)


def _fix_time(ds: xr.Dataset, dim: str) -> xr.Dataset:
    if ds[dim].ndim != 1:
        raise SchemaError(f"coordinate {dim!r} must be one-dimensional")
    problem = time_dtype_problem(ds[dim], dim) if dim == "time" else None
    if problem is not None:  # before .values, which drops a time zone (with a warning)
        raise SchemaError(problem)
    values = ds[dim].values
    if dim == "time" and values.dtype.kind != "M":
        raise SchemaError(f"coordinate 'time' must be datetime64; got dtype {values.dtype}")
    if dim == "prediction_timedelta" and values.dtype.kind != "m":
        raise SchemaError(
            f"coordinate 'prediction_timedelta' must be timedelta64; got dtype {values.dtype}"
        )
    if np.isnat(values).any():
        raise SchemaError(
            f"coordinate {dim!r} holds {int(np.isnat(values).sum())} missing value(s) (NaT); "
            "every time must be known: select the others first"
        )
    if values.size != np.unique(values).size:
        import pandas as pd  # xarray's own dependency

        ordered = np.sort(values)
        dup = ordered[np.nonzero(np.diff(ordered) == np.timedelta64(0))[0]]
        shown = [str(pd.Timestamp(v)) if dim == "time" else str(pd.Timedelta(v)) for v in dup[:5]]
        raise SchemaError(f"coordinate {dim!r} has duplicated values: {shown}")
    if values.size > 1 and not np.all(np.diff(values) > np.timedelta64(0)):
        ds = ds.sortby(dim)
    return ds


#: the attributes that say what data came from: what a forecast started from
#: (``initial_conditions``) or an analysis's background (``background_source``) first, then the
#: data's own ``title`` and ``source``
PROVENANCE_KEYS: tuple[str, ...] = ("initial_conditions", "background_source", "title", "source")


def input_source(attrs: Any) -> str | None:
    """What data came from, as its attributes say (the first of :data:`PROVENANCE_KEYS`
    set), or None: forecasts and analyses keep it as ``initial_conditions`` /
    ``background_source``, so that, for example, a map of a forecast of the embedded world
    knows that world has no continents, and a forecast from a forecast keeps the origin.

    Examples
    --------
    >>> input_source({"title": "Held-Suarez world", "source": "dinosaur"})
    'Held-Suarez world'
    >>> input_source({"source": "xfuxi.forecast", "initial_conditions": "ERA5"})
    'ERA5'
    >>> input_source({}) is None
    True
    """
    for key in PROVENANCE_KEYS:
        value = attrs.get(key) if attrs is not None else None
        if value:
            return str(value)
    return None


def canonical_order(dims: Iterable[str]) -> tuple[str, ...]:
    """Order ``dims`` canonically: unknown dims first, then :data:`CANONICAL_DIMS`."""
    dims = tuple(dims)
    return tuple(d for d in dims if d not in CANONICAL_DIMS) + tuple(
        d for d in CANONICAL_DIMS if d in dims
    )


#: the names of an ensemble's member dim: xfuxi's ``number`` and the aliases that
#: :func:`validate` renames to it
ENSEMBLE_DIMS: tuple[str, ...] = ("number", "member", "realization")

#: the key of ``Dataset.encoding`` where :func:`validate` records the name of the ensemble dim
#: it renamed to ``number`` (``member`` or ``realization``), for messages in the user's terms
_ENSEMBLE_DIM_KEY = "xfuxi_ensemble_dim"


def check_state_dims(
    ds: xr.Dataset, what: str, number_advice: str, *, ensemble_only: bool = False
) -> None:
    """Raise a :class:`SchemaError` naming the dims of ``ds`` besides time, level, latitude and
    longitude: states are one per time. ``what`` names the data (``"the initial
    conditions"``); ``number_advice`` says what to do with an ensemble's ``number`` dim.

    An ensemble dim (``number``, or ``member`` / ``realization``, which :func:`validate`
    renames to ``number``) is named as the user gave it: the message and the advice speak of
    ``member`` where the data came with one. With ``ensemble_only``, other dims are allowed.
    A forecast's lead (``prediction_timedelta``) is named with the advice to select one
    lead: the callers take such states at their valid times (:func:`states_at_valid_times`).

    Examples
    --------
    >>> ds = xr.Dataset({"t": (("member", "time"), [[1.0]])})
    >>> check_state_dims(ds.rename(member="x"), "the states", "")
    Traceback (most recent call last):
    ...
    xfuxi.data.schema.SchemaError: the states have dims ['x'] besides time, level, \
latitude and longitude; select one value of each (e.g. ds.isel(x=0))
    >>> check_state_dims(ds, "the states", "select one (ds.isel(number=0))")
    Traceback (most recent call last):
    ...
    xfuxi.data.schema.SchemaError: the states have an ensemble dim 'member' (1 members); \
select one (ds.isel(member=0))
    """
    for dim in ENSEMBLE_DIMS:
        if dim in ds.dims:
            recorded = ds.encoding.get(_ENSEMBLE_DIM_KEY) if dim == "number" else None
            given = str(recorded) if recorded in ENSEMBLE_DIMS else dim
            advice = number_advice
            if given != "number":  # the advice speaks of 'number': put the user's name
                advice = advice.replace("number=", f"{given}=").replace("'number'", repr(given))
            raise SchemaError(
                f"{what} have an ensemble dim {given!r} ({ds.sizes[dim]} members); " + advice
            )
    if ensemble_only:
        return
    extra = [str(d) for d in ds.dims if d not in ("time", "level", "latitude", "longitude")]
    if extra:
        advice = f"select one value of each (e.g. ds.isel({extra[0]}=0))"
        if "prediction_timedelta" in extra:  # a forecast: its states are valid at time + lead
            others = [d for d in extra if d != "prediction_timedelta"]
            advice = (
                "select one lead (e.g. ds.sel(prediction_timedelta='6h')), whose states are "
                "taken at their valid times (time + lead)"
                + (f", and one value of each other (e.g. ds.isel({others[0]}=0))" if others else "")
            )
        raise SchemaError(
            f"{what} have dims {extra} besides time, level, latitude and longitude; {advice}"
        )


def native_byte_order(obj: xr.Dataset | xr.DataArray) -> xr.Dataset | xr.DataArray:
    """``obj`` with its values and coordinates in the machine's byte order.

    Big-endian values (``>f4``, ``>f8``, ``>i4``: h5py, ``np.fromfile``, netCDF3 and GRIB
    conversions, arrays built by hand) are computed with as they are by NumPy, but pandas
    refuses them as an index ("Big-endian buffer not supported") and flox's grouped sums
    fail on them. Each variable in another byte order is converted (dask-backed ones
    lazily), keeping its attributes and encoding; the others are left as they are.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Not modified.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        ``obj`` itself where every variable is in the native byte order, else a shallow
        copy with the converted variables (the values are the same).

    Examples
    --------
    >>> lat = np.array([-10.0, 10.0], dtype=">f8")
    >>> ds = xr.Dataset({"t": ("latitude", np.array([1.0, 2.0], dtype=">f4"))},
    ...                 coords={"latitude": lat})
    >>> out = native_byte_order(ds)
    >>> out["t"].dtype.isnative, out["latitude"].dtype.isnative, ds["t"].dtype.isnative
    (True, True, False)
    >>> native_byte_order(out) is out
    True
    """

    def native(var: xr.Variable) -> xr.Variable:
        new = var.astype(var.dtype.newbyteorder("="))
        new.attrs, new.encoding = dict(var.attrs), dict(var.encoding)
        return new

    def foreign(var: xr.Variable) -> bool:
        return isinstance(var.dtype, np.dtype) and not var.dtype.isnative

    coords = {k: native(c.variable) for k, c in obj.coords.items() if foreign(c.variable)}
    if isinstance(obj, xr.DataArray):
        out = obj.copy(deep=False, data=native(obj.variable).data) if foreign(obj.variable) else obj
    else:
        values = {k: native(v.variable) for k, v in obj.data_vars.items() if foreign(v.variable)}
        out = obj.assign(values) if values else obj
    return out.assign_coords(coords) if coords else out


def check_unpacked(ds: xr.Dataset | xr.DataArray) -> None:
    """Raise :class:`SchemaError` naming the first data variable of ``ds`` (or the
    DataArray ``ds``) still packed.

    Read with ``mask_and_scale=False`` (or ``decode_cf=False``), a packed variable keeps
    ``scale_factor``, ``add_offset`` or ``_Unsigned`` in its attributes (decoded, xarray
    moves them into its encoding) and holds the stored integer counts, not physical values:
    a mean temperature of -1323 K. The message says how to decode it.

    Raises
    ------
    SchemaError
        A data variable (or the DataArray) whose attributes hold ``scale_factor``,
        ``add_offset`` or ``_Unsigned`` (:data:`PACKING_ATTRS`).

    Examples
    --------
    >>> t = xr.DataArray(np.array([100], "int16"), dims="x", attrs={"scale_factor": 0.01})
    >>> check_unpacked(xr.Dataset({"t": t}))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xfuxi.data.schema.SchemaError: variable 't' is still packed: its attributes hold ...
    """
    items = [(ds.name, ds)] if isinstance(ds, xr.DataArray) else ds.data_vars.items()
    for name, var in items:
        packing = [k for k in PACKING_ATTRS if k in var.attrs]
        if packing:
            raise SchemaError(
                f"variable {name!r} is still packed: its attributes hold {packing}, so its "
                f"{var.dtype} values are stored counts, not physical values; decode it "
                "first: ds = xr.decode_cf(ds), or open the file without mask_and_scale=False "
                "or decode_cf=False"
            )


def require_dataset(ds: Any, what: str) -> None:
    """Raise a ``TypeError`` naming ``what`` (e.g. ``"initial conditions"``) unless ``ds`` is
    an :class:`xarray.Dataset` (a DataArray gets the hint of how to make one).

    Examples
    --------
    >>> require_dataset(xr.DataArray([1.0], dims="x"), "training data")
    Traceback (most recent call last):
    ...
    TypeError: training data must be an xarray.Dataset with a variable per model variable; \
make one with da.to_dataset(name=...) or pass the Dataset the DataArray came from; got \
<class 'xarray.core.dataarray.DataArray'>
    """
    if isinstance(ds, xr.Dataset):
        return
    hint = (
        " with a variable per model variable; make one with da.to_dataset(name=...) or pass "
        "the Dataset the DataArray came from"
        if isinstance(ds, xr.DataArray)
        else ""
    )
    raise TypeError(f"{what} must be an xarray.Dataset{hint}; got {type(ds)}")


@overload
def validate(
    ds: xr.Dataset,
    *,
    variables: Sequence[str] | None = ...,
    levels: Sequence[float] | None = ...,
    allow_nan: bool = ...,
    require_time: bool = ...,
    check_ranges: bool = ...,
    require_grid: bool = ...,
) -> xr.Dataset: ...
@overload
def validate(
    ds: xr.DataArray,
    *,
    variables: Sequence[str] | None = ...,
    levels: Sequence[float] | None = ...,
    allow_nan: bool = ...,
    require_time: bool = ...,
    check_ranges: bool = ...,
    require_grid: bool = ...,
) -> xr.DataArray: ...
def validate(
    ds: xr.Dataset | xr.DataArray,
    *,
    variables: Sequence[str] | None = None,
    levels: Sequence[float] | None = None,
    allow_nan: bool = True,
    require_time: bool = False,
    check_ranges: bool = False,
    require_grid: bool = True,
) -> xr.Dataset | xr.DataArray:
    """Return a canonical copy of ``ds`` or raise :class:`SchemaError` naming the problem.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Gridded data on pressure levels and/or single levels.
    variables : sequence of str, optional
        Variables that must be present (long names; ERA5 short names are renamed first).
    levels : sequence of float, optional
        Allowed pressure levels in hPa; by default the 37 ERA5 levels.
    allow_nan : bool, default True
        If False, any NaN in a data variable is an error (model inputs must be complete).
        Dask-backed data stay lazy: their NaN counts are computed together, in one pass
        over the data, and the result is still dask-backed.
    require_time : bool, default False
        If True, a ``time`` dimension must be present.
    check_ranges : bool, default False
        Check that the variables of :data:`PHYSICAL_RANGES` (temperatures in K, surface and
        sea-level pressure in Pa) hold physically possible values, which catches °C taken
        as K or hPa taken as Pa. Off by default because anomalies, differences and
        increments carry the same names; where states enter a model with normalization
        statistics, they are checked against those anyway
        (:func:`xfuxi.models.base.check_plausible`). Data in memory are checked at once;
        dask-backed data lazily, when (and each time) they are computed.
    require_grid : bool, default True
        If True, ``latitude`` and ``longitude`` dimensions must be present. If False, data
        without them (a score averaged over the grid, by lead and level) are accepted;
        whichever of the two is present is still checked and ordered.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        A new object that shares no memory with ``ds`` (editing it never edits ``ds``;
        dask arrays stay lazy), its values and coordinates in the machine's byte order
        (big-endian ones converted: :func:`native_byte_order`): aliases renamed
        (``lat``, ``valid_time``, ``pressure_level``, ``member``, ERA5 short names, ...; a
        DataArray named by an ERA5 short name comes back under the long name), latitude
        ascending, longitude wrapped to 0..360 and ascending, levels and times ascending,
        dimensions in canonical order. The variables' encodings keep how values are stored (times'
        ``units`` and ``calendar``, ``dtype``, packing, ``_FillValue``) but not the storage
        layout of the file or store read (chunks, compressors, filters:
        :data:`VALUE_ENCODINGS`), so that ``to_zarr`` and ``to_netcdf`` of the result
        (or of what is computed from it) choose their own.

    Raises
    ------
    SchemaError
        Missing variable or dimension, non-monotonic or duplicated coordinate, unknown
        level, NaN where not allowed, wrong units (of a field; a score, with a ``metric``
        attribute on the variable or the Dataset, has units of its own), wrong time dtype
        (cftime dates and times with a time zone are named, with the conversion), a complex
        data variable, a data variable of objects or strings on the grid (latitude,
        longitude or level),
        a value outside its physical range, a ``valid_time`` beside ``time`` that is not
        ``time`` + the scalar lead, times outside the years 1678 to 2261 that
        ``datetime64[ns]`` holds (``datetime64[s]`` of a run dated 2300, which xarray
        keeps: xfuxi's times are computed in ns), a data variable still packed (its
        attributes hold ``scale_factor``, ``add_offset`` or ``_Unsigned``: read with
        ``mask_and_scale=False``; the message says how to decode it).

    Notes
    -----
    Canonical fixes (sorting, wrapping longitudes, renaming) are applied to a copy; nothing
    is dropped or interpolated. ``z`` without a pressure level is renamed
    ``geopotential_at_surface`` (:func:`surface_geopotential`), other ERA5 short names to
    their long names. A forecast's ``valid_time`` coordinate (as xfuxi's netCDF writer
    and cfgrib add it) beside ``time`` and a lead dim, or beside a scalar lead (one lead
    selected: ``fc.sel(prediction_timedelta="12h")``) whose ``time + lead`` it equals, is
    kept as it is, not renamed to ``time``. Closing the result (``close()``, ``with``)
    closes what the input reads (its own ``close``: the files of a lazily opened Dataset).
    See the data conventions in the documentation (docs/design.md).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.full((2, 3), 250.0), dims=("lat", "lon"),
    ...                   coords={"lat": [10.0, -10.0], "lon": [-90.0, 0.0, 90.0]},
    ...                   name="temperature")
    >>> out = validate(da.to_dataset())
    >>> out.latitude.values.tolist(), out.longitude.values.tolist()
    ([-10.0, 10.0], [0.0, 90.0, 270.0])
    >>> da.fuxi.validate().dims  # a DataArray through the accessor
    ('latitude', 'longitude')
    """
    from ..config import check_flag

    switches = {"allow_nan": allow_nan, "require_time": require_time,
                "check_ranges": check_ranges, "require_grid": require_grid}  # fmt: skip
    for flag, value in switches.items():
        check_flag(value, flag)  # allow_nan="no" allowed NaN
    if isinstance(ds, xr.DataArray):
        name = ds.name if ds.name is not None else "__xfuxi_unnamed__"
        out = validate(
            ds.to_dataset(name=name),
            variables=None,
            levels=levels,
            allow_nan=allow_nan,
            require_time=require_time,
            check_ranges=check_ranges,
            require_grid=require_grid,
        )
        # the one variable under its canonical name: a DataArray named "t" or "z" comes
        # back as "temperature" / "geopotential_at_surface" (looking it up by the name it
        # came with raised a bare KeyError)
        (renamed,) = out.data_vars
        da = out[renamed]
        return da.rename(None) if ds.name is None else da
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"expected an xarray.Dataset or DataArray, got {type(ds).__name__}")

    # a deep copy: the result never shares memory with the input (dask arrays stay lazy);
    # big-endian values in the machine's order (pandas refuses them as an index)
    out = surface_geopotential(_rename_aliases(native_byte_order(ds.copy(deep=True))))
    renamed_ensemble = [d for d in ("member", "realization") if d in ds.dims]
    if renamed_ensemble and "number" in out.dims:  # messages name the dim the user gave
        out.encoding = {**out.encoding, _ENSEMBLE_DIM_KEY: renamed_ensemble[0]}
    short = {k: v for k, v in ERA5_SHORT_NAMES.items() if k in out.data_vars}
    for src, dst in short.items():
        if dst in out.data_vars:
            raise SchemaError(f"data has both {src!r} and {dst!r}")
    if short:
        out = out.rename(short)

    for dim in ("latitude", "longitude"):
        if dim not in out.dims and not require_grid:
            continue
        if dim not in out.dims:
            raise SchemaError(f"missing dimension {dim!r}; got dims {sorted(map(str, out.dims))}")
        if dim not in out.coords:  # positions 0, 1, 2, ... are not degrees
            raise SchemaError(
                f"dimension {dim!r} has no coordinate values; assign them in degrees "
                f"(ds.assign_coords({dim}=...))"
            )
        if out.sizes[dim] == 0:  # (NumPy's error of a reduction over nothing otherwise)
            raise SchemaError(f"dimension {dim!r} is empty: the data hold no grid point")
    if require_time and "time" not in out.dims:
        raise SchemaError(f"missing dimension 'time'; got dims {sorted(map(str, out.dims))}")
    if variables is not None:
        missing = [v for v in variables if v not in out.data_vars]
        if missing:
            raise SchemaError(
                f"missing variable(s) {missing}; the data has {sorted(map(str, out.data_vars))}"
            )

    if "latitude" in out.dims:  # always, unless require_grid=False
        out = _fix_latitude(out)
    if "longitude" in out.dims:
        out = _fix_longitude(out)
    if "level" in out.dims:
        out = _fix_level(out, levels)
    for dim in ("time", "prediction_timedelta"):
        if dim in out.dims:
            out = _fix_time(out, dim)

    check_unpacked(out)
    lazy_nan_counts = {}
    for name in list(out.data_vars):
        var = out[name]
        if var.dtype.kind == "c":  # its plausibility, NaN and range checks would fail raw
            raise SchemaError(
                f"variable {name!r} is complex ({var.dtype}); xfuxi's data are real numbers: "
                f"keep the real part (ds[{str(name)!r}].real) or the modulus (abs) first"
            )
        if var.dtype.kind in "OUS" and set(var.dims) & {"latitude", "longitude", "level"}:
            # a field of objects or strings: regridding would pick neighbours, not interpolate
            raise SchemaError(
                f"variable {name!r} holds {var.dtype} data on the grid; xfuxi's fields are "
                f"numbers: convert numbers held as objects first "
                f"(ds[{str(name)!r}].astype('float64'))"
            )
        expected = VARIABLES.get(str(name))
        given = var.attrs.get("units")
        # a score of the field (xfuxi.verify's ``metric`` attribute) has units of its own:
        # K**2 of an MSE, nat of an ignorance
        score = "metric" in var.attrs or "metric" in out.attrs
        if (
            expected is not None
            and given is not None
            and not score
            and not same_unit(expected[0], given)
        ):
            raise SchemaError(
                f"variable {name!r} has units {given!r}; expected {expected[0]!r}"
                + unit_hint(expected[0], str(given))
            )
        if check_ranges and str(name) in PHYSICAL_RANGES and var.dtype.kind in "iuf":
            if var.chunks is not None:  # dask: check each block when it is computed
                check = functools.partial(_check_range_block, name=str(name))
                var = var.copy(data=var.data.map_blocks(check, dtype=var.dtype))
                out[name] = var
            else:
                _check_range(str(name), np.asarray(var.values))
        if not allow_nan and var.dtype.kind == "f":
            if var.chunks is not None:
                lazy_nan_counts[name] = np.isnan(var.data).sum()
                continue
            _raise_if_nan(name, int(np.isnan(var.values).sum()))
    if lazy_nan_counts:  # one pass over the dask data for all variables together
        import dask

        (counts,) = dask.compute(lazy_nan_counts)
        for name, n_nan in counts.items():
            _raise_if_nan(name, int(n_nan))

    out = out.transpose(*canonical_order(out.dims))
    _keep_value_encodings(out)
    # the files a lazy input reads stay open for the result: closing it closes them
    out.set_close(ds.close)
    return out


#: the attributes of a variable still packed (read with ``mask_and_scale=False`` or
#: ``decode_cf=False``): decoded, xarray moves them into the encoding; :func:`validate`
#: refuses data variables that carry them
PACKING_ATTRS: tuple[str, ...] = ("scale_factor", "add_offset", "_Unsigned")

#: the encoding keys :func:`validate` keeps: how values are stored (times' units and
#: calendar, a packing, the fill value), not where (chunks, codecs of a zarr store)
VALUE_ENCODINGS: frozenset[str] = frozenset(
    {"units", "calendar", "dtype", "scale_factor", "add_offset", "_FillValue", "missing_value"}
)


def _keep_value_encodings(ds: xr.Dataset) -> None:
    """Drop the storage layout (chunks, compressors, filters) from the encodings of ``ds``'s
    variables, in place: a zarr-v2 store's codecs made ``to_zarr`` of the data (and of
    what is computed from them) fail in zarr's default format 3 (``TypeError: Expected a
    BytesBytesCodec``), and its chunks need not fit the data after a selection."""
    for var in ds.variables.values():
        if var.encoding and not VALUE_ENCODINGS.issuperset(var.encoding):
            var.encoding = {k: v for k, v in var.encoding.items() if k in VALUE_ENCODINGS}


def _raise_if_nan(name: Hashable, n_nan: int) -> None:
    if n_nan:
        raise SchemaError(
            f"variable {name!r} has {n_nan} NaN value(s); model inputs must be complete"
        )


def physical_range_error(name: str, lowest: float, highest: float) -> str:
    """Say why values from ``lowest`` to ``highest`` of variable ``name`` are impossible.

    Parameters
    ----------
    name : str
        Long name of the variable; only those in :data:`PHYSICAL_RANGES` are checked.
    lowest, highest : float
        The smallest and largest finite value of the data.

    Returns
    -------
    str
        The message (naming the variable, its values, the physical range and the likely
        unit mistake), or ``""`` if the values are possible or ``name`` has no range.

    Examples
    --------
    >>> physical_range_error("temperature", 210.0, 310.0)
    ''
    >>> physical_range_error("temperature", -60.0, 35.0)[:61]
    "variable 'temperature' has values from -60 to 35, outside the"
    """
    bounds = PHYSICAL_RANGES.get(str(name))
    if bounds is None or not (np.isfinite(lowest) and np.isfinite(highest)):
        return ""
    low, high = bounds
    if low <= lowest and highest <= high:
        return ""
    units = VARIABLES[str(name)][0]
    cause = likely_unit_mistake(name, (lowest + highest) / 2, (low + high) / 2, (high - low) / 2)
    hint = f" (given in {cause}?)" if cause else ""
    return (
        f"variable {name!r} has values from {lowest:g} to {highest:g}, outside the physical "
        f"range {low:g}..{high:g} {units}{hint}; check its units"
    )


def _check_range(name: str, values: np.ndarray) -> None:
    """Raise SchemaError if finite ``values`` of variable ``name`` leave its physical range."""
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size:
        message = physical_range_error(name, float(finite.min()), float(finite.max()))
        if message:
            raise SchemaError(message)


def _check_range_block(block: np.ndarray, *, name: str) -> np.ndarray:
    _check_range(name, np.asarray(block))
    return block
