"""Calibrating a FuXi-ENS perturbation module on held-back data: its inflation.

Each ``tune_*`` function runs ensembles with candidate settings of a module, scores them
(fair CRPS) against held-back states, and returns its choice and the scores; the module is
left as it was. Each ``apply_*`` bakes a choice into a module, in place:

* :func:`tune_amplitude`: one global inflation (or a baseline's noise amplitude);
* :func:`tune_variable_inflation` / :func:`apply_variable_inflation`: an inflation per
  variable.

The per-channel strategies held to a spread–skill band (spread growth, early-step gain,
cascade-stage gain) are in :mod:`xfuxi.training.gains`. Every tuning function takes the
ensembles it runs (members, steps, initial times, seed) and the spread–skill band as one
:class:`TuningRun`. :func:`verifiable_init_times` lists the initial times that can be verified.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..config import Config, config_with_legacy, field
from ..data.channels import WIND_COMPONENTS
from ..data.schema import SchemaError, validate
from ..docstrings import docstring_parts
from ..forecasting.ensemble import ensemble, perturbation_for
from ..models.base import ForecastModel
from ..models.ens import PerturbationVAE
from ..verify.probabilistic import crps

__all__ = [
    "DOC_PARTS",
    "TuningRun",
    "apply_variable_inflation",
    "fill_doc",
    "tune_amplitude",
    "tune_variable_inflation",
    "verifiable_init_times",
]

log = logging.getLogger(__name__)

#: the parameters the tuning strategies share, described once (:func:`fill_doc`)
DOC_PARTS = {
    "held_back": """\
ds : xarray.Dataset
    Held-back states (e.g. the validation split).
model : ForecastModel or Cascade
perturbation : PerturbationVAE
    Left as it was (candidates are tried on it and undone).""",
    "run": """\
run : TuningRun or dict, optional
    The ensembles run for each candidate (members ``n``, ``steps``, ``init_times``, ``seed``,
    ``chunk_size``) and the spread–skill ``band`` held after ``after_hours``; see
    :class:`~xfuxi.training.calibration.TuningRun`.
progress : bool, optional
    Progress bars of the ensembles.
**legacy
    The old keyword arguments (``n=``, ``steps=``, ``init_times=``, ``seed=``, ...: each a
    field of :class:`~xfuxi.training.calibration.TuningRun`) still work, with a
    ``DeprecationWarning``.""",
}
#: fill the ``{{name}}`` lines of a docstring from :data:`DOC_PARTS`
fill_doc = docstring_parts(DOC_PARTS)


@dataclasses.dataclass(frozen=True)
class TuningRun(Config):
    """The held-back ensembles a tuning function runs for each candidate, and their scoring.

    ``n`` and ``steps`` left ``None`` take the tuning function's defaults: 8 members for the
    inflations (:func:`tune_amplitude`, :func:`tune_variable_inflation`) and 16 for the gains
    (:mod:`xfuxi.training.gains`); 20 steps for :func:`tune_amplitude` and 40 for the others.
    ``band`` and ``after_hours`` concern the gains only.

    Examples
    --------
    >>> run = TuningRun(n=4, steps=8, seed=1)
    >>> run.band, run.after_hours
    ((0.8, 1.2), 24.0)
    >>> run.with_defaults(n=16, steps=40).n, TuningRun().with_defaults(n=16, steps=40).n
    (4, 16)
    """

    n: int | None = field(None, help="ensemble members (default: the tuning function's)")
    steps: int | None = field(None, help="forecast steps (default: the tuning function's)")
    init_times: tuple[Any, ...] | None = field(
        None, help="initial times (default: every verifiable one)", cli=False
    )
    seed: int = field(0, help="seeds the ensembles' perturbations")
    chunk_size: int | None = field(None, help="members run at once (as for xfuxi.ensemble)")
    band: tuple[float, float] = field(
        (0.8, 1.2), help="spread-skill band the gains are held to (low < 1 < high)"
    )
    after_hours: float = field(
        24.0, help="leads at or before this are not held to the band (the first day's ratio "
        "reflects the initial perturbation alone)",
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.init_times is not None and not isinstance(self.init_times, tuple):
            object.__setattr__(self, "init_times", tuple(self.init_times))
        if not isinstance(self.band, tuple):
            object.__setattr__(self, "band", tuple(self.band))

    def with_defaults(self, *, n: int, steps: int) -> TuningRun:
        """This run with ``n`` and ``steps`` filled in where they are ``None``."""
        return self.replace(
            n=n if self.n is None else self.n, steps=steps if self.steps is None else self.steps
        )

    def times(self, truth: xr.Dataset, model: Any) -> Any:
        """``init_times``, or every initial time of ``truth`` that ``steps`` can verify."""
        if self.init_times is not None:
            return self.init_times
        return verifiable_init_times(truth, model=model, steps=self.steps)


def tuning_run(
    run: TuningRun | dict | None, legacy: dict[str, Any], function: str, *, n: int, steps: int
) -> TuningRun:
    """``run`` with the old keywords of ``function`` applied (``DeprecationWarning``) and the
    function's default ``n`` and ``steps``."""
    cfg = config_with_legacy(TuningRun, run, legacy, function, parameter="run")
    return cfg.with_defaults(n=n, steps=steps)


def verifiable_init_times(
    ds: xr.Dataset, *, model: ForecastModel, steps: int, every: int = 1
) -> np.ndarray:
    """Initial times ``t`` of ``ds`` with ``t − Δ`` and all of ``t + Δ … t + steps·Δ`` in ``ds``.

    Parameters
    ----------
    ds : xarray.Dataset
        Data with a ``time`` dim.
    model : ForecastModel
        Gives the time step ``Δ``.
    steps : int
        Forecast length in steps.
    every : int, default 1
        Keep every ``every``-th candidate (spacing initial times apart).

    Returns
    -------
    numpy.ndarray of datetime64[ns]

    Raises
    ------
    SchemaError
        No such time.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr, xfuxi
    >>> m = xfuxi.wrap_model(__import__("torch").nn.Identity(), channels=[("temperature", None)],
    ...                      latitude=[0.0], longitude=[0.0])
    >>> ds = xr.Dataset(coords={"time": pd.date_range("2000-01-01", periods=5, freq="6h")})
    >>> [str(t)[11:16] for t in verifiable_init_times(ds, model=m, steps=2)]
    ['06:00', '12:00']
    """
    times = ds["time"].values.astype("datetime64[ns]")
    have = set(times.tolist())
    dt = np.timedelta64(model.timestep, "ns")
    ok = [
        t for t in times if all((t + k * dt).item() in have for k in range(-1, int(steps) + 1) if k)
    ]
    if not ok:
        raise SchemaError(
            f"no initial time in the data has its predecessor and {steps} verifying steps"
        )
    return np.asarray(ok[:: max(1, int(every))], dtype="datetime64[ns]")


def tune_amplitude(
    ds: xr.Dataset,
    *,
    model: ForecastModel,
    method: str,
    amplitudes: Sequence[float],
    perturbation: PerturbationVAE | None = None,
    run: TuningRun | dict[str, Any] | None = None,
    progress: bool | None = None,
    **legacy: Any,
) -> tuple[float, xr.DataArray]:
    """Pick the ensemble amplitude with the lowest mean fair CRPS on held-back data.

    For the Perlin / Gaussian baselines the amplitude is the initial noise std as a fraction
    of each channel's std; for FuXi-ENS (``method="vae"``) it is the inflation of the learned
    perturbations (use it to calibrate a module, then bake it in with
    ``vae.log_scale += log(best)``).

    Parameters
    ----------
    ds : xarray.Dataset
        Held-back states holding the initial pairs and the verifying states.
    model, method, perturbation
        As for :func:`xfuxi.ensemble`.
    amplitudes : sequence of float
        Candidates.
    run : TuningRun or dict, optional
        The ensembles run for each candidate: ``n`` (default 8) members, ``steps`` (default
        20), ``init_times`` (default: every verifiable one), ``seed``, ``chunk_size``, as
        for :func:`xfuxi.ensemble`.
    progress : bool, optional
        As for :func:`xfuxi.ensemble`.
    **legacy
        The old keyword arguments (``n=``, ``steps=``, ``init_times=``, ``seed=``,
        ``chunk_size=``: fields of :class:`TuningRun`) still work, with a
        ``DeprecationWarning``.

    Returns
    -------
    best : float
    score : xarray.DataArray
        Mean fair CRPS (area-weighted, over initial times and grid, each channel divided by
        its std, then averaged over channels and leads) by ``amplitude``.

    Notes
    -----
    Fair CRPS as :func:`xfuxi.verify.crps` defines it (see the definitions in the
    documentation, docs/design.md).
    """
    cfg = tuning_run(run, legacy, "tune_amplitude", n=8, steps=20)
    if len(amplitudes) == 0:
        raise ValueError("amplitudes must name at least one candidate")
    truth = validate(ds, require_time=True)
    init_times = cfg.times(truth, model)
    std = np.asarray(model.stats.std, dtype=float)
    scores = []
    for amp in amplitudes:
        spec = perturbation_for(method, module=perturbation, amplitude=float(amp))
        fc = ensemble(
            ds, model=model, n=cfg.n, steps=cfg.steps, perturbation=spec, init_times=init_times,
            seed=cfg.seed, chunk_size=cfg.chunk_size, progress=progress,
        )  # fmt: skip
        c = crps(fc, truth, dim=["time", "latitude", "longitude"])
        per_channel = [
            float((c[var] if lev is None else c[var].sel(level=lev)).mean()) / sd
            for (var, lev), sd in zip(model.channels, std)
        ]
        scores.append(float(np.mean(per_channel)))
        log.info("%s amplitude %g: mean normalised fair CRPS %.5f", method, amp, scores[-1])
    score = xr.DataArray(
        scores, dims="amplitude", coords={"amplitude": np.asarray(amplitudes, dtype=float)},
        name="crps", attrs={"method": method, "n": cfg.n, "steps": cfg.steps},
    )  # fmt: skip
    return float(score["amplitude"][int(np.argmin(scores))]), score


@fill_doc
def tune_variable_inflation(
    ds: xr.Dataset,
    *,
    model: ForecastModel,
    perturbation: PerturbationVAE,
    factors: Sequence[float],
    run: TuningRun | dict[str, Any] | None = None,
    progress: bool | None = None,
    **legacy: Any,
) -> tuple[dict[str, float], xr.DataArray]:
    """Per-variable inflation of a perturbation module, chosen by that variable's fair CRPS.

    One variable at a time (all its levels together), the module's perturbation of that
    variable is multiplied by each candidate factor (the others left as they are) and the
    ensemble is scored on held-back data; each variable keeps the factor with its lowest
    mean normalised fair CRPS (over its levels and all leads). Bake the result in with
    :func:`apply_variable_inflation`. A global inflation (:func:`tune_amplitude`) first,
    then this, corrects a module whose perturbations are right for some variables and too
    large or small for others. The ensembles have 8 members and 40 steps unless ``run``
    says otherwise.

    Parameters
    ----------
    {{held_back}}
    factors : sequence of float
        Candidates (1 is always included).
    {{run}}

    Returns
    -------
    best : dict
        Variable name → chosen factor (u and v of the wind tuned together, one factor).
    score : xarray.DataArray
        Mean normalised fair CRPS by ``variable`` (``"u_component_of_wind +
        v_component_of_wind"`` for the wind) and ``factor``.
    """
    cfg = tuning_run(run, legacy, "tune_variable_inflation", n=8, steps=40)
    cands = sorted({float(f) for f in factors} | {1.0})
    if any(not f > 0 for f in cands):
        raise ValueError(f"factors must be positive; got {list(factors)}")
    truth = validate(ds, require_time=True)
    init_times = cfg.times(truth, model)
    std = np.asarray(model.stats.std, dtype=float)
    # the two wind components share one factor (an inflation must not turn the wind)
    groups = _variable_groups(model.channels)
    variables = [" + ".join(g) for g in groups]

    def score_of(vae: PerturbationVAE) -> dict[str, float]:
        fc = ensemble(
            ds, model=model, n=cfg.n, steps=cfg.steps, perturbation=vae, init_times=init_times,
            seed=cfg.seed, chunk_size=cfg.chunk_size, progress=progress,
        )  # fmt: skip
        c = crps(fc, truth, dim=["time", "latitude", "longitude"])
        out: dict[str, list[float]] = {}
        for (var, lev), sd in zip(model.channels, std):
            x = c[var] if lev is None else c[var].sel(level=lev)
            out.setdefault(var, []).append(float(x.mean()) / sd)
        return {" + ".join(g): float(np.mean([x for v in g for x in out[v]])) for g in groups}

    table = np.full((len(variables), len(cands)), np.nan)
    base = score_of(perturbation)
    for i, (name, group) in enumerate(zip(variables, groups)):
        table[i, cands.index(1.0)] = base[name]
        for j, f in enumerate(cands):
            if f == 1.0:
                continue
            saved = perturbation.log_scale.detach().clone()
            try:
                apply_variable_inflation(perturbation, dict.fromkeys(group, f))
                table[i, j] = score_of(perturbation)[name]
            finally:
                with torch.no_grad():
                    perturbation.log_scale.copy_(saved)
            log.info("inflation %g for %s: normalised fair CRPS %.5f", f, name, table[i, j])
    score = xr.DataArray(
        table, dims=("variable", "factor"), coords={"variable": variables, "factor": cands},
        name="crps", attrs={"n": cfg.n, "steps": cfg.steps},
    )  # fmt: skip
    best = {
        v: float(score["factor"][int(np.argmin(table[i]))])
        for i, group in enumerate(groups)
        for v in group
    }
    return best, score


def apply_variable_inflation(vae: PerturbationVAE, factors: dict[str, float]) -> PerturbationVAE:
    """Multiply the module's perturbation of each named variable (all levels) in place.

    Examples
    --------
    >>> vae = PerturbationVAE([("temperature", 500.0), ("geopotential", 500.0)], (8, 16),
    ...                       hidden=4, latent=2)
    >>> before = vae.log_scale.detach().clone()
    >>> _ = apply_variable_inflation(vae, {"temperature": 2.0})
    >>> [round(float(x), 4) for x in (vae.log_scale - before).flatten()]
    [0.6931, 0.0]
    """
    names = {v for v, _ in vae.channels}
    unknown = sorted(set(factors) - names)
    if unknown:
        raise ValueError(f"unknown variables {unknown}; the module has {sorted(names)}")
    with torch.no_grad():
        for i, (var, _) in enumerate(vae.channels):
            if var in factors:
                f = float(factors[var])
                if not f > 0:
                    raise ValueError(f"inflation for {var!r} must be positive; got {f}")
                vae.log_scale[0, i] += math.log(f)
    return vae


def _variable_groups(channels: Sequence[tuple[str, Any]]) -> list[tuple[str, ...]]:
    """Variables of a channel list, the wind components paired (they share one factor)."""
    present = list(dict.fromkeys(v for v, _ in channels))
    groups: list[tuple[str, ...]] = []
    for v in present:
        if any(v in g for g in groups):
            continue
        pair = next((p for p in WIND_COMPONENTS if v in p and all(x in present for x in p)), None)
        groups.append(pair if pair is not None else (v,))
    return groups
