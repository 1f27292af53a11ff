"""Rollout and ensemble generation: xarray in, xarray out (WeatherBench2 forecast layout).

This module imports torch only inside functions, so the accessor can import it cheaply.
The conversions at the edge, shared by forecasts, ensembles and 4DVar, are
:func:`initial_conditions` (Dataset → tensor of input pairs) and :func:`forecast_dataset`
(array of predicted states → Dataset with ``time`` = initial time and
``prediction_timedelta``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from .data.channels import stack, unstack
from .data.schema import SchemaError, canonical_order, validate

if TYPE_CHECKING:
    import torch

    from .models.base import ForecastModel

__all__ = ["forecast_dataset", "initial_conditions"]

log = logging.getLogger(__name__)


#: default rows per batch of :func:`ensemble` on CPU and on accelerators (see its docs)
_DEFAULT_CHUNK_CPU = 16
_DEFAULT_CHUNK_ACCELERATOR = 64


def initial_conditions(
    ds: xr.Dataset,
    model: ForecastModel,
    *,
    init_times: Sequence[Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stack the model's input pairs (t − Δ, t) for each initial time from a canonical Dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        Analysis-layout data with a ``time`` dim holding, for each initial time ``t``,
        also ``t - model.timestep``.
    model : ForecastModel
        Gives channels, grid and time step.
    init_times : sequence of datetime-like, optional
        Initial times to use. Default: every time in ``ds`` whose predecessor at
        ``t - Δ`` is also in ``ds`` (two times → one initial time, the later).

    Returns
    -------
    x : numpy.ndarray, shape (T, 2, C, H, W), float32
    init_times : numpy.ndarray of datetime64[ns], shape (T,)

    Raises
    ------
    SchemaError
        Missing channel, grid mismatch, NaN in an input, or an initial time without its
        predecessor.
    """
    ds = validate(ds, require_time=True)
    model.check_dataset(ds)
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
        chosen = list(pd.DatetimeIndex(pd.to_datetime(list(init_times))))
        for t in chosen:
            if t not in times or (t - step) not in times:
                raise SchemaError(
                    f"initial time {t} needs data at {t - step} and {t}; not both in the data"
                )
    chosen_idx = pd.DatetimeIndex(chosen)
    prev = ds.sel(time=chosen_idx - step)
    curr = ds.sel(time=chosen_idx)
    arrays = []
    for part in (prev, curr):
        arr = stack(part, model.channels).transpose("time", "channel", "latitude", "longitude")
        arrays.append(np.asarray(arr.values, dtype="float32"))
    x = np.stack(arrays, axis=1)
    if not np.all(np.isfinite(x)):
        raise SchemaError("model inputs contain NaN or infinite values")
    return x, chosen_idx.values.astype("datetime64[ns]")


def forecast_dataset(
    states: np.ndarray | torch.Tensor,
    *,
    model: ForecastModel,
    init_times: np.ndarray,
    leads: np.ndarray,
    member_dim: str | None = None,
    attrs: dict[str, Any] | None = None,
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
    if member_dim is not None:
        dims.insert(1, member_dim)
        coords[member_dim] = np.arange(arr.shape[1])
    if arr.ndim != len(dims):
        raise ValueError(f"states has shape {arr.shape}; expected {len(dims)} dims {dims}")
    da = xr.DataArray(arr, dims=dims, coords=coords)
    ds = unstack(da, model.channels)
    for name in ds.data_vars:
        from .data.schema import VARIABLES

        if str(name) in VARIABLES:
            ds[name].attrs["units"] = VARIABLES[str(name)][0]
    ds = ds.transpose(*canonical_order(ds.dims))
    ds.attrs.update(attrs or {})
    return ds


# --- deterministic forecasts ---

__all__ += ["forecast", "forecast_iter"]  # noqa: PLE0605


def _resolve_model(model: Any, *, allow_cascade: bool = False) -> Any:
    """A ForecastModel (or, where allowed, a Cascade), or a name / directory to load."""
    import os

    from .models.base import ForecastModel
    from .models.cascade import Cascade, reject_cascade

    if isinstance(model, (str, os.PathLike)):
        from .models.checkpoint import load_model

        model = load_model(model)
    if not allow_cascade:
        reject_cascade(model)
    if not isinstance(model, (ForecastModel, Cascade)):
        raise TypeError(
            f"model must be a ForecastModel (see xfuxi.load_model and xfuxi.wrap_model) or the "
            f"name / directory of a checkpoint; got {type(model).__name__}"
        )
    return model


def _model_on(model: Any, device: Any, dtype: Any) -> Any:
    """The model on ``device`` / ``dtype``: itself if it is there already, else a copy.

    A Cascade gives a Cascade of its stages, each put there (switch steps and name kept).
    """
    import torch

    from .models.cascade import Cascade
    from .models.checkpoint import _as_dtype
    from .options import get_options

    if isinstance(model, Cascade):
        stages = [_model_on(m, device, dtype) for m in model.stages]
        if all(a is b for a, b in zip(stages, model.stages)):
            return model
        return Cascade(stages, model.switch_steps, name=model.name)

    param = next(iter(model.parameters()), None)
    cur_dev = param.device if param is not None else torch.device("cpu")
    cur_dtype = param.dtype if param is not None else torch.float32
    dev = cur_dev if device is None else torch.device(device)
    dt = _as_dtype(dtype) if dtype is not None else (
        cur_dtype if param is not None else _as_dtype(get_options()["dtype"])
    )  # fmt: skip
    same_dev = dev.type == cur_dev.type and (dev.index is None or dev.index == cur_dev.index)
    if same_dev and dt == cur_dtype:
        return model
    log.info("forecast: using a copy of model %r on %s (%s)", model.name, dev, dt)
    return _copy_model(model).to(device=dev, dtype=dt)


def _copy_model(model: ForecastModel) -> ForecastModel:
    """An independent copy of a ForecastModel (network deep-copied, metadata shared)."""
    import copy

    from .models.base import ForecastModel

    return ForecastModel(
        copy.deepcopy(model.net),
        channels=model.channels,
        latitude=model.latitude,
        longitude=model.longitude,
        stats=model.stats,
        residual=model.residual,
        timestep_hours=model.timestep_hours,
        name=model.name,
        config=copy.deepcopy(model.config),
    ).train(model.training)


def _rollout_arrays(
    ds: xr.Dataset,
    model: Any,
    steps: int,
    init_times: Sequence[Any] | None,
    batch_size: int | None,
    device: Any,
    dtype: Any,
    progress: bool | None,
):
    """Check arguments; return (model, initial times, leads, generator of (k, states))."""
    import torch

    model = _resolve_model(model, allow_cascade=True)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):  # fmt: skip
        raise ValueError(f"batch_size must be a positive integer or None; got {batch_size!r}")
    x, t0 = initial_conditions(ds, model, init_times=init_times)
    leads = model.timestep * np.arange(1, int(steps) + 1)
    run = _model_on(model, device, dtype)
    runs = list(getattr(run, "stages", (run,)))
    param = next(iter(runs[0].parameters()), None)
    dev = param.device if param is not None else torch.device(device or "cpu")
    dt = param.dtype if param is not None else torch.float32
    size = x.shape[0] if batch_size is None else int(batch_size)

    def states():
        was_training = [r.training for r in runs]
        for r in runs:
            r.eval()
        bar = _tqdm_bar(int(steps), progress, f"forecast {model.name}")
        try:
            with torch.inference_mode():
                pairs = [
                    torch.from_numpy(x[i : i + size]).to(device=dev, dtype=dt)
                    for i in range(0, x.shape[0], size)
                ]
                for k in range(int(steps)):
                    run = runs[model.stage_index(k + 1)] if len(runs) > 1 else runs[0]
                    outs = []
                    for j, pair in enumerate(pairs):
                        y = run(pair)
                        pairs[j] = torch.stack([pair[:, 1], y], dim=1)
                        outs.append(y.float().cpu().numpy())
                    bar.update(1)
                    yield k, np.concatenate(outs)
        finally:
            bar.close()
            for r, mode in zip(runs, was_training):
                r.train(mode)

    return model, t0, leads, states()


def _forecast_attrs(model: ForecastModel, steps: int) -> dict[str, Any]:
    import datetime

    from . import __version__

    attrs = {
        "source": "xfuxi.forecast",
        "model": model.name,
        "checkpoint_sha256": str(model.config.get("sha256", "none")),
        "steps": int(steps),
        "timestep_hours": float(model.timestep_hours),
        "xfuxi_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    cascade = model.config.get("cascade")
    if cascade:  # a Cascade: which stage made which steps
        attrs["cascade_stages"] = ",".join(cascade["stages"])
        attrs["cascade_switch_steps"] = ",".join(str(s) for s in cascade["switch_steps"])
    return attrs


def _tqdm_bar(total: int, progress: bool | None, desc: str):
    from tqdm.auto import tqdm

    from .options import get_options

    show = get_options()["progress"] if progress is None else bool(progress)
    return tqdm(total=total, desc=desc, disable=not show, leave=False)


def forecast_iter(
    ds: xr.Dataset,
    *,
    model: Any,
    steps: int,
    init_times: Sequence[Any] | None = None,
    batch_size: int | None = None,
    device: Any = None,
    dtype: Any = None,
    progress: bool | None = None,
):
    """Deterministic forecast one lead time at a time: a generator for long rollouts.

    Same arguments and results as :func:`forecast`; each item is the Dataset of one lead
    (``prediction_timedelta`` of length 1), so only the current input pairs are held in
    memory. ``xr.concat(list(forecast_iter(...)), "prediction_timedelta")`` equals
    :func:`forecast`'s result.

    Yields
    ------
    xarray.Dataset
        Dims ``time`` (initial time), ``prediction_timedelta`` (1), ``level``, ``latitude``,
        ``longitude``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, torch, xarray as xr, xfuxi
    >>> class Trend(torch.nn.Module):
    ...     def forward(self, x):
    ...         return 2 * x[:, 1] - x[:, 0]
    >>> model = xfuxi.wrap_model(Trend(), channels=[("temperature", 500.0)],
    ...                          latitude=[-45.0, 45.0], longitude=[0.0, 90.0, 180.0, 270.0])
    >>> ds = xr.Dataset({"temperature": (("time", "level", "latitude", "longitude"),
    ...                                  np.array([250.0, 251.0])[:, None, None, None]
    ...                                  * np.ones((2, 1, 2, 4)))},
    ...                 coords={"time": pd.date_range("2000-01-01", periods=2, freq="6h"),
    ...                         "level": [500], "latitude": [-45.0, 45.0],
    ...                         "longitude": [0.0, 90.0, 180.0, 270.0]})
    >>> [float(f.temperature.mean()) for f in forecast_iter(ds, model=model, steps=3,
    ...                                                      progress=False)]
    [252.0, 253.0, 254.0]
    """
    model_, t0, leads, gen = _rollout_arrays(
        ds, model, steps, init_times, batch_size, device, dtype, progress
    )
    attrs = _forecast_attrs(model_, steps)
    for k, states in gen:
        yield forecast_dataset(
            states[:, None], model=model_, init_times=t0, leads=leads[k : k + 1], attrs=attrs
        )


def forecast(
    ds: xr.Dataset,
    *,
    model: Any,
    steps: int,
    init_times: Sequence[Any] | None = None,
    batch_size: int | None = None,
    device: Any = None,
    dtype: Any = None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Deterministic forecast with a FuXi (or any wrapped) model, in WeatherBench2 layout.

    Parameters
    ----------
    ds : xarray.Dataset
        Analysis-layout data (canonical names; validated) holding, for each initial time
        ``t``, also ``t − 6 h``: two consecutive times give one forecast; more give one
        forecast per initial time, run together in batches.
    model : ForecastModel or str or path
        A model (:func:`xfuxi.load_model`, :func:`xfuxi.wrap_model`), or a shipped name
        (``"fuxi-hs-t21"``) / checkpoint directory to load.
    steps : int
        Number of 6-hour steps (leads ``6 h, 12 h, …, steps · 6 h``).
    init_times : sequence of datetime-like, optional
        Initial times (default: every time in ``ds`` whose predecessor is also in ``ds``).
    batch_size : int, optional
        Initial times run together (default: all).
    device, dtype : optional
        Run on this torch device / dtype (default: the model's). If they differ from the
        model's, a copy of the model is used; the model passed in is never changed.
    progress : bool, optional
        Progress bar over lead times (default: the ``progress`` option).

    Returns
    -------
    xarray.Dataset
        Dims ``time`` (initial time), ``prediction_timedelta``, ``level``, ``latitude``,
        ``longitude``; one variable per model variable (float32, units attrs). Attrs:
        ``source``, ``model``, ``checkpoint_sha256``, ``steps``, ``timestep_hours``,
        ``xfuxi_version``, ``created``.

    Raises
    ------
    ValueError
        Bad ``steps`` or ``batch_size``.
    SchemaError
        The data lack a channel of the model, are on another grid, contain NaN, or an
        initial time lacks its predecessor (see :func:`initial_conditions`).
    TypeError
        ``model`` is not a ForecastModel or checkpoint.

    Notes
    -----
    Autoregressive rollout (FuXi, Chen et al. 2023): ``x_{k+1} = M(x_{k-1}, x_k)``, each
    prediction fed back as the latest input. Runs under ``torch.inference_mode`` with the
    model in eval mode, so no autograd state is kept; 4DVar differentiates through
    ``model`` directly instead.

    Examples
    --------
    >>> import numpy as np, pandas as pd, torch, xarray as xr, xfuxi
    >>> class Persist(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x[:, 1]
    >>> model = xfuxi.wrap_model(Persist(), channels=[("temperature", 500.0)],
    ...                          latitude=[-45.0, 45.0], longitude=[0.0, 90.0, 180.0, 270.0])
    >>> ds = xr.Dataset({"temperature": (("time", "level", "latitude", "longitude"),
    ...                                  np.full((3, 1, 2, 4), 250.0))},
    ...                 coords={"time": pd.date_range("2000-01-01", periods=3, freq="6h"),
    ...                         "level": [500], "latitude": [-45.0, 45.0],
    ...                         "longitude": [0.0, 90.0, 180.0, 270.0]})
    >>> fc = forecast(ds, model=model, steps=4, progress=False)
    >>> fc.temperature.dims
    ('time', 'prediction_timedelta', 'level', 'latitude', 'longitude')
    >>> fc.temperature.shape
    (2, 4, 1, 2, 4)
    >>> fc.prediction_timedelta.values.astype("timedelta64[h]")[[0, -1]]
    array([ 6, 24], dtype='timedelta64[h]')
    """
    model_, t0, leads, gen = _rollout_arrays(
        ds, model, steps, init_times, batch_size, device, dtype, progress
    )
    out: np.ndarray | None = None
    for k, states in gen:
        if out is None:
            out = np.empty((states.shape[0], len(leads), *states.shape[1:]), dtype="float32")
        out[:, k] = states
    return forecast_dataset(
        out, model=model_, init_times=t0, leads=leads, attrs=_forecast_attrs(model_, steps)
    )


# --- ensembles ---
# FuXi-ENS and initial-state (Perlin / Gaussian) ensembles. Everything below this line is the
# ensemble subsystem; the tensor work lives in xfuxi.models.ens (imported inside functions).

__all__ += ["ensemble", "ensemble_iter"]  # noqa: PLE0605

_ENSEMBLE_METHODS = ("vae", "perlin", "gaussian")
_DEFAULT_AMPLITUDE = {"vae": 1.0, "perlin": 0.05, "gaussian": 0.05}
_DEFAULT_PERTURBATION = "fuxi-ens-hs-t21"


def _ensemble_setup(
    ds: xr.Dataset,
    model: Any,
    n: int,
    steps: int,
    method: str,
    perturbation: Any,
    seed: int,
    chunk_size: int | None,
    amplitude: float | None,
    init_times: Sequence[Any] | None,
    device: Any,
    noise_kwargs: dict[str, Any] | None,
) -> dict[str, Any]:
    """Check arguments and build everything the ensemble loop needs."""
    import os

    import torch

    from .models.ens import PerturbationVAE, load_perturbation

    if method not in _ENSEMBLE_METHODS:
        raise ValueError(f"method must be one of {_ENSEMBLE_METHODS}; got {method!r}")
    for label, value, low in (("n", n, 1), ("steps", steps, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{label} must be an integer >= {low}; got {value!r}")
    if chunk_size is not None and (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, (int, np.integer))
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive integer or None; got {chunk_size!r}")
    amp = _DEFAULT_AMPLITUDE[method] if amplitude is None else float(amplitude)
    if not np.isfinite(amp) or amp < 0:
        raise ValueError(f"amplitude must be a finite number >= 0; got {amplitude!r}")
    if method != "perlin" and noise_kwargs:
        raise ValueError(f"noise_kwargs only apply to method='perlin'; got {sorted(noise_kwargs)}")
    model = _resolve_model(model, allow_cascade=True)
    vae = None
    if method == "vae":
        vae = perturbation if perturbation is not None else _DEFAULT_PERTURBATION
        if isinstance(vae, (str, os.PathLike)):
            vae = load_perturbation(vae)
        if not isinstance(vae, PerturbationVAE):
            raise TypeError(
                "perturbation must be a PerturbationVAE or the name / directory of a saved "
                f"one; got {type(vae).__name__}"
            )
        vae.check_model(model)
    elif perturbation is not None:
        raise ValueError(f"perturbation is only used by method='vae' (got method={method!r})")
    x, t0 = initial_conditions(ds, model, init_times=init_times)
    run = _model_on(model, device, None)
    param = next(iter(getattr(run, "stages", (run,))[0].parameters()), None)
    dev = param.device if param is not None else torch.device(device or "cpu")
    dtype = param.dtype if param is not None else torch.float32
    if vae is not None:
        vae = _vae_on(vae, dev, dtype)
    rows = x.shape[0] * int(n)
    default = _DEFAULT_CHUNK_CPU if dev.type == "cpu" else _DEFAULT_CHUNK_ACCELERATOR
    size = min(rows, default) if chunk_size is None else min(int(chunk_size), rows)
    return {
        "model": model,
        "run": run,
        "dtype": dtype,
        "vae": vae,
        "x": x,
        "init_times": t0,
        "device": dev,
        "chunk": size,
        "amplitude": amp,
        "leads": np.arange(1, int(steps) + 1) * model.timestep,
    }


def _vae_on(vae: Any, device: Any, dtype: Any) -> Any:
    """The perturbation module on ``device`` / ``dtype``: itself if there already, else a copy."""
    import copy

    param = next(iter(vae.parameters()))
    if param.device == device and param.dtype == dtype:
        return vae
    return copy.deepcopy(vae).to(device=device, dtype=dtype)


def _initial_noise(method: str, model: ForecastModel, amplitude: float, kwargs: dict[str, Any]):
    """The initial-state noise function of the Perlin and Gaussian methods."""
    import torch

    std = np.asarray(model.stats.std, dtype="float32")

    if method == "gaussian":

        def gaussian(gens, shape, like):
            scale = torch.as_tensor(std, device=like.device).view(1, -1, 1, 1) * amplitude
            noise = torch.stack([torch.randn(tuple(shape), generator=g) for g in gens])
            return noise.to(like.device, like.dtype) * scale

        return gaussian

    from .assimilation.perlin import perlin_perturbations

    def perlin(gens, shape, like):
        fields = [
            perlin_perturbations(
                1, std=std, shape=tuple(shape[1:]), amplitude=amplitude, generator=g, **kwargs
            )
            for g in gens
        ]
        return torch.cat(fields).to(like.device, like.dtype)

    return perlin


def _ensemble_arrays(setup: dict[str, Any], n: int, method: str, seed: int, progress, kwargs):
    """Yield ``(lead index, states (T, n, C, H, W) numpy)`` one lead at a time."""
    import torch

    from .models.ens import ensemble_rollout, member_generators

    model, vae, dev = setup["run"], setup["vae"], setup["device"]
    x, t0, size = setup["x"], setup["init_times"], setup["chunk"]
    n_t = x.shape[0]
    # rows ordered (initial time, member); the key of a row is (initial time in s, member)
    t_sec = t0.astype("datetime64[s]").astype("int64")
    keys = [(int(t_sec[i]), m) for i in range(n_t) for m in range(n)]
    rows = np.repeat(np.arange(n_t), n)
    noise = None if method == "vae" else _initial_noise(method, model, setup["amplitude"], kwargs)
    modules = [*getattr(model, "stages", (model,)), *([vae] if vae is not None else [])]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.inference_mode():
            rollouts = []
            for start in range(0, len(keys), size):
                sl = slice(start, start + size)
                xb = torch.from_numpy(x[rows[sl]]).to(device=dev, dtype=setup["dtype"])
                rollouts.append(
                    ensemble_rollout(
                        model,
                        xb,
                        steps=len(setup["leads"]),
                        generators=member_generators(seed, keys[sl]),
                        perturbation=vae,
                        initial_noise=noise,
                        amplitude=setup["amplitude"] if method == "vae" else 1.0,
                    )
                )
            bar = _tqdm_bar(len(setup["leads"]), progress, f"ensemble ({method}, n={n})")
            for k in range(len(setup["leads"])):
                out = torch.cat([next(r) for r in rollouts]).float().cpu().numpy()
                bar.update(1)
                yield k, out.reshape(n_t, n, *out.shape[1:])
            bar.close()
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def _ensemble_attrs(setup: dict[str, Any], n: int, method: str, seed: int) -> dict[str, Any]:
    vae = setup["vae"]
    attrs = _forecast_attrs(setup["model"], len(setup["leads"]))
    return {
        **attrs,
        "ensemble_method": method,
        "ensemble_size": int(n),
        "seed": int(seed),
        "amplitude": setup["amplitude"],
        "model": setup["model"].name,
        "perturbation_model": vae.name if vae is not None else "none",
        "source": "xfuxi.ensemble (FuXi-ENS)" if method == "vae" else "xfuxi.ensemble",
    }


def ensemble_iter(
    ds: xr.Dataset,
    *,
    model: Any,
    n: int,
    steps: int,
    method: str = "vae",
    perturbation: Any = None,
    seed: int = 0,
    chunk_size: int | None = None,
    amplitude: float | None = None,
    init_times: Sequence[Any] | None = None,
    device: Any = None,
    noise_kwargs: dict[str, Any] | None = None,
    progress: bool | None = None,
):
    """Ensemble forecast one lead at a time: a generator for long rollouts.

    Same arguments and members as :func:`ensemble`; each item is the Dataset of one lead
    (``prediction_timedelta`` of length 1), so only the current states of the members are
    held in memory. ``xr.concat(list(ensemble_iter(...)), "prediction_timedelta")`` equals
    :func:`ensemble`'s result.

    Yields
    ------
    xarray.Dataset
        Dims ``time``, ``prediction_timedelta`` (1), ``number``, ``level``, ``latitude``,
        ``longitude``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, torch, xarray as xr, xfuxi
    >>> class Persist(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x[:, 1]
    >>> model = xfuxi.wrap_model(Persist(), channels=[("temperature", 500.0)],
    ...                          latitude=[-45.0, 45.0], longitude=[0.0, 90.0, 180.0, 270.0])
    >>> ds = xr.Dataset({"temperature": (("time", "level", "latitude", "longitude"),
    ...                                  np.full((2, 1, 2, 4), 250.0))},
    ...                 coords={"time": pd.date_range("2000-01-01", periods=2, freq="6h"),
    ...                         "level": [500], "latitude": [-45.0, 45.0],
    ...                         "longitude": [0.0, 90.0, 180.0, 270.0]})
    >>> leads = [f.sizes["number"] for f in ensemble_iter(ds, model=model, n=3, steps=2,
    ...                                                   method="gaussian", progress=False)]
    >>> leads
    [3, 3]
    """
    setup = _ensemble_setup(
        ds, model, n, steps, method, perturbation, seed, chunk_size, amplitude, init_times,
        device, noise_kwargs,
    )  # fmt: skip
    attrs = _ensemble_attrs(setup, n, method, seed)
    for k, states in _ensemble_arrays(setup, int(n), method, seed, progress, noise_kwargs or {}):
        yield forecast_dataset(
            states[:, :, None],
            model=setup["model"],
            init_times=setup["init_times"],
            leads=setup["leads"][k : k + 1],
            member_dim="number",
            attrs=attrs,
        )


def ensemble(
    ds: xr.Dataset,
    *,
    model: Any,
    n: int,
    steps: int,
    method: str = "vae",
    perturbation: Any = None,
    seed: int = 0,
    chunk_size: int | None = None,
    amplitude: float | None = None,
    init_times: Sequence[Any] | None = None,
    device: Any = None,
    noise_kwargs: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Ensemble forecast: FuXi-ENS learned perturbations, or a perturbed-initial-state baseline.

    Parameters
    ----------
    ds : xarray.Dataset
        Analysis-layout data holding, for each initial time ``t``, also ``t − 6 h``.
    model : ForecastModel or Cascade or str
        The deterministic forecast model (or a name for :func:`xfuxi.load_model`). With a
        :class:`~xfuxi.models.cascade.Cascade` (e.g. ``"fuxi-hs-t21-cascade"``) each stage
        makes its own range of steps, as in :func:`forecast`; the members' noise is drawn as
        with a single model, and a VAE module's ``model_gain`` scales its perturbations
        before the steps of the stage it names (the shipped module has one for
        ``"fuxi-hs-t21-medium"``).
    n : int
        Ensemble size (members per initial time).
    steps : int
        Number of 6-hour steps (leads ``6 h .. steps · 6 h``).
    method : {"vae", "perlin", "gaussian"}, default "vae"
        ``"vae"``: FuXi-ENS, the learned perturbation module perturbs the initial state and
        every step. ``"perlin"``: multi-octave Perlin noise
        (:func:`xfuxi.assimilation.perlin.perlin_perturbations`) of ``amplitude × std[c]``
        added to the initial pair. ``"gaussian"``: i.i.d. Gaussian noise of
        ``amplitude × std[c]`` added to the initial pair. The last two run the
        deterministic model unperturbed afterwards.
    perturbation : PerturbationVAE or str, optional
        The perturbation module (or a shipped name / checkpoint directory) for
        ``method="vae"``; default the shipped ``"fuxi-ens-hs-t21"``.
    seed : int, default 0
        Member ``m`` of initial time ``t`` draws all its noise from a generator seeded by
        ``(seed, t, m)``: same seed → same members, whatever ``chunk_size``.
    chunk_size : int, optional
        Rows (initial time × member) run together in one batch; bounds memory. Default
        16 on CPU, 64 on an accelerator (at most the number of rows). On CPU a batch of 16
        keeps the activations of the memory-bound layers in cache: 48 members at T21 on
        two cores ran at a median 184 member-steps/s in batches of 16 against 151 in one
        batch of 48 (``benchmarks/bench_ensemble_speed.py``).
    amplitude : float, optional
        VAE: inflation factor of the learned perturbations (default 1). Perlin / Gaussian:
        noise std as a fraction of each channel's climatological std (default 0.05).
    init_times : sequence of datetime-like, optional
        Initial times (default: every time whose predecessor is in ``ds``).
    device : str or torch.device, optional
        Default ``xfuxi.get_options()["device"]``.
    noise_kwargs : dict, optional
        Extra arguments of the Perlin generator (``wavelength``, ``octaves``, ...).
    progress : bool, optional
        Progress bar (default: the ``progress`` option).

    Returns
    -------
    xarray.Dataset
        WeatherBench2 forecast layout plus ``number``: dims ``time`` (initial time),
        ``prediction_timedelta``, ``number``, ``level``, ``latitude``, ``longitude``; attrs
        record the method, size, seed, amplitude and models.

    Raises
    ------
    ValueError
        Unknown method, bad ``n``/``steps``/``seed``/``chunk_size``/``amplitude``, or a
        perturbation module built for other channels or another grid.
    SchemaError
        The data does not match the model (see :func:`initial_conditions`).

    Notes
    -----
    FuXi-ENS (Zhong et al. 2024; DESIGN.md §4): at every step ``k`` (the initial one
    included) the current state is perturbed by a sample of the learned flow-dependent
    prior, ``x_k ← x_k + amplitude · D(μ_k + σ_k ε_k)``, and the model steps from the
    perturbed pair.

    Examples
    --------
    >>> import numpy as np, pandas as pd, torch, xarray as xr, xfuxi
    >>> class Persist(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x[:, 1]
    >>> model = xfuxi.wrap_model(Persist(), channels=[("temperature", 500.0)],
    ...                          latitude=[-45.0, 45.0], longitude=[0.0, 90.0, 180.0, 270.0])
    >>> ds = xr.Dataset({"temperature": (("time", "level", "latitude", "longitude"),
    ...                                  np.full((2, 1, 2, 4), 250.0))},
    ...                 coords={"time": pd.date_range("2000-01-01", periods=2, freq="6h"),
    ...                         "level": [500], "latitude": [-45.0, 45.0],
    ...                         "longitude": [0.0, 90.0, 180.0, 270.0]})
    >>> fc = ensemble(ds, model=model, n=4, steps=3, method="gaussian", amplitude=0.1,
    ...               progress=False)
    >>> fc.temperature.dims
    ('time', 'prediction_timedelta', 'number', 'level', 'latitude', 'longitude')
    >>> bool((fc.temperature.std("number") > 0).all())
    True
    """
    setup = _ensemble_setup(
        ds, model, n, steps, method, perturbation, seed, chunk_size, amplitude, init_times,
        device, noise_kwargs,
    )  # fmt: skip
    x = setup["x"]
    out = np.empty((x.shape[0], int(n), len(setup["leads"]), *x.shape[2:]), dtype="float32")
    for k, states in _ensemble_arrays(setup, int(n), method, seed, progress, noise_kwargs or {}):
        out[:, :, k] = states
    return forecast_dataset(
        out,
        model=setup["model"],
        init_times=setup["init_times"],
        leads=setup["leads"],
        member_dim="number",
        attrs=_ensemble_attrs(setup, n, method, seed),
    )
