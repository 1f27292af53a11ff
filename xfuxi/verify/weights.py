"""Area weights, dimension handling and alignment shared by all xfuxi scores.

Nothing here imports torch or numba. The definitions are those of DESIGN.md §4 and
WeatherBench2.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from ..grid import area_weights
from ..options import get_options

__all__ = ["align_valid_time", "area_weights", "valid_time"]

XarrayObj = xr.Dataset | xr.DataArray
#: ``"area"`` (default): area weights over ``latitude``; ``None``: unweighted; or a DataArray
Weights = Literal["area"] | xr.DataArray | None


def _as_dims(obj: XarrayObj, dim: str | Iterable[Hashable] | None) -> list[Hashable]:
    """Dims to reduce: ``None`` means all dims of ``obj``; each must exist."""
    if dim is None:
        return list(obj.dims)
    dims = [dim] if isinstance(dim, str) else list(dim)
    missing = [d for d in dims if d not in obj.dims]
    if missing:
        raise ValueError(
            f"cannot reduce over {missing}: not a dimension of the data (dims: {list(obj.dims)})"
        )
    return dims


def _weights_for(obj: XarrayObj, dims: Sequence[Hashable], weights: Weights) -> xr.DataArray | None:
    """Resolve ``weights`` to a DataArray (or None) restricted to ``dims``."""
    if weights is None:
        return None
    if isinstance(weights, str):
        if weights != "area":
            raise ValueError(f"weights must be 'area', None or a DataArray; got {weights!r}")
        if "latitude" not in dims:
            return None
        return area_weights(obj["latitude"])
    if not isinstance(weights, xr.DataArray):
        raise TypeError(f"weights must be 'area', None or a DataArray; got {type(weights)}")
    extra = [d for d in weights.dims if d not in dims]
    if extra:
        raise ValueError(f"weights have dims {extra} that are not reduced (dim={list(dims)})")
    if weights.isnull().any():
        raise ValueError("weights contain NaN")
    return weights


def _weighted_mean(
    x: XarrayObj, dims: Sequence[Hashable], weights: xr.DataArray | None, skipna: bool
) -> XarrayObj:
    """Weighted mean over ``dims``; with skipna the weights of missing values are dropped."""
    if not dims:
        return x
    if weights is None:
        return x.mean(dims, skipna=skipna)
    return x.weighted(weights).mean(dims, skipna=skipna)


def _time_split(dims: Sequence[Hashable]) -> tuple[list[Hashable], list[Hashable]]:
    """Split reduced dims into (inner spatial/other dims, outer ``time`` dim)."""
    inner = [d for d in dims if d != "time"]
    outer = [d for d in dims if d == "time"]
    return inner, outer


#: metric -> (perfect value, higher is better); recorded in the attrs of every score
METRIC_INFO: dict[str, tuple[float, bool]] = {
    "rmse": (0.0, False),
    "mse": (0.0, False),
    "mae": (0.0, False),
    "acc": (1.0, True),
    "crps": (0.0, False),
    "ensemble_mean_rmse": (0.0, False),
    "brier_score": (0.0, False),
}


def _finish(result: XarrayObj, source: XarrayObj, keep_attrs: bool, attrs: dict[str, Any]):
    info = METRIC_INFO.get(str(attrs.get("metric")))
    if info is not None:
        attrs = {**attrs, "perfect_value": info[0], "higher_is_better": int(info[1])}
    if keep_attrs:
        if isinstance(result, xr.Dataset):
            for name in result.data_vars:
                if name in source.variables:
                    result[name].attrs = dict(source[name].attrs)
            result.attrs = {**source.attrs, **attrs}
        else:
            result.attrs = {**source.attrs, **attrs}
    else:
        result.attrs = dict(attrs)
        if isinstance(result, xr.Dataset):
            for name in result.data_vars:
                result[name].attrs = {}
    return result


def valid_time(forecast: XarrayObj) -> xr.DataArray:
    """Return the valid time ``time + prediction_timedelta`` of a forecast.

    Parameters
    ----------
    forecast : Dataset or DataArray
        A forecast with a ``time`` (initial time) coordinate and, optionally, a
        ``prediction_timedelta`` coordinate (WeatherBench2 layout).

    Returns
    -------
    xarray.DataArray
        Valid times, with dims ``time`` and ``prediction_timedelta`` where present.

    Raises
    ------
    ValueError
        If ``forecast`` has no ``time`` coordinate.

    Examples
    --------
    >>> import pandas as pd
    >>> fc = xr.Dataset(coords={"time": pd.to_datetime(["2020-01-01"]),
    ...                         "prediction_timedelta": pd.to_timedelta([0, 6], "h")})
    >>> [str(t)[:16] for t in valid_time(fc).values.ravel()]
    ['2020-01-01T00:00', '2020-01-01T06:00']
    """
    if "time" not in forecast.coords:
        raise ValueError("forecast has no 'time' coordinate; cannot compute its valid time")
    if "prediction_timedelta" in forecast.coords:
        return forecast["time"] + forecast["prediction_timedelta"]
    return forecast["time"]


def align_valid_time(forecast: XarrayObj, truth: XarrayObj) -> XarrayObj:
    """Select ``truth`` at the valid times of a WeatherBench2-layout ``forecast``.

    Parameters
    ----------
    forecast : Dataset or DataArray
        Forecast with ``time`` (initial time) and ``prediction_timedelta`` dims.
    truth : Dataset or DataArray
        Analysis or reanalysis on ``time`` (valid time), without ``prediction_timedelta``.

    Returns
    -------
    Dataset or DataArray
        ``truth`` with dims ``time`` (initial time) and ``prediction_timedelta`` replacing its
        ``time``, so that it lines up element by element with ``forecast``; a ``valid_time``
        coordinate records the time it was taken at.

    Raises
    ------
    ValueError
        If the forecast lacks ``prediction_timedelta`` or ``time``, if the truth has no ``time``,
        or if some valid time is not in the truth.

    Notes
    -----
    The valid time of a forecast is ``time + prediction_timedelta`` (WeatherBench2 layout,
    DESIGN.md §2). Scores call this automatically when the forecast has
    ``prediction_timedelta`` and the truth has only ``time``.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.date_range("2020-01-01", periods=4, freq="6h")
    >>> truth = xr.DataArray(np.arange(4.0), coords={"time": t}, dims="time")
    >>> lead = pd.to_timedelta([6, 12], "h")
    >>> fc = xr.DataArray(np.zeros((2, 2)), dims=("time", "prediction_timedelta"),
    ...                   coords={"time": t[:2], "prediction_timedelta": lead})
    >>> align_valid_time(fc, truth).values.tolist()
    [[1.0, 2.0], [2.0, 3.0]]
    """
    if "prediction_timedelta" not in forecast.dims:
        raise ValueError("forecast has no 'prediction_timedelta' dimension; nothing to align")
    if "time" not in truth.dims:
        raise ValueError("truth has no 'time' dimension; cannot select it at valid times")
    vt = valid_time(forecast)
    wanted = np.unique(vt.values.ravel())
    have = truth["time"].values
    missing = np.setdiff1d(wanted, have)
    if missing.size:
        raise ValueError(
            f"truth lacks {missing.size} valid time(s) of the forecast, first {missing[0]}; "
            "the truth must cover time + prediction_timedelta of every forecast"
        )
    indexer = xr.DataArray(vt.values, dims=vt.dims)
    out = truth.sel(time=indexer).drop_vars("time", errors="ignore")
    coords = {d: forecast[d] for d in vt.dims if d in forecast.coords}
    return out.assign_coords(coords).assign_coords(valid_time=(vt.dims, vt.values))


def _prepare_pair(forecast: XarrayObj, truth: XarrayObj) -> tuple[XarrayObj, XarrayObj]:
    """Align truth to valid time when needed and check coordinates match exactly."""
    if isinstance(forecast, xr.Dataset) != isinstance(truth, xr.Dataset):
        raise TypeError(
            "forecast and truth must both be Datasets or both DataArrays; got "
            f"{type(forecast).__name__} and {type(truth).__name__}"
        )
    if "prediction_timedelta" in forecast.dims and "prediction_timedelta" not in truth.dims:
        truth = align_valid_time(forecast, truth)
        forecast = forecast.assign_coords(valid_time=truth["valid_time"])
    if isinstance(forecast, xr.Dataset):
        missing = [v for v in forecast.data_vars if v not in truth.data_vars]
        if missing:
            raise ValueError(f"truth lacks variable(s) {missing} of the forecast")
        truth = truth[list(forecast.data_vars)]
    for d in set(forecast.dims) & set(truth.dims):
        if d in forecast.coords and d in truth.coords:
            a, b = forecast[d].values, truth[d].values
            same = a.shape == b.shape and (
                np.allclose(a, b, rtol=0, atol=1e-6)
                if a.dtype.kind in "fiu" and b.dtype.kind in "fiu"
                else np.array_equal(a, b)
            )
            if not same:
                raise ValueError(
                    f"coordinate {d!r} differs between forecast and truth "
                    f"(forecast has {a.size} values {_brief(a)}, truth has {b.size} "
                    f"values {_brief(b)}); select matching points first"
                )
            if a.dtype.kind == "f" and not np.array_equal(a, b):
                truth = truth.assign_coords({d: forecast[d]})
        elif forecast.sizes[d] != truth.sizes[d]:
            raise ValueError(
                f"dimension {d!r} has size {forecast.sizes[d]} in forecast but "
                f"{truth.sizes[d]} in truth"
            )
    return forecast, truth


def _brief(a: np.ndarray) -> str:
    if a.size <= 4:
        return str(list(a))
    return f"[{a[0]}, {a[1]}, ..., {a[-1]}]"


def _ensemble_dim(obj: XarrayObj, member_dim: str | None) -> str:
    """Find the ensemble dimension: the one named, else the first of the accepted names."""
    if member_dim is not None:
        if member_dim not in obj.dims:
            raise ValueError(
                f"ensemble dimension {member_dim!r} not found; the forecast has dims "
                f"{list(obj.dims)}"
            )
        return member_dim
    for name in get_options()["ensemble_dims"]:
        if name in obj.dims:
            return name
    raise ValueError(
        "the forecast has no ensemble dimension: expected one of "
        f"{list(get_options()['ensemble_dims'])}, got dims {list(obj.dims)}"
    )
