"""Persistence and climatology forecasts: the baselines every model has to beat.

Both are returned in WeatherBench2's forecast layout — dims ``time`` (the initial time),
``prediction_timedelta`` (the lead), then ``level, latitude, longitude`` — so they go through
the same verification as any model forecast (docs/design.md, Data conventions).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from typing import Any, overload

import numpy as np
import pandas as pd
import xarray as xr

from ..data.schema import (
    add_lead,
    canonical_order,
    parse_times,
    refuse_lead_dim,
    states_at_valid_times,
    validate,
)
from ..data.stats import climatology_for

__all__ = ["climatology_forecast", "persistence_forecast"]

log = logging.getLogger(__name__)


def _leads(leads: Any) -> np.ndarray:
    """Leads as timedelta64[ns]; plain numbers are hours, strings and timedelta64 need a
    unit (:func:`_check_lead_unit`)."""
    if isinstance(leads, (xr.DataArray, xr.Variable, pd.Index, pd.Series)):
        leads = np.asarray(leads)  # e.g. a forecast's own prediction_timedelta
    if isinstance(leads, (str, np.timedelta64, pd.Timedelta)) or np.ndim(leads) == 0:
        leads = [leads]
    items = list(np.asarray(leads).ravel()) if isinstance(leads, np.ndarray) else list(leads)
    if not items:
        raise ValueError("leads must contain at least one lead time")
    out = []
    for item in items:
        _check_lead_unit(item)
        try:
            if isinstance(item, (bool, np.bool_)):
                raise TypeError
            if isinstance(item, (np.timedelta64, pd.Timedelta, datetime.timedelta, str)):
                out.append(pd.Timedelta(item))
            elif isinstance(item, (int, float, np.integer, np.floating)):
                out.append(pd.Timedelta(hours=float(item)))
            else:
                out.append(pd.Timedelta(item))
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"leads must be timedeltas (e.g. '6h', np.timedelta64(6, 'h')) or numbers of "
                f"hours; got {item!r}"
            ) from err
    arr = np.array([t.to_timedelta64() for t in out], dtype="timedelta64[ns]")
    if np.any(arr < np.timedelta64(0)):
        raise ValueError(f"leads must be non-negative; got {pd.to_timedelta(arr).tolist()}")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"leads has duplicated values: {pd.to_timedelta(arr).tolist()}")
    return arr


def _check_lead_unit(item: Any) -> None:
    """Raise if the lead ``item`` has no unit: a string holding a plain number (``"6"``) or
    a timedelta64 of generic unit (``np.timedelta64(6)``), which pandas reads as
    nanoseconds, though plain numbers (not strings) are hours here."""
    if isinstance(item, str):
        try:
            float(item)
        except ValueError:
            return
        raise ValueError(
            f"lead {item!r} is a string without a unit, which would be read as nanoseconds; "
            f"write the unit, e.g. '{item.strip()}h', or give the number itself for hours"
        )
    if isinstance(item, np.timedelta64) and np.datetime_data(item.dtype)[0] == "generic":
        n = item.astype("int64")
        raise ValueError(
            f"lead {item!r} has no unit (a generic timedelta64), which would be read as "
            f"nanoseconds; give it one, e.g. np.timedelta64({n}, 'h'), or give the number "
            "itself for hours"
        )


def _init_times(init_times: Any) -> np.ndarray:
    """``init_times`` as datetime64[ns] (:func:`xfuxi.data.schema.parse_times`, as
    :func:`xfuxi.forecast` reads them: a time zone, converted to UTC, silently hid it)."""
    out = parse_times(init_times, "init_times", error=ValueError).values
    if out.size == 0:
        raise ValueError("init_times must contain at least one time")
    if np.unique(out).size != out.size:
        raise ValueError("init_times has duplicated values")
    return out


def _baseline(out: xr.Dataset, attrs: dict, baseline: str, description: str) -> xr.Dataset:
    """A baseline forecast in the canonical layout, with its provenance attrs, validated."""
    out = out.transpose(*canonical_order(out.dims))
    out.attrs = {**attrs, "baseline": baseline, "description": description}
    out["prediction_timedelta"].attrs = {"long_name": "lead time"}
    return validate(out)


@overload
def persistence_forecast(
    ds: xr.Dataset,
    *,
    leads: Sequence[Any] | np.ndarray,
    init_times: Sequence[Any] | np.ndarray | None = None,
) -> xr.Dataset: ...
@overload
def persistence_forecast(
    ds: xr.DataArray,
    *,
    leads: Sequence[Any] | np.ndarray,
    init_times: Sequence[Any] | np.ndarray | None = None,
) -> xr.DataArray: ...
def persistence_forecast(
    ds: xr.Dataset | xr.DataArray,
    *,
    leads: Sequence[Any] | np.ndarray,
    init_times: Sequence[Any] | np.ndarray | None = None,
) -> xr.Dataset | xr.DataArray:
    """Persistence forecast: the state at the initial time, for every lead.

    Parameters
    ----------
    ds : Dataset or DataArray
        Analyses / truth with a ``time`` dimension (canonical layout). States of a
        forecast at one lead (a scalar ``prediction_timedelta``, as
        ``fc.sel(prediction_timedelta="6h")`` leaves) are valid at ``time + lead``, and
        persist from those times (:func:`xfuxi.data.schema.states_at_valid_times`).
    leads : sequence of timedelta-like or numbers
        Lead times (``"6h"``, ``np.timedelta64(6, "h")``, ...); plain numbers are hours.
        A string or timedelta64 must carry its unit (``"6"`` and ``np.timedelta64(6)``
        raise: pandas would read them as nanoseconds).
    init_times : sequence of datetime-like, optional
        Initial times, in UTC without a time zone (as the data's times; ISO strings of
        any precision, datetimes, datetime64, not numbers); each must be in ``ds.time``.
        Default: all times of ``ds``.

    Returns
    -------
    Dataset or DataArray
        Dims ``time`` (initial time), ``prediction_timedelta``, then the others of ``ds``;
        attrs ``baseline = "persistence"``.

    Raises
    ------
    ValueError
        If an initial time is not in ``ds.time``, is not a date and time (a number, an
        unreadable string: named) or carries a time zone other than UTC, leads are invalid
        (negative, repeated, or a string or timedelta64 without a unit), or a valid time
        lies beyond ``datetime64[ns]`` (past 2262-04-11).
    SchemaError
        If ``ds`` is not canonical, is a forecast of several leads (a
        ``prediction_timedelta`` dim: select one lead), or its scalar lead is not a time
        span.

    Notes
    -----
    ``f(t0 + τ) = x(t0)`` for every lead τ. The values for all leads are broadcast views of
    the same array (no copy); call ``.copy()`` before writing into the result.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=3, freq="6h")
    >>> da = xr.DataArray(np.arange(3.0)[:, None, None], name="temperature",
    ...                   dims=("time", "latitude", "longitude"),
    ...                   coords={"time": t, "latitude": [0.0], "longitude": [0.0]})
    >>> f = persistence_forecast(da, leads=[6, 12], init_times=t[:2])
    >>> f.dims, f.values[..., 0, 0].tolist()
    (('time', 'prediction_timedelta', 'latitude', 'longitude'), [[0.0, 0.0], [1.0, 1.0]])
    >>> f = da.to_dataset().fuxi.persistence_forecast(leads=[6], init_times=t[1:])  # accessor
    >>> f.temperature.values[..., 0, 0].tolist()
    [[1.0], [2.0]]
    """
    # states of a forecast at one lead are valid at time + lead (their initial times were
    # taken as the times they persist from)
    if isinstance(ds, (xr.Dataset, xr.DataArray)):  # (validate names anything else)
        ds = states_at_valid_times(ds, "ds")
        refuse_lead_dim(ds, "persistence_forecast: ds")  # (xarray's own words otherwise)
    data = validate(ds, require_time=True)
    lead = _leads(leads)
    if init_times is None:
        inits = data["time"].values
    else:
        inits = _init_times(init_times)
        missing = np.setdiff1d(inits, data["time"].values)
        if missing.size:
            raise ValueError(
                f"init_times not in the data's time coordinate: {missing[:5].tolist()}"
            )
    # (past 2262-04-11 the forecast's valid times wrapped to 1677)
    add_lead(inits[:, None], lead[None, :], "persistence_forecast: a valid time", ValueError)
    state = data.sel(time=inits)
    out = state.expand_dims(prediction_timedelta=lead, axis=1)
    return _baseline(
        out, data.attrs, "persistence",
        "persistence forecast: the initial state repeated at every lead",
    )  # fmt: skip


@overload
def climatology_forecast(
    clim: xr.Dataset,
    *,
    init_times: Sequence[Any] | np.ndarray,
    leads: Sequence[Any] | np.ndarray,
) -> xr.Dataset: ...
@overload
def climatology_forecast(
    clim: xr.DataArray,
    *,
    init_times: Sequence[Any] | np.ndarray,
    leads: Sequence[Any] | np.ndarray,
) -> xr.DataArray: ...
def climatology_forecast(
    clim: xr.Dataset | xr.DataArray,
    *,
    init_times: Sequence[Any] | np.ndarray,
    leads: Sequence[Any] | np.ndarray,
) -> xr.Dataset | xr.DataArray:
    """Climatology forecast: the climatological mean for each valid time.

    Parameters
    ----------
    clim : Dataset or DataArray
        From :func:`xfuxi.data.stats.climatology` (dims ``hour`` and optionally
        ``dayofyear``).
    init_times : sequence of datetime-like
        Initial times, in UTC without a time zone (ISO strings of any precision,
        datetimes, datetime64; not numbers).
    leads : sequence of timedelta-like or numbers
        Lead times; plain numbers are hours, strings and timedelta64 must carry their unit
        (``"6h"``, ``np.timedelta64(6, "h")``).

    Returns
    -------
    Dataset or DataArray
        Dims ``time`` (initial time), ``prediction_timedelta``, then the climatology's
        spatial dims; attrs ``baseline = "climatology"``.

    Raises
    ------
    ValueError
        If the climatology lacks an hour / day of year needed for a valid time, or has a
        lead dim; an initial time is not a date and time or carries a time zone other than
        UTC; a valid time lies beyond ``datetime64[ns]`` (past 2262-04-11); or leads are
        invalid (as :func:`persistence_forecast`).

    Notes
    -----
    ``f(t0 + τ) = C(hour(t0 + τ)[, dayofyear(t0 + τ)])`` — the mean of the climatology
    period matched as for ACC (docs/design.md, Verification). Its RMSE is about √2 times
    smaller than that of a random draw from the climate and is the long-lead limit a skilful
    model approaches.

    Examples
    --------
    >>> import xarray as xr
    >>> clim = xr.DataArray([[[1.0]], [[2.0]], [[3.0]], [[4.0]]], name="temperature",
    ...                     dims=("hour", "latitude", "longitude"),
    ...                     coords={"hour": [0, 6, 12, 18], "latitude": [0.0],
    ...                             "longitude": [0.0]})
    >>> f = climatology_forecast(clim, init_times=["2000-01-01T12"], leads=[0, 6, 12])
    >>> f.values[0, :, 0, 0].tolist()
    [3.0, 4.0, 1.0]
    >>> clim.fuxi.climatology_forecast(init_times=["2000-01-01T12"], leads=[0, 6, 12]).identical(f)
    True
    """

    inits = _init_times(init_times)
    lead = _leads(leads)
    valid = xr.DataArray(  # (past 2262-04-11 a valid time wrapped to 1677)
        add_lead(inits[:, None], lead[None, :], "climatology_forecast: a valid time", ValueError),
        dims=("time", "prediction_timedelta"),
        coords={"time": inits, "prediction_timedelta": lead},
    )
    out = climatology_for(clim, valid)
    kept = {k: v for k, v in clim.attrs.items() if k in ("title", "source", "climatology_period")}
    return _baseline(
        out, kept, "climatology",
        "climatology forecast: the climatological mean at each valid time",
    )  # fmt: skip
