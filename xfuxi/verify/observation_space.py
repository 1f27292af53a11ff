"""Observation-space statistics for assimilation: O−B and O−A innovations.

Observations come in one of two layouts:

* **gridded**: a Dataset on the state's grid (same dims and coordinates), NaN where nothing
  is observed — the layout of FuXi-En4DVar's masked observations;
* **point**: a Dataset with one observation dimension (``obs`` by default) whose
  coordinates ``latitude`` and ``longitude`` (and optionally ``level``, ``time``) give each
  observation's position; the state is interpolated to those positions with the
  horizontal weights of the assimilation's observation operator
  (:func:`xfuxi.observations.interpolation.horizontal_weights`: bilinear; on a global grid
  longitude periodic and across the pole with wind components changing sign), and selected
  vertically as the observation operator does (a model level, or linear in ln p between
  the two levels that bracket the observation) and exactly at ``time``. Each data variable
  is compared with the state variable of that name;
* **assimilation layout** (:mod:`xfuxi.observations.sets`): point observations with
  one data variable ``value`` and a ``variable`` (coordinate or data variable) naming each
  observation's variable (``level`` NaN for single-level variables), checked by
  :func:`xfuxi.observations.sets.validate_observations` as the 4DVar checks them.

So O−B computed here equals the O−B of the 4DVar's diagnostics for the same background at
the observations' times; the 4DVar bins an observation between its slots to the nearest
slot, this module compares it with the state at its exact time (see :func:`innovations`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..data.schema import check_state_dims, time_dtype_problem
from ..observations.interpolation import (
    LONGITUDE_RANGE,
    VECTOR_COMPONENTS,
    horizontal_weights,
    vertical_weights,
)
from ..observations.sets import ObservationError, _observation_time_fix, validate_observations
from .weights import check_unique

__all__ = ["innovation_statistics", "innovations"]

STATISTICS = ("mean", "std", "rms", "count")


#: the metadata of the assimilation layout, coordinates or data variables
_LONG_COORDS = ("time", "latitude", "longitude", "level", "variable")


def _is_long(observations: xr.Dataset, obs_dim: str) -> bool:
    # ``variable`` as a data variable is the assimilation layout too (the 4DVar takes it)
    return (
        obs_dim in observations.dims
        and "value" in observations.data_vars
        and "variable" in observations.variables
    )


def _validated_long(observations: xr.Dataset, obs_dim: str) -> xr.Dataset:
    """The assimilation layout checked by the 4DVar's
    :func:`~xfuxi.observations.sets.validate_observations` (dims, dtypes, times without a
    time zone, longitudes), with its metadata as coordinates. ``error``, ``level`` and
    ``time``, which O−B does not need, may be absent (they stay so)."""
    obs = observations.rename({obs_dim: "obs"}) if obs_dim != "obs" else observations
    n = obs.sizes["obs"]
    stand_ins = {"error": np.ones(n), "level": np.full(n, np.nan), "time": np.zeros(n, "M8[ns]")}
    absent = [k for k in stand_ins if k not in obs.variables]
    obs = obs.assign_coords({k: ("obs", stand_ins[k]) for k in absent})
    obs = validate_observations(obs).drop_vars(absent)
    obs = obs.set_coords([c for c in _LONG_COORDS if c in obs.data_vars])
    return obs.rename({"obs": obs_dim}) if obs_dim != "obs" else obs


def _at_valid_times(state: xr.Dataset) -> xr.Dataset:
    """A forecast of one initial time (``time`` × ``prediction_timedelta``, e.g. an
    En4DVar trajectory) as states along ``time`` = its valid times, for point observations
    (which carry the time they were made); other states as they are."""
    if "prediction_timedelta" not in state.dims:
        return state
    if "time" in state.dims and state.sizes["time"] != 1:
        raise ValueError(
            f"the state is a forecast of {state.sizes['time']} initial times; point "
            "observations are matched by valid time, which several initial times give more "
            "than once: select one (state.isel(time=k))"
        )
    if "time" not in state.coords:
        raise ValueError("the state has leads (prediction_timedelta) but no initial time")
    start = state["time"].values.reshape(-1)[0]
    one = state.isel(time=0) if "time" in state.dims else state
    valid = start + one["prediction_timedelta"].values
    return (
        one.drop_vars("time")
        .assign_coords(prediction_timedelta=valid)
        .rename(prediction_timedelta="time")
    )


def _long_innovations(observations: xr.Dataset, state: xr.Dataset, obs_dim: str) -> xr.Dataset:
    given = observations
    observations = _validated_long(observations, obs_dim)
    names = observations["variable"].values.astype(str)
    missing = sorted(str(v) for v in set(names) - set(map(str, state.data_vars)))
    if missing:
        raise ValueError(f"state lacks observed variable(s) {missing}")
    # one innovation per observation: one state per time (an extra dim, e.g. an ensemble's
    # member, gave a raw "shape mismatch")
    check_state_dims(
        state[[str(v) for v in np.unique(names)]],
        "the state's observed variables",
        "the observations are compared with one state per time: select a member "
        "(ds.isel(number=0)) or pass the ensemble mean (ds.mean('number'))",
    )
    d = np.full(observations.sizes[obs_dim], np.nan)
    for name in map(str, np.unique(names)):
        idx = np.flatnonzero(names == name)
        sub = observations.isel({obs_dim: idx})
        coords = {c: sub[c] for c in ("latitude", "longitude", "level", "time") if c in sub.coords}
        if "level" in coords and np.all(np.isnan(coords["level"].values.astype("float64"))):
            coords.pop("level")
        wide = xr.Dataset({name: sub["value"].drop_vars(list(sub.coords))}).assign_coords(
            {k: (obs_dim, v.values) for k, v in coords.items()}
        )
        hx = _interp_to_points(state[name], wide, obs_dim, vector=name in VECTOR_COMPONENTS)
        unmatched = [str(c) for c in hx.dims if c != obs_dim]
        if unmatched:  # e.g. a state with times for observations without a time
            raise ValueError(
                f"the observations of {name!r} carry no coordinate {unmatched} to select the "
                f"state's {unmatched} by; give each observation one, or select one value of "
                f"each (e.g. state.isel({unmatched[0]}=0))"
            )
        d[idx] = (wide[name] - hx).values
    # the observations' own coordinates, with those given as data variables
    moved = [c for c in _LONG_COORDS if c in given.data_vars]
    out = xr.Dataset({"innovation": (obs_dim, d)}, coords=given.set_coords(moved).coords)
    out.attrs = {"statistic": "innovation"}
    return out


def _check_names(observations: xr.Dataset, state: xr.Dataset) -> None:
    if not isinstance(observations, xr.Dataset) or not isinstance(state, xr.Dataset):
        raise TypeError("observations and state must both be xarray Datasets")
    missing = [str(v) for v in observations.data_vars if v not in state.data_vars]
    if missing:
        raise ValueError(f"state lacks observed variable(s) {missing}")
    if not observations.data_vars:
        raise ValueError("observations have no data variables")


def _interp_to_points(
    field: xr.DataArray, obs: xr.Dataset, obs_dim: str, *, vector: bool
) -> xr.DataArray:
    """``H x``: the observation operator's horizontal and vertical weights, exact time."""
    name = str(field.name)
    for c in ("latitude", "longitude"):
        if c not in obs.coords or obs[c].dims != (obs_dim,):
            raise ValueError(f"point observations need a coordinate {c!r} on dim {obs_dim!r}")
        if c not in field.dims:
            raise ValueError(f"state variable {name!r} has no {c!r} dimension")
    points: dict[str, xr.DataArray] = {}
    if "time" in obs.coords and "time" in field.dims:
        _check_times(obs["time"])
        want = obs["time"].values
        pos = pd.Index(field["time"].values).get_indexer(want)
        if np.any(pos < 0):
            shown = [str(pd.Timestamp(x)) for x in np.unique(want[pos < 0])[:5]]
            raise ValueError(
                f"observations at time {shown} are not in the state's 'time' (point "
                "observations are compared with the state at their exact time)"
            )
        points["time"] = xr.DataArray(pos, dims=obs_dim)
    levels = _level_weights(field, obs, obs_dim)
    olat = obs["latitude"].values.astype("float64")
    olon = obs["longitude"].values.astype("float64")
    rows, cols, weight, inside = horizontal_weights(
        field["latitude"].values, field["longitude"].values, olat, olon, vector=vector
    )
    if not inside.all():
        bad = np.flatnonzero(~inside)
        lo, hi = LONGITUDE_RANGE
        raise ValueError(
            f"{bad.size} observation(s) of {name!r} cannot be interpolated from the "
            f"state's grid, e.g. at latitude {olat[bad[:5]].tolist()}, longitude "
            f"{olon[bad[:5]].tolist()} ({obs_dim} index {bad[:5].tolist()}); positions must "
            f"be finite, latitude within [-90, 90] and longitude within [{lo:g}, {hi:g}], "
            "and within the grid where it is regional (not wrapped in longitude nor across "
            "the pole)"
        )
    out = None
    for chan, cw in levels:  # the vertical stencil (one level, or two bracketing ones)
        if chan is not None:
            points["level"] = xr.DataArray(chan, dims=obs_dim)
        for k in range(rows.shape[1]):
            at = field.isel(
                latitude=xr.DataArray(rows[:, k], dims=obs_dim),
                longitude=xr.DataArray(cols[:, k], dims=obs_dim),
                **points,
            )
            wk = weight[:, k] * cw
            if not wk.all():
                # a NaN of zero weight (the neighbour of an observation exactly on a grid
                # point or level, SST masked over land next to an ocean point) must not make
                # H x NaN: NaN * 0 is NaN. Only non-finite values there are replaced, the
                # others are used as they are
                at = at.where(xr.DataArray(wk != 0, dims=obs_dim) | np.isfinite(at), 0)
            term = at * xr.DataArray(wk, dims=obs_dim)
            out = term if out is None else out + term
    assert out is not None
    return out.drop_vars(["latitude", "longitude", *points], errors="ignore")


def _check_times(time: xr.DataArray) -> None:
    """Refuse observation times the state's cannot be compared with, as the 4DVar does."""
    problem = time_dtype_problem(time, "time")
    if problem is not None:
        raise ObservationError(_observation_time_fix(problem))
    if not np.issubdtype(time.dtype, np.datetime64):
        raise ValueError(f"the observations' 'time' must be datetime64, got {time.dtype}")


def _level_weights(
    field: xr.DataArray, obs: xr.Dataset, obs_dim: str
) -> list[tuple[np.ndarray | None, np.ndarray]]:
    """The vertical stencil of each observation as (level index, weight) pairs: the 4DVar
    operator's (:mod:`xfuxi.observations.interpolation`): a level of the state, or linear
    in ln p between the two that bracket it; a variable without levels takes observations
    of level NaN only (none without a ``level`` coordinate)."""
    name = str(field.name)
    m = obs.sizes[obs_dim]
    if "level" not in obs.coords:
        return [(None, np.ones(m))]
    olev = obs["level"].values.astype("float64")
    if "level" not in field.dims:
        given = np.flatnonzero(~np.isnan(olev))
        if given.size:
            raise ValueError(
                f"{given.size} observation(s) of {name!r} carry a level (e.g. "
                f"{_levels(olev[given])} at {obs_dim} index "
                f"{given[:5].tolist()}), but the state's {name!r} has no levels (a "
                "single-level variable: give such observations level NaN; the 4DVar rejects "
                "them as unknown_level)"
            )
        return [(None, np.ones(m))]
    state_levels = field["level"].values.astype("float64")
    channels = [(name, float(lv)) for lv in state_levels]
    chan, cw, reason = vertical_weights(channels, np.full(m, name), olev)
    bad = np.flatnonzero(reason != "")
    if bad.size:
        raise ValueError(
            f"observations of {name!r} at level {_levels(olev[bad])} are not "
            f"in the state's 'level' nor between two of its levels "
            f"({np.sort(state_levels).tolist()}); the 4DVar rejects them as unknown_level"
        )
    if not cw[:, 1].any():  # every observation on a level of the state
        return [(chan[:, 0], cw[:, 0])]
    return [(chan[:, 0], cw[:, 0]), (chan[:, 1], cw[:, 1])]


def _levels(values: np.ndarray) -> str:
    """Up to five distinct levels as the user wrote them (``[700]``, not ``[700.0]``)."""
    return "[" + ", ".join(f"{x:g}" for x in np.unique(values)[:5]) + "]"


def innovations(
    observations: xr.Dataset,
    state: xr.Dataset,
    /,
    *,
    obs_dim: str = "obs",
) -> xr.Dataset:
    """Observation minus state (O−B for a background, O−A for an analysis).

    Parameters
    ----------
    observations : Dataset
        Gridded observations (NaN where unobserved) on the state's grid, or point
        observations along ``obs_dim`` with ``latitude``/``longitude`` (and optionally
        ``level``/``time``) coordinates on that dim; in the assimilation layout (``value``
        and ``variable``) checked as the 4DVar checks them
        (:func:`~xfuxi.observations.sets.validate_observations`; ``error``, ``level`` and
        ``time`` may be absent, and the metadata may be data variables).
    state : Dataset
        Gridded background or analysis with the observed variables; for point
        observations also a forecast of one initial time (``time`` ×
        ``prediction_timedelta``, such as an En4DVar trajectory), matched by valid time.
    obs_dim : str, default "obs"
        Name of the observation dimension of point observations.

    Returns
    -------
    Dataset
        ``y − H(x)`` in the layout of ``observations`` (NaN where there is no observation);
        for the assimilation layout, one variable ``innovation`` on ``obs_dim``.

    Raises
    ------
    ValueError
        If the state has ``obs_dim`` and the observations do not (the two swapped, as by
        ``state.fuxi.innovations(obs)``), a variable is missing from the state, grids
        differ (gridded layout), an
        observation's time is not one of the state's, its level neither one of the state's
        nor between two of them, it carries a level (not NaN) for a variable the state has
        without levels, or its position cannot be interpolated (non-finite, latitude outside
        [-90, 90], longitude outside [-180, 360], or outside a regional grid). Observation
        times that are not datetime64 (strings, cftime dates, times with a time zone) are
        refused with an :class:`~xfuxi.observations.sets.ObservationError` (a ValueError)
        naming the conversion. For the assimilation layout, also the other
        ObservationErrors of :func:`~xfuxi.observations.sets.validate_observations` (a
        mis-shaped variable, a longitude outside [-180, 360]), and a ValueError if an
        observed variable of the state has another dim than time, level, latitude and
        longitude (a :class:`~xfuxi.data.schema.SchemaError`, e.g. an ensemble's
        ``member``), or a time or level dim that the observations carry no coordinate for.

    Notes
    -----
    ``H`` is the identity on the grid (gridded layout) or, for point observations, the
    horizontal interpolation of the assimilation's observation operator
    (:func:`xfuxi.observations.interpolation.horizontal_weights`): bilinear in latitude and
    longitude; on a global grid longitude periodic, and poleward of the outermost grid row
    across the pole to the row at longitude + 180° (wind components change sign there); a
    regional grid is not extended beyond its edges. Vertically, as the operator: an
    observation on a level of the state uses it, one between two levels is linear in ln p
    between them, and a single-level variable takes observations of level NaN only (the
    4DVar rejects the others as ``unknown_level``). A NaN of the state that an observation
    gives zero weight (next to an observation exactly on a grid point) does not make its
    O−B NaN. Times are selected exactly.

    O−B here therefore equals the O−B of the 4DVar's diagnostics for observations at the
    times of the state, with one difference: the 4DVar bins an observation between its
    slots to the nearest slot (and uses any within the window), whereas here the state is
    read at each observation's exact time, and an observation at a time the state lacks is
    refused (pass a state with every observation time, e.g. a trajectory). Observations
    the 4DVar screens out (missing values, bad errors, quality control, duplicates) are
    not screened here: their O−B is computed (NaN for a missing value). See the definitions
    in the documentation (docs/design.md). Inputs are not modified.

    Examples
    --------
    >>> state = xr.Dataset({"temperature": (("latitude", "longitude"), np.zeros((2, 2)))},
    ...                    coords={"latitude": [0.0, 10.0], "longitude": [0.0, 180.0]})
    >>> obs = xr.Dataset({"temperature": ("obs", [1.5])},
    ...                  coords={"latitude": ("obs", [5.0]), "longitude": ("obs", [90.0])})
    >>> innovations(obs, state)["temperature"].values.tolist()
    [1.5]
    >>> obs.fuxi.innovations(state)["temperature"].values.tolist()  # through the accessor
    [1.5]
    """
    if not isinstance(observations, xr.Dataset) or not isinstance(state, xr.Dataset):
        raise TypeError("observations and state must both be xarray Datasets")
    if obs_dim in state.dims and obs_dim not in observations.dims:
        raise ValueError(
            f"the state has the observations' dim {obs_dim!r} and the observations do not: "
            "the observations come first, innovations(observations, state), and through the "
            "accessor obs.fuxi.innovations(state)"
        )
    check_unique(state, "state", [d for d in ("time", "prediction_timedelta") if d in state.dims])
    if obs_dim in observations.dims:  # point observations: a forecast by its valid times
        state = _at_valid_times(state)
        # a position, level or time held as one scalar coordinate is every observation's
        scalar = [c for c in ("latitude", "longitude", "level", "time")
                  if c in observations.coords and observations[c].ndim == 0]  # fmt: skip
        if scalar:
            n = observations.sizes[obs_dim]
            observations = observations.assign_coords(
                {c: (obs_dim, np.repeat(observations[c].values, n)) for c in scalar}
            )
    if _is_long(observations, obs_dim):
        return _long_innovations(observations, state, obs_dim)
    if obs_dim not in observations.dims and {"value", "variable"} <= set(observations.variables):
        # point observations along another dim than obs_dim (a misspelt obs_dim): their
        # "value" and "error" were taken as gridded variables the state lacks
        raise ValueError(
            f"obs_dim={obs_dim!r} is not a dim of the observations (they have "
            f"{list(observations.dims)}); give the dim their observations lie along"
        )
    _check_names(observations, state)
    if obs_dim in observations.dims:
        out = {}
        for v in observations.data_vars:
            hx = _interp_to_points(state[v], observations, obs_dim, vector=v in VECTOR_COMPONENTS)
            out[v] = observations[v] - hx
        return xr.Dataset(out, attrs={"statistic": "innovation"})
    from .weights import prepare_pair

    # (named as this call names them: "forecast" and "truth" in a score's messages)
    obs, st = prepare_pair(
        observations, state[list(observations.data_vars)], names=("observation set", "state")
    )
    out = obs - st
    out.attrs = {"statistic": "innovation"}
    return out


def innovation_statistics(
    observations: xr.Dataset,
    state: xr.Dataset,
    /,
    *,
    obs_dim: str = "obs",
    by: Sequence[Hashable] = ("level",),
    label: str = "omb",
) -> xr.Dataset:
    """Mean, standard deviation, RMS and count of the innovations, per variable and level.

    Parameters
    ----------
    observations : Dataset
        Observations (gridded with NaN gaps, or point observations along ``obs_dim``).
    state : Dataset
        Background (for O−B) or analysis (for O−A).
    obs_dim : str, default "obs"
        Observation dimension of point observations.
    by : str or sequence of str, default ("level",)
        Dimensions or obs coordinates to keep (statistics are taken per value of each);
        a variable without one of them is taken whole (a single-level variable has no
        ``level``), and a name that no variable has is refused (a misspelling); ``None``
        or ``()`` for none.
    label : str, default "omb"
        What the statistics describe (``"omb"`` or ``"oma"``), stored in ``attrs["kind"]``.

    Returns
    -------
    Dataset
        For each observed variable, values on a new dimension ``statistic`` =
        ``mean, std, rms, count`` (and on each of ``by`` present; single-level variables of
        the assimilation layout have no ``level``).

    Raises
    ------
    ValueError
        As :func:`innovations`; a name of ``by`` that no innovation has.

    Notes
    -----
    Over the ``n`` non-missing innovations ``d``: mean ``Σd/n``, std ``√(Σ(d − mean)²/n)``
    (population form, so that ``rms² = mean² + std²``), RMS ``√(Σd²/n)`` and ``n``. Not
    area-weighted: every observation counts once, as in operational O−B monitoring.

    Examples
    --------
    >>> state = xr.Dataset({"temperature": ("x", np.zeros(3))})
    >>> obs = xr.Dataset({"temperature": ("x", [1.0, np.nan, 3.0])})
    >>> innovation_statistics(obs, state)["temperature"].values.tolist()
    [2.0, 1.0, 2.23606797749979, 2.0]
    >>> obs.fuxi.innovation_statistics(state)["temperature"].values.tolist()  # accessor
    [2.0, 1.0, 2.23606797749979, 2.0]
    """
    if isinstance(by, str):  # one name, not its letters
        by = (by,)
    elif by is None:
        by = ()
    elif not isinstance(by, (Sequence, set, frozenset)):
        raise TypeError(f"by must be a name or a sequence of names; got {by!r}")
    d = innovations(observations, state, obs_dim=obs_dim)
    if _is_long(observations, obs_dim):
        names = d["variable"].values.astype(str)
        series = {}
        for name in map(str, np.unique(names)):
            x = d["innovation"].isel({obs_dim: np.flatnonzero(names == name)})
            if "level" in x.coords and np.all(np.isnan(x["level"].values.astype("float64"))):
                x = x.drop_vars("level")
            series[name] = x
    else:
        series = {v: d[v] for v in d.data_vars}
    unknown = [
        b for b in by
        if b != "level" and not any(b in x.dims or b in x.coords for x in series.values())
    ]  # fmt: skip
    if unknown:  # a misspelt name was ignored (a variable without levels may lack "level")
        have = sorted({str(k) for x in series.values() for k in (*x.dims, *x.coords)})
        raise ValueError(f"by names {unknown}, which no innovation has; they have {have}")
    out = {}
    for v, x in series.items():
        keep = [b for b in by if b in x.dims]
        coord_keys = [b for b in by if b not in x.dims and b in x.coords and x[b].dims]
        out[v] = _grouped_stats(x, coord_keys, keep)
    res = xr.Dataset(out)
    res = res.assign_coords(statistic=list(STATISTICS))
    res.attrs = {"kind": label}
    return res


def _grouped_stats(x: xr.DataArray, keys: list[Hashable], keep: list[Hashable]) -> xr.DataArray:
    """The statistics of ``x`` for each combination of the values of the coordinates
    ``keys`` (one group per key, nested; a combination without observations is NaN, with
    count 0), over every dim but those in ``keep``."""
    if not keys:
        return _stats(x, [d for d in x.dims if d not in keep])
    key, rest = keys[0], keys[1:]
    out = x.groupby(key).map(lambda g: _grouped_stats(g, rest, keep))
    if "statistic" in out.dims and rest:  # combinations absent from a group: count 0
        k = STATISTICS.index("count")
        count = out.isel(statistic=[k]).fillna(0.0)
        out = xr.concat([out.isel(statistic=slice(0, k)), count], dim="statistic")
    return out


def _stats(x: xr.DataArray, dims: list[Hashable]) -> xr.DataArray:
    n = x.notnull().sum(dims)
    mean = x.mean(dims, skipna=True)
    std = x.std(dims, skipna=True, ddof=0)
    rms = np.sqrt((x**2).mean(dims, skipna=True))
    return xr.concat([mean, std, rms, n.astype("float64")], dim="statistic")
