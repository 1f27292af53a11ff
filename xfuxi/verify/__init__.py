"""Verification: deterministic and probabilistic scores, observation-space statistics and
balance diagnostics, defined in the documentation, docs/design.md (Verification). Works
without torch; numba is used when installed.
"""

from __future__ import annotations

from ..data.stats import select_climatology
from .balance import ageostrophic_wind, balance_summary, geostrophic_wind
from .deterministic import acc, bias, mae, mse, rmse
from .observation_space import innovation_statistics, innovations
from .probabilistic import (
    brier_score,
    crps,
    ensemble_mean_rmse,
    rank_histogram,
    spread,
    spread_skill_ratio,
)
from .regions import REGIONS, Region
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
    "crps",
    "ensemble_mean_rmse",
    "geostrophic_wind",
    "innovation_statistics",
    "innovations",
    "mae",
    "mse",
    "rank_histogram",
    "rmse",
    "select_climatology",
    "spread",
    "spread_skill_ratio",
    "valid_time",
]
