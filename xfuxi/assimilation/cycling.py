"""Twin experiments on gridded data (the Held–Suarez world): backgrounds and cycling.

A *twin* experiment takes a truth run, draws observations from it, and assimilates them
into a background forecast; the analysis is scored against the truth. The background of a
single analysis is a forecast of ``lead_steps`` 6-hour steps from the truth (so its error is
the model's forecast error at that lead); in cycling, the background of each cycle is the
forecast from the previous analysis.
"""

from __future__ import annotations

import copy
import logging
import time as _time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..config import is_integer
from ..data.channels import stack, unstack
from ..data.schema import canonical_order, parse_time, require_dataset, validate
from ..models.base import check_plausible
from ..models.registry import resolve_model
from ..models.rollout import rollout
from ..options import progress_enabled
from ..verify.deterministic import acc, rmse
from .config import LEGACY_KEYWORDS, LocalizationOptions, legacy_options
from .en4dvar import assimilate_4dvar
from .inputs import build_localization

_CONFIGS = ("background_error", "window", "minimiser", "quality_control")

__all__ = ["cycle_4dvar", "world_background"]

log = logging.getLogger(__name__)


def _stack_times(ds: xr.Dataset, model: Any, times: Any) -> np.ndarray:

    arr = stack(ds.sel(time=times), model.channels).transpose(
        "time", "channel", "latitude", "longitude"
    )
    return np.asarray(arr.values, dtype="float64")


def _to_dataset(states: np.ndarray, model: Any, times: Any, like: xr.Dataset) -> xr.Dataset:

    da = xr.DataArray(
        states,
        dims=("time", "channel", "latitude", "longitude"),
        coords={
            "time": np.asarray(times, dtype="M8[ns]"),
            "latitude": like["latitude"].values,
            "longitude": like["longitude"].values,
        },
    )
    ds = unstack(da, model.channels)
    for v in ds.data_vars:
        if v in like:
            ds[v].attrs = copy.deepcopy(dict(like[v].attrs))
    return ds.transpose(*canonical_order(ds.dims))


def world_background(
    truth: xr.Dataset, *, model: Any, time: Any, lead_steps: int = 8
) -> xr.Dataset:
    """Background of a twin experiment: a forecast from the truth, valid at ``time``.

    The forecast starts from the truth ``lead_steps`` 6-hour steps before ``time`` (its
    error is the model's forecast error at that lead) and is returned at t0 − 12 h,
    t0 − 6 h and t0: the three times :func:`xfuxi.assimilate_4dvar` needs.

    Parameters
    ----------
    truth : xarray.Dataset
        Truth run in the analysis layout (dims ``time``, [``level``,] ``latitude``,
        ``longitude``) with the model's channels and grid; it must hold the two input
        times ``time − lead_steps·6 h − 6 h`` and ``time − lead_steps·6 h``.
    model : ForecastModel, str or path
        The forecast model: a loaded one, a shipped name (:func:`xfuxi.pretrained_models`)
        or a checkpoint directory.
    time : datetime-like
        Analysis time t0.
    lead_steps : int, default 8
        Forecast length in model steps at t0; at least 2 (the background covers t0 − 12 h).

    Returns
    -------
    xarray.Dataset
        The background at the three times, in the layout (and with the attributes) of
        ``truth``.

    Raises
    ------
    ValueError
        ``lead_steps < 2``, or ``truth`` lacks an input time (named).

    Examples
    --------
    A truth that warms by 1 K a step, and a model that persists the latest state:

    >>> import numpy as np, pandas as pd, torch, xarray as xr, xfuxi
    >>> truth = xr.Dataset({"temperature": (("time", "level", "latitude", "longitude"),
    ...                                     250.0 + np.arange(6.0)[:, None, None, None]
    ...                                     * np.ones((6, 1, 2, 4)))},
    ...                    coords={"time": pd.date_range("2000-01-01", periods=6, freq="6h"),
    ...                            "level": [500], "latitude": [-45.0, 45.0],
    ...                            "longitude": [0.0, 90.0, 180.0, 270.0]})
    >>> class Persist(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x[:, 1]
    >>> model = xfuxi.wrap_model(Persist(), channels=[("temperature", 500.0)],
    ...                          latitude=truth.latitude, longitude=truth.longitude)
    >>> bg = truth.fuxi.world_background(model=model, time="2000-01-02T06", lead_steps=4)
    >>> bg.time.dt.hour.values
    array([18,  0,  6])
    >>> float(bg.temperature.isel(time=-1).mean())  # persisted from 2000-01-01T06
    251.0
    """
    if not is_integer(lead_steps) or lead_steps < 2:
        raise ValueError(f"lead_steps must be an integer >= 2, got {lead_steps!r}")
    model = resolve_model(model)
    step = pd.Timedelta(model.timestep)
    t0 = parse_time(time, "time", error=ValueError)
    require_dataset(truth, "truth")
    ta = t0 - lead_steps * step
    inputs = pd.DatetimeIndex([ta - step, ta])
    missing = inputs.difference(pd.DatetimeIndex(truth["time"].values))
    if len(missing):
        raise ValueError(
            f"truth lacks the input time(s) {[str(t) for t in missing]} of a background at "
            f"{t0} with lead_steps={lead_steps}"
        )
    # the inputs in the canonical layout, on the model's grid (a north-to-south truth or
    # one in -180..180 was fed to the model as it was and labelled with its coordinates)
    start = validate(truth.sel(time=inputs), require_time=True)
    model.check_dataset(start)
    check_plausible(start, model)
    pair = _stack_times(start, model, inputs)
    # with lead_steps == 2 the state at t0 − 12 h is the forecast's own initial state
    states = np.concatenate([pair[-1:], rollout(model, pair, lead_steps)])[-3:]
    out = _to_dataset(states, model, [t0 - 2 * step, t0 - step, t0], start)
    out.attrs = copy.deepcopy(dict(truth.attrs))  # nothing shared with the truth's
    return out


def _scores(state: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:

    return rmse(state, truth[list(state.data_vars)], dim=["latitude", "longitude"])


def cycle_4dvar(
    truth: xr.Dataset,
    *,
    model: Any,
    start: Any,
    n_cycles: int,
    observe: Callable[[xr.Dataset, Any], xr.Dataset],
    lead_steps: int = 8,
    progress: bool | None = None,
    **assimilate_kwargs: Any,
) -> xr.Dataset:
    """Cycle En4DVar every 6 h and score analysis, background and a free run against truth.

    Parameters
    ----------
    truth : xarray.Dataset
        Truth run covering ``start − lead_steps·6 h − 6 h`` to the end of the last window.
    model : ForecastModel
    start : datetime-like
        First analysis time.
    n_cycles : int
        Number of analyses.
    observe : callable ``(truth, times) -> observations``
        Draws the observations of one window (``times`` = the window's slot times).
    lead_steps : int, default 8
        The first background is a forecast of this many steps from the truth; the free run
        continues that forecast without assimilation.
    progress : bool, optional
    **assimilate_kwargs
        Passed to :func:`~xfuxi.assimilation.en4dvar.assimilate_4dvar` (its configurations
        ``background_error``, ``localization``, ``window``, ...). Cycle ``c`` uses the
        seed ``background_error.seed + c`` (default seed 0), so that every cycle draws fresh
        perturbations (seed None: every analysis draws a fresh seed, recorded in its
        provenance). The localization is built once for all cycles.

    Returns
    -------
    xarray.Dataset
        RMSE against truth (area-weighted over the globe) of ``analysis``, ``background`` and
        ``free`` for each variable (and level) per cycle (dim ``time``);
        ``increment_correlation``, the area-weighted (uncentred) correlation of the increment
        with minus the background error (1: the increment points straight at the truth; 0:
        unrelated to the error); and per-cycle iterations and wall time.
    """
    from tqdm.auto import tqdm

    assimilate_kwargs = dict(assimilate_kwargs)
    legacy = {k: assimilate_kwargs.pop(k) for k in LEGACY_KEYWORDS if k in assimilate_kwargs}
    cfg = legacy_options(
        "cycle_4dvar",
        {k: assimilate_kwargs.pop(k, None) for k in _CONFIGS},
        legacy,
        allowed=tuple(LEGACY_KEYWORDS),
    )
    # the eigendecomposition of the localization once, not once per cycle
    assimilate_kwargs["localization"] = build_localization(
        assimilate_kwargs.get("localization", LocalizationOptions()), model
    )
    opts, window = cfg["background_error"], cfg["window"]
    step = pd.Timedelta(model.timestep)
    n_slots = window.n_slots
    t0 = parse_time(start, "start", error=ValueError)
    bg = world_background(truth, model=model, time=t0, lead_steps=lead_steps)
    ta = t0 - lead_steps * step
    free_states = rollout(
        model, _stack_times(truth, model, [ta - step, ta]), lead_steps + n_cycles - 1
    )[lead_steps - 1 :]
    free_times = [t0 + k * step for k in range(n_cycles)]
    free = _to_dataset(free_states, model, free_times, truth)
    rows = []
    bar = tqdm(range(n_cycles), desc="4DVar cycles", disable=not progress_enabled(progress))
    for c in bar:
        t = t0 + c * step
        tic = _time.perf_counter()
        obs = observe(truth, [t + k * step for k in range(n_slots)])
        kwargs = dict(assimilate_kwargs, **cfg)
        if opts.seed is not None:
            # fresh perturbations each cycle: the same seed would draw the same Perlin
            # fields every time, and B would span the same structures cycle after cycle
            kwargs["background_error"] = opts.replace(seed=opts.seed + c)
        res = assimilate_4dvar(bg, obs, model=model, progress=False, **kwargs)
        truth_t = truth.sel(time=[t])
        row = xr.Dataset(
            {
                "analysis": _scores(res.analysis, truth_t).to_array("variable"),
                "background": _scores(bg.sel(time=[t]), truth_t).to_array("variable"),
                "free": _scores(free.sel(time=[t]), truth_t).to_array("variable"),
                # ACC with the background as reference: the increment against minus the
                # background error
                "increment_correlation": acc(
                    res.analysis,
                    truth_t[list(res.analysis.data_vars)],
                    bg.sel(time=[t]),
                    dim=["latitude", "longitude"],
                ).to_array("variable"),
                "iterations": ("time", [res.diagnostics.attrs["iterations"]]),
                "wall_time_s": ("time", [_time.perf_counter() - tic]),
                "n_obs_used": ("time", [res.diagnostics.attrs["n_observations_used"]]),
            }
        )
        rows.append(row)
        an = res.analysis
        prev = bg.sel(time=[t - step])
        if window.increment_previous:
            # the next members and trajectory start from (t - 6 h + increment, analysis)
            inc = res.increment.assign_coords(time=[t - step])
            prev = prev + inc[list(prev.data_vars)]
        if n_slots > 1:  # the analysis trajectory already holds the 6-hour forecast
            nxt = res.trajectory.isel(time=0).sel(prediction_timedelta=step)
            nxt = nxt.drop_vars("prediction_timedelta").expand_dims(time=[t + step])
        else:
            pair = np.concatenate(
                [_stack_times(prev, model, [t - step]), _stack_times(an, model, [t])]
            )
            nxt = _to_dataset(rollout(model, pair, 1), model, [t + step], truth)
        bg = xr.concat([prev, an, nxt], dim="time", coords="minimal", compat="override")
        bg = bg[list(an.data_vars)]
        a = float(row["analysis"].mean())
        bar.set_postfix(a=f"{a:.3g}")
        log.info("cycle %d at %s done in %.1f s", c, t, _time.perf_counter() - tic)
    out = xr.concat(rows, dim="time")
    out.attrs.update(
        experiment="En4DVar cycling twin",
        start=str(t0),
        n_cycles=int(n_cycles),
        lead_steps=int(lead_steps),
        model=getattr(model, "name", ""),
    )
    return out
