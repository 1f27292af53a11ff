"""The edge between xarray and tensors, shared by forecasts, ensembles and 4DVar.

:func:`initial_conditions` turns a canonical Dataset into the model's input pairs and
:func:`forecast_dataset` turns predicted states into a WeatherBench2 forecast Dataset
(``time`` = initial time, ``prediction_timedelta`` = lead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from ..data.channels import channel_name, stack, unstack
from ..data.schema import (
    VARIABLES,
    SchemaError,
    canonical_order,
    check_state_dims,
    parse_times,
    require_dataset,
    states_at_valid_times,
    validate,
)

if TYPE_CHECKING:
    import torch

    from ..models.base import ForecastModel

__all__ = ["forecast_dataset", "initial_conditions"]


def initial_conditions(
    ds: xr.Dataset,
    model: ForecastModel,
    *,
    init_times: Sequence[Any] | np.ndarray | xr.DataArray | None = None,
    dtype: Any = "float32",
) -> tuple[np.ndarray, np.ndarray]:
    """Stack the model's input pairs (t − Δ, t) for each initial time from a canonical Dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        Analysis-layout data (dims ``time``, [``level``], ``latitude``, ``longitude``; no
        ensemble dim) with a ``time`` dim holding, for each initial time ``t``, also
        ``t - model.timestep``. States of a forecast at one lead (a scalar
        ``prediction_timedelta``, as ``fc.sel(prediction_timedelta="6h")`` leaves) are
        valid at ``time + lead`` and are taken at those times
        (:func:`xfuxi.data.schema.states_at_valid_times`).
    model : ForecastModel
        Gives channels, grid, time step and the normalization statistics that the values
        of the initial times used are checked against
        (:func:`xfuxi.models.base.check_plausible`).
    init_times : sequence of datetime-like, optional
        Initial times to use (ISO strings of any precision, datetimes, datetime64; not
        numbers), each at most once; they are used (and returned) in ascending
        order, whatever order they are given in. Default: every time in ``ds`` whose
        predecessor at ``t - Δ`` is also in ``ds`` (two times → one initial time, the later).
        Given, only the times they need are validated and read (a long in-memory record is
        not copied).
    dtype : {"float32", "float64"}, default "float32"
        The dtype of the pairs: float64 for a model run in float64, which then starts from
        the data's values and not from their float32 rounding.

    Returns
    -------
    x : numpy.ndarray, shape (T, 2, C, H, W), of ``dtype``
    init_times : numpy.ndarray of datetime64[ns], shape (T,), ascending

    Raises
    ------
    TypeError
        ``ds`` is not a Dataset (e.g. a DataArray).
    ValueError
        ``dtype`` is neither float32 nor float64.
    SchemaError
        Missing channel, grid mismatch, an extra dim (such as an ensemble's ``number``),
        values implausible for the model (e.g. °C given as K), NaN or infinite values in
        an input (naming the channels), an initial time without its predecessor, a
        duplicated initial time, an initial time that is not a date and time (a number,
        an unreadable string: named) or carries a time zone, or a scalar lead that is not
        a time span.
    """
    require_dataset(ds, "initial conditions")
    # states of a forecast at one lead (fc.sel(prediction_timedelta="6h")) are valid at
    # time + lead: their initial times were taken as the states' times
    ds = states_at_valid_times(ds, "the initial conditions")
    out_dtype = {"float32": np.float32, "float64": np.float64}.get(
        str(np.dtype(dtype) if isinstance(dtype, type) else dtype).removeprefix("torch.")
    )  # a name, a NumPy or a torch dtype
    if out_dtype is None:
        raise ValueError(f"initial_conditions: dtype must be float32 or float64; got {dtype!r}")
    if init_times is not None and "time" in ds.dims and ds["time"].dtype.kind == "M":
        # only the times used are validated and copied: one initial time of a long
        # in-memory record copied the whole record (1 GB and 3.5 s for 16 years of the world)
        wanted = _parse_init_times(init_times)
        wanted = wanted.union(wanted - pd.Timedelta(model.timestep))
        ds = ds.isel(time=np.isin(ds["time"].values, wanted.values.astype(ds["time"].dtype)))
    ds = validate(ds, require_time=True)
    # only the model's variables count: a variable it does not read (CF bounds such as
    # latitude_bnds(latitude, bnds), a diagnostic) may have other dims
    model_vars = [v for v in ds.data_vars if str(v) in {str(c[0]) for c in model.channels}]
    if model_vars:
        ds = ds[model_vars]
    check_state_dims(
        ds,
        "the initial conditions",
        "forecasts and ensembles start from one state per time: select a member "
        "(ds.isel(number=0)) and forecast each member separately, or pass the ensemble mean "
        "(ds.mean('number'))",
    )
    times = pd.DatetimeIndex(ds["time"].values)
    step = pd.Timedelta(model.timestep)
    if init_times is None:
        chosen = [t for t in times if (t - step) in times]
        if not chosen:
            raise SchemaError(
                f"no initial time has its predecessor {step} earlier in the data; the model "
                f"needs two consecutive input times (got times {list(times[:4])}...)"
            )
    else:
        index = _parse_init_times(init_times)
        chosen = list(index)
        twice = sorted({t for t in chosen if chosen.count(t) > 1})
        if twice:
            raise SchemaError(
                f"init_times has duplicated values {[str(t) for t in twice]}; give each "
                "initial time once"
            )
        for t in chosen:
            if t not in times or (t - step) not in times:
                raise SchemaError(
                    f"initial time {t} needs data at {t - step} and {t}; not both in the data"
                )
    chosen_idx = pd.DatetimeIndex(sorted(chosen))
    used = ds.sel(time=chosen_idx.union(chosen_idx - step))
    from ..models.base import check_plausible  # torch: imported when a model is used

    model.check_dataset(used)
    # read once: the plausibility check and each input time computed a lazy (dask) store's
    # chunks again, three reads of every chunk; only the model's variables are read
    used = used[list(dict.fromkeys(name for name, _ in model.channels))].load()
    check_plausible(used, model)
    arrays = []
    for times_of_part in (chosen_idx - step, chosen_idx):
        part = used.sel(time=times_of_part)
        arr = stack(part, model.channels).transpose("time", "channel", "latitude", "longitude")
        arrays.append(np.asarray(arr.values, dtype=out_dtype))
    x = np.stack(arrays, axis=1)
    _check_finite(x, model, used)
    return x, chosen_idx.values.astype("datetime64[ns]")


def _parse_init_times(init_times: Any) -> pd.DatetimeIndex:
    """``init_times`` as given (one time, a sequence, a DataArray) as a DatetimeIndex
    (:func:`xfuxi.data.schema.parse_times`: ISO strings of any precision; numbers, time
    zones and unreadable strings refused by name)."""
    index = parse_times(init_times, "init_times")
    if index.size == 0:
        raise SchemaError("init_times is empty; give at least one initial time")
    return index


def _check_finite(x: np.ndarray, model: ForecastModel, ds: xr.Dataset) -> None:
    """Raise SchemaError naming the channels of ``x`` (T, 2, C, H, W) that hold NaN or ±inf."""
    finite = np.isfinite(x).all(axis=(0, 1, 3, 4))
    if finite.all():
        return
    bad = [model.channels[i] for i in np.nonzero(~finite)[0]]
    names = [channel_name(c) for c in bad]
    half = sorted({str(v) for v, _ in bad if ds[v].dtype == np.float16})
    hint = (
        f"; {half} are float16, which overflows to inf above 65504 (e.g. geopotential or "
        "surface pressure in SI units): store the data as float32"
        if half
        else ""
    )
    raise SchemaError(f"model inputs contain NaN or infinite values in channel(s) {names}{hint}")


def forecast_dataset(
    states: np.ndarray | torch.Tensor,
    *,
    model: ForecastModel,
    init_times: np.ndarray,
    leads: np.ndarray,
    member_dim: str | None = None,
    attrs: dict[str, Any] | None = None,
    copy: bool = True,
) -> xr.Dataset:
    """Turn predicted states into a WeatherBench2 forecast Dataset.

    Parameters
    ----------
    states : array, shape (T, L, C, H, W) or, with ``member_dim``, (T, M, L, C, H, W)
        Predicted states in physical units.
    model : ForecastModel
        Gives channel list and grid.
    init_times : datetime64 array (T,)
    leads : timedelta64 array (L,)
    member_dim : str, optional
        Name of the ensemble dim (``"number"``) if the second axis holds members.
    attrs : dict, optional
        Provenance attributes for the Dataset.
    copy : bool, default True
        False for a NumPy buffer the caller hands over: the variables are views of it
        where the channels allow (no second copy of a large forecast).

    Returns
    -------
    xarray.Dataset
        Dims ``time`` (initial time), [``number``], ``prediction_timedelta``, ``level``,
        ``latitude``, ``longitude``; one variable per model variable.
    """
    arr = states.detach().cpu().numpy() if hasattr(states, "detach") else np.asarray(states)
    dims = ["time", "prediction_timedelta", "channel", "latitude", "longitude"]
    coords: dict[str, Any] = {
        "time": np.asarray(init_times, dtype="datetime64[ns]"),
        "prediction_timedelta": np.asarray(leads).astype("timedelta64[ns]"),
        "latitude": ("latitude", model.latitude, {"units": "degrees_north"}),
        "longitude": ("longitude", model.longitude, {"units": "degrees_east"}),
    }
    coords["prediction_timedelta"] = (
        "prediction_timedelta", coords["prediction_timedelta"], {"long_name": "lead time"}
    )  # fmt: skip
    if member_dim is not None:
        dims.insert(1, member_dim)
        coords[member_dim] = (member_dim, np.arange(arr.shape[1]), {"long_name": "ensemble member"})
    if arr.ndim != len(dims):
        raise ValueError(f"states has shape {arr.shape}; expected {len(dims)} dims {dims}")
    da = xr.DataArray(arr, dims=dims, coords=coords)
    ds = unstack(da, model.channels, copy=copy)
    for name in ds.data_vars:
        if str(name) in VARIABLES:
            units, long_name = VARIABLES[str(name)]
            ds[name].attrs.update(units=units, long_name=long_name)
    ds = ds.transpose(*canonical_order(ds.dims))
    ds.attrs.update(attrs or {})
    return ds
