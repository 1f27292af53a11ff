"""Passive-tracer anomalies carried by the Held–Suarez world's own flow.

A forecast model trained on the world's tracer alone learns a shortcut: the tracer field is
smooth and slowly varying, so extrapolating it in time, ``q(t+6h) ≈ 2 q(t) − q(t−6h)``,
scores well, and a *new* anomaly (an assimilation increment) is amplified in place instead of
carried along the wind. Samples of anomalies that the world itself advects teach the model to
move them.

:func:`held_suarez_tracer_anomalies` runs the world (dinosaur, as :mod:`xfuxi.world.simulator`)
with extra tracers. Every 12 hours each extra tracer is reset to a fresh random field of
Gaussian blobs and then evolves by the tracer's equation: advection by the model's winds, the
spectral filter and relaxation toward 0 on the tracer's 5-day timescale. The equation is
linear in the tracer and the tracer does not act on the dynamics, so
``passive_tracer + anomaly`` is exactly a world tracer too; the anomaly is its departure from
the world's own tracer. Each window gives the anomaly at its injection time and 6 and 12 hours
later, on the world's pressure levels.

Two kinds of training sample come from a window injected at ``s``
(:func:`xfuxi.training.anomalies.anomaly_samples`):

* ``"both"``: inputs at ``s`` and ``s + 6 h`` carry the anomaly, the target at ``s + 12 h``:
  an anomaly that has been moving with the flow;
* ``"t0"``: inputs at ``s − 6 h`` (no anomaly) and ``s``, target at ``s + 6 h``: an anomaly that
  appears at the second input time only, as a 4DVar increment does (the earlier input comes
  from the background).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..config import is_integer
from ..constants import EARTH_RADIUS
from ..options import progress_enabled
from .perturbed import check_world_settings, states_at
from .simulator import (
    PRESSURE_VARS,
    SPLITS,
    TRACER_TAU_DAYS,
    WorldConfig,
    cache_directory,
    cached_store_is_valid,
    get_model,
    package_versions,
    pressure_dataset,
    world_attrs,
    world_config,
    write_cached_store,
)

__all__ = ["held_suarez_tracer_anomalies", "world_tracer_transport"]

log = logging.getLogger(__name__)

#: the run that supplies the anomaly samples: its own seed and dates, apart from the splits
ANOMALY_RUN = {"seed": 11, "start": "2030-01-01"}
_EARTH_RADIUS_KM = EARTH_RADIUS / 1000.0


def _blob_field(
    rng: np.random.Generator,
    lon: np.ndarray,
    lat: np.ndarray,
    sigma: np.ndarray,
    *,
    blobs: tuple[int, int],
    radius_km: tuple[float, float],
    amplitude: tuple[float, float],
) -> np.ndarray:
    """A sum of 3-D Gaussian blobs on the model's (sigma, lon, lat) nodal grid.

    Each blob has a random centre (uniform on the sphere within 75° of the equator), an
    e-folding radius drawn uniformly in ``radius_km``, a Gaussian profile in sigma (centre in
    0.2–0.95, width 0.1–0.4) and a peak of random sign whose size, drawn log-uniformly in
    ``amplitude``, is relative to the tracer's own vertical scale ``σ²``.
    """
    out = np.zeros((sigma.size, *lon.shape))
    for _ in range(int(rng.integers(blobs[0], blobs[1] + 1))):
        lat0 = np.arcsin(rng.uniform(-np.sin(np.deg2rad(75)), np.sin(np.deg2rad(75))))
        lon0 = rng.uniform(0, 2 * np.pi)
        cos_d = np.sin(lat) * np.sin(lat0) + np.cos(lat) * np.cos(lat0) * np.cos(lon - lon0)
        dist = _EARTH_RADIUS_KM * np.arccos(np.clip(cos_d, -1.0, 1.0))
        r = rng.uniform(*radius_km)
        horiz = np.exp(-0.5 * (dist / r) ** 2)
        s0, sw = rng.uniform(0.2, 0.95), rng.uniform(0.1, 0.4)
        vert = np.exp(-0.5 * ((sigma - s0) / sw) ** 2) * sigma**2
        amp = np.exp(rng.uniform(np.log(amplitude[0]), np.log(amplitude[1])))
        out += rng.choice([-1.0, 1.0]) * amp * vert[:, None, None] * horiz[None]
    return out


def _config(world: WorldConfig, **kw: Any) -> dict[str, Any]:
    base = world.normalized()
    return {
        **base,
        "kind": "tracer_anomalies",
        "members": int(kw["members"]),
        "blobs": list(kw["blobs"]),
        "radius_km": [float(x) for x in kw["radius_km"]],
        "amplitude": [float(x) for x in kw["amplitude"]],
    }


#: the world of the anomaly run unless a call says otherwise
ANOMALY_WORLD = WorldConfig(days=60, seed=ANOMALY_RUN["seed"], start=ANOMALY_RUN["start"])


def held_suarez_tracer_anomalies(
    *,
    config: WorldConfig | dict | None = None,
    members: int = 4,
    blobs: tuple[int, int] = (1, 3),
    radius_km: tuple[float, float] = (500.0, 1500.0),
    amplitude: tuple[float, float] = (0.03, 0.5),
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool | None = None,
    **options: Any,
) -> xr.Dataset:
    """Run the world with tracer anomalies re-injected every 12 hours (module docstring).

    Parameters
    ----------
    config : WorldConfig or dict, optional
        The world that is run (default :data:`ANOMALY_WORLD`: 60 days, seed 11 from
        2030-01-01, apart from the train, validation and test splits); its ``days`` windows
        of 12 hours each number ``2 · days``. Its ``output_hours`` must be 6.
    members : int, default 4
        Independent anomaly fields per window (extra tracers of the same run).
    blobs : (int, int), default (1, 3)
        Range of the number of Gaussian blobs per anomaly field.
    radius_km : (float, float), default (500, 1500)
        Range of the blobs' e-folding radius.
    amplitude : (float, float), default (0.03, 0.5)
        Range (log-uniform) of a blob's peak relative to the tracer's vertical scale ``σ²``
        (the world's tracer goes from 0 at the poles to ``σ²`` at the equator).
    cache_dir, use_cache, progress
        As :func:`~xfuxi.world.simulator.held_suarez`; the result is cached as a zarr store
        named by a hash of the configuration and the versions, checked and regenerated as
        the world's own cache store is.
    **options
        Fields of :class:`~xfuxi.world.simulator.WorldConfig` as keywords (``days=2``, ...),
        applied on top of ``config``.

    Returns
    -------
    xarray.Dataset
        The world's variables on ``time`` (6-hourly, canonical layout, from 6 hours before
        the first window to the end of the last) and ``passive_tracer_anomaly`` with dims
        ``window, member, offset, level, latitude, longitude``: the anomaly at its
        injection time (coordinate ``window``) plus ``offset`` = 0, 6 and 12 hours.

    Raises
    ------
    ValueError
        For a bad configuration (as :class:`~xfuxi.world.simulator.WorldConfig`, bad ranges,
        or ``output_hours`` other than 6).
    TypeError
        For a keyword that is no field of :class:`~xfuxi.world.simulator.WorldConfig`.
    FloatingPointError
        If the model blows up.

    Examples
    --------
    >>> import tempfile
    >>> ds = held_suarez_tracer_anomalies(days=1, members=2, spinup_days=0,
    ...                                   cache_dir=tempfile.mkdtemp(), progress=False)
    >>> dict(ds["passive_tracer_anomaly"].sizes)
    {'window': 2, 'member': 2, 'offset': 3, 'level': 4, 'latitude': 32, 'longitude': 64}
    >>> ds.sizes["time"]
    6
    """

    if not is_integer(members) or members < 1:
        raise ValueError(f"members must be an integer >= 1; got {members!r}")
    for label, rng_, low in (("blobs", blobs, 1), ("radius_km", radius_km, 1e-9),
                             ("amplitude", amplitude, 1e-12)):  # fmt: skip
        if len(rng_) != 2 or not (low <= rng_[0] <= rng_[1]):
            raise ValueError(f"{label} must be a range (low, high) with {low} <= low <= high; "
                             f"got {rng_!r}")  # fmt: skip
    world = (ANOMALY_WORLD if config is None else WorldConfig.from_dict(config)).replace(**options)
    if world.output_hours != 6:
        raise ValueError(
            f"the anomaly run writes 6-hourly states; got output_hours={world.output_hours}"
        )
    config = _config(world, members=members, blobs=blobs, radius_km=radius_km, amplitude=amplitude)
    show = progress_enabled(progress)
    key = json.dumps({"config": config, "versions": package_versions()}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    target = cache_directory(cache_dir) / f"tracer_anomalies-{world.resolution}-{digest}.zarr"
    if use_cache and cached_store_is_valid(target, config):
        log.info("reading tracer anomalies from the cache: %s", target)
        return xr.open_zarr(target).load().drop_encoding()  # the cache's codecs are its own
    ds = _generate(config, show)
    if use_cache:
        write_cached_store(
            target,
            lambda store: ds.to_zarr(store, mode="w", consolidated=True, zarr_format=2),
            config,
        )
    return ds


def _generate(config: dict[str, Any], progress: bool) -> xr.Dataset:
    import jax
    from dinosaur import time_integration
    from tqdm.auto import tqdm

    model = get_model(config)
    pe = model._pe
    grid = model.grid
    lon, sin_lat = grid.nodal_mesh
    lat = np.arcsin(sin_lat)
    sigma = np.asarray(model.coords.vertical.centers)
    names = [f"anomaly_{k}" for k in range(config["members"])]
    rng = np.random.default_rng([config["seed"], 20240611])
    post = jax.jit(model.post)
    run6 = jax.jit(time_integration.repeated(model.step, model.inner_steps))
    run_window = jax.jit(
        time_integration.trajectory_from_step(
            model.step, outer_steps=2, inner_steps=model.inner_steps, post_process_fn=model.post
        )
    )
    n_windows = 2 * int(config["days"])
    state = model.initial_state(config["seed"])
    bar = tqdm(total=int(config["spinup_days"]) + n_windows // 2, unit="day",
               desc="tracer anomalies", disable=not progress)  # fmt: skip
    frames: list[dict[str, np.ndarray]] = []
    anomalies = np.zeros((n_windows, len(names), 3, len(config["levels"]),
                          lat.shape[1], lat.shape[0]), dtype="float32")  # fmt: skip
    with bar:
        for _ in range(int(config["spinup_days"])):
            state = model.spin_day(state)
            bar.update(1)
        frames.append({k: np.asarray(v) for k, v in post(state).items()})  # s0 - 6 h
        state = run6(state)
        for w in range(n_windows):
            fresh = {
                name: grid.to_modal(
                    _blob_field(
                        rng,
                        lon,
                        lat,
                        sigma,
                        blobs=tuple(config["blobs"]),
                        radius_km=tuple(config["radius_km"]),
                        amplitude=tuple(config["amplitude"]),
                    )  # fmt: skip
                )
                for name in names
            }
            state = pe.State(
                vorticity=state.vorticity,
                divergence=state.divergence,
                temperature_variation=state.temperature_variation,
                log_surface_pressure=state.log_surface_pressure,
                tracers={"passive_tracer": state.tracers["passive_tracer"], **fresh},
            )
            out0 = {k: np.asarray(v) for k, v in post(state).items()}
            state, traj = run_window(state)
            traj = {k: np.asarray(v) for k, v in traj.items()}
            if w == 0:
                frames.append(out0)
            frames.extend({k: v[i] for k, v in traj.items()} for i in range(2))
            for m, name in enumerate(names):
                anomalies[w, m, 0] = out0[name]
                anomalies[w, m, 1:] = traj[name]
            if not all(np.all(np.isfinite(f[k])) for f in frames[-2:] for k in f):
                raise FloatingPointError(f"the Held-Suarez model blew up in window {w}")
            if w % 2 == 1:
                bar.update(1)
    start = np.datetime64(pd.Timestamp(config["start"]).to_datetime64(), "ns")
    step = np.timedelta64(6, "h")
    times = start - step + np.arange(len(frames)) * step
    arrays = {k: np.stack([f[k] for f in frames]) for k in (*PRESSURE_VARS, "surface_pressure")}
    levels = np.asarray(config["levels"], dtype="float64")
    ds = pressure_dataset(arrays, times, levels, model.latitude, model.longitude)
    ds["passive_tracer_anomaly"] = xr.DataArray(
        anomalies,
        dims=("window", "member", "offset", "level", "latitude", "longitude"),
        coords={
            "window": start + np.arange(n_windows) * 2 * step,
            "offset": np.arange(3) * step,
        },
        attrs={
            "units": "1",
            "long_name": "passive tracer anomaly carried by the world's flow",
            "description": (
                "departure from passive_tracer of a tracer reset to passive_tracer + random "
                "Gaussian blobs at the window time and evolved by the same equation "
                f"(advection, filter, relaxation on {TRACER_TAU_DAYS:g} days)"
            ),
        },
    )
    attrs = world_attrs({k: v for k, v in config.items() if k not in ("kind",)})
    attrs["title"] = f"Held-Suarez tracer anomalies ({config['resolution']}, seed {config['seed']})"
    return ds.assign_attrs({k: v for k, v in attrs.items() if not k.startswith("config_")},
                           config=json.dumps(config, sort_keys=True))  # fmt: skip


def world_tracer_transport(
    anomaly: xr.DataArray,
    *,
    split: str,
    time: Any,
    steps: int = 1,
    progress: bool | None = None,
    **world: Any,
) -> xr.Dataset:
    """What the world itself does with a passive-tracer anomaly added at ``time``.

    Re-runs the world of ``split`` (:func:`xfuxi.world.simulator.held_suarez_split`, default
    configuration) up to ``time``, adds ``anomaly`` to it as an extra tracer and runs the
    tracer's equation on (advection by the world's winds, the filter, relaxation) for
    ``steps`` 6-hour steps: the truth against which a forecast model's transport of the
    same anomaly (an assimilation increment, say) is judged.

    Parameters
    ----------
    anomaly : xarray.DataArray
        Dims ``level, latitude, longitude`` on the world's grid, on pressure levels (hPa).
        It is interpolated linearly in pressure to the world's sigma levels at ``time`` and
        extrapolated linearly for one level spacing above the top level and below the
        bottom one given (dinosaur's rule); levels that leave sigma levels beyond that
        reach are refused (give the anomaly on all the world's levels, with zeros where it
        has none).
    split : {"train", "validation", "test"}
    time : datetime-like
        A 6-hourly time of the split.
    steps : int, default 1
    progress : bool, optional
        Progress bar while re-running the world.
    **world
        Other settings of the split's world (``spinup_days``, ``levels``, ...), as given to
        :func:`~xfuxi.world.simulator.held_suarez_split`.

    Returns
    -------
    xarray.Dataset
        ``passive_tracer_anomaly`` with dims ``prediction_timedelta, level, latitude,
        longitude``: the anomaly on the world's pressure levels at ``time`` (lead 0, after
        the round trip to sigma levels) and after each step; ``passive_tracer``: the
        world's own tracer at the same times (equal to the split's data at ``time``; the
        re-run integrates in the stored run's compiled chunks).

    Raises
    ------
    ValueError
        Unknown split, a time outside it or off the 6-hourly grid, an anomaly on another
        grid or with NaN, or on levels that do not reach every sigma level of the column.
    """
    import jax.numpy as jnp
    from dinosaur import time_integration, vertical_interpolation

    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}; got {split!r}")
    if not is_integer(steps) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    spec = SPLITS[split]
    check_world_settings(world)
    config = world_config(days=spec["days"], seed=spec["seed"], start=spec["start"], **world)
    step = pd.Timedelta(hours=config["output_hours"])
    offset = (pd.Timestamp(time) - pd.Timestamp(config["start"])) / step
    if offset != int(offset) or not (0 <= offset < spec["days"] * 24 / config["output_hours"]):
        raise ValueError(f"time {time} is not a {step} step of the {split} split")
    model = get_model(config)
    dims = ("level", "latitude", "longitude")
    if set(anomaly.dims) != set(dims):
        raise ValueError(f"anomaly must have dims {dims}; got {anomaly.dims}")
    anomaly = anomaly.transpose(*dims)
    on_grid = all(
        anomaly.sizes[d] == ref.size and np.allclose(anomaly[d].values, ref)
        for d, ref in (("latitude", model.latitude), ("longitude", model.longitude))
    )
    if not on_grid:
        raise ValueError(
            f"anomaly is not on the world's grid ({model.latitude.size} latitudes, "
            f"{model.longitude.size} longitudes); got {dict(anomaly.sizes)}"
        )
    values = np.asarray(anomaly.values, dtype="float64")
    if not np.all(np.isfinite(values)):
        raise ValueError("anomaly contains NaN or infinite values")
    levels = np.asarray(anomaly["level"].values, dtype="float64")
    order = np.argsort(levels)
    show = progress_enabled(progress)

    state = _state_at(json.dumps(config, sort_keys=True), int(offset), show)
    p_scale = model.specs.dimensionalize(1.0, model._units.pascal).magnitude
    pressure = vertical_interpolation.PressureCoordinates(levels[order] * 100.0 / p_scale)
    ps = jnp.exp(model.grid.to_nodal(state.log_surface_pressure))
    nodal = np.swapaxes(values[order], -1, -2)  # (level, lon, lat)
    on_sigma = vertical_interpolation.interp_pressure_to_sigma(
        {"a": jnp.asarray(nodal)}, pressure, model.coords.vertical, ps
    )["a"]
    if not bool(jnp.all(jnp.isfinite(on_sigma))):  # dinosaur's NaN beyond its reach: it
        # spread through the column within one step, silently
        raise ValueError(
            f"the anomaly's levels {sorted(levels.tolist())} hPa do not reach every sigma "
            "level of the world's column at this time (the interpolation extrapolates one "
            f"level spacing); give it on all the world's levels {list(config['levels'])}, "
            "with zeros where it has none"
        )
    state = model._pe.State(
        vorticity=state.vorticity,
        divergence=state.divergence,
        temperature_variation=state.temperature_variation,
        log_surface_pressure=state.log_surface_pressure,
        tracers={
            "passive_tracer": state.tracers["passive_tracer"],
            "anomaly_0": model.grid.to_modal(on_sigma),
        },
    )
    import jax

    first = jax.jit(model.post)(state)  # compiled as in the stored runs
    frames = [np.asarray(first["anomaly_0"])]
    own = [np.asarray(first["passive_tracer"])]
    traj = time_integration.trajectory_from_step(
        model.step, outer_steps=int(steps), inner_steps=model.inner_steps,
        post_process_fn=model.post,
    )  # fmt: skip
    _, out = traj(state)
    frames.extend(np.asarray(out["anomaly_0"]))
    own.extend(np.asarray(out["passive_tracer"]))
    world_levels = np.asarray(config["levels"], dtype="float64")
    dims4 = ("prediction_timedelta", "level", "latitude", "longitude")
    result = xr.Dataset(
        {
            "passive_tracer_anomaly": (dims4, np.stack(frames)),
            "passive_tracer": (dims4, np.stack(own)),
        },
        coords={
            "prediction_timedelta": np.arange(int(steps) + 1) * np.timedelta64(6, "h"),
            "level": world_levels,
            "latitude": model.latitude,
            "longitude": model.longitude,
            "time": np.datetime64(pd.Timestamp(time).to_datetime64(), "ns"),
        },
        attrs={"description": f"the {split} world's own transport of the anomaly"},
    )
    return result


_STATES: dict[tuple[str, int], Any] = {}  # the last two re-run states: experiments ask again


def _state_at(frozen: str, offset: int, show: bool) -> Any:
    """The world's model state at output ``offset`` of the configuration ``frozen``."""
    key = (frozen, offset)
    if key in _STATES:
        return _STATES[key]
    state = states_at(json.loads(frozen), [offset], show)[offset]
    while len(_STATES) >= 2:
        _STATES.pop(next(iter(_STATES)))
    _STATES[key] = state
    return state
