"""The public API table: one row per public name.

``xfuxi.<name>`` (loaded lazily, so ``import xfuxi`` and all of verification work without
importing torch), the ``.fuxi`` accessor on Datasets and DataArrays, and the API reference
in the documentation are all derived from :data:`PUBLIC`. Adding a public function means
adding one row here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["PUBLIC", "Entry", "accessor_entries", "resolve"]


def resolve(target: str) -> Any:
    """Import ``"module:attribute"`` (relative to ``xfuxi``) and return the object."""
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(f"xfuxi.{module_name}")
    return getattr(module, attr) if attr else module


@dataclass(frozen=True)
class Entry:
    """One public name.

    Attributes
    ----------
    name : str
        The name under ``xfuxi`` (and under ``.fuxi`` where ``accessor`` is set).
    target : str
        ``"module:attribute"`` relative to the package (``"module:"`` for a module).
    accessor : {"both", "dataset", "dataarray"} or None
        Which xarray objects get ``obj.fuxi.<name>``; ``None`` for none.
    """

    name: str
    target: str
    accessor: Literal["both", "dataset", "dataarray"] | None = None


PUBLIC: tuple[Entry, ...] = (
    # data
    Entry("validate", "data.schema:validate", accessor="both"),
    Entry("from_era5", "data.readers:from_era5"),
    Entry("from_weatherbench2", "data.readers:from_weatherbench2"),
    Entry("normalization_stats", "data.stats:normalization_stats", accessor="both"),
    Entry("climatology", "data.stats:climatology", accessor="both"),
    Entry("climatology_for", "data.stats:climatology_for"),
    Entry("save_stats", "data.stats:save_stats"),
    Entry("load_stats", "data.stats:load_stats"),
    # datasets
    Entry("datasets", "datasets:"),
    # world
    Entry("held_suarez", "world.simulator:held_suarez"),
    Entry("held_suarez_split", "world.simulator:held_suarez_split"),
    # forecasting
    Entry("persistence_forecast", "forecasting.baselines:persistence_forecast", accessor="both"),
    Entry("climatology_forecast", "forecasting.baselines:climatology_forecast", accessor="both"),
    Entry("forecast", "forecasting.deterministic:forecast", accessor="dataset"),
    Entry("forecast_iter", "forecasting.deterministic:forecast_iter", accessor="dataset"),
    Entry("ensemble", "forecasting.ensemble:ensemble", accessor="dataset"),
    Entry("ensemble_iter", "forecasting.ensemble:ensemble_iter", accessor="dataset"),
    Entry("VAEPerturbation", "forecasting.ensemble:VAEPerturbation"),
    Entry("PerlinNoise", "forecasting.ensemble:PerlinNoise"),
    Entry("GaussianNoise", "forecasting.ensemble:GaussianNoise"),
    # models
    Entry("ForecastModel", "models.base:ForecastModel"),
    Entry("wrap_model", "models.base:wrap_model"),
    Entry("with_spectral_filter", "models.spectral:with_spectral_filter"),
    Entry("with_single_time_input", "models.base:with_single_time_input"),
    Entry("lorenz96_model", "models.lorenz96:lorenz96_model"),
    Entry("load_model", "models.registry:load_model"),
    Entry("Cascade", "models.cascade:Cascade"),
    Entry("save_model", "models.checkpoint:save_model"),
    Entry("CheckpointError", "models.checkpoint:CheckpointError"),
    Entry("ChecksumError", "models.checkpoint:ChecksumError"),
    Entry("pretrained_models", "models.registry:pretrained_models"),
    Entry("PerturbationVAE", "models.ens:PerturbationVAE"),
    Entry("load_perturbation", "models.ens:load_perturbation"),
    Entry("save_perturbation", "models.ens:save_perturbation"),
    # assimilation
    Entry("assimilate_4dvar", "assimilation.en4dvar:assimilate_4dvar", accessor="dataset"),
    Entry("open_result", "assimilation.result:open_result"),
    Entry("BackgroundError", "assimilation.config:BackgroundError"),
    Entry("BackgroundErrorData", "assimilation.config:BackgroundErrorData"),
    Entry("LocalizationOptions", "assimilation.config:LocalizationOptions"),
    Entry("Window", "assimilation.config:Window"),
    Entry("Minimiser", "assimilation.config:Minimiser"),
    Entry("QualityControl", "assimilation.config:QualityControl"),
    Entry(
        "background_error_std", "assimilation.calibration:background_error_std", accessor="dataset"
    ),
    Entry(
        "forecast_error_samples",
        "assimilation.calibration:forecast_error_samples",
        accessor="dataset",
    ),
    Entry("localization", "assimilation.localization:localization"),
    # observations
    Entry("make_observations", "observations.sets:make_observations"),
    Entry("single_observation", "observations.sets:single_observation", accessor="dataset"),
    Entry("random_observations", "observations.sets:random_observations", accessor="dataset"),
    Entry(
        "radiosonde_observations", "observations.sets:radiosonde_observations", accessor="dataset"
    ),
    Entry("region_observations", "observations.sets:region_observations", accessor="dataset"),
    Entry("screen_observations", "observations.sets:screen_observations"),
    Entry("duplicated_observations", "observations.sets:duplicated_observations"),
    # perturbations
    Entry("perlin_noise", "perturbations.perlin:perlin_noise"),
    Entry("perlin_perturbations", "perturbations.perlin:perlin_perturbations"),
    Entry("perlin_ensemble", "perturbations.perlin:perlin_ensemble", accessor="dataset"),
    # experiments
    Entry("lorenz96_twin", "experiments.lorenz96:lorenz96_twin"),
    # training
    Entry("train_forecast", "training.forecast:train_forecast"),
    Entry("train_perturbation", "training.ens:train_perturbation"),
    Entry("TrainConfig", "training.config:TrainConfig"),
    Entry("PerturbationTrainConfig", "training.config:PerturbationTrainConfig"),
    # verify
    Entry("verify", "verify:"),
    Entry("rmse", "verify.deterministic:rmse", accessor="both"),
    Entry("mse", "verify.deterministic:mse", accessor="both"),
    Entry("mae", "verify.deterministic:mae", accessor="both"),
    Entry("bias", "verify.deterministic:bias", accessor="both"),
    Entry("acc", "verify.deterministic:acc", accessor="both"),
    Entry("align_valid_time", "verify.weights:align_valid_time", accessor="both"),
    Entry("crps", "verify.probabilistic:crps", accessor="both"),
    Entry("spread", "verify.probabilistic:spread", accessor="both"),
    Entry("ensemble_mean_rmse", "verify.probabilistic:ensemble_mean_rmse", accessor="both"),
    Entry("spread_skill_ratio", "verify.probabilistic:spread_skill_ratio", accessor="both"),
    Entry("brier_score", "verify.probabilistic:brier_score", accessor="both"),
    Entry("rank_histogram", "verify.probabilistic:rank_histogram", accessor="both"),
    Entry("innovations", "verify.observation_space:innovations", accessor="dataset"),
    Entry(
        "innovation_statistics",
        "verify.observation_space:innovation_statistics",
        accessor="dataset",
    ),
    Entry("geostrophic_wind", "verify.balance:geostrophic_wind", accessor="dataset"),
    Entry("ageostrophic_wind", "verify.balance:ageostrophic_wind", accessor="dataset"),
    Entry("balance_summary", "verify.balance:balance_summary", accessor="dataset"),
    Entry("zonal_energy_spectrum", "verify.spectra:zonal_energy_spectrum", accessor="both"),
    Entry("score_difference", "verify.significance:score_difference", accessor="both"),
    # grid
    Entry("area_weights", "grid:area_weights"),
    # plot
    Entry("plot_map", "plot:plot_map", accessor="both"),
    Entry("plot_increment", "plot:plot_increment", accessor="both"),
    Entry("MapStyle", "plot:MapStyle"),
    Entry("plot_scores", "plot:plot_scores", accessor="both"),
    Entry("plot_spread_skill", "plot:plot_spread_skill", accessor="both"),
    Entry("plot_rank_histogram", "plot:plot_rank_histogram", accessor="both"),
    Entry("plot_spectra", "plot:plot_spectra"),
    Entry("plot_convergence", "plot:plot_convergence", accessor="both"),
    # real data (issue 25)
    Entry("regrid", "data.regrid:regrid", accessor="both"),
    Entry("write_weatherbench2", "data.writers:write_weatherbench2", accessor="dataset"),
    Entry("write_netcdf", "data.writers:write_netcdf", accessor="dataset"),
    # verify (issue 24): more scores, regions, scorecard
    Entry("wind_vector_rmse", "verify.deterministic:wind_vector_rmse", accessor="dataset"),
    Entry("gaussian_crps", "verify.gaussian:gaussian_crps", accessor="both"),
    Entry("gaussian_variance", "verify.gaussian:gaussian_variance", accessor="both"),
    Entry("gaussian_brier_score", "verify.gaussian:gaussian_brier_score", accessor="both"),
    Entry("gaussian_ignorance", "verify.gaussian:gaussian_ignorance", accessor="both"),
    Entry("energy_score", "verify.probabilistic:energy_score", accessor="both"),
    Entry("ensemble_ignorance", "verify.probabilistic:ensemble_ignorance", accessor="both"),
    Entry(
        "ranked_probability_score",
        "verify.probabilistic:ranked_probability_score",
        accessor="both",
    ),
    Entry(
        "debiased_ensemble_mean_mse",
        "verify.probabilistic:debiased_ensemble_mean_mse",
        accessor="both",
    ),
    Entry("central_reliability", "verify.probabilistic:central_reliability", accessor="both"),
    Entry("scorecard", "verify.scorecard:scorecard", accessor="both"),
    Entry("plot_scorecard", "plot:plot_scorecard", accessor="dataset"),
    Entry("Region", "verify.regions:Region"),
    Entry("REGIONS", "verify.regions:REGIONS"),
    # campaigns
    Entry("campaign", "campaigns:campaign"),
    Entry("campaign_scorecard", "campaigns:campaign_scorecard"),
    Entry("CampaignError", "campaigns:CampaignError"),
    # cycling (issue 22)
    Entry("cycle", "assimilation.cycle:cycle", accessor="dataset"),
    Entry("open_cycle", "assimilation.cycle:open_cycle"),
    Entry("cycle_initial_conditions", "assimilation.cycle:cycle_initial_conditions"),
    Entry("LETKFMethod", "assimilation.cycle:LETKFMethod"),
    Entry("HybridGainMethod", "assimilation.cycle:HybridGainMethod"),
    Entry("BiasCorrectedMethod", "assimilation.model_bias:BiasCorrectedMethod"),
    Entry("ClimatologyBlendMethod", "assimilation.climatology_blend:ClimatologyBlendMethod"),
    Entry("fit_climatology_blend", "assimilation.climatology_blend:fit_climatology_blend"),
    Entry("En4DVarMethod", "assimilation.cycle:En4DVarMethod"),
    Entry("static_var", "assimilation.cycle:static_var"),
    Entry("RadiosondeNetwork", "assimilation.cycle:RadiosondeNetwork"),
    Entry("FuXiDAMethod", "assimilation.da_cycle:FuXiDAMethod"),
    Entry("ImagerNetwork", "assimilation.da_cycle:ImagerNetwork"),
    Entry("RadianceEn4DVarMethod", "assimilation.radiance_cycle:RadianceEn4DVarMethod"),
    Entry("ImagerSondeNetwork", "assimilation.radiance_cycle:ImagerSondeNetwork"),
    Entry("LETKFOptions", "assimilation.letkf:LETKFOptions"),
    Entry("lorenz96_letkf", "experiments.lorenz96:lorenz96_letkf"),
    Entry("plot_cycle", "plot:plot_cycle", accessor="dataset"),
    # twin experiments: a background forecast from a truth run
    Entry("world_background", "assimilation.cycling:world_background", accessor="dataset"),
    # FuXi-DA: the synthetic imager and learned assimilation of its radiances
    Entry("imager_observations", "observations.imager:imager_observations", accessor="dataset"),
    Entry("ImagerErrors", "observations.imager:ImagerErrors"),
    Entry("assimilate_da", "assimilation.da:assimilate_da", accessor="dataset"),
    Entry("load_da_model", "models.fuxi_da:load_da_model"),
    Entry("train_da", "training.da:train_da"),
    Entry("DAConfig", "training.da_config:DAConfig"),
    # the Perlin noise's scales, one option object for every Perlin perturbation
    Entry("PerlinScales", "perturbations.scales:PerlinScales"),
    # the world's options, one schema for held_suarez, the splits and `xfuxi world`
    Entry("WorldConfig", "world.simulator:WorldConfig"),
    # a campaign's run options, one schema for xfuxi.campaign and `xfuxi campaign`
    Entry("CampaignConfig", "campaigns:CampaignConfig"),
    # a cycled twin experiment's run options, one schema for xfuxi.cycle and `xfuxi cycle`
    Entry("CycleConfig", "assimilation.cycle_config:CycleConfig"),
    # the Lorenz-96 twin experiments' settings
    Entry("Lorenz96TwinConfig", "experiments.lorenz96:Lorenz96TwinConfig"),
    Entry("Lorenz96LETKFConfig", "experiments.lorenz96:Lorenz96LETKFConfig"),
    # global options, in the manner of xarray.set_options
    Entry("get_options", "options:get_options"),
    Entry("set_options", "options:set_options"),
)


def accessor_entries(kind: Literal["dataset", "dataarray"]) -> list[Entry]:
    """The entries that become ``.fuxi`` methods on a Dataset or a DataArray."""
    return [e for e in PUBLIC if e.accessor in ("both", kind)]


_names = [e.name for e in PUBLIC]
if len(set(_names)) != len(_names):  # pragma: no cover - guards the table itself
    raise RuntimeError("xfuxi.api.PUBLIC lists a name twice")
