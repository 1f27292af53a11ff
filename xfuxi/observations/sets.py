"""Observations: a Dataset layout, synthetic networks drawn from a truth, and screening.

An observation Dataset has one dim ``obs``; coordinates ``time`` (datetime64),
``latitude``, ``longitude`` (degrees), ``level`` (hPa, NaN for single-level variables) and
``variable`` (WeatherBench2 long name); data variables ``value`` and ``error`` (the standard
deviation of the observation error, in the variable's units).

Longitudes are accepted in [-180, 360] degrees and taken modulo 360; any other longitude
(400, 720.5, ...) is refused with an error, never wrapped.

Synthetic networks interpolate a truth Dataset (with the same operator as the assimilation,
:mod:`xfuxi.observations.operator`) and add Gaussian noise of std ``error`` from a seeded
generator. :func:`screen_observations` rejects what cannot be used — NaN value, NaN or
non-positive error, unknown variable or level, outside the grid, outside the window — and
counts the rejections per reason, or raises in strict mode. It refuses copies of an
observation (same variable, level, time, position, value and error, see
:func:`duplicated_observations`): used as independent ones, they would weigh that point
several times over; different reports at the same place and time are used, with a warning.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..config import check_flag, is_integer, user_stacklevel
from ..data.channels import channels_of, stack
from ..data.schema import (
    ERA5_SHORT_NAMES,
    _shift_example,
    parse_time,
    parse_times,
    refuse_lead_dim,
    require_dataset,
    states_at_valid_times,
    time_dtype_problem,
    validate,
)
from ..docstrings import docstring_parts
from .interpolation import (
    LONGITUDE_RANGE,
    REJECT_REASONS,
    ObservationWeights,
    covered_region,
    observation_stencils,
    stencil_weights,
)

__all__ = [
    "ObservationError",
    "ObservationsRejectedError",
    "duplicated_observations",
    "make_observations",
    "radiosonde_observations",
    "random_observations",
    "region_observations",
    "screen_observations",
    "single_observation",
    "validate_observations",
]

log = logging.getLogger(__name__)

#: docstring parts shared by the synthetic networks (the truth, and a truth for examples)
_doc = docstring_parts(
    {
        "truth": """\
truth : xarray.Dataset
    Canonical data with a ``time`` dim: the world observed. States of a forecast at one
    lead (a scalar ``prediction_timedelta``, as ``fc.sel(prediction_timedelta="6h")``
    leaves) are valid at ``time + lead`` and observed at those times
    (:func:`xfuxi.data.schema.states_at_valid_times`).""",
        "example_truth": """\
>>> import xarray as xr
>>> truth = xr.Dataset({"temperature": (("time", "latitude", "longitude"),
...                     np.zeros((1, 3, 4)))},
...                    coords={"time": [np.datetime64("2000-01-01", "ns")],
...                            "latitude": [-60.0, 0.0, 60.0],
...                            "longitude": [0, 90, 180, 270.0]})""",
    }
)


class ObservationError(ValueError):
    """Raised for malformed observations, or bad observations in strict mode."""


class ObservationsRejectedError(ObservationError):
    """Raised where every observation failed the background check: nothing would be
    assimilated (a cycling driver takes the background as the analysis instead)."""


def make_observations(
    value: Any,
    *,
    error: Any,
    time: Any,
    latitude: Any,
    longitude: Any,
    variable: Any,
    level: Any = None,
) -> xr.Dataset:
    """Assemble an observation Dataset from 1-D arrays (scalars are broadcast).

    Parameters
    ----------
    value : array-like (m,)
        Observed values.
    error : float or array-like (m,)
        Observation-error standard deviation.
    time, latitude, longitude, variable : scalar or array-like (m,)
        ``time``: dates and times (ISO strings of any precision, datetimes, datetime64;
        not numbers); a missing one (NaT) is kept, as a NaN value is.
    level : scalar or array-like (m,), optional
        Pressure (hPa); NaN or None for single-level variables.

    Returns
    -------
    xarray.Dataset
        Dim ``obs``, coords ``time, latitude, longitude, level, variable``, data ``value,
        error``.

    Raises
    ------
    ObservationError
        ``value`` is not 1-D, another argument is neither a scalar nor of ``value``'s
        length, a latitude lies outside [-90, 90] degrees or a longitude outside [-180, 360]
        degrees, a time is not a date and time (a number, which pandas read as
        nanoseconds after 1970, or an unreadable string: named) or carries a time zone.

    Notes
    -----
    A NaN value (a missing report), a NaN or non-positive error and a NaN position are
    kept, and so are the masked values of NumPy masked arrays, as NaN (netCDF4 and h5py
    give masked arrays for a ``_FillValue``; ``np.ma.masked_where(qc > 0, value)`` marks
    failed reports): :func:`screen_observations` rejects such observations and counts them
    per reason (``nan_value``, ``bad_error``, ``outside_grid``), as the assimilation does.

    Examples
    --------
    >>> obs = make_observations([5.0, 6.0], error=1.0, time="2000-01-01", latitude=[10, 20],
    ...                         longitude=[0, 90], variable="temperature", level=500)
    >>> obs.sizes["obs"], obs["level"].values.tolist()
    (2, [500.0, 500.0])
    """
    value = np.atleast_1d(_unmasked(value, "value"))
    if value.ndim != 1:
        raise ObservationError(f"value must be 1-D, got shape {value.shape}")
    m = value.size

    def arr(x: Any, name: str, dtype: Any) -> np.ndarray:
        if np.ma.isMaskedArray(x):  # masked values are missing (NaN), as netCDF4 masks them
            x = _unmasked(x, name)
        a = np.asarray(x if x is not None else np.nan)
        if a.ndim == 0:
            a = np.full(m, a.item() if a.dtype != object else a.item())
        a = a.astype(dtype)
        if a.shape != (m,):
            raise ObservationError(f"{name} has shape {a.shape}; expected ({m},)")
        return a

    if np.ma.isMaskedArray(level):  # a masked level: NaN, as a single-level variable's
        level = _unmasked(level, "level")
    level_arr = np.asarray(level if level is not None else np.nan, dtype=object)
    if level_arr.ndim:
        level_arr = np.array([np.nan if v is None else v for v in level_arr], dtype="float64")
    ds = xr.Dataset(
        {
            "value": ("obs", value),
            "error": ("obs", arr(error, "error", "float64")),
        },
        coords={
            "time": ("obs", arr(_as_times(time), "time", "M8[ns]")),
            "latitude": ("obs", arr(latitude, "latitude", "float64")),
            "longitude": ("obs", arr(longitude, "longitude", "float64")),
            "level": ("obs", arr(level_arr, "level", "float64")),
            "variable": ("obs", arr(variable, "variable", str)),
        },
    )
    lat = ds["latitude"].values
    bad = np.flatnonzero(np.abs(lat) > 90.0)  # (NaN is not: screened as outside the grid)
    if bad.size:
        raise ObservationError(
            f"{bad.size} observation latitude(s) outside [-90, 90] degrees, e.g. "
            f"{lat[bad[:5]].tolist()} at obs index {bad[:5].tolist()}"
        )
    return validate_observations(ds)


def _unmasked(values: Any, name: str) -> np.ndarray:
    """``values`` as float64, the masked ones of a NumPy masked array (netCDF4 and h5py give
    them for a ``_FillValue``; ``np.ma.masked_where`` marks failed reports) NaN: missing,
    as :func:`make_observations` documents (``np.asarray`` kept the values under the
    mask, a fill value -999 among them)."""
    if np.ma.isMaskedArray(values):
        try:
            return np.ma.filled(np.ma.asarray(values).astype("float64"), np.nan)
        except (TypeError, ValueError):
            raise ObservationError(f"{name} must hold numbers; got {values!r}") from None
    return np.asarray(values, dtype="float64")


def _positive_count(value: Any, name: str) -> int:
    """``value`` as a positive int, else an ObservationError naming ``name``."""
    if not is_integer(value):
        raise ObservationError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ObservationError(f"{name} must be a positive integer (at least 1), got {value}")
    return int(value)


def _as_times(time: Any) -> np.ndarray:
    """``time`` of :func:`make_observations` as datetime64[ns] (a scalar for a scalar);
    a missing time (NaT, None) is kept: screened as outside every window."""
    t = parse_times(time, "time", error=ObservationError, allow_missing=True).values
    return t[0] if np.ndim(time) == 0 else t


def _one_time(time: Any) -> np.ndarray:
    """``time`` of :func:`single_observation`: one date and time, as datetime64[ns] (1,)."""
    return np.array([parse_time(time, "time", error=ObservationError).to_datetime64()])


def validate_observations(obs: xr.Dataset) -> xr.Dataset:
    """Check the layout of an observation Dataset; return it with canonical dtypes.

    Variables named as :func:`~xfuxi.data.schema.validate` renames them in gridded data
    (ERA5 short names: ``t`` → ``temperature``, ``z`` → ``geopotential``, or
    ``geopotential_at_surface`` without a level) are given their WeatherBench2 names in the
    result (``obs`` is not modified).

    Raises
    ------
    ObservationError
        Not a Dataset, no ``obs`` dim, a missing / mis-shaped coordinate or variable, times
        that are not datetime64 (strings, cftime dates, or times carrying a time zone: the
        message names the conversion), or a longitude outside [-180, 360] degrees
        (longitudes are taken modulo 360 within that range; 400 or 720.5 are refused, not
        wrapped), or levels in Pa (a ``level`` with units "Pa", or above
        :data:`MAX_LEVEL_HPA`: each would be rejected as an unknown level).

    Examples
    --------
    >>> obs = make_observations([1.0], error=0.5, time="2000-01-01", latitude=0, longitude=0,
    ...                         variable="temperature", level=850)
    >>> validate_observations(obs) is not obs
    True
    """
    if not isinstance(obs, xr.Dataset):
        raise ObservationError(f"observations must be an xarray.Dataset, got {type(obs).__name__}")
    if "obs" not in obs.dims:
        raise ObservationError(f"observations need a dim 'obs'; got dims {tuple(obs.dims)}")
    out = obs.copy()
    for name in ("value", "error", "time", "latitude", "longitude", "level", "variable"):
        if name not in out.variables:
            raise ObservationError(f"observations lack {name!r}")
        if out[name].dims != ("obs",):
            raise ObservationError(f"{name!r} must have dims ('obs',), got {out[name].dims}")
    problem = time_dtype_problem(out["time"], "time")
    if problem is not None:  # before any cast or .values, which drop a time zone
        raise ObservationError(_observation_time_fix(problem))
    for name in ("value", "error", "latitude", "longitude", "level"):
        out[name] = out[name].astype("float64")
    if not np.issubdtype(out["time"].dtype, np.datetime64):
        raise ObservationError(f"'time' must be datetime64, got {out['time'].dtype}")
    out["variable"] = out["variable"].astype(str)
    names = _canonical_variables(out["variable"].values, out["level"].values)
    if not np.array_equal(names, out["variable"].values):  # a new array: obs is not changed
        out["variable"] = out["variable"].copy(data=names)
    lon = out["longitude"].values
    lo, hi = LONGITUDE_RANGE
    bad = np.flatnonzero(np.isfinite(lon) & ((lon < lo) | (lon > hi)))
    if bad.size:
        raise ObservationError(
            f"{bad.size} observation longitude(s) outside [{lo:g}, {hi:g}] degrees, e.g. "
            f"{lon[bad[:5]].tolist()} at obs index {bad[:5].tolist()}; longitudes are taken "
            "modulo 360 only within that range (give them in [-180, 360])"
        )
    level = out["level"].values
    units = str(obs["level"].attrs.get("units", "hPa")).strip()
    high = np.flatnonzero(np.isfinite(level) & (level > MAX_LEVEL_HPA))
    if units in ("Pa", "pascal") or high.size:
        given = f"'level' has units {units!r}" if units in ("Pa", "pascal") else (
            f"{high.size} observation level(s) above {MAX_LEVEL_HPA:g} hPa, e.g. "
            f"{level[high[:5]].tolist()} at obs index {high[:5].tolist()}"
        )  # fmt: skip
        raise ObservationError(
            f"{given}: observation levels are pressures in hPa (these look like Pa: divide "
            "them by 100); as they were, each would be rejected as an unknown level"
        )
    return out


def _canonical_variables(names: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The observed variables' names as :func:`~xfuxi.data.schema.validate` names gridded
    data's: ERA5 short names (:data:`~xfuxi.data.schema.ERA5_SHORT_NAMES`, ``t`` →
    ``temperature``) renamed to WeatherBench2's, and ``z`` without a level (NaN) to
    ``geopotential_at_surface`` (as :func:`~xfuxi.data.schema.surface_geopotential` does).
    Otherwise an observation of ``t`` was rejected as of an unknown variable, silently.

    >>> _canonical_variables(np.array(["t", "z", "z", "temperature"]),
    ...                      np.array([500.0, 500.0, np.nan, 850.0])).tolist()
    ['temperature', 'geopotential', 'geopotential_at_surface', 'temperature']
    """
    out = names.astype(object)  # (a fixed-width copy would cut the longer names)
    for short, long in ERA5_SHORT_NAMES.items():
        out[names == short] = long
    out[(names == "z") & np.isnan(level)] = "geopotential_at_surface"
    return out.astype(str)


#: the highest observation level accepted (hPa): above any surface pressure on Earth, so a
#: level beyond it is one in Pa
MAX_LEVEL_HPA = 1100.0


def _observation_time_fix(problem: str) -> str:
    """:func:`~xfuxi.data.schema.time_dtype_problem`'s diagnosis with the conversion of
    observation times (along ``obs``, not an index: its ``ds.indexes`` or
    ``convert_calendar`` fixes do not apply)."""
    what = problem.split(";")[0]
    if "outside the years" in what:  # datetime64[s] of 2300: schema's shift, of obs
        for sign in "-+":  # back for times after 2261, forward for those before 1678
            problem = problem.replace(
                _shift_example("time", sign), _shift_example("time", sign, "obs")
            )
        return f"observations' {problem}"
    if "time zone" in what:
        fix = "obs['time'].to_index().tz_convert('UTC').tz_localize(None)"
    else:
        fix = "obs['time'].to_index().to_datetimeindex(time_unit='ns')"
    return (
        f"observations' {what}; observation times are datetime64 in UTC without a time zone: "
        f"convert them, e.g. obs.assign_coords(time=('obs', {fix}))"
    )


def duplicated_observations(obs: xr.Dataset, *, copies: bool = False) -> np.ndarray:
    """Mark observations that repeat an earlier one (same variable, level, time, position).

    Parameters
    ----------
    obs : xarray.Dataset
        Observation Dataset.
    copies : bool, default False
        Mark only exact copies: the value and the error are equal too.

    Returns
    -------
    numpy.ndarray of bool (m,)
        True for every observation whose variable, level (NaN equal to NaN), time, latitude
        and longitude (modulo 360; any longitude at a pole) — and, with ``copies``, value
        and error — equal those of an earlier one; the first of each group is False.

    Notes
    -----
    A copy of an observation used as an independent one counts that point several times
    over (six copies gave a 2.6 times larger 4DVar increment), so
    :func:`screen_observations` refuses copies. Different values at the same place and time
    are different reports: they are used with independent errors, and the screening warns.
    ``obs.isel(obs=~duplicated_observations(obs))`` keeps the first of each group.

    Examples
    --------
    >>> obs = make_observations([1.0, 1.0, 1.5, 2.0], error=1.0, time="2000-01-01",
    ...                         latitude=10, longitude=[-10, 350, 350, 0],
    ...                         variable="temperature", level=500)
    >>> duplicated_observations(obs).tolist(), duplicated_observations(obs, copies=True).tolist()
    ([False, True, True, False], [False, True, False, False])
    """
    frame = _duplicate_keys(validate_observations(obs), copies=copies)
    return frame.duplicated(keep="first").to_numpy()


#: the columns of :func:`_duplicate_keys` that say where and when an observation is
_POSITION_KEYS = ["variable", "level", "time", "latitude", "longitude"]


def _duplicate_keys(obs: xr.Dataset, *, copies: bool) -> pd.DataFrame:
    """What :func:`duplicated_observations` compares, one row per observation of the
    validated ``obs``: :data:`_POSITION_KEYS`, and with ``copies`` the value and error."""
    lat = obs["latitude"].values + 0.0  # -0.0 is 0.0
    lon = obs["longitude"].values % 360.0 + 0.0
    lon = np.where(np.abs(lat) == 90.0, 0.0, lon)
    frame = pd.DataFrame(
        {
            "variable": obs["variable"].values.astype(str),
            "level": obs["level"].values + 0.0,
            "time": obs["time"].values,
            "latitude": lat,
            "longitude": lon,
        }
    )
    if copies:
        frame["value"] = obs["value"].values + 0.0
        frame["error"] = obs["error"].values + 0.0
    return frame


def _error_of(error: float | Mapping[str, float], variable: str) -> float:
    if isinstance(error, Mapping):
        if variable not in error:
            raise ObservationError(
                f"no observation error given for variable {str(variable)!r} "
                f"(errors given for {sorted(map(str, error))})"
            )
        return float(error[variable])
    return float(error)


def _sample_truth(
    truth: xr.Dataset,
    variable: np.ndarray,
    latitude: np.ndarray,
    longitude: np.ndarray,
    level: np.ndarray,
    time: np.ndarray,
) -> np.ndarray:
    """Interpolate the truth to observation points with the assimilation's operator."""
    import torch  # the torch view, as the assimilation applies it

    from .operator import build_operator

    out = np.full(variable.size, np.nan)
    variables = sorted(set(variable.tolist()))
    missing = [v for v in variables if v not in truth.data_vars]
    if missing:
        raise ObservationError(f"truth lacks variable(s) {missing}")
    chans = channels_of(truth, variables)
    times = pd.DatetimeIndex(truth["time"].values)
    for t in np.unique(time):
        if pd.Timestamp(t) not in times:
            raise ObservationError(f"time {pd.Timestamp(t)} is not in the truth")
        sel = np.nonzero(time == t)[0]
        field = stack(truth.sel(time=t), chans).transpose("channel", "latitude", "longitude")
        op, why = build_operator(
            chans,
            truth["latitude"].values,
            truth["longitude"].values,
            obs_variable=variable[sel],
            obs_latitude=latitude[sel],
            obs_longitude=longitude[sel],
            obs_level=level[sel],
        )
        if np.any(why != ""):
            bad = sorted(set(why[why != ""].tolist()))
            raise ObservationError(f"cannot sample the truth at some points: {bad}")
        out[sel] = op(torch.as_tensor(np.asarray(field.values, dtype="float64"))).numpy()
    return out


def _finish_rows(
    truth: xr.Dataset,
    rows: list[tuple[str, float, float, Any, Any]],
    error: float | Mapping[str, float],
    rng: np.random.Generator,
    network: str,
    asked: tuple[Any, Any, Any],
) -> xr.Dataset:
    """:func:`_finish` for rows ``(variable, latitude, longitude, level, time)``; none raises."""
    if not rows:
        variables, levels, times = asked
        raise ObservationError(
            f"no observation to make: variables {list(variables)}, levels {levels} or "
            f"times {times} is empty"
        )
    v_, la_, lo_, lv_, t_ = zip(*rows)
    return _finish(truth, list(v_), la_, lo_, lv_, t_, error, rng, True, network)


def _finish(
    truth: xr.Dataset,
    variable: list[str],
    latitude: Any,
    longitude: Any,
    level: Any,
    time: Any,
    error: float | Mapping[str, float],
    rng: np.random.Generator,
    noise: bool,
    network: str,
) -> xr.Dataset:
    var = np.asarray(variable, dtype=str)
    lat = np.asarray(latitude, dtype="float64")
    lon = np.asarray(longitude, dtype="float64")
    lev = np.asarray(level, dtype="float64")
    tim = np.asarray(time, dtype="M8[ns]")
    err = np.array([_error_of(error, v) for v in var], dtype="float64")
    if np.any(~(err > 0)) or not np.all(np.isfinite(err)):  # inf: an infinite value
        raise ObservationError(
            f"observation errors must be positive and finite, got {np.unique(err)}"
        )
    clean = _sample_truth(truth, var, lat, lon, lev, tim)
    value = clean + (rng.standard_normal(var.size) * err if noise else 0.0)
    obs = make_observations(
        value, error=err, time=tim, latitude=lat, longitude=lon, variable=var, level=lev
    )
    obs["truth"] = ("obs", clean)
    obs.attrs["network"] = network
    return obs


def _levels_for(truth: xr.Dataset, var: str, levels: Sequence[float] | None) -> list[float]:
    if "level" not in truth[var].dims:
        return [np.nan]
    have = [float(x) for x in truth["level"].values]
    if levels is None:
        return have
    return _given_levels(levels)


def _given_levels(levels: Any) -> list[float]:
    """The ``levels`` of a network, refused empty (nothing to observe) or with a level
    twice (each report made twice; or, drawn at random, that level drawn twice as often)."""
    given = [float(x) for x in np.atleast_1d(np.asarray(levels, dtype="float64"))]
    if not given:
        raise ObservationError("levels is empty: give at least one level, or None for all")
    repeated = sorted({x for x in given if given.count(x) > 1})
    if repeated:
        raise ObservationError(f"levels repeats {repeated} hPa; give each level once")
    return given


def _rng(seed: Any) -> np.random.Generator:
    """NumPy's generator of ``seed`` (None: fresh entropy), refusing what is no seed
    (NumPy's own errors for -1 or 1.5 do not name the argument)."""
    if seed is not None and (not is_integer(seed) or seed < 0):
        raise ObservationError(f"seed must be a non-negative integer or None; got {seed!r}")
    return np.random.default_rng(seed)


def _truth(truth: Any) -> xr.Dataset:
    """The truth of the observing networks, canonical; states of a forecast at one lead
    at the times they are valid at (``time + lead``: their initial times were observed)."""
    require_dataset(truth, "the truth")  # (a DataArray: a bare AttributeError later)
    if isinstance(truth, xr.Dataset):
        truth = states_at_valid_times(truth, "truth")
        refuse_lead_dim(truth, "the truth")  # (xarray's words otherwise)
    return validate(truth, require_time=True)


def _truth_times(truth: xr.Dataset, times: Any) -> np.ndarray:
    if times is None:
        return np.asarray(truth["time"].values, dtype="M8[ns]")
    values = np.atleast_1d(parse_times(times, "times", error=ObservationError).values)
    if values.size == 0:
        raise ObservationError("times is empty: give at least one time, or None for all")
    repeated = pd.unique(values[pd.Index(values).duplicated()])
    if repeated.size:  # each report made twice (drawn at random: that time twice as often)
        raise ObservationError(
            f"times repeats {[str(t)[:19] for t in repeated]}; give each time once"
        )
    return values


def single_observation(
    truth: xr.Dataset,
    *,
    variable: str,
    latitude: float,
    longitude: float,
    time: Any,
    error: float,
    level: float | None = None,
    noise: bool = True,
    seed: int | None = None,
) -> xr.Dataset:
    """One observation of ``variable`` at a point, drawn from the truth.

    Parameters
    ----------
    truth : xarray.Dataset
        Canonical data with a ``time`` dim containing ``time``; states of a forecast at
        one lead are valid at ``time + lead`` (as ``random_observations`` takes them).
    variable : str
    latitude, longitude : float
    time : datetime-like
        One date and time (an ISO string of any precision, a datetime, a datetime64; not
        a number).
    error : float
        Observation-error std; the noise added has this std.
    level : float, optional
        Pressure level (hPa) for a variable with levels.
    noise : bool, default True
        Add Gaussian noise (else the observation is the interpolated truth).
    seed : int, optional
        Seed of the generator of the noise.

    Returns
    -------
    xarray.Dataset
        Observation Dataset with one observation (and the noise-free ``truth`` value).

    Raises
    ------
    SchemaError
        ``truth`` is not canonical data with a ``time`` dim, or is a forecast of several
        leads (a ``prediction_timedelta`` dim: select one lead).
    ObservationError
        ``time`` is not one date and time (a number, an unreadable string: named) or is
        not in ``truth``; ``variable`` is not in ``truth``; ``error`` is not positive and
        finite; ``seed`` not a non-negative integer or None.

    Examples
    --------
    >>> import xarray as xr
    >>> truth = xr.Dataset({"temperature": (("time", "latitude", "longitude"),
    ...                     np.arange(8.0).reshape(1, 2, 4))},
    ...                    coords={"time": [np.datetime64("2000-01-01", "ns")],
    ...                            "latitude": [-45.0, 45.0], "longitude": [0, 90, 180, 270.0]})
    >>> obs = single_observation(truth, variable="temperature", latitude=0.0, longitude=45.0,
    ...                          time="2000-01-01", error=0.1, noise=False)
    >>> float(obs["value"][0])
    2.5
    >>> obs = truth.fuxi.single_observation(variable="temperature", latitude=45.0,  # accessor
    ...                                     longitude=90.0, time="2000-01-01", error=0.1,
    ...                                     noise=False)
    >>> float(obs["value"][0])
    5.0
    """
    check_flag(noise, "noise")  # noise="no" added noise
    truth = _truth(truth)
    rng = _rng(seed)
    lev = np.nan if level is None else float(level)
    return _finish(
        truth,
        [variable],
        [latitude],
        [longitude],
        [lev],
        _one_time(time),
        error,
        rng,
        noise,
        "single",
    )


def _variable_names(variables: Any, truth: xr.Dataset) -> list[str]:
    """``variables`` as a list of names of ``truth``; one string is refused (it would be
    read as its letters), as :class:`xfuxi.RadiosondeNetwork` refuses it, and so is a name
    the truth lacks (as :func:`single_observation` refuses it, not xarray's KeyError)."""
    if isinstance(variables, (str, bytes)):
        raise ObservationError(
            f"variables must be a sequence of names, not one string: variables=[{variables!r}]"
        )
    names = [str(v) for v in variables]
    missing = sorted({v for v in names if v not in truth.data_vars})
    if missing:
        raise ObservationError(
            f"truth lacks variable(s) {missing} (it has {[str(v) for v in truth.data_vars]})"
        )
    twice = sorted({v for v in names if names.count(v) > 1})
    if twice:  # drawn twice as often, or each observation made twice
        raise ObservationError(f"variables lists {twice} more than once; give each name once")
    return names


@_doc
def random_observations(
    truth: xr.Dataset,
    *,
    n: int,
    variables: Sequence[str],
    error: float | Mapping[str, float],
    levels: Sequence[float] | None = None,
    times: Any = None,
    seed: int | None = None,
) -> xr.Dataset:
    """``n`` observations at random points, uniform in area over the sphere (over the box
    of a regional grid: :func:`~xfuxi.observations.interpolation.covered_region`).

    Each observation draws a variable, a level (from ``levels``, default the truth's levels),
    a time (from ``times``, default all truth times) and a location.

    Parameters
    ----------
    {{truth}}
    n : int
        Number of observations (at least 1).
    variables : sequence of str
        Variables of ``truth`` to draw from (a list, not one string).
    error : float or mapping variable → float
        Observation-error std; the noise added has this std. A mapping needs each of
        ``variables``; it may hold other variables of ``truth`` (a table shared by
        networks), but no name that ``truth`` lacks.
    levels : sequence of float, optional
        Levels (hPa) to draw from; default: all truth levels (single-level variables have
        none).
    times : datetime-like or sequence, optional
        Times to draw from; default: all truth times.
    seed : int, optional
        Seed of the generator of the points and the noise.

    Returns
    -------
    xarray.Dataset
        Observation Dataset of ``n`` observations (and their noise-free ``truth`` values),
        ``attrs["network"] = "random"``.

    Raises
    ------
    SchemaError
        ``truth`` is not canonical data with a ``time`` dim, or is a forecast of several
        leads (a ``prediction_timedelta`` dim: select one lead).
    ObservationError
        ``n`` is not a positive integer; ``variables`` is one string, empty, names a
        variable ``truth`` lacks or one more than once; ``error`` lacks a variable, names
        one ``truth`` lacks or is not positive and finite; a time is not a date and time
        (a number, an unreadable string: named) or is not in ``truth``, or a level is not;
        a level or time given twice, or none; ``seed`` not a non-negative integer or None.

    Examples
    --------
    {{example_truth}}
    >>> obs = random_observations(truth, n=5, variables=["temperature"], error=1.0, seed=0)
    >>> obs.sizes["obs"], bool((abs(obs["latitude"]) <= 90).all())
    (5, True)
    >>> truth.fuxi.random_observations(n=3, variables=["temperature"], error=1.0,
    ...                                seed=0).sizes["obs"]  # through the accessor
    3
    """
    truth = _truth(truth)
    n = _positive_count(n, "n")
    rng = _rng(seed)
    tims = _truth_times(truth, times)
    names = _variable_names(variables, truth)
    if not names:
        raise ObservationError("random observations need at least one variable")
    if isinstance(error, Mapping) and all(v in error for v in names):
        # (a variable without an error is refused by name when the errors are looked up)
        unknown = sorted(str(k) for k in error if str(k) not in truth.data_vars)
        if unknown:  # a misspelt name was ignored
            raise ObservationError(
                f"error names variable(s) {unknown} that truth lacks (it has "
                f"{[str(v) for v in truth.data_vars]}); misspelt?"
            )
    var = rng.choice(np.asarray(names, dtype=str), size=int(n))
    # each variable's levels read once (per observation: 6 of 8 s for 10⁵ observations);
    # the draws one by one as before, so that a seed gives the same observations
    levels_of = {str(v): np.asarray(_levels_for(truth, str(v), levels)) for v in names}
    lev = np.array([rng.choice(levels_of[str(v)]) for v in var], dtype="float64")
    lat, lon = _random_positions(rng, int(n), truth, "random observations")
    tim = rng.choice(tims, size=int(n))
    return _finish(truth, list(var), lat, lon, lev, tim, error, rng, True, "random")


def _random_positions(
    rng: np.random.Generator, n: int, truth: xr.Dataset, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` positions uniform in area over the region the observation operator covers on
    ``truth``'s grid: the whole sphere for a global grid (the same draws as ever), the box
    of a regional grid (its longitudes across 0° included) or a band's latitudes."""
    south, north, west, width = covered_region(truth["latitude"].values, truth["longitude"].values)
    if south == -90.0 and north == 90.0 and width == 360.0:
        lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
        return lat, rng.uniform(0.0, 360.0, n)
    if north <= south or width <= 0.0:
        raise ObservationError(
            f"{what} need a grid of at least two rows and two columns (this one covers "
            f"latitudes {south}..{north} and {width} degrees of longitude); give sites="
        )
    lat = np.degrees(
        np.arcsin(rng.uniform(np.sin(np.radians(south)), np.sin(np.radians(north)), n))
    )
    lon = (west + rng.uniform(0.0, width, n)) % 360.0
    return np.clip(lat, south, north), lon


@_doc
def radiosonde_observations(
    truth: xr.Dataset,
    *,
    error: float | Mapping[str, float],
    n_sites: int | None = None,
    sites: Sequence[tuple[float, float]] | None = None,
    variables: Sequence[str] | None = None,
    levels: Sequence[float] | None = None,
    times: Any = None,
    seed: int | None = None,
) -> xr.Dataset:
    """Radiosonde-like columns: every level of several variables at each site and time.

    Parameters
    ----------
    {{truth}}
    error : float or mapping variable → float
    n_sites : int, optional
        Number of random sites, uniform in area over the region the observation operator
        covers on the truth's grid (the sphere for a global grid, the box of a regional
        one: :func:`~xfuxi.observations.interpolation.covered_region`). Exactly one of
        ``n_sites``/``sites``.
    sites : sequence of (latitude, longitude), optional
    variables : sequence of str, optional
        Default: every truth variable with a ``level`` dim, in the truth's order. The
        noise is drawn row by row (times, sites, variables in this order, levels): the
        same seed with the variables in another order gives other noise.
    levels : sequence of float, optional
        Default: all truth levels.
    times : datetime-like or sequence, optional
        Default: all truth times.
    seed : int, optional
        Seed of the generator of the noise, drawn row by row in the order of the rows
        (time, site, variable, level as given): the same seed gives another draw at a time
        requested with other times, or with the variables or levels in another order.

    Returns
    -------
    xarray.Dataset
        Observation Dataset: one row per time, site, variable and level (and the noise-free
        ``truth`` values), ``attrs["network"] = "radiosonde"``.

    Raises
    ------
    SchemaError
        ``truth`` is not canonical data with a ``time`` dim, or is a forecast of several
        leads (a ``prediction_timedelta`` dim: select one lead).
    ObservationError
        Both or neither of ``n_sites`` and ``sites``; ``n_sites`` not a positive integer;
        ``sites`` not (latitude, longitude) pairs, or a site given twice; no variable with
        levels, or one ``truth`` lacks, or one listed twice; ``error`` lacks a variable or is
        not positive and finite; a time is not a date and time (a number, an unreadable
        string: named) or is not in ``truth``, or a level is not; a level or time given
        twice; nothing to observe (empty ``levels`` or ``times``); ``seed`` not a
        non-negative integer or None.

    Examples
    --------
    >>> import xarray as xr
    >>> truth = xr.Dataset({"temperature": (("time", "level", "latitude", "longitude"),
    ...                     np.zeros((1, 2, 3, 4)))},
    ...                    coords={"time": [np.datetime64("2000-01-01", "ns")],
    ...                            "level": [500.0, 850.0],
    ...                            "latitude": [-60.0, 0.0, 60.0],
    ...                            "longitude": [0, 90, 180, 270.0]})
    >>> obs = radiosonde_observations(truth, sites=[(10.0, 20.0)], error=0.5, seed=0)
    >>> obs["level"].values.tolist()
    [500.0, 850.0]
    >>> obs = truth.fuxi.radiosonde_observations(sites=[(10.0, 20.0), (-30.0, 200.0)],
    ...                                          error=0.5, seed=0)  # through the accessor
    >>> obs.sizes["obs"]
    4
    """
    truth = _truth(truth)
    rng = _rng(seed)
    if (n_sites is None) == (sites is None):
        raise ObservationError("give exactly one of n_sites and sites")
    if sites is None:
        n_sites = _positive_count(n_sites, "n_sites")
        lat_s, lon_s = _random_positions(rng, n_sites, truth, "random sites (n_sites)")
    else:
        arr = np.asarray(sites, dtype="float64")
        if arr.size == 0 or arr.size % 2:
            raise ObservationError(
                "sites must be a non-empty sequence of (latitude, longitude) pairs; "
                f"got an array of shape {arr.shape}"
            )
        arr = arr.reshape(-1, 2)
        lat_s, lon_s = arr[:, 0], arr[:, 1]
        # one site given twice: each sounding made twice (longitude modulo 360; any at a pole)
        where = pd.DataFrame(
            {"lat": lat_s + 0.0, "lon": np.where(np.abs(lat_s) == 90.0, 0.0, lon_s % 360.0 + 0.0)}
        )
        twice = np.flatnonzero(where.duplicated(keep="first").to_numpy())
        if twice.size:
            raise ObservationError(
                f"sites repeats {twice.size} site(s), e.g. {arr[twice[0]].tolist()} at index "
                f"{twice[:5].tolist()} (longitudes compared modulo 360); give each site once"
            )
    if variables is None:
        variables = [str(v) for v in truth.data_vars if "level" in truth[v].dims]
    variables = _variable_names(variables, truth)
    if len(variables) == 0:
        raise ObservationError("radiosonde observations need at least one variable with levels")
    tims = _truth_times(truth, times)
    rows: list[tuple[str, float, float, float, Any]] = []
    for t in tims:
        for la, lo in zip(lat_s, lon_s):
            for v in variables:
                for lv in _levels_for(truth, v, levels):
                    rows.append((v, la, lo, lv, t))
    return _finish_rows(truth, rows, error, rng, "radiosonde", (variables, levels, times))


@_doc
def region_observations(
    truth: xr.Dataset,
    *,
    latitude: tuple[float, float],
    longitude: tuple[float, float],
    variables: Sequence[str],
    error: float | Mapping[str, float],
    levels: Sequence[float] | None = None,
    times: Any = None,
    seed: int | None = None,
) -> xr.Dataset:
    """Observations at every grid point inside a latitude–longitude box.

    ``longitude=(lo, hi)`` with ``lo > hi`` wraps across 0°; a box 360° wide or wider, such as
    ``(0, 360)`` or ``(-180, 180)``, takes every longitude. Each variable is observed at
    each of ``levels`` (default all truth levels) and ``times`` (default all). A pole row
    (latitude ±90°, on grids that have one) is one point, observed once, at the box's
    first longitude there.

    Parameters
    ----------
    {{truth}}
    latitude : (float, float)
        The box's latitude range (degrees; the ends in either order).
    longitude : (float, float)
        The box's longitude range (degrees), from west to east: see above.
    variables : sequence of str
        Variables of ``truth`` to observe (a list, not one string).
    error : float or mapping variable → float
        Observation-error std; the noise added has this std.
    levels : sequence of float, optional
        Levels (hPa); default: all truth levels (single-level variables have none).
    times : datetime-like or sequence, optional
        Default: all truth times.
    seed : int, optional
        Seed of the generator of the noise.

    Returns
    -------
    xarray.Dataset
        Observation Dataset: one row per time, variable, level and grid point in the box
        (and the noise-free ``truth`` values), ``attrs["network"] = "region"``.

    Raises
    ------
    SchemaError
        ``truth`` is not canonical data with a ``time`` dim, or is a forecast of several
        leads (a ``prediction_timedelta`` dim: select one lead).
    ObservationError
        No grid point in the box; ``variables`` is one string, names a variable
        ``truth`` lacks or one more than once; ``error`` lacks a variable or is not
        positive and finite; a time is not a date and time (a number, an unreadable
        string: named) or is not in ``truth``, or a level is not; a level or time given
        twice; nothing to observe (empty ``variables``, ``levels`` or ``times``); ``seed``
        not a non-negative integer or None.

    Examples
    --------
    {{example_truth}}
    >>> obs = region_observations(truth, latitude=(-10, 70), longitude=(250, 100),
    ...                           variables=["temperature"], error=1.0, seed=0)
    >>> sorted(set(obs["longitude"].values.tolist()))
    [0.0, 90.0, 270.0]
    >>> obs = truth.fuxi.region_observations(latitude=(-10, 70), longitude=(250, 100),
    ...                                      variables=["temperature"], error=1.0, seed=0)
    >>> sorted(set(obs["longitude"].values.tolist()))  # the same through the accessor
    [0.0, 90.0, 270.0]
    """
    truth = _truth(truth)
    variables = _variable_names(variables, truth)
    rng = _rng(seed)
    lat_g = truth["latitude"].values
    lon_g = truth["longitude"].values % 360.0
    in_lat = lat_g[(lat_g >= min(latitude)) & (lat_g <= max(latitude))]
    lo, hi = float(longitude[0]) % 360.0, float(longitude[1]) % 360.0
    if float(longitude[1]) - float(longitude[0]) >= 360.0:  # (0, 360), (-180, 180): all
        in_lon = lon_g  # (both ends are one meridian modulo 360, which kept that one alone)
    elif lo <= hi:
        in_lon = lon_g[(lon_g >= lo) & (lon_g <= hi)]
    else:
        in_lon = lon_g[(lon_g >= lo) | (lon_g <= hi)]
    if in_lat.size == 0 or in_lon.size == 0:
        raise ObservationError(f"no grid point inside latitude {latitude}, longitude {longitude}")
    rows = []
    for t in _truth_times(truth, times):
        for v in variables:
            for lv in _levels_for(truth, v, levels):
                for la in in_lat:
                    # a pole row is one point: observed once (at the box's first longitude),
                    # not at each of its longitudes (24 reports of one point, each with its
                    # own noise, weighed as 24 independent observations)
                    for lo_ in in_lon[:1] if abs(la) == 90.0 else in_lon:
                        rows.append((v, la, lo_, lv, t))
    return _finish_rows(truth, rows, error, rng, "region", (variables, levels, times))


@dataclass(frozen=True)
class _Stencils:
    """The interpolation stencils of observations
    (:func:`~xfuxi.observations.interpolation.observation_stencils`), made once for the
    screening: it needs the reasons of all observations and the operator of the ones it
    keeps, which are fewer (NaN values, outside the window, copies); computing the weights
    of all and then again of those it keeps made the stencils twice.
    :func:`~xfuxi.observations.interpolation.stencil_weights` of the kept ones' is
    ``observation_weights`` of those observations alone, bit for bit."""

    arrays: tuple[np.ndarray, ...]  # (chan, cw, rows, cols, hw), one row per observation
    shape: tuple[int, int, int]  # (C, H, W) of the states

    @classmethod
    def of(
        cls,
        channels: Sequence[tuple[str, float | None]],
        latitude: np.ndarray,
        longitude: np.ndarray,
        obs: xr.Dataset,
    ) -> tuple[_Stencils, np.ndarray]:
        """The stencils of every observation of (validated) ``obs`` on the model grid, and
        why each cannot be interpolated (``""`` where it can)."""
        arrays, reason = observation_stencils(
            channels,
            latitude,
            longitude,
            np.asarray(obs["variable"].values).astype(str),
            np.asarray(obs["latitude"].values, dtype="float64"),
            np.asarray(obs["longitude"].values, dtype="float64"),
            np.asarray(obs["level"].values, dtype="float64"),
        )
        shape = (len(channels), latitude.size, longitude.size)
        return cls(arrays, shape), reason.astype(str)

    def take(self, index: np.ndarray) -> _Stencils:
        """The stencils of the observations ``index`` (in that order)."""
        return _Stencils(tuple(a[index] for a in self.arrays), self.shape)

    def weights(self) -> ObservationWeights:
        """``observation_weights`` of these observations (each one it can interpolate)."""
        return stencil_weights(*self.arrays, self.shape)


def _operator_columns(obs: xr.Dataset) -> dict[str, np.ndarray]:
    """The observation metadata the operator takes (``obs_variable``, ...), from ``obs``."""
    return {
        f"obs_{name}": obs[name].values for name in ("variable", "latitude", "longitude", "level")
    }


#: half the window of the one slot when ``slot_times`` has one time (there is no interval
#: to take half of): half the 6-hour step of the FuXi models
_SINGLE_SLOT_HALF_WINDOW = np.timedelta64(3, "h")


def _slot_times(slot_times: Any) -> np.ndarray:
    """``slot_times`` as datetime64[ns], checked: 1-D, non-empty, no NaT, strictly ascending
    and equally spaced (the windows are half the first interval around each slot)."""
    shape = np.shape(slot_times)
    if len(shape) != 1 or shape[0] == 0:
        raise ValueError(f"slot_times must be a non-empty 1-D array of times; got shape {shape}")
    # (a number was read as nanoseconds after 1970)
    slots = parse_times(slot_times, "slot_times", error=ValueError, allow_missing=True).values
    shown = [str(pd.Timestamp(t)) for t in slots[:10]]  # (the first ten)
    if np.isnat(slots).any():
        raise ValueError(f"slot_times must not contain NaT; got {shown}")
    step = np.diff(slots)
    if np.any(step <= np.timedelta64(0, "ns")):
        raise ValueError(
            "slot_times must be strictly ascending (the window of a slot is the time "
            f"nearer to it than half a slot interval); got {shown}"
        )
    if step.size and np.any(step != step[0]):
        raise ValueError(f"slot_times must be equally spaced; got {shown}")
    return slots


def screen_observations(
    obs: xr.Dataset,
    *,
    channels: Sequence[tuple[str, float | None]],
    latitude: Any,
    longitude: Any,
    slot_times: Any,
    strict: bool = False,
    duplicates: str = "refuse",
) -> tuple[xr.Dataset, Any, np.ndarray, dict[str, int]]:
    """Reject unusable observations, counting each reason; bin the rest into time slots.

    Checked in this order (first failing reason counts): ``nan_value``; ``bad_error``
    (NaN or ≤ 0); ``unknown_variable``; ``unknown_level``; ``outside_grid``;
    ``outside_window`` (farther than half a slot interval from every slot time, or than
    3 h from the one slot time, or without a time: NaT). Usable
    observations that are copies of an earlier one (:func:`duplicated_observations` with
    ``copies=True``) are refused, or, with ``duplicates="first"``, rejected as ``duplicate``
    with a warning (the first of each group is used); different values at the same
    variable, level, time and position are used as independent reports, with a warning.

    Parameters
    ----------
    obs : xarray.Dataset
        Observation Dataset.
    channels, latitude, longitude
        The model's channels and grid, in the model's order: latitude ascending (south to
        north), longitude ascending within 0..360 (as :func:`xfuxi.validate` orders data
        and :func:`~xfuxi.observations.operator.build_operator` requires).
    slot_times : array of datetime64 (K,)
        Observation slot times: non-empty, strictly ascending and equally spaced. Each
        observation goes to the nearest slot (the earlier one at a tie) if it is within
        half the slot interval of it; with one slot time, within 3 h of it (half the
        models' 6-hour step).
    strict : bool, default False
        Raise :class:`ObservationError` listing the counts if anything is rejected.
    duplicates : {"refuse", "first"}, default "refuse"
        What to do with copies of an observation: raise, or keep the first of each group.

    Returns
    -------
    used : xarray.Dataset
        The usable observations, with a ``slot`` coordinate (0..K−1).
    operator : ObservationOperator
        Interpolation for ``used`` (in its order).
    reason : numpy.ndarray of str
        Reason per input observation (``""`` for used).
    counts : dict
        Number rejected per reason (every reason present, zeros included).

    Raises
    ------
    ObservationError
        If usable observations are copies of one another (same variable, level, time,
        position, value and error); in strict mode, if any observation is rejected.
    ValueError
        If the grid is not in the model's order (see above), ``slot_times`` is empty, not
        strictly ascending or not equally spaced, or ``duplicates`` is unknown.

    Examples
    --------
    >>> obs = make_observations([1.0, np.nan], error=1.0, time="2000-01-01", latitude=0,
    ...                         longitude=0, variable="temperature", level=500)
    >>> used, op, why, counts = screen_observations(
    ...     obs, channels=[("temperature", 500.0)], latitude=[-45.0, 45.0],
    ...     longitude=[0.0, 180.0], slot_times=np.array(["2000-01-01"], dtype="M8[ns]"))
    >>> used.sizes["obs"], counts["nan_value"]
    (1, 1)
    """
    from .operator import ObservationOperator, _model_grid  # the torch view, for the assimilation

    # the grid and the slots are checked before any work (the grid is refused by the
    # operator built at the end otherwise; unordered slots gave negative windows)
    lat_grid, lon_grid = _model_grid(latitude, longitude)
    slots = _slot_times(slot_times)
    obs = validate_observations(obs)
    m = obs.sizes["obs"]
    reason = np.full(m, "", dtype=object)
    value = obs["value"].values
    err = obs["error"].values
    reason[~np.isfinite(value)] = "nan_value"
    reason[(reason == "") & ~(err > 0)] = "bad_error"
    reason[(reason == "") & ~np.isfinite(err)] = "bad_error"
    # the stencils once: the reasons of all now, the operator of the kept ones at the end
    stencils, why = _Stencils.of(channels, lat_grid, lon_grid, obs)
    fill = (reason == "") & (why != "")
    reason[fill] = why[fill]
    del why, fill
    t = obs["time"].values.astype("M8[ns]")
    dist = np.abs((t[:, None] - slots[None, :]).astype("int64"))
    slot = np.argmin(dist, axis=1)
    half = (
        (slots[1] - slots[0]).astype("int64") / 2
        if slots.size > 1
        else _SINGLE_SLOT_HALF_WINDOW.astype("m8[ns]").astype("int64")
    )
    # a missing time (NaT) is in no window: NaT − t is int64's minimum, whose abs stays
    # negative, which put such observations in the first slot
    outside = (dist[np.arange(m), slot] > half) | np.isnat(t)
    reason[(reason == "") & outside] = "outside_window"
    del dist, outside
    usable = np.flatnonzero(reason == "")
    stencils = stencils.take(usable)  # (only the usable ones' are read from here on)
    kept = obs.isel(obs=usable)
    if duplicates not in ("refuse", "first"):
        raise ValueError(f"duplicates must be 'refuse' or 'first'; got {duplicates!r}")
    # both kinds of repeat from one table of the usable observations (they were made
    # twice): copies, and reports at the position of an earlier one
    keys = _duplicate_keys(kept, copies=True)
    is_copy = keys.duplicated(keep="first").to_numpy()
    colocated_or_copy = keys.duplicated(subset=_POSITION_KEYS, keep="first").to_numpy()
    del keys, kept
    copied = usable[is_copy]
    if copied.size and duplicates == "first":
        message = (
            f"{copied.size} usable observation(s) are copies of an earlier one (same variable, "
            "level, time, position, value and error); keeping the first of each group"
        )
        warnings.warn(message, UserWarning, stacklevel=user_stacklevel())
        reason[copied] = "duplicate"
    elif copied.size:
        first = obs.isel(obs=int(copied[0]))
        raise ObservationError(
            f"{copied.size} usable observation(s) are copies of an earlier one (same "
            f"variable, level, time, position, value and error), e.g. obs index "
            f"{int(copied[0])}: {first['variable'].item()} at level {first['level'].item()}, "
            f"time {pd.Timestamp(first['time'].item())}, latitude "
            f"{first['latitude'].item()}, longitude {first['longitude'].item()}. Used as "
            "independent observations they would weigh that point several times over; drop "
            "them with obs.isel(obs=~xfuxi.observations.sets.duplicated_observations(obs, "
            "copies=True))"
        )
    # the first of each position is never a copy (a copy repeats an earlier one), so
    # without the copies the others at a position are those that are not copies
    colocated = int(np.sum(colocated_or_copy & ~is_copy))
    if colocated:
        message = (
            f"{colocated} usable observation(s) share variable, level, time and position with "
            "another but differ in value or error: they are used as independent reports "
            "(uncorrelated errors); merge them if they are one measurement"
        )
        warnings.warn(message, UserWarning, stacklevel=user_stacklevel())
    counts = {r: int(np.sum(reason == r)) for r in REJECT_REASONS}
    n_bad = int(np.sum(reason != ""))
    if n_bad and strict:
        raise ObservationError(
            f"{n_bad} of {m} observations rejected (strict mode): "
            + ", ".join(f"{k}={v}" for k, v in counts.items() if v)
        )
    if n_bad:
        log.info("rejected %d of %d observations: %s", n_bad, m, counts)
    keep = np.nonzero(reason == "")[0]
    used = obs.isel(obs=keep).assign_coords(slot=("obs", slot[keep]))
    # (the kept ones are usable ones: their stencils are those of the usable ones kept)
    weights = stencils.take(np.searchsorted(usable, keep)).weights()
    op = ObservationOperator.from_weights(weights)
    return used, op, reason.astype(str), counts
