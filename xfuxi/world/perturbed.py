"""The embedded world's own response to perturbations of its state.

A forecast model is fit for cycled assimilation only if it treats perturbed states the way
the atmosphere does: perturbations of analysis-error size must neither die out nor blow up
faster than in the world. The world can say how they should grow, because it can be re-run
from a perturbed state. :func:`world_perturbed_runs` does that for a time of a split.

The perturbations are balanced by construction: each is a scaled difference of two other
states of the same world, ``δ = s · (x(t_a) − x(t_b))``, added to the full model state
(vorticity, divergence, temperature, surface pressure and tracer, on the model's sigma levels
and spectral coefficients) six hours before the requested time. Each state is in the
world's own balance, and so (to first order) is their difference; the six hours run before
the requested time let the world adjust the rest. See the documentation, docs/cycling.md
(Stability of the forecast model).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..config import is_integer
from ..options import progress_enabled
from .simulator import SPLITS, get_model, pressure_dataset, world_config

__all__ = ["world_perturbed_runs"]


def check_world_settings(world: dict[str, Any]) -> None:
    """Refuse ``days``, ``seed`` and ``start`` among the settings of a split's world re-run:
    they are the split's own (a raw "multiple values for keyword" TypeError before)."""
    own = sorted(set(world) & {"days", "seed", "start"})
    if own:
        raise TypeError(
            f"{own} are the split's own (its length, seed and first time), not settings of "
            "its world: give only spinup_days, levels, resolution and the other settings of "
            "held_suarez_split"
        )


def states_at(config: dict[str, Any], offsets: list[int], show: bool) -> dict[int, Any]:
    """The world's model states at the output ``offsets`` of ``config`` (one re-run).

    Spin-up, then 6-hourly steps; output ``k`` is the state after ``k + 1`` of them (the
    output labelled ``start`` is 6 h after spin-up), as in the stored runs. The steps are
    integrated in the stored runs' chunks with the same compiled trajectory, so every state
    is bit for bit the one behind the split's data: a separately compiled 6-hour step
    rounds differently, and the chaotic world amplified that into other weather after
    about 45 days (10 m s⁻¹ RMS in u at day 70).
    """
    import jax
    from dinosaur import time_integration
    from tqdm.auto import tqdm

    model = get_model(config)
    # the stored runs' trajectory (model.run_chunk) returning the model states instead of
    # their pressure-level output: the same scan, so the same states bit for bit
    trajectory = jax.jit(
        time_integration.trajectory_from_step(
            model.step,
            outer_steps=model.chunk,
            inner_steps=model.inner_steps,
            post_process_fn=lambda state: state,
        )
    )
    state = model.initial_state(config["seed"])
    wanted = sorted(set(offsets))
    n_spin = int(config["spinup_days"])
    n_chunks = wanted[-1] // model.chunk + 1
    out: dict[int, Any] = {}
    total = n_spin + n_chunks * model.chunk // model.outputs_per_day
    with tqdm(total=total, unit="day", desc="re-running the world", disable=not show) as bar:
        for _ in range(n_spin):
            state = model.spin_day(state)
            bar.update(1)
        for c in range(n_chunks):  # the output labelled `start` is 6 h after spin-up
            first = c * model.chunk
            state, states = trajectory(state)
            for k in wanted:
                if first <= k < first + model.chunk:
                    out[k] = jax.tree_util.tree_map(lambda a, i=k - first: a[i], states)
            bar.update(model.chunk // model.outputs_per_day)
    return out


def world_perturbed_runs(
    split: str,
    time: Any,
    *,
    n_members: int = 4,
    scale: float = 0.2,
    steps: int = 4,
    seed: int = 0,
    reference_days: int = 30,
    progress: bool | None = None,
    **world: Any,
) -> xr.Dataset:
    """Runs of the world from perturbed states: the truth for a model's perturbation growth.

    For each member, a balanced perturbation ``δ = scale · (x(t_a) − x(t_b))`` (two other
    states of the split's world, drawn by ``seed`` from its first ``reference_days`` days) is
    added to the world's model state at ``time − 6 h``; the world runs on from there. The
    result holds, on the world's pressure levels, the perturbed states from ``time − 6 h``
    (the first input time of a forecast) to ``time + steps · 6 h``, and the unperturbed
    world at the same times. A forecast model started from the perturbed pair at
    ``(time − 6 h, time)`` should move away from its own unperturbed forecast as the
    perturbed world moves away from the world.

    Parameters
    ----------
    split : {"train", "validation", "test"}
    time : datetime-like
        A 6-hourly time of the split, at least 6 hours after its start.
    n_members : int, default 4
        Perturbations (each from its own pair of reference states).
    scale : float, default 0.2
        Factor on the difference of two states. The difference of two independent states
        has about √2 times the climatological standard deviation, so 0.2 gives
        perturbations of about 0.28 of it, the size of an analysis error in the cycling
        experiments (docs/cycling.md).
    steps : int, default 4
        6-hour steps after ``time`` (4: one day).
    seed : int, default 0
        Draws the reference times.
    reference_days : int, default 30
        The reference states come from the first this many days of the split (a shorter
        re-run of the world).
    progress : bool, optional
        Progress bar while re-running the world.
    **world
        Other settings of the split's world (``spinup_days``, ``levels``, ...), as given to
        :func:`~xfuxi.world.simulator.held_suarez_split`.

    Returns
    -------
    xarray.Dataset
        The world's variables with dims ``member, prediction_timedelta, level, latitude,
        longitude`` (``surface_pressure`` without ``level``): the perturbed runs;
        ``prediction_timedelta`` runs from −6 h to ``steps · 6 h`` and lead 0 is valid at
        ``time``. The same variables with the suffix ``_unperturbed`` and no ``member`` dim:
        the world itself. Coords ``reference_time_a``, ``reference_time_b`` (per member).

    Raises
    ------
    ValueError
        Unknown split, a time outside it, off the 6-hourly grid or at its first output,
        or bad ``n_members``, ``scale``, ``steps`` or ``reference_days``.

    Examples
    --------
    A 12-hour run of two perturbed members of a short test world (no spin-up, to be quick):

    >>> runs = world_perturbed_runs("test", "2020-01-02", n_members=2, steps=2,
    ...     reference_days=2, spinup_days=0, progress=False)
    >>> runs["temperature"].dims
    ('member', 'prediction_timedelta', 'level', 'latitude', 'longitude')
    >>> [int(h) for h in runs["prediction_timedelta"].values / np.timedelta64(1, "h")]
    [-6, 0, 6, 12]
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}; got {split!r}")
    for name, value in (("n_members", n_members), ("steps", steps),
                        ("reference_days", reference_days)):  # fmt: skip
        if not is_integer(value) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"scale must be a positive number; got {scale!r}")
    spec = SPLITS[split]
    check_world_settings(world)
    config = world_config(days=spec["days"], seed=spec["seed"], start=spec["start"], **world)
    step = pd.Timedelta(hours=config["output_hours"])
    per_day = 24 // config["output_hours"]
    offset = (pd.Timestamp(time) - pd.Timestamp(config["start"])) / step
    n_out = spec["days"] * per_day
    if offset != int(offset) or not (1 <= offset < n_out):
        raise ValueError(
            f"time {time} is not a {step} step of the {split} split after its first output"
        )
    offset = int(offset)
    pool = min(int(reference_days) * per_day, n_out)
    if pool < 2:
        raise ValueError(f"reference_days={reference_days} leaves fewer than 2 reference states")
    rng = np.random.default_rng(seed)
    refs = [rng.choice(pool, size=2, replace=False) for _ in range(int(n_members))]
    show = progress_enabled(progress)
    states = states_at(config, [offset - 1] + [int(r) for ab in refs for r in ab], show)

    import jax
    from dinosaur import time_integration

    model = get_model(config)
    traj = jax.jit(time_integration.trajectory_from_step(
        model.step, outer_steps=int(steps) + 1, inner_steps=model.inner_steps,
        post_process_fn=model.post,
    ))  # fmt: skip
    base = states[offset - 1]
    post = jax.jit(model.post)  # compiled as in the stored runs (eager rounds differently)

    def run(state: Any) -> dict[str, np.ndarray]:
        first = post(state)
        _, rest = traj(state)
        return {k: np.concatenate([np.asarray(first[k])[None], np.asarray(v)])
                for k, v in rest.items()}  # fmt: skip

    unperturbed = run(base)
    members = []
    for a, b in refs:
        delta = jax.tree.map(lambda x, y: scale * (x - y), states[int(a)], states[int(b)])
        members.append(run(jax.tree.map(lambda x, d: x + d, base, delta)))
    levels = np.asarray(config["levels"], dtype="float64")
    leads = np.arange(-1, int(steps) + 1) * np.timedelta64(int(config["output_hours"]), "h")
    leads = leads.astype("timedelta64[ns]")

    def as_dataset(arrays: dict[str, np.ndarray]) -> xr.Dataset:
        ds = pressure_dataset(arrays, leads.astype("int64").astype("datetime64[ns]"), levels,
                              model.latitude, model.longitude)  # fmt: skip
        return ds.rename(time="prediction_timedelta").assign_coords(prediction_timedelta=leads)

    out = xr.concat([as_dataset(m) for m in members], dim="member")
    world_ds = as_dataset(unperturbed)
    out = out.merge(world_ds.rename({k: f"{k}_unperturbed" for k in world_ds.data_vars}))
    start = pd.Timestamp(config["start"])
    out = out.assign_coords(
        member=np.arange(int(n_members)),
        time=np.datetime64(pd.Timestamp(time).to_datetime64(), "ns"),
        reference_time_a=("member", np.array([start + int(a) * step for a, _ in refs], "M8[ns]")),
        reference_time_b=("member", np.array([start + int(b) * step for _, b in refs], "M8[ns]")),
    )
    out.attrs = {
        "description": f"the {split} world re-run from balanced perturbations of its state",
        "scale": float(scale),
        "seed": int(seed),
        "config": json.dumps(config, sort_keys=True),
    }
    return out
