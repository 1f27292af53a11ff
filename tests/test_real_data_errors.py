"""The errors met when the shipped (Held–Suarez world) models and modules meet real data
(ERA5 / WeatherBench2 layouts): each names what was asked for and how to proceed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.data.schema import SchemaError
from xfuxi.models.base import ForecastModel
from xfuxi.models.cascade import Cascade

#: an ERA5-like model's channels: none of the world's tracer or surface pressure
_LEVELS = (250.0, 500.0, 700.0, 850.0)
_ERA5_CHANNELS = [
    *(("temperature", lv) for lv in _LEVELS),
    *(("specific_humidity", lv) for lv in _LEVELS),
    ("2m_temperature", None),
    ("mean_sea_level_pressure", None),
]


def _era5_like(n_time: int = 3) -> xr.Dataset:
    """Temperature on levels and 2 m temperature on the tiny grid (no world variables)."""
    rng = np.random.default_rng(0)
    shape = (n_time, tiny.LAT.size, tiny.LON.size)
    return xr.Dataset(
        {
            "temperature": (
                ("time", "level", "latitude", "longitude"),
                250 + rng.normal(size=(n_time, 2, *shape[1:])),
                {"units": "K"},
            ),
            "2m_temperature": (
                ("time", "latitude", "longitude"),
                280 + rng.normal(size=shape),
                {"units": "K"},
            ),
        },  # fmt: skip
        coords={
            "time": pd.date_range("2020-01-01", periods=n_time, freq="6h"),
            "level": [500, 850],
            "latitude": tiny.LAT,
            "longitude": tiny.LON,
        },
    )


def _own_model() -> ForecastModel:
    """A user's model of ERA5-like channels on the tiny grid."""
    n = len(_ERA5_CHANNELS)
    stats = xfuxi.models.base.NormStats(np.zeros(n), np.ones(n), np.ones(n))
    return ForecastModel(
        tiny.TinyNet(n), channels=_ERA5_CHANNELS, latitude=tiny.LAT, longitude=tiny.LON,
        stats=stats, name="mine",
    )  # fmt: skip


def test_world_cascade_on_real_data_names_the_cascade_and_says_to_train():
    cascade = Cascade([tiny.model(name="short"), tiny.model(name="medium")], [2], name="casc")
    with pytest.raises(SchemaError) as err:
        cascade.check_dataset(_era5_like())
    text = str(err.value)
    assert "model 'casc'" in text and "'short'" in text
    assert "missing variable(s) ['passive_tracer']" in text  # the specifics kept
    assert "Held–Suarez" in text and "train_forecast" in text and "xfuxi train" in text


def test_shipped_cascade_forecast_on_real_data_says_it_is_a_world_model():
    with pytest.raises(SchemaError) as err:
        xfuxi.forecast(
            xfuxi.regrid(_era5_like(), "T21"), model="fuxi-hs-t21-cascade", steps=1,
            progress=False,
        )  # fmt: skip
    text = str(err.value)
    assert "'fuxi-hs-t21-cascade'" in text
    assert "Held–Suarez" in text and "xfuxi.train_forecast" in text
    assert "docs/user-guide/training.md" in text


def test_own_model_with_the_default_perturbation_names_the_alternatives():
    with pytest.raises(ValueError) as err:
        xfuxi.ensemble(_era5_like(), model=_own_model(), n=2, steps=1, progress=False)
    text = str(err.value)
    assert "default perturbation" in text and "fuxi-ens-hs-t21" in text
    assert "PerlinNoise" in text and "GaussianNoise" in text and "train_perturbation" in text
    # the differences, counted and shortened, not the two full lists of channels
    assert "21 channels" in text and "more)" in text
    assert "v_component_of_wind@850" not in text


@pytest.mark.parametrize(
    "word, spec",
    [("gaussian", "GaussianNoise"), ("perlin", "PerlinNoise"), ("vae", "VAEPerturbation")],
)
def test_a_method_word_as_perturbation_names_the_spec_to_pass(word, spec):
    with pytest.raises(ValueError, match=rf"perturbation=xfuxi\.{spec}\("):
        xfuxi.ensemble(
            tiny.dataset(), model=tiny.model(), n=2, steps=1, perturbation=word, progress=False
        )


def _forecast_and_truth():
    truth = _era5_like(4)[["2m_temperature", "temperature"]]
    fc = truth.isel(time=slice(0, 2)).expand_dims(prediction_timedelta=[np.timedelta64(6, "h")])
    return fc.transpose("time", "prediction_timedelta", ...), truth


def test_climatology_lacking_a_variable_says_how_to_score_a_subset():
    fc, truth = _forecast_and_truth()
    clim = xfuxi.climatology(truth)[["temperature"]]
    dims = ["time", "latitude", "longitude"]
    with pytest.raises(ValueError, match=r"climatology lacks variable\(s\)") as err:
        xfuxi.acc(fc, truth, clim, dim=dims)
    assert "forecast[['temperature']]" in str(err.value)
    with pytest.raises(ValueError, match=r"variables=\['temperature'\]"):
        xfuxi.scorecard(fc, truth, climatology=clim)


def test_climatology_on_another_grid_says_to_regrid_it():
    fc, truth = _forecast_and_truth()
    clim = xfuxi.climatology(xfuxi.regrid(truth, "wb2_64x32"))
    with pytest.raises(ValueError, match=r"xfuxi\.regrid") as err:
        xfuxi.acc(fc, truth, clim, dim=["time", "latitude", "longitude"])
    assert "another grid" in str(err.value)
    with pytest.raises(ValueError, match=r"xfuxi\.regrid"):
        xfuxi.scorecard(fc, truth, climatology=clim)
