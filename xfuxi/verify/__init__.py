"""Verification: deterministic and probabilistic scores, observation-space statistics and
balance diagnostics, defined in the documentation, docs/design.md (Verification). Works
without torch; numba is used when installed.

Examples
--------
Every score is a function here and a method of the ``.fuxi`` accessor:

>>> import xarray as xr, xfuxi.verify
>>> fc = xr.DataArray([[0.0, 2.0], [1.0, 3.0]], dims=("x", "number"))
>>> truth = xr.DataArray([3.0, 3.0], dims="x")
>>> float(xfuxi.verify.crps(fc, truth)), float(fc.fuxi.crps(truth))
(0.5, 0.5)
"""

from __future__ import annotations

from ..data.stats import select_climatology
from .balance import ageostrophic_wind, balance_summary, geostrophic_wind
from .deterministic import acc, bias, mae, mse, rmse, wind_vector_rmse
from .gaussian import gaussian_brier_score, gaussian_crps, gaussian_ignorance, gaussian_variance
from .observation_space import innovation_statistics, innovations
from .probabilistic import (
    brier_score,
    central_reliability,
    crps,
    debiased_ensemble_mean_mse,
    energy_score,
    ensemble_ignorance,
    ensemble_mean_rmse,
    rank_histogram,
    ranked_probability_score,
    spread,
    spread_skill_ratio,
)
from .regions import REGIONS, Region
from .scorecard import scorecard
from .weights import align_valid_time, area_weights, valid_time

__all__ = [
    "REGIONS",
    "Region",
    "acc",
    "ageostrophic_wind",
    "align_valid_time",
    "area_weights",
    "balance_summary",
    "bias",
    "brier_score",
    "central_reliability",
    "crps",
    "debiased_ensemble_mean_mse",
    "energy_score",
    "ensemble_ignorance",
    "ensemble_mean_rmse",
    "gaussian_brier_score",
    "gaussian_crps",
    "gaussian_ignorance",
    "gaussian_variance",
    "geostrophic_wind",
    "innovation_statistics",
    "innovations",
    "mae",
    "mse",
    "rank_histogram",
    "ranked_probability_score",
    "rmse",
    "select_climatology",
    "scorecard",
    "spread",
    "spread_skill_ratio",
    "valid_time",
    "wind_vector_rmse",
]
