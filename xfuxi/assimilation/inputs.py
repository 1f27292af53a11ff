"""From xarray to the En4DVar core's tensors: background, state samples, slots, localization."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..data.channels import stack
from ..data.schema import (
    SchemaError,
    check_state_dims,
    parse_time,
    states_at_valid_times,
    validate,
)
from ..models.base import check_plausible
from .config import localization_options
from .cost import ObsSlot
from .localization import Localization, localization

__all__ = ["background_tensor", "build_localization", "observation_slots", "states_tensor"]


def background_tensor(
    background: xr.Dataset, model: Any, *, time: Any = None
) -> tuple[xr.Dataset, pd.Timestamp, torch.Tensor]:
    """The background at t0 − 2Δ, t0 − Δ and t0 as a float64 tensor ``(3, C, H, W)``.

    The background is canonicalised first (:func:`xfuxi.validate`: latitude ascending,
    longitude 0..360 ascending, times sorted; a copy, the input is not changed), so a
    background with descending latitude is accepted as :func:`xfuxi.forecast` accepts it.
    States of a forecast at one lead (a scalar ``prediction_timedelta``, as
    ``fc.sel(prediction_timedelta="6h")`` leaves) are valid at ``time + lead`` and are
    taken at those times (:func:`xfuxi.data.schema.states_at_valid_times`), as
    :func:`xfuxi.forecast` takes them.

    Returns
    -------
    (canonical background, t0, tensor)

    Raises
    ------
    SchemaError
        No ``time`` dim, a model variable with another dim than time, level, latitude and
        longitude (an ensemble's ``number``/``member``), times missing, NaN, a scalar lead
        that is not a time span.
    """
    if isinstance(background, xr.Dataset):  # a forecast's states at one lead: valid times
        background = states_at_valid_times(background, "the background")
    if not isinstance(background, xr.Dataset) or "time" not in background.dims:
        raise SchemaError("background must be a Dataset with a 'time' dim")
    background = validate(background, require_time=True)
    # only the model's variables count, as for a forecast: another may have other dims
    model_vars = {str(c[0]) for c in model.channels}
    check_state_dims(
        background[[v for v in background.data_vars if str(v) in model_vars]],
        "the background states",
        "an analysis starts from one background state per time: select a member "
        "(ds.isel(number=0)) or pass the ensemble mean (ds.mean('number')); an ensemble for "
        "B goes in error_data.members",
    )
    model.check_dataset(background)
    check_plausible(background, model)  # a state: its values must fit the model's statistics
    step = pd.Timedelta(model.timestep)
    times = pd.DatetimeIndex(background["time"].values)
    # read as every time xfuxi is given (UTC marked as UTC read as UTC; another time zone,
    # compared with the data's naive times, made every one "missing": refused)
    t0 = times.max() if time is None else parse_time(time, f"the analysis time {time!r}")
    need = [t0 - 2 * step, t0 - step, t0]
    missing = [str(t) for t in need if t not in times]
    if missing:
        raise SchemaError(
            f"background needs times {[str(t) for t in need]} (t0 - 12 h, t0 - 6 h, t0); "
            f"missing {missing}"
        )
    arr = stack(background.sel(time=need), model.channels).transpose(
        "time", "channel", "latitude", "longitude"
    )
    bg = torch.as_tensor(np.asarray(arr.values, dtype="float64"))
    if not torch.isfinite(bg).all():
        raise SchemaError("background contains NaN or infinite values")
    return background, t0, bg


def states_tensor(
    ds: Any, model: Any, *, dim: str, name: str, valid_at: Any = None
) -> torch.Tensor:
    """A Dataset of states along ``dim`` as a float64 tensor (K, C, H, W), checked.

    With ``valid_at``, a ``time`` (initial time, plus ``prediction_timedelta`` if present;
    a dim of length one or a scalar coordinate) must give that valid time. The states are
    read in the canonical layout (:func:`xfuxi.validate`: north-to-south or −180..180 data
    are sorted, as a background is)."""
    if not isinstance(ds, xr.Dataset):
        raise SchemaError(f"{name} must be a Dataset with a {dim!r} dim")
    ds = validate(ds)
    if dim not in ds.dims:
        raise SchemaError(f"{name} must be a Dataset with a {dim!r} dim")
    if dim in ds.indexes and not ds.indexes[dim].is_unique:  # one state counted twice in B
        twice = ds.indexes[dim][ds.indexes[dim].duplicated()].unique()
        raise SchemaError(
            f"{name} label {len(twice)} {dim!r} value(s) more than once ({list(twice[:5])}): "
            f"each state may appear only once (concatenated with itself?)"
        )
    for d in ("time", "prediction_timedelta"):
        if d in ds.dims:
            if ds.sizes[d] != 1:
                raise SchemaError(f"{name} must be valid at one time; its {d!r} has {ds.sizes[d]}")
            ds = ds.isel({d: 0})
    # (a scalar time after .isel(time=0) or .sel(...)), plus the lead: the valid time
    ds = states_at_valid_times(ds, name)
    if valid_at is not None and "time" in ds.coords and ds["time"].ndim == 0:
        valid = pd.Timestamp(ds["time"].values)
        if valid != pd.Timestamp(valid_at):
            raise SchemaError(f"{name} is valid at {valid}, not at the analysis time {valid_at}")
    extra = sorted(set(ds.dims) - {dim, "level", "latitude", "longitude"})
    if extra:
        raise SchemaError(f"{name} has unexpected dims {extra}")
    if ds.sizes[dim] < 2:
        raise ValueError(f"{name} needs at least 2 along {dim!r}; got {ds.sizes[dim]}")
    model.check_dataset(ds)
    arr = stack(ds, model.channels).transpose(dim, "channel", "latitude", "longitude")
    out = torch.as_tensor(np.asarray(arr.values, dtype="float64"))
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return out


def build_localization(options: Any, model: Any) -> Localization | None:
    """A :class:`~xfuxi.assimilation.localization.Localization` for ``model``'s grid.

    ``options``: a :class:`~xfuxi.assimilation.config.LocalizationOptions` or one of its
    shorthands (None, a length scale in km, a dict); a ready Localization is returned as it
    is. Building one takes an eigendecomposition of the grid's correlation: build it once
    and pass it to every analysis of a cycle (nothing is cached behind the caller's back).
    """
    options = localization_options(options)  # a dict changes the default's fields
    if isinstance(options, Localization):
        return options
    if not options.enabled:
        return None
    channels = None
    if options.vertical_scale is not None or options.cross_variable != 1.0:
        channels = model.channels
    kw: dict[str, Any] = dict(
        length_scale=float(options.length_scale),
        kind=options.kind,
        channels=channels,
        vertical_length_scale=options.vertical_scale,
        cross_variable=options.cross_variable,
        variance=options.variance,
    )
    if options.n_points is not None:
        return localization(n_points=options.n_points, **kw)
    return localization(model.latitude, model.longitude, **kw)


def observation_slots(used: xr.Dataset, operator: Any, n_slots: int) -> tuple[list, list]:
    """The screened observations as :class:`ObsSlot` per occupied slot, and their indices."""
    slot_of = used["slot"].values
    slots = []
    order = []
    for k in range(n_slots):
        idx = np.nonzero(slot_of == k)[0]
        if idx.size == 0:
            continue
        order.append(idx)
        slots.append(
            ObsSlot(
                k,
                operator.subset(idx),
                torch.as_tensor(used["value"].values[idx]),
                torch.as_tensor(used["error"].values[idx]),
            )
        )
    return slots, order
