"""Forecasts from xarray data: deterministic (FuXi, cascade), ensembles (FuXi-ENS), baselines.

* :mod:`.edge` — Dataset → model input pairs, predicted states → WeatherBench2 Dataset;
* :mod:`.deterministic` — :func:`forecast`, :func:`forecast_iter`;
* :mod:`.ensemble` — :func:`ensemble`, :func:`ensemble_iter`;
* :mod:`.baselines` — persistence and climatology forecasts.
"""
