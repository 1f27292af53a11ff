"""Normalization statistics and climatologies of canonical data (definitions in docs/design.md).

:func:`normalization_stats` gives, per variable and level, the mean and standard deviation
and the standard deviation of 6-hour differences — the format that
:meth:`xfuxi.models.base.NormStats.from_dataset` reads and every checkpoint stores.
:func:`climatology` gives the mean by hour of day (and by day of year where the data has a
seasonal cycle), :func:`climatology_for` looks it up for given valid times (as ACC and the
climatology baseline need). :func:`save_stats` and :func:`load_stats` write and read either
as netCDF, atomically.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd
import xarray as xr

from ..config import check_flag, is_integer
from ..files import (
    WRITER_ATTRS,
    atomic_write_netcdf,
    check_file_replaceable,
    check_output_folder,
    netcdf_written_by,
)
from ..grid import area_weights
from .schema import (
    _LEAD_NAMES,
    SchemaError,
    _fix_time,
    check_unpacked,
    native_byte_order,
    parse_times,
    states_at_valid_times,
    validate,
)

__all__ = [
    "select_climatology",
    "STATISTICS",
    "climatology",
    "climatology_for",
    "load_stats",
    "normalization_stats",
    "save_stats",
]

log = logging.getLogger(__name__)

#: what save_stats records in its files (``xfuxi_writer``), so that it replaces only its own
STATS_WRITER = "xfuxi.save_stats"

#: the entries of the ``statistic`` dimension, in order
STATISTICS: tuple[str, ...] = ("mean", "std", "diff_std")

_SPATIAL = ("latitude", "longitude")
#: the first and last times of a year of data (e.g. 6-hourly) are 364.75 days apart
_YEAR_SPAN = np.timedelta64(364, "D")


def as_dataset(
    obj: xr.Dataset | xr.DataArray, what: str, accepted: str = "an xarray.Dataset or DataArray"
) -> xr.Dataset:
    """``obj`` as a Dataset: a Dataset as it is, a named DataArray as its one variable.

    Parameters
    ----------
    obj : Dataset or DataArray
    what : str
        What ``obj`` is (the function or argument), to start the error messages.
    accepted : str, default "an xarray.Dataset or DataArray"
        What the caller accepts, for the message when ``obj`` is neither.

    Raises
    ------
    ValueError
        If ``obj`` is a DataArray without a name.
    TypeError
        If ``obj`` is neither a Dataset nor a DataArray.

    Examples
    --------
    >>> list(as_dataset(xr.DataArray([1.0], dims="x", name="t"), "f").data_vars)
    ['t']
    """
    if isinstance(obj, xr.DataArray):
        if obj.name is None:
            raise ValueError(f"{what}: a DataArray needs a name (the variable it holds)")
        return obj.to_dataset()
    if not isinstance(obj, xr.Dataset):
        raise TypeError(f"{what}: expected {accepted}, got {type(obj)}")
    return obj


def own_attrs(obj: xr.Dataset | xr.DataArray) -> xr.Dataset | xr.DataArray:
    """``obj`` (a shallow copy: the data is shared) whose attributes, its own and those of
    each of its variables and coordinates, are deep copies: lists or dicts held in the
    attributes of an output are not those of the input it was made from."""
    out = obj.copy(deep=False)
    out.attrs = copy.deepcopy(out.attrs)
    variables = (
        list(out.variables.values())
        if isinstance(out, xr.Dataset)
        else [out.variable, *(out.coords[c].variable for c in out.coords)]
    )
    for var in variables:
        if var.attrs:
            var.attrs = copy.deepcopy(var.attrs)
    return out


def _check_step(times: np.ndarray, step: np.timedelta64, dim: str) -> None:
    if times.dtype.kind != "M":
        raise SchemaError(f"coordinate {dim!r} must be datetime64; got dtype {times.dtype}")
    if times.size < 2:
        raise ValueError(f"need at least two times along {dim!r} for diff_std; got {times.size}")
    d = np.diff(times)
    bad = np.nonzero(d != step)[0]
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"times along {dim!r} must be consecutive and evenly spaced by "
            f"{pd.Timedelta(step)} for diff_std; {times[i]} is followed by {times[i + 1]}"
        )


def normalization_stats(
    ds: xr.Dataset | xr.DataArray,
    *,
    dim: str = "time",
    step: str | np.timedelta64 | pd.Timedelta = "6h",
    weighted: bool = False,
) -> xr.Dataset:
    """Mean, standard deviation and 6-hour-difference standard deviation by variable and level.

    Parameters
    ----------
    ds : Dataset or DataArray
        Canonical data (see :func:`xfuxi.validate`) with a ``dim`` time dimension; a
        DataArray must be named.
    dim : str, default "time"
        The time dimension; ``diff_std`` is taken along it.
    step : timedelta-like, default "6h"
        The spacing that consecutive times must have for ``diff_std``.
    weighted : bool, default False
        Weight the spatial means by cell area (:func:`xfuxi.verify.weights.area_weights`).

    Returns
    -------
    xarray.Dataset
        One data variable per input variable, with dimension
        ``statistic = ["mean", "std", "diff_std"]`` and ``level`` where the variable has
        levels (float64). Variable attrs keep ``units``; dataset attrs say how it was made.

    Raises
    ------
    ValueError
        If ``dim`` is missing, a variable lacks it (a static field such as
        ``geopotential_at_surface``: the message names them all; drop them first), times
        are not evenly spaced by ``step``, or there are fewer than two times; if ``step``
        is not a positive time span.
    TypeError
        If ``dim`` is not one name, or ``weighted`` not True or False.
    SchemaError
        If the data is not canonical (see :func:`xfuxi.validate`).

    Notes
    -----
    All dimensions but ``level`` are reduced (time, latitude, longitude and any others such
    as ``number``). ``std`` is the population standard deviation (ddof = 0), as in
    WeatherBench2 / GraphCast normalization; ``diff_std`` is the standard deviation of
    ``x(t + step) − x(t)`` over the same dims, the scale of residual targets of a 6-hour
    step model (see the definitions in docs/design.md). With ``weighted=True`` means are
    area-weighted (the area weights of docs/design.md) and
    ``std = sqrt(weighted mean of squared deviations)``.
    NaN propagates (no values are skipped). Integer and float16 data are differenced in
    float64 (in their own type a difference would wrap or overflow). Dask-backed variables
    are streamed in time blocks (two passes: the sums, then the squared deviations), in
    memory bounded whatever the record length; they agree with the in-memory result to
    rounding (~1e-13 relative).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=3, freq="6h")
    >>> da = xr.DataArray(250 + np.arange(6.0).reshape(3, 1, 2), name="temperature",
    ...                   dims=("time", "latitude", "longitude"),
    ...                   coords={"time": t, "latitude": [0.0], "longitude": [0.0, 180.0]})
    >>> s = normalization_stats(da)
    >>> s.temperature.values.round(4).tolist()
    [252.5, 1.7078, 0.0]
    >>> da.fuxi.normalization_stats().temperature.values.round(4).tolist()  # accessor
    [252.5, 1.7078, 0.0]
    """
    ds = validate(as_dataset(ds, "normalization_stats"))
    if not isinstance(dim, str):  # (a list: "unhashable type" from inside)
        raise TypeError(f"dim must be the name of the time dim; got {dim!r}")
    try:
        step_ok = pd.Timedelta(step) > pd.Timedelta(0)
    except (TypeError, ValueError):
        step_ok = False
    if not step_ok:  # None gave NaT and an AttributeError; "abc" pandas' own words
        raise ValueError(f"step must be a positive time span such as '6h'; got {step!r}")
    if dim not in ds.dims:
        raise ValueError(f"dimension {dim!r} not found; the data has dims {list(ds.dims)}")
    if not ds.data_vars:
        raise ValueError("normalization_stats: the dataset has no data variables")
    static = [str(n) for n, v in ds.data_vars.items() if dim not in v.dims]
    if static:  # (a WeatherBench2 store's geopotential_at_surface, land_sea_mask)
        raise ValueError(
            f"normalization_stats: variables {static} lack the time dimension {dim!r} "
            "(static fields have no statistics over time); drop them "
            f"(ds.drop_vars({static!r})) or select the variables wanted (ds[[...]])"
        )
    step64 = pd.Timedelta(step).to_timedelta64()
    _check_step(np.asarray(ds[dim].values), step64, dim)
    weights = None
    if check_flag(weighted, "weighted"):
        weights = area_weights(ds["latitude"])
    out = {}
    lazy = {}
    for name, var in ds.data_vars.items():
        if var.dtype.kind not in "fiu":
            raise ValueError(f"variable {name!r} is not numeric (dtype {var.dtype})")
        reduce = [d for d in var.dims if d != "level"]
        if dim not in reduce:
            raise ValueError(f"variable {name!r} lacks the time dimension {dim!r}")
        if var.chunks is not None and (weights is None or "latitude" in var.dims):
            lazy[name] = var  # dask: streamed in time blocks below (bounded memory)
            continue
        x = var.astype("float64")
        # differences in float64 for integers and float16: in their own type they wrap
        # (uint8: 5 - 10 = 251), overflow (int16) or reach inf (float16 beyond 65504).
        # float32 and float64 are differenced in their own type, as they always were: the
        # recorded statistics of the shipped models stay bit-identical
        wide = var.dtype.kind == "f" and var.dtype.itemsize >= 4
        dx = (var if wide else x).diff(dim).astype("float64")
        if weights is None:
            mean = x.mean(reduce, skipna=False)
            std = x.std(reduce, skipna=False)
            dstd = dx.std(reduce, skipna=False)
        else:
            mean = x.weighted(weights).mean(reduce, skipna=False)
            std = np.sqrt(((x - mean) ** 2).weighted(weights).mean(reduce, skipna=False))
            dmean = dx.weighted(weights).mean(reduce, skipna=False)
            dstd = np.sqrt(((dx - dmean) ** 2).weighted(weights).mean(reduce, skipna=False))
        stat = xr.concat([mean, std, dstd], dim="statistic", coords="minimal", compat="override")
        stat = stat.assign_coords(statistic=list(STATISTICS))
        stat.attrs = {k: v for k, v in var.attrs.items() if k in ("units", "long_name")}
        out[name] = stat
    if lazy:
        for name, stat in _streamed_stats(lazy, dim, weights).items():
            stat.attrs = {k: v for k, v in lazy[name].attrs.items() if k in ("units", "long_name")}
            out[name] = stat
        out = {name: out[name] for name in ds.data_vars}  # the input's order
    times = ds[dim].values
    res = xr.Dataset(out)
    res = res.drop_vars([c for c in res.coords if c not in ("statistic", "level")])
    res.attrs = {
        "description": "normalization statistics: mean, std and std of differences",
        "reduced_over": f"all dims but level ({dim}, latitude, longitude, ...)",
        "diff_step": str(pd.Timedelta(step64)),
        "weighted": "area" if weighted else "none",
        "n_times": int(times.size),
        "time_start": str(times[0]),
        "time_end": str(times[-1]),
    }
    return own_attrs(res.compute())  # lists or dicts in the attrs are not the input's


#: float64 working bytes per time block when statistics of dask data are streamed
_BLOCK_BYTES = 16 * 2**20


def _time_blocks(arr: Any) -> Any:
    """``arr`` (dask, time on axis 0) with time chunks merged into blocks of about
    :data:`_BLOCK_BYTES` of float64 (never split: larger chunks stay as they are)."""
    row = 8 * int(np.prod([max(c) for c in arr.chunks[1:]], dtype="int64"))
    per_block = max(1, _BLOCK_BYTES // max(row, 1))
    if max(arr.chunks[0]) < per_block and len(arr.chunks[0]) > 1:
        arr = arr.rechunk({0: per_block})
    return arr


def _streamed_stats(
    lazy: dict[Hashable, xr.DataArray], dim: str, weights: xr.DataArray | None
) -> dict[Hashable, xr.DataArray]:
    """Mean, std and diff_std of dask-backed variables with bounded memory.

    Two streamed passes over time blocks: float64 sums of ``x`` and of ``dx`` (the
    differences within each block, plus those across block boundaries, taken apart from a
    row of each neighbour), then sums of squared deviations from those means; only one
    block per worker and the per-level partial sums are held. The same definitions as the
    in-memory path (population std, differences in the variable's own type for float32
    and float64, float64 for others, NaN propagating; area-weighted means where
    ``weights``), which they match to rounding (~1e-15 relative)."""
    import dask

    plans = {}
    first = []
    for name, var in lazy.items():
        order = [dim] + [d for d in var.dims if d not in (dim, "level")]
        order += ["level"] if "level" in var.dims else []
        red = tuple(range(len(order) - (1 if "level" in var.dims else 0)))
        arr = _time_blocks(var.transpose(*order).data)
        wide = var.dtype.kind == "f" and var.dtype.itemsize >= 4
        w = None
        if weights is not None:  # (lat axis, weights broadcast along it)
            shape = [1] * len(order)
            shape[order.index("latitude")] = var.sizes["latitude"]
            w = (order.index("latitude"),
                 np.asarray(weights.values, dtype="float64").reshape(shape))  # fmt: skip
        starts = np.cumsum(arr.chunks[0])[:-1]
        if wide:
            edge = (arr[starts] - arr[starts - 1]).astype("float64")
        else:
            edge = arr[starts].astype("float64") - arr[starts - 1].astype("float64")
        n = int(np.prod([arr.shape[a] for a in red], dtype="int64"))
        nd = n // arr.shape[0] * (arr.shape[0] - 1)
        if w is None:
            count, dcount = float(n), float(nd)
        else:  # the sum of the weights over the reduced dims, as xarray's weighted mean
            count = float(w[1].sum()) * (n // var.sizes["latitude"])
            dcount = float(w[1].sum()) * (nd // var.sizes["latitude"])
        plans[name] = (arr, red, wide, w, edge, count, dcount)
        first += [_block_sums(arr, red, wide, w, None, False),
                  _block_sums(arr, red, wide, w, None, True),
                  _weighted_sum(edge, red, None if w is None else w[1], None)]  # fmt: skip
    sums = iter(dask.compute(*first))
    means = {}
    second = []
    for name, (arr, red, wide, w, edge, count, dcount) in plans.items():
        sx, sd, se = next(sums), next(sums), next(sums)
        m, dm = sx / count, (sd + se) / dcount
        means[name] = (m, dm)
        second += [_block_sums(arr, red, wide, w, m, False),
                   _block_sums(arr, red, wide, w, dm, True),
                   _weighted_sum(edge, red, None if w is None else w[1], dm)]  # fmt: skip
    sums = iter(dask.compute(*second))
    out = {}
    for name, (*_, count, dcount) in plans.items():
        qx, qd, qe = next(sums), next(sums), next(sums)
        m, dm = means[name]
        values = np.stack([m, np.sqrt(qx / count), np.sqrt((qd + qe) / dcount)])
        var = lazy[name]
        if "level" in var.dims:
            stat = xr.DataArray(values, dims=("statistic", "level"),
                                coords={"level": var["level"]})  # fmt: skip
        else:
            stat = xr.DataArray(values, dims=("statistic",))
        out[name] = stat.assign_coords(statistic=list(STATISTICS))
    return out


def _weighted_sum(x: Any, red: tuple[int, ...], w: np.ndarray | None, centre: Any) -> Any:
    """Sum over ``red`` of ``x`` (or of its squared deviations from ``centre``), weighted."""
    if centre is not None:
        x = (x - centre) ** 2
    return (x if w is None else x * w).sum(axis=red)


def _block_sums(
    arr: Any,
    red: tuple[int, ...],
    wide: bool,
    w: tuple[int, np.ndarray] | None,
    centre: Any,
    diff: bool,
) -> Any:
    """Per-block float64 partial sums over ``red`` of ``x`` (``diff``: of its differences
    along axis 0 within the block) or of their squared deviations from ``centre``, then
    summed over the blocks (a dask reduction holding one block per task)."""

    def block_sum(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        # one float64 copy of the block, worked on in place (the peak is ~2 blocks)
        if diff:
            x = np.diff(block if wide else block.astype("float64"), axis=0)
            x = x.astype("float64", copy=False)
        else:
            x = block.astype("float64")
        if centre is not None:
            c = centre
            if np.ndim(c):  # per level (the last axis): the block's levels only
                lo, hi = block_info[0]["array-location"][-1]
                c = c[lo:hi]
            x -= c
            np.multiply(x, x, out=x)
        if w is not None:
            lat_axis, weights = w
            lo, hi = block_info[0]["array-location"][lat_axis]
            x *= np.take(weights, np.arange(lo, hi), axis=lat_axis)
        return x.sum(axis=red).reshape([1 if a in red else s for a, s in enumerate(block.shape)])

    chunks = tuple((1,) * len(c) if a in red else c for a, c in enumerate(arr.chunks))
    parts = arr.map_blocks(block_sum, chunks=chunks, dtype="float64", meta=np.array((), "float64"))
    return parts.sum(axis=red)


def _has_seasonal_cycle(ds: xr.Dataset | xr.DataArray, dim: str) -> bool:
    """Whether ``ds`` covers a year along ``dim`` and does not declare
    ``attrs["seasonal_cycle"] == "none"`` (its own attrs: a DataArray's or a Dataset's)."""
    if str(ds.attrs.get("seasonal_cycle", "")).lower() == "none":
        return False
    t = ds[dim].values
    return bool(t.size > 1 and _time_span(t) >= _YEAR_SPAN)


def _time_span(times: np.ndarray) -> np.timedelta64:
    """The latest minus the earliest of ``times`` (non-empty datetime64, no NaT), whatever
    their order: descending or shuffled times span as long as ascending ones."""
    return times.max() - times.min()


@overload
def climatology(
    ds: xr.Dataset,
    *,
    seasonal: bool | None = None,
    window: int | None = None,
    dim: str = "time",
) -> xr.Dataset: ...
@overload
def climatology(
    ds: xr.DataArray,
    *,
    seasonal: bool | None = None,
    window: int | None = None,
    dim: str = "time",
) -> xr.DataArray: ...
def climatology(
    ds: xr.Dataset | xr.DataArray,
    *,
    seasonal: bool | None = None,
    window: int | None = None,
    dim: str = "time",
) -> xr.Dataset | xr.DataArray:
    """Climatological mean by hour of day and, where there is a seasonal cycle, day of year.

    Parameters
    ----------
    ds : Dataset or DataArray
        Canonical data with a datetime ``dim``. States of a forecast at one lead (a
        scalar ``prediction_timedelta``, as ``fc.sel(prediction_timedelta="6h")`` leaves)
        are valid at ``time + lead`` and are grouped by those times
        (:func:`xfuxi.data.schema.states_at_valid_times`). A forecast of several leads (a
        ``prediction_timedelta`` dim) is refused: its ``time`` is the initial time, not
        the time its states are valid at.
    seasonal : bool, optional
        Group by day of year as well. By default True when the data covers a year (earliest
        and latest times at least 364 days apart, in whatever order the times come) and
        does not declare
        ``attrs["seasonal_cycle"] == "none"`` (in the attrs of the Dataset, or of the
        DataArray; the Held–Suarez world declares it: its climate has no seasons).
    window : int, optional
        Smooth the seasonal climatology over ``window`` days (odd, at least 3; 61 is
        WeatherBench2's climatology): each day of year and hour is the mean of the samples
        of that hour within ``window // 2`` days of it (around the year's end too), weighted
        by ``1 − |k| / (window // 2)`` at ``k`` days away, as WeatherBench2 builds its
        climatologies. The result holds every day of year 1..366. Default: no smoothing.
    dim : str, default "time"
        Time dimension.

    Returns
    -------
    Dataset or DataArray
        Same type as ``ds``; ``dim`` replaced by ``hour`` (and ``dayofyear`` first, where
        seasonal), holding the mean over all times in each group; attrs say how it was made.

    Raises
    ------
    ValueError
        If ``dim`` is missing or not datetime64; ``dim`` is ``time`` and the data has a lead
        dim (``prediction_timedelta`` or ``lead_time``: give states labelled by the time
        they are valid at, e.g. the truth or ``fc.sel(prediction_timedelta="6h")``);
        ``seasonal=True`` for data shorter than
        a year; ``window`` not an odd integer of at least 3 (and at most 365), or given
        without a seasonal climatology; ``dim`` empty, or its times at different offsets
        from the hour (hh:00 and hh:30 would fall in one hour's group; all at hh:30 is
        fine).
    TypeError
        If ``seasonal`` is not True, False or None.
    SchemaError
        If a variable is not numeric (a grouped mean would drop it);
        if ``dim`` holds a time twice (it would be counted twice) or a missing time (NaT),
        as :func:`xfuxi.validate` refuses them, or a scalar lead is not a time span; a
        variable still packed (``scale_factor``, ``add_offset`` or ``_Unsigned`` in its
        attributes: read with ``mask_and_scale=False``), or times outside the years 1678
        to 2261 of ``datetime64[ns]``.

    Notes
    -----
    The groups are WeatherBench2's: ``hour = time.dt.hour``, ``dayofyear =
    time.dt.dayofyear`` (1..366). Without ``window`` each group holds the plain mean of its
    samples (no smoothing across days). WeatherBench2's own climatologies are smoothed
    (its ``compute_climatology`` script: a 61-day window by default), so
    ``window=61`` reproduces them: as there, a year without 29 February lends its
    31 December to day 366, and with many years a day's mean uses every sample of its
    window. Where it differs: a missing value (NaN) in the data makes its group NaN here
    (WeatherBench2's weighted mean skips it), and a missing day counts as missing (its
    script fills every day missing from a year with that year's day 365). This is the
    climatology that ACC anomalies are taken against (docs/verification.md); look values up
    for given times with :func:`climatology_for`.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=8, freq="6h")
    >>> da = xr.DataArray(np.arange(8.0), dims="time", coords={"time": t}, name="x")
    >>> climatology(da).values.tolist()
    [2.0, 3.0, 4.0, 5.0]
    >>> da.fuxi.climatology().hour.values.tolist()  # through the accessor
    [0, 6, 12, 18]
    >>> t = pd.date_range("2001-01-01", "2002-12-31", freq="D")   # two years, daily
    >>> da = xr.DataArray(np.cos(2 * np.pi * t.day_of_year / 365.25), dims="time",
    ...                   coords={"time": t}, name="x")
    >>> smooth = climatology(da, window=61)
    >>> smooth.sizes["dayofyear"], round(float(smooth.sel(dayofyear=1, hour=0)), 3)
    (366, 0.979)
    """
    # states of a forecast at one lead are valid at time + lead (as_dataset names a
    # non-xarray input)
    if dim == "time" and isinstance(ds, (xr.Dataset, xr.DataArray)):
        ds = states_at_valid_times(ds, "climatology")
    xarray = isinstance(ds, (xr.Dataset, xr.DataArray))  # (as_dataset names anything else)
    lead = (
        next((n for n in _LEAD_NAMES if n in ds.dims), None) if xarray and dim == "time" else None
    )
    if lead is not None:  # grouped by the initial time's hour, looked up by the valid hour
        raise ValueError(
            f"climatology: the data has a lead dim {lead!r} (a forecast of several leads), "
            "so its 'time' is the initial time, not the time its states are valid at; a "
            "climatology is keyed by valid time: give states on valid times (the truth, or "
            f"the forecast at one lead, e.g. fc.sel({lead}=np.timedelta64(6, 'h')), which "
            "is labelled by its valid times)"
        )
    is_da = isinstance(ds, xr.DataArray)
    data = as_dataset(ds, "climatology") if not is_da else ds.to_dataset(name="__clim__")
    # big-endian values (>f4 of a netCDF3 file, h5py): flox's grouped sums refuse them
    data = native_byte_order(data)
    check_unpacked(ds)  # stored counts (read with mask_and_scale=False): not averaged
    if dim not in data.dims:
        raise ValueError(f"dimension {dim!r} not found; the data has dims {list(data.dims)}")
    if data[dim].dtype.kind != "M":
        raise ValueError(f"coordinate {dim!r} must be datetime64; got {data[dim].dtype}")
    _fix_time(data, dim)  # validate's check: a time held twice would be counted twice
    auto = _has_seasonal_cycle(ds if is_da else data, dim)  # a DataArray's own attrs
    check_flag(seasonal, "seasonal", allow_none=True)  # "False" was taken as True
    if seasonal is None:
        seasonal = auto
    elif seasonal and data[dim].size and _time_span(data[dim].values) < _YEAR_SPAN:
        raise ValueError("seasonal=True needs data spanning at least a year")
    if window is not None:
        _check_window(window, seasonal)
    odd = [str(v) for v, x in data.data_vars.items() if x.dtype.kind not in "fiub"]
    if odd:  # xarray's grouped means drop such a variable without a word
        raise SchemaError(
            f"climatology: variable(s) {odd} are not numeric "
            f"({[str(data[v].dtype) for v in odd]}); convert or drop them first"
        )
    if data[dim].size == 0:
        raise ValueError(f"climatology of no time: {dim!r} is empty")
    t = data[dim]
    offset = (t.dt.minute * 60 + t.dt.second).values
    if np.unique(offset).size > 1:  # grouped by hour of day: hh:00 and hh:30 in one group
        raise ValueError(
            f"climatology groups by hour of day; the times are at {np.unique(offset).size} "
            f"different offsets from the hour (e.g. {str(t.values[0])[:19]} and "
            f"{str(t.values[np.argmax(offset != offset[0])])[:19]}), which one hour would "
            "mix: select or round the times first"
        )
    hour = t.dt.hour
    if window is not None:
        out = _windowed_climatology(data, dim, int(window))
        order = ("dayofyear", "hour")
    elif seasonal:
        key = (t.dt.dayofyear * 100 + hour).rename("__key__")
        g = data.groupby(key).mean(dim, skipna=False)
        k = g["__key__"].values
        mindex = pd.MultiIndex.from_arrays([k // 100, k % 100], names=["dayofyear", "hour"])
        g = g.assign_coords(xr.Coordinates.from_pandas_multiindex(mindex, "__key__"))
        out = g.unstack("__key__")
        # groups with no sample come out as NaN after unstacking; they are real gaps
        order = ("dayofyear", "hour")
    else:
        out = data.groupby(hour.rename("hour")).mean(dim, skipna=False)
        order = ("hour",)
    out = out.transpose(*order, ...)
    out = out.assign_coords({d: out[d].astype("int64") for d in order})
    out.attrs = {
        **{k: v for k, v in data.attrs.items() if k in ("title", "source")},
        "description": "climatological mean by "
        + " and ".join(order)
        + (f", smoothed over a {window}-day triangular window" if window is not None else ""),
        "climatology_period": f"{t.values.min()} to {t.values.max()}",
        "n_times": int(t.size),
        **({"window_days": int(window)} if window is not None else {}),
    }
    for name in out.data_vars:
        out[name].attrs = dict(data[name].attrs)
    if is_da:
        res = out["__clim__"].rename(ds.name)
        res.attrs = {**ds.attrs, **out.attrs}
        # (lists or dicts in the attrs are not the input's; a zarr store's codecs and chunks
        # are not the result's: to_zarr of it failed on a version-2 store's)
        return own_attrs(res.drop_encoding())
    return own_attrs(out.drop_encoding())


def _check_window(window: Any, seasonal: bool) -> None:
    """``climatology``'s ``window``: an odd int in [3, 365], with a seasonal climatology."""
    if not is_integer(window) or window < 3 or window % 2 == 0 or window > 365:
        raise ValueError(
            f"window must be an odd number of days from 3 to 365 (61 is WeatherBench2's), "
            f"got {window!r}"
        )
    if not seasonal:
        raise ValueError(
            "window smooths a climatology across days of the year; this one is by hour alone "
            "(data shorter than a year, seasonal=False, or attrs['seasonal_cycle'] = 'none'): "
            "drop window, or pass seasonal=True with data covering a year"
        )


def _circular_window_sum(a: np.ndarray, h: int) -> np.ndarray:
    """``Σ_k (1 − |k|/h) a[..., d + k]`` over ``|k| < h``, ``d + k`` modulo the last axis
    (the days of the year on a circle), summed in the order of ``k``."""
    out = None
    for k in range(-h + 1, h):  # the window's end points weigh 0
        term = (1.0 - abs(k) / h) * np.roll(a, -k, axis=-1)
        out = term if out is None else out + term
    return out


def _windowed_climatology(data: xr.Dataset, dim: str, window: int) -> xr.Dataset:
    """The mean by day of year and hour over a triangular window of ``window`` days.

    Sums and sample counts by (day of year, hour), with each year lacking 29 February
    lending its day 365 to day 366, are smoothed along the circle of 366 days with the
    weights ``1 − |k| / h`` (``h = window // 2``, ``|k| < h``); the mean is their ratio.
    A day of year and hour with no sample in its window is NaN. A variable without ``dim``
    (a land-sea mask) is its own climatology at every day and hour, as in the plain one;
    each variable keeps its floating-point type (float32 stays float32).
    """
    static = [v for v in data.data_vars if dim not in data[v].dims]
    dtypes = {v: data[v].dtype for v in data.data_vars}
    kept = data[static]
    data = data.drop_vars(static)
    t = data[dim]
    doy, hour = t.dt.dayofyear.values, t.dt.hour.values
    lend = (doy == 365) & ~t.dt.is_leap_year.values  # a year without 29 February
    parts = [data.assign_coords(__key__=(dim, doy * 100 + hour))]
    if lend.any():
        lent = data.isel({dim: lend})
        parts.append(lent.assign_coords(__key__=(dim, 366 * 100 + hour[lend])))
    keys = np.concatenate([p["__key__"].values for p in parts])
    sums = (
        xr.concat([p.groupby("__key__").sum(dim, skipna=False) for p in parts], "__key__")
        .groupby("__key__")
        .sum("__key__", skipna=False)
    )
    uniq, count = np.unique(keys, return_counts=True)
    hours = np.unique(hour)
    days = np.arange(1, 367)
    index = pd.MultiIndex.from_product([days, hours], names=["dayofyear", "hour"])
    full = index.get_level_values(0).to_numpy() * 100 + index.get_level_values(1).to_numpy()
    sums = sums.reindex(__key__=full, fill_value=0.0)
    counts = xr.DataArray(
        pd.Series(count, index=uniq).reindex(full, fill_value=0).to_numpy().astype("float64"),
        dims="__key__",
    )
    grid = xr.Coordinates.from_pandas_multiindex(index, "__key__")
    sums = sums.assign_coords(grid).unstack("__key__")
    counts = counts.assign_coords(grid).unstack("__key__")
    h = window // 2

    def smooth(da: xr.DataArray) -> xr.DataArray:
        # one task per block along the whole year (rolling a dask array made tens of tasks
        # per output chunk for each of the window's days: 757 000 tasks for two variables
        # of a 1.5° year); blocks of one level, so that they stay small
        if da.chunks is not None:
            da = da.chunk({"dayofyear": -1, **({"level": 1} if "level" in da.dims else {})})
        return xr.apply_ufunc(
            _circular_window_sum, da, kwargs={"h": h},
            input_core_dims=[["dayofyear"]], output_core_dims=[["dayofyear"]],
            dask="parallelized", output_dtypes=[da.dtype],
        )  # fmt: skip

    num = sums.map(smooth, keep_attrs=True)
    den = smooth(counts)
    out = (num / den.where(den > 0)).assign_coords(dayofyear=days, hour=hours)
    for v in static:  # the same at every day of year and hour
        out[v] = kept[v].expand_dims(dayofyear=days, hour=hours)
    for v, dtype in dtypes.items():  # the counts are float64: not the data's type
        if dtype.kind == "f" and out[v].dtype != np.result_type(dtype, np.float32):
            out[v] = out[v].astype(np.result_type(dtype, np.float32))
    return out[list(dtypes)]


def climatology_for(
    clim: xr.Dataset | xr.DataArray,
    valid_times: xr.DataArray | Sequence[Any] | np.ndarray | pd.DatetimeIndex,
) -> xr.Dataset | xr.DataArray:
    """Look a climatology up for given valid times (matching hour and day of year).

    Parameters
    ----------
    clim : Dataset or DataArray
        As returned by :func:`climatology` (dims ``hour`` and optionally ``dayofyear``).
    valid_times : DataArray or array_like of datetimes
        Times of any shape as a DataArray (e.g. a forecast's valid times on
        ``(time, prediction_timedelta)``), or a 1-D sequence (ISO strings of any
        precision, datetimes, datetime64; not numbers), which becomes dimension ``time``.

    Returns
    -------
    Dataset or DataArray
        The climatology on the dims of ``valid_times`` (``hour`` / ``dayofyear`` dropped).

    Raises
    ------
    ValueError
        If ``clim`` has neither ``hour`` nor ``dayofyear``, lacks a needed value or has a
        lead dim (:func:`select_climatology`); a
        valid time is not a date and time (a number, an unreadable string: named), is
        missing (NaT) or carries a time zone.

    Notes
    -----
    Delegates the matching to :func:`select_climatology`
    (WeatherBench2 convention, as ACC uses it).

    Examples
    --------
    >>> import xarray as xr
    >>> clim = xr.DataArray([1.0, 2.0, 3.0, 4.0], dims="hour", coords={"hour": [0, 6, 12, 18]})
    >>> climatology_for(clim, ["2001-05-01T18", "2001-05-02T06"]).values.tolist()
    [4.0, 2.0]
    """

    if "hour" not in clim.dims and "dayofyear" not in clim.dims:
        raise ValueError(
            f"clim must have dimension 'hour' (and optionally 'dayofyear'); got {list(clim.dims)}"
        )
    if isinstance(valid_times, xr.DataArray):
        times = valid_times
    else:  # (a number was read as nanoseconds after 1970; "T06" and "T12:00" clashed)
        values = parse_times(valid_times, "valid_times", error=ValueError).values
        times = xr.DataArray(values, dims="time", coords={"time": values})
    if times.dtype.kind != "M":
        raise ValueError(f"valid_times must be datetime64; got dtype {times.dtype}")
    return select_climatology(clim, times)


def save_stats(
    stats: xr.Dataset | xr.DataArray, path: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write statistics or a climatology to a netCDF file, atomically.

    Parameters
    ----------
    stats : Dataset or DataArray
        E.g. from :func:`normalization_stats` or :func:`climatology` (a DataArray must be
        named).
    path : path
        Target file; its directory must exist.
    overwrite : bool, default False
        Replace an earlier file of ``save_stats`` at ``path`` (it records itself in the
        file's ``xfuxi_writer`` attribute); any other file is never replaced, a link or a
        directory never (the data-safety policy, docs/safety.md).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    FileNotFoundError
        The directory of ``path`` does not exist.
    xfuxi.files.OutputExistsError
        Something is at ``path`` that may not be replaced (see ``overwrite``).
    TypeError
        ``stats`` is neither a Dataset nor a DataArray.
    ValueError
        ``stats`` is a DataArray without a name.

    Notes
    -----
    Written to a temporary file in the same directory, then moved into place with
    ``os.replace``, so readers never see a partial file.

    Examples
    --------
    >>> import os, tempfile, xarray as xr
    >>> s = xr.Dataset({"temperature": ("statistic", [280.0, 10.0, 1.0])},
    ...                coords={"statistic": ["mean", "std", "diff_std"]})
    >>> p = save_stats(s, os.path.join(tempfile.mkdtemp(), "stats.nc"))
    >>> load_stats(p).identical(s)
    True
    """
    ds = as_dataset(stats, "save_stats")
    path = Path(path).expanduser()
    check_output_folder(path)  # a file where its folder should be, or a read-only folder
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {str(path.parent)!r} does not exist")
    replacing = check_file_replaceable(
        path, overwrite=overwrite, writer=STATS_WRITER,
        ours=lambda p: netcdf_written_by(p, STATS_WRITER),
    )  # fmt: skip
    return atomic_write_netcdf(ds, path, writer=STATS_WRITER, replacing=replacing)


def load_stats(path: str | os.PathLike) -> xr.Dataset:
    """Read statistics or a climatology written by :func:`save_stats` (fully into memory).

    Parameters
    ----------
    path : path
        netCDF file.

    Returns
    -------
    xarray.Dataset
        The loaded dataset (the file is closed).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If a ``std`` or ``diff_std`` in the file is negative or infinite.

    Examples
    --------
    >>> import os, tempfile, xarray as xr
    >>> s = xr.Dataset({"temperature": ("statistic", [280.0, 10.0, 1.0])},
    ...                coords={"statistic": ["mean", "std", "diff_std"]})
    >>> back = load_stats(save_stats(s, os.path.join(tempfile.mkdtemp(), "stats.nc")))
    >>> back.temperature.sel(statistic="std").item()
    10.0
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no statistics file at {str(path)!r}")
    with xr.open_dataset(path) as ds:
        out = ds.load()
    for key in WRITER_ATTRS:  # the writer's record, not the statistics'
        out.attrs.pop(key, None)
    _check_loaded_spreads(out, path)
    return out


def _check_loaded_spreads(stats: xr.Dataset, path: Path) -> None:
    """Refuse a statistics file whose ``std`` or ``diff_std`` is negative or infinite.

    A file :func:`save_stats` wrote never holds one; a file written elsewhere might, and a
    negative spread would otherwise load and only fail (or flip signs) where it is used.
    NaN is left to the user of the statistics (a field may have none at some point).
    """
    if "statistic" not in stats.coords:
        return
    labels = [str(s) for s in np.atleast_1d(stats["statistic"].values)]
    for name, da in stats.data_vars.items():
        if "statistic" not in da.dims or not np.issubdtype(da.dtype, np.number):
            continue
        for label in ("std", "diff_std"):
            if label not in labels:
                continue
            values = np.asarray(da.isel(statistic=labels.index(label)).values, dtype=float)
            bad = (values < 0) | np.isinf(values)
            if bad.any():
                raise ValueError(
                    f"statistics file {str(path)!r}: {name!r} has a {label} that is "
                    f"negative or infinite ({values[bad].ravel()[0]!r}); a spread must be "
                    "finite and ≥ 0"
                )


def select_climatology(
    climatology: xr.Dataset | xr.DataArray, times: xr.DataArray, /
) -> xr.Dataset | xr.DataArray:
    """Pick climatology values matching ``times`` by day of year and hour.

    Parameters
    ----------
    climatology : Dataset or DataArray
        Climatology with dim ``hour`` and optionally ``dayofyear`` (as written by
        ``xfuxi.data.stats.climatology``), or one already on ``times``' dims (returned as is).
    times : DataArray
        datetime64 times (any dims), e.g. valid times of a forecast.

    Returns
    -------
    Dataset or DataArray
        Climatology on the dims of ``times``.

    Raises
    ------
    ValueError
        If a needed day of year or hour is not in the climatology, or it holds one twice;
        the climatology (by ``hour`` or ``dayofyear``) has a lead dim
        (``prediction_timedelta`` or ``lead_time``: a climatology of a forecast of several
        leads, keyed by its initial times, not by valid times).
    TypeError
        If ``times`` is not a DataArray of datetime64 (and the climatology is not already
        on its dims).

    Notes
    -----
    As defined in docs/design.md, anomalies are taken against a climatology matched by day
    of year and hour (WeatherBench2 convention: ``dayofyear`` 1..366 from
    ``time.dt.dayofyear``, ``hour`` from ``time.dt.hour``).

    Examples
    --------
    >>> import pandas as pd
    >>> clim = xr.DataArray([10.0, 20.0], dims="hour", coords={"hour": [0, 12]})
    >>> t = xr.DataArray(pd.to_datetime(["2020-01-01T12", "2020-01-02T00"]), dims="time")
    >>> select_climatology(clim, t).values.tolist()
    [20.0, 10.0]
    """
    if "hour" not in climatology.dims and "dayofyear" not in climatology.dims:
        return climatology
    lead = next((n for n in _LEAD_NAMES if n in climatology.dims), None)
    if lead is not None:  # keyed by the initial times' hours, looked up by valid hours
        raise ValueError(
            f"the climatology has a lead dim {lead!r}: it was made from a forecast of "
            "several leads, and is keyed by the hours (and days) of their initial times, "
            "while it is looked up by valid time; make it from states on valid times (the "
            f"truth, or the forecast at one lead, e.g. fc.sel({lead}=np.timedelta64(6, 'h')))"
        )
    sel: dict[str, xr.DataArray] = {}
    if not isinstance(times, xr.DataArray) or times.dtype.kind != "M":
        raise TypeError(
            "times must be a DataArray of datetime64 (e.g. ds['time'] or "
            f"xr.DataArray(pd.to_datetime([...]), dims='time')); got {type(times).__name__}"
            + (f" of {times.dtype}" if isinstance(times, xr.DataArray) else "")
        )
    for key in ("hour", "dayofyear"):  # (pandas' "Reindexing only valid with uniquely
        # valued Index objects" otherwise)
        if key in climatology.indexes and not climatology.indexes[key].is_unique:
            index = climatology.indexes[key]
            twice = sorted({int(v) for v in index[index.duplicated()]})[:5]
            raise ValueError(f"the climatology holds {key} {twice} more than once")
    keys = {"hour": times.dt.hour, "dayofyear": times.dt.dayofyear}
    for key, val in keys.items():
        if key in climatology.dims:
            want = np.unique(val.values)
            have = climatology[key].values
            missing = np.setdiff1d(want, have)
            if missing.size:
                raise ValueError(
                    f"climatology lacks {key} value(s) {missing.tolist()[:5]} needed for the "
                    "verification times"
                )
            sel[key] = xr.DataArray(val.values, dims=val.dims)
    out = climatology.sel(sel).drop_vars(list(sel), errors="ignore")
    out = out.assign_coords({d: times[d] for d in times.dims if d in times.coords})
    return own_attrs(out)  # lists or dicts in the attrs are not the climatology's
