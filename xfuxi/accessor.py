"""The ``.fuxi`` accessor on xarray objects: one-line delegation to the public functions.

Each method has the signature and docstring of the function it calls, minus the first
(data) argument, so Jupyter's ``?`` and tab completion show the real thing. The accessor
holds no state and imports nothing heavy until a method is called.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any

import xarray as xr

__all__ = ["ACCESSOR_METHODS", "FuxiDataArrayAccessor", "FuxiDatasetAccessor"]

#: accessor method name -> ("module:function" relative to xfuxi, applies to)
#: where "applies to" is "both", "dataset" or "dataarray". Add one line per public function.
ACCESSOR_METHODS: dict[str, tuple[str, str]] = {
    "validate": ("data.schema:validate", "both"),
    # assimilation: FuXi-En4DVar (issue 5)
    "assimilate_4dvar": ("assimilation.en4dvar:assimilate_4dvar", "dataset"),
    "background_error_std": ("assimilation.calibration:background_error_std", "dataset"),
    "single_observation": ("assimilation.observations:single_observation", "dataset"),
    "random_observations": ("assimilation.observations:random_observations", "dataset"),
    "radiosonde_observations": ("assimilation.observations:radiosonde_observations", "dataset"),
    "region_observations": ("assimilation.observations:region_observations", "dataset"),
    "perlin_ensemble": ("assimilation.perlin:perlin_ensemble", "dataset"),
    # data: statistics, climatology, baselines (issue 2)
    "normalization_stats": ("data.stats:normalization_stats", "both"),
    "climatology": ("data.stats:climatology", "both"),
    "persistence_forecast": ("baselines:persistence_forecast", "both"),
    # FuXi forecast (issue 3)
    "forecast": ("forecast:forecast", "dataset"),
    "forecast_iter": ("forecast:forecast_iter", "dataset"),
    # verification (issue 4)
    "rmse": ("verify.deterministic:rmse", "both"),
    "mse": ("verify.deterministic:mse", "both"),
    "mae": ("verify.deterministic:mae", "both"),
    "bias": ("verify.deterministic:bias", "both"),
    "acc": ("verify.deterministic:acc", "both"),
    "align_valid_time": ("verify.weights:align_valid_time", "both"),
    "crps": ("verify.probabilistic:crps", "both"),
    "spread": ("verify.probabilistic:spread", "both"),
    "ensemble_mean_rmse": ("verify.probabilistic:ensemble_mean_rmse", "both"),
    "spread_skill_ratio": ("verify.probabilistic:spread_skill_ratio", "both"),
    "brier_score": ("verify.probabilistic:brier_score", "both"),
    "rank_histogram": ("verify.probabilistic:rank_histogram", "both"),
    "innovations": ("verify.observation_space:innovations", "dataset"),
    "innovation_statistics": ("verify.observation_space:innovation_statistics", "dataset"),
    "geostrophic_wind": ("verify.balance:geostrophic_wind", "dataset"),
    "ageostrophic_wind": ("verify.balance:ageostrophic_wind", "dataset"),
    "balance_summary": ("verify.balance:balance_summary", "dataset"),
    "plot_map": ("plot:plot_map", "both"),
    "plot_increment": ("plot:plot_increment", "both"),
    "plot_scores": ("plot:plot_scores", "both"),
    "plot_spread_skill": ("plot:plot_spread_skill", "both"),
    "plot_rank_histogram": ("plot:plot_rank_histogram", "both"),
    "plot_convergence": ("plot:plot_convergence", "both"),
    "ensemble": ("forecast:ensemble", "dataset"),
    "ensemble_iter": ("forecast:ensemble_iter", "dataset"),
}


def _resolve(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(f"xfuxi.{module_name}"), attr)


class _Delegate:
    """Descriptor: ``obj.fuxi.name(*args, **kw)`` calls ``function(obj, *args, **kw)``."""

    def __init__(self, name: str, target: str) -> None:
        self.name = name
        self.target = target

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, accessor: Any, owner: type | None = None) -> Any:
        func = _resolve(self.target)
        if accessor is None:
            return func

        @functools.wraps(func)
        def method(*args: Any, **kwargs: Any) -> Any:
            return func(accessor._obj, *args, **kwargs)

        sig = inspect.signature(func)
        params = list(sig.parameters.values())[1:]
        method.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        return method


class _FuxiAccessor:
    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()))


@xr.register_dataset_accessor("fuxi")
class FuxiDatasetAccessor(_FuxiAccessor):
    """xfuxi methods on ``xarray.Dataset`` (``ds.fuxi.<name>``)."""


@xr.register_dataarray_accessor("fuxi")
class FuxiDataArrayAccessor(_FuxiAccessor):
    """xfuxi methods on ``xarray.DataArray`` (``da.fuxi.<name>``)."""


def _install() -> None:
    for name, (target, applies) in ACCESSOR_METHODS.items():
        if applies in ("both", "dataset"):
            setattr(FuxiDatasetAccessor, name, _Delegate(name, target))
        if applies in ("both", "dataarray"):
            setattr(FuxiDataArrayAccessor, name, _Delegate(name, target))


_install()
