"""Scorecard: WeatherBench2's table of scores (score × variable × level × lead × region).

:func:`scorecard` scores a forecast (or an ensemble) against a truth with the usual
headline scores and returns one Dataset: a data variable per forecast variable (plus
``wind_vector`` where both wind components are there), with dims ``score``, ``level``
(where the variable has levels), the lead (``prediction_timedelta``) and ``region``.
Everything else (initial time, latitude, longitude) is reduced as each score does. Stores
(zarr paths) are opened lazily and the result stays a dask graph until computed.
:func:`xfuxi.plot.plot_scorecard` draws one system against another. See the
documentation, docs/verification.md (Scorecard).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..data.stats import as_dataset
from ..options import get_options
from .deterministic import acc, bias, mae, mse, rmse, wind_vector_rmse
from .probabilistic import (
    crps,
    debiased_ensemble_mean_mse,
    energy_score,
    ensemble_ignorance,
    ensemble_mean_rmse,
    spread,
    spread_skill_ratio,
)
from .weights import METRIC_INFO, Weights

__all__ = ["DETERMINISTIC_SCORES", "ENSEMBLE_SCORES", "PERFECT_VALUES", "scorecard"]

#: default scores of a deterministic forecast (``acc`` only with a climatology)
DETERMINISTIC_SCORES: tuple[str, ...] = ("rmse", "mae", "bias", "acc", "wind_vector_rmse")
#: default scores of an ensemble (deterministic names score the ensemble mean)
ENSEMBLE_SCORES: tuple[str, ...] = (
    "crps", "ensemble_mean_rmse", "spread", "spread_skill_ratio", "acc", "wind_vector_rmse",
)  # fmt: skip
#: the value of a perfect forecast, by score (the plot colours the distance to it)
PERFECT_VALUES: dict[str, float] = {
    **{k: v[0] for k, v in METRIC_INFO.items()},
    "bias": 0.0,
    "spread_skill_ratio": 1.0,
}
_WIND = ("u_component_of_wind", "v_component_of_wind")

_PAIR: dict[str, Callable[..., Any]] = {"rmse": rmse, "mse": mse, "mae": mae, "bias": bias}
_ENSEMBLE: dict[str, Callable[..., Any]] = {
    "crps": crps,
    "ensemble_mean_rmse": ensemble_mean_rmse,
    "spread_skill_ratio": spread_skill_ratio,
    "debiased_ensemble_mean_mse": debiased_ensemble_mean_mse,
    "ensemble_ignorance": ensemble_ignorance,
    "energy_score": energy_score,
}
#: (central_reliability is not among them: it has a ``probability`` dim, not one value a lead)
KNOWN_SCORES = (*_PAIR, *_ENSEMBLE, "acc", "wind_vector_rmse", "spread")


def _open(obj: Any, role: str) -> xr.Dataset:
    if isinstance(obj, (str, os.PathLike)):
        return xr.open_zarr(obj)
    return as_dataset(obj, f"the {role}", "a Dataset, a named DataArray or a zarr path")


def _higher_is_better(score: str) -> float:
    """1.0 where a higher ``score`` is better, 0.0 where lower is, NaN where neither (bias,
    spread, the spread–skill ratio: nearest to their perfect value is best)."""
    info = METRIC_INFO.get(score)
    return float(info[1]) if info is not None else np.nan


def _variable_units(fc: xr.Dataset, name: Hashable) -> str | None:
    """The units of the forecast variable ``name`` scores (of the wind for
    ``wind_vector``), or None where it has none."""
    source = _WIND[0] if name == "wind_vector" and name not in fc.data_vars else name
    if source not in fc.data_vars or "units" not in fc[source].attrs:
        return None
    return str(fc[source].attrs["units"])


def _member_dim(fc: xr.Dataset, member_dim: str | None) -> str | None:
    if member_dim is not None:
        if member_dim not in fc.dims:
            raise ValueError(f"member_dim {member_dim!r} is not a dim of the forecast")
        return member_dim
    return next((d for d in get_options()["ensemble_dims"] if d in fc.dims), None)


def scorecard(
    forecast: xr.Dataset | xr.DataArray | str | os.PathLike,
    truth: xr.Dataset | xr.DataArray | str | os.PathLike,
    /,
    *,
    scores: Sequence[str] | None = None,
    climatology: xr.Dataset | str | os.PathLike | None = None,
    region: Any = "global",
    variables: Sequence[Hashable] | None = None,
    member_dim: str | None = None,
    lead_dim: str = "prediction_timedelta",
    weights: Weights = "area",
    skipna: bool = False,
) -> xr.Dataset:
    """Score a forecast or an ensemble against a truth: the WeatherBench2 table.

    Parameters
    ----------
    forecast : Dataset, named DataArray or path of a zarr store
        Forecast in WeatherBench2 layout (``time`` = initial time, ``prediction_timedelta``
        = lead), optionally with an ensemble dim; a store is opened lazily.
    truth : Dataset, named DataArray or path of a zarr store
        Verifying analysis on ``time`` (valid time) or in the forecast's layout.
    scores : sequence of str, optional
        Score names (rows of the table): any of ``rmse``, ``mse``, ``mae``, ``bias``,
        ``acc``, ``wind_vector_rmse``, ``crps``, ``ensemble_mean_rmse``, ``spread``,
        ``spread_skill_ratio``, ``debiased_ensemble_mean_mse``, ``ensemble_ignorance``,
        ``energy_score``. Default: :data:`DETERMINISTIC_SCORES` or :data:`ENSEMBLE_SCORES`,
        without ``acc`` when there is no climatology and without ``wind_vector_rmse`` when
        a wind component is missing. On an ensemble the deterministic scores (and ``acc``)
        score the ensemble mean.
    climatology : Dataset or path, optional
        For ``acc`` (variables ``v`` or ``v_mean``; see :func:`~xfuxi.acc`).
    region : region or list of regions, default "global"
        As the scores' ``region`` (docs/verification.md; None is ``"global"``, as there);
        the result always has a ``region`` dim.
    variables : sequence of str, optional
        Forecast variables to score (default: all the truth has).
    member_dim : str, optional
        Ensemble dim; by default the first of the accepted names present, if any.
    lead_dim : str, default "prediction_timedelta"
        The lead dim, kept (a forecast without it is scored as one lead).
    weights : {"area"}, DataArray or None, default "area"
        As every score.
    skipna : bool, default False
        As every score (ensemble scores count the valid members).

    Returns
    -------
    Dataset
        One variable per forecast variable (and ``wind_vector``), dims ``score``, the lead,
        ``level`` where present, and ``region``; NaN where a score does not apply to a
        variable. What differs by score is a coordinate along ``score``:
        ``perfect_value`` (NaN where none) and ``higher_is_better`` (1.0, 0.0, or NaN for
        bias, spread and the spread–skill ratio, best nearest their perfect value). A
        variable's only attribute is ``variable_units``, the units of the forecast
        variable (where it has them); a row is in the units of its score (those of the
        variable for the errors, squared for ``mse``, none for ``acc``), as
        :func:`xfuxi.plot_scores` labels a row.
        ``attrs["members"]`` for an ensemble. Lazy (dask) when the inputs are.

    Raises
    ------
    ValueError
        If a score name is unknown, ``acc`` is asked without a climatology, an ensemble
        score is asked of a deterministic forecast, or as the scores themselves.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.date_range("2020-01-01", periods=3, freq="6h")
    >>> truth = xr.Dataset({"temperature": ("time", [1.0, 2.0, 3.0])}, coords={"time": t})
    >>> lead = pd.to_timedelta([6, 12], "h")
    >>> fc = xr.Dataset({"temperature": (("time", "prediction_timedelta"), [[2.0, 4.0]])},
    ...                 coords={"time": t[:1], "prediction_timedelta": lead})
    >>> card = scorecard(fc, truth, weights=None)
    >>> card.temperature.sel(score="rmse", region="global").values.tolist()
    [0.0, 1.0]
    >>> card = fc.fuxi.scorecard(truth, weights=None)  # the same through the accessor
    >>> card.temperature.sel(score="bias", region="global").values.tolist()
    [0.0, 1.0]
    """
    fc, tr = _open(forecast, "forecast"), _open(truth, "truth")
    clim = _open(climatology, "climatology") if climatology is not None else None
    if variables is not None:
        variables = [variables] if isinstance(variables, str) else list(variables)
        missing = {
            label: [v for v in variables if v not in ds.data_vars]
            for label, ds in (("forecast", fc), ("truth", tr))
        }
        missing = {k: v for k, v in missing.items() if v}
        if not variables or missing:
            raise ValueError(
                "variables must name variables of the forecast and the truth; "
                + ("none given" if not variables else "; ".join(
                    f"the {k} lacks {v}" for k, v in missing.items()))
            )  # fmt: skip
        fc = fc[variables]
    else:
        fc = fc[[v for v in fc.data_vars if v in tr.data_vars]]
        if not fc.data_vars:
            raise ValueError("the forecast and the truth share no variable")
    mdim = _member_dim(fc, member_dim)
    has_wind = all(w in fc.data_vars for w in _WIND)
    if scores is None:
        scores = [
            s for s in (ENSEMBLE_SCORES if mdim else DETERMINISTIC_SCORES)
            if not (s == "acc" and clim is None) and not (s == "wind_vector_rmse" and not has_wind)
        ]  # fmt: skip
    scores = [scores] if isinstance(scores, str) else list(scores)
    if not scores:
        raise ValueError("scores is empty; give at least one of " + ", ".join(KNOWN_SCORES))
    if len(set(scores)) != len(scores):
        raise ValueError(f"scores lists a score twice: {scores}")
    unknown = [s for s in scores if s not in KNOWN_SCORES]
    if unknown:
        hint = (
            "; central_reliability has a coverage per nominal probability, not one value a "
            "lead: call xfuxi.central_reliability(forecast, truth, dim=...) instead"
            if "central_reliability" in unknown
            else ""
        )
        raise ValueError(f"unknown score(s) {unknown}; known: {list(KNOWN_SCORES)}{hint}")
    if "acc" in scores and clim is None:
        raise ValueError("the score 'acc' needs a climatology (climatology=...)")
    ens_only = [s for s in scores if s in _ENSEMBLE or s == "spread"]
    if ens_only and mdim is None:
        raise ValueError(f"score(s) {ens_only} need an ensemble; the forecast has no member dim")
    if region is None:  # as in every score: the whole grid, labelled "global"
        region = "global"
    regions = list(region) if isinstance(region, (list, tuple)) else [region]
    keep = {lead_dim, "level", mdim}
    dim = [d for d in fc.dims if d not in keep]
    common = {"weights": weights, "region": regions, "skipna": skipna}
    mean = fc.mean(mdim, skipna=skipna) if mdim else fc

    rows = []
    for name in scores:
        if name in _PAIR:
            out = _PAIR[name](mean, tr, dim=dim, **common)
        elif name == "acc":
            out = acc(mean, tr, clim, dim=dim, **common)
        elif name == "wind_vector_rmse":
            out = wind_vector_rmse(mean, tr, dim=dim, **common).to_dataset()
        elif name == "spread":
            out = spread(fc, dim=dim, member_dim=mdim, **common)
        elif name == "energy_score":
            vdims = [d for d in ("latitude", "longitude") if d in fc.dims]
            rest = [d for d in dim if d not in vdims]
            out = energy_score(fc, tr, vector_dims=vdims, dim=rest, member_dim=mdim, **common)
        elif name == "spread_skill_ratio":
            # with the finite-ensemble correction, so that 1 is perfect at any size (the
            # uncorrected ratio of a consistent M-member ensemble is √(M/(M+1)): 0.89 for
            # 4 members, where an over-dispersive one came out nearer to 1, "better")
            out = spread_skill_ratio(fc, tr, dim=dim, member_dim=mdim, correction=True, **common)
        else:
            out = _ENSEMBLE[name](fc, tr, dim=dim, member_dim=mdim, **common)
        rows.append(out.drop_vars([c for c in out.coords if c not in out.dims]))
    card = xr.concat(
        rows, dim="score", join="outer", fill_value=np.nan, data_vars="all",
        coords="minimal", compat="override",
    )  # fmt: skip
    # what differs from score to score is a coordinate along ``score``, not an attribute of
    # each variable: concat kept the first score's attrs (metric, units, perfect value,
    # direction) on every row, so the ACC row of a card led by rmse said "rmse", "K"
    card = card.assign_coords(
        score=np.array(list(scores), dtype=str),
        perfect_value=("score", [PERFECT_VALUES.get(s, np.nan) for s in scores]),
        higher_is_better=("score", [_higher_is_better(s) for s in scores]),
    )
    for name in card.data_vars:
        units = _variable_units(fc, name)
        card[name].attrs = {} if units is None else {"variable_units": units}
    card.attrs = {"metric": "scorecard", "scores": list(scores)}
    if mdim:
        card.attrs["members"] = int(fc.sizes[mdim])
    return card
