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
  exactly at ``level`` and ``time``. Each data variable is compared with the state variable
  of that name;
* **assimilation layout** (:mod:`xfuxi.observations.sets`): point observations with
  one data variable ``value`` and a ``variable`` coordinate naming each observation's
  variable (``level`` NaN for single-level variables).

So O−B computed here equals the O−B of the 4DVar's diagnostics for the same background.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..data.schema import check_state_dims
from ..observations.interpolation import LONGITUDE_RANGE, VECTOR_COMPONENTS, horizontal_weights

__all__ = ["innovation_statistics", "innovations"]

STATISTICS = ("mean", "std", "rms", "count")


def _is_long(observations: xr.Dataset, obs_dim: str) -> bool:
    return (
        obs_dim in observations.dims
        and "value" in observations.data_vars
        and "variable" in observations.coords
    )


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
    names = observations["variable"].values.astype(str)
    missing = sorted(set(names) - set(map(str, state.data_vars)))
    if missing:
        raise ValueError(f"state lacks observed variable(s) {missing}")
    # one innovation per observation: one state per time (an extra dim, e.g. an ensemble's
    # member, gave a raw "shape mismatch")
    check_state_dims(
        state[list(np.unique(names))],
        "the state's observed variables",
        "the observations are compared with one state per time: select a member "
        "(ds.isel(number=0)) or pass the ensemble mean (ds.mean('number'))",
    )
    d = np.full(observations.sizes[obs_dim], np.nan)
    for name in np.unique(names):
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
                f"the observations of {str(name)!r} carry no coordinate {unmatched} to select the "
                f"state's {unmatched} by; give each observation one, or select one value of "
                f"each (e.g. state.isel({unmatched[0]}=0))"
            )
        d[idx] = (wide[name] - hx).values
    out = xr.Dataset({"innovation": (obs_dim, d)}, coords=observations.coords)
    out.attrs = {"statistic": "innovation"}
    return out


def _check_names(observations: xr.Dataset, state: xr.Dataset) -> None:
    if not isinstance(observations, xr.Dataset) or not isinstance(state, xr.Dataset):
        raise TypeError("observations and state must both be xarray Datasets")
    missing = [v for v in observations.data_vars if v not in state.data_vars]
    if missing:
        raise ValueError(f"state lacks observed variable(s) {missing}")
    if not observations.data_vars:
        raise ValueError("observations have no data variables")


def _interp_to_points(
    field: xr.DataArray, obs: xr.Dataset, obs_dim: str, *, vector: bool
) -> xr.DataArray:
    """``H x``: the observation operator's horizontal weights, exact level and time."""
    for c in ("latitude", "longitude"):
        if c not in obs.coords or obs[c].dims != (obs_dim,):
            raise ValueError(f"point observations need a coordinate {c!r} on dim {obs_dim!r}")
        if c not in field.dims:
            raise ValueError(f"state variable {field.name!r} has no {c!r} dimension")
    points: dict[str, xr.DataArray] = {}
    for c in ("level", "time"):
        if c in obs.coords and c in field.dims:
            want = obs[c].values
            pos = pd.Index(field[c].values).get_indexer(want)
            if np.any(pos < 0):
                missing = np.unique(want[pos < 0])
                shown = (
                    [str(pd.Timestamp(x)) for x in missing[:5]]
                    if np.issubdtype(missing.dtype, np.datetime64)
                    else missing[:5].tolist()
                )
                raise ValueError(f"observations at {c} {shown} are not in the state's {c!r}")
            points[c] = xr.DataArray(pos, dims=obs_dim)
    olat = obs["latitude"].values.astype("float64")
    olon = obs["longitude"].values.astype("float64")
    rows, cols, weight, inside = horizontal_weights(
        field["latitude"].values, field["longitude"].values, olat, olon, vector=vector
    )
    if not inside.all():
        bad = np.flatnonzero(~inside)
        lo, hi = LONGITUDE_RANGE
        raise ValueError(
            f"{bad.size} observation(s) of {field.name!r} cannot be interpolated from the "
            f"state's grid, e.g. at latitude {olat[bad[:5]].tolist()}, longitude "
            f"{olon[bad[:5]].tolist()} ({obs_dim} index {bad[:5].tolist()}); positions must "
            f"be finite, latitude within [-90, 90] and longitude within [{lo:g}, {hi:g}], "
            "and within the grid where it is regional (not wrapped in longitude nor across "
            "the pole)"
        )
    out = None
    for k in range(rows.shape[1]):
        at = field.isel(
            latitude=xr.DataArray(rows[:, k], dims=obs_dim),
            longitude=xr.DataArray(cols[:, k], dims=obs_dim),
            **points,
        )
        wk = weight[:, k]
        if not wk.all():
            # a NaN of zero weight (the neighbour of an observation exactly on a grid point,
            # SST masked over land next to an ocean point) must not make H x NaN: NaN * 0 is
            # NaN. Only non-finite values there are replaced, the others are used as they are
            at = at.where(xr.DataArray(wk != 0, dims=obs_dim) | np.isfinite(at), 0)
        term = at * xr.DataArray(wk, dims=obs_dim)
        out = term if out is None else out + term
    assert out is not None
    return out.drop_vars(["latitude", "longitude", *points], errors="ignore")


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
        ``level``/``time``) coordinates on that dim.
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
        If a variable is missing from the state, grids differ (gridded layout), an
        observation's level or time is not in the state, or its position cannot be
        interpolated (non-finite, latitude outside [-90, 90], longitude outside [-180, 360],
        or outside a regional grid). For the assimilation layout, also if an observed
        variable of the state has another dim than time, level, latitude and longitude (a
        :class:`~xfuxi.data.schema.SchemaError`, e.g. an ensemble's ``member``), or a time
        or level dim that the observations carry no coordinate for.

    Notes
    -----
    ``H`` is the identity on the grid (gridded layout) or, for point observations, the
    horizontal interpolation of the assimilation's observation operator
    (:func:`xfuxi.observations.interpolation.horizontal_weights`): bilinear in latitude and
    longitude; on a global grid longitude periodic, and poleward of the outermost grid row
    across the pole to the row at longitude + 180° (wind components change sign there); a
    regional grid is not extended beyond its edges. A NaN of the state that an observation
    gives zero weight (next to an observation exactly on a grid point) does not make its
    O−B NaN. Levels and times are selected exactly. O−B here therefore equals the O−B of
    the 4DVar's diagnostics. See the definitions in the documentation (docs/design.md).
    Inputs are not modified.

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
    if obs_dim in observations.dims:  # point observations: a forecast by its valid times
        state = _at_valid_times(state)
    if _is_long(observations, obs_dim):
        return _long_innovations(observations, state, obs_dim)
    _check_names(observations, state)
    if obs_dim in observations.dims:
        out = {}
        for v in observations.data_vars:
            hx = _interp_to_points(state[v], observations, obs_dim, vector=v in VECTOR_COMPONENTS)
            out[v] = observations[v] - hx
        return xr.Dataset(out, attrs={"statistic": "innovation"})
    from .weights import prepare_pair

    obs, st = prepare_pair(observations, state[list(observations.data_vars)])
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
    by : sequence of str, default ("level",)
        Dimensions or obs coordinates to keep (statistics are taken per value of each);
        names that the data do not have are ignored.
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
        As :func:`innovations`.

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
    d = innovations(observations, state, obs_dim=obs_dim)
    if _is_long(observations, obs_dim):
        names = d["variable"].values.astype(str)
        series = {}
        for name in np.unique(names):
            x = d["innovation"].isel({obs_dim: np.flatnonzero(names == name)})
            if "level" in x.coords and np.all(np.isnan(x["level"].values.astype("float64"))):
                x = x.drop_vars("level")
            series[name] = x
    else:
        series = {v: d[v] for v in d.data_vars}
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
