"""Deterministic scores: RMSE, MSE, MAE, bias and anomaly correlation (DESIGN.md §4).

All scores take a forecast and a truth (Datasets or DataArrays), reduce over ``dim`` with
latitude area weights by default, and keep every dimension not reduced, so
``rmse(fc, truth, dim=["time", "latitude", "longitude"])`` is the RMSE curve by
``prediction_timedelta`` (and ``level``, and variable). Forecasts in WeatherBench2 layout
(``time`` = initial time, ``prediction_timedelta`` = lead) are matched with a truth on
``time`` by valid time automatically (:func:`~xfuxi.verify.weights.align_valid_time`).

Results carry ``attrs["metric"]`` and, where defined, ``perfect_value`` and
``higher_is_better`` (as climpred records them). The reduction follows WeatherBench2: the
area-weighted mean over every reduced dimension except ``time`` is taken first (per time),
then the mean over ``time``, then — for RMSE — the square root.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import numpy as np
import xarray as xr

from ..data.stats import select_climatology
from .weights import (
    Weights,
    XarrayObj,
    _as_dims,
    _finish,
    _prepare_pair,
    _time_split,
    _weighted_mean,
    _weights_for,
    valid_time,
)

__all__ = ["acc", "bias", "mae", "mse", "rmse", "select_climatology"]

Dim = str | Iterable[Hashable] | None


def _reduce_error(
    err: XarrayObj, dims: list[Hashable], weights: Weights, skipna: bool
) -> XarrayObj:
    inner, outer = _time_split(dims)
    w = _weights_for(err, inner, weights)
    out = _weighted_mean(err, inner, w, skipna)
    if outer:
        out = out.mean(outer, skipna=skipna)
    return out


def _score(forecast, truth, func, *, dim, weights, skipna, keep_attrs, name):
    fc, tr = _prepare_pair(forecast, truth)
    err = func(fc - tr)
    dims = _as_dims(err, dim)
    out = _reduce_error(err, dims, weights, skipna)
    return _finish(out, forecast, keep_attrs, {"metric": name})


def mse(
    forecast: XarrayObj,
    truth: XarrayObj,
    /,
    *,
    dim: Dim = None,
    weights: Weights = "area",
    skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:
    """Mean squared error, area-weighted over latitude.

    Parameters
    ----------
    forecast, truth : Dataset or DataArray
        Forecast and verifying truth. Coordinates shared by both must match exactly. A
        forecast with ``prediction_timedelta`` is matched to a truth on ``time`` by valid time.
    dim : str or list of str, optional
        Dimensions to reduce; ``None`` (default) reduces all.
    weights : {"area"}, DataArray or None, default "area"
        ``"area"``: latitude area weights (:func:`~xfuxi.verify.weights.area_weights`) when
        ``latitude`` is reduced; a DataArray over reduced dims; ``None``: unweighted.
    skipna : bool, default False
        Skip NaN (their weight is dropped). With ``False`` any NaN gives NaN.
    keep_attrs : bool, default False
        Keep the forecast's attributes.

    Returns
    -------
    Dataset or DataArray
        MSE over ``dim``, with every other dimension kept; ``attrs["metric"] == "mse"``.

    Raises
    ------
    ValueError
        If coordinates differ between forecast and truth, a variable is missing from the
        truth, a valid time is missing, or ``dim`` names an unknown dimension.

    Notes
    -----
    DESIGN.md §4 / WeatherBench2: the area-weighted mean of ``(f − t)²`` over the reduced
    dims other than ``time``, then its mean over ``time``.

    Examples
    --------
    >>> fc = xr.DataArray([[1.0, 2.0], [3.0, 4.0]], dims=("time", "x"))
    >>> float(mse(fc, fc * 0))
    7.5
    """
    return _score(forecast, truth, np.square, dim=dim, weights=weights, skipna=skipna,
                  keep_attrs=keep_attrs, name="mse")  # fmt: skip


def rmse(
    forecast: XarrayObj,
    truth: XarrayObj,
    /,
    *,
    dim: Dim = None,
    weights: Weights = "area",
    skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:
    """Root mean squared error: square root of the time mean of the area-weighted MSE.

    Parameters
    ----------
    forecast, truth : Dataset or DataArray
        Forecast and verifying truth. Coordinates shared by both must match exactly. A
        forecast with ``prediction_timedelta`` is matched to a truth on ``time`` by valid time.
    dim : str or list of str, optional
        Dimensions to reduce; ``None`` (default) reduces all.
    weights : {"area"}, DataArray or None, default "area"
        ``"area"``: latitude area weights when ``latitude`` is reduced; a DataArray over
        reduced dims; ``None``: unweighted.
    skipna : bool, default False
        Skip NaN (their weight is dropped). With ``False`` any NaN gives NaN.
    keep_attrs : bool, default False
        Keep the forecast's attributes.

    Returns
    -------
    Dataset or DataArray
        RMSE over ``dim``, with every other dimension kept; ``attrs["metric"] == "rmse"``.

    Raises
    ------
    ValueError
        As :func:`mse`.

    Notes
    -----
    DESIGN.md §4 (WeatherBench2 ``RMSE``): for each time the area-weighted spatial mean of the
    squared error is taken first, then the mean over ``time``, and the square root last:
    ``sqrt(mean_t ⟨(f − t)²⟩)``. This is not the time mean of per-time RMSEs.

    Examples
    --------
    >>> fc = xr.DataArray([[3.0, 3.0], [0.0, 0.0]], dims=("time", "x"))
    >>> float(rmse(fc, fc * 0, dim=["time", "x"]))  # sqrt((9 + 0) / 2), not (3 + 0) / 2
    2.1213203435596424
    """
    out = mse(forecast, truth, dim=dim, weights=weights, skipna=skipna, keep_attrs=keep_attrs)
    attrs = dict(out.attrs, metric="rmse")
    out = np.sqrt(out)
    out.attrs = attrs
    return out


def mae(
    forecast: XarrayObj,
    truth: XarrayObj,
    /,
    *,
    dim: Dim = None,
    weights: Weights = "area",
    skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:
    """Mean absolute error, area-weighted over latitude.

    Parameters
    ----------
    forecast, truth : Dataset or DataArray
        Forecast and verifying truth (matched as in :func:`rmse`).
    dim : str or list of str, optional
        Dimensions to reduce; ``None`` (default) reduces all.
    weights : {"area"}, DataArray or None, default "area"
        Latitude area weights by default; ``None`` for none.
    skipna : bool, default False
        Skip NaN.
    keep_attrs : bool, default False
        Keep the forecast's attributes.

    Returns
    -------
    Dataset or DataArray
        MAE over ``dim``; ``attrs["metric"] == "mae"``.

    Raises
    ------
    ValueError
        As :func:`mse`.

    Notes
    -----
    Area-weighted mean of ``|f − t|`` over the reduced dims other than ``time``, then the
    time mean (DESIGN.md §4 weighting).

    Examples
    --------
    >>> fc = xr.DataArray([1.0, -3.0], dims="x")
    >>> float(mae(fc, fc * 0))
    2.0
    """
    return _score(forecast, truth, np.abs, dim=dim, weights=weights, skipna=skipna,
                  keep_attrs=keep_attrs, name="mae")  # fmt: skip


def bias(
    forecast: XarrayObj,
    truth: XarrayObj,
    /,
    *,
    dim: Dim = None,
    weights: Weights = "area",
    skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:
    """Mean error (forecast minus truth), area-weighted over latitude.

    Parameters
    ----------
    forecast, truth : Dataset or DataArray
        Forecast and verifying truth (matched as in :func:`rmse`).
    dim : str or list of str, optional
        Dimensions to reduce; ``None`` (default) reduces all.
    weights : {"area"}, DataArray or None, default "area"
        Latitude area weights by default; ``None`` for none.
    skipna : bool, default False
        Skip NaN.
    keep_attrs : bool, default False
        Keep the forecast's attributes.

    Returns
    -------
    Dataset or DataArray
        Bias over ``dim``; positive when the forecast is too high; ``attrs["metric"] == "bias"``.

    Raises
    ------
    ValueError
        As :func:`mse`.

    Notes
    -----
    Area-weighted mean of ``f − t`` (DESIGN.md §4 weighting), then the time mean.

    Examples
    --------
    >>> fc = xr.DataArray([1.0, 3.0], dims="x")
    >>> float(bias(fc, fc * 0))
    2.0
    """
    return _score(forecast, truth, lambda e: e, dim=dim, weights=weights, skipna=skipna,
                  keep_attrs=keep_attrs, name="bias")  # fmt: skip


def acc(
    forecast: XarrayObj,
    truth: XarrayObj,
    /,
    climatology: XarrayObj,
    *,
    dim: Dim = None,
    weights: Weights = "area",
    skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:
    """Anomaly correlation coefficient against a climatology matched by day of year and hour.

    Parameters
    ----------
    forecast, truth : Dataset or DataArray
        Forecast and verifying truth (matched as in :func:`rmse`).
    climatology : Dataset or DataArray
        Climatology with dims ``hour`` (and optionally ``dayofyear``) plus any of
        level/latitude/longitude, or one already aligned to the valid times.
    dim : str or list of str, optional
        Dimensions to reduce; ``None`` (default) reduces all. The correlation is taken over
        the reduced dims other than ``time``, then averaged over ``time`` if reduced.
    weights : {"area"}, DataArray or None, default "area"
        Latitude area weights by default; ``None`` for none.
    skipna : bool, default False
        Skip NaN.
    keep_attrs : bool, default False
        Keep the forecast's attributes.

    Returns
    -------
    Dataset or DataArray
        ACC in [-1, 1]; ``attrs["metric"] == "acc"``.

    Raises
    ------
    ValueError
        As :func:`mse`, or if the climatology lacks a needed day of year, hour or variable.

    Notes
    -----
    DESIGN.md §4 (WeatherBench2 ``ACC``): ``⟨f′a′⟩ / √(⟨f′²⟩⟨a′²⟩)`` with ``f′ = f − c``,
    ``a′ = a − c`` anomalies against the climatology ``c`` at the valid time and ``⟨·⟩`` the
    area-weighted mean over the reduced non-time dims; the time mean of the per-time ACC is
    taken last.

    Examples
    --------
    >>> clim = xr.DataArray([0.0, 0.0, 0.0], dims="x")
    >>> a = xr.DataArray([1.0, -1.0, 0.5], dims="x")
    >>> float(acc(a * 2, a, clim))
    1.0
    """
    fc, tr = _prepare_pair(forecast, truth)
    times = valid_time(fc) if "time" in fc.coords else None
    if times is not None:
        clim = select_climatology(climatology, times)
    elif "hour" in climatology.dims or "dayofyear" in climatology.dims:
        raise ValueError("forecast has no 'time' coordinate to match the climatology by")
    else:
        clim = climatology
    if isinstance(fc, xr.Dataset):
        if not isinstance(clim, xr.Dataset):
            raise TypeError("climatology must be a Dataset when the forecast is a Dataset")
        missing = [v for v in fc.data_vars if v not in clim.data_vars]
        if missing:
            raise ValueError(f"climatology lacks variable(s) {missing}")
        clim = clim[list(fc.data_vars)]
    clim = clim.drop_vars([c for c in clim.coords if c not in clim.dims], errors="ignore")
    fa, ta = fc - clim, tr - clim
    dims = _as_dims(fa, dim)
    inner, outer = _time_split(dims)
    w = _weights_for(fa, inner, weights)
    if skipna:
        valid = fa.notnull() & ta.notnull()
        fa, ta = fa.where(valid), ta.where(valid)
    num = _weighted_mean(fa * ta, inner, w, skipna)
    den = np.sqrt(_weighted_mean(fa**2, inner, w, skipna) * _weighted_mean(ta**2, inner, w, skipna))
    out = num / den
    if outer:
        out = out.mean(outer, skipna=skipna)
    return _finish(out, forecast, keep_attrs, {"metric": "acc"})
