"""xfuxi: the FuXi family of machine-learning weather systems, end to end on xarray.

The public names are listed once in :mod:`xfuxi.api` and loaded lazily, so ``import xfuxi``
and all of verification work without importing torch. ``import xfuxi`` imports neither
xarray nor NumPy either (it takes a few tens of milliseconds): the ``.fuxi`` accessor is
registered on ``xarray.Dataset`` and ``xarray.DataArray`` at once if xarray is already
imported, else as soon as xarray is (by whoever imports it).
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .api import PUBLIC, resolve
from .options import get_options, set_options  # noqa: F401  (eager: also in PUBLIC)

if TYPE_CHECKING:
    # what ``__getattr__`` loads lazily, spelt out for type checkers (mypy, pyright, IDEs):
    # one import per row of api.PUBLIC, kept in sync by tests/test_typing.py; never run
    from . import datasets as datasets
    from . import verify as verify
    from .assimilation.calibration import background_error_std as background_error_std
    from .assimilation.calibration import forecast_error_samples as forecast_error_samples
    from .assimilation.climatology_blend import ClimatologyBlendMethod as ClimatologyBlendMethod
    from .assimilation.climatology_blend import fit_climatology_blend as fit_climatology_blend
    from .assimilation.config import BackgroundError as BackgroundError
    from .assimilation.config import BackgroundErrorData as BackgroundErrorData
    from .assimilation.config import LocalizationOptions as LocalizationOptions
    from .assimilation.config import Minimiser as Minimiser
    from .assimilation.config import QualityControl as QualityControl
    from .assimilation.config import Window as Window
    from .assimilation.cycle import En4DVarMethod as En4DVarMethod
    from .assimilation.cycle import HybridGainMethod as HybridGainMethod
    from .assimilation.cycle import LETKFMethod as LETKFMethod
    from .assimilation.cycle import RadiosondeNetwork as RadiosondeNetwork
    from .assimilation.cycle import cycle as cycle
    from .assimilation.cycle import cycle_initial_conditions as cycle_initial_conditions
    from .assimilation.cycle import open_cycle as open_cycle
    from .assimilation.cycle import static_var as static_var
    from .assimilation.cycle_config import CycleConfig as CycleConfig
    from .assimilation.cycling import world_background as world_background
    from .assimilation.da import assimilate_da as assimilate_da
    from .assimilation.da_cycle import FuXiDAMethod as FuXiDAMethod
    from .assimilation.da_cycle import ImagerNetwork as ImagerNetwork
    from .assimilation.en4dvar import assimilate_4dvar as assimilate_4dvar
    from .assimilation.letkf import LETKFOptions as LETKFOptions
    from .assimilation.localization import localization as localization
    from .assimilation.model_bias import BiasCorrectedMethod as BiasCorrectedMethod
    from .assimilation.radiance_cycle import ImagerSondeNetwork as ImagerSondeNetwork
    from .assimilation.radiance_cycle import RadianceEn4DVarMethod as RadianceEn4DVarMethod
    from .assimilation.result import open_result as open_result
    from .campaigns import CampaignConfig as CampaignConfig
    from .campaigns import CampaignError as CampaignError
    from .campaigns import campaign as campaign
    from .campaigns import campaign_scorecard as campaign_scorecard
    from .data.readers import from_era5 as from_era5
    from .data.readers import from_weatherbench2 as from_weatherbench2
    from .data.regrid import regrid as regrid
    from .data.schema import validate as validate
    from .data.stats import climatology as climatology
    from .data.stats import climatology_for as climatology_for
    from .data.stats import load_stats as load_stats
    from .data.stats import normalization_stats as normalization_stats
    from .data.stats import save_stats as save_stats
    from .data.writers import write_netcdf as write_netcdf
    from .data.writers import write_weatherbench2 as write_weatherbench2
    from .experiments.lorenz96 import Lorenz96LETKFConfig as Lorenz96LETKFConfig
    from .experiments.lorenz96 import Lorenz96TwinConfig as Lorenz96TwinConfig
    from .experiments.lorenz96 import lorenz96_letkf as lorenz96_letkf
    from .experiments.lorenz96 import lorenz96_twin as lorenz96_twin
    from .forecasting.baselines import climatology_forecast as climatology_forecast
    from .forecasting.baselines import persistence_forecast as persistence_forecast
    from .forecasting.deterministic import forecast as forecast
    from .forecasting.deterministic import forecast_iter as forecast_iter
    from .forecasting.ensemble import GaussianNoise as GaussianNoise
    from .forecasting.ensemble import PerlinNoise as PerlinNoise
    from .forecasting.ensemble import VAEPerturbation as VAEPerturbation
    from .forecasting.ensemble import ensemble as ensemble
    from .forecasting.ensemble import ensemble_iter as ensemble_iter
    from .grid import area_weights as area_weights
    from .models.base import ForecastModel as ForecastModel
    from .models.base import with_single_time_input as with_single_time_input
    from .models.base import wrap_model as wrap_model
    from .models.cascade import Cascade as Cascade
    from .models.checkpoint import CheckpointError as CheckpointError
    from .models.checkpoint import ChecksumError as ChecksumError
    from .models.checkpoint import save_model as save_model
    from .models.ens import PerturbationVAE as PerturbationVAE
    from .models.ens import load_perturbation as load_perturbation
    from .models.ens import save_perturbation as save_perturbation
    from .models.fuxi_da import load_da_model as load_da_model
    from .models.lorenz96 import lorenz96_model as lorenz96_model
    from .models.registry import load_model as load_model
    from .models.registry import pretrained_models as pretrained_models
    from .models.spectral import with_spectral_filter as with_spectral_filter
    from .observations.imager import ImagerErrors as ImagerErrors
    from .observations.imager import imager_observations as imager_observations
    from .observations.sets import duplicated_observations as duplicated_observations
    from .observations.sets import make_observations as make_observations
    from .observations.sets import radiosonde_observations as radiosonde_observations
    from .observations.sets import random_observations as random_observations
    from .observations.sets import region_observations as region_observations
    from .observations.sets import screen_observations as screen_observations
    from .observations.sets import single_observation as single_observation
    from .perturbations.perlin import perlin_ensemble as perlin_ensemble
    from .perturbations.perlin import perlin_noise as perlin_noise
    from .perturbations.perlin import perlin_perturbations as perlin_perturbations
    from .perturbations.scales import PerlinScales as PerlinScales
    from .plot import MapStyle as MapStyle
    from .plot import plot_convergence as plot_convergence
    from .plot import plot_cycle as plot_cycle
    from .plot import plot_increment as plot_increment
    from .plot import plot_map as plot_map
    from .plot import plot_rank_histogram as plot_rank_histogram
    from .plot import plot_scorecard as plot_scorecard
    from .plot import plot_scores as plot_scores
    from .plot import plot_spectra as plot_spectra
    from .plot import plot_spread_skill as plot_spread_skill
    from .training.config import PerturbationTrainConfig as PerturbationTrainConfig
    from .training.config import TrainConfig as TrainConfig
    from .training.da import train_da as train_da
    from .training.da_config import DAConfig as DAConfig
    from .training.ens import train_perturbation as train_perturbation
    from .training.forecast import train_forecast as train_forecast
    from .verify.balance import ageostrophic_wind as ageostrophic_wind
    from .verify.balance import balance_summary as balance_summary
    from .verify.balance import geostrophic_wind as geostrophic_wind
    from .verify.deterministic import acc as acc
    from .verify.deterministic import bias as bias
    from .verify.deterministic import mae as mae
    from .verify.deterministic import mse as mse
    from .verify.deterministic import rmse as rmse
    from .verify.deterministic import wind_vector_rmse as wind_vector_rmse
    from .verify.gaussian import gaussian_brier_score as gaussian_brier_score
    from .verify.gaussian import gaussian_crps as gaussian_crps
    from .verify.gaussian import gaussian_ignorance as gaussian_ignorance
    from .verify.gaussian import gaussian_variance as gaussian_variance
    from .verify.observation_space import innovation_statistics as innovation_statistics
    from .verify.observation_space import innovations as innovations
    from .verify.probabilistic import brier_score as brier_score
    from .verify.probabilistic import central_reliability as central_reliability
    from .verify.probabilistic import crps as crps
    from .verify.probabilistic import debiased_ensemble_mean_mse as debiased_ensemble_mean_mse
    from .verify.probabilistic import energy_score as energy_score
    from .verify.probabilistic import ensemble_ignorance as ensemble_ignorance
    from .verify.probabilistic import ensemble_mean_rmse as ensemble_mean_rmse
    from .verify.probabilistic import rank_histogram as rank_histogram
    from .verify.probabilistic import ranked_probability_score as ranked_probability_score
    from .verify.probabilistic import spread as spread
    from .verify.probabilistic import spread_skill_ratio as spread_skill_ratio
    from .verify.regions import REGIONS as REGIONS
    from .verify.regions import Region as Region
    from .verify.scorecard import scorecard as scorecard
    from .verify.significance import score_difference as score_difference
    from .verify.spectra import zonal_energy_spectrum as zonal_energy_spectrum
    from .verify.weights import align_valid_time as align_valid_time
    from .world.simulator import WorldConfig as WorldConfig
    from .world.simulator import held_suarez as held_suarez
    from .world.simulator import held_suarez_split as held_suarez_split

_TARGETS: dict[str, str] = {e.name: e.target for e in PUBLIC}


if not TYPE_CHECKING:  # hidden from type checkers, which then flag a misspelt xfuxi.<name>

    def __getattr__(name: str) -> Any:
        target = _TARGETS.get(name)
        if target is None:
            raise AttributeError(f"module 'xfuxi' has no attribute {name!r}")
        value = resolve(target)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    # the public names and the package's submodules (for tab completion), not the names
    # this module imports for its own use (``sys``, ``Any``, ...)
    subpackages = {
        k for k, v in globals().items()
        if isinstance(v, ModuleType) and v.__name__.startswith(__name__ + ".")
    }  # fmt: skip
    return sorted(set(__all__) | subpackages)


def _register_accessor() -> None:
    """Register ``ds.fuxi`` / ``da.fuxi`` (imports :mod:`xfuxi.accessor`, hence xarray)."""
    from . import accessor  # noqa: F401


class _AccessorOnXarrayImport:
    """Import hook: when xarray is imported, finish its import, then register the accessor.

    It takes part in the one import of the top-level ``xarray`` module only, and removes
    itself from :data:`sys.meta_path` as it does (other modules are left to the other
    finders). It is a finder and a loader by protocol (not subclassing ``importlib.abc``,
    whose import costs more than the rest of ``import xfuxi``).
    """

    def __init__(self) -> None:
        self._loader: Any = None

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name != "xarray":
            return None
        self.remove()
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        _register_accessor()

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


if "xarray" in sys.modules:
    _register_accessor()
elif not any(isinstance(f, _AccessorOnXarrayImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _AccessorOnXarrayImport())

__all__ = ["__version__", *_TARGETS]
