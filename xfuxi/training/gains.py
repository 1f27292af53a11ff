"""Per-channel gains of a FuXi-ENS perturbation module, held to a spread–skill band.

Each ``tune_*`` function runs ensembles with candidate gains on held-back data, scores them
per channel (fair CRPS, and the spread–skill ratio against ``band``), and returns its choice
and the scores; the module is left as it was. Each ``apply_*`` bakes a choice into a
module, in place:

* :func:`tune_spread_growth` (:func:`select_spread_growth`) / :func:`apply_spread_growth`:
  initial-condition and per-step perturbations apart, per channel;
* :func:`tune_early_gain` / :func:`apply_early_gain`: a gain on the first steps;
* :func:`tune_model_gain` / :func:`apply_model_gain`: a gain before a cascade stage's steps.

The global and per-variable inflations are in :mod:`xfuxi.training.calibration`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..data.channels import WIND_COMPONENTS, Channel, channel_name
from ..data.schema import validate
from ..forecasting.ensemble import ensemble
from ..models.base import ForecastModel
from ..models.cascade import Cascade
from ..models.ens import PerturbationVAE
from ..verify.probabilistic import crps, spread_skill_ratio
from .calibration import TuningRun, fill_doc, tuning_run

__all__ = [
    "apply_early_gain",
    "apply_model_gain",
    "apply_spread_growth",
    "select_spread_growth",
    "tune_early_gain",
    "tune_model_gain",
    "tune_spread_growth",
]

log = logging.getLogger(__name__)


def _channel_groups(channels: Sequence[Channel]) -> list[tuple[Channel, ...]]:
    """Channels one by one, except that u and v of the same level form one group."""
    chans = [tuple(c) for c in channels]
    groups: list[tuple[Channel, ...]] = []
    for var, lev in chans:
        if any((var, lev) in g for g in groups):
            continue
        pair = next((p for p in WIND_COMPONENTS if var in p), None)
        if pair is not None and all((x, lev) in chans for x in pair):
            groups.append(tuple((x, lev) for x in pair))
        else:
            groups.append(((var, lev),))
    return groups


def _check_band_and_leads(
    band: tuple[float, float], model: ForecastModel, steps: int, after_hours: float
) -> tuple[float, float]:
    """``band`` as floats, checked, and at least one lead after ``after_hours``."""
    lo, hi = (float(b) for b in band)
    if not 0 < lo < 1 < hi:
        raise ValueError(f"band must satisfy 0 < low < 1 < high; got {band}")
    if int(steps) * model.timestep <= np.timedelta64(int(after_hours * 3600), "s"):
        raise ValueError(
            f"no lead after after_hours={after_hours:g} h to score in {steps} steps of "
            f"{model.timestep_hours:g} h; raise steps or lower after_hours"
        )
    return lo, hi


def _channel_scores(
    fc: xr.Dataset, truth: xr.Dataset, channels: Sequence[Channel], after_hours: float
) -> dict[Channel, tuple[np.ndarray, np.ndarray]]:
    """Per channel: fair CRPS by lead, and the spread–skill ratio (finite-ensemble corrected)
    at the leads after ``after_hours``, both over time and the globe."""
    dims = ["time", "latitude", "longitude"]
    c = crps(fc, truth, dim=dims)
    ssr = spread_skill_ratio(fc, truth, dim=dims, correction=True)
    late = fc["prediction_timedelta"] > np.timedelta64(int(after_hours * 3600), "s")
    out = {}
    for var, lev in channels:
        cv = c[var] if lev is None else c[var].sel(level=lev)
        sv = ssr[var] if lev is None else ssr[var].sel(level=lev)
        sv = np.asarray(sv.sel(prediction_timedelta=late).values, dtype=float).ravel()
        cv = np.asarray(cv.transpose("prediction_timedelta", ...).values, dtype=float).ravel()
        out[(var, lev)] = (cv, sv)
    return out


def _band_fraction_and_crps(
    per: dict[Channel, tuple[np.ndarray, np.ndarray]], lo: float, hi: float, first: int = 0
) -> tuple[float, np.ndarray]:
    """Of :func:`_channel_scores`: the fraction of scored leads with the SSR in ``[lo, hi]``
    and the channels' mean CRPS by lead from lead index ``first`` on."""
    in_band = float(np.mean([(sv >= lo) & (sv <= hi) for _, sv in per.values()]))
    return in_band, np.mean([cv[first:] for cv, _ in per.values()], axis=0)


def _best_candidate(in_band: list[float], by_lead: list[np.ndarray]) -> tuple[int, list[float]]:
    """Index of the candidate with the most leads in band, then the lowest mean log CRPS
    relative to candidate 0 (the module as it is); and those CRPS scores."""
    score = [float(np.mean(np.log(b / by_lead[0]))) for b in by_lead]
    best = min(range(len(score)), key=lambda i: (-round(in_band[i], 9), score[i]))
    return best, score


def _channel_keys(channels: Sequence[Channel]) -> list[Channel]:
    """``(variable, level)`` pairs with the level as float (or None), as modules key them."""
    return [(str(v), None if lv is None else float(lv)) for v, lv in channels]


def _channel_indices(vae: PerturbationVAE, channels: Sequence[Channel]) -> list[int]:
    """Indices of ``channels`` in the module; ``ValueError`` naming any it lacks."""
    index = {ch: i for i, ch in enumerate(vae.channels)}
    key = _channel_keys(channels)
    unknown = sorted(channel_name(ch) for ch in key if ch not in index)
    if unknown:
        raise ValueError(f"unknown channels {unknown}; the module has {len(index)} channels")
    return [index[ch] for ch in key]


_WEIGHTINGS = ("lead", "none")


@fill_doc
def tune_spread_growth(
    ds: xr.Dataset,
    *,
    model: ForecastModel,
    perturbation: PerturbationVAE,
    initial_gains: Sequence[float],
    step_factors: Sequence[float],
    weighting: str = "lead",
    run: TuningRun | dict[str, Any] | None = None,
    progress: bool | None = None,
    **legacy: Any,
) -> tuple[dict[Channel, tuple[float, float]], xr.Dataset]:
    """Calibrate initial-condition and model-tendency perturbations apart, per channel.

    A module whose spread–skill ratio rises with lead (too little spread early, too much
    late) has its initial perturbations too small relative to its per-step ones. For every
    pair (``g`` in ``initial_gains``, ``f`` in ``step_factors``) the module's initial
    perturbation is multiplied by ``g·f`` and every later one by ``f`` (all channels at
    once), an ensemble is run on held-back data and scored per channel (variable and
    level; u and v of a level together): fair CRPS (normalised by the channel's std, mean
    over leads, and by lead) and the spread–skill ratio (finite-ensemble corrected) at each
    lead after ``run.after_hours``. Each channel keeps, of the pairs whose ratios all lie in
    ``run.band``, the one with the best CRPS score (see ``weighting``); if no pair does, the
    one whose ratios fall least far outside the band (in log ratio). Bake the result in with
    :func:`apply_spread_growth`. The ensembles have 16 members and 40 steps unless ``run``
    says otherwise.

    Parameters
    ----------
    {{held_back}}
    initial_gains, step_factors : sequence of float
        Candidates (1 is always included in each).
    weighting : {"lead", "none"}, default "lead"
        How the CRPS of the leads is combined (:func:`select_spread_growth`): ``"lead"``,
        the mean over leads of the log of the CRPS relative to the uncalibrated pair (1, 1)
        at that lead, so that every lead counts alike; ``"none"``, the mean CRPS over leads,
        which the late leads (the largest errors) dominate.
    {{run}}

    Returns
    -------
    best : dict
        Channel ``(variable, level)`` → ``(initial gain, step factor)``; u and v of a level
        share one pair (so a wind perturbation keeps its direction).
    scores : xarray.Dataset
        ``crps`` (mean over leads), ``ssr_min`` and ``ssr_max`` (over leads after
        ``run.after_hours``) by ``channel`` (``"variable@level"``; the wind as
        ``"wind@level"``), ``initial_gain`` and ``step_factor``, and ``crps_by_lead`` with
        ``prediction_timedelta`` too. CRPS is normalised by the channel's std.
    """
    cfg = tuning_run(run, legacy, "tune_spread_growth", n=16, steps=40)
    n, steps, band, after_hours = cfg.n, cfg.steps, cfg.band, cfg.after_hours
    gains = sorted({float(g) for g in initial_gains} | {1.0})
    facs = sorted({float(f) for f in step_factors} | {1.0})
    if any(not x > 0 for x in gains + facs):
        raise ValueError(f"gains and factors must be positive; got {gains}, {facs}")
    if weighting not in _WEIGHTINGS:
        raise ValueError(f"weighting must be one of {_WEIGHTINGS}; got {weighting!r}")
    _check_band_and_leads(band, model, steps, after_hours)
    truth = validate(ds, require_time=True)
    init_times = cfg.times(truth, model)
    std = np.asarray(model.stats.std, dtype=float)
    groups = _channel_groups(model.channels)
    names = [channel_name(("wind", g[0][1])) if len(g) > 1 else channel_name(g[0]) for g in groups]
    crps_t = np.full((len(groups), len(gains), len(facs)), np.nan)
    by_lead = np.full((*crps_t.shape, int(steps)), np.nan)
    low_t = np.full_like(crps_t, np.nan)  # lowest SSR over levels and late leads
    high_t = np.full_like(crps_t, np.nan)  # highest
    saved_scale = perturbation.log_scale.detach().clone()
    saved_gain = list(perturbation.config["initial_gain"])
    try:
        for i, g in enumerate(gains):
            for j, f in enumerate(facs):
                with torch.no_grad():
                    perturbation.log_scale.copy_(saved_scale + math.log(f))
                perturbation.set_initial_gain([x * g for x in saved_gain])
                fc = ensemble(
                    ds, model=model, n=n, steps=steps, perturbation=perturbation,
                    init_times=init_times, seed=cfg.seed, chunk_size=cfg.chunk_size,
                    progress=progress,
                )  # fmt: skip
                per = {
                    ch: (cv / sd, sv)
                    for (ch, (cv, sv)), sd in zip(
                        _channel_scores(fc, truth, model.channels, after_hours).items(), std
                    )
                }
                for k, grp in enumerate(groups):
                    by_lead[k, i, j] = np.mean([per[ch][0] for ch in grp], axis=0)
                    crps_t[k, i, j] = by_lead[k, i, j].mean()
                    low_t[k, i, j] = min(per[ch][1].min() for ch in grp)
                    high_t[k, i, j] = max(per[ch][1].max() for ch in grp)
                log.info(
                    "initial gain %g, step factor %g: SSR range %s", g, f,
                    {n_: (round(float(low_t[k, i, j]), 2), round(float(high_t[k, i, j]), 2))
                     for k, n_ in enumerate(names)},
                )  # fmt: skip
    finally:
        with torch.no_grad():
            perturbation.log_scale.copy_(saved_scale)
        perturbation.set_initial_gain(saved_gain)
    coords = {"channel": names, "initial_gain": gains, "step_factor": facs}
    dims3 = ("channel", "initial_gain", "step_factor")
    leads = np.arange(1, int(steps) + 1) * model.timestep
    scores = xr.Dataset(
        {"crps": (dims3, crps_t), "ssr_min": (dims3, low_t), "ssr_max": (dims3, high_t),
         "crps_by_lead": ((*dims3, "prediction_timedelta"), by_lead)},
        coords={**coords, "prediction_timedelta": leads},
        attrs={"n": n, "steps": steps, "band": list(band)},
    )  # fmt: skip
    named = dict(zip(names, groups))
    return {ch: p for name, p in select_spread_growth(scores, band, weighting).items()
            for ch in named[name]}, scores  # fmt: skip


def select_spread_growth(
    scores: xr.Dataset, band: tuple[float, float] = (0.8, 1.2), weighting: str = "lead"
) -> dict[str, tuple[float, float]]:
    """The ``(initial gain, step factor)`` of each channel from :func:`tune_spread_growth`'s scores.

    Of the pairs whose spread–skill ratios all lie in ``band``, the one with the best CRPS
    score; if none does, the one whose ratios fall least far outside it (in log ratio).
    Pairs not evaluated (NaN, e.g. after merging the scores of two grids with
    ``xr.merge``) are skipped.

    The CRPS score: with ``weighting="lead"`` (needs ``crps_by_lead`` and the pair (1, 1)),
    the mean over leads of ``log(CRPS / CRPS of the pair (1, 1))``, every lead counting
    alike; with ``"none"``, the mean CRPS over leads.

    Returns
    -------
    dict
        Channel label (as in ``scores["channel"]``) → ``(initial gain, step factor)``.
    """
    if weighting not in _WEIGHTINGS:
        raise ValueError(f"weighting must be one of {_WEIGHTINGS}; got {weighting!r}")
    lo, hi = (float(b) for b in band)
    low = scores["ssr_min"].transpose("channel", "initial_gain", "step_factor").values
    high = scores["ssr_max"].transpose("channel", "initial_gain", "step_factor").values
    if weighting == "none":
        crps_v = scores["crps"].transpose("channel", "initial_gain", "step_factor").values
    else:
        if "crps_by_lead" not in scores:
            raise ValueError('weighting="lead" needs the scores\' crps_by_lead')
        by_lead = scores["crps_by_lead"]
        try:
            ref = by_lead.sel(initial_gain=1.0, step_factor=1.0)
        except KeyError:
            raise ValueError('weighting="lead" needs the pair (1, 1) in the scores') from None
        crps_v = (
            np.log(by_lead / ref)
            .mean("prediction_timedelta", skipna=False)
            .transpose("channel", "initial_gain", "step_factor")
            .values
        )
    miss = np.maximum(np.log(lo) - np.log(low), np.log(high) - np.log(hi)).clip(min=0)
    miss = np.where(np.isnan(miss), np.inf, miss)
    gains = scores["initial_gain"].values
    facs = scores["step_factor"].values
    best: dict[str, tuple[float, float]] = {}
    for k, name in enumerate(scores["channel"].values):
        inside = miss[k] == 0
        score = np.where(np.isnan(crps_v[k]), np.inf, crps_v[k])
        flat = np.where(inside, score, np.inf) if inside.any() else miss[k]
        i, j = np.unravel_index(int(np.argmin(flat)), flat.shape)
        best[str(name)] = (float(gains[i]), float(facs[j]))
    return best


def apply_spread_growth(
    vae: PerturbationVAE, pairs: dict[Channel, tuple[float, float]]
) -> PerturbationVAE:
    """Bake per-channel ``(initial gain, step factor)`` pairs into a module, in place.

    Every perturbation of a named channel ``(variable, level)`` is multiplied by the step
    factor and the initial one, in addition, by the gain (see :func:`tune_spread_growth`).

    Examples
    --------
    >>> vae = PerturbationVAE([("temperature", 500.0), ("geopotential", 500.0)], (8, 16),
    ...                       hidden=4, latent=2)
    >>> _ = apply_spread_growth(vae, {("temperature", 500.0): (2.0, 0.5)})
    >>> vae.config["initial_gain"]
    [2.0, 1.0]
    """
    rows = _channel_indices(vae, list(pairs))
    gain = list(vae.config["initial_gain"])
    with torch.no_grad():
        for i, (ch, (g, f)) in zip(rows, pairs.items()):
            if not (g > 0 and f > 0):
                raise ValueError(f"gain and factor for {channel_name(ch)} must be positive")
            vae.log_scale[0, i] += math.log(f)
            gain[i] *= float(g)
    vae.set_initial_gain(gain)
    return vae


@fill_doc
def tune_early_gain(
    ds: xr.Dataset,
    *,
    model: ForecastModel,
    perturbation: PerturbationVAE,
    channels: Sequence[Channel],
    gains: Sequence[float],
    steps_options: Sequence[int],
    score_channels: Sequence[Channel] | None = None,
    run: TuningRun | dict[str, Any] | None = None,
    progress: bool | None = None,
    **legacy: Any,
) -> tuple[tuple[float, int], xr.Dataset]:
    """Choose an early-step gain for ``channels``: more tendency perturbation in the first days.

    For every gain ``g`` in ``gains`` and ``K`` in ``steps_options`` (and the module as it
    is, ``(1, 0)``), the perturbations of steps ``1 … K`` of ``channels`` are multiplied by
    ``g`` (:meth:`PerturbationVAE.set_early_gain`), an ensemble is run on held-back data and
    ``score_channels`` (default ``channels``; perturbing the winds also spreads the heights,
    so score those too) are scored: the fraction of leads after ``run.after_hours`` whose
    spread–skill ratio (finite-ensemble corrected) lies in ``run.band``, and the mean over
    leads of the log of the fair CRPS relative to the module as it is. The choice has the
    most leads in band, then the best CRPS score. The module is left as it was. The
    ensembles have 16 members and 40 steps unless ``run`` says otherwise.

    Parameters
    ----------
    {{held_back}}
    channels : sequence of (variable, level)
        The channels whose early-step perturbations get the gain.
    gains : sequence of float
        Gain candidates.
    steps_options : sequence of int
        Candidates for ``K``, the number of early steps.
    score_channels : sequence of (variable, level), optional
        The channels scored (default ``channels``).
    {{run}}

    Returns
    -------
    best : (float, int)
        ``(gain, K)``; ``(1.0, 0)`` when nothing did better.
    scores : xarray.Dataset
        ``in_band`` and ``crps_score`` by ``candidate`` (with ``gain`` and ``early_steps``).
    """
    cfg = tuning_run(run, legacy, "tune_early_gain", n=16, steps=40)
    n, steps = cfg.n, cfg.steps
    chans = _channel_keys(channels)
    if not chans:
        raise ValueError("channels must name at least one channel of the module")
    _channel_indices(perturbation, chans)
    scored = chans if score_channels is None else _channel_keys(score_channels)
    _channel_indices(perturbation, scored)
    cands = [(1.0, 0)] + [(float(g), int(k)) for g in gains for k in steps_options]
    if any(not g > 0 or k < 0 for g, k in cands):
        raise ValueError(f"gains must be positive and steps >= 0; got {gains}, {steps_options}")
    lo, hi = _check_band_and_leads(cfg.band, model, steps, cfg.after_hours)
    truth = validate(ds, require_time=True)
    init_times = cfg.times(truth, model)
    saved = (list(perturbation.config["early_gain"]), perturbation.config["early_steps"])
    in_band, by_lead = [], []
    try:
        for g, k in cands:
            apply_early_gain(perturbation, chans, g, k)
            fc = ensemble(ds, model=model, n=n, steps=steps, perturbation=perturbation,
                          init_times=init_times, seed=cfg.seed, chunk_size=cfg.chunk_size,
                          progress=progress)  # fmt: skip
            band_k, crps_k = _band_fraction_and_crps(
                _channel_scores(fc, truth, scored, cfg.after_hours), lo, hi
            )
            in_band.append(band_k)
            by_lead.append(crps_k)
            log.info("early gain %g for %d steps: SSR in band %.2f", g, k, in_band[-1])
            perturbation.set_early_gain(*saved)
    finally:
        perturbation.set_early_gain(*saved)
    best, score = _best_candidate(in_band, by_lead)
    scores = xr.Dataset(
        {"in_band": ("candidate", in_band), "crps_score": ("candidate", score)},
        coords={"gain": ("candidate", [g for g, _ in cands]),
                "early_steps": ("candidate", [k for _, k in cands])},
        attrs={"channels": [channel_name(c) for c in chans],
               "score_channels": [channel_name(c) for c in scored], "n": n, "steps": steps},
    )  # fmt: skip
    return cands[best], scores


def apply_early_gain(
    vae: PerturbationVAE, channels: Sequence[Channel], gain: float, steps: int
) -> PerturbationVAE:
    """Multiply the early-step factor of ``channels`` by ``gain`` on steps ``1 … steps``, in place.

    ``steps = 0`` leaves the module as it is (see :meth:`PerturbationVAE.set_early_gain`;
    :func:`tune_early_gain` chooses the pair).

    Examples
    --------
    >>> vae = PerturbationVAE([("temperature", 500.0), ("geopotential", 500.0)], (8, 16),
    ...                       hidden=4, latent=2)
    >>> _ = apply_early_gain(vae, [("temperature", 500.0)], 3.0, 12)
    >>> vae.config["early_gain"], vae.config["early_steps"]
    ([3.0, 1.0], 12)
    """
    rows = _channel_indices(vae, channels)
    if not gain > 0 or int(steps) < 0:
        raise ValueError(f"gain must be positive and steps >= 0; got {gain}, {steps}")
    if int(steps) == 0:
        return vae
    # the channels tuned count too: a second gain over other steps cut their first one
    # short (or stretched it), as the steps are one number for the module
    others = [channel_name(ch) for ch, g in zip(vae.channels, vae.config["early_gain"]) if g != 1.0]
    current = vae.config["early_steps"]
    if others and current and int(steps) != current:
        raise ValueError(
            f"the early steps are shared by all channels: the module has an early gain on "
            f"{others} over steps 1-{current}; tune {sorted(channel_name(c) for c in channels)} "
            f"over {current} steps too, not {int(steps)}"
        )
    early = list(vae.config["early_gain"])
    for i in rows:
        early[i] *= float(gain)
    vae.set_early_gain(early, int(steps))
    return vae


@fill_doc
def tune_model_gain(
    ds: xr.Dataset,
    *,
    model: Any,
    perturbation: PerturbationVAE,
    stage: int,
    gains: Sequence[float],
    channels: Sequence[Channel] | None = None,
    run: TuningRun | dict[str, Any] | None = None,
    progress: bool | None = None,
    **legacy: Any,
) -> tuple[float, xr.Dataset]:
    """Choose the perturbation gain of one stage of a cascade (its ``model_gain``).

    A cascade's later stage (FuXi-Medium) is fine-tuned on long rollouts and damps eddies
    more than the stage the module was trained with, so the ensemble loses spread after
    the switch; and a stage retrained after the module (``stage=0`` too) may grow some
    channels' spread differently. For every gain ``g`` in ``gains`` (and the module as it
    is, ``1``), the perturbations before the steps that ``model.stages[stage]`` makes are
    multiplied by ``g`` for ``channels`` (default all), an ensemble is run on held-back
    data and those channels are scored over the leads that stage makes (the first stage's
    after ``run.after_hours``, default a day): the fraction of leads whose spread–skill
    ratio (finite-ensemble corrected) lies in ``run.band``, then the mean log fair CRPS
    relative to the module as it is. The choice has the most leads in band, then the best
    CRPS. The module is left as it was (apply the choice with :func:`apply_model_gain`). The
    ensembles have 16 members and 40 steps unless ``run`` says otherwise.

    Parameters
    ----------
    {{held_back}}
    stage : int
        Index of the cascade stage (``model.stages``; ``model`` must be a Cascade) whose
        steps the gain precedes.
    gains : sequence of float
        Gain candidates.
    channels : sequence of (variable, level), optional
        The channels that get the gain and are scored (default all).
    {{run}}

    Returns
    -------
    gain : float
        ``1.0`` when nothing did better.
    scores : xarray.Dataset
        ``in_band`` and ``crps_score`` by ``gain``.
    """
    cfg = tuning_run(run, legacy, "tune_model_gain", n=16, steps=40)
    steps = cfg.steps
    if not isinstance(model, Cascade):
        raise TypeError(f"model must be a Cascade; got {type(model).__name__}")
    if isinstance(stage, bool) or not 0 <= int(stage) < len(model.stages):
        raise ValueError(f"stage must be one of 0 .. {len(model.stages) - 1}; got {stage}")
    stage = int(stage)
    first = model.switch_steps[stage - 1] if stage else 0  # the stage makes steps first+1 ..
    # the band is held over a later stage's leads, or after day 1 for the first stage
    after = first * model.timestep_hours if stage else cfg.after_hours
    if int(steps) <= first:
        raise ValueError(f"steps={steps} never reach stage {stage} (it starts after step {first})")
    chans = list(perturbation.channels) if channels is None else _channel_keys(channels)
    rows = _channel_indices(perturbation, chans)
    cands = [1.0] + [float(g) for g in gains]
    if any(not g > 0 for g in cands):
        raise ValueError(f"gains must be positive; got {gains}")
    lo, hi = _check_band_and_leads(cfg.band, model, steps, after)
    last = model.switch_steps[stage] if stage < len(model.switch_steps) else int(steps)
    if min(int(steps), last) * model.timestep_hours <= after:
        raise ValueError(
            f"stage {stage} makes no lead after {after:g} h to score the spread-skill band"
        )
    truth = validate(ds, require_time=True)
    init_times = cfg.times(truth, model)
    # the factors the stage uses: a filtered stage ("medium+T21") those of the stage it wraps
    name = perturbation.model_gain_key(model.stages[stage].name)
    saved = perturbation.config["model_gain"].get(name)
    base = np.ones(perturbation.n_channels) if saved is None else np.asarray(saved, dtype=float)
    in_band, by_lead = [], []
    try:
        for g in cands:
            gain = base.copy()
            gain[rows] *= g
            perturbation.set_model_gain(name, gain)
            fc = ensemble(ds, model=model, n=cfg.n, steps=min(int(steps), last),
                          perturbation=perturbation, init_times=init_times, seed=cfg.seed,
                          chunk_size=cfg.chunk_size, progress=progress)  # fmt: skip
            band_g, crps_g = _band_fraction_and_crps(
                _channel_scores(fc, truth, chans, after), lo, hi, first
            )
            in_band.append(band_g)
            by_lead.append(crps_g)
            log.info("stage %d (%s) gain %g: SSR in band %.2f", stage, name, g, in_band[-1])
    finally:
        perturbation.set_model_gain(name, saved)
    best, score = _best_candidate(in_band, by_lead)
    scores = xr.Dataset(
        {"in_band": ("gain", in_band), "crps_score": ("gain", score)},
        coords={"gain": cands},
        attrs={"channels": [channel_name(c) for c in chans], "stage": name, "n": cfg.n,
               "steps": steps},
    )  # fmt: skip
    return cands[best], scores


def apply_model_gain(
    vae: PerturbationVAE, model: str, gain: float, channels: Sequence[Channel] | None = None
) -> PerturbationVAE:
    """Multiply the factor on the perturbations before ``model``'s steps by ``gain``, in place.

    ``channels`` default to all of the module's (see :func:`tune_model_gain`). For a model
    wrapped by :func:`xfuxi.with_spectral_filter` (``"medium+T21"``) whose base has factors,
    those are the ones multiplied (:meth:`~xfuxi.models.ens.PerturbationVAE.model_gain_key`).

    Examples
    --------
    >>> vae = PerturbationVAE([("temperature", 500.0), ("geopotential", 500.0)], (8, 16),
    ...                       hidden=4, latent=2)
    >>> _ = apply_model_gain(vae, "fuxi-medium", 1.5, [("temperature", 500.0)])
    >>> vae.config["model_gain"]
    {'fuxi-medium': [1.5, 1.0]}
    """
    rows = _channel_indices(vae, list(vae.channels) if channels is None else channels)
    if not gain > 0:
        raise ValueError(f"gain must be positive; got {gain}")
    key = vae.model_gain_key(str(model))  # a wrapped stage's factors are its base's
    current = vae.config["model_gain"].get(key)
    g = np.ones(vae.n_channels) if current is None else np.asarray(current, dtype=float)
    g[rows] *= float(gain)
    vae.set_model_gain(key, g)
    return vae
