"""Background-error statistics for the ensemble B: how large the background errors are.

A Perlin ensemble run one step gives flow-dependent *correlations*, but its spread per
channel is whatever the perturbation amplitude and the model's one step make of it (with
balanced perturbations the winds and temperature get the spread the balance relations give
them). The variances of B should instead be those of the background error. The standard
way to know them in an operational system is from forecast-minus-analysis statistics over
a past period: :func:`background_error_std` computes them for a model and a dataset of
states (analyses or, in a twin experiment, the truth run of an *independent* period), and
:func:`xfuxi.assimilate_4dvar` rescales each channel of the ensemble anomalies to them with
``error_data.spread`` (variance calibration that keeps the ensemble's correlations).

A shipped model carries such statistics in its checkpoint (:data:`BACKGROUND_ERROR_FILE`,
listed in the checkpoint's manifest and the registry; :func:`save_background_error` writes
it, :func:`model_background_error` reads it back, verified), and
:func:`xfuxi.assimilate_4dvar` uses them when no ``error_data.spread`` is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..config import check_flag
from ..data.channels import WIND_COMPONENTS, channel_name, parse_channel_name, stack, unstack
from ..data.schema import canonical_order, check_state_dims, require_dataset, validate
from ..docstrings import docstring_parts
from ..models.cascade import reject_cascade
from ..models.checkpoint import (
    CONFIG,
    CheckpointError,
    json_bytes,
    json_from_bytes,
    read_checkpoint,
    write_checkpoint,
)
from ..models.registry import load_model
from ..models.rollout import rollout

__all__ = [
    "BACKGROUND_ERROR_FILE",
    "background_error_std",
    "channel_values",
    "forecast_error_samples",
    "innovation_spread",
    "model_background_error",
    "save_background_error",
    "spread_values",
    "wind_pairs",
]


def _channel_field(value: xr.Dataset, variable: str, level: float | None, name: str) -> Any:
    """The DataArray of one channel in a per-variable Dataset (its level selected)."""
    if variable not in value:
        raise ValueError(f"{name} has no variable {variable!r}")
    da = value[variable]
    if level is not None and "level" in da.dims:
        if level not in da["level"].values:
            raise ValueError(f"{name}[{variable!r}] has no level {level:g}")
        da = da.sel(level=level)
    return da


def channel_values(value: Any, channels: Any, *, name: str) -> np.ndarray:
    """One positive finite float per channel from a Dataset (per variable and level) or array.

    Parameters
    ----------
    value : xarray.Dataset, scalar or array-like
        A Dataset with one variable per model variable (``level`` dim where the variable
        has levels), or something that broadcasts to ``(C,)``.
    channels : sequence of (variable, level)
    name : str
        Parameter name used in error messages.

    Returns
    -------
    numpy.ndarray (C,) float64

    Raises
    ------
    ValueError
        A channel is missing, or a value is not positive and finite.

    Examples
    --------
    >>> ch = [("z", 500.0), ("z", 850.0), ("sp", None)]
    >>> ds = xr.Dataset({"z": ("level", [2.0, 3.0]), "sp": 4.0}, coords={"level": [500.0, 850.0]})
    >>> channel_values(ds, ch, name="spread").tolist()
    [2.0, 3.0, 4.0]
    >>> channel_values(1.5, ch, name="spread").tolist()
    [1.5, 1.5, 1.5]
    """
    chans = [(str(v), None if lv is None else float(lv)) for v, lv in channels]
    if isinstance(value, xr.Dataset):
        out = []
        for v, lv in chans:
            da = _channel_field(value, v, lv, name)
            if da.size != 1:
                raise ValueError(f"{name}[{v!r}] must hold one value per level; got {da.sizes}")
            out.append(float(da.values))
        arr = np.asarray(out, dtype="float64")
    else:
        try:
            arr = np.broadcast_to(np.asarray(value, dtype="float64"), (len(chans),)).copy()
        except ValueError:
            raise ValueError(
                f"{name} must be a Dataset or broadcast to ({len(chans)},) channels; "
                f"got shape {np.shape(value)}"
            ) from None
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        names = [f"{v}@{lv:g}" if lv is not None else v for (v, lv), b in zip(chans, bad) if b]
        raise ValueError(f"{name} must be positive and finite; bad for {names}")
    return arr


def spread_values(value: Any, channels: Any, latitude: Any, *, name: str = "spread") -> np.ndarray:
    """Target spread per channel ``(C,)``, or per channel and latitude row ``(C, H)``.

    Like :func:`channel_values`, and also accepts a Dataset whose variables have a
    ``latitude`` dim (e.g. :func:`background_error_std` with ``by_latitude=True``; its
    latitudes must be the model's, in any order) or an array of shape ``(C, H)``. A
    variable without ``latitude`` in such a Dataset is the same on every row.

    Examples
    --------
    >>> ch = [("z", 500.0), ("sp", None)]
    >>> ds = xr.Dataset({"z": (("level", "latitude"), [[1.0, 2.0]]), "sp": 4.0},
    ...                 coords={"level": [500.0], "latitude": [10.0, -10.0]})
    >>> spread_values(ds, ch, [-10.0, 10.0]).tolist()
    [[2.0, 1.0], [4.0, 4.0]]
    >>> spread_values([1.0, 2.0], ch, [-10.0, 10.0]).tolist()
    [1.0, 2.0]
    """
    lat = np.asarray(latitude, dtype="float64")
    chans = [(str(v), None if lv is None else float(lv)) for v, lv in channels]
    if isinstance(value, xr.Dataset):
        if not any("latitude" in value[v].dims for v in value.data_vars):
            return channel_values(value, channels, name=name)
        if "latitude" not in value.coords:
            raise ValueError(f"{name} has a 'latitude' dim without coordinates")
        have = np.asarray(value["latitude"].values, dtype="float64")
        if have.size != lat.size or not np.allclose(np.sort(have), np.sort(lat), atol=1e-6):
            raise ValueError(
                f"{name}'s latitudes ({have.size} rows) are not the model's ({lat.size} rows, "
                f"{lat.min():g}..{lat.max():g})"
            )
        order = np.argsort(have)[np.argsort(np.argsort(lat))]
        rows = []
        for v, lv in chans:
            da = _channel_field(value, v, lv, name)
            extra = [d for d in da.dims if d != "latitude"]
            if extra:
                raise ValueError(f"{name}[{v!r}] must vary along latitude only; got {da.sizes}")
            vals = np.asarray(da.values, dtype="float64")
            rows.append(vals[order] if da.ndim else np.full(lat.size, float(vals)))
        arr = np.stack(rows)
    else:
        arr = np.asarray(value, dtype="float64")
        if arr.shape != (len(chans), lat.size):
            return channel_values(value, channels, name=name)
        arr = arr.copy()
    bad = ~(np.isfinite(arr) & (arr > 0)).all(axis=-1)
    if bad.any():
        names = [f"{v}@{lv:g}" if lv is not None else v for (v, lv), b in zip(chans, bad) if b]
        raise ValueError(f"{name} must be positive and finite; bad for {names}")
    return arr


def wind_pairs(channels: Any) -> list[tuple[int, int]]:
    """Index pairs ``(u, v)`` of the wind components given on the same level.

    Examples
    --------
    >>> wind_pairs([("u_component_of_wind", 500.0), ("geopotential", 500.0),
    ...             ("v_component_of_wind", 500.0), ("v_component_of_wind", 850.0)])
    [(0, 2)]
    """
    index = {(str(v), None if lv is None else float(lv)): i for i, (v, lv) in enumerate(channels)}
    pairs = []
    for (v, lv), i in index.items():
        for u_name, v_name in WIND_COMPONENTS:
            if v == u_name and (v_name, lv) in index:
                pairs.append((i, index[(v_name, lv)]))
    return pairs


def _forecast_errors(
    data: xr.Dataset, model: Any, lead_steps: int, n_samples: int, seed: int
) -> tuple[Any, pd.DatetimeIndex, Iterator[np.ndarray]]:
    """``(model, start times, generator of forecast-minus-state arrays (C, H, W))``."""
    import torch

    require_dataset(data, "data")
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        model = load_model(model)

    reject_cascade(model)
    if int(lead_steps) < 1 or int(n_samples) < 1:
        raise ValueError(f"lead_steps and n_samples must be >= 1; got {lead_steps}, {n_samples}")
    # canonical first (latitude ascending, longitude 0..360, times ascending), as
    # background_tensor reads its input: north-to-south or -180..180 data are the model's
    # grid in another order, not another grid to regrid to, and reversed times are regular
    data = validate(data, require_time=True)
    model_vars = {str(c[0]) for c in model.channels}  # another variable may have other dims
    check_state_dims(
        data[[v for v in data.data_vars if str(v) in model_vars]],
        "the data",
        "forecast-error statistics compare one state per time: select a member (ds.isel(number=0))",
    )
    model.check_dataset(data)
    step = pd.Timedelta(model.timestep)
    times = pd.DatetimeIndex(data["time"].values)
    if times.size < lead_steps + 2:
        raise ValueError(
            f"data has {times.size} times; need at least lead_steps + 2 = {lead_steps + 2}"
        )
    if not (np.diff(times.values) == np.timedelta64(step)).all():
        raise ValueError(f"data's time axis must be regular at the model step {step}")
    starts = np.arange(1, times.size - lead_steps)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(starts, size=min(int(n_samples), starts.size), replace=False))
    arr = np.asarray(
        stack(data, model.channels).transpose("time", "channel", "latitude", "longitude").values,
        dtype="float64",
    )

    def errors() -> Iterator[np.ndarray]:
        with torch.no_grad():
            for i in pick:
                fc = rollout(model, arr[i - 1 : i + 1], int(lead_steps))[-1]
                yield fc - arr[i + lead_steps]

    return model, times[pick], errors()


def _finish(
    out: xr.Dataset, data: xr.Dataset, model: Any, description: str, lead_steps: int, n: int
) -> xr.Dataset:
    """Units from ``data`` and the provenance attrs of the forecast-error statistics."""
    for v in out.data_vars:
        if v in data:
            out[v].attrs = {k: data[v].attrs[k] for k in ("units",) if k in data[v].attrs}
    out.attrs = {
        "description": description,
        "lead_steps": int(lead_steps),
        "n_samples": int(n),
        "model": str(getattr(model, "name", type(model).__name__)),
    }
    return out


#: docstring parts of the forecast-error statistics: their errors, and a persistence model
#: on a world that warms by 1 K every 6 hours, for the examples
_doc = docstring_parts(
    {
        "raises": """\
Raises
------
ValueError
    Too few times, irregular time axis, or non-positive arguments.
SchemaError
    A model variable of ``data`` with another dim than time, level, latitude and longitude
    (an ensemble's ``number``/``member``).""",
        "example_persistence": """\
>>> import numpy as np, pandas as pd, torch, xarray as xr, xfuxi
>>> Last = type("Last", (torch.nn.Module,), {"forward": lambda self, x: x[:, 1]})
>>> lat, lon = [-45.0, 45.0], [0.0, 90.0, 180.0, 270.0]
>>> model = xfuxi.wrap_model(Last(), channels=[("temperature", 500.0)], latitude=lat,
...                          longitude=lon)
>>> ds = xr.Dataset({"temperature": (("time", "level", "latitude", "longitude"),
...                                  250.0 + np.arange(6.0)[:, None, None, None]
...                                  * np.ones((6, 1, 2, 4)))},
...                 coords={"time": pd.date_range("2000-01-01", periods=6, freq="6h"),
...                         "level": [500], "latitude": lat, "longitude": lon})""",
    }
)


@_doc
def background_error_std(
    data: xr.Dataset,
    *,
    model: Any,
    lead_steps: int = 4,
    n_samples: int = 32,
    seed: int = 0,
    by_latitude: bool = False,
) -> xr.Dataset:
    """Std of the background error per variable and level, from forecast-minus-state statistics.

    For ``n_samples`` start times drawn from ``data`` (reproducibly), the model is run
    ``lead_steps`` 6-hour steps from the states at ``t − Δ`` and ``t`` and compared with the
    state it is valid at; the result is the root-mean-square difference over samples and grid
    points (plain grid mean, as the ``error_data.spread`` rescaling of
    :func:`~xfuxi.assimilation.en4dvar.assimilate_4dvar` measures it).

    Parameters
    ----------
    data : xarray.Dataset
        States with a regular ``time`` axis at the model's step (analyses, or a truth run
        of a period *independent* of the one being assimilated), on the model's grid in
        any order: they are put in the canonical layout first (:func:`xfuxi.validate`:
        latitude ascending, longitude 0..360, times ascending).
    model : ForecastModel or str
        Deterministic model (or shipped name / checkpoint directory).
    lead_steps : int, default 4
        Lead of the backgrounds the statistics are for (4 steps = 24 h).
    n_samples : int, default 32
        Start times (at most the number available).
    seed : int, default 0
    by_latitude : bool, default False
        Keep a ``latitude`` dim (RMS over samples and longitude only). As ``error_data.spread`` it
        rescales each latitude row of the ensemble to the error there; the Perlin
        ensemble's own spread is uneven across latitudes, and evening it out lowered the
        cycled analysis error on the embedded world (see the README).

    Returns
    -------
    xarray.Dataset
        One variable per model variable (with ``level`` where it has levels, and
        ``latitude`` with ``by_latitude``), units of the variable; attrs record
        ``lead_steps`` and ``n_samples``. Pass it as ``error_data.spread``.

    {{raises}}

    Examples
    --------
    A persistence model on a world that warms by 1 K every 6 hours: the error grows 1 K a
    step.

    {{example_persistence}}
    >>> background_error_std(ds, model=model, lead_steps=2).temperature.values.tolist()
    [2.0]
    >>> ds.fuxi.background_error_std(model=model, lead_steps=1).temperature.values.tolist()
    [1.0]
    """

    model, picked, errors = _forecast_errors(data, model, lead_steps, n_samples, seed)
    if check_flag(by_latitude, "by_latitude"):
        sq = sum((e**2).mean(axis=-1) for e in errors)
        da = xr.DataArray(
            np.sqrt(sq / picked.size),
            dims=("channel", "latitude"),
            coords={"latitude": np.asarray(model.latitude, dtype="float64")},
        )
    else:
        sq = sum((e**2).mean(axis=(-2, -1)) for e in errors)
        da = xr.DataArray(np.sqrt(sq / picked.size), dims="channel")
    out = unstack(da, model.channels)
    return _finish(out, data, model, "background-error std (RMS forecast minus verifying state)",
                   lead_steps, picked.size)  # fmt: skip


@_doc
def forecast_error_samples(
    data: xr.Dataset,
    *,
    model: Any,
    lead_steps: int = 1,
    n_samples: int = 100,
    seed: int = 0,
) -> xr.Dataset:
    """Samples of the forecast error (forecast minus verifying state): a static B for hybrids.

    The same forecasts as :func:`background_error_std`, kept one by one instead of reduced
    to a std: for ``n_samples`` start times drawn from ``data`` (reproducibly), the model is
    run ``lead_steps`` steps from the states at ``t − Δ`` and ``t``, and the difference from
    the state it is valid at is one sample. Their covariance is a climatological
    background-error covariance with the structures of the model's own short-range errors
    (large-scale, systematic ones included) that a Perlin ensemble of the day does not
    span. Pass it to :func:`xfuxi.assimilate_4dvar` as ``error_data.static_b`` (hybrid B).

    In a real system ``data`` are past analyses (forecast-minus-analysis statistics); in a
    twin experiment, the truth run of a period *independent* of the one assimilated.

    Parameters
    ----------
    data : xarray.Dataset
        States with a regular ``time`` axis at the model's step, on the model's grid in any
        order (put in the canonical layout first, as for :func:`background_error_std`).
    model : ForecastModel or str
    lead_steps : int, default 1
        Forecast length (1 step = 6 h: the background of a 6-hourly cycle).
    n_samples : int, default 100
        Start times (at most the number available).
    seed : int, default 0

    Returns
    -------
    xarray.Dataset
        The model's variables with dims ``sample`` (coordinate ``start_time``), ``level``
        where the variable has levels, ``latitude``, ``longitude``; float32; attrs record
        ``lead_steps`` and ``n_samples``.

    {{raises}}

    Examples
    --------
    A persistence model on a world that warms by 1 K every 6 hours:

    {{example_persistence}}
    >>> e = forecast_error_samples(ds, model=model, lead_steps=1)
    >>> e.temperature.dims, np.unique(e.temperature.values).tolist()
    (('sample', 'level', 'latitude', 'longitude'), [-1.0])
    >>> ds.fuxi.forecast_error_samples(model=model).identical(e)  # through the accessor
    True
    """

    model, picked, errors = _forecast_errors(data, model, lead_steps, n_samples, seed)
    samples = np.stack([e.astype("float32") for e in errors])
    da = xr.DataArray(
        samples,
        dims=("sample", "channel", "latitude", "longitude"),
        coords={
            "sample": np.arange(samples.shape[0]),
            "start_time": ("sample", picked.values),
            "latitude": model.latitude,
            "longitude": model.longitude,
        },
    )
    out = unstack(da, model.channels)
    out = out.transpose(*canonical_order(out.dims))
    return _finish(out, data, model, "forecast-error samples (forecast minus verifying state)",
                   lead_steps, samples.shape[0])  # fmt: skip


#: the file of a model checkpoint that holds the model's background-error std
BACKGROUND_ERROR_FILE = "background_error.json"
_BACKGROUND_ERROR_FORMAT = "xfuxi-background-error/1"


def save_background_error(
    directory: str | os.PathLike[str], std: xr.Dataset, *, kind: str = "forecast-model"
) -> Path:
    """Store a model's background-error std in its checkpoint (as :data:`BACKGROUND_ERROR_FILE`).

    The checkpoint is rewritten atomically with its files unchanged and the new file listed
    in its manifest (:func:`xfuxi.models.checkpoint.write_checkpoint`); for a shipped model,
    record the new sha256 in the registry afterwards
    (:func:`xfuxi.models.registry.register_pretrained`).

    Parameters
    ----------
    directory : path-like
        A forecast-model checkpoint (verified before it is rewritten).
    std : xarray.Dataset
        The std per variable and level, optionally per latitude row, in the layout of
        :func:`background_error_std` (for the checkpoint's channels and latitudes); its
        attrs (lead, samples, split, ...) are kept as provenance.
    kind : str, default "forecast-model"
        The checkpoint's kind (as its manifest records it).

    Returns
    -------
    pathlib.Path
        The checkpoint directory.

    Raises
    ------
    CheckpointError
        Not a verified checkpoint, or no ``config.json`` with channels and latitudes.
    ValueError
        ``std`` lacks a channel or has non-positive values.
    """
    d = Path(directory)
    files = read_checkpoint(d, require=(CONFIG,))
    config = json_from_bytes(files[CONFIG], d / CONFIG)
    try:
        channels = [parse_channel_name(c) for c in config["channels"]]
        latitude = np.asarray(config["latitude"], dtype="float64")
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{d / CONFIG} has no channels and latitudes ({err})") from None
    values = spread_values(std, channels, latitude, name="std")
    record = {
        "format": _BACKGROUND_ERROR_FORMAT,
        "channels": [channel_name(c) for c in channels],
        "latitude": latitude.tolist() if values.ndim == 2 else None,
        "std": values.tolist(),
        "attrs": {k: v for k, v in std.attrs.items() if isinstance(v, (str, int, float))},
    }
    files = {k: v for k, v in files.items() if k != BACKGROUND_ERROR_FILE}
    files[BACKGROUND_ERROR_FILE] = json_bytes(record)
    return write_checkpoint(d, files, kind=kind, overwrite=True)


def model_background_error(model: Any) -> xr.Dataset | None:
    """The background-error std a model's checkpoint carries, or None.

    Read from :data:`BACKGROUND_ERROR_FILE` in the directory the model was loaded from
    (``model.config["source"]``), after checking the checkpoint against its manifest. A
    model without one (built in memory, or a checkpoint without statistics) gives None.

    Parameters
    ----------
    model : ForecastModel

    Returns
    -------
    xarray.Dataset or None
        In the layout of :func:`background_error_std` (a ``latitude`` dim when the
        statistics are per latitude row); attrs: those stored (``lead_steps``,
        ``n_samples``, ``split``, ...) and ``source``, the file.

    Raises
    ------
    CheckpointError
        The file is present but not listed in the manifest, not of the expected format, or
        not for the model's channels and latitudes.
    ChecksumError
        A file of the checkpoint does not match its manifest.

    Examples
    --------
    >>> import xfuxi
    >>> std = model_background_error(xfuxi.load_model("fuxi-hs-t21"))
    >>> std.attrs["lead_steps"], std["temperature"].dims
    (4, ('level', 'latitude'))
    """
    source = (getattr(model, "config", None) or {}).get("source")
    if not source or not (Path(source) / BACKGROUND_ERROR_FILE).is_file():
        return None
    d = Path(source)
    files = read_checkpoint(d)
    if BACKGROUND_ERROR_FILE not in files:
        raise CheckpointError(
            f"{d / BACKGROUND_ERROR_FILE} is not listed in the checkpoint's manifest, so it "
            "cannot be verified; write it with xfuxi.assimilation.calibration."
            "save_background_error"
        )
    record = json_from_bytes(files[BACKGROUND_ERROR_FILE], d / BACKGROUND_ERROR_FILE)
    names = [channel_name(c) for c in model.channels]
    if not isinstance(record, dict) or record.get("format") != _BACKGROUND_ERROR_FORMAT:
        raise CheckpointError(
            f"{d / BACKGROUND_ERROR_FILE} is not of format {_BACKGROUND_ERROR_FORMAT!r}"
        )
    if record.get("channels") != names:
        raise CheckpointError(
            f"{d / BACKGROUND_ERROR_FILE} is for channels {record.get('channels')}, not the "
            f"model's {names}"
        )
    values = np.asarray(record["std"], dtype="float64")
    if record.get("latitude") is None:
        da = xr.DataArray(values, dims="channel")
    else:
        lat = np.asarray(record["latitude"], dtype="float64")
        if lat.shape != np.shape(model.latitude) or not np.allclose(lat, model.latitude):
            raise CheckpointError(
                f"{d / BACKGROUND_ERROR_FILE} is for other latitudes than the model's"
            )
        da = xr.DataArray(values, dims=("channel", "latitude"), coords={"latitude": lat})
    out = unstack(da, model.channels)
    out.attrs = {**record.get("attrs", {}), "source": str(d / BACKGROUND_ERROR_FILE)}
    return out


def innovation_spread(
    used: xr.Dataset,
    operator: Any,
    background: Any,
    channels: Any,
    *,
    min_count: int = 10,
    floor: float = 0.1,
) -> np.ndarray:
    """Background-error std per channel from the innovations of the first slot (adaptive B).

    For the observations of slot 0 whose variable and level are a model channel,
    ``σb² = ⟨(y − H x_b)²⟩ − ⟨σo²⟩`` (innovation variance minus observation-error variance,
    the consistency relation ``E[d dᵀ] = H B Hᵀ + R``), floored at ``floor × ⟨σo²⟩``.
    Channels with fewer than ``min_count`` such observations get NaN (they keep the
    ensemble's own spread). This lets B follow the real background error while cycling,
    where it is not known in advance: a fixed B that is too small makes the analysis ignore
    the observations and the cycle drift away from the truth.

    Parameters
    ----------
    used : xarray.Dataset
        Screened observations with ``slot``, ``variable``, ``level``, ``value``, ``error``
        (as :func:`~xfuxi.observations.sets.screen_observations` returns them).
    operator : ObservationOperator
        Operator for all of ``used``.
    background : Tensor (C, H, W)
        Background at t0.
    channels : sequence of (variable, level)
    min_count : int, default 10
    floor : float, default 0.1

    Returns
    -------
    numpy.ndarray (C,)
        Std per channel, NaN where not estimated.
    """
    import torch

    with torch.no_grad():
        hx = operator(background).detach().cpu().numpy().astype("float64")
    slot = np.asarray(used["slot"].values)
    d = np.asarray(used["value"].values, dtype="float64") - hx
    err2 = np.asarray(used["error"].values, dtype="float64") ** 2
    var = np.asarray(used["variable"].values).astype(str)
    lev = np.asarray(used["level"].values, dtype="float64")
    out = np.full(len(channels), np.nan)
    for c, (v, lv) in enumerate(channels):
        sel = (slot == 0) & (var == str(v))
        sel &= np.isnan(lev) if lv is None else np.isclose(lev, float(lv))
        if sel.sum() < min_count:
            continue
        mean_err2 = float(err2[sel].mean())
        out[c] = np.sqrt(max(float((d[sel] ** 2).mean()) - mean_err2, floor * mean_err2))
    return out
