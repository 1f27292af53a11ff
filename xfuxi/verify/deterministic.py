"""Deterministic scores: RMSE, MSE, MAE, bias and anomaly correlation.

All scores take a forecast and a truth (Datasets or DataArrays), reduce over ``dim`` with
latitude area weights by default, and keep every dimension not reduced, so
``rmse(fc, truth, dim=["time", "latitude", "longitude"])`` is the RMSE curve by
``prediction_timedelta`` (and ``level``, and variable). Forecasts in WeatherBench2 layout
(``time`` = initial time, ``prediction_timedelta`` = lead) are matched with a truth on
``time`` by valid time automatically (:func:`~xfuxi.verify.weights.align_valid_time`).
The truth, the weights and the climatology must cover the forecast's grid exactly, so that
a score never covers only part of it (:func:`~xfuxi.verify.weights.conform`).

Results carry ``attrs["metric"]`` and, where defined, ``perfect_value`` and
``higher_is_better`` (as climpred records them). The reduction follows WeatherBench2: the
area-weighted mean over every reduced dimension except ``time`` is taken first (per time),
then the mean over ``time``, then — for RMSE — the square root. The definitions are in the
documentation, docs/design.md (Verification).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import xarray as xr

from ..data.schema import check_unpacked
from ..data.stats import select_climatology
from ._docs import fill_doc, score_doc
from .weights import (
    Weights,
    XarrayObj,
    align_valid_time,
    as_float,
    check_same_units,
    chunk_like_lazy,
    conform,
    finish_score,
    is_lazy,
    needs_valid_time,
    prepare_pair,
    reduce_score,
    reduced_dims,
    region_weights,
    time_split,
    valid_time,
    weighted_mean,
)

__all__ = ["acc", "bias", "mae", "mse", "rmse", "select_climatology", "wind_vector_rmse"]

Dim = str | Iterable[Hashable] | None


if TYPE_CHECKING:
    from typing import Protocol

    class _ErrorScore(Protocol):
        """What :func:`_error_score` builds (mse, mae, bias), as type checkers see it."""

        @overload
        def __call__(
            self, forecast: xr.Dataset, truth: xr.Dataset, /, *, dim: Dim = None,
            weights: Weights = "area", region: Any = None, skipna: bool = False,
            keep_attrs: bool = False,
        ) -> xr.Dataset: ...  # fmt: skip
        @overload
        def __call__(
            self, forecast: xr.DataArray, truth: xr.DataArray, /, *, dim: Dim = None,
            weights: Weights = "area", region: Any = None, skipna: bool = False,
            keep_attrs: bool = False,
        ) -> xr.DataArray: ...  # fmt: skip


def _error_score(name: str, error: Callable[[XarrayObj], XarrayObj], **doc: str) -> _ErrorScore:
    """Build the score ``name``: the reduced point-wise ``error(forecast − truth)``.

    MSE, MAE and bias are one score each with its own error function; they share this
    signature, implementation and docstring (``doc`` fills its ``summary``, ``returns``,
    ``formula`` and ``example``).
    """

    def score(
        forecast: XarrayObj, truth: XarrayObj, /, *, dim: Dim = None, weights: Weights = "area",
        region: Any = None, skipna: bool = False, keep_attrs: bool = False,
    ) -> XarrayObj:  # fmt: skip
        fc, tr = prepare_pair(forecast, truth)
        out = reduce_score(error(fc - tr), dim, weights, skipna, region)
        return finish_score(out, forecast, keep_attrs, {"metric": name})

    formula = doc.pop("formula")
    return score_doc(  # type: ignore[return-value]  (one def for both overloads)
        score, name, parameters="{{forecast_truth}}\n    {{score_options}}",
        raises="{{raises_pair}}\n    {{raises_type}}", notes=f"The mean of ``{formula}``.", **doc,
    )  # fmt: skip


mse = _error_score(
    "mse",
    np.square,
    summary="Mean squared error, area-weighted over latitude.",
    returns='MSE over ``dim``, with every other dimension kept; ``attrs["metric"] == "mse"``.',
    formula="(f − t)²",
    example=""">>> fc = xr.DataArray([[1.0, 2.0], [3.0, 4.0]], dims=("time", "x"))
    >>> float(mse(fc, fc * 0))
    7.5
    >>> float(fc.fuxi.mse(fc * 0))  # the same through the accessor
    7.5""",
)
mae = _error_score(
    "mae",
    np.abs,
    summary="Mean absolute error, area-weighted over latitude.",
    returns='MAE over ``dim``; ``attrs["metric"] == "mae"``.',
    formula="|f − t|",
    example=""">>> fc = xr.DataArray([1.0, -3.0], dims="x")
    >>> float(mae(fc, fc * 0))
    2.0
    >>> float(fc.fuxi.mae(fc * 0))  # the same through the accessor
    2.0""",
)
bias = _error_score(
    "bias",
    lambda e: e,
    summary="Mean error (forecast minus truth), area-weighted over latitude.",
    returns='Bias over ``dim``; positive when the forecast is too high; ``attrs["metric"] == '
    '"bias"``.',
    formula="f − t",
    example=""">>> fc = xr.DataArray([1.0, 3.0], dims="x")
    >>> float(bias(fc, fc * 0))
    2.0
    >>> float(fc.fuxi.bias(fc * 0))  # the same through the accessor
    2.0""",
)


@overload
def rmse(
    forecast: xr.Dataset, truth: xr.Dataset, /, *, dim: Dim = None, weights: Weights = "area",
    region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.Dataset: ...  # fmt: skip
@overload
def rmse(
    forecast: xr.DataArray, truth: xr.DataArray, /, *, dim: Dim = None, weights: Weights = "area",
    region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.DataArray: ...  # fmt: skip
@fill_doc
def rmse(
    forecast: XarrayObj, truth: XarrayObj, /, *, dim: Dim = None, weights: Weights = "area",
    region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> XarrayObj:  # fmt: skip
    """Root mean squared error: square root of the time mean of the area-weighted MSE.

    Parameters
    ----------
    {{forecast_truth}}
    {{score_options}}

    Returns
    -------
    Dataset or DataArray
        RMSE over ``dim``, with every other dimension kept; ``attrs["metric"] == "rmse"``.

    Raises
    ------
    {{raises_pair}}
    {{raises_type}}

    Notes
    -----
    The square root of WeatherBench2's ``MSE`` (its recommended RMSE): for each time the
    area-weighted spatial mean of the squared error is taken first, then the mean over
    ``time``, and the square root last: ``sqrt(mean_t ⟨(f − t)²⟩)``. This is not the time
    mean of per-time RMSEs (WeatherBench2's ``RMSESqrtBeforeTimeAvg``, formerly ``RMSE``).
    Defined in the documentation, docs/design.md (Verification).

    Examples
    --------
    >>> fc = xr.DataArray([[3.0, 3.0], [0.0, 0.0]], dims=("time", "x"))
    >>> float(rmse(fc, fc * 0, dim=["time", "x"]))  # sqrt((9 + 0) / 2), not (3 + 0) / 2
    2.1213203435596424
    >>> float(fc.fuxi.rmse(fc * 0, dim=["time", "x"]))  # the same through the accessor
    2.1213203435596424
    """
    out = mse(forecast, truth, dim=dim, weights=weights, region=region, skipna=skipna,
              keep_attrs=False)  # fmt: skip
    return finish_score(np.sqrt(out), forecast, keep_attrs, {"metric": "rmse"})


def _lazy_lookup(climatology: XarrayObj, fc: XarrayObj) -> XarrayObj:
    """A climatology by ``hour`` (and ``dayofyear``) to look up at the valid times of a
    lazy forecast ``fc``: its in-memory variables chunked one hour (and day) per chunk
    (:func:`~xfuxi.verify.weights.chunk_like_lazy`), over the span of the hours and days
    needed (a view; dask keeps a copy of it). Looked up in memory, it was an array of the
    forecast's full size, made while the lazy score was only being built. ``climatology``
    itself where ``fc`` is not dask-backed."""
    if not is_lazy(fc):
        return climatology
    vt = valid_time(fc)
    span = {}
    for key, values in (("hour", vt.dt.hour.values), ("dayofyear", vt.dt.dayofyear.values)):
        if key not in climatology.indexes or not climatology.indexes[key].is_unique:
            continue  # (a value held twice is refused by select_climatology)
        at = np.flatnonzero(np.isin(climatology[key].values, values))
        if at.size:  # (none: select_climatology names the values missing)
            span[key] = slice(at[0], at[-1] + 1)
    return chunk_like_lazy(climatology.isel(span), fc, ("hour", "dayofyear"))


def _climatology_at(climatology: XarrayObj, fc: XarrayObj) -> XarrayObj:
    """The climatology at the forecast's valid times, on exactly the forecast's grid.

    Its scalar coordinates are checked by :func:`~xfuxi.verify.weights.conform` (a
    climatology at one level is refused against a forecast on several) before its non-dim
    coordinates are dropped.
    """
    check_unpacked(climatology)  # stored int16 counts would make anomalies of thousands
    if isinstance(fc, xr.Dataset) != isinstance(climatology, xr.Dataset):
        raise TypeError(
            "climatology must be a Dataset when the forecast is a Dataset, and a DataArray "
            f"when it is a DataArray; got {type(climatology).__name__} for a "
            f"{type(fc).__name__} forecast"
        )
    if "time" in fc.coords:
        keyed = "hour" in climatology.dims or "dayofyear" in climatology.dims
        lookup = _lazy_lookup(climatology, fc) if keyed else climatology
        clim = select_climatology(lookup, valid_time(fc))
        if clim is climatology and needs_valid_time(fc, clim):
            # a climatology on time, as the truth is: taken at the valid times as the truth
            clim = align_valid_time(fc, clim, name="climatology").drop_vars("valid_time")
    elif "hour" in climatology.dims or "dayofyear" in climatology.dims:
        raise ValueError("forecast has no 'time' coordinate to match the climatology by")
    else:
        clim = climatology
    if isinstance(fc, xr.Dataset):
        # WeatherBench2's climatology stores name the mean of ``v`` ``v_mean``
        renames = {
            f"{v}_mean": v
            for v in fc.data_vars
            if v not in clim.data_vars and f"{v}_mean" in clim.data_vars
        }
        missing = [v for v in fc.data_vars if v not in clim.data_vars and v not in renames.values()]
        if missing:
            held = [v for v in fc.data_vars if v not in missing]
            how = (
                f"score only the variables it holds: forecast[{held}] (scorecard: "
                f"variables={held}), or give a climatology of every forecast variable"
                if held
                else "give a climatology of the forecast's variables (xfuxi.climatology)"
            )
            raise ValueError(
                f"climatology lacks variable(s) {missing} (looked for each as itself and as "
                f"'<name>_mean'); {how}"
            )
        clim = clim[[*renames, *(v for v in fc.data_vars if v not in renames.values())]]
        clim = clim.rename(renames)[list(fc.data_vars)]
    check_same_units(fc, clim, ("forecast", "climatology"))
    try:
        clim = conform(clim, fc, name="climatology")
    except ValueError as e:
        hint = _regrid_hint(clim, fc)
        if not hint:
            raise
        raise ValueError(f"{e}{hint}") from None
    clim = as_float(clim, "climatology")
    return clim.drop_vars([c for c in clim.coords if c not in clim.dims], errors="ignore")


def _regrid_hint(clim: XarrayObj, fc: XarrayObj) -> str:
    """The way out when the climatology is on another latitude–longitude grid than the
    forecast (a WeatherBench2 64 × 32 climatology against T21 forecasts): regrid it."""
    sizes = []
    for obj in (clim, fc):
        if not all(d in obj.dims for d in ("latitude", "longitude")):
            return ""
        sizes.append((obj.sizes["latitude"], obj.sizes["longitude"]))
    same = sizes[0] == sizes[1] and all(
        np.allclose(
            np.sort(np.asarray(clim[d], float)), np.sort(np.asarray(fc[d], float)), atol=1e-4
        )
        for d in ("latitude", "longitude")
    )
    if same:
        return ""
    (clat, clon), (flat, flon) = sizes
    grids = (
        f"{clat} × {clon} points, latitude × longitude, as the forecast's, at other positions"
        if sizes[0] == sizes[1]
        else f"{clat} × {clon} points, latitude × longitude; the forecast's: {flat} × {flon}"
    )
    return (
        f"; the climatology is on another grid than the forecast ({grids}): regrid it to the "
        "forecast's grid first (xfuxi.regrid(climatology, forecast))"
    )


@overload
def acc(
    forecast: xr.Dataset, truth: xr.Dataset, /, climatology: XarrayObj | None = None, *,
    dim: Dim = None, weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> xr.Dataset: ...  # fmt: skip
@overload
def acc(
    forecast: xr.DataArray, truth: xr.DataArray, /, climatology: XarrayObj | None = None, *,
    dim: Dim = None, weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> xr.DataArray: ...  # fmt: skip
@fill_doc
def acc(
    forecast: XarrayObj, truth: XarrayObj, /, climatology: XarrayObj | None = None, *,
    dim: Dim = None, weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:  # fmt: skip
    """Anomaly correlation coefficient against a climatology matched by day of year and hour.

    Parameters
    ----------
    {{forecast_truth}}
    climatology : Dataset or DataArray
        Required (without one, the error says how to make it: :func:`xfuxi.climatology` of
        data of a period other than the one scored, e.g. the embedded world's train split).
        Climatology with dims ``hour`` (and optionally ``dayofyear``) plus any of
        level/latitude/longitude, or one already aligned to the valid times. It must cover
        the forecast's grid exactly (the same values on every dim it has, in any order).
        A variable ``v`` may be named ``v`` or ``v_mean`` (WeatherBench2's climatology
        stores).
    dim : str or list of str, optional
        Dimensions to reduce; ``None`` (default) reduces all. The correlation is taken over
        the reduced dims other than ``time``, then averaged over ``time`` if reduced.
    {{reduce_options}}

    Returns
    -------
    Dataset or DataArray
        ACC in [-1, 1]; ``attrs["metric"] == "acc"``.

    Raises
    ------
    {{raises_pair}}
        Also if the reduced dims other than ``time`` hold fewer than two points (the
        correlation of one value is its sign), or if the climatology lacks a needed day of
        year, hour or variable, has a dim
        the forecast lacks (a climatology by ``hour`` with a lead dim is refused: it was
        made from a forecast of several leads, keyed by initial time), or does not cover
        the forecast's grid.
    TypeError
        If the forecast, truth or climatology holds complex data, or a ``time`` holds
        cftime dates or carries a time zone
        (:func:`~xfuxi.verify.weights.prepare_pair`).

    Notes
    -----
    WeatherBench2's ``ACC``: ``⟨f′a′⟩ / √(⟨f′²⟩⟨a′²⟩)`` with ``f′ = f − c``, ``a′ = a − c``
    anomalies against the climatology ``c`` at the valid time and ``⟨·⟩`` the area-weighted
    mean over the reduced non-time dims; the time mean of the per-time ACC is taken last.
    Defined in the documentation, docs/design.md (Verification).

    With dask data, a climatology held in memory is looked up lazily (one hour, or day and
    hour, per chunk). Compute a climatology first (``.compute()``, or load it from a file):
    one still lazy and made from the very truth scored keeps every chunk of that truth in
    memory until the climatology is known, memory growing with the record.

    Examples
    --------
    >>> clim = xr.DataArray([0.0, 0.0, 0.0], dims="x")
    >>> a = xr.DataArray([1.0, -1.0, 0.5], dims="x")
    >>> float(acc(a * 2, a, clim))
    1.0
    >>> float((a * 2).fuxi.acc(a, clim))  # the same through the accessor
    1.0
    """
    if climatology is None:
        raise TypeError(
            "acc() needs a climatology: make one with xfuxi.climatology(data) of a period other "
            "than the one scored (for the embedded world, of "
            "xfuxi.datasets.held_suarez_split('train')), then acc(forecast, truth, climatology)"
        )
    fc, tr = prepare_pair(forecast, truth)
    clim = _climatology_at(climatology, fc)
    fa, ta = fc - clim, tr - clim
    inner, outer = time_split(reduced_dims(fa, dim))
    points = int(np.prod([fa.sizes[d] for d in inner]))
    if points < 2:  # a correlation of one value is its sign: the mean of ±1 came out
        raise ValueError(
            f"acc correlates the anomalies over the reduced dims other than time; dim={dim!r} "
            f"leaves {inner or 'none'} ({points} point(s) per time): reduce over latitude "
            "and longitude too (the default, dim=None), or use a temporal correlation "
            "(xarray.corr over 'time') for one point"
        )
    w = region_weights(fa, inner, weights, region)
    if skipna:
        valid = fa.notnull() & ta.notnull()
        fa, ta = fa.where(valid), ta.where(valid)
    num = weighted_mean(fa * ta, inner, w, skipna)
    den = np.sqrt(weighted_mean(fa**2, inner, w, skipna) * weighted_mean(ta**2, inner, w, skipna))
    out = num / den
    if outer:
        out = out.mean(outer, skipna=skipna)
    return finish_score(out, forecast, keep_attrs, {"metric": "acc"})


@fill_doc
def wind_vector_rmse(
    forecast: xr.Dataset, truth: xr.Dataset, /, *, u: str = "u_component_of_wind",
    v: str = "v_component_of_wind", name: str = "wind_vector", dim: Dim = None,
    weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> xr.DataArray:  # fmt: skip
    """RMSE of the wind vector: the RMS length of the vector error ``(u, v)``.

    Parameters
    ----------
    forecast, truth : Dataset
        Forecast and verifying truth holding the wind components, matched as in
        :func:`rmse`.
    u, v : str
        Names of the eastward and northward components.
    name : str, default "wind_vector"
        Name of the result.
    {{score_options}}

    Returns
    -------
    DataArray
        ``sqrt(mean_t ⟨(u_f − u_t)² + (v_f − v_t)²⟩)``; ``attrs["metric"] ==
        "wind_vector_rmse"``.

    Raises
    ------
    {{raises_pair}}
        Also if a component is missing.
    {{raises_type}}

    Notes
    -----
    The square root of WeatherBench2's ``WindVectorMSE`` (the reduction as :func:`rmse`: the
    square root after the time mean; WeatherBench2's ``WindVectorRMSESqrtBeforeTimeAvg``,
    formerly ``WindVectorRMSE``, takes it before). Defined in the documentation,
    docs/verification.md.

    Examples
    --------
    >>> ds = xr.Dataset({"u_component_of_wind": ("x", [3.0]), "v_component_of_wind": ("x", [4.0])})
    >>> float(wind_vector_rmse(ds, ds * 0))
    5.0
    >>> float(ds.fuxi.wind_vector_rmse(ds * 0))  # the same through the accessor
    5.0
    """
    for role, obj in (("forecast", forecast), ("truth", truth)):
        if not isinstance(obj, xr.Dataset):
            raise TypeError(f"the {role} must be a Dataset holding {u!r} and {v!r}")
        missing = [c for c in (u, v) if c not in obj.data_vars]
        if missing:
            raise ValueError(f"the {role} lacks the wind component(s) {missing}")
    fc, tr = prepare_pair(forecast[[u, v]], truth[[u, v]])
    err2 = (fc[u] - tr[u]) ** 2 + (fc[v] - tr[v]) ** 2
    out = np.sqrt(reduce_score(err2, dim, weights, skipna, region)).rename(name)
    # the attributes both components share (units; with keep_attrs also the Dataset's)
    au, av = forecast[u].attrs, forecast[v].attrs
    shared = {k: a for k, a in au.items() if k in av and _same_attr(a, av[k])}
    source = xr.DataArray(attrs={**(forecast.attrs if keep_attrs else {}), **shared})
    return finish_score(out, source, keep_attrs, {"metric": "wind_vector_rmse"})


def _same_attr(a: Any, b: Any) -> bool:
    """Whether two attribute values are equal (arrays element by element)."""
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return a is b
