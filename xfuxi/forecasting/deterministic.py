"""Deterministic forecasts: xarray in, xarray out (WeatherBench2 forecast layout).

:func:`forecast` rolls a model (or the FuXi cascade) forward from each initial time and
returns every lead; :func:`forecast_iter` yields one lead at a time.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .._version import __version__
from ..config import is_integer
from ..data.schema import add_lead, input_source
from ..docstrings import with_signature_of
from ..options import progress_bar
from .edge import forecast_dataset, initial_conditions

if TYPE_CHECKING:
    from ..models.base import ForecastModel

__all__ = ["forecast", "forecast_iter"]

log = logging.getLogger(__name__)

#: the model run by ``forecast()`` when no ``model`` is given: the shipped FuXi cascade
DEFAULT_MODEL = "fuxi-hs-t21-cascade"
#: the forecast length when no ``steps`` are given: 10 days (40 steps of 6 h)
DEFAULT_LEAD_HOURS = 240.0


def _default_steps(model: Any) -> int:
    """Number of the model's time steps that cover :data:`DEFAULT_LEAD_HOURS` (10 days)."""
    return int(np.ceil(DEFAULT_LEAD_HOURS / float(model.timestep_hours) - 1e-9))


def _rollout_arrays(
    ds: xr.Dataset,
    *,
    model: Any = DEFAULT_MODEL,
    steps: int | None = None,
    init_times: Sequence[Any] | np.ndarray | xr.DataArray | None = None,
    batch_size: int | None = None,
    device: Any = None,
    dtype: Any = None,
    progress: bool | None = None,
):
    """The one signature of :func:`forecast` and :func:`forecast_iter`: check the arguments
    and return ``(model, initial times, leads, generator of (k, states))``."""
    import torch

    from ..models.base import check_first_step
    from ..models.registry import resolve_model
    from ..models.rollout import advance_pair, model_device, model_dtype, model_on

    model = resolve_model(DEFAULT_MODEL if model is None else model, allow_cascade=True)
    if steps is None:
        steps = _default_steps(model)
    if not is_integer(steps) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    if batch_size is not None and (not is_integer(batch_size) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None; got {batch_size!r}")
    leads = model.timestep * np.arange(1, int(steps) + 1)
    run = model_on(model, device, dtype)
    runs = list(getattr(run, "stages", (run,)))
    # the run's device and dtype from its parameters or, without any (Lorenz-96), its
    # buffers: read from the parameters alone, dtype=torch.float64 ran such a model in float32
    dev, dt = model_device(runs[0]), model_dtype(runs[0])
    # float64 runs start from the data's float64 values, not their float32 rounding; the
    # other dtypes from float32 (cast to dt on the device), as before
    x, t0 = initial_conditions(
        ds, model, init_times=init_times, dtype="float64" if dt == torch.float64 else "float32"
    )
    # the last valid times: past 2262-04-11 they wrapped to 1677 without a word
    add_lead(t0, leads[-1], f"forecast of {int(steps)} steps: the last valid time", ValueError)
    size = x.shape[0] if batch_size is None else int(batch_size)

    def states():
        was_training = [r.training for r in runs]
        bar = progress_bar(int(steps), progress, f"forecast {model.name}")
        # inference and evaluation mode only while xfuxi computes a lead: between the leads
        # the caller's code runs with torch's state and the modules' modes as it left them
        with torch.inference_mode():
            pairs = [
                torch.from_numpy(x[i : i + size]).to(device=dev, dtype=dt)
                for i in range(0, x.shape[0], size)
            ]
        try:
            for k in range(int(steps)):
                run = runs[model.stage_index(k + 1)] if len(runs) > 1 else runs[0]
                outs = []
                for r in runs:
                    r.eval()
                try:
                    with torch.inference_mode():
                        for j, pair in enumerate(pairs):
                            y = run(pair)
                            if k == 0:  # a broken network, not a forecast (the inputs
                                check_first_step(y, model.name)  # were checked finite)
                            pairs[j] = advance_pair(pair, y)
                            outs.append(y.float().cpu().numpy())
                finally:
                    for r, mode in zip(runs, was_training):
                        r.train(mode)
                bar.update(1)
                yield k, np.concatenate(outs)
        finally:
            bar.close()

    return model, t0, leads, states()


def forecast_attrs(model: ForecastModel, steps: int, initial: Any = None) -> dict[str, Any]:
    """Provenance attributes of a forecast made by ``model`` over ``steps`` steps (from
    initial states whose attributes are ``initial``)."""
    attrs = {
        "source": "xfuxi.forecast",
        "model": model.name,
        "checkpoint_sha256": str(model.config.get("sha256", "none")),
        "steps": int(steps),
        "timestep_hours": float(model.timestep_hours),
        "xfuxi_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    source = input_source(initial)
    if source is not None:
        attrs["initial_conditions"] = source
    cascade = model.config.get("cascade")
    if cascade:  # a Cascade: which stage made which steps
        attrs["cascade_stages"] = ",".join(cascade["stages"])
        attrs["cascade_switch_steps"] = ",".join(str(s) for s in cascade["switch_steps"])
    return attrs


@with_signature_of(_rollout_arrays)
def forecast_iter(ds: xr.Dataset, /, **options: Any) -> Iterator[xr.Dataset]:
    """Deterministic forecast one lead time at a time: a generator for long rollouts.

    Same arguments (and defaults: the shipped cascade for 10 days) and results as
    :func:`forecast`; each item is the Dataset of one lead
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
    >>> [float(f.temperature.mean())  # the same through the accessor
    ...  for f in ds.fuxi.forecast_iter(model=model, steps=2, progress=False)]
    [252.0, 253.0]
    """
    model_, t0, leads, gen = _rollout_arrays(ds, **options)
    attrs = forecast_attrs(model_, len(leads), ds.attrs)
    for k, states in gen:
        yield forecast_dataset(
            states[:, None], model=model_, init_times=t0, leads=leads[k : k + 1], attrs=attrs
        )


@with_signature_of(_rollout_arrays)
def forecast(ds: xr.Dataset, /, **options: Any) -> xr.Dataset:
    """Deterministic forecast with a FuXi (or any wrapped) model, in WeatherBench2 layout.

    Parameters
    ----------
    ds : xarray.Dataset
        Analysis-layout data (canonical names and SI units; validated) holding, for each
        initial time ``t``, also ``t − 6 h``: two consecutive times give one forecast; more
        give one forecast per initial time, run together in batches. One state per time:
        no ensemble dim ``number`` (forecast each member separately) and not a DataArray
        (use ``da.to_dataset(name=...)``). Values far outside the model's normalization
        statistics (e.g. temperatures in °C) are refused.
    model : ForecastModel or str or path, default "fuxi-hs-t21-cascade"
        A model (:func:`xfuxi.load_model`, :func:`xfuxi.wrap_model`), or a shipped name
        (see :func:`xfuxi.pretrained_models`) / checkpoint directory to load. By default
        the shipped FuXi cascade (the short-range model for the first 5 days, then the
        medium-range one).
    steps : int, optional
        Number of model steps (leads ``6 h, 12 h, …, steps · 6 h``). Default: 10 days,
        i.e. 40 steps of 6 hours (``ceil(240 h / model.timestep_hours)``).
    init_times : sequence of datetime-like, optional
        Initial times (default: every time in ``ds`` whose predecessor is also in ``ds``).
        Each must appear once (a duplicate is an error); the result's ``time`` is
        ascending, whatever order they are given in.
    batch_size : int, optional
        Initial times run together (default: all).
    device : str or torch.device, optional
        Run on this torch device (default: the model's).
    dtype : torch.dtype, optional
        Run in this floating-point precision (default: the model's: that of its parameters,
        or of its buffers for a model without parameters such as Lorenz-96). A float64 run
        starts from the data's values, not from their float32 rounding; the result is
        float32 whatever the dtype. If the device or the dtype differ from the model's, a
        copy of the model is used; the model passed in is never changed.
    progress : bool, optional
        Progress bar over lead times (default: the ``progress`` option).

    Returns
    -------
    xarray.Dataset
        Dims ``time`` (initial time), ``prediction_timedelta``, ``level``, ``latitude``,
        ``longitude``; one variable per model variable (float32, units attrs). Attrs:
        ``source``, ``model``, ``checkpoint_sha256``, ``steps``, ``timestep_hours``,
        ``xfuxi_version``, ``created``, and ``initial_conditions`` (what ``ds`` came from,
        when its attributes say: :func:`xfuxi.data.schema.input_source`).

    Raises
    ------
    ValueError
        Bad ``steps`` or ``batch_size``, or a last valid time (initial time + ``steps``
        timesteps) beyond ``datetime64[ns]`` (past 2262-04-11).
    SchemaError
        The data lack a channel of the model, are on another grid, have an extra dim,
        contain NaN or values implausible for the model, or an initial time lacks its
        predecessor or is given twice (see :func:`initial_conditions`).
    TypeError
        ``ds`` is not a Dataset, or ``model`` is not a ForecastModel or checkpoint.

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
    >>> ds.fuxi.forecast(model=model, steps=4, progress=False).equals(fc)  # attrs: call time
    True

    Without ``model`` and ``steps``, the shipped cascade runs for 10 days (the data must be
    on its T21 grid, e.g. the Held–Suarez world of :func:`xfuxi.datasets.held_suarez`)::

        world = xfuxi.datasets.held_suarez()
        fc = world.isel(time=slice(0, 2)).fuxi.forecast()  # 40 leads, 6 h to 10 days
    """
    model_, t0, leads, gen = _rollout_arrays(ds, **options)
    out: np.ndarray | None = None
    for k, states in gen:
        if out is None:
            out = np.empty((states.shape[0], len(leads), *states.shape[1:]), dtype="float32")
        out[:, k] = states
    return forecast_dataset(
        out, model=model_, init_times=t0, leads=leads,
        attrs=forecast_attrs(model_, len(leads), ds.attrs), copy=False,
    )  # fmt: skip


# --- ensembles ---
# FuXi-ENS and initial-state (Perlin / Gaussian) ensembles. Everything below this line is the
